/* SPDX-License-Identifier: MIT */
/*
 * vol.h — the volume: the state shared by the btree and txn layers.
 *
 * A volume is one open image with its allocator, the committed superblock
 * and the roots of the running transaction. There is always exactly one
 * running transaction; mfs_txn_commit() makes it durable and starts the
 * next one.
 */
#ifndef MFS_VOL_H
#define MFS_VOL_H

#include <stdbool.h>
#include <stdint.h>

#include "mmapfs/format.h"

struct mfs_image;
struct mfs_alloc;

/* A tree root, decoded. */
struct mfs_root {
	uint64_t block;
	uint64_t generation;
	uint8_t level;
};

/* The superblock, decoded into host order. */
struct mfs_super {
	uint32_t version;
	uint32_t feature_compat, feature_ro_compat, feature_incompat;
	uint32_t state;
	uint64_t generation;
	uint64_t block_count;
	uint64_t free_blocks;
	uint64_t inode_count;
	uint64_t next_ino;
	uint64_t hash_seed[2];
	uint64_t mkfs_time;
	uint64_t commit_time;
	uint64_t mount_count;
	struct mfs_root roots[MFS_TREE_COUNT];
	uint8_t uuid[MFS_UUID_SIZE];
	uint8_t label[MFS_LABEL_MAX];
};

struct mfs_vol {
	struct mfs_image *img;
	struct mfs_alloc *alloc;
	struct mfs_super sb;       /* committed state (what the disk holds) */
	unsigned cur_slot;         /* slot holding sb */
	uint64_t gen;              /* generation of the running transaction */
	struct mfs_root roots[MFS_TREE_COUNT]; /* running roots */
	/* Running counters; copied into the next superblock. */
	uint64_t inode_count;
	uint64_t next_ino;
	uint64_t seq;              /* bumped on every tree change (cursors) */
	uint64_t meta_goal;        /* where to look for the next node block */
	uint64_t reserve;          /* blocks data allocations leave free, for
				    * tree changes (deletes); set by fs.c */
	/* Committed nodes already verified (checksum and items), so that hot
	 * paths do not checksum the same block again: one word per slot, a
	 * hash of (block, generation), read and written atomically so that
	 * concurrent readers may share it; see btree.c. */
	uint64_t *vcache;
	bool readonly;
	bool dirty;                /* the running transaction changed something */
	bool discard;              /* MFS_VOL_DISCARD */
	bool marked;               /* a commit of this open has marked the image
				    * in use (state DIRTY, mount_count + 1) */
	int error;                 /* sticky -errno: corruption or I/O error */
	bool fatal;                /* error came from a failed sync: permanent */
};

/* Record corruption found at func:line: logs it, sets the sticky error the
 * first time, and returns -EUCLEAN for the caller to pass up. */
int mfs_vol_corrupt(struct mfs_vol *v, const char *func, int line,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define MFS_CORRUPT(v, ...) mfs_vol_corrupt((v), __func__, __LINE__, __VA_ARGS__)

/* Record that a sync of the image failed (what: "sync of file data", ...):
 * logs it once, sets the sticky error and makes it permanent (fatal: not
 * even mfs_txn_abort clears it, since the kernel may have dropped dirty
 * pages and a later sync could claim durability for data that is gone).
 * Returns rc. */
int mfs_vol_sync_failed(struct mfs_vol *v, int rc, const char *what);

#endif
