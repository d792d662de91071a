/* SPDX-License-Identifier: MIT */
/*
 * txn.h — volumes and transactions: format, open, commit, abort, close.
 *
 * Layer 5. Calls image, alloc and btree.
 *
 * Commit protocol (see docs/design.md for why it is safe):
 *   1. write the allocator's changes into the FREE tree (repeat until the
 *      FREE tree's own copies stop changing the free set);
 *   2. compute checksums of all nodes written in this transaction;
 *   3. sync the image (every new block is durable);
 *   4. write the superblock into the slot that is not current;
 *   5. sync the superblock's block (msync of that one block); the new
 *      generation is now the committed one;
 *   6. unpin blocks freed two generations ago; start the next transaction.
 * Nothing reachable from the committed superblock is written before step 5
 * completes, so a crash at any point leaves one valid committed state.
 */
#ifndef MFS_TXN_H
#define MFS_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include "vol.h"

struct mfs_format_opts {
	uint64_t size;                 /* bytes; a multiple of the block size */
	bool force;                    /* overwrite an existing file */
	bool prealloc;                 /* fallocate the whole image */
	const char *label;             /* NULL or up to MFS_LABEL_MAX bytes */
	const uint8_t *uuid;           /* NULL: random */
	const uint64_t *hash_seed;     /* NULL: random; else 2 words (the
					* directory-name hash key) */
	uint64_t time;                 /* 0: now */
	uint32_t root_uid, root_gid;   /* owner of / and lost+found */
};

/* The FS tree's first items (the root directory, lost+found), made by a
 * layer above this one (newfs.c) through its own encoders; t is the
 * format's time. 0 or -errno. */
typedef int (*mfs_format_tree_fn)(struct mfs_vol *v,
				  const struct mfs_format_opts *opts,
				  uint64_t t);

/* Create and format an image at path: superblocks, an empty FREE tree
 * holding all other blocks, an FS tree holding what tree() inserts. The
 * image is left closed and clean. -errno on error; a failure before the
 * image is written leaves any existing file untouched. Programs and tests
 * call mfs_format (newfs.h), which passes the root directory. */
int mfs_vol_format(const char *path, const struct mfs_format_opts *opts,
		   mfs_format_tree_fn tree);

#define MFS_VOL_RDONLY 0x1u
#define MFS_VOL_NOLOCK 0x2u
/* For fsck: do not read the FREE tree into the allocator (it may be
 * damaged) and do not commit at open. The allocator starts empty; the
 * caller fills it (mfs_alloc_load) before changing anything, and must not
 * commit or mfs_vol_close() a read-write volume before it has. */
#define MFS_VOL_FSCK 0x4u
/* Open read-write without writing anything yet: the first commit (or
 * mfs_vol_mark) marks the image in use, and a close before that writes
 * nothing, so a program that fails after opening (the kernel refusing a
 * mount option) leaves the image byte for byte as it was. */
#define MFS_VOL_DEFER 0x8u
/* Punch freed runs of at least MFS_DISCARD_MIN blocks out of the image
 * file when they become reusable (invariant (2) in txn.c: no slot can
 * reference them then), giving the host its space back. */
#define MFS_VOL_DISCARD 0x10u
/* MFS_IMAGE_WAIT: wait for a lock held by a daemon closing the image. */
#define MFS_VOL_WAIT 0x20u
#define MFS_DISCARD_MIN 16u

/* Open a volume: read both superblock slots, take the valid one with the
 * highest generation, load the allocator from its FREE tree. Read-write
 * opens mark the image dirty (a commit) unless MFS_VOL_RDONLY or
 * MFS_VOL_DEFER. Errors:
 * -EBUSY (locked), -EINVAL (not an mmapfs image: bad magic), -EUCLEAN (no
 * valid superblock, or damaged trees), -EPROTONOSUPPORT (unknown version or
 * incompatible feature), -errno. */
int mfs_vol_open(const char *path, unsigned flags, struct mfs_vol **out);

/* Mark a read-write volume opened with MFS_VOL_DEFER in use (a commit);
 * nothing to do if it already is or the volume is read-only. */
int mfs_vol_mark(struct mfs_vol *v);

/* Commit the running transaction if it changed anything. 0 or -errno; on
 * an I/O error the volume turns read-only (sticky error). */
int mfs_txn_commit(struct mfs_vol *v);

/* Throw away every change since the last commit (file data written in
 * place into committed extents stays). */
int mfs_txn_abort(struct mfs_vol *v);

/* Commit, mark clean (unless read-only or in error), close. A volume
 * opened with MFS_VOL_DEFER and never committed is closed untouched. */
int mfs_vol_close(struct mfs_vol *v);

/* Close without committing or marking clean: what a crash leaves. */
void mfs_vol_close_dirty(struct mfs_vol *v);

/* Decode a superblock slot into *sb. Returns 0, -EINVAL (bad magic),
 * -EUCLEAN (bad crc or fields), -EPROTONOSUPPORT. */
int mfs_super_decode(const void *slot, uint64_t image_blocks, unsigned slotno,
		     struct mfs_super *sb);
void mfs_super_encode(const struct mfs_super *sb, unsigned slotno, void *slot);

#endif
