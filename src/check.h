/* SPDX-License-Identifier: MIT */
/*
 * check.h — the filesystem checker and repairer behind fsck.mmapfs.
 *
 * Layer: program library (9). Calls txn (open, commit, close), btree, alloc,
 * image, inode and dir; reads tree nodes and items itself (format.h), so
 * that it can walk a damaged tree without tripping the core's checks.
 * No FUSE types.
 *
 * The check runs in five passes, as e2fsck's do:
 *   1. trees and blocks: superblock slots, every node of both trees, every
 *      item, block ownership (no block claimed twice);
 *   2. directory structure: every entry's name, hash, type and target;
 *      duplicate names, hard-linked directories;
 *   3. directory connectivity: everything reachable from the root, '..',
 *      lost+found;
 *   4. reference counts: link counts, the orphan list;
 *   5. free space: used ∪ free == [2, block_count) exactly, the superblock
 *      counters.
 * In repair mode each problem is fixed as it is found, through the btree
 * API inside the running transaction; one commit at the end makes the
 * repairs durable together, so a crash during a repair leaves the image as
 * it was. After the commit the image is checked again (read-only) to prove
 * the repair.
 */
#ifndef MFS_CHECK_H
#define MFS_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define MFS_CHECK_REPAIR 0x1u   /* fix what is found (-y, -p) */
#define MFS_CHECK_FORCE 0x2u    /* check even when marked clean (-f) */
#define MFS_CHECK_PREEN 0x4u    /* -p: terse, each line prefixed with the name */
#define MFS_CHECK_VERBOSE 0x8u  /* -v: details and statistics */

struct mfs_check_opts {
	unsigned flags;        /* MFS_CHECK_* */
	FILE *out;             /* messages; NULL: stdout */
	const char *name;      /* the image as named to the user (messages) */
	/* Progress, if not NULL: called with pass 1..5 and done <= total. */
	void (*progress)(void *arg, unsigned pass, uint64_t done, uint64_t total);
	void *progress_arg;
};

struct mfs_check_result {
	bool skipped_clean;     /* marked clean and not forced: not checked */
	uint64_t problems;      /* problems found */
	uint64_t fixed;         /* ... and repaired */
	uint64_t unfixed;       /* ... and left as they were */
	bool modified;          /* the image was written (repairs, orphans) */
	bool repair_failed;     /* a repair or the commit failed: operational error */
	uint64_t files;         /* inodes in use */
	uint64_t blocks_used;   /* blocks not free, superblocks included */
	uint64_t blocks_total;
	/* When the check could not run: the core's explanation, if it gave
	 * one (without the program name), else empty. */
	char error[256];
};

/*
 * Check the image at path; with MFS_CHECK_REPAIR, repair it. Without
 * REPAIR the image is opened read-only (shared lock, PROT_READ mapping):
 * nothing is written. With REPAIR it is opened exclusively.
 *
 * Returns 0 with *res filled when the check ran (whatever it found), or
 * -errno when it could not: -EBUSY (locked: mounted or being checked),
 * -EINVAL (not an mmapfs image), -EUCLEAN (no valid superblock slot),
 * -EPROTONOSUPPORT (unknown version or feature), -ENOENT, -ENOMEM, ...;
 * res->error then says why in words when the core said so. Nothing is
 * printed in that case: the caller words the error.
 *
 * While it runs, the core's log messages go to stderr (see check.c); the
 * caller's log sink (mfs_log_set_sink) is put back before it returns.
 */
int mfs_check(const char *path, const struct mfs_check_opts *opts,
	      struct mfs_check_result *res);

#endif
