/* SPDX-License-Identifier: MIT */
/*
 * dir.h — directory entries.
 *
 * Layer 6. Calls btree and siphash. All knowledge of the DIRENT item
 * layout is here. An entry lives in the item (dir, MFS_ITEM_DIRENT, h) with
 * h = mfs_dir_hash(name); names whose hashes collide share one item.
 * Not thread-safe: the fs layer holds its lock.
 */
#ifndef MFS_DIR_H
#define MFS_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "vol.h"

/* The entry type (de_type, a DT_* value) of an inode of this mode. */
static inline uint8_t mfs_dir_type(uint32_t mode)
{
	return (uint8_t)((mode & 0170000u) >> 12); /* DT_* == S_IFMT >> 12 */
}

/* The key offset (and readdir cookie) of a name: >= 3, < 2^63. */
uint64_t mfs_dir_hash(const struct mfs_vol *v, const char *name, size_t len);

/* 0 and *ino, *type (DT_*), or -ENOENT. */
int mfs_dir_lookup(struct mfs_vol *v, uint64_t dir, const char *name,
		   size_t len, uint64_t *ino, uint8_t *type);
/* -EEXIST if the name is there. */
int mfs_dir_add(struct mfs_vol *v, uint64_t dir, const char *name, size_t len,
		uint64_t ino, uint8_t type);
/* Point an existing entry at another inode. -ENOENT if absent. */
int mfs_dir_set(struct mfs_vol *v, uint64_t dir, const char *name, size_t len,
		uint64_t ino, uint8_t type);
/* -ENOENT if absent. */
int mfs_dir_remove(struct mfs_vol *v, uint64_t dir, const char *name,
		   size_t len);
/* 1 if the directory has no entries, 0 if it has, or -errno. */
int mfs_dir_is_empty(struct mfs_vol *v, uint64_t dir);

/* Call cb for each entry with hash >= start, in hash order; cb returns
 * non-zero to stop (that value is returned). All entries of one item are
 * passed with the same hash. */
typedef int (*mfs_dir_cb)(void *ctx, const char *name, size_t len,
			  uint64_t ino, uint8_t type, uint64_t hash);
int mfs_dir_iterate(struct mfs_vol *v, uint64_t dir, uint64_t start,
		    mfs_dir_cb cb, void *ctx);

#endif
