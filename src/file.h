/* SPDX-License-Identifier: MIT */
/*
 * file.h — file data: extents, read, write, truncate, fallocate, seek, copy.
 *
 * Layer 6. Calls btree, alloc, image. Works on a decoded struct mfs_inode:
 * functions update in->size and in->blocks (never the times or mode) and
 * the caller writes the inode back. Not thread-safe: the fs layer holds
 * its lock (a read lock is enough for mfs_file_read and mfs_file_seek).
 *
 * Extents are EXTENT items (ino, MFS_ITEM_EXTENT, first file block) ->
 * struct mfs_disk_extent (docs/format.md). Blocks of new data always come
 * from the allocator (free in the committed state); data of committed
 * extents is overwritten in place (data=ordered, see docs/design.md).
 */
#ifndef MFS_FILE_H
#define MFS_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "inode.h"
#include "vol.h"

/* See mfs_read in mmapfs.h. off >= size gives *bytes = 0. */
int mfs_file_read(struct mfs_vol *v, const struct mfs_inode *in, uint64_t off,
		  size_t len, struct iovec *iov, unsigned iovmax,
		  unsigned *iovcnt, size_t *bytes);
/* Copy len bytes from buf to off, allocating blocks (near the file's
 * previous blocks, merging adjacent extents), growing in->size. A partial
 * write is possible on ENOSPC: *written says how much went in. -EFBIG past
 * MFS_FILE_SIZE_MAX. */
int mfs_file_write(struct mfs_vol *v, struct mfs_inode *in, uint64_t off,
		   const void *buf, size_t len, size_t *written);
/* Set the size: shrinking frees whole blocks past the end and zeroes the
 * tail of the last partial block; growing leaves a hole. */
int mfs_file_truncate(struct mfs_vol *v, struct mfs_inode *in, uint64_t size);
/* fallocate modes as in mmapfs.h. */
int mfs_file_fallocate(struct mfs_vol *v, struct mfs_inode *in, int mode,
		       uint64_t off, uint64_t len);
/* SEEK_DATA / SEEK_HOLE. Unwritten (preallocated) extents read as zeros
 * and count as holes, as ext4 reports them once written back. The end of
 * the file is a hole; off >= size gives -ENXIO. */
int mfs_file_seek(struct mfs_vol *v, const struct mfs_inode *in, uint64_t off,
		  int whence, uint64_t *result);
/* Copy a range between files (or within one, non-overlapping). */
int mfs_file_copy(struct mfs_vol *v, const struct mfs_inode *src,
		  uint64_t soff, struct mfs_inode *dst, uint64_t doff,
		  size_t len, size_t *copied);
/* Free all data of the inode (for removal). */
int mfs_file_free_all(struct mfs_vol *v, struct mfs_inode *in);

#endif
