/* SPDX-License-Identifier: MIT */
/*
 * newfs.h — format an image: a volume (txn) with its first directories.
 *
 * Layer 6. Calls txn (mfs_vol_format), inode and dir: the root directory
 * and lost+found are written with the same encoders every later inode and
 * entry goes through, so that the format's knowledge of INODE and DIRENT
 * items stays in inode.c and dir.c.
 */
#ifndef MFS_NEWFS_H
#define MFS_NEWFS_H

#include "txn.h"

/* Create and format an image at path (struct mfs_format_opts in txn.h):
 * superblocks, the FREE tree, the FS tree with the root directory (inode
 * 1, mode 0755) and lost+found (inode 2, mode 0700), both owned by
 * opts->root_uid:root_gid. The image is left closed and clean. -errno on
 * error; a failure before the image is written leaves any existing file
 * untouched. */
int mfs_format(const char *path, const struct mfs_format_opts *opts);

#endif
