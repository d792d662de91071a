/* SPDX-License-Identifier: MIT */
/*
 * test_populate.c — mkfs -d: a host tree copied into a new image must read
 * back identical through the core API (data, holes, links, types, owners,
 * modes, times, xattrs), and lost+found is merged.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "mmapfs/mmapfs.h"
#include "populate.h"
#include "newfs.h"
#include "txn.h"

static char top[64], src[96], img[96];

static void put_file(const char *rel, const void *data, size_t len, off_t at)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", src, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, data, len, at), (ssize_t)len);
	close(fd);
}

static int setup(void **state)
{
	char p[256];
	static char big[300000];
	struct timespec ts[2] = { { 1000000000, 5 }, { 1100000000, 7 } };

	(void)state;
	snprintf(top, sizeof(top), "/tmp/mmapfs-pop-XXXXXX");
	assert_non_null(mkdtemp(top));
	snprintf(src, sizeof(src), "%s/src", top);
	snprintf(img, sizeof(img), "%s/img", top);
	assert_int_equal(mkdir(src, 0755), 0);
	snprintf(p, sizeof(p), "%s/dir", src);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(chmod(p, 02750), 0);  /* mkdir ignores S_ISGID */
	snprintf(p, sizeof(p), "%s/lost+found", src);
	assert_int_equal(mkdir(p, 0700), 0);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + i / 4096);
	put_file("dir/big", big, sizeof(big), 0);
	put_file("sparse", "end", 3, 50 << 20);       /* 50 MiB hole first */
	put_file("lost+found/kept", "k", 1, 0);
	snprintf(p, sizeof(p), "%s/sparse", src);
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	assert_int_equal(chown(p, 1234, 5678), 0);
	assert_int_equal(setxattr(p, "user.color", "blue", 4, 0), 0);
	snprintf(p, sizeof(p), "%s/hard", src);
	{
		char q[256];

		snprintf(q, sizeof(q), "%s/dir/big", src);
		assert_int_equal(link(q, p), 0);
	}
	snprintf(p, sizeof(p), "%s/sym", src);
	assert_int_equal(symlink("dir/big", p), 0);
	snprintf(p, sizeof(p), "%s/fifo", src);
	assert_int_equal(mkfifo(p, 0600), 0);
	snprintf(p, sizeof(p), "%s/null", src);
	assert_int_equal(mknod(p, S_IFCHR | 0666, makedev(1, 3)), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static uint64_t look(struct mfs_fs *fs, uint64_t dir, const char *name,
		     struct mfs_attr *a)
{
	assert_int_equal(mfs_lookup(fs, dir, name, a), 0);
	mfs_forget(fs, a->ino, 1);
	return a->ino;
}

/* Read a whole file through the core into buf. */
static size_t slurp(struct mfs_fs *fs, uint64_t ino, char *buf, size_t max)
{
	static struct iovec iov[1024];
	unsigned cnt;
	size_t n, off = 0;

	for (;;) {
		size_t want = max - off < (1u << 20) ? max - off : (1u << 20);

		if (!want)
			return off;
		assert_int_equal(mfs_read(fs, ino, off, want, iov, 1024, &cnt, &n), 0);
		if (!n)
			return off;
		for (unsigned i = 0; i < cnt; i++) {
			memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
	}
}

static void test_populate_roundtrip(void **state)
{
	struct mfs_format_opts o = { .size = 64 << 20 };
	struct mfs_fs *fs;
	struct mfs_attr a, b;
	uint64_t files, bytes, dir, lf, d;
	static char buf[1 << 20];
	char s[64];
	size_t len;

	(void)state;
	assert_int_equal(mfs_format(img, &o), 0);
	assert_int_equal(mfs_fs_open(img, 0, &fs), 0);
	assert_int_equal(mfs_populate(fs, src, &files, &bytes), 0);
	assert_int_equal(mfs_fs_close(fs), 0);
	assert_int_equal(mfs_fs_open(img, 0, &fs), 0);

	dir = look(fs, MFS_ROOT, "dir", &a);
	assert_int_equal(a.mode, S_IFDIR | 02750);
	d = look(fs, dir, "big", &a);
	assert_int_equal(a.size, 300000);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(look(fs, MFS_ROOT, "hard", &b), d);
	assert_int_equal(slurp(fs, d, buf, sizeof(buf)), 300000);
	for (size_t i = 0; i < 300000; i++)
		if (buf[i] != (char)(i * 7 + i / 4096))
			fail_msg("big: byte %zu differs", i);

	look(fs, MFS_ROOT, "sparse", &a);
	assert_int_equal(a.size, (50 << 20) + 3);
	assert_true(a.blocks <= 8);                    /* the hole stayed */
	assert_int_equal(a.uid, 1234);
	assert_int_equal(a.gid, 5678);
	assert_int_equal(a.mtime.tv_sec, 1100000000);
	assert_int_equal(a.mtime.tv_nsec, 7);
	assert_int_equal(a.atime.tv_sec, 1000000000);
	assert_int_equal(mfs_getxattr(fs, a.ino, "user.color", s, sizeof(s), &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(s, "blue", 4);

	look(fs, MFS_ROOT, "sym", &a);
	assert_true(S_ISLNK(a.mode));
	assert_int_equal(mfs_readlink(fs, a.ino, s, sizeof(s), &len), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(s, "dir/big", 7);
	look(fs, MFS_ROOT, "fifo", &a);
	assert_true(S_ISFIFO(a.mode));
	look(fs, MFS_ROOT, "null", &a);
	assert_true(S_ISCHR(a.mode));
	assert_int_equal(a.rdev, makedev(1, 3));

	lf = look(fs, MFS_ROOT, "lost+found", &a);
	assert_int_equal(lf, MFS_FIRST_INO);           /* merged, not new */
	look(fs, lf, "kept", &a);
	assert_int_equal(a.size, 1);
	assert_int_equal(mfs_fs_close(fs), 0);
}

static void test_populate_errors(void **state)
{
	struct mfs_format_opts o = { .size = 1 << 20 };
	struct mfs_fs *fs;
	char p[256];

	(void)state;
	assert_int_equal(mfs_format(img, &o), 0);
	assert_int_equal(mfs_fs_open(img, 0, &fs), 0);
	snprintf(p, sizeof(p), "%s/none", top);
	assert_int_equal(mfs_populate(fs, p, NULL, NULL), -ENOENT);
	snprintf(p, sizeof(p), "%s/sparse", src);
	assert_int_equal(mfs_populate(fs, p, NULL, NULL), -ENOTDIR);
	/* A 1 MiB image cannot hold the 50 MiB... of holes, yes; but a
	 * second copy of the tree on top of the first collides. */
	assert_int_equal(mfs_populate(fs, src, NULL, NULL), 0);
	assert_int_equal(mfs_populate(fs, src, NULL, NULL), -EEXIST);
	assert_int_equal(mfs_fs_close(fs), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_populate_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_populate_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
