/* SPDX-License-Identifier: MIT */
/*
 * test_image.c — unit tests of the image layer (src/image.c) on real files.
 *
 * Each test gets a fresh directory under /tmp (mkdtemp), removed in the
 * teardown together with any filesystem a test mounted there: a 4 MiB tmpfs
 * for "host disk full", ramfs for "host has no fallocate". Mounting needs
 * root; without it those tests are skipped with the reason printed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mfs_skip.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "log.h"

#define KiB 1024ULL
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)
#define BS MFS_BLOCK_SIZE

struct fx {
	char dir[64];
	char path[160];      /* dir/disk.img or mnt/disk.img */
	char mnt[128];       /* dir/mnt, when a test mounts something */
	bool mounted;
	struct mfs_image *img[3];
};

/* Everything mfs_log said since setup, one message per line. */
static char logbuf[8192];

static void log_capture(int level, const char *msg)
{
	size_t n = strlen(logbuf);

	(void)level;
	snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	strcpy(fx->dir, "/tmp/mfs-test-image-XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/disk.img", fx->dir);
	snprintf(fx->mnt, sizeof(fx->mnt), "%s/mnt", fx->dir);
	logbuf[0] = '\0';
	mfs_log_set_sink(log_capture);
	*state = fx;
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st; (void)type; (void)f;
	return remove(p) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	int rc = 0;

	for (size_t i = 0; i < 3; i++)
		mfs_image_close(fx->img[i]);
	if (fx->mounted && umount2(fx->mnt, 0) != 0 &&
	    umount2(fx->mnt, MNT_DETACH) != 0) {
		fprintf(stderr, "cannot unmount %s: %s\n", fx->mnt, strerror(errno));
		rc = -1;
	}
	/* FTW_MOUNT: never descend into a mount we failed to remove. */
	if (nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0)
		rc = -1;
	mfs_log_set_sink(NULL);
	free(fx);
	return rc;
}

/* Mount a fresh fs of type at fx->mnt and point fx->path into it; skip
 * the test (printing why) if that is impossible. */
static void mount_scratch(struct fx *fx, const char *type, const char *opts)
{
	assert_int_equal(mkdir(fx->mnt, 0755), 0);
	if (mount("mfs-test", fx->mnt, type, 0, opts) != 0) {
		MFS_SKIP("cannot mount %s (%s): %s\n", type,
			 opts ? opts : "", strerror(errno));
	}
	fx->mounted = true;
	snprintf(fx->path, sizeof(fx->path), "%s/disk.img", fx->mnt);
}

static void write_file(const char *path, char c, size_t len)
{
	char *buf = malloc(len);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_non_null(buf);
	assert_true(fd >= 0);
	memset(buf, c, len);
	assert_int_equal(pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
	free(buf);
}

/* Assert path is exactly len bytes of c. */
static void assert_file_is(const char *path, char c, size_t len)
{
	char *buf = malloc(len + 1);
	int fd = open(path, O_RDONLY);
	struct stat st;

	assert_non_null(buf);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, len);
	assert_int_equal(pread(fd, buf, len + 1, 0), (ssize_t)len);
	for (size_t i = 0; i < len; i++)
		if (buf[i] != c)
			fail_msg("byte %zu is 0x%02x, want 0x%02x", i,
				 (unsigned char)buf[i], (unsigned char)c);
	close(fd);
	free(buf);
}

static uint64_t alloc_bytes(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static bool chunk_bit(const struct mfs_image *img, uint64_t c)
{
	return img->chunk_map[c / 8] & (1u << (c % 8));
}

static bool path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- create, open, close ---------------------------------------------- */

static void test_create_open_roundtrip(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img;
	uint8_t *b;
	uint64_t n;

	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, false, false, &img), 0);
	fx->img[0] = img;
	assert_int_equal(img->size, 1 * MiB);
	assert_int_equal(mfs_image_blocks(img), 1 * MiB / BS);
	assert_true(img->reserved >= img->size);
	assert_true(fcntl(img->fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(alloc_bytes(fx->path) < 1 * MiB, true); /* sparse */

	n = mfs_image_blocks(img);
	memcpy(mfs_image_block(img, 0), "first", 6);
	memcpy(mfs_image_block(img, n - 1), "last", 5);
	mfs_image_close(img);
	fx->img[0] = NULL;

	assert_int_equal(mfs_image_open(fx->path, 0, &img), 0);
	fx->img[0] = img;
	assert_int_equal(img->size, 1 * MiB);
	assert_string_equal(mfs_image_block(img, 0), "first");
	assert_string_equal(mfs_image_block(img, n - 1), "last");
	b = mfs_image_block(img, 1);
	for (size_t i = 0; i < BS; i++)
		assert_int_equal(b[i], 0);
	mfs_image_close(img);
	fx->img[0] = NULL;
	mfs_image_close(NULL);   /* a no-op */

	assert_int_equal(mfs_image_open(fx->path, MFS_IMAGE_RDONLY, &img), 0);
	fx->img[0] = img;
	assert_string_equal(mfs_image_block(img, n - 1), "last");
}

/* The read-only mapping really is PROT_READ: look it up in /proc. */
static void test_rdonly_maps_read_only(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img;
	char line[512], want[32];
	bool found = false;
	FILE *f;

	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, false, false, &img), 0);
	mfs_image_close(img);
	assert_int_equal(mfs_image_open(fx->path, MFS_IMAGE_RDONLY, &fx->img[0]), 0);
	assert_int_equal(mfs_image_grow(fx->img[0], 2 * MiB), -EROFS);
	assert_int_equal(mfs_image_reserve(fx->img[0], 0, BS), -EROFS);

	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)fx->img[0]->base);
	f = fopen("/proc/self/maps", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, want, strlen(want)) == 0) {
			found = true;
			assert_non_null(strstr(line, " r--s "));
		}
	fclose(f);
	assert_true(found);
}

static void test_create_prealloc(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img;

	assert_int_equal(mfs_image_create(fx->path, 2 * MiB + 64 * KiB, false, true,
					  &img), 0);
	fx->img[0] = img;
	assert_true(alloc_bytes(fx->path) >= 2 * MiB + 64 * KiB);
	assert_int_equal(img->chunk_count, 3);
	for (uint64_t c = 0; c < img->chunk_count; c++)
		assert_true(chunk_bit(img, c));
}

/* ---- locking ----------------------------------------------------------- */

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void test_unescape_mountinfo(void **state)
{
	char a[] = "/var/tmp/my\\040disk\\011x\\134y.img";
	char b[] = "\\9\\04\\400end\\";

	(void)state;
	mfs_image_unescape_mountinfo(a);
	assert_string_equal(a, "/var/tmp/my disk\tx\\y.img");
	/* Not escapes: left as they are. */
	mfs_image_unescape_mountinfo(b);
	assert_string_equal(b, "\\9\\04\\400end\\");
}

/* A child that holds an exclusive flock on path for ms milliseconds;
 * returns once the lock is taken. */
static pid_t hold_lock(const char *path, unsigned ms)
{
	int ready[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_RDWR);

		if (fd < 0 || flock(fd, LOCK_EX) != 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		usleep(ms * 1000);
		_exit(0);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

static void reap(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * MFS_IMAGE_WAIT: a lock held by a process that has no mount of the image
 * (a child holding flock, as a daemon closing the image after umount does)
 * is waited for, as long as MMAPFS_LOCK_WAIT_MS allows; without the flag
 * the open fails at once.
 */
static void test_lock_wait(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img = NULL;
	long long t0, t1;
	pid_t pid;

	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, false, false, &fx->img[0]), 0);
	mfs_image_close(fx->img[0]);
	fx->img[0] = NULL;

	pid = hold_lock(fx->path, 300);
	assert_int_equal(mfs_image_open(fx->path, 0, &img), -EBUSY);
	logbuf[0] = '\0';
	assert_int_equal(mfs_image_open(fx->path, MFS_IMAGE_WAIT, &fx->img[0]), 0);
	assert_non_null(strstr(logbuf, "for another process to let go of it"));
	reap(pid);
	mfs_image_close(fx->img[0]);
	fx->img[0] = NULL;

	/* Held for 2 s: a 50 ms limit gives up after 50 ms of clock time
	 * (well before the holder lets go), the default waits it out. */
	pid = hold_lock(fx->path, 2000);
	setenv("MMAPFS_LOCK_WAIT_MS", "50", 1);
	t0 = mono_ms();
	assert_int_equal(mfs_image_open(fx->path, MFS_IMAGE_WAIT, &img), -EBUSY);
	t1 = mono_ms();
	assert_true(t1 - t0 >= 50);
	assert_true(t1 - t0 < 1500);
	unsetenv("MMAPFS_LOCK_WAIT_MS");
	assert_int_equal(mfs_image_open(fx->path, MFS_IMAGE_WAIT, &fx->img[0]), 0);
	reap(pid);
}

static void test_lock_conflicts(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img = (void *)1;

	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, false, false, &fx->img[0]), 0);

	/* Same process, a second open file description: flock conflicts. */
	assert_int_equal(mfs_image_open(fx->path, 0, &img), -EBUSY);
	assert_null(img);
	assert_non_null(strstr(logbuf,
		"in use by another process (mounted or being checked)"));
	assert_non_null(strstr(logbuf, fx->path));
	assert_int_equal(mfs_image_open(fx->path, MFS_IMAGE_RDONLY, &img), -EBUSY);

	/* NOLOCK bypasses the lock. */
	assert_int_equal(mfs_image_open(fx->path, MFS_IMAGE_NOLOCK, &fx->img[1]), 0);
	mfs_image_close(fx->img[1]);
	fx->img[1] = NULL;

	/* Close drops the lock; readers share, and keep writers out. */
	mfs_image_close(fx->img[0]);
	fx->img[0] = NULL;
	assert_int_equal(mfs_image_open(fx->path, MFS_IMAGE_RDONLY, &fx->img[0]), 0);
	assert_int_equal(mfs_image_open(fx->path, MFS_IMAGE_RDONLY, &fx->img[1]), 0);
	assert_int_equal(mfs_image_open(fx->path, 0, &img), -EBUSY);
	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, true, false, &img), -EBUSY);
	mfs_image_close(fx->img[0]);
	mfs_image_close(fx->img[1]);
	fx->img[0] = fx->img[1] = NULL;
	assert_int_equal(mfs_image_open(fx->path, 0, &fx->img[0]), 0);
}

/* ---- create on something that exists ---------------------------------- */

static void test_create_existing_needs_force(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img = (void *)1;

	write_file(fx->path, 'A', 256 * KiB);
	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, false, false, &img), -EEXIST);
	assert_null(img);
	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, false, true, &img), -EEXIST);
	assert_file_is(fx->path, 'A', 256 * KiB);

	/* force replaces it: new size, old contents gone. */
	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, true, false, &fx->img[0]), 0);
	assert_int_equal(fx->img[0]->size, 1 * MiB);
	for (size_t i = 0; i < 256 * KiB; i++)
		if (fx->img[0]->base[i] != 0)
			fail_msg("byte %zu survived the forced create", i);
	mfs_image_close(fx->img[0]);
	assert_file_is(fx->path, 0, 1 * MiB);
	fx->img[0] = NULL;

	/* force on a missing file creates it. */
	assert_int_equal(unlink(fx->path), 0);
	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, true, false, &fx->img[0]), 0);
}

static void test_create_force_on_locked_image(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img = (void *)1;

	assert_int_equal(mfs_image_create(fx->path, 256 * KiB, false, false, &fx->img[0]), 0);
	memset(fx->img[0]->base, 'Z', 256 * KiB);
	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, true, false, &img), -EBUSY);
	assert_null(img);
	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, true, true, &img), -EBUSY);
	assert_non_null(strstr(logbuf, "in use by another process"));
	mfs_image_close(fx->img[0]);
	fx->img[0] = NULL;
	assert_file_is(fx->path, 'Z', 256 * KiB);
}

static void test_create_refuses_non_regular(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img;
	char fifo[160];

	assert_int_equal(mfs_image_create(fx->dir, 1 * MiB, false, false, &img), -EEXIST);
	assert_int_equal(mfs_image_create(fx->dir, 1 * MiB, true, false, &img), -EINVAL);
	snprintf(fifo, sizeof(fifo), "%s/fifo", fx->dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(mfs_image_create(fifo, 1 * MiB, true, false, &img), -EINVAL);
	snprintf(fifo, sizeof(fifo), "%s/no/such/dir.img", fx->dir);
	assert_int_equal(mfs_image_create(fifo, 1 * MiB, true, false, &img), -ENOENT);
}

/* ---- bad input --------------------------------------------------------- */

static void test_create_bad_sizes(void **state)
{
	struct fx *fx = *state;
	static const struct { uint64_t size; int err; } cases[] = {
		{ 0, -EINVAL },
		{ MFS_IMAGE_MIN_BYTES + 1, -EINVAL },
		{ MFS_IMAGE_MIN_BYTES + BS / 2, -EINVAL },
		{ MFS_IMAGE_MIN_BYTES - BS, -EINVAL },
		{ BS, -EINVAL },
		{ MFS_IMAGE_MAX_BYTES + BS, -EFBIG },
		{ UINT64_MAX - BS + 1, -EFBIG },
	};
	struct mfs_image *img;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		logbuf[0] = '\0';
		img = (void *)1;
		assert_int_equal(mfs_image_create(fx->path, cases[i].size, true, false,
						  &img), cases[i].err);
		assert_null(img);
		assert_false(path_exists(fx->path));
		assert_non_null(strstr(logbuf, fx->path));
	}
	/* The limits themselves are fine. */
	assert_int_equal(mfs_image_create(fx->path, MFS_IMAGE_MIN_BYTES, false, false,
					  &fx->img[0]), 0);
}

static void test_open_bad_files(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img = (void *)1;
	char p[160];

	snprintf(p, sizeof(p), "%s/missing.img", fx->dir);
	assert_int_equal(mfs_image_open(p, 0, &img), -ENOENT);
	assert_null(img);
	assert_int_equal(mfs_image_open(fx->dir, 0, &img), -EINVAL);
	assert_int_equal(mfs_image_open(fx->dir, MFS_IMAGE_RDONLY, &img), -EINVAL);
	snprintf(p, sizeof(p), "%s/fifo", fx->dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(mfs_image_open(p, MFS_IMAGE_RDONLY, &img), -EINVAL);

	write_file(fx->path, 0, 0);
	assert_int_equal(mfs_image_open(fx->path, 0, &img), -EINVAL);
	write_file(fx->path, 0, 128 * KiB);   /* below the minimum */
	assert_int_equal(mfs_image_open(fx->path, 0, &img), -EINVAL);

	/* A good image cut short is refused, and not touched. */
	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, true, false, &img), 0);
	mfs_image_close(img);
	assert_int_equal(truncate(fx->path, 1 * MiB - 100), 0);
	logbuf[0] = '\0';
	assert_int_equal(mfs_image_open(fx->path, 0, &img), -EINVAL);
	assert_non_null(strstr(logbuf, "multiple of 4096"));
	assert_int_equal(mfs_image_open(fx->path, MFS_IMAGE_RDONLY, &img), -EINVAL);
	struct stat st;
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_size, 1 * MiB - 100);
}

/* Too big to open needs a host fs with 64 TiB sparse files: tmpfs. */
static void test_open_too_big(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img = (void *)1;

	mount_scratch(fx, "tmpfs", "size=4m");
	write_file(fx->path, 0, 0);
	assert_int_equal(truncate(fx->path, (off_t)(MFS_IMAGE_MAX_BYTES + BS)), 0);
	assert_int_equal(mfs_image_open(fx->path, 0, &img), -EFBIG);
	assert_null(img);
	assert_non_null(strstr(logbuf, "maximum"));
}

/* ---- grow ------------------------------------------------------------- */

static void test_grow(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img;
	uint8_t *base, *p0;
	uint64_t n;

	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, false, false, &img), 0);
	fx->img[0] = img;
	base = img->base;
	assert_int_equal(mfs_image_reserve(img, 0, BS), 0);
	p0 = mfs_image_block(img, 0);
	memcpy(p0, "before", 7);
	assert_null(mfs_image_block(img, 1 * MiB / BS));

	/* Bad requests change nothing. */
	assert_int_equal(mfs_image_grow(img, 1 * MiB - BS), -EINVAL);
	assert_int_equal(mfs_image_grow(img, 1 * MiB + 1), -EINVAL);
	assert_int_equal(mfs_image_grow(img, img->reserved + BS), -EFBIG);
	assert_int_equal(mfs_image_grow(img, MFS_IMAGE_MAX_BYTES + BS), -EFBIG);
	assert_int_equal(mfs_image_grow(img, 1 * MiB), 0);
	assert_int_equal(img->size, 1 * MiB);

	assert_int_equal(mfs_image_grow(img, 3 * MiB), 0);
	assert_ptr_equal(img->base, base);
	assert_int_equal(img->size, 3 * MiB);
	assert_int_equal(img->chunk_count, 3);
	assert_string_equal(p0, "before");   /* old pointer still valid */
	memcpy(p0, "after", 6);
	n = mfs_image_blocks(img);
	assert_int_equal(n, 3 * MiB / BS);
	assert_int_equal(mfs_image_reserve(img, (n - 1) * BS, BS), 0);
	memcpy(mfs_image_block(img, n - 1), "new tail", 9);
	assert_int_equal(mfs_image_sync(img), 0);
	mfs_image_close(img);
	fx->img[0] = NULL;

	assert_int_equal(mfs_image_open(fx->path, 0, &img), 0);
	fx->img[0] = img;
	assert_int_equal(img->size, 3 * MiB);
	assert_string_equal(mfs_image_block(img, 0), "after");
	assert_string_equal(mfs_image_block(img, n - 1), "new tail");
}

static uint64_t vm_size(void)
{
	char line[256];
	unsigned long long kb = 0;
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
			break;
	fclose(f);
	assert_true(kb > 0);
	return kb * KiB;
}

/* With little address space to spare (ulimit -v, ASan), open settles for a
 * smaller reservation and grow stops at it with -EFBIG. */
static void test_small_address_space(void **state)
{
	struct fx *fx = *state;
	struct rlimit old, lim;
	struct mfs_image *img;
	int err;

	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, false, false, &img), 0);
	mfs_image_close(img);

	assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
	lim = old;
	lim.rlim_cur = vm_size() + 512 * MiB;
	if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < lim.rlim_cur)
		MFS_SKIP("RLIMIT_AS is already below what the test needs\n");
	assert_int_equal(setrlimit(RLIMIT_AS, &lim), 0);
	err = mfs_image_open(fx->path, 0, &fx->img[0]);
	assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
	assert_int_equal(err, 0);

	img = fx->img[0];
	assert_true(img->reserved < 64 * GiB);
	assert_true(img->reserved >= img->size);
	assert_int_equal(mfs_image_grow(img, img->reserved + BS), -EFBIG);
	assert_int_equal(mfs_image_grow(img, 2 * MiB), 0);
	memset(mfs_image_block(img, 2 * MiB / BS - 1), 1, BS);
}

/* ---- reserve ------------------------------------------------------------ */

static void test_reserve_sparse(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img;
	uint64_t a0, a1, a2;

	/* 3.5 MiB: chunks 0..3, the last one half. */
	assert_int_equal(mfs_image_create(fx->path, 3 * MiB + 512 * KiB, false, false,
					  &img), 0);
	fx->img[0] = img;
	assert_int_equal(img->chunk_count, 4);
	a0 = alloc_bytes(fx->path);
	assert_true(a0 < 1 * MiB);

	assert_int_equal(mfs_image_reserve(img, 3 * BS, 10), 0);
	a1 = alloc_bytes(fx->path);
	assert_true(a1 >= a0 + 1 * MiB);
	assert_true(a1 < a0 + 2 * MiB);
	assert_true(chunk_bit(img, 0));
	assert_false(chunk_bit(img, 1));

	/* Again: nothing changes. */
	assert_int_equal(mfs_image_reserve(img, 0, 1 * MiB), 0);
	assert_int_equal(alloc_bytes(fx->path), a1);

	/* A set bit really skips the syscall: punch the chunk out behind
	 * the image's back and reserve it again; it stays a hole. */
	assert_int_equal(fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   0, 1 * MiB), 0);
	assert_true(alloc_bytes(fx->path) < a1);
	assert_int_equal(mfs_image_reserve(img, 0, 1 * MiB), 0);
	assert_true(alloc_bytes(fx->path) < a1);
	assert_int_equal(fallocate(img->fd, 0, 0, 1 * MiB), 0);
	assert_int_equal(alloc_bytes(fx->path), a1);
	assert_int_equal(img->size, 3 * MiB + 512 * KiB);

	/* Range spanning chunks 0..2 only allocates 1 and 2. */
	assert_int_equal(mfs_image_reserve(img, 1 * MiB - BS, 1 * MiB + 2 * BS), 0);
	a2 = alloc_bytes(fx->path);
	assert_true(a2 >= a1 + 2 * MiB);
	assert_true(chunk_bit(img, 1) && chunk_bit(img, 2));
	assert_false(chunk_bit(img, 3));

	/* The half chunk, clipped to the file size: size unchanged. */
	assert_int_equal(mfs_image_reserve(img, img->size - BS, BS), 0);
	assert_true(chunk_bit(img, 3));
	a1 = alloc_bytes(fx->path);
	assert_true(a1 >= a2 + 512 * KiB);
	struct stat st;
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_size, 3 * MiB + 512 * KiB);

	/* Growing makes that chunk whole again: its bit must clear, and
	 * reserving its new half must allocate. */
	assert_int_equal(mfs_image_grow(img, 5 * MiB), 0);
	assert_int_equal(img->chunk_count, 5);
	assert_false(chunk_bit(img, 3));
	assert_false(chunk_bit(img, 4));
	assert_true(chunk_bit(img, 2));
	assert_int_equal(mfs_image_reserve(img, 3 * MiB + 768 * KiB, BS), 0);
	assert_true(alloc_bytes(fx->path) >= a1 + 512 * KiB);
	assert_int_equal(mfs_image_reserve(img, 0, img->size), 0);
	assert_true(alloc_bytes(fx->path) >= 5 * MiB);
	memset(img->base, 7, img->size);
}

static void test_reserve_bounds(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img;

	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, false, false, &img), 0);
	fx->img[0] = img;
	assert_int_equal(mfs_image_reserve(img, 0, 0), 0);
	assert_int_equal(mfs_image_reserve(img, img->size, 0), 0);
	assert_int_equal(mfs_image_reserve(img, 0, img->size + 1), -EINVAL);
	assert_int_equal(mfs_image_reserve(img, img->size, 1), -EINVAL);
	assert_int_equal(mfs_image_reserve(img, img->size + BS, 0), -EINVAL);
	assert_int_equal(mfs_image_reserve(img, BS, UINT64_MAX), -EINVAL);
	assert_false(chunk_bit(img, 0));
	assert_int_equal(img->size, 1 * MiB);
}

/* Host disk full: reserve says ENOSPC instead of a later SIGBUS. */
static void test_reserve_enospc(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img;

	mount_scratch(fx, "tmpfs", "size=4m");
	/* 64 MiB sparse image on a 4 MiB host. */
	assert_int_equal(mfs_image_create(fx->path, 64 * MiB, false, false, &img), 0);
	fx->img[0] = img;
	assert_int_equal(mfs_image_reserve(img, 0, 1 * MiB), 0);
	memset(img->base, 1, 1 * MiB);

	assert_int_equal(mfs_image_reserve(img, 1 * MiB, 8 * MiB), -ENOSPC);
	for (uint64_t c = 1; c < img->chunk_count; c++)
		assert_false(chunk_bit(img, c));
	assert_int_equal(mfs_image_reserve(img, 60 * MiB, 4 * MiB), -ENOSPC);

	/* What fits still works, and is then writable. */
	assert_int_equal(mfs_image_reserve(img, 10 * MiB, 1 * MiB), 0);
	assert_true(chunk_bit(img, 10));
	memset(img->base + 10 * MiB, 2, 1 * MiB);
	assert_int_equal(mfs_image_sync(img), 0);
}

/* Preallocation that does not fit: a new file is removed, an existing one
 * (force) is left as it was. */
static void test_create_prealloc_enospc(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img = (void *)1;

	mount_scratch(fx, "tmpfs", "size=4m");
	assert_int_equal(mfs_image_create(fx->path, 8 * MiB, false, true, &img), -ENOSPC);
	assert_null(img);
	assert_false(path_exists(fx->path));
	assert_int_equal(mfs_image_create(fx->path, 8 * MiB, true, true, &img), -ENOSPC);
	assert_false(path_exists(fx->path));

	write_file(fx->path, 'A', 256 * KiB);
	assert_int_equal(mfs_image_create(fx->path, 8 * MiB, true, true, &img), -ENOSPC);
	assert_file_is(fx->path, 'A', 256 * KiB);

	/* And it fits when it does. */
	assert_int_equal(mfs_image_create(fx->path, 2 * MiB, true, true, &fx->img[0]), 0);
	assert_true(alloc_bytes(fx->path) >= 2 * MiB);
}

/* A host without fallocate (ramfs): reserve warns and succeeds; a
 * preallocated create is refused and leaves nothing behind. */
static void test_reserve_no_fallocate(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img;

	mount_scratch(fx, "ramfs", NULL);
	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, false, true, &img), -EOPNOTSUPP);
	assert_false(path_exists(fx->path));
	assert_non_null(strstr(logbuf, "cannot preallocate"));

	assert_int_equal(mfs_image_create(fx->path, 2 * MiB, false, false, &img), 0);
	fx->img[0] = img;
	logbuf[0] = '\0';
	assert_int_equal(mfs_image_reserve(img, 0, 1 * MiB), 0);
	assert_non_null(strstr(logbuf, "no fallocate"));
	logbuf[0] = '\0';
	assert_int_equal(mfs_image_reserve(img, 1 * MiB, 1 * MiB), 0);
	assert_string_equal(logbuf, "");   /* warned once */
	memset(img->base, 3, img->size);
}

/* ---- sync --------------------------------------------------------------- */

struct hook_rec {
	int calls;
	struct mfs_image *img;
};

static void hook(struct mfs_image *img, void *arg)
{
	struct hook_rec *r = arg;

	r->calls++;
	r->img = img;
}

static void test_sync_hook(void **state)
{
	struct fx *fx = *state;
	struct hook_rec rec = { 0, NULL };
	struct mfs_image *img;

	assert_int_equal(mfs_image_create(fx->path, 1 * MiB, false, false, &img), 0);
	fx->img[0] = img;
	assert_int_equal(mfs_image_sync(img), 0);   /* no hook: fine */
	img->sync_hook = hook;
	img->sync_hook_arg = &rec;

	assert_int_equal(mfs_image_reserve(img, 0, 1 * MiB), 0);
	memcpy(mfs_image_block(img, 5), "durable", 8);
	assert_int_equal(mfs_image_sync(img), 0);
	assert_int_equal(rec.calls, 1);
	assert_ptr_equal(rec.img, img);

	assert_int_equal(mfs_image_sync_range(img, 5 * BS + 3, 100), 0);
	assert_int_equal(rec.calls, 2);
	assert_int_equal(mfs_image_sync_range(img, 0, img->size), 0);
	assert_int_equal(rec.calls, 3);

	/* Out of range: an error and no hook. */
	assert_int_equal(mfs_image_sync_range(img, img->size - BS, BS + 1), -EINVAL);
	assert_int_equal(mfs_image_sync_range(img, 1, UINT64_MAX), -EINVAL);
	assert_int_equal(rec.calls, 3);

	/* What was synced is in the file. */
	char buf[8];
	int fd = open(fx->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, 8, 5 * BS), 8);
	close(fd);
	assert_string_equal(buf, "durable");
}

/* Fail with the call and the range when got is not want. */
static void expect_rc(const char *call, uint64_t off, uint64_t len, int got,
		      int want)
{
	if (got != want)
		fail_msg("%s(off %llu, len %llu) = %d, want %d", call,
			 (unsigned long long)off, (unsigned long long)len, got,
			 want);
}

/*
 * The range checks of reserve, discard, sync_range and drop, side by side:
 * an empty range anywhere up to the end is fine, anything past the end or
 * wrapping around is -EINVAL, and on a read-only image the calls that change
 * it say -EROFS before looking at the range, while the others check it as
 * usual.
 */
static void test_range_checks(void **state)
{
	const uint64_t size = 1 * MiB;
	const struct {
		uint64_t off, len;
		int want;
	} cases[] = {
		{ 0, 0, 0 },
		{ BS, 0, 0 },
		{ size, 0, 0 },                 /* empty, at the very end */
		{ size - BS, BS, 0 },           /* the last block */
		{ 0, size + 1, -EINVAL },
		{ size - BS, BS + 1, -EINVAL },
		{ size, 1, -EINVAL },
		{ size + 1, 0, -EINVAL },       /* empty, but past the end */
		{ size + BS, 0, -EINVAL },
		{ BS, UINT64_MAX, -EINVAL },    /* off + len wraps */
		{ 1, UINT64_MAX, -EINVAL },
		{ size - 1, UINT64_MAX - size + 2, -EINVAL },   /* wraps to 1 */
		{ UINT64_MAX, 1, -EINVAL },     /* wraps to 0 */
		{ UINT64_MAX, 0, -EINVAL },
		{ UINT64_MAX, UINT64_MAX, -EINVAL },
	};
	struct fx *fx = *state;
	struct hook_rec rec = { 0, NULL };
	struct mfs_image *img;
	int calls = 0, want, rc;

	assert_int_equal(mfs_image_create(fx->path, size, false, false, &img), 0);
	fx->img[0] = img;
	img->sync_hook = hook;
	img->sync_hook_arg = &rec;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t off = cases[i].off, len = cases[i].len;

		want = cases[i].want;
		expect_rc("reserve", off, len, mfs_image_reserve(img, off, len), want);
		/* (a host that cannot punch holes may refuse a good range) */
		rc = mfs_image_discard(img, off, len);
		expect_rc("discard", off, len, rc,
			  want == 0 && rc == -EOPNOTSUPP ? rc : want);
		expect_rc("sync_range", off, len, mfs_image_sync_range(img, off, len),
			  want);
		calls += want == 0;     /* the hook runs only after a sync */
		assert_int_equal(rec.calls, calls);
		expect_rc("drop", off, len, mfs_image_drop(img, off, len), want);
		expect_rc("writeback", off, len,
			  mfs_image_writeback(img, off, len, i & 1), want);
	}
	assert_int_equal(img->size, size);
	mfs_image_close(img);
	fx->img[0] = NULL;

	assert_int_equal(mfs_image_open(fx->path, MFS_IMAGE_RDONLY, &img), 0);
	fx->img[0] = img;
	img->sync_hook = hook;
	img->sync_hook_arg = &rec;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t off = cases[i].off, len = cases[i].len;

		want = cases[i].want;
		expect_rc("reserve", off, len, mfs_image_reserve(img, off, len), -EROFS);
		expect_rc("discard", off, len, mfs_image_discard(img, off, len), -EROFS);
		expect_rc("sync_range", off, len, mfs_image_sync_range(img, off, len),
			  want);
		calls += want == 0;
		assert_int_equal(rec.calls, calls);
		expect_rc("drop", off, len, mfs_image_drop(img, off, len), want);
		expect_rc("writeback", off, len,
			  mfs_image_writeback(img, off, len, i & 1), want);
	}
	assert_int_equal(img->size, size);
}

/* ---- dropping pages ------------------------------------------------------- */

/* Pages of [first, first+n) blocks of img in the page cache (mincore on
 * a shared file mapping reports the page cache, mapped or not). */
static unsigned resident_blocks(struct mfs_image *img, uint64_t first,
				uint64_t n)
{
	unsigned char vec[512];
	unsigned count = 0;

	assert_true(n <= sizeof(vec) && BS == 4096);
	assert_int_equal(mincore(mfs_image_block(img, first), n * BS, vec), 0);
	for (uint64_t i = 0; i < n; i++)
		count += vec[i] & 1;
	return count;
}

/* Skip where the page cache cannot be dropped: tmpfs and ramfs keep file
 * pages whatever the advice. */
static void need_droppable_cache(const char *path)
{
	struct statfs sf;

	assert_int_equal(statfs(path, &sf), 0);
	if (sf.f_type == 0x01021994 || sf.f_type == 0x858458f6) {
		MFS_SKIP("%s is on tmpfs/ramfs: pages cannot be dropped\n",
			 path);
	}
}

static void test_drop(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img;
	uint8_t *p;
	char buf[BS];
	int fd;

	assert_int_equal(mfs_image_create(fx->path, 4 * MiB, false, false, &img), 0);
	fx->img[0] = img;
	need_droppable_cache(fx->path);
	assert_int_equal(mfs_image_reserve(img, 0, img->size), 0);
	/* Blocks 16..271: clean (synced); 300..309: dirty. */
	for (uint64_t b = 16; b < 272; b++)
		memset(mfs_image_block(img, b), (int)(b & 0xff), BS);
	assert_int_equal(mfs_image_sync(img), 0);
	for (uint64_t b = 300; b < 310; b++)
		memset(mfs_image_block(img, b), 0xd0 + (int)(b - 300), BS);
	assert_int_equal(resident_blocks(img, 16, 256), 256);

	/* Clean pages leave the page cache, even while mapped. */
	assert_int_equal(mfs_image_drop(img, 16 * BS, 256 * BS), 0);
	assert_int_equal(resident_blocks(img, 16, 256), 0);
	/* The data is still there, through the mapping and the file. */
	for (uint64_t b = 16; b < 272; b++) {
		p = mfs_image_block(img, b);
		if (p[0] != (b & 0xff) || p[BS - 1] != (b & 0xff))
			fail_msg("block %llu lost its data", (unsigned long long)b);
	}
	assert_int_equal(mfs_image_drop(img, 16 * BS, 256 * BS), 0);

	/* Dirty pages: never lost (MADV_DONTNEED on a shared mapping keeps
	 * their data in the page cache; FADV_DONTNEED at most writes them
	 * back first). Unsynced, so the file has them only if kept. */
	assert_int_equal(mfs_image_drop(img, 300 * BS, 10 * BS), 0);
	fd = open(fx->path, O_RDONLY);
	assert_true(fd >= 0);
	for (uint64_t b = 300; b < 310; b++) {
		assert_int_equal(pread(fd, buf, BS, (off_t)(b * BS)), BS);
		if ((uint8_t)buf[0] != 0xd0 + (b - 300) ||
		    (uint8_t)buf[BS - 1] != 0xd0 + (b - 300))
			fail_msg("dirty block %llu lost its data", (unsigned long long)b);
		p = mfs_image_block(img, b);
		assert_int_equal(p[7], 0xd0 + (b - 300));
	}
	close(fd);

	/* Only whole pages inside the range go. */
	for (uint64_t b = 40; b < 43; b++)
		assert_int_equal(*(volatile uint8_t *)mfs_image_block(img, b), b);
	assert_int_equal(resident_blocks(img, 40, 3), 3);
	assert_int_equal(mfs_image_drop(img, 40 * BS + 1, 2 * BS), 0);
	assert_int_equal(resident_blocks(img, 40, 1), 1);
	assert_int_equal(resident_blocks(img, 41, 1), 0);
	assert_int_equal(resident_blocks(img, 42, 1), 1);
	assert_int_equal(mfs_image_drop(img, 40 * BS + 1, 10), 0);

	/* Bounds. */
	assert_int_equal(mfs_image_drop(img, img->size - BS, BS + 1), -EINVAL);
	assert_int_equal(mfs_image_drop(img, 1, UINT64_MAX), -EINVAL);
	assert_int_equal(mfs_image_drop(img, img->size, 0), 0);
}

/* ---- block pointers ------------------------------------------------------- */

static void test_block_bounds(void **state)
{
	struct fx *fx = *state;
	struct mfs_image *img;
	uint64_t n;

	assert_int_equal(mfs_image_create(fx->path, MFS_IMAGE_MIN_BYTES, false, false,
					  &img), 0);
	fx->img[0] = img;
	n = mfs_image_blocks(img);
	assert_int_equal(n, 64);
	assert_ptr_equal(mfs_image_block(img, 0), img->base);
	assert_ptr_equal(mfs_image_block(img, n - 1), img->base + (n - 1) * BS);
	assert_null(mfs_image_block(img, n));
	assert_null(mfs_image_block(img, UINT64_MAX));
	assert_null(mfs_image_block(img, UINT64_MAX >> MFS_BLOCK_SHIFT));
	memset(mfs_image_block(img, n - 1), 0xab, BS);   /* last block writable */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_create_open_roundtrip),
		T(test_rdonly_maps_read_only),
		T(test_create_prealloc),
		T(test_unescape_mountinfo),
		T(test_lock_conflicts),
		T(test_lock_wait),
		T(test_create_existing_needs_force),
		T(test_create_force_on_locked_image),
		T(test_create_refuses_non_regular),
		T(test_create_bad_sizes),
		T(test_open_bad_files),
		T(test_open_too_big),
		T(test_grow),
		T(test_small_address_space),
		T(test_reserve_sparse),
		T(test_reserve_bounds),
		T(test_reserve_enospc),
		T(test_create_prealloc_enospc),
		T(test_reserve_no_fallocate),
		T(test_sync_hook),
		T(test_range_checks),
		T(test_drop),
		T(test_block_bounds),
#undef T
	};

	mfs_log_set_progname("test_image");
	return mfs_test_exit(cmocka_run_group_tests_name("image", tests, NULL, NULL));
}
