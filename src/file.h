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

/*
 * All functions return 0 or a negative errno; -EUCLEAN (through
 * MFS_CORRUPT) for a malformed extent item. Changes need a writable volume
 * without a sticky error (-EROFS, or that error). Committed data is changed
 * in place (overwrites, zeroing of partial blocks, writes into unwritten
 * extents) and stays so after mfs_txn_abort or a crash; the map, size and
 * block count roll back.
 */

/* See mfs_read in mmapfs.h. off >= size gives *bytes = 0; -EINVAL if
 * iovmax < (len >> 12) + 2. Needs only a read lock. */
int mfs_file_read(struct mfs_vol *v, const struct mfs_inode *in, uint64_t off,
		  size_t len, struct iovec *iov, unsigned iovmax,
		  unsigned *iovcnt, size_t *bytes);
/* The image blocks holding written data of the file blocks that cover
 * [off, off+len) (clipped to the size), as byte ranges of the image: calls
 * fn(arg, image offset, bytes) once per run of contiguous blocks, in file
 * order; holes and unwritten extents are skipped. Stops when fn returns
 * non-zero. Needs only a read lock. */
int mfs_file_data_runs(struct mfs_vol *v, const struct mfs_inode *in,
		       uint64_t off, uint64_t len,
		       int (*fn)(void *arg, uint64_t img_off, uint64_t bytes),
		       void *arg);
/* Copy len bytes from buf to off, allocating blocks (near the file's
 * previous blocks, merging adjacent extents), growing in->size. A short
 * write returns 0 with *written < len: on ENOSPC after some bytes, or at
 * MFS_FILE_SIZE_MAX (-EFBIG when off is at or past it). -ENOSPC when
 * nothing fits. buf may point into the mapping (mfs_file_copy does). */
int mfs_file_write(struct mfs_vol *v, struct mfs_inode *in, uint64_t off,
		   const void *buf, size_t len, size_t *written);
/* Set the size (-EFBIG past MFS_FILE_SIZE_MAX). Shrinking, or keeping the
 * size, frees every block past the end (preallocated ones too, as ext4)
 * and zeroes the tail of the last partial block; growing leaves a hole. */
int mfs_file_truncate(struct mfs_vol *v, struct mfs_inode *in, uint64_t size);
/*
 * fallocate as Linux/ext4: mode 0 and FALLOC_FL_KEEP_SIZE map unwritten
 * blocks to the holes of the range (past the end too with KEEP_SIZE);
 * PUNCH_HOLE|KEEP_SIZE frees whole blocks and zeroes partial ones, not past
 * the block holding the end of file; ZERO_RANGE (|KEEP_SIZE) zeroes partial
 * blocks and makes whole blocks unwritten (holes preallocated). Without
 * KEEP_SIZE the size grows to off+len. Errors in vfs_fallocate's order:
 * -EINVAL for len 0 or off/len past INT64_MAX; -EOPNOTSUPP for any other
 * mode, PUNCH_HOLE without KEEP_SIZE, PUNCH_HOLE with ZERO_RANGE; -EFBIG
 * past MFS_FILE_SIZE_MAX.
 */
int mfs_file_fallocate(struct mfs_vol *v, struct mfs_inode *in, int mode,
		       uint64_t off, uint64_t len);
/* SEEK_DATA / SEEK_HOLE. Unwritten (preallocated) extents read as zeros
 * and count as holes, as ext4 reports them once written back. The end of
 * the file is a hole; off >= size gives -ENXIO; other whence -EINVAL. */
int mfs_file_seek(struct mfs_vol *v, const struct mfs_inode *in, uint64_t off,
		  int whence, uint64_t *result);
/* Copy a range between files (or within one: pass the same struct, ranges
 * must not overlap, else -EINVAL), clipped to the source size; *copied is
 * the byte count (short only on ENOSPC). Holes and unwritten blocks of the
 * source become holes in dst. */
int mfs_file_copy(struct mfs_vol *v, const struct mfs_inode *src,
		  uint64_t soff, struct mfs_inode *dst, uint64_t doff,
		  size_t len, size_t *copied);
/* Free all data of the inode (for removal): every EXTENT item goes, the
 * blocks are freed, in->blocks becomes 0; in->size is left alone. */
int mfs_file_free_all(struct mfs_vol *v, struct mfs_inode *in);
/* Blocks that writes and preallocation leave free, so that removals,
 * writes into preallocated blocks and the commit still find tree blocks on
 * a full volume: statfs should report f_bavail without them. */
uint64_t mfs_file_reserved(struct mfs_vol *v);

#endif
