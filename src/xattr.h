/* SPDX-License-Identifier: MIT */
/*
 * xattr.h — extended attributes.
 *
 * Layer 6. Calls btree. XATTR items of the FS tree; see docs/format.md.
 * Semantics and errors as mfs_setxattr & co. in mmapfs.h; the fs layer
 * updates ctime and holds the lock.
 */
#ifndef MFS_XATTR_H
#define MFS_XATTR_H

#include <stddef.h>
#include <stdint.h>

#include "vol.h"

int mfs_xattr_set(struct mfs_vol *v, uint64_t ino, const char *name,
		  const void *value, size_t size, int flags);
int mfs_xattr_get(struct mfs_vol *v, uint64_t ino, const char *name,
		  void *buf, size_t size, size_t *len);
int mfs_xattr_list(struct mfs_vol *v, uint64_t ino, char *buf, size_t size,
		   size_t *len);
int mfs_xattr_remove(struct mfs_vol *v, uint64_t ino, const char *name);
/* Delete all xattrs of an inode (for removal). */
int mfs_xattr_remove_all(struct mfs_vol *v, uint64_t ino);

#endif
