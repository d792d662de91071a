/* SPDX-License-Identifier: MIT */
/*
 * probe.h — helpers for the programs: size arguments and signatures.
 *
 * Layer: program helpers, in the core library. Calls nothing but libc and
 * format.h. No FUSE types, no image mapping: the probe reads with pread().
 */
#ifndef MFS_PROBE_H
#define MFS_PROBE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse a size argument: a decimal number of bytes, optionally followed by
 * one of K, M, G, T, P, E (binary multiples, case-insensitive), which may
 * itself be followed by "iB" or "B" ("64K", "64KiB", "64kb", "10G").
 * A bare "B" suffix means bytes. Leading/trailing blanks, signs, fractions
 * and anything else are refused.
 * Returns 0 and *out; -EINVAL for a malformed string or zero; -ERANGE when
 * the value does not fit in 64 bits. *out is untouched on error.
 */
int mfs_parse_size(const char *s, uint64_t *out);

/* Bytes mfs_probe_signature() reads from the start of the file. */
#define MFS_PROBE_BYTES (128u * 1024u)

/*
 * Look for a known file system, swap, container or partition table
 * signature in buf[0, len) — the first bytes of a file or device. A
 * signature that does not lie wholly inside len does not match. On a
 * match, writes a blkid-style type name ("mmapfs", "ext2", "ext3", "ext4",
 * "jbd", "xfs", "btrfs", "vfat", "exfat", "ntfs", "swap", "squashfs",
 * "crypto_LUKS", "iso9660", "gpt", "dos") into name (truncated to namelen,
 * always terminated when namelen > 0) and returns 1; returns 0 when
 * nothing is recognised.
 */
int mfs_probe_buffer(const void *buf, size_t len, char *name, size_t namelen);

/*
 * Read the first MFS_PROBE_BYTES of fd with pread (a shorter file is fine)
 * and run mfs_probe_buffer() on them. Returns 1 and name, 0 when nothing is
 * recognised, or -errno when reading fails. Does not move the file offset.
 */
int mfs_probe_signature(int fd, char *name, size_t namelen);

/*
 * A phrase for messages, with its article, written into buf: "an ext4 file
 * system", "swap space", "a dos partition table", ... for every name that
 * mfs_probe_buffer() returns, "a NAME signature" for any other. Returns buf.
 */
char *mfs_probe_describe(const char *name, char *buf, size_t buflen);

#endif
