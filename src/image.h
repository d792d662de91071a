/* SPDX-License-Identifier: MIT */
/*
 * image.h — the image layer: one image file, locked, mapped, grown, synced.
 *
 * Layer 1 (bottom). The only layer that makes system calls on the image.
 * Knows nothing of the format beyond the block size.
 *
 * The whole file is mapped MAP_SHARED at a fixed address inside a larger
 * PROT_NONE reservation of virtual address space, so growing the file never
 * moves the mapping: pointers into it stay valid for the image's lifetime.
 *
 * Host space: the image is normally sparse. Writing through the mapping into
 * a hole when the host disk is full raises SIGBUS, so every block must be
 * reserved with mfs_image_reserve() (fallocate) before anything writes it.
 */
#ifndef MFS_IMAGE_H
#define MFS_IMAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "mmapfs/format.h"

#define MFS_IMAGE_RDONLY 0x1u   /* O_RDONLY, PROT_READ; shared lock */
#define MFS_IMAGE_NOLOCK 0x2u   /* take no lock (tests that open copies) */
/* A lock held by a process with no FUSE mount of the image (a daemon
 * still closing it after umount) is waited for, up to 30 s. */
#define MFS_IMAGE_WAIT 0x4u

/* Largest image we accept: 2^34 blocks = 64 TiB. */
#define MFS_IMAGE_MAX_BYTES (1ULL << 46)
/* Smallest: 64 blocks (256 KiB). */
#define MFS_IMAGE_MIN_BYTES (64ULL * MFS_BLOCK_SIZE)

struct mfs_image {
	int fd;
	char *path;
	uint8_t *base;       /* start of the mapping */
	uint64_t size;       /* bytes mapped == file size, a multiple of 4096 */
	uint64_t reserved;   /* bytes of address space reserved at base */
	unsigned flags;      /* MFS_IMAGE_* */
	/* One bit per 1 MiB chunk of the file: set when host space for the
	 * whole chunk is known to be allocated (by fallocate or by
	 * mfs_image_reserve). Lets reserve() skip the syscall. */
	uint8_t *chunk_map;
	uint64_t chunk_count;
	/* Test hook: called after every successful sync, before it returns.
	 * The power-loss tests snapshot "the durable state" here. */
	void (*sync_hook)(struct mfs_image *img, void *arg);
	void *sync_hook_arg;
	/* Fault injection for tests: while non-zero, each sync fails with
	 * -EIO and decrements it. */
	unsigned fail_syncs;
};

/*
 * Open an existing image. The file size must be a non-zero multiple of the
 * block size and within the limits above. Takes flock(LOCK_EX|LOCK_NB)
 * (LOCK_SH with MFS_IMAGE_RDONLY); if another process holds a conflicting
 * lock, returns -EBUSY. Returns 0 and *out, or -errno.
 */
int mfs_image_open(const char *path, unsigned flags, struct mfs_image **out);
/* Undo the octal escapes of a /proc/self/mountinfo field (\040 for a
 * space) in place; also for the daemon, which finds its mount there. */
void mfs_image_unescape_mountinfo(char *s);

/*
 * Create (or, with force, truncate an existing regular file to) an image of
 * size bytes (a multiple of the block size, within the limits), sparse
 * unless prealloc, and open it as mfs_image_open() would. The lock is taken
 * before the file is changed: a locked image is refused with -EBUSY and left
 * untouched. If the file exists and !force, returns -EEXIST.
 * Returns 0 and *out, or -errno.
 */
int mfs_image_create(const char *path, uint64_t size, bool force, bool prealloc,
		     struct mfs_image **out);

/* Unmap, unlock, close, free. Does not sync. NULL is a no-op. */
void mfs_image_close(struct mfs_image *img);

/* Pointer to block blk inside the mapping, or NULL if blk is outside the
 * image. Never fails otherwise. */
static inline void *mfs_image_block(const struct mfs_image *img, uint64_t blk)
{
	if (blk >= img->size >> MFS_BLOCK_SHIFT)
		return NULL;
	return img->base + (blk << MFS_BLOCK_SHIFT);
}

static inline uint64_t mfs_image_blocks(const struct mfs_image *img)
{
	return img->size >> MFS_BLOCK_SHIFT;
}

/* Grow the file and the mapping to new_size bytes (multiple of the block
 * size, >= current size). The base address does not change. -EFBIG beyond
 * the reservation or the limit; -errno from ftruncate. */
int mfs_image_grow(struct mfs_image *img, uint64_t new_size);

/* Make sure host disk space backs [off, off+len) (rounded out to whole
 * chunks), so that writes through the mapping cannot SIGBUS. Returns 0,
 * -ENOSPC when the host is full, or -errno. */
int mfs_image_reserve(struct mfs_image *img, uint64_t off, uint64_t len);

/* What the host can still give the image: *host_free is the space the
 * host filesystem has left for an unprivileged writer (statvfs f_bavail),
 * *backed the bytes of the image it already holds (st_blocks), which
 * writes into them do not need again. Two system calls; any thread.
 * Returns 0 or -errno. */
int mfs_image_host_space(const struct mfs_image *img, uint64_t *host_free,
			 uint64_t *backed);

/* Give the host back the space of [off, off+len), which holds nothing
 * anyone will read (free blocks): punch a hole (the range reads as zeros
 * afterwards) and forget the reservation of every chunk it touches, so
 * that mfs_image_reserve() allocates host space again before the blocks
 * are reused. Returns 0, -EOPNOTSUPP (the host cannot punch), -EROFS or
 * -errno. */
int mfs_image_discard(struct mfs_image *img, uint64_t off, uint64_t len);

/* Durably write every dirty page of the image (fdatasync). Then calls the
 * sync hook. Returns 0 or -errno (-EIO, -ENOSPC). */
int mfs_image_sync(struct mfs_image *img);

/* Durably write the pages of [off, off+len) (msync MS_SYNC), then calls the
 * sync hook. Returns 0 or -errno. */
int mfs_image_sync_range(struct mfs_image *img, uint64_t off, uint64_t len);

/*
 * Drop the image's copy of [off, off+len) (rounded in to whole pages) from
 * memory, for data a caller has copied elsewhere and will not read soon:
 * unmaps the range from the mapping (MADV_DONTNEED) and evicts its clean
 * pages from the page cache (POSIX_FADV_DONTNEED). Never loses data: on a
 * shared mapping MADV_DONTNEED moves a page's dirty bit to the page cache,
 * and FADV_DONTNEED leaves dirty pages (it starts their writeback, as the
 * kernel would anyway), pages under writeback and pages mapped elsewhere.
 * Nor does it evict a large folio that extends past the range: drop ranges
 * that cover whole folios to get everything back. Pointers into the range
 * stay valid; the next access reads the page again. Safe against any other
 * use of the range from other threads. Best effort: returns 0 or -errno
 * (for the tests), callers need not care.
 */
int mfs_image_drop(struct mfs_image *img, uint64_t off, uint64_t len);

/*
 * Start writing back the dirty pages of [off, off+len) (rounded out to
 * whole pages) to the image file, and with wait, wait for all of their
 * writeback first and last (sync_file_range): afterwards, the range's pages
 * are clean unless written again. Not durable: neither the host's metadata
 * nor its disk cache is flushed. For memory, not for commits. Returns 0 or
 * -errno.
 */
int mfs_image_writeback(struct mfs_image *img, uint64_t off, uint64_t len,
			bool wait);

/*
 * How the kernel reads the mapping ahead on a page fault: random (only the
 * page touched) or normal (the device's read-around window around it,
 * read_ahead_kb: up to megabytes). Opening reads a handful of scattered
 * blocks, one after another, each naming the next: with read-around each
 * of them reads megabytes nobody asked for. Applies to the whole image as
 * mapped now. Best effort: returns 0 or -errno (for the tests).
 */
int mfs_image_advise(struct mfs_image *img, bool random);

#endif
