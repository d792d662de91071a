/* SPDX-License-Identifier: MIT */
/*
 * inode.h — inode items: load, store, create, remove.
 *
 * Layer 6. Calls btree and txn (vol). The in-memory struct mfs_inode is a
 * decoded copy of the INODE item; callers change it and write it back with
 * mfs_inode_write. Not thread-safe: the fs layer holds its lock.
 */
#ifndef MFS_INODE_H
#define MFS_INODE_H

#include <stdint.h>
#include <time.h>

#include "vol.h"

struct mfs_inode {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint64_t size;
	uint64_t blocks;      /* 512-byte sectors of data blocks allocated */
	uint64_t generation;
	uint64_t rdev;
	uint64_t flags;
	uint64_t parent;      /* directories: parent directory inode */
	struct timespec atime, mtime, ctime, btime;
};

/* Read inode ino: 0, -ENOENT, or -EUCLEAN for a malformed item. */
int mfs_inode_read(struct mfs_vol *v, uint64_t ino, struct mfs_inode *in);
/* Write it back (the item must exist). */
int mfs_inode_write(struct mfs_vol *v, const struct mfs_inode *in);
/* Insert a new inode item with a fresh inode number (in->ino is set) and
 * generation; counts it in v->inode_count. */
int mfs_inode_create(struct mfs_vol *v, struct mfs_inode *in);
/* Insert a new inode item under in->ino as it is (mkfs's root directory,
 * whose number is fixed); counts it in v->inode_count. -EEXIST if taken. */
int mfs_inode_insert(struct mfs_vol *v, const struct mfs_inode *in);
/* Delete every item of the inode (data extents freed via the file layer,
 * xattrs, inline items, the inode item, an orphan entry). */
int mfs_inode_remove(struct mfs_vol *v, struct mfs_inode *in);

void mfs_inode_now(struct timespec *ts);

#endif
