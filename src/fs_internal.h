/* SPDX-License-Identifier: MIT */
/*
 * fs_internal.h — what the filesystem core shows the tests and nothing
 * else: the volume under an open filesystem (for the image's sync hook and
 * the power-loss simulation of tests/test_crash_fs.c).
 */
#ifndef MFS_FS_INTERNAL_H
#define MFS_FS_INTERNAL_H

struct mfs_fs;
struct mfs_vol;

struct mfs_vol *mfs_fs_vol(struct mfs_fs *fs);

#endif
