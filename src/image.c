/* SPDX-License-Identifier: MIT */
/*
 * image.c — the image layer (layer 1, bottom): open, lock, map, grow,
 * reserve host space for, and sync the one image file. See image.h.
 *
 * May call: libc and the kernel, format.h (block size only), log.h.
 * It is the only file that makes system calls on the image.
 *
 * Address space. The file is mapped MAP_SHARED|MAP_FIXED at the start of a
 * larger PROT_NONE, MAP_NORESERVE anonymous reservation. Growing maps the new
 * tail over the reservation, so the base never moves. The reservation costs
 * no memory, only address space; when the kernel refuses a large one
 * (AddressSanitizer's shadow, ulimit -v, vm.max_map_count) we settle for a
 * smaller one, down to exactly the file size, and grow() then says -EFBIG
 * past it.
 *
 * Host space. chunk_map has one bit per 1 MiB chunk; a set bit means the
 * whole chunk (clipped to the file size) is allocated on the host, so
 * writing through the mapping there cannot raise SIGBUS. Bits start clear on
 * open (nothing is known) and all set after a preallocated create.
 *
 * Threads: nothing here locks. grow() and reserve() change *img; the caller
 * serializes them against every other call on the same image. sync(),
 * sync_range() and pointers from mfs_image_block() may be used from any
 * number of threads at once otherwise.
 */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define CHUNK_SHIFT 20                       /* 1 MiB host-space chunks */
#define CHUNK_SIZE (1ULL << CHUNK_SHIFT)
#define RESERVE_MIN (64ULL << 30)            /* address space: >= 64 GiB */

static uint64_t page_size(void)
{
	long pg = sysconf(_SC_PAGESIZE);

	return pg > 0 ? (uint64_t)pg : MFS_BLOCK_SIZE;
}

static uint64_t round_up(uint64_t x, uint64_t align)
{
	return (x + align - 1) / align * align;
}

static uint64_t chunks_for(uint64_t size)
{
	return (size + CHUNK_SIZE - 1) >> CHUNK_SHIFT;
}

static bool chunk_test(const struct mfs_image *img, uint64_t c)
{
	return img->chunk_map[c >> 3] & (1u << (c & 7));
}

static void chunk_set(struct mfs_image *img, uint64_t c)
{
	img->chunk_map[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static void chunk_clear(struct mfs_image *img, uint64_t c)
{
	img->chunk_map[c >> 3] &= (uint8_t)~(1u << (c & 7));
}

/* fallocate(2) retried on EINTR. Returns 0 or -errno. */
static int falloc(int fd, int mode, uint64_t off, uint64_t len)
{
	while (fallocate(fd, mode, (off_t)off, (off_t)len) != 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/*
 * Is size acceptable for an image? Logs why not. Returns 0, -EINVAL (zero,
 * not a multiple of the block size, below the minimum) or -EFBIG.
 */
static int check_size(const char *path, uint64_t size)
{
	if (size == 0 || size % MFS_BLOCK_SIZE != 0) {
		mfs_log(MFS_LOG_ERR, "%s: size %llu is not a non-zero multiple of %u bytes",
			path, (unsigned long long)size, MFS_BLOCK_SIZE);
		return -EINVAL;
	}
	if (size < MFS_IMAGE_MIN_BYTES) {
		mfs_log(MFS_LOG_ERR, "%s: size %llu is below the minimum of %llu bytes",
			path, (unsigned long long)size,
			(unsigned long long)MFS_IMAGE_MIN_BYTES);
		return -EINVAL;
	}
	if (size > MFS_IMAGE_MAX_BYTES) {
		mfs_log(MFS_LOG_ERR, "%s: size %llu is above the maximum of %llu bytes",
			path, (unsigned long long)size,
			(unsigned long long)MFS_IMAGE_MAX_BYTES);
		return -EFBIG;
	}
	return 0;
}

/*
 * Open path without blocking (a FIFO would block) and check that it is a
 * regular file. Returns an fd with FD_CLOEXEC and O_NONBLOCK cleared, or
 * -errno; a directory or any other non-regular file is -EINVAL.
 */
static int open_regular(const char *path, int oflags, mode_t mode)
{
	struct stat st;
	int fd, err;

	fd = open(path, oflags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, mode);
	if (fd < 0) {
		if (errno != EISDIR)
			return -errno;
		mfs_log(MFS_LOG_ERR, "%s: not a regular file", path);
		return -EINVAL;
	}
	if (fstat(fd, &st) != 0) {
		err = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		mfs_log(MFS_LOG_ERR, "%s: not a regular file", path);
		err = -EINVAL;
		goto out_close;
	}
	err = fcntl(fd, F_GETFL);
	if (err < 0 || fcntl(fd, F_SETFL, err & ~O_NONBLOCK) != 0) {
		err = -errno;
		goto out_close;
	}
	return fd;

out_close:
	close(fd);
	return err;
}

/* How long opening an image waits for a lock whose holder has no mount
 * of it (see lock_image), unless MMAPFS_LOCK_WAIT_MS says otherwise, and
 * how often it looks again. */
#define LOCK_WAIT_MS 30000u
#define LOCK_WAIT_MAX_MS 3600000u
#define LOCK_POLL_MS 10u

static unsigned lock_wait_ms(void)
{
	const char *s = getenv("MMAPFS_LOCK_WAIT_MS");
	char *end;
	unsigned long v;

	if (!s || !*s)
		return LOCK_WAIT_MS;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > LOCK_WAIT_MAX_MS)
		return LOCK_WAIT_MS;
	return (unsigned)v;
}

/* CLOCK_MONOTONIC in milliseconds: the wait is measured, not counted in
 * polls (each poll also reads the mount table). */
static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void mfs_image_unescape_mountinfo(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

/*
 * Whether a FUSE file system whose source is abs (an absolute path) is
 * mounted in this mount namespace: the daemon names its mount after the
 * image's absolute path (-o fsname). True too when the table cannot be
 * read, so that the caller does not wait for nothing.
 */
static bool fuse_mount_of(const char *abs)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *sep, *fstype, *source, *save;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return true;
	while (!found && getline(&line, &cap, f) > 0) {
		/* "... - FSTYPE SOURCE OPTIONS" */
		sep = strstr(line, " - ");
		if (!sep)
			continue;
		fstype = strtok_r(sep + 3, " \n", &save);
		source = fstype ? strtok_r(NULL, " \n", &save) : NULL;
		if (!source || strncmp(fstype, "fuse", 4) != 0)
			continue;
		mfs_image_unescape_mountinfo(source);
		found = strcmp(source, abs) == 0;
	}
	free(line);
	fclose(f);
	return found;
}

/*
 * flock without blocking: 0, -EBUSY (with a log line) or -errno. With
 * wait, a lock held by a process that has no mount of the image is waited
 * for, up to lock_wait_ms(): after umount(8) returns, the daemon that served
 * the mount still commits and closes the image, and a mount or a check
 * started right then (`umount /mnt && fsck.mmapfs img`, as scripts do)
 * found it locked, every time. A mounted image is refused at once.
 */
static int lock_image(int fd, const char *path, bool shared, bool wait)
{
	char *abs = NULL;
	uint64_t start = 0, waited = 0, limit = wait ? lock_wait_ms() : 0;
	int rc = 0;

	while (flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			rc = -errno;
			break;
		}
		if (wait && !abs) {
			abs = realpath(path, NULL);
			start = now_ms();
		}
		if (abs)
			waited = now_ms() - start;
		if (!abs || waited >= limit || fuse_mount_of(abs)) {
			mfs_log(MFS_LOG_ERR,
				"%s: in use by another process (mounted or being checked)",
				path);
			rc = -EBUSY;
			break;
		}
		nanosleep(&(struct timespec){ .tv_nsec = LOCK_POLL_MS * 1000000L },
			  NULL);
	}
	if (!rc && abs)
		mfs_log(MFS_LOG_INFO, "%s: waited %llu ms for another process "
			"to let go of it", path,
			(unsigned long long)(now_ms() - start));
	free(abs);
	return rc;
}

/* Address space to reserve for an image of size bytes (see file header). */
static uint64_t reservation_for(uint64_t size)
{
	uint64_t want = size * 4;

	if (want < RESERVE_MIN)
		want = RESERVE_MIN;
	if (want > MFS_IMAGE_MAX_BYTES)
		want = MFS_IMAGE_MAX_BYTES;
	if (want < size)
		want = size;
	return want;
}

/*
 * Reserve address space and map img->fd (img->size bytes) at its start.
 * Sets img->base and img->reserved. Returns 0 or -errno.
 */
static int map_image(struct mfs_image *img)
{
	const uint64_t pg = page_size();
	const uint64_t floor = round_up(img->size, pg);
	int prot = img->flags & MFS_IMAGE_RDONLY ? PROT_READ
						 : PROT_READ | PROT_WRITE;
	uint64_t want = round_up(reservation_for(img->size), pg);
	void *res, *p;
	int err;

	for (;;) {
		res = MAP_FAILED;
		if (want <= SIZE_MAX)
			res = mmap(NULL, (size_t)want, PROT_NONE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				   -1, 0);
		if (res != MAP_FAILED)
			break;
		err = -errno;
		if (want == floor) {
			mfs_log(MFS_LOG_ERR,
				"%s: cannot reserve %llu bytes of address space",
				img->path, (unsigned long long)want);
			return err;
		}
		want = round_up(want / 2, pg);
		if (want < floor)
			want = floor;
	}
	p = mmap(res, (size_t)img->size, prot, MAP_SHARED | MAP_FIXED,
		 img->fd, 0);
	if (p == MAP_FAILED) {
		err = -errno;
		munmap(res, (size_t)want);
		return err;
	}
	img->base = p;
	img->reserved = want;
	return 0;
}

/*
 * The common tail of open and create: img->fd is open, locked as asked and
 * holds a file of a checked size. Allocates the chunk map (all set when
 * allocated) and maps the file. Returns 0 or -errno; on error frees what it
 * allocated but leaves fd open.
 */
static int setup_image(struct mfs_image *img, bool allocated)
{
	size_t map_bytes;
	int err;

	img->chunk_count = chunks_for(img->size);
	map_bytes = (size_t)((img->chunk_count + 7) / 8);
	img->chunk_map = calloc(map_bytes ? map_bytes : 1, 1);
	if (!img->chunk_map)
		return -ENOMEM;
	if (allocated)
		memset(img->chunk_map, 0xff, map_bytes);
	err = map_image(img);
	if (err) {
		free(img->chunk_map);
		img->chunk_map = NULL;
		return err;
	}
	return 0;
}

static struct mfs_image *image_alloc(const char *path, unsigned flags)
{
	struct mfs_image *img = calloc(1, sizeof(*img));

	if (!img)
		return NULL;
	img->path = strdup(path);
	if (!img->path) {
		free(img);
		return NULL;
	}
	img->fd = -1;
	img->flags = flags;
	return img;
}

static void image_free(struct mfs_image *img)
{
	free(img->chunk_map);
	free(img->path);
	free(img);
}

/*
 * Open an existing image (contract in image.h). The lock is taken before the
 * size is checked, so an image that mkfs is still creating reads as busy,
 * not as a bad size. Refusals whose errno alone would be unclear (size,
 * file type, lock) are logged; plain syscall failures (-ENOENT, -EACCES) are
 * only returned, for the caller to report with the path.
 */
int mfs_image_open(const char *path, unsigned flags, struct mfs_image **out)
{
	bool rdonly = flags & MFS_IMAGE_RDONLY;
	struct mfs_image *img;
	struct stat st;
	int err;

	*out = NULL;
	img = image_alloc(path, flags);
	if (!img)
		return -ENOMEM;
	err = open_regular(path, rdonly ? O_RDONLY : O_RDWR, 0);
	if (err < 0)
		goto out_free;
	img->fd = err;
	if (!(flags & MFS_IMAGE_NOLOCK)) {
		err = lock_image(img->fd, path, rdonly,
				 flags & MFS_IMAGE_WAIT);
		if (err)
			goto out_close;
	}
	if (fstat(img->fd, &st) != 0) {
		err = -errno;
		goto out_close;
	}
	err = check_size(path, (uint64_t)st.st_size);
	if (err)
		goto out_close;
	img->size = (uint64_t)st.st_size;
	err = setup_image(img, false);
	if (err)
		goto out_close;
	*out = img;
	return 0;

out_close:
	close(img->fd);
out_free:
	image_free(img);
	return err;
}

/*
 * Open path for create: exclusively if !force (-EEXIST if anything is
 * there), else creating it or opening the existing regular file. Sets
 * *created. Returns an fd or -errno; changes no existing file.
 */
static int open_for_create(const char *path, bool force, bool *created)
{
	int fd, tries;

	/* Bounded: a dangling symlink is EEXIST for O_EXCL and ENOENT
	 * without O_CREAT, forever. */
	for (tries = 0; tries < 3; tries++) {
		*created = true;
		fd = open_regular(path, O_RDWR | O_CREAT | O_EXCL, 0666);
		if (fd != -EEXIST || !force)
			return fd;
		*created = false;
		fd = open_regular(path, O_RDWR, 0);
		if (fd != -ENOENT)
			return fd;
	}
	return fd;
}

/*
 * Give a forced existing file of old_size bytes its new size, discarding
 * its contents. With prealloc, host space is first claimed while the old
 * contents are still there: ENOSPC then truncates back to old_size, which
 * leaves the file as it was. Returns 0 or -errno.
 */
static int resize_existing(struct mfs_image *img, uint64_t old_size,
			   bool prealloc)
{
	int err;

	if (prealloc) {
		err = falloc(img->fd, 0, 0, img->size);
		if (err) {
			if (ftruncate(img->fd, (off_t)old_size) != 0)
				mfs_log(MFS_LOG_WARNING, "%s: cannot restore size: %s",
					img->path, strerror(errno));
			return err;
		}
	}
	if (ftruncate(img->fd, 0) != 0 ||
	    ftruncate(img->fd, (off_t)img->size) != 0)
		return -errno;
	if (!prealloc)
		return 0;
	/* Space was just freed, but copy-on-write hosts free it lazily, so
	 * this can still fail. The old contents are gone by then: leave an
	 * empty file and give the partial allocation back. */
	err = falloc(img->fd, 0, 0, img->size);
	if (err && ftruncate(img->fd, 0) != 0)
		mfs_log(MFS_LOG_WARNING, "%s: cannot truncate: %s", img->path,
			strerror(errno));
	return err;
}

/*
 * Create an image (contract in image.h). Nothing is modified before the
 * size is checked and the exclusive lock is held. A file this call created
 * is unlinked again on any failure. prealloc on a host filesystem without
 * fallocate is -EOPNOTSUPP (a user asked for it; we do not write zeros).
 */
int mfs_image_create(const char *path, uint64_t size, bool force, bool prealloc,
		     struct mfs_image **out)
{
	struct mfs_image *img;
	bool created = false;
	struct stat st;
	int err;

	*out = NULL;
	err = check_size(path, size);
	if (err)
		return err;
	img = image_alloc(path, 0);
	if (!img)
		return -ENOMEM;
	err = open_for_create(path, force, &created);
	if (err < 0)
		goto out_free;
	img->fd = err;
	err = lock_image(img->fd, path, false, false);
	if (err)
		goto out_close;
	img->size = size;
	if (created) {
		err = ftruncate(img->fd, (off_t)size) ? -errno : 0;
		if (!err && prealloc)
			err = falloc(img->fd, 0, 0, size);
	} else {
		err = fstat(img->fd, &st) ? -errno
			: resize_existing(img, (uint64_t)st.st_size, prealloc);
	}
	if (err) {
		if (err == -EOPNOTSUPP)
			mfs_log(MFS_LOG_ERR, "%s: host filesystem cannot preallocate (fallocate)",
				path);
		goto out_close;
	}
	err = setup_image(img, prealloc);
	if (err)
		goto out_close;
	*out = img;
	return 0;

out_close:
	if (created)
		unlink(path);   /* while still holding the lock */
	close(img->fd);
out_free:
	image_free(img);
	return err;
}

/* Unmap the whole reservation, close (dropping the lock), free. */
void mfs_image_close(struct mfs_image *img)
{
	if (!img)
		return;
	if (img->base)
		munmap(img->base, (size_t)img->reserved);
	if (img->fd >= 0)
		close(img->fd);
	image_free(img);
}

/*
 * After a failed MAP_FIXED over [map_off, end), the kernel may have unmapped
 * that range already. Put back what was there: the file up to img->size and
 * PROT_NONE reservation after it, so that no foreign mapping can land inside
 * our reservation. Best effort.
 */
static void restore_tail(struct mfs_image *img, uint64_t map_off, uint64_t end)
{
	const uint64_t file_end = round_up(img->size, page_size());
	int prot = PROT_READ | PROT_WRITE;

	if (map_off < img->size)
		mmap(img->base + map_off, (size_t)(img->size - map_off), prot,
		     MAP_SHARED | MAP_FIXED, img->fd, (off_t)map_off);
	if (file_end < end)
		mmap(img->base + file_end, (size_t)(end - file_end), PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		     -1, 0);
}

/*
 * Grow file and mapping to new_size (contract in image.h). -EINVAL if
 * new_size is below the current size or not a block multiple, -EROFS on a
 * read-only image. On failure the image is as before.
 */
int mfs_image_grow(struct mfs_image *img, uint64_t new_size)
{
	const uint64_t pg = page_size();
	uint64_t old_size = img->size, map_off, new_chunks, old_bytes, new_bytes;
	uint8_t *map;
	void *p;
	int err;

	if (img->flags & MFS_IMAGE_RDONLY)
		return -EROFS;
	if (new_size % MFS_BLOCK_SIZE != 0 || new_size < old_size)
		return -EINVAL;
	if (new_size > MFS_IMAGE_MAX_BYTES || new_size > img->reserved)
		return -EFBIG;
	if (new_size == old_size)
		return 0;

	new_chunks = chunks_for(new_size);
	old_bytes = (img->chunk_count + 7) / 8;
	new_bytes = (new_chunks + 7) / 8;
	if (new_bytes > old_bytes) {
		map = realloc(img->chunk_map, (size_t)new_bytes);
		if (!map)
			return -ENOMEM;
		memset(map + old_bytes, 0, (size_t)(new_bytes - old_bytes));
		img->chunk_map = map;   /* larger is harmless if we fail below */
	}

	if (ftruncate(img->fd, (off_t)new_size) != 0)
		return -errno;
	/* The old last page may be partial when pages exceed blocks. */
	map_off = old_size / pg * pg;
	p = mmap(img->base + map_off, (size_t)(new_size - map_off),
		 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, img->fd,
		 (off_t)map_off);
	if (p == MAP_FAILED) {
		err = -errno;
		restore_tail(img, map_off, round_up(new_size, pg));
		if (ftruncate(img->fd, (off_t)old_size) != 0)
			mfs_log(MFS_LOG_WARNING, "%s: cannot restore size: %s",
				img->path, strerror(errno));
		return err;
	}
	/* A partial last chunk was reserved only up to the old size. */
	if (old_size % CHUNK_SIZE != 0)
		chunk_clear(img, old_size >> CHUNK_SHIFT);
	img->chunk_count = new_chunks;
	img->size = new_size;
	return 0;
}

/*
 * The argument checks of every call that takes a byte range of the image:
 * -EROFS if the call changes the image (changes) and the image is
 * read-only, whatever the range; else -EINVAL unless [off, off+len) lies
 * inside the image (tested so that off + len cannot wrap); else 0. An empty
 * range is inside wherever off <= size, the end included; what an empty
 * range then does is up to the caller.
 */
static int check_range(const struct mfs_image *img, uint64_t off,
		       uint64_t len, bool changes)
{
	if (changes && (img->flags & MFS_IMAGE_RDONLY))
		return -EROFS;
	if (off > img->size || len > img->size - off)
		return -EINVAL;
	return 0;
}

/*
 * Reserve host space for [off, off+len) (contract in image.h): every chunk
 * the range touches, clipped to the file size, whose bit is clear is
 * allocated with fallocate mode 0 (inside the file, so the size does not
 * change), one call per run of clear chunks, and its bit set.
 *
 * -EINVAL if the range is not inside the image, -EROFS on a read-only one.
 * A host filesystem without fallocate (EOPNOTSUPP) gets a warning, once per
 * process, and 0: nothing is written in its place, so on such a host a full
 * disk can still raise SIGBUS. Bits stay clear then.
 */
int mfs_image_reserve(struct mfs_image *img, uint64_t off, uint64_t len)
{
	static atomic_flag warned = ATOMIC_FLAG_INIT;
	uint64_t c, last, run_end, start, end;
	int err;

	err = check_range(img, off, len, true);
	if (err || len == 0)
		return err;

	last = (off + len - 1) >> CHUNK_SHIFT;
	for (c = off >> CHUNK_SHIFT; c <= last; c = run_end + 1) {
		run_end = c;
		if (chunk_test(img, c))
			continue;
		while (run_end < last && !chunk_test(img, run_end + 1))
			run_end++;
		start = c << CHUNK_SHIFT;
		end = (run_end + 1) << CHUNK_SHIFT;
		if (end > img->size)
			end = img->size;
		err = falloc(img->fd, 0, start, end - start);
		if (err == -EOPNOTSUPP) {
			if (!atomic_flag_test_and_set(&warned))
				mfs_log(MFS_LOG_WARNING,
					"%s: host filesystem has no fallocate; "
					"a full host disk may crash the daemon (SIGBUS)",
					img->path);
			return 0;
		}
		if (err)
			return err;
		for (; c <= run_end; c++)
			chunk_set(img, c);
	}
	return 0;
}

int mfs_image_host_space(const struct mfs_image *img, uint64_t *host_free,
			 uint64_t *backed)
{
	struct statvfs sv;
	struct stat st;

	if (fstatvfs(img->fd, &sv) != 0 || fstat(img->fd, &st) != 0)
		return -errno;
	*host_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	*backed = (uint64_t)st.st_blocks * 512u;
	if (*backed > img->size)
		*backed = img->size;
	return 0;
}

int mfs_image_discard(struct mfs_image *img, uint64_t off, uint64_t len)
{
	uint64_t c, last;
	int err;

	err = check_range(img, off, len, true);
	if (err || len == 0)
		return err;
	/* Forget the reservations first: if the punch half-succeeds, the
	 * next reserve() allocates again rather than trusting a bit. */
	last = (off + len - 1) >> CHUNK_SHIFT;
	for (c = off >> CHUNK_SHIFT; c <= last; c++)
		chunk_clear(img, c);
	err = falloc(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
		     len);
	return err;
}

static void call_hook(struct mfs_image *img)
{
	if (img->sync_hook)
		img->sync_hook(img, img->sync_hook_arg);
}

/* fdatasync the image, then the sync hook. Returns 0 or -errno. An error
 * (-EIO, -ENOSPC) means written pages may be lost; do not retry and
 * trust a later success. */
int mfs_image_sync(struct mfs_image *img)
{
	if (img->fail_syncs && img->fail_syncs--)
		return -EIO;
	while (fdatasync(img->fd) != 0) {
		if (errno != EINTR)
			return -errno;
	}
	call_hook(img);
	return 0;
}

/* msync(MS_SYNC) the pages covering [off, off+len), then the sync hook.
 * -EINVAL if the range is not inside the image. Returns 0 or -errno. */
int mfs_image_sync_range(struct mfs_image *img, uint64_t off, uint64_t len)
{
	const uint64_t pg = page_size();
	uint64_t start, end;
	int err;

	err = check_range(img, off, len, false);
	if (err)
		return err;
	if (img->fail_syncs && img->fail_syncs--)
		return -EIO;
	if (len != 0) {
		start = off / pg * pg;
		end = round_up(off + len, pg);
		if (msync(img->base + start, (size_t)(end - start), MS_SYNC) != 0)
			return -errno;
	}
	call_hook(img);
	return 0;
}

int mfs_image_drop(struct mfs_image *img, uint64_t off, uint64_t len)
{
	const uint64_t pg = page_size();
	uint64_t start, end;
	int err;

	err = check_range(img, off, len, false);
	if (err)
		return err;
	start = round_up(off, pg);
	end = (off + len) / pg * pg;
	if (start >= end)
		return 0;
	/* Unmap first: the page cache keeps pages that are mapped. */
	if (madvise(img->base + start, (size_t)(end - start), MADV_DONTNEED) != 0)
		return -errno;
	err = posix_fadvise(img->fd, (off_t)start, (off_t)(end - start),
			    POSIX_FADV_DONTNEED);
	return -err;
}

int mfs_image_writeback(struct mfs_image *img, uint64_t off, uint64_t len,
			bool wait)
{
	unsigned flags = SYNC_FILE_RANGE_WRITE;
	int err = check_range(img, off, len, false);

	if (err)
		return err;
	if (wait)
		flags |= SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER;
	if (len && sync_file_range(img->fd, (off64_t)off, (off64_t)len,
				   flags) != 0)
		return -errno;
	return 0;
}

int mfs_image_advise(struct mfs_image *img, bool random)
{
	if (madvise(img->base, (size_t)round_up(img->size, page_size()),
		    random ? MADV_RANDOM : MADV_NORMAL) != 0)
		return -errno;
	return 0;
}
