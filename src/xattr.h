/* SPDX-License-Identifier: MIT */
/*
 * xattr.h — extended attributes.
 *
 * Layer 6. Calls btree (and alloc for a free-space check). XATTR items of
 * the FS tree; see docs/format.md §8.6. Semantics and errors as
 * mfs_setxattr & co. in mmapfs.h; the fs layer checks that the inode
 * exists, updates ctime and holds the lock.
 *
 * Names: "user.*", "trusted.*", "security.*" (non-empty rest),
 * "system.posix_acl_access", "system.posix_acl_default"; anything else
 * -EOPNOTSUPP; empty or over 255 bytes -ERANGE. A set or remove either
 * happens whole or fails before changing anything (-ENOSPC when free
 * blocks are short), unless the volume turns read-only on the way.
 * Damaged items give -EUCLEAN (the volume's sticky error is set).
 */
#ifndef MFS_XATTR_H
#define MFS_XATTR_H

#include <stddef.h>
#include <stdint.h>

#include "vol.h"

/* Layout (format.md 8.6): value bytes chunk 0 holds for a value of total
 * bytes and a name of name_len bytes, and the number of chunks in all. */
size_t mfs_xattr_first_len(uint32_t total, size_t name_len);
unsigned mfs_xattr_chunks(uint32_t total, size_t name_len);

int mfs_xattr_set(struct mfs_vol *v, uint64_t ino, const char *name,
		  const void *value, size_t size, int flags);
/* *len is the value's length; with size 0 nothing is copied; -ERANGE if
 * size is non-zero and too small. */
int mfs_xattr_get(struct mfs_vol *v, uint64_t ino, const char *name,
		  void *buf, size_t size, size_t *len);
/* Names, each NUL-terminated, in no particular order; *len is the length
 * of the whole list; with size 0 nothing is copied; -ERANGE if size is
 * non-zero and too small. */
int mfs_xattr_list(struct mfs_vol *v, uint64_t ino, char *buf, size_t size,
		   size_t *len);
int mfs_xattr_remove(struct mfs_vol *v, uint64_t ino, const char *name);
/* Delete all xattrs of an inode (for removal). */
int mfs_xattr_remove_all(struct mfs_vol *v, uint64_t ino);

#endif
