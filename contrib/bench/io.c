// SPDX-License-Identifier: MIT
/*
 * io.c — data benchmarks for contrib/bench/run. Prints one line:
 *
 *     PHASE BYTES_OR_OPS SECONDS
 *
 * Modes:
 *   write FILE SIZE BS   create FILE (must not exist) and write SIZE bytes
 *                        in BS-byte write(2)s of non-zero, incompressible
 *                        data, then fsync; the time includes the fsync.
 *   read FILE BS         read FILE to the end in BS-byte read(2)s.
 *   fsync FILE COUNT BS  COUNT times: append BS bytes to FILE (created,
 *                        must not exist), fsync. Ops = COUNT.
 *
 * Exit status: 0 success, 1 a system call failed, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "io: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static long long parse(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	if (*s == '\0' || v <= 0)
		goto bad;
	switch (*end) {
	case 'K': case 'k': v <<= 10; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	case 'G': case 'g': v <<= 30; end++; break;
	default: break;
	}
	if (*end == '\0')
		return v;
bad:
	fprintf(stderr, "io: %s: not a positive size\n", s);
	exit(2);
}

static char *fill(size_t n)
{
	uint64_t x = 0x243f6a8885a308d3ull;
	char *buf;

	if (posix_memalign((void **)&buf, 4096, n))
		die("malloc", "");
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (char)(x >> 24);
	}
	return buf;
}

static void write_all(int fd, const char *buf, size_t n, const char *path)
{
	while (n) {
		ssize_t w = write(fd, buf, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write", path);
		}
		buf += w;
		n -= (size_t)w;
	}
}

static int mode_write(const char *path, long long size, long long bs)
{
	char *buf = fill((size_t)bs);
	double t0 = now();
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);

	if (fd < 0)
		die("create", path);
	for (long long done = 0; done < size; done += bs) {
		long long n = size - done < bs ? size - done : bs;

		/* vary the data a little so no block equals another */
		memcpy(buf, &done, sizeof(done));
		write_all(fd, buf, (size_t)n, path);
	}
	if (fsync(fd) < 0)
		die("fsync", path);
	if (close(fd) < 0)
		die("close", path);
	printf("write %lld %.6f\n", size, now() - t0);
	return 0;
}

static int mode_read(const char *path, long long bs)
{
	char *buf = fill((size_t)bs);
	long long total = 0;
	double t0 = now();
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open", path);
	for (;;) {
		ssize_t r = read(fd, buf, (size_t)bs);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("read", path);
		}
		if (r == 0)
			break;
		total += r;
	}
	close(fd);
	printf("read %lld %.6f\n", total, now() - t0);
	return 0;
}

static int mode_fsync(const char *path, long long count, long long bs)
{
	char *buf = fill((size_t)bs);
	double t0 = now();
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_APPEND | O_CLOEXEC,
		      0644);

	if (fd < 0)
		die("create", path);
	for (long long i = 0; i < count; i++) {
		memcpy(buf, &i, sizeof(i));
		write_all(fd, buf, (size_t)bs, path);
		if (fsync(fd) < 0)
			die("fsync", path);
	}
	if (close(fd) < 0)
		die("close", path);
	printf("fsync %lld %.6f\n", count, now() - t0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "write"))
		return mode_write(argv[2], parse(argv[3]), parse(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "read"))
		return mode_read(argv[2], parse(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "fsync"))
		return mode_fsync(argv[2], parse(argv[3]), parse(argv[4]));
	fprintf(stderr, "usage: io write FILE SIZE BS | io read FILE BS | "
		"io fsync FILE COUNT BS\n");
	return 2;
}
