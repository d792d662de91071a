/* SPDX-License-Identifier: MIT */
/*
 * test_scale.c — a directory of 1,000,000 entries: created, listed (every
 * name once), looked up, reopened (open does not read the directory), and
 * removed, with exact block accounting at the end. MMAPFS_SCALE_ENTRIES
 * changes the count.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "btree.h"
#include "mmapfs/mmapfs.h"
#include "newfs.h"
#include "txn.h"

static char dir[64], img[96];
static uint8_t *seen;
static long nseen, nbad;

static int fill(void *ctx, const char *name, size_t len,
		const struct mfs_attr *a, uint64_t off)
{
	long i;

	(void)ctx; (void)a; (void)off;
	if (len == 12 && !strncmp(name, "file-", 5)) {
		i = strtol(name + 5, NULL, 10);
		if (seen[i]++)
			nbad++;
		nseen++;
	}
	return 0;
}

static int count_cb(void *arg, uint64_t block)
{
	(void)block;
	++*(uint64_t *)arg;
	return 0;
}

static void test_million(void **state)
{
	struct mfs_format_opts o = { .size = 2ULL << 30 };
	struct mfs_cred cr = { .cap_fsetid = true, .in_group = true };
	const char *env = getenv("MMAPFS_SCALE_ENTRIES");
	long n = env ? atol(env) : 1000000, i;
	struct mfs_fs *fs;
	struct mfs_vol *v;
	struct mfs_attr a, d;
	struct mfs_statfs st0, st;
	uint64_t used = 0;
	char name[32];

	(void)state;
	assert_true(n > 0 && n <= 10000000);
	seen = calloc((size_t)n, 1);
	assert_non_null(seen);
	assert_int_equal(mfs_format(img, &o), 0);
	assert_int_equal(mfs_fs_open(img, 0, &fs), 0);
	assert_int_equal(mfs_statfs(fs, &st0), 0);
	assert_int_equal(mfs_mkdir(fs, &cr, MFS_ROOT, "big", 0755, &d), 0);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "file-%07ld", i);
		assert_int_equal(mfs_mknod(fs, &cr, d.ino, name, S_IFREG | 0644, 0, &a), 0);
		mfs_forget(fs, a.ino, 1);
	}
	assert_int_equal(mfs_fs_close(fs), 0);
	assert_int_equal(mfs_fs_open(img, 0, &fs), 0);
	assert_int_equal(mfs_readdir(fs, d.ino, 0, false, fill, NULL), 0);
	assert_int_equal(nseen, n);
	assert_int_equal(nbad, 0);
	for (i = 0; i < n; i += 97) {
		snprintf(name, sizeof(name), "file-%07ld", i);
		assert_int_equal(mfs_lookup(fs, d.ino, name, &a), 0);
		mfs_forget(fs, a.ino, 1);
	}
	assert_int_equal(mfs_lookup(fs, d.ino, "file-x", &a), -ENOENT);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "file-%07ld", i);
		assert_int_equal(mfs_unlink(fs, d.ino, name), 0);
	}
	assert_int_equal(mfs_rmdir(fs, MFS_ROOT, "big"), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_statfs(fs, &st), 0);
	assert_int_equal(st.bfree, st0.bfree);
	assert_int_equal(mfs_fs_close(fs), 0);

	assert_int_equal(mfs_vol_open(img, MFS_VOL_RDONLY, &v), 0);
	assert_int_equal(mfs_btree_check(v, MFS_TREE_FS, count_cb, &used), 0);
	assert_int_equal(mfs_btree_check(v, MFS_TREE_FREE, count_cb, &used), 0);
	assert_int_equal(used + mfs_alloc_free_blocks(v->alloc) + 2,
			 mfs_alloc_block_count(v->alloc));
	mfs_vol_close(v);
	free(seen);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/mmapfs-scale-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(img, sizeof(img), "%s/img", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(img);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_million, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
