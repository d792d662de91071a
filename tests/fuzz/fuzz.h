/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h — hostile images for the fuzz harnesses (tests/fuzz/).
 *
 * Every image harness reads the same template: a 1 MiB image built once per
 * process through the core API (a directory of 150 entries, so the FS tree
 * has internal nodes; files with data, a hole, a fragmented file and
 * preallocated blocks; small and chunked xattrs; a short and a chunked
 * symlink; a hard link; a nested directory; an unlinked file still on the
 * orphan list), with a fixed UUID, time and name-hash key.
 *
 * An input is a list of patches to the template's metadata: the first 512
 * bytes of superblock slot 0 and of slot 1, and every block that holds a
 * tree node (live or left by an older commit), numbered in block order.
 * Each patch is
 *     u8 piece, u16 offset (little-endian), u8 length, length bytes
 * (piece modulo the number of pieces, offset modulo its length, bytes
 * past its end dropped; a last patch may be short). The empty input is
 * the template itself. So every mutation lands on a superblock or a tree
 * node, never on file data, and a few bytes reach any field: an item's
 * size, a pointer's block number, a name's length. Harnesses built with
 * FZ_FIX_CRC recompute the checksum of every superblock slot and node a
 * patch touched, so that "valid checksum, hostile content" is explored as
 * well as "bad checksum".
 *
 * The image lives in a memfd, reached by its /proc/self/fd path, so that
 * the core opens, locks and maps it as it would a file.
 *
 * Environment:
 *   MFS_FUZZ_SAVE=FILE   write each image built from an input to FILE (to
 *                        keep a finding as a whole image, *.img).
 */
#ifndef MFS_FUZZ_H
#define MFS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mmapfs/mmapfs.h"

/* Set by the regression driver for inputs named *.img: the input is the
 * whole image, used as it is. */
extern bool fz_input_is_image;

/* The image an input makes, as a path the core can open; NULL if the
 * template could not be built (the harness aborts: a broken setup must not
 * pass as "no crash"). */
const char *fz_image(const uint8_t *data, size_t size);

/* A stream to /dev/null, for the checker's report (opened once). */
FILE *fz_devnull(void);

/* The credentials the harnesses act with: root. */
extern const struct mfs_cred fz_cred;

/* A result no core call may give: neither 0 nor a negative errno. Aborts
 * with a message naming the call. */
void fz_check_rc(const char *what, int rc);

/* Report a broken promise (a repair that does not converge, ...) and
 * abort, so that the fuzzer keeps the input. */
__attribute__((noreturn, format(printf, 1, 2)))
void fz_fail(const char *fmt, ...);

#endif
