/* SPDX-License-Identifier: MIT */
/*
 * newfs.c — format an image (contract in newfs.h).
 *
 * Layer 6. txn.c builds the volume (superblocks, allocator, empty trees,
 * the commit); this file gives its FS tree the first two directories,
 * through inode.c and dir.c.
 */
#include "newfs.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>

#include "dir.h"
#include "inode.h"
#include "mmapfs/format.h"

/* A directory inode of mkfs: one block of size, as small ext4 directories
 * report, every time the format's. */
static struct mfs_inode new_dir(uint64_t ino, uint32_t mode, uint32_t nlink,
				const struct mfs_format_opts *o, uint64_t t)
{
	struct mfs_inode in;

	memset(&in, 0, sizeof(in));
	in.ino = ino;
	in.mode = mode;
	in.uid = o->root_uid;
	in.gid = o->root_gid;
	in.nlink = nlink;
	in.size = MFS_BLOCK_SIZE;
	in.generation = 1;
	in.parent = MFS_ROOT_INO;
	in.atime.tv_sec = in.mtime.tv_sec = (time_t)t;
	in.ctime.tv_sec = in.btime.tv_sec = (time_t)t;
	return in;
}

static int root_tree(struct mfs_vol *v, const struct mfs_format_opts *o,
		     uint64_t t)
{
	static const char lf[] = "lost+found";
	struct mfs_inode root = new_dir(MFS_ROOT_INO, 040755, 3, o, t);
	struct mfs_inode lost = new_dir(MFS_FIRST_INO, 040700, 2, o, t);
	int rc;

	rc = mfs_inode_insert(v, &root);
	if (!rc)
		rc = mfs_inode_insert(v, &lost);
	if (!rc)
		rc = mfs_dir_add(v, MFS_ROOT_INO, lf, sizeof(lf) - 1,
				 MFS_FIRST_INO, DT_DIR);
	v->next_ino = MFS_FIRST_INO + 1;
	return rc;
}

int mfs_format(const char *path, const struct mfs_format_opts *opts)
{
	return mfs_vol_format(path, opts, root_tree);
}
