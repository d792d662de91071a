/* SPDX-License-Identifier: MIT */
/*
 * test_space.c — a full filesystem: ENOSPC for growth, and deletes that
 * always succeed (the reserve), with exact block accounting afterwards.
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

static int setup(void **state)
{
	struct mfs_format_opts o = { .size = 1 << 20 };

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/mmapfs-space-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(img, sizeof(img), "%s/img", dir);
	assert_int_equal(mfs_format(img, &o), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(img);
	rmdir(dir);
	return 0;
}

static int count_cb(void *arg, uint64_t block)
{
	(void)block;
	++*(uint64_t *)arg;
	return 0;
}

/* Tree blocks + free blocks + the two superblocks == the image. */
static void check_accounting(void)
{
	struct mfs_vol *v;
	uint64_t used = 0;

	assert_int_equal(mfs_vol_open(img, MFS_VOL_RDONLY, &v), 0);
	assert_int_equal(mfs_btree_check(v, MFS_TREE_FS, count_cb, &used), 0);
	assert_int_equal(mfs_btree_check(v, MFS_TREE_FREE, count_cb, &used), 0);
	assert_int_equal(used + mfs_alloc_free_blocks(v->alloc) + 2,
			 mfs_alloc_block_count(v->alloc));
	mfs_vol_close(v);
}

static void test_fill_and_empty(void **state)
{
	struct mfs_cred cr = { .cap_fsetid = true, .in_group = true };
	struct mfs_fs *fs;
	struct mfs_attr a;
	struct mfs_statfs st;
	char name[64];
	int n, i, rc, round;

	(void)state;
	assert_int_equal(mfs_fs_open(img, 0, &fs), 0);
	for (round = 0; round < 3; round++) {
		/* Long names make each entry big, so the tree fills fast. */
		for (n = 0;; n++) {
			snprintf(name, sizeof(name), "%048d", n);
			rc = mfs_mkdir(fs, &cr, MFS_ROOT, name, 0755, &a);
			if (rc == -ENOSPC)
				break;
			assert_int_equal(rc, 0);
			mfs_forget(fs, a.ino, 1);
		}
		assert_true(n > 100);
		assert_int_equal(mfs_statfs(fs, &st), 0);
		assert_true(st.bavail < 32);
		/* Deletes must all succeed on the full filesystem. */
		for (i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "%048d", i);
			assert_int_equal(mfs_rmdir(fs, MFS_ROOT, name), 0);
		}
		assert_int_equal(mfs_fs_sync(fs), 0);
		assert_int_equal(mfs_fs_error(fs), 0);
	}
	assert_int_equal(mfs_fs_close(fs), 0);
	check_accounting();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fill_and_empty, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
