// SPDX-License-Identifier: MIT
/*
 * badread.so — an LD_PRELOAD shim that makes the filesystem under a test
 * tool misbehave, so the tests can prove that mfsx and mfsstress notice.
 * It wraps libc calls; the tool itself is unchanged. Configured by
 * environment variables (each off unless set):
 *
 *   BADREAD_PREAD_AFTER=N    after N pread calls, flip one byte in the
 *                            data of the next pread that returns data
 *                            (once), and say which file offset on stderr:
 *                            "badread: flipped byte at file offset 0x…"
 *   BADREAD_FALLOCATE=ERR    every fallocate fails with ERR (EOPNOTSUPP,
 *                            ENOSYS or EINVAL): an unsupported operation
 *   BADREAD_UNLINKAT_AFTER=N the unlinkat call after the first N fails with
 *                            EBUSY and does nothing, once per process: an
 *                            errno that makes no sense there
 *
 * Not for sanitizer builds: the ASan runtime must be the first library.
 */
#undef _FILE_OFFSET_BITS	/* define pread and pread64 both, untouched */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static long env_num(const char *name)
{
	const char *s = getenv(name);

	return s && *s ? strtol(s, NULL, 0) : -1;
}

static void *real(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (!f) {
		fprintf(stderr, "badread: dlsym(%s) failed\n", name);
		_exit(127);
	}
	return f;
}

/* ---- pread: one flipped byte */

static long pread_calls;
static int pread_flipped;

static void maybe_flip(int fd, void *buf, ssize_t r, long long off)
{
	long after = env_num("BADREAD_PREAD_AFTER");

	if (after < 0 || pread_flipped || ++pread_calls <= after || r <= 0)
		return;
	((unsigned char *)buf)[r / 2] ^= 0xa5;
	pread_flipped = 1;
	fprintf(stderr, "badread: flipped byte at file offset 0x%llx (fd %d, pread call %ld)\n",
		off + (long long)(r / 2), fd, pread_calls);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off);
ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	static ssize_t (*f)(int, void *, size_t, off_t);
	ssize_t r;

	if (!f)
		f = real("pread");
	r = f(fd, buf, n, off);
	maybe_flip(fd, buf, r, off);
	return r;
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t off);
ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
	static ssize_t (*f)(int, void *, size_t, off64_t);
	ssize_t r;

	if (!f)
		f = real("pread64");
	r = f(fd, buf, n, off);
	maybe_flip(fd, buf, r, off);
	return r;
}

/* _FORTIFY_SOURCE builds call these instead. */
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t bufsize);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t bufsize)
{
	return pread(fd, buf, n < bufsize ? n : bufsize, off);
}

ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t bufsize);
ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t bufsize)
{
	return pread64(fd, buf, n < bufsize ? n : bufsize, off);
}

/* ---- fallocate: unsupported */

static int fallocate_errno(void)
{
	const char *s = getenv("BADREAD_FALLOCATE");

	if (!s || !*s)
		return 0;
	if (!strcmp(s, "ENOSYS"))
		return ENOSYS;
	if (!strcmp(s, "EINVAL"))
		return EINVAL;
	return EOPNOTSUPP;
}

int fallocate(int fd, int mode, off_t off, off_t len);
int fallocate(int fd, int mode, off_t off, off_t len)
{
	static int (*f)(int, int, off_t, off_t);
	int err = fallocate_errno();

	if (err) {
		errno = err;
		return -1;
	}
	if (!f)
		f = real("fallocate");
	return f(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off64_t off, off64_t len);
int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	static int (*f)(int, int, off64_t, off64_t);
	int err = fallocate_errno();

	if (err) {
		errno = err;
		return -1;
	}
	if (!f)
		f = real("fallocate64");
	return f(fd, mode, off, len);
}

/* ---- unlinkat: a nonsensical errno */

static long unlinkat_calls;
static int unlinkat_failed;

int unlinkat(int dirfd, const char *path, int flags);
int unlinkat(int dirfd, const char *path, int flags)
{
	static int (*f)(int, const char *, int);
	long after = env_num("BADREAD_UNLINKAT_AFTER");

	if (after >= 0 && !unlinkat_failed && ++unlinkat_calls > after) {
		unlinkat_failed = 1;
		fprintf(stderr, "badread: unlinkat(%s) fails with EBUSY\n", path);
		errno = EBUSY;
		return -1;
	}
	if (!f)
		f = real("unlinkat");
	return f(dirfd, path, flags);
}
