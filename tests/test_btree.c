/* SPDX-License-Identifier: MIT */
/*
 * test_btree.c — the copy-on-write B+tree and its transactions, on real
 * image files.
 *
 * Unit cases pin down each call's contract (return codes, value sizes, key
 * order, cursors, lookup_le, lookup_mut, depth and collapse). The random
 * model test runs hundreds of thousands of operations against a sorted
 * array, with commits, aborts and reopens at random points, and after each
 * phase checks both trees, compares every item and proves the free space
 * exact (check_space in mfs_test.h).
 *
 * Environment: MMAPFS_SEED=n runs only seed n (printed by every run);
 * MMAPFS_OPS=n sets the operations per seed of the model test;
 * MMAPFS_DEEP_ITEMS=n the item count of the deep-tree test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "mfs_test.h"

#define MiB (1024ULL * 1024)

struct fx {
	char dir[PATH_MAX];
	char img[PATH_MAX + 16];
	struct mfs_vol *v;
	uint64_t rng;
};

/* Delete every item of the FS tree (what mkfs wrote) and commit, so unit
 * cases start from an empty tree. */
static void clear_fs_tree(struct mfs_vol *v)
{
	struct model m = { 0 };

	model_load(&m, v, MFS_TREE_FS);
	for (size_t i = 0; i < m.n; i++)
		assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &m.it[i].key), 0);
	model_free(&m);
	assert_int_equal(mfs_txn_commit(v), 0);
	model_load(&m, v, MFS_TREE_FS);
	assert_int_equal(m.n, 0);
	model_free(&m);
}

static int setup_size(void **state, uint64_t size)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	t_mkdtemp(f->dir, sizeof(f->dir));
	snprintf(f->img, sizeof(f->img), "%s/img", f->dir);
	t_format(f->img, size);
	f->v = t_open(f->img, 0);
	clear_fs_tree(f->v);
	f->rng = 0x5eed;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_size(state, 32 * MiB);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->v)
		mfs_vol_close(f->v);
	t_rmtree(f->dir);
	free(f);
	return 0;
}

static void fx_reopen(struct fx *f)
{
	assert_int_equal(mfs_vol_close(f->v), 0);
	f->v = NULL;
	f->v = t_open(f->img, 0);
}

/* Deterministic value bytes for (id, generation-ish salt). */
static void pattern(void *buf, size_t len, uint64_t id, uint64_t salt)
{
	uint64_t s = id * 0x9e3779b97f4a7c15ULL ^ salt;

	rng_fill(&s, buf, len);
}

static void expect_val(struct mfs_vol *v, const struct mfs_key *k,
			 const void *want, size_t wlen)
{
	const void *val = NULL;
	size_t len = 12345;
	int rc = mfs_btree_lookup(v, MFS_TREE_FS, k, &val, &len);

	if (rc)
		fail_msg("lookup " T_KEY_FMT " = %d", T_KEY_ARG(*k), rc);
	assert_int_equal(len, wlen);
	if (wlen)
		assert_memory_equal(val, want, wlen);
}

static void expect_absent(struct mfs_vol *v, const struct mfs_key *k)
{
	const void *val;
	size_t len;

	assert_int_equal(mfs_btree_lookup(v, MFS_TREE_FS, k, &val, &len), -ENOENT);
}

static void expect_model(struct mfs_vol *v, const struct model *m)
{
	assert_int_equal(tree_matches_model(v, MFS_TREE_FS, m, "model"), 0);
	assert_int_equal(mfs_btree_check(v, MFS_TREE_FS, NULL, NULL), 0);
	assert_int_equal(mfs_btree_check(v, MFS_TREE_FREE, NULL, NULL), 0);
}

/* ------------------------------------------------------------------ */

static void test_key_cmp(void **state)
{
	struct mfs_key a, b;

	(void)state;
	a = mfs_key_make(1, 1, 0);
	b = mfs_key_make(1, 1, 1);
	assert_true(mfs_key_cmp(&a, &b) < 0);
	assert_true(mfs_key_cmp(&b, &a) > 0);
	assert_int_equal(mfs_key_cmp(&a, &a), 0);
	a = mfs_key_make(1, 1, UINT64_MAX);
	b = mfs_key_make(1, 2, 0);
	assert_true(mfs_key_cmp(&a, &b) < 0);  /* type before offset */
	a = mfs_key_make(1, 255, UINT64_MAX);
	b = mfs_key_make(2, 0, 0);
	assert_true(mfs_key_cmp(&a, &b) < 0);  /* objectid first */
	a = mfs_key_make(1ULL << 63, 0, 0);
	b = mfs_key_make(1, 0, 0);
	assert_true(mfs_key_cmp(&a, &b) > 0);  /* unsigned */
	a = mfs_key_make(5, 1, 1ULL << 63);
	b = mfs_key_make(5, 1, 1);
	assert_true(mfs_key_cmp(&a, &b) > 0);
	a = mfs_key_make(5, 200, 0);
	b = mfs_key_make(5, 100, 0);
	assert_true(mfs_key_cmp(&a, &b) > 0);
}

static void test_insert_lookup(void **state)
{
	struct fx *f = *state;
	struct mfs_key k1 = mfs_key_make(T_OBJ_BASE, 1, 0);
	struct mfs_key k2 = mfs_key_make(T_OBJ_BASE, 1, 1);
	struct mfs_key k3 = mfs_key_make(T_OBJ_BASE + 1, 4, 77);
	struct mfs_key missing = mfs_key_make(T_OBJ_BASE, 1, 2);
	char a[] = "alpha", b[] = "bravo-bravo", c[100];

	pattern(c, sizeof(c), 3, 0);
	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k1, a, sizeof(a)), 0);
	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k2, b, sizeof(b)), 0);
	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k3, c, sizeof(c)), 0);
	expect_val(f->v, &k1, a, sizeof(a));
	expect_val(f->v, &k2, b, sizeof(b));
	expect_val(f->v, &k3, c, sizeof(c));
	expect_absent(f->v, &missing);

	/* -EEXIST leaves the old value. */
	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k1, b, sizeof(b)),
			 -EEXIST);
	expect_val(f->v, &k1, a, sizeof(a));

	assert_int_equal(mfs_txn_commit(f->v), 0);
	expect_val(f->v, &k1, a, sizeof(a));
	fx_reopen(f);
	expect_val(f->v, &k1, a, sizeof(a));
	expect_val(f->v, &k2, b, sizeof(b));
	expect_val(f->v, &k3, c, sizeof(c));
	expect_absent(f->v, &missing);
	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k3, a, sizeof(a)),
			 -EEXIST);
	assert_int_equal(check_space(f->v, "insert_lookup"), 0);
	assert_int_equal(f->v->error, 0);
}

static void test_update_sizes(void **state)
{
	struct fx *f = *state;
	struct model m = { 0 };
	uint8_t buf[MFS_MAX_VALUE];
	static const size_t sizes[] = { 10, 900, 0, MFS_MAX_VALUE, 1, 500, 3,
					MFS_MAX_VALUE, 0, 17 };
	struct mfs_key k = mfs_key_make(T_OBJ_BASE, 1, 0);
	struct mfs_key missing = mfs_key_make(T_OBJ_BASE, 1, 1);

	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, "x", 1), 0);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		pattern(buf, sizes[i], 1, i);
		assert_int_equal(mfs_btree_update(f->v, MFS_TREE_FS, &k, buf,
						  sizes[i]), 0);
		expect_val(f->v, &k, buf, sizes[i]);
	}
	assert_int_equal(mfs_btree_update(f->v, MFS_TREE_FS, &missing, buf, 5),
			 -ENOENT);
	expect_absent(f->v, &missing);

	/* Many neighbours in few leaves: growing each value forces splits
	 * during update, shrinking them lets leaves merge. */
	model_set(&m, &k, buf, 17);
	for (uint64_t i = 0; i < 120; i++) {
		struct mfs_key ki = mfs_key_make(T_OBJ_BASE + 1, 1, i);
		pattern(buf, 60, i, 0);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &ki, buf, 60), 0);
		model_set(&m, &ki, buf, 60);
	}
	expect_model(f->v, &m);
	assert_int_equal(mfs_txn_commit(f->v), 0);
	for (unsigned round = 0; round < 3; round++) {
		for (uint64_t i = 0; i < 120; i++) {
			struct mfs_key ki = mfs_key_make(T_OBJ_BASE + 1, 1,
							 (i * 37) % 120);
			size_t len = round == 0 ? MFS_MAX_VALUE :
				     round == 1 ? 0 : (size_t)(i * 8);
			pattern(buf, len, i, round + 10);
			assert_int_equal(mfs_btree_update(f->v, MFS_TREE_FS, &ki,
							  buf, len), 0);
			model_set(&m, &ki, buf, len);
		}
		expect_model(f->v, &m);
		assert_int_equal(mfs_txn_commit(f->v), 0);
		assert_int_equal(check_space(f->v, "update_sizes"), 0);
	}
	fx_reopen(f);
	expect_model(f->v, &m);
	assert_int_equal(check_space(f->v, "update_sizes reopen"), 0);
	model_free(&m);
}

static void test_put(void **state)
{
	struct fx *f = *state;
	struct mfs_key k = mfs_key_make(T_OBJ_BASE, 2, 9);
	uint8_t buf[MFS_MAX_VALUE];

	pattern(buf, 300, 1, 1);
	assert_int_equal(mfs_btree_put(f->v, MFS_TREE_FS, &k, buf, 300), 0);
	expect_val(f->v, &k, buf, 300);
	pattern(buf, 20, 1, 2);
	assert_int_equal(mfs_btree_put(f->v, MFS_TREE_FS, &k, buf, 20), 0);
	expect_val(f->v, &k, buf, 20);
	pattern(buf, MFS_MAX_VALUE, 1, 3);
	assert_int_equal(mfs_btree_put(f->v, MFS_TREE_FS, &k, buf, MFS_MAX_VALUE), 0);
	expect_val(f->v, &k, buf, MFS_MAX_VALUE);
	assert_int_equal(mfs_btree_put(f->v, MFS_TREE_FS, &k, buf, 0), 0);
	expect_val(f->v, &k, buf, 0);
	assert_int_equal(mfs_txn_commit(f->v), 0);
	fx_reopen(f);
	expect_val(f->v, &k, buf, 0);
}

static void test_delete(void **state)
{
	struct fx *f = *state;
	struct mfs_key k = mfs_key_make(T_OBJ_BASE, 1, 0);
	struct mfs_key k2 = mfs_key_make(T_OBJ_BASE, 1, 1);

	assert_int_equal(mfs_btree_delete(f->v, MFS_TREE_FS, &k), -ENOENT);
	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, "a", 1), 0);
	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k2, "b", 1), 0);
	assert_int_equal(mfs_btree_delete(f->v, MFS_TREE_FS, &k), 0);
	expect_absent(f->v, &k);
	expect_val(f->v, &k2, "b", 1);
	assert_int_equal(mfs_btree_delete(f->v, MFS_TREE_FS, &k), -ENOENT);
	assert_int_equal(mfs_txn_commit(f->v), 0);

	/* Delete in a committed tree, then abort: the item is back. */
	assert_int_equal(mfs_btree_delete(f->v, MFS_TREE_FS, &k2), 0);
	expect_absent(f->v, &k2);
	assert_int_equal(mfs_txn_abort(f->v), 0);
	expect_val(f->v, &k2, "b", 1);
	assert_int_equal(mfs_btree_delete(f->v, MFS_TREE_FS, &k2), 0);
	assert_int_equal(mfs_txn_commit(f->v), 0);
	fx_reopen(f);
	expect_absent(f->v, &k2);
	assert_int_equal(mfs_btree_delete(f->v, MFS_TREE_FS, &k2), -ENOENT);
	/* Reinsert after delete. */
	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k2, "c", 1), 0);
	expect_val(f->v, &k2, "c", 1);
	assert_int_equal(mfs_txn_commit(f->v), 0);
	assert_int_equal(check_space(f->v, "delete"), 0);
}

static void test_e2big(void **state)
{
	struct fx *f = *state;
	struct mfs_key k = mfs_key_make(T_OBJ_BASE, 1, 0);
	struct mfs_key k2 = mfs_key_make(T_OBJ_BASE, 1, 1);
	/* 65536 + 5 would be 5 if a length were truncated to 16 bits. */
	static const size_t bad[] = { MFS_MAX_VALUE + 1, MFS_MAX_VALUE + 100,
				      4096, 65536 + 5, (size_t)1 << 40 };
	uint8_t *buf = calloc(1, 65536 + 16);

	assert_non_null(buf);
	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k2, "old", 3), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = bad[i];
		/* Never dereferenced beyond 65541 bytes: the length must be
		 * refused before any copy. */
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf, len),
				 -E2BIG);
		assert_int_equal(mfs_btree_put(f->v, MFS_TREE_FS, &k, buf, len),
				 -E2BIG);
		assert_int_equal(mfs_btree_put(f->v, MFS_TREE_FS, &k2, buf, len),
				 -E2BIG);
		assert_int_equal(mfs_btree_update(f->v, MFS_TREE_FS, &k2, buf, len),
				 -E2BIG);
	}
	expect_absent(f->v, &k);
	expect_val(f->v, &k2, "old", 3);
	/* Exactly the maximum is fine. */
	pattern(buf, MFS_MAX_VALUE, 7, 7);
	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf,
					  MFS_MAX_VALUE), 0);
	expect_val(f->v, &k, buf, MFS_MAX_VALUE);
	assert_int_equal(mfs_btree_check(f->v, MFS_TREE_FS, NULL, NULL), 0);
	assert_int_equal(f->v->error, 0);
	free(buf);
}

static void test_zero_length(void **state)
{
	struct fx *f = *state;
	struct model m = { 0 };

	for (uint64_t i = 0; i < 500; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + i % 7, 6, i);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, NULL, 0), 0);
		model_set(&m, &k, NULL, 0);
	}
	expect_model(f->v, &m);
	for (uint64_t i = 0; i < 500; i += 3) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + i % 7, 6, i);
		expect_val(f->v, &k, NULL, 0);
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	fx_reopen(f);
	expect_model(f->v, &m);
	assert_int_equal(check_space(f->v, "zero_length"), 0);
	model_free(&m);
}

static void test_max_values(void **state)
{
	struct fx *f = *state;
	struct model m = { 0 };
	uint8_t buf[MFS_MAX_VALUE];

	for (uint64_t i = 0; i < 400; i++) {
		/* Alternate ends so splits happen at both sides. */
		uint64_t off = i & 1 ? i : 100000 - i;
		struct mfs_key k = mfs_key_make(T_OBJ_BASE, 3, off);
		pattern(buf, sizeof(buf), off, 0);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf,
						  sizeof(buf)), 0);
		model_set(&m, &k, buf, sizeof(buf));
	}
	expect_model(f->v, &m);
	assert_int_equal(mfs_txn_commit(f->v), 0);
	fx_reopen(f);
	expect_model(f->v, &m);
	assert_int_equal(check_space(f->v, "max_values"), 0);
	model_free(&m);
}

static void test_key_order(void **state)
{
	struct fx *f = *state;
	static const struct mfs_key keys[] = {
		{ 5, 0, 2 }, { 5, UINT64_MAX, 1 }, { 4, UINT64_MAX, 255 },
		{ 5, 0, 1 }, { 6, 0, 0 }, { 5, 1ULL << 63, 1 }, { 5, 1, 1 },
		{ 5, UINT64_MAX, 0 }, { UINT64_MAX, UINT64_MAX, 255 },
		{ 0, 0, 0 }, { 5, 0, 255 }, { 5, (1ULL << 63) - 1, 1 },
		{ 1ULL << 63, 0, 0 }, { (1ULL << 63) - 1, UINT64_MAX, 255 },
		{ 5, 2, 1 }, { 5, 0, 128 }, { 5, 0, 127 },
	};
	size_t n = sizeof(keys) / sizeof(keys[0]);
	struct model m = { 0 };
	struct mfs_cursor c;
	struct mfs_key k, prev;
	const void *val;
	size_t len, count = 0;
	int rc;

	for (size_t i = 0; i < n; i++) {
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &keys[i],
						  &i, sizeof(i)), 0);
		model_set(&m, &keys[i], &i, sizeof(i));
	}
	assert_int_equal(m.n, n); /* all distinct */
	expect_model(f->v, &m);
	mfs_cursor_init(&c, f->v, MFS_TREE_FS, t_key_min(), t_key_max());
	while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0) {
		if (count)
			assert_true(mfs_key_cmp(&prev, &k) < 0);
		prev = k;
		count++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(count, n);
	/* mfs_key_cmp agrees with the model's order. */
	for (size_t i = 0; i + 1 < m.n; i++)
		assert_true(mfs_key_cmp(&m.it[i].key, &m.it[i + 1].key) < 0);
	for (size_t i = 0; i < n; i++)
		expect_val(f->v, &keys[i], &i, sizeof(i));
	assert_int_equal(mfs_txn_commit(f->v), 0);
	fx_reopen(f);
	expect_model(f->v, &m);
	model_free(&m);
}

static size_t count_range(struct mfs_vol *v, const struct mfs_key *lo,
			  const struct mfs_key *hi)
{
	struct mfs_cursor c;
	struct mfs_key k;
	const void *val;
	size_t len, n = 0;
	int rc;

	mfs_cursor_init(&c, v, MFS_TREE_FS, lo, hi);
	while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0) {
		assert_true(mfs_key_cmp(&k, lo) >= 0);
		assert_true(mfs_key_cmp(&k, hi) <= 0);
		n++;
	}
	assert_int_equal(rc, 0);
	/* Stays at the end. */
	assert_int_equal(mfs_cursor_next(&c, &k, &val, &len), 0);
	return n;
}

static void test_cursor_ranges(void **state)
{
	struct fx *f = *state;
	struct model m = { 0 };
	struct mfs_key lo, hi;
	uint8_t buf[200];

	for (uint64_t o = 0; o < 50; o++) {
		for (uint64_t off = 0; off <= 10; off += 5) {
			struct mfs_key k = mfs_key_make(T_OBJ_BASE + o, 1, off);
			pattern(buf, 100, o * 16 + off, 0);
			assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf,
							  100), 0);
			model_set(&m, &k, buf, 100);
		}
	}
	/* Inclusive at both ends. */
	lo = mfs_key_make(T_OBJ_BASE + 10, 1, 5);
	hi = mfs_key_make(T_OBJ_BASE + 20, 1, 5);
	assert_int_equal(count_range(f->v, &lo, &hi), 31);
	assert_int_equal(tree_range_matches_model(f->v, MFS_TREE_FS, &m, &lo, &hi,
						  "incl"), 0);
	/* start == end, present and absent. */
	assert_int_equal(count_range(f->v, &lo, &lo), 1);
	lo = mfs_key_make(T_OBJ_BASE + 10, 1, 6);
	assert_int_equal(count_range(f->v, &lo, &lo), 0);
	/* Between two keys. */
	hi = mfs_key_make(T_OBJ_BASE + 10, 1, 9);
	assert_int_equal(count_range(f->v, &lo, &hi), 0);
	/* start > end. */
	lo = mfs_key_make(T_OBJ_BASE + 30, 1, 0);
	hi = mfs_key_make(T_OBJ_BASE + 20, 1, 0);
	assert_int_equal(count_range(f->v, &lo, &hi), 0);
	/* Past the last key; before the first. */
	lo = mfs_key_make(T_OBJ_BASE + 49, 1, 11);
	assert_int_equal(count_range(f->v, &lo, t_key_max()), 0);
	hi = mfs_key_make(T_OBJ_BASE - 1, UINT8_MAX, UINT64_MAX);
	assert_int_equal(count_range(f->v, t_key_min(), &hi), 0);
	/* Whole tree. */
	assert_int_equal(count_range(f->v, t_key_min(), t_key_max()), 150);
	/* A range by type only: nothing of type 2. */
	lo = mfs_key_make(T_OBJ_BASE + 5, 2, 0);
	hi = mfs_key_make(T_OBJ_BASE + 5, 2, UINT64_MAX);
	assert_int_equal(count_range(f->v, &lo, &hi), 0);

	/* Random ranges over a tree of many leaves. */
	for (uint64_t i = 0; i < 3000; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + 100 + i / 10, 1,
						(i % 10) * 2);
		size_t len = (size_t)rng_below(&f->rng, 200);
		pattern(buf, len, i, 1);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf, len), 0);
		model_set(&m, &k, buf, len);
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	for (int i = 0; i < 400; i++) {
		lo = mfs_key_make(T_OBJ_BASE + rng_below(&f->rng, 420),
				  (uint8_t)rng_below(&f->rng, 3),
				  rng_below(&f->rng, 22));
		hi = mfs_key_make(lo.objectid + rng_below(&f->rng, 40),
				  (uint8_t)rng_below(&f->rng, 3),
				  rng_below(&f->rng, 22));
		assert_int_equal(tree_range_matches_model(f->v, MFS_TREE_FS, &m,
							  &lo, &hi, "random"), 0);
	}
	model_free(&m);
}

/* Iterate while inserting, deleting and resizing items (and committing):
 * every item that exists throughout is returned exactly once, keys come
 * strictly increasing, and each returned item is current. */
static void cursor_mutation_run(struct fx *f, uint64_t seed, bool commits)
{
	enum { N = 3000 };
	static bool present[N], throughout[N];
	static unsigned returned[N];
	struct model m = { 0 };
	struct mfs_cursor c;
	struct mfs_key k, lo, hi;
	const void *val;
	size_t len;
	uint8_t buf[MFS_MAX_VALUE];
	uint64_t rng = seed;
	long last = -1;
	unsigned steps = 0;
	int rc;

	print_message("cursor mutation seed=%" PRIu64 " commits=%d\n", seed, commits);
	memset(present, 0, sizeof(present));
	memset(throughout, 0, sizeof(throughout));
	memset(returned, 0, sizeof(returned));
	for (unsigned i = 0; i < N; i += 2) {
		struct mfs_key ki = mfs_key_make(T_OBJ_BASE + i, 1, 0);
		size_t l = (size_t)rng_below(&rng, 200);
		rng_fill(&rng, buf, l);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &ki, buf, l), 0);
		model_set(&m, &ki, buf, l);
		present[i] = throughout[i] = true;
	}
	if (commits)
		assert_int_equal(mfs_txn_commit(f->v), 0);

	lo = mfs_key_make(T_OBJ_BASE, 0, 0);
	hi = mfs_key_make(T_OBJ_BASE + N - 1, UINT8_MAX, UINT64_MAX);
	mfs_cursor_init(&c, f->v, MFS_TREE_FS, &lo, &hi);
	while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0) {
		long idx = (long)(k.objectid - T_OBJ_BASE);
		size_t mi;

		if (idx <= last || idx >= N)
			fail_msg("seed %" PRIu64 ": cursor returned %ld after %ld",
				 seed, idx, last);
		if (!present[idx])
			fail_msg("seed %" PRIu64 ": cursor returned deleted %ld",
				 seed, idx);
		assert_true(model_find(&m, &k, &mi));
		assert_int_equal(len, m.it[mi].len);
		if (len)
			assert_memory_equal(val, m.it[mi].val, len);
		returned[idx]++;
		last = idx;
		steps++;

		/* Mutate around the cursor: behind, at, and ahead of it. */
		unsigned nops = (unsigned)rng_below(&rng, 6);
		for (unsigned j = 0; j < nops; j++) {
			long t;
			switch (rng_below(&rng, 5)) {
			case 0: t = idx; break;                          /* current */
			case 1: t = idx + 1 + (long)rng_below(&rng, 4);  /* just ahead */
				break;
			default: t = (long)rng_below(&rng, N); break;
			}
			if (t >= N)
				continue;
			struct mfs_key kt = mfs_key_make(T_OBJ_BASE + (uint64_t)t, 1, 0);
			size_t l = rng_chance(&rng, 1, 2) ? MFS_MAX_VALUE :
				   (size_t)rng_below(&rng, MFS_MAX_VALUE + 1);
			rng_fill(&rng, buf, l);
			switch (rng_below(&rng, 3)) {
			case 0: /* delete */
				if (!present[t])
					break;
				assert_int_equal(mfs_btree_delete(f->v, MFS_TREE_FS, &kt), 0);
				model_del(&m, &kt);
				present[t] = throughout[t] = false;
				break;
			case 1: /* insert */
				if (present[t])
					break;
				assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &kt,
								  buf, l), 0);
				model_set(&m, &kt, buf, l);
				present[t] = true;
				break;
			default: /* resize */
				if (!present[t])
					break;
				assert_int_equal(mfs_btree_update(f->v, MFS_TREE_FS, &kt,
								  buf, l), 0);
				model_set(&m, &kt, buf, l);
				break;
			}
		}
		if (commits && rng_chance(&rng, 1, 50))
			assert_int_equal(mfs_txn_commit(f->v), 0);
	}
	if (rc < 0)
		fail_msg("seed %" PRIu64 ": mfs_cursor_next = %d", seed, rc);
	for (unsigned i = 0; i < N; i++) {
		if (throughout[i] && returned[i] != 1)
			fail_msg("seed %" PRIu64 ": item %u existed throughout but "
				 "was returned %u times (after %u steps)", seed, i,
				 returned[i], steps);
	}
	expect_model(f->v, &m);
	if (commits) {
		assert_int_equal(mfs_txn_commit(f->v), 0);
		assert_int_equal(check_space(f->v, "cursor mutation"), 0);
	}
	/* Clean up for the next run. */
	for (size_t i = 0; i < m.n; i++)
		assert_int_equal(mfs_btree_delete(f->v, MFS_TREE_FS, &m.it[i].key), 0);
	assert_int_equal(mfs_txn_commit(f->v), 0);
	model_free(&m);
}

static void test_cursor_mutation(void **state)
{
	struct fx *f = *state;
	uint64_t seeds[4];
	static const uint64_t defs[] = { 1, 2, 3 };
	size_t n = t_seeds(seeds, 4, defs, 3);

	for (size_t i = 0; i < n; i++) {
		cursor_mutation_run(f, seeds[i], false);
		cursor_mutation_run(f, seeds[i] + 1000, true);
	}
}

/* A cursor that lives across an abort must not return items of the
 * aborted transaction (its path may point at blocks that were freed). */
static void test_cursor_abort(void **state)
{
	struct fx *f = *state;
	struct model m = { 0 };
	struct mfs_cursor c;
	struct mfs_key k;
	const void *val;
	size_t len, mi;
	uint8_t buf[MFS_MAX_VALUE];
	unsigned got = 0;
	long last = -1;
	int rc;

	for (uint64_t i = 0; i < 2000; i++) {
		struct mfs_key ki = mfs_key_make(T_OBJ_BASE + i, 1, 0);
		pattern(buf, 150, i, 0);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &ki, buf, 150), 0);
		model_set(&m, &ki, buf, 150);
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	mfs_cursor_init(&c, f->v, MFS_TREE_FS, t_key_min(), t_key_max());
	while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0) {
		long idx = (long)(k.objectid - T_OBJ_BASE);

		assert_true(idx > last);
		assert_true(model_find(&m, &k, &mi));
		assert_int_equal(len, m.it[mi].len);
		assert_memory_equal(val, m.it[mi].val, len);
		last = idx;
		if (++got % 100 == 50) {
			/* Rewrite everything near the cursor, then throw it away. */
			for (uint64_t j = 0; j < 200; j++) {
				struct mfs_key kj = mfs_key_make(T_OBJ_BASE + (uint64_t)idx
								 + j, 1, 0);
				pattern(buf, MFS_MAX_VALUE, j, 99);
				mfs_btree_put(f->v, MFS_TREE_FS, &kj, buf, MFS_MAX_VALUE);
			}
			assert_int_equal(mfs_txn_abort(f->v), 0);
		}
	}
	assert_int_equal(rc, 0);
	assert_int_equal(got, 2000);
	expect_model(f->v, &m);
	model_free(&m);
}

/* Regression: keys smaller than everything in the tree, inserted after the
 * root has split, land in the leftmost leaf; when that leaf splits, the
 * parent's pointer keys must stay ascending (format.h: ptr[0]'s key is a
 * lower bound, "may be smaller than anything below it", never larger). */
static void test_smaller_keys_after_split(void **state)
{
	struct fx *f = *state;
	struct model m = { 0 };
	uint8_t buf[200];

	for (uint64_t i = 0; i < 40; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + 1000 + i, 1, 0);
		pattern(buf, sizeof(buf), i, 0);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf,
						  sizeof(buf)), 0);
		model_set(&m, &k, buf, sizeof(buf));
	}
	assert_true(f->v->roots[MFS_TREE_FS].level >= 1);
	for (uint64_t i = 0; i < 40; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + 999 - i, 1, 0);
		pattern(buf, sizeof(buf), i, 1);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf,
						  sizeof(buf)), 0);
		model_set(&m, &k, buf, sizeof(buf));
		if (mfs_btree_check(f->v, MFS_TREE_FS, NULL, NULL))
			fail_msg("tree fails its check after inserting the %" PRIu64
				 "th smaller key", i + 1);
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	fx_reopen(f);
	expect_model(f->v, &m);
	model_free(&m);
}

/* The same after the leftmost leaves were emptied (the first remaining
 * pointer then carries an exact key, and smaller keys arrive below it). */
static void test_delete_leftmost_then_smaller(void **state)
{
	struct fx *f = *state;
	struct model m = { 0 };
	uint8_t buf[200];

	for (uint64_t i = 0; i < 300; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + 1000 + i, 1, 0);
		pattern(buf, sizeof(buf), i, 0);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf,
						  sizeof(buf)), 0);
		model_set(&m, &k, buf, sizeof(buf));
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	for (uint64_t i = 0; i < 60; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + 1000 + i, 1, 0);
		assert_int_equal(mfs_btree_delete(f->v, MFS_TREE_FS, &k), 0);
		model_del(&m, &k);
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	assert_int_equal(mfs_btree_check(f->v, MFS_TREE_FS, NULL, NULL), 0);
	for (uint64_t i = 0; i < 100; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + 1059 - i, 1, 0);
		pattern(buf, sizeof(buf), i, 1);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf,
						  sizeof(buf)), 0);
		model_set(&m, &k, buf, sizeof(buf));
		if (mfs_btree_check(f->v, MFS_TREE_FS, NULL, NULL))
			fail_msg("tree fails its check after inserting the %" PRIu64
				 "th smaller key", i + 1);
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	fx_reopen(f);
	expect_model(f->v, &m);
	model_free(&m);
}

static void test_lookup_le(void **state)
{
	struct fx *f = *state;
	struct model m = { 0 };
	struct mfs_key k;
	const void *val;
	size_t len;
	uint8_t buf[64];

	/* Empty tree. */
	k = *t_key_max();
	assert_int_equal(mfs_btree_lookup_le(f->v, MFS_TREE_FS, &k, &val, &len),
			 -ENOENT);
	for (uint64_t o = 10; o <= 30; o += 10) {
		k = mfs_key_make(o, 1, 0);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, &o, 8), 0);
	}
	k = mfs_key_make(25, 0, 0);
	assert_int_equal(mfs_btree_lookup_le(f->v, MFS_TREE_FS, &k, &val, &len), 0);
	assert_int_equal(k.objectid, 20);
	assert_int_equal(k.type, 1);
	assert_int_equal(k.offset, 0);
	assert_int_equal(len, 8);
	assert_int_equal(mfs_get_le64(val), 20);
	k = mfs_key_make(20, 1, 0);  /* exact */
	assert_int_equal(mfs_btree_lookup_le(f->v, MFS_TREE_FS, &k, &val, &len), 0);
	assert_int_equal(k.objectid, 20);
	k = mfs_key_make(20, 0, UINT64_MAX);  /* just below: previous */
	assert_int_equal(mfs_btree_lookup_le(f->v, MFS_TREE_FS, &k, &val, &len), 0);
	assert_int_equal(k.objectid, 10);
	k = mfs_key_make(10, 0, 5);  /* below all */
	assert_int_equal(mfs_btree_lookup_le(f->v, MFS_TREE_FS, &k, &val, &len),
			 -ENOENT);
	k = *t_key_max();
	assert_int_equal(mfs_btree_lookup_le(f->v, MFS_TREE_FS, &k, &val, &len), 0);
	assert_int_equal(k.objectid, 30);
	for (uint64_t o = 10; o <= 30; o += 10) {
		k = mfs_key_make(o, 1, 0);
		assert_int_equal(mfs_btree_delete(f->v, MFS_TREE_FS, &k), 0);
	}

	/* Against the model over many leaves (keys on even offsets). */
	for (uint64_t i = 0; i < 4000; i++) {
		k = mfs_key_make(T_OBJ_BASE + i / 50, 2, (i % 50) * 2);
		size_t l = (size_t)rng_below(&f->rng, 64);
		pattern(buf, l, i, 2);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf, l), 0);
		model_set(&m, &k, buf, l);
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	for (int i = 0; i < 5000; i++) {
		struct mfs_key probe = mfs_key_make(T_OBJ_BASE - 1 +
						    rng_below(&f->rng, 83),
						    (uint8_t)rng_below(&f->rng, 4),
						    rng_below(&f->rng, 102));
		size_t idx;
		bool exact = model_find(&m, &probe, &idx);
		int rc;

		k = probe;
		rc = mfs_btree_lookup_le(f->v, MFS_TREE_FS, &k, &val, &len);
		if (!exact && idx == 0) {
			assert_int_equal(rc, -ENOENT);
			continue;
		}
		if (!exact)
			idx--;
		assert_int_equal(rc, 0);
		if (!t_keyeq(&k, &m.it[idx].key))
			fail_msg("lookup_le " T_KEY_FMT " gave " T_KEY_FMT ", want "
				 T_KEY_FMT, T_KEY_ARG(probe), T_KEY_ARG(k),
				 T_KEY_ARG(m.it[idx].key));
		assert_int_equal(len, m.it[idx].len);
		if (len)
			assert_memory_equal(val, m.it[idx].val, len);
	}
	model_free(&m);
}

static void test_lookup_mut(void **state)
{
	struct fx *f = *state;
	struct mfs_key k = mfs_key_make(T_OBJ_BASE + 500, 1, 0);
	struct mfs_key missing = mfs_key_make(T_OBJ_BASE + 500, 1, 1);
	uint8_t orig[100], want[100], buf[300];
	void *val;
	size_t len;

	/* Neighbours so the item is deep in the tree. */
	for (uint64_t i = 0; i < 1000; i++) {
		struct mfs_key ki = mfs_key_make(T_OBJ_BASE + i, 1, 7);
		pattern(buf, 300, i, 0);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &ki, buf, 300), 0);
	}
	pattern(orig, sizeof(orig), 42, 0);
	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, orig, sizeof(orig)), 0);
	assert_int_equal(mfs_txn_commit(f->v), 0);

	assert_int_equal(mfs_btree_lookup_mut(f->v, MFS_TREE_FS, &missing, &val, &len),
			 -ENOENT);

	/* Change in place, then abort: copy-on-write kept the committed one. */
	assert_int_equal(mfs_btree_lookup_mut(f->v, MFS_TREE_FS, &k, &val, &len), 0);
	assert_int_equal(len, sizeof(orig));
	assert_memory_equal(val, orig, sizeof(orig));
	memset(val, 0xab, len);
	memset(want, 0xab, sizeof(want));
	expect_val(f->v, &k, want, sizeof(want));
	assert_int_equal(mfs_txn_abort(f->v), 0);
	expect_val(f->v, &k, orig, sizeof(orig));

	/* Change in place, commit, reopen: it persists. */
	assert_int_equal(mfs_btree_lookup_mut(f->v, MFS_TREE_FS, &k, &val, &len), 0);
	memcpy(want, orig, sizeof(want));
	for (size_t i = 0; i < len; i += 3)
		want[i] ^= 0x5a;
	memcpy(val, want, len);
	/* A second lookup_mut in the same transaction sees the change. */
	assert_int_equal(mfs_btree_lookup_mut(f->v, MFS_TREE_FS, &k, &val, &len), 0);
	assert_memory_equal(val, want, sizeof(want));
	assert_int_equal(mfs_txn_commit(f->v), 0);
	expect_val(f->v, &k, want, sizeof(want));
	fx_reopen(f);
	expect_val(f->v, &k, want, sizeof(want));
	assert_int_equal(mfs_btree_check(f->v, MFS_TREE_FS, NULL, NULL), 0);
	assert_int_equal(check_space(f->v, "lookup_mut"), 0);
}

/* A commit whose sync fails turns the volume read-only for good: neither
 * an abort nor a retry may report success afterwards (a retried fsync
 * could claim durability for pages the kernel already dropped). */
static void test_failed_commit_is_fatal(void **state)
{
	struct fx *f = *state;
	struct mfs_key k = mfs_key_make(T_OBJ_BASE, 1, 0);
	uint8_t buf[16] = { 1 };

	assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf, 16), 0);
	f->v->img->fail_syncs = 1;
	assert_int_equal(mfs_txn_commit(f->v), -EIO);
	assert_int_equal(f->v->error, -EIO);
	assert_int_not_equal(mfs_txn_abort(f->v), 0);
	assert_int_not_equal(mfs_txn_commit(f->v), 0);
	k.offset = 1;
	assert_int_not_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf, 16), 0);
	assert_int_not_equal(mfs_txn_commit(f->v), 0);
	/* Close does not mark it clean; the last commit is what remains. */
	assert_int_not_equal(mfs_vol_close(f->v), 0);
	f->v = t_open(f->img, 0);
	assert_int_equal(mfs_btree_lookup(f->v, MFS_TREE_FS, &k, NULL, NULL),
			 -ENOENT);
}

static void test_abort(void **state)
{
	struct fx *f = *state;
	struct model m = { 0 }, committed = { 0 };
	uint8_t buf[MFS_MAX_VALUE];
	uint64_t free_before;

	for (uint64_t i = 0; i < 3000; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + i, 1, 0);
		size_t l = (size_t)rng_below(&f->rng, 400);
		pattern(buf, l, i, 0);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf, l), 0);
		model_set(&m, &k, buf, l);
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	model_copy(&committed, &m);
	free_before = mfs_alloc_free_blocks(f->v->alloc);
	for (int round = 0; round < 3; round++) {
		for (uint64_t i = 0; i < 3000; i++) {
			struct mfs_key k = mfs_key_make(T_OBJ_BASE + rng_below(&f->rng,
									   6000), 1, 0);
			size_t l = (size_t)rng_below(&f->rng, MFS_MAX_VALUE + 1);
			pattern(buf, l, i, 5);
			if (rng_chance(&f->rng, 1, 3)) {
				if (mfs_btree_delete(f->v, MFS_TREE_FS, &k) == 0)
					model_del(&m, &k);
			} else {
				assert_int_equal(mfs_btree_put(f->v, MFS_TREE_FS, &k, buf,
							       l), 0);
				model_set(&m, &k, buf, l);
			}
		}
		expect_model(f->v, &m);
		assert_int_equal(mfs_txn_abort(f->v), 0);
		expect_model(f->v, &committed);
		assert_int_equal(mfs_alloc_free_blocks(f->v->alloc), free_before);
		assert_int_equal(check_space(f->v, "abort"), 0);
		model_copy(&m, &committed);
	}
	/* Abort with nothing changed is harmless. */
	assert_int_equal(mfs_txn_abort(f->v), 0);
	fx_reopen(f);
	expect_model(f->v, &committed);
	model_free(&m);
	model_free(&committed);
}

/* 100k items of 200 bytes force a root of level >= 2; deleting them all
 * (over several commits) collapses the tree back to a single leaf. */
static void test_deep_tree(void **state)
{
	struct fx *f = *state;
	uint64_t n = t_env_u64("MMAPFS_DEEP_ITEMS", 100000);
	uint64_t *perm = malloc(n * sizeof(*perm));
	uint8_t buf[200];
	struct mfs_cursor c;
	struct mfs_key k, lo, hi;
	const void *val;
	size_t len;
	uint64_t seen = 0;
	int rc;

	assert_non_null(perm);
	assert_int_equal(mfs_vol_close(f->v), 0);
	f->v = NULL;
	t_format(f->img, 256 * MiB);
	f->v = t_open(f->img, 0);
	clear_fs_tree(f->v);

	for (uint64_t i = 0; i < n; i++)
		perm[i] = i;
	for (uint64_t i = n - 1; i > 0; i--) {
		uint64_t j = rng_below(&f->rng, i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t id = perm[i];
		k = mfs_key_make(T_OBJ_BASE + (id >> 4), 1, id & 15);
		pattern(buf, sizeof(buf), id, 0);
		rc = mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf, sizeof(buf));
		if (rc)
			fail_msg("insert #%" PRIu64 " = %d", i, rc);
		if (i % 25000 == 24999)
			assert_int_equal(mfs_txn_commit(f->v), 0);
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	print_message("deep tree: %" PRIu64 " items, root level %u, %" PRIu64
		      " nodes\n", n, f->v->roots[MFS_TREE_FS].level,
		      t_tree_blocks(f->v, MFS_TREE_FS));
	if (n >= 100000)
		assert_true(f->v->roots[MFS_TREE_FS].level >= 2);
	assert_int_equal(check_space(f->v, "deep full"), 0);
	fx_reopen(f);
	assert_int_equal(check_space(f->v, "deep full reopen"), 0);

	lo = mfs_key_make(T_OBJ_BASE, 0, 0);
	hi = *t_key_max();
	mfs_cursor_init(&c, f->v, MFS_TREE_FS, &lo, &hi);
	while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0) {
		uint64_t id = ((k.objectid - T_OBJ_BASE) << 4) | k.offset;
		assert_int_equal(id, seen);
		assert_int_equal(len, sizeof(buf));
		pattern(buf, sizeof(buf), id, 0);
		assert_memory_equal(val, buf, sizeof(buf));
		seen++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(seen, n);

	for (uint64_t i = n - 1; i > 0; i--) {
		uint64_t j = rng_below(&f->rng, i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t id = perm[i];
		k = mfs_key_make(T_OBJ_BASE + (id >> 4), 1, id & 15);
		rc = mfs_btree_delete(f->v, MFS_TREE_FS, &k);
		if (rc)
			fail_msg("delete #%" PRIu64 " (id %" PRIu64 ") = %d", i, id, rc);
		if (i % 25000 == 24999) {
			assert_int_equal(mfs_txn_commit(f->v), 0);
			assert_int_equal(check_space(f->v, "deep deleting"), 0);
		}
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	assert_int_equal(count_range(f->v, t_key_min(), t_key_max()), 0);
	assert_int_equal(f->v->roots[MFS_TREE_FS].level, 0);
	assert_int_equal(t_tree_blocks(f->v, MFS_TREE_FS), 1);
	assert_int_equal(check_space(f->v, "deep empty"), 0);
	fx_reopen(f);
	assert_int_equal(f->v->roots[MFS_TREE_FS].level, 0);
	assert_int_equal(count_range(f->v, t_key_min(), t_key_max()), 0);
	assert_int_equal(check_space(f->v, "deep empty reopen"), 0);
	free(perm);
}

/* One transaction that copies thousands of leaves scattered over the
 * image (every other leaf, say) frees thousands of separate runs: the
 * commit must still write them all into the FREE tree. */
static void test_commit_scattered_frees(void **state)
{
	struct fx *f = *state;
	struct model m = { 0 };
	uint8_t buf[200];
	const uint64_t n = 60000;

	assert_int_equal(mfs_vol_close(f->v), 0);
	f->v = NULL;
	t_format(f->img, 256 * MiB);
	f->v = t_open(f->img, 0);
	for (uint64_t i = 0; i < n; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + i, 1, 0);
		pattern(buf, sizeof(buf), i, 0);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf,
						  sizeof(buf)), 0);
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	for (uint64_t i = 0; i < n; i += 32) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + i, 1, 0);
		pattern(buf, sizeof(buf), i, 1);
		assert_int_equal(mfs_btree_update(f->v, MFS_TREE_FS, &k, buf,
						  sizeof(buf)), 0);
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	assert_int_equal(check_space(f->v, "scattered"), 0);
	fx_reopen(f);
	model_load(&m, f->v, MFS_TREE_FS);
	assert_true(m.n >= n);
	assert_int_equal(check_space(f->v, "scattered reopen"), 0);
	model_free(&m);
}

/* On a minimum-size image, inserting until -ENOSPC leaves a consistent
 * tree holding exactly the inserts that succeeded; abort restores the
 * committed state and the space. */
static void test_enospc(void **state)
{
	struct fx *f = *state;
	struct model m = { 0 }, committed = { 0 };
	uint8_t buf[MFS_MAX_VALUE];
	int rc = 0;

	assert_int_equal(mfs_vol_close(f->v), 0);
	f->v = NULL;
	t_format(f->img, MFS_IMAGE_MIN_BYTES);
	f->v = t_open(f->img, 0);
	model_load(&m, f->v, MFS_TREE_FS);
	model_copy(&committed, &m);
	for (uint64_t i = 0; i < 2000; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + i, 1, 0);
		pattern(buf, sizeof(buf), i, 0);
		rc = mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf, sizeof(buf));
		if (rc)
			break;
		model_set(&m, &k, buf, sizeof(buf));
	}
	assert_int_equal(rc, -ENOSPC);
	expect_model(f->v, &m);
	assert_int_equal(f->v->error, 0);
	assert_int_equal(mfs_txn_abort(f->v), 0);
	expect_model(f->v, &committed);
	assert_int_equal(check_space(f->v, "enospc"), 0);
	/* Space is usable again. */
	for (uint64_t i = 0; i < 10; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + i, 1, 0);
		assert_int_equal(mfs_btree_insert(f->v, MFS_TREE_FS, &k, buf, 100), 0);
		model_set(&committed, &k, buf, 100);
	}
	assert_int_equal(mfs_txn_commit(f->v), 0);
	fx_reopen(f);
	expect_model(f->v, &committed);
	assert_int_equal(check_space(f->v, "enospc reopen"), 0);
	model_free(&m);
	model_free(&committed);
}

/* ------------------------------------------------------------------ *
 * The random model test.
 * ------------------------------------------------------------------ */
struct rm {
	uint64_t seed, rng;
	const char *img;
	struct mfs_vol *v;
	struct model live, committed;
	uint8_t buf[MFS_MAX_VALUE + 256];
	uint64_t ops;
	unsigned long commits, aborts, reopens, crashes, phases;
};

#define RM_FAIL(r, ...)                                                       \
	do {                                                                  \
		print_error("seed %" PRIu64 " op %" PRIu64 ": ", (r)->seed,   \
			    (r)->ops);                                        \
		fail_msg(__VA_ARGS__);                                        \
	} while (0)

static struct mfs_key rm_key(struct rm *r)
{
	static const uint8_t types[] = { 1, 4, 200 };
	uint64_t off = rng_below(&r->rng, 18);

	if (off == 16)
		off = 1ULL << 63;
	else if (off == 17)
		off = UINT64_MAX;
	return mfs_key_make(T_OBJ_BASE + rng_below(&r->rng, 40),
			    types[rng_below(&r->rng, 3)], off);
}

static size_t rm_len(struct rm *r)
{
	switch (rng_below(&r->rng, 8)) {
	case 0: return 0;
	case 1: return MFS_MAX_VALUE;
	case 2:
	case 3: return (size_t)rng_below(&r->rng, 33);
	case 4:
	case 5: return (size_t)rng_below(&r->rng, 257);
	default: return (size_t)rng_below(&r->rng, MFS_MAX_VALUE + 1);
	}
}

static void rm_expect_lookup(struct rm *r, const struct mfs_key *k)
{
	const void *val;
	size_t len, i;
	int rc = mfs_btree_lookup(r->v, MFS_TREE_FS, k, &val, &len);

	if (!model_find(&r->live, k, &i)) {
		if (rc != -ENOENT)
			RM_FAIL(r, "lookup " T_KEY_FMT " = %d, want -ENOENT",
				T_KEY_ARG(*k), rc);
		return;
	}
	if (rc)
		RM_FAIL(r, "lookup " T_KEY_FMT " = %d", T_KEY_ARG(*k), rc);
	if (len != r->live.it[i].len ||
	    (len && memcmp(val, r->live.it[i].val, len)))
		RM_FAIL(r, "lookup " T_KEY_FMT ": wrong value (len %zu, want %u)",
			T_KEY_ARG(*k), len, r->live.it[i].len);
}

static void rm_op(struct rm *r)
{
	struct mfs_key k = rm_key(r);
	size_t len = rm_len(r), i;
	bool has = model_find(&r->live, &k, &i);
	unsigned what = (unsigned)rng_below(&r->rng, 100);
	int rc;

	rng_fill(&r->rng, r->buf, len);
	if (what < 25) {
		rc = mfs_btree_insert(r->v, MFS_TREE_FS, &k, r->buf, len);
		if (rc != (has ? -EEXIST : 0))
			RM_FAIL(r, "insert " T_KEY_FMT " len %zu = %d (present %d)",
				T_KEY_ARG(k), len, rc, has);
		if (!has)
			model_set(&r->live, &k, r->buf, len);
	} else if (what < 37) {
		rc = mfs_btree_put(r->v, MFS_TREE_FS, &k, r->buf, len);
		if (rc)
			RM_FAIL(r, "put " T_KEY_FMT " len %zu = %d", T_KEY_ARG(k),
				len, rc);
		model_set(&r->live, &k, r->buf, len);
	} else if (what < 50) {
		rc = mfs_btree_update(r->v, MFS_TREE_FS, &k, r->buf, len);
		if (rc != (has ? 0 : -ENOENT))
			RM_FAIL(r, "update " T_KEY_FMT " len %zu = %d (present %d)",
				T_KEY_ARG(k), len, rc, has);
		if (has)
			model_set(&r->live, &k, r->buf, len);
	} else if (what < 72) {
		rc = mfs_btree_delete(r->v, MFS_TREE_FS, &k);
		if (rc != (has ? 0 : -ENOENT))
			RM_FAIL(r, "delete " T_KEY_FMT " = %d (present %d)",
				T_KEY_ARG(k), rc, has);
		if (has)
			model_del(&r->live, &k);
	} else if (what < 87) {
		rm_expect_lookup(r, &k);
	} else if (what < 92) {
		struct mfs_key got = k;
		const void *val;
		size_t vlen;

		rc = mfs_btree_lookup_le(r->v, MFS_TREE_FS, &got, &val, &vlen);
		if (!has && i == 0) {
			if (rc != -ENOENT)
				RM_FAIL(r, "lookup_le " T_KEY_FMT " = %d, want -ENOENT",
					T_KEY_ARG(k), rc);
			return;
		}
		if (!has)
			i--;
		if (rc || !t_keyeq(&got, &r->live.it[i].key) ||
		    vlen != r->live.it[i].len ||
		    (vlen && memcmp(val, r->live.it[i].val, vlen)))
			RM_FAIL(r, "lookup_le " T_KEY_FMT " = %d " T_KEY_FMT
				", want " T_KEY_FMT, T_KEY_ARG(k), rc, T_KEY_ARG(got),
				T_KEY_ARG(r->live.it[i].key));
	} else if (what < 94) {
		struct mfs_key hi = rm_key(r);
		char tag[64];

		snprintf(tag, sizeof(tag), "seed %" PRIu64 " op %" PRIu64, r->seed,
			 r->ops);
		if (rng_chance(&r->rng, 1, 4)) {  /* sometimes an empty range */
			struct mfs_key t = k;
			k = hi;
			hi = t;
		}
		if (tree_range_matches_model(r->v, MFS_TREE_FS, &r->live, &k, &hi,
					     tag))
			RM_FAIL(r, "range scan differs");
	} else if (what < 96) {
		void *val;
		size_t vlen;

		rc = mfs_btree_lookup_mut(r->v, MFS_TREE_FS, &k, &val, &vlen);
		if (rc != (has ? 0 : -ENOENT))
			RM_FAIL(r, "lookup_mut " T_KEY_FMT " = %d (present %d)",
				T_KEY_ARG(k), rc, has);
		if (has) {
			if (vlen != r->live.it[i].len)
				RM_FAIL(r, "lookup_mut len %zu want %u", vlen,
					r->live.it[i].len);
			if (vlen) {
				size_t at = (size_t)rng_below(&r->rng, vlen);
				((uint8_t *)val)[at] ^= 0xff;
				r->live.it[i].val[at] ^= 0xff;
			}
		}
	} else if (what < 97) {
		size_t big = MFS_MAX_VALUE + 1 + (size_t)rng_below(&r->rng, 200);

		rc = mfs_btree_put(r->v, MFS_TREE_FS, &k, r->buf, big);
		if (rc != -E2BIG)
			RM_FAIL(r, "put of %zu bytes = %d", big, rc);
		rc = mfs_btree_insert(r->v, MFS_TREE_FS, &k, r->buf, big);
		if (rc != -E2BIG)
			RM_FAIL(r, "insert of %zu bytes = %d", big, rc);
		rc = mfs_btree_update(r->v, MFS_TREE_FS, &k, r->buf, big);
		if (rc != -E2BIG)
			RM_FAIL(r, "update of %zu bytes = %d", big, rc);
		rm_expect_lookup(r, &k);
	} else {
		k.objectid += 1000;  /* never present */
		rm_expect_lookup(r, &k);
		rc = mfs_btree_delete(r->v, MFS_TREE_FS, &k);
		if (rc != -ENOENT)
			RM_FAIL(r, "delete of absent " T_KEY_FMT " = %d", T_KEY_ARG(k),
				rc);
	}
}

static void rm_verify(struct rm *r, const char *when, bool space)
{
	char tag[96];

	snprintf(tag, sizeof(tag), "seed %" PRIu64 " op %" PRIu64 " %s", r->seed,
		 r->ops, when);
	for (unsigned t = 0; t < MFS_TREE_COUNT; t++) {
		int rc = mfs_btree_check(r->v, t, NULL, NULL);
		if (rc)
			RM_FAIL(r, "%s: mfs_btree_check(%u) = %d", when, t, rc);
	}
	if (tree_matches_model(r->v, MFS_TREE_FS, &r->live, tag))
		RM_FAIL(r, "%s: tree differs from model", when);
	if (space && check_space(r->v, tag))
		RM_FAIL(r, "%s: space accounting", when);
	if (r->v->error)
		RM_FAIL(r, "%s: sticky error %d", when, r->v->error);
}

static void rm_open(struct rm *r)
{
	int rc = mfs_vol_open(r->img, 0, &r->v);

	if (rc)
		RM_FAIL(r, "mfs_vol_open = %d", rc);
	r->reopens++;
}

static void random_model_run(const char *img, uint64_t seed, uint64_t nops)
{
	struct rm *r = calloc(1, sizeof(*r));
	int rc;

	assert_non_null(r);
	print_message("random model: seed=%" PRIu64 " ops=%" PRIu64
		      " (MMAPFS_SEED=%" PRIu64 " to rerun)\n", seed, nops, seed);
	r->seed = r->rng = seed;
	r->img = img;
	t_format(img, 64 * MiB);
	rm_open(r);
	/* Start empty, so that the smallest key of the tree changes too. */
	clear_fs_tree(r->v);
	model_load(&r->live, r->v, MFS_TREE_FS);
	model_copy(&r->committed, &r->live);
	rm_verify(r, "first open", true);

	while (r->ops < nops) {
		uint64_t plen = 1 + rng_below(&r->rng, rng_chance(&r->rng, 1, 4) ?
					      20 : 3000);
		for (uint64_t i = 0; i < plen && r->ops < nops; i++, r->ops++)
			rm_op(r);
		r->phases++;
		rm_verify(r, "phase end", false);
		unsigned act = (unsigned)rng_below(&r->rng, 100);
		if (act < 55) {
			rc = mfs_txn_commit(r->v);
			if (rc)
				RM_FAIL(r, "commit = %d", rc);
			model_copy(&r->committed, &r->live);
			r->commits++;
			rm_verify(r, "commit", true);
		} else if (act < 75) {
			rc = mfs_txn_abort(r->v);
			if (rc)
				RM_FAIL(r, "abort = %d", rc);
			model_copy(&r->live, &r->committed);
			r->aborts++;
			rm_verify(r, "abort", true);
		} else if (act < 88) {
			rc = mfs_vol_close(r->v);
			r->v = NULL;
			if (rc)
				RM_FAIL(r, "close = %d", rc);
			model_copy(&r->committed, &r->live);
			rm_open(r);
			rm_verify(r, "reopen", true);
		} else if (act < 93) {
			mfs_vol_close_dirty(r->v);
			r->v = NULL;
			model_copy(&r->live, &r->committed);
			r->crashes++;
			rm_open(r);
			rm_verify(r, "crash reopen", true);
		}
	}
	rc = mfs_vol_close(r->v);
	if (rc)
		RM_FAIL(r, "final close = %d", rc);
	r->v = NULL;
	rm_open(r);
	rm_verify(r, "final reopen", true);
	print_message("  %" PRIu64 " ops, %lu phases, %lu commits, %lu aborts, "
		      "%lu reopens, %lu crashes, %zu items at end\n", r->ops,
		      r->phases, r->commits, r->aborts, r->reopens, r->crashes,
		      r->live.n);
	mfs_vol_close(r->v);
	model_free(&r->live);
	model_free(&r->committed);
	free(r);
}

static void test_random_model(void **state)
{
	struct fx *f = *state;
	static const uint64_t defs[] = { 1, 0xdeadbeef, 20240601 };
	uint64_t seeds[4];
	size_t n = t_seeds(seeds, 4, defs, 3);
	uint64_t nops = t_env_u64("MMAPFS_OPS", 200000);

	/* The fixture's volume is not used: each seed formats its own. */
	assert_int_equal(mfs_vol_close(f->v), 0);
	f->v = NULL;
	for (size_t i = 0; i < n; i++)
		random_model_run(f->img, seeds[i], nops);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_cmp),
		cmocka_unit_test_setup_teardown(test_insert_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_e2big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cursor_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cursor_mutation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cursor_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_smaller_keys_after_split, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_delete_leftmost_then_smaller,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_le, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_mut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_commit_is_fatal, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deep_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_scattered_frees, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_model, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
