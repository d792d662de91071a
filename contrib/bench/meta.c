// SPDX-License-Identifier: MIT
/*
 * meta.c — metadata benchmarks for contrib/bench/run. Each mode times its
 * phases with CLOCK_MONOTONIC and prints one line per phase:
 *
 *     PHASE OPS SECONDS
 *
 * Modes:
 *   meta DIR N          in DIR (created, must not exist): create N empty
 *                       files, stat each, list the directory twice
 *                       ("readdir", "relist"), rename each, unlink each.
 *                       stat, rename and unlink go in a shuffled
 *                       (fixed-seed) order, as a hashed directory sees
 *                       them in real use.
 *   tree DIR D F SIZE   create D directories of F files of SIZE bytes each
 *                       (phase "create"), walk it with readdir + stat
 *                       ("walk"), remove it ("remove").
 *   mkfiles DIR N       create N empty files f0000000.. in DIR (untimed
 *                       helper: sources for the scale images).
 *   lookup DIR N COUNT [SECONDS]
 *                       stat COUNT names picked at random among the N files
 *                       made by mkfiles ("lookup"): lookup + getattr in a
 *                       large directory; stops early after SECONDS.
 *
 * Exit status: 0 success, 1 a system call failed (message on stderr), 2 usage.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	fprintf(stderr, "meta: %s %s: %s\n", what, path ? path : "",
		strerror(errno));
	exit(1);
}

static void report(const char *phase, long ops, double t0)
{
	double dt = now() - t0;

	printf("%s %ld %.6f\n", phase, ops, dt);
	fflush(stdout);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64*: fixed seed, same order on every target */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static long *shuffled(long n)
{
	long *p = malloc(sizeof(*p) * (size_t)n);

	if (!p)
		die("malloc", NULL);
	for (long i = 0; i < n; i++)
		p[i] = i;
	for (long i = n - 1; i > 0; i--) {
		long j = (long)(rng() % (uint64_t)(i + 1)), t = p[i];

		p[i] = p[j];
		p[j] = t;
	}
	return p;
}

static long parse(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 0) {
		fprintf(stderr, "meta: %s: not a count\n", s);
		exit(2);
	}
	return v;
}

static void create_empty(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
			0644);

	if (fd < 0)
		die("create", name);
	if (close(fd) < 0)
		die("close", name);
}

static int open_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		die("open", dir);
	return dfd;
}

static long list_dir(int dfd, const char *path, int do_stat)
{
	int fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *e;
	long n = 0;

	if (fd < 0)
		die("open", path);
	d = fdopendir(fd);
	if (!d)
		die("fdopendir", path);
	errno = 0;
	while ((e = readdir(d))) {
		struct stat st;

		if (e->d_name[0] == '.' &&
		    (e->d_name[1] == '\0' ||
		     (e->d_name[1] == '.' && e->d_name[2] == '\0')))
			continue;
		if (do_stat && fstatat(fd, e->d_name, &st,
				       AT_SYMLINK_NOFOLLOW) < 0)
			die("stat", e->d_name);
		n++;
	}
	if (errno)
		die("readdir", path);
	closedir(d);
	return n;
}

static int mode_meta(const char *dir, long n)
{
	char name[64], name2[64];
	long *order;
	double t0;
	int dfd;

	if (mkdir(dir, 0755) < 0)
		die("mkdir", dir);
	dfd = open_dir(dir);
	order = shuffled(n);

	t0 = now();
	for (long i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "file-%08ld", i);
		create_empty(dfd, name);
	}
	report("create", n, t0);

	t0 = now();
	for (long i = 0; i < n; i++) {
		struct stat st;

		snprintf(name, sizeof(name), "file-%08ld", order[i]);
		if (fstatat(dfd, name, &st, 0) < 0)
			die("stat", name);
	}
	report("stat", n, t0);

	t0 = now();
	if (list_dir(dfd, ".", 0) != n) {
		fprintf(stderr, "meta: readdir: wrong number of entries\n");
		return 1;
	}
	report("readdir", n, t0);

	/* The same listing again: a filesystem that caches listings (the
	 * kernel's readdir cache, FOPEN_CACHE_DIR on FUSE) answers it from
	 * memory; one that does not asks its daemon again. */
	t0 = now();
	if (list_dir(dfd, ".", 0) != n) {
		fprintf(stderr, "meta: readdir again: wrong number of entries\n");
		return 1;
	}
	report("relist", n, t0);

	t0 = now();
	for (long i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "file-%08ld", order[i]);
		snprintf(name2, sizeof(name2), "renamed-%08ld", order[i]);
		if (renameat(dfd, name, dfd, name2) < 0)
			die("rename", name);
	}
	report("rename", n, t0);

	t0 = now();
	for (long i = n - 1; i >= 0; i--) {
		snprintf(name, sizeof(name), "renamed-%08ld", order[i]);
		if (unlinkat(dfd, name, 0) < 0)
			die("unlink", name);
	}
	report("unlink", n, t0);

	close(dfd);
	if (rmdir(dir) < 0)
		die("rmdir", dir);
	free(order);
	return 0;
}

static int mode_tree(const char *dir, long nd, long nf, long size)
{
	char path[128];
	char *buf = malloc((size_t)size + 1);
	double t0;
	long total = 0;
	int dfd;

	if (!buf)
		die("malloc", NULL);
	for (long i = 0; i < size; i++)
		buf[i] = (char)rng();
	if (mkdir(dir, 0755) < 0)
		die("mkdir", dir);
	dfd = open_dir(dir);

	t0 = now();
	for (long d = 0; d < nd; d++) {
		snprintf(path, sizeof(path), "d%05ld", d);
		if (mkdirat(dfd, path, 0755) < 0)
			die("mkdir", path);
		for (long f = 0; f < nf; f++) {
			int fd;

			snprintf(path, sizeof(path), "d%05ld/f%04ld", d, f);
			fd = openat(dfd, path, O_CREAT | O_EXCL | O_WRONLY |
				    O_CLOEXEC, 0644);
			if (fd < 0)
				die("create", path);
			if (size && write(fd, buf, (size_t)size) != size)
				die("write", path);
			if (close(fd) < 0)
				die("close", path);
		}
	}
	report("create", nd * (nf + 1), t0);

	t0 = now();
	for (long d = 0; d < nd; d++) {
		snprintf(path, sizeof(path), "d%05ld", d);
		total += list_dir(dfd, path, 1);
	}
	total += list_dir(dfd, ".", 1);
	if (total != nd * (nf + 1)) {
		fprintf(stderr, "meta: walk: found %ld entries, expected %ld\n",
			total, nd * (nf + 1));
		return 1;
	}
	report("walk", total, t0);

	t0 = now();
	for (long d = 0; d < nd; d++) {
		for (long f = 0; f < nf; f++) {
			snprintf(path, sizeof(path), "d%05ld/f%04ld", d, f);
			if (unlinkat(dfd, path, 0) < 0)
				die("unlink", path);
		}
		snprintf(path, sizeof(path), "d%05ld", d);
		if (unlinkat(dfd, path, AT_REMOVEDIR) < 0)
			die("rmdir", path);
	}
	report("remove", nd * (nf + 1), t0);

	close(dfd);
	if (rmdir(dir) < 0)
		die("rmdir", dir);
	free(buf);
	return 0;
}

static int mode_mkfiles(const char *dir, long n)
{
	char name[64];
	double t0 = now();
	int dfd;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		die("mkdir", dir);
	dfd = open_dir(dir);
	for (long i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "f%07ld", i);
		create_empty(dfd, name);
	}
	report("mkfiles", n, t0);
	close(dfd);
	return 0;
}

static int mode_lookup(const char *dir, long n, long count, long limit)
{
	char name[64];
	double t0;
	long i;
	int dfd = open_dir(dir);

	if (n == 0) {
		fprintf(stderr, "meta: lookup: N must be positive\n");
		return 2;
	}
	t0 = now();
	for (i = 0; i < count; i++) {
		struct stat st;

		snprintf(name, sizeof(name), "f%07ld",
			 (long)(rng() % (uint64_t)n));
		if (fstatat(dfd, name, &st, 0) < 0)
			die("stat", name);
		if (limit && (i & 15) == 15 && now() - t0 > limit) {
			i++;
			break;
		}
	}
	report("lookup", i, t0);
	close(dfd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "meta"))
		return mode_meta(argv[2], parse(argv[3]));
	if (argc == 6 && !strcmp(argv[1], "tree"))
		return mode_tree(argv[2], parse(argv[3]), parse(argv[4]),
				 parse(argv[5]));
	if (argc == 4 && !strcmp(argv[1], "mkfiles"))
		return mode_mkfiles(argv[2], parse(argv[3]));
	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "lookup"))
		return mode_lookup(argv[2], parse(argv[3]), parse(argv[4]),
				   argc == 6 ? parse(argv[5]) : 0);
	fprintf(stderr,
		"usage: meta meta DIR N | meta tree DIR DIRS FILES SIZE |\n"
		"       meta mkfiles DIR N | meta lookup DIR N COUNT [SECONDS]\n");
	return 2;
}
