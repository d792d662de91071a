/* SPDX-License-Identifier: MIT */
/*
 * test_alloc.c — unit tests of the free-space map (src/alloc.c).
 *
 * The allocator is purely in-memory; most tests pass img = NULL. One test
 * passes a fake image and defines mfs_image_reserve() here: the test
 * object's definition satisfies alloc.o's reference, so the linker never
 * pulls the image layer's own object out of the static core library.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "image.h"

/* ---- fake image layer ---- */

static struct mfs_image fake_img;
static int reserve_rc;
static unsigned reserve_calls;
static uint64_t reserve_off, reserve_len;

int mfs_image_reserve(struct mfs_image *img, uint64_t off, uint64_t len)
{
	assert_ptr_equal(img, &fake_img);
	reserve_calls++;
	reserve_off = off;
	reserve_len = len;
	return reserve_rc;
}

/* ---- helpers ---- */

struct run {
	uint64_t start, len;
};

struct runs {
	struct run *r;
	size_t n, cap;
	size_t stop_after;   /* cb returns 7 after this many runs; 0: never */
};

static int collect(void *arg, uint64_t start, uint64_t len)
{
	struct runs *rs = arg;

	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? 2 * rs->cap : 64;
		rs->r = realloc(rs->r, rs->cap * sizeof(*rs->r));
		assert_non_null(rs->r);
	}
	rs->r[rs->n].start = start;
	rs->r[rs->n].len = len;
	rs->n++;
	if (rs->stop_after && rs->n == rs->stop_after)
		return 7;
	return 0;
}

static void walk(struct mfs_alloc *a, uint64_t start, uint64_t end,
		 struct runs *rs)
{
	rs->n = 0;
	assert_int_equal(mfs_alloc_walk_free(a, start, end, collect, rs), 0);
}

static void expect_runs(struct mfs_alloc *a, uint64_t start, uint64_t end,
			const struct run *exp, size_t n)
{
	struct runs rs = { 0 };

	walk(a, start, end, &rs);
	assert_int_equal(rs.n, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(rs.r[i].start, exp[i].start);
		assert_int_equal(rs.r[i].len, exp[i].len);
	}
	free(rs.r);
}

static struct mfs_alloc *mk(uint64_t first, uint64_t count, bool load_all)
{
	struct mfs_alloc *a = NULL;

	assert_int_equal(mfs_alloc_create(NULL, first, count, &a), 0);
	assert_non_null(a);
	if (load_all && count > first)
		assert_int_equal(mfs_alloc_load(a, first, count - first), 0);
	return a;
}

static void drain_dirty(struct mfs_alloc *a)
{
	uint64_t s, e;

	while (mfs_alloc_pop_dirty(a, &s, &e))
		;
}

static void expect_alloc(struct mfs_alloc *a, uint64_t goal, uint64_t want,
			 uint64_t min, uint64_t exp_start, uint64_t exp_len)
{
	uint64_t s = UINT64_MAX, l = UINT64_MAX;

	assert_int_equal(mfs_alloc_alloc(a, goal, want, min, &s, &l), 0);
	assert_int_equal(s, exp_start);
	assert_int_equal(l, exp_len);
}

/* Make a free map of the given runs inside [0, count). */
static struct mfs_alloc *mk_runs(uint64_t count, const struct run *r, size_t n)
{
	struct mfs_alloc *a = mk(0, count, false);

	for (size_t i = 0; i < n; i++)
		assert_int_equal(mfs_alloc_load(a, r[i].start, r[i].len), 0);
	return a;
}

/* ---- tests ---- */

static void test_basic(void **state)
{
	struct mfs_alloc *a;
	uint64_t s, l;

	assert_int_equal(mfs_alloc_create(NULL, 5, 4, &a), -EINVAL);
	a = mk(10, 1010, false);
	assert_int_equal(mfs_alloc_block_count(a), 1010);
	assert_int_equal(mfs_alloc_free_blocks(a), 0);
	assert_int_equal(mfs_alloc_alloc(a, 0, 1, 1, &s, &l), -ENOSPC);

	assert_int_equal(mfs_alloc_load(a, 10, 1000), 0);
	assert_int_equal(mfs_alloc_free_blocks(a), 1000);
	assert_int_equal(mfs_alloc_avail_blocks(a), 1000);
	assert_false(mfs_alloc_is_free(a, 9));
	assert_true(mfs_alloc_is_free(a, 10));
	assert_true(mfs_alloc_is_free(a, 1009));
	assert_false(mfs_alloc_is_free(a, 1010));

	expect_alloc(a, 0, 10, 10, 10, 10);
	assert_int_equal(mfs_alloc_avail_blocks(a), 990);
	for (uint64_t b = 10; b < 20; b++)
		assert_false(mfs_alloc_is_free(a, b));
	assert_true(mfs_alloc_is_free(a, 20));

	assert_int_equal(mfs_alloc_free(a, 10, 10, 0), 0);
	assert_int_equal(mfs_alloc_avail_blocks(a), 1000);
	expect_runs(a, 0, UINT64_MAX, (struct run[]){ { 10, 1000 } }, 1);

	/* Everything, then nothing. */
	expect_alloc(a, 500, 5000, 1, 10, 1000);
	assert_int_equal(mfs_alloc_free_blocks(a), 0);
	assert_int_equal(mfs_alloc_alloc(a, 0, 1, 1, &s, &l), -ENOSPC);
	mfs_alloc_destroy(a);
	mfs_alloc_destroy(NULL);
}

/* Two files growing in turn, each asking for blocks right after its last
 * one, each stay contiguous. */
static void test_goal_contiguity(void **state)
{
	struct mfs_alloc *a = mk(0, 100000, true);
	uint64_t end_a, end_b, s, l;

	expect_alloc(a, 0, 8, 1, 0, 8);
	end_a = 8;
	expect_alloc(a, 50000, 8, 1, 50000, 8);
	end_b = 50008;
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(mfs_alloc_alloc(a, end_a, 4, 1, &s, &l), 0);
		assert_int_equal(s, end_a);
		assert_int_equal(l, 4);
		end_a += l;
		assert_int_equal(mfs_alloc_alloc(a, end_b, 3, 1, &s, &l), 0);
		assert_int_equal(s, end_b);
		assert_int_equal(l, 3);
		end_b += l;
	}
	assert_int_equal(mfs_alloc_avail_blocks(a), 100000 - 16 - 7000);
	mfs_alloc_destroy(a);
}

/* A goal inside a free run is taken from the goal, not the run's start;
 * when the run lacks room after goal, the next run that has room is used. */
static void test_goal_inside_run(void **state)
{
	struct mfs_alloc *a = mk_runs(1000, (struct run[]){
		{ 100, 50 }, { 300, 20 }, { 500, 10 } }, 3);

	expect_alloc(a, 120, 10, 10, 120, 10);
	expect_runs(a, 0, 1000, (struct run[]){
		{ 100, 20 }, { 130, 20 }, { 300, 20 }, { 500, 10 } }, 4);
	/* 145..150 has 5 < 8: the first run at or after 145 with 8 is 300. */
	expect_alloc(a, 145, 8, 1, 300, 8);
	/* Goal in a gap: the next run with room (300..308 is taken). */
	expect_alloc(a, 200, 10, 10, 308, 10);
	expect_alloc(a, 319, 10, 10, 500, 10);
	/* Goal exactly at a run's start. */
	expect_alloc(a, 130, 20, 20, 130, 20);
	/* Goal out of range: treated as the first block. */
	expect_alloc(a, 5000, 3, 3, 100, 3);
	mfs_alloc_destroy(a);
}

static void test_fallbacks(void **state)
{
	struct mfs_alloc *a = mk_runs(1000, (struct run[]){
		{ 10, 3 }, { 20, 6 }, { 40, 2 }, { 60, 6 }, { 80, 4 } }, 5);
	uint64_t s = 1, l = 2;

	/* Nothing at or after 50 with 5 blocks... 60 has 6. */
	expect_alloc(a, 50, 5, 5, 60, 5);
	/* Nothing after 70 with 5: wrap around to the first with 5. */
	expect_alloc(a, 70, 5, 5, 20, 5);
	/* Nobody has 5 now (3,1,2,1,4): the longest, 80, up to want. */
	expect_alloc(a, 0, 5, 2, 80, 4);
	/* Longest is now 3 at 10; min 4 fails and changes nothing. */
	assert_int_equal(mfs_alloc_alloc(a, 0, 8, 4, &s, &l), -ENOSPC);
	assert_int_equal(s, 1);
	assert_int_equal(l, 2);
	assert_int_equal(mfs_alloc_avail_blocks(a), 3 + 1 + 2 + 1);
	/* Ties go to the leftmost longest. */
	expect_alloc(a, 999, 9, 1, 10, 3);
	expect_alloc(a, 999, 9, 1, 40, 2);
	/* Bad arguments. */
	assert_int_equal(mfs_alloc_alloc(a, 0, 4, 0, &s, &l), -EINVAL);
	assert_int_equal(mfs_alloc_alloc(a, 0, 4, 5, &s, &l), -EINVAL);
	assert_int_equal(mfs_alloc_alloc(a, 0, 0, 0, &s, &l), -EINVAL);
	assert_int_equal(mfs_alloc_avail_blocks(a), 2);
	mfs_alloc_destroy(a);

	/* Wrapping takes the first run with want blocks, not the longest. */
	a = mk_runs(100, (struct run[]){
		{ 10, 5 }, { 30, 8 }, { 50, 2 }, { 70, 2 } }, 4);
	expect_alloc(a, 40, 4, 1, 10, 4);
	/* No run of 9: the longest, wherever goal is. */
	expect_alloc(a, 60, 9, 1, 30, 8);
	/* Equal longest runs at 50 and 70: the leftmost, though goal
	 * points at the other. */
	expect_alloc(a, 60, 3, 1, 50, 2);
	mfs_alloc_destroy(a);
}

/* Double frees, overlaps and out-of-range runs are refused and change
 * nothing: not the sets, the counters, nor the dirty ranges. */
static void test_bad_free(void **state)
{
	struct mfs_alloc *a = mk(10, 200, false);
	const struct run want[] = { { 20, 10 }, { 40, 10 }, { 60, 10 } };
	uint64_t s, e;

	assert_int_equal(mfs_alloc_load(a, 20, 10), 0);
	assert_int_equal(mfs_alloc_free(a, 40, 10, 3), 0);
	assert_int_equal(mfs_alloc_free(a, 60, 10, 0), 0);
	drain_dirty(a);

	const struct run bad[] = {
		{ 20, 1 }, { 29, 1 }, { 15, 6 }, { 29, 5 }, /* avail */
		{ 39, 2 }, { 49, 1 }, { 45, 1 },            /* pinned */
		{ 65, 10 }, { 55, 6 },                      /* gen-0 freed */
		{ 0, 5 }, { 5, 10 }, { 195, 6 }, { 200, 1 }, /* bounds */
		{ 100, 0 }, { 100, UINT64_MAX }, { UINT64_MAX, 2 },
		{ 10, 190 },                                /* everything */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (uint64_t gen = 0; gen < 5; gen += 3) {
			assert_int_equal(mfs_alloc_free(a, bad[i].start,
							bad[i].len, gen),
					 -EUCLEAN);
		}
		/* Loading over pinned blocks is allowed (they stay pinned:
		 * see test_load_keeps_pins); every other bad range is not. */
		if (i < 4 || i > 6)
			assert_int_equal(mfs_alloc_load(a, bad[i].start,
							bad[i].len),
					 -EUCLEAN);
	}
	assert_int_equal(mfs_alloc_free_blocks(a), 30);
	assert_int_equal(mfs_alloc_avail_blocks(a), 20);
	assert_false(mfs_alloc_pop_dirty(a, &s, &e));
	expect_runs(a, 0, UINT64_MAX, want, 3);
	assert_false(mfs_alloc_is_free(a, 15));
	assert_false(mfs_alloc_is_free(a, 100));
	/* Touching, not overlapping, is fine. */
	assert_int_equal(mfs_alloc_free(a, 30, 10, 0), 0);
	expect_runs(a, 0, UINT64_MAX, (struct run[]){ { 20, 30 }, { 60, 10 } },
		    2);
	mfs_alloc_destroy(a);
}

/* Pinned blocks are free (walk, is_free, free count) but cannot be
 * allocated until their generation is unpinned. */
/* An abort keeps older pins: a reload of the committed free runs must leave
 * the pinned blocks pinned and make only the rest available. */
static void test_load_keeps_pins(void **state)
{
	struct mfs_alloc *a;
	uint64_t s, l;

	(void)state;
	assert_int_equal(mfs_alloc_create(NULL, 10, 200, &a), 0);
	assert_int_equal(mfs_alloc_load(a, 10, 190), 0);
	assert_int_equal(mfs_alloc_alloc(a, 10, 50, 50, &s, &l), 0);
	assert_int_equal(s, 10);
	assert_int_equal(mfs_alloc_free(a, 20, 10, 7), 0);  /* committed gen */
	assert_int_equal(mfs_alloc_free(a, 40, 5, 8), 0);   /* running gen */
	mfs_alloc_reset(a, 7);
	assert_int_equal(mfs_alloc_free_blocks(a), 10);
	assert_int_equal(mfs_alloc_avail_blocks(a), 0);
	/* The committed FREE tree: [20,30) (freed in 7) and [60,200). */
	assert_int_equal(mfs_alloc_load(a, 15, 20), 0);     /* 15..35 */
	assert_int_equal(mfs_alloc_load(a, 60, 140), 0);
	assert_int_equal(mfs_alloc_avail_blocks(a), 10 + 140);
	assert_int_equal(mfs_alloc_free_blocks(a), 10 + 10 + 140);
	assert_false(mfs_alloc_is_free(a, 40));
	/* Pinned blocks are not handed out until unpinned. */
	assert_int_equal(mfs_alloc_alloc(a, 20, 10, 10, &s, &l), 0);
	assert_true(s >= 60);
	mfs_alloc_unpin(a, 7);
	assert_int_equal(mfs_alloc_alloc(a, 20, 10, 10, &s, &l), 0);
	assert_int_equal(s, 20);
	mfs_alloc_destroy(a);
}

static void test_pins(void **state)
{
	struct mfs_alloc *a = mk(0, 100, false);
	uint64_t s, l;

	assert_int_equal(mfs_alloc_free(a, 10, 10, 5), 0);
	assert_int_equal(mfs_alloc_free(a, 20, 10, 6), 0);
	assert_int_equal(mfs_alloc_free(a, 40, 10, 7), 0);
	assert_int_equal(mfs_alloc_free(a, 50, 5, 5), 0);
	assert_int_equal(mfs_alloc_free_blocks(a), 35);
	assert_int_equal(mfs_alloc_avail_blocks(a), 0);
	assert_true(mfs_alloc_is_free(a, 10));
	assert_true(mfs_alloc_is_free(a, 54));
	assert_false(mfs_alloc_is_free(a, 55));
	assert_int_equal(mfs_alloc_alloc(a, 0, 1, 1, &s, &l), -ENOSPC);

	mfs_alloc_unpin(a, 4);
	assert_int_equal(mfs_alloc_avail_blocks(a), 0);
	assert_int_equal(mfs_alloc_alloc(a, 0, 1, 1, &s, &l), -ENOSPC);

	mfs_alloc_unpin(a, 5);
	assert_int_equal(mfs_alloc_avail_blocks(a), 15);
	assert_int_equal(mfs_alloc_free_blocks(a), 35);
	/* Only generation 5's blocks: 10..20 and 50..55. */
	expect_alloc(a, 0, 20, 1, 10, 10);
	expect_alloc(a, 0, 20, 1, 50, 5);
	assert_int_equal(mfs_alloc_alloc(a, 0, 1, 1, &s, &l), -ENOSPC);
	assert_int_equal(mfs_alloc_free(a, 10, 10, 0), 0);

	/* Unpinning 6 and 7 at once merges them with avail 10..20. */
	mfs_alloc_unpin(a, 100);
	assert_int_equal(mfs_alloc_avail_blocks(a), 30);
	expect_alloc(a, 0, 20, 20, 10, 20);
	expect_alloc(a, 0, 10, 10, 40, 10);
	assert_int_equal(mfs_alloc_free_blocks(a), 0);
	mfs_alloc_destroy(a);
}

static void test_gen0_reuse(void **state)
{
	struct mfs_alloc *a = mk(0, 64, true);

	expect_alloc(a, 0, 64, 64, 0, 64);
	assert_int_equal(mfs_alloc_free(a, 16, 8, 0), 0);
	assert_int_equal(mfs_alloc_avail_blocks(a), 8);
	expect_alloc(a, 0, 8, 8, 16, 8);
	/* The same run freed pinned is not reusable. */
	assert_int_equal(mfs_alloc_free(a, 16, 8, 1), 0);
	assert_int_equal(mfs_alloc_avail_blocks(a), 0);
	mfs_alloc_destroy(a);
}

/* walk_free merges runs of avail and of several pinned sets that touch
 * into one maximal run, clips to [start, end) and stops on cb's value. */
static void test_walk(void **state)
{
	struct mfs_alloc *a = mk(0, 100, false);
	struct runs rs = { 0 };

	assert_int_equal(mfs_alloc_load(a, 0, 10), 0);
	assert_int_equal(mfs_alloc_free(a, 10, 10, 1), 0);
	assert_int_equal(mfs_alloc_free(a, 20, 5, 2), 0);
	assert_int_equal(mfs_alloc_free(a, 25, 3, 0), 0);
	assert_int_equal(mfs_alloc_free(a, 30, 10, 2), 0);
	assert_int_equal(mfs_alloc_free(a, 40, 1, 1), 0);
	assert_int_equal(mfs_alloc_free(a, 50, 1, 0), 0);
	assert_int_equal(mfs_alloc_free(a, 99, 1, 3), 0);

	expect_runs(a, 0, 100, (struct run[]){
		{ 0, 28 }, { 30, 11 }, { 50, 1 }, { 99, 1 } }, 4);
	expect_runs(a, 5, 35, (struct run[]){ { 5, 23 }, { 30, 5 } }, 2);
	expect_runs(a, 12, 13, (struct run[]){ { 12, 1 } }, 1);
	expect_runs(a, 28, 30, NULL, 0);
	expect_runs(a, 30, 30, NULL, 0);
	expect_runs(a, 40, 20, NULL, 0);
	expect_runs(a, 41, UINT64_MAX, (struct run[]){ { 50, 1 }, { 99, 1 } },
		    2);

	rs.stop_after = 2;
	assert_int_equal(mfs_alloc_walk_free(a, 0, 100, collect, &rs), 7);
	assert_int_equal(rs.n, 2);
	free(rs.r);

	/* After unpin the same blocks are one avail run each. */
	mfs_alloc_unpin(a, 3);
	expect_runs(a, 0, 100, (struct run[]){
		{ 0, 28 }, { 30, 11 }, { 50, 1 }, { 99, 1 } }, 4);
	expect_alloc(a, 0, 28, 28, 0, 28);
	mfs_alloc_destroy(a);
}

struct walk_mut {
	struct mfs_alloc *a;
	struct runs seen;
};

/* Changes the allocator from inside the walk, as the txn layer does when
 * writing FREE items allocates tree blocks: takes the first block of each
 * 5-block run and frees (pinned) a block in the gap ahead. */
static int mutate_cb(void *arg, uint64_t start, uint64_t len)
{
	struct walk_mut *w = arg;
	uint64_t s, l;

	collect(&w->seen, start, len);
	if (len != 5)
		return 0;
	assert_int_equal(mfs_alloc_alloc(w->a, start, 1, 1, &s, &l), 0);
	assert_int_equal(s, start);
	assert_int_equal(mfs_alloc_free(w->a, start + 7, 1, 1), 0);
	return 0;
}

static void test_walk_mutating(void **state)
{
	struct walk_mut w = { .a = mk(0, 1000, false) };

	for (uint64_t i = 0; i < 100; i++)
		assert_int_equal(mfs_alloc_load(w.a, i * 10, 5), 0);
	assert_int_equal(mfs_alloc_walk_free(w.a, 0, 1000, mutate_cb, &w), 0);
	assert_int_equal(w.seen.n, 200);
	for (uint64_t i = 0; i < 100; i++) {
		assert_int_equal(w.seen.r[2 * i].start, i * 10);
		assert_int_equal(w.seen.r[2 * i].len, 5);
		assert_int_equal(w.seen.r[2 * i + 1].start, i * 10 + 7);
		assert_int_equal(w.seen.r[2 * i + 1].len, 1);
	}
	assert_int_equal(mfs_alloc_avail_blocks(w.a), 400);
	assert_int_equal(mfs_alloc_free_blocks(w.a), 500);
	free(w.seen.r);
	mfs_alloc_destroy(w.a);
}

/* Pop every dirty range; check each block of [s, s+len) is covered. */
static void expect_dirty_covers(struct mfs_alloc *a, const struct run *r,
				size_t n)
{
	uint64_t ds[64], de[64], s, e;
	size_t nd = 0;

	while (mfs_alloc_pop_dirty(a, &s, &e)) {
		assert_true(nd < 64);
		assert_true(s < e);
		if (nd)
			assert_true(s > de[nd - 1]); /* ordered, merged */
		ds[nd] = s;
		de[nd] = e;
		nd++;
	}
	for (size_t i = 0; i < n; i++) {
		for (uint64_t b = r[i].start; b < r[i].start + r[i].len; b++) {
			bool hit = false;

			for (size_t j = 0; j < nd; j++)
				hit |= ds[j] <= b && b < de[j];
			assert_true(hit);
		}
	}
	assert_false(mfs_alloc_pop_dirty(a, &s, &e));
}

static void test_dirty(void **state)
{
	struct mfs_alloc *a = mk(0, 1000, true);
	uint64_t s, e;

	/* load does not mark dirty. */
	assert_false(mfs_alloc_pop_dirty(a, &s, &e));

	expect_alloc(a, 100, 10, 10, 100, 10);
	expect_alloc(a, 110, 10, 10, 110, 10);
	expect_alloc(a, 500, 5, 5, 500, 5);
	assert_int_equal(mfs_alloc_free(a, 102, 3, 4), 0);
	assert_true(mfs_alloc_pop_dirty(a, &s, &e));
	assert_int_equal(s, 100);
	assert_int_equal(e, 120);
	assert_true(mfs_alloc_pop_dirty(a, &s, &e));
	assert_int_equal(s, 500);
	assert_int_equal(e, 505);
	assert_false(mfs_alloc_pop_dirty(a, &s, &e));

	/* unpin does not mark dirty: FREE already holds pinned runs. */
	mfs_alloc_unpin(a, 4);
	assert_false(mfs_alloc_pop_dirty(a, &s, &e));

	/* Ranges that overlap or touch merge; a bridge joins two. */
	assert_int_equal(mfs_alloc_free(a, 500, 2, 0), 0);
	assert_int_equal(mfs_alloc_free(a, 503, 2, 9), 0);
	expect_alloc(a, 700, 1, 1, 700, 1);
	expect_alloc(a, 702, 1, 1, 702, 1);
	expect_alloc(a, 701, 1, 1, 701, 1);
	assert_int_equal(mfs_alloc_free(a, 110, 10, 0), 0);
	expect_dirty_covers(a, (struct run[]){
		{ 500, 2 }, { 503, 2 }, { 700, 3 }, { 110, 10 } }, 4);
	mfs_alloc_destroy(a);
}

/* mfs_alloc_mark_dirty: marks, clips to the managed range, merges with
 * other dirty ranges, and leaves the free set alone. */
static void test_mark_dirty(void **state)
{
	struct mfs_alloc *a = mk(2, 1000, true);
	uint64_t s, e, before = mfs_alloc_free_blocks(a);

	assert_int_equal(mfs_alloc_mark_dirty(a, 10, 20), 0);
	assert_true(mfs_alloc_pop_dirty(a, &s, &e));
	assert_int_equal(s, 10);
	assert_int_equal(e, 20);
	assert_false(mfs_alloc_pop_dirty(a, &s, &e));

	assert_int_equal(mfs_alloc_mark_dirty(a, 0, 5000), 0);
	assert_true(mfs_alloc_pop_dirty(a, &s, &e));
	assert_int_equal(s, 2);
	assert_int_equal(e, 1000);
	assert_false(mfs_alloc_pop_dirty(a, &s, &e));

	assert_int_equal(mfs_alloc_mark_dirty(a, 1000, 2000), 0);
	assert_int_equal(mfs_alloc_mark_dirty(a, 50, 50), 0);
	assert_false(mfs_alloc_pop_dirty(a, &s, &e));

	expect_alloc(a, 100, 10, 10, 100, 10);
	assert_int_equal(mfs_alloc_mark_dirty(a, 105, 130), 0);
	assert_true(mfs_alloc_pop_dirty(a, &s, &e));
	assert_int_equal(s, 100);
	assert_int_equal(e, 130);
	assert_int_equal(mfs_alloc_free_blocks(a), before - 10);
	mfs_alloc_destroy(a);
}

static void test_grow(void **state)
{
	struct mfs_alloc *a = mk(1, 100, false);
	uint64_t s, e, l;

	assert_int_equal(mfs_alloc_load(a, 90, 10), 0);
	assert_int_equal(mfs_alloc_grow(a, 99), -EINVAL);
	assert_int_equal(mfs_alloc_grow(a, 100), 0);
	assert_false(mfs_alloc_pop_dirty(a, &s, &e));
	assert_int_equal(mfs_alloc_free(a, 100, 1, 0), -EUCLEAN);

	assert_int_equal(mfs_alloc_grow(a, 150), 0);
	assert_int_equal(mfs_alloc_block_count(a), 150);
	assert_int_equal(mfs_alloc_avail_blocks(a), 60);
	expect_runs(a, 0, UINT64_MAX, (struct run[]){ { 90, 60 } }, 1);
	assert_true(mfs_alloc_pop_dirty(a, &s, &e));
	assert_int_equal(s, 100);
	assert_int_equal(e, 150);
	assert_false(mfs_alloc_pop_dirty(a, &s, &e));
	expect_alloc(a, 90, 60, 60, 90, 60);

	/* Growing after a used tail gives a run of its own. */
	assert_int_equal(mfs_alloc_grow(a, 160), 0);
	assert_int_equal(mfs_alloc_alloc(a, 0, 11, 11, &s, &l), -ENOSPC);
	expect_alloc(a, 0, 10, 10, 150, 10);
	mfs_alloc_destroy(a);
}

static void test_reset(void **state)
{
	struct mfs_alloc *a = mk(0, 100, true);
	uint64_t s, e, l;

	expect_alloc(a, 0, 50, 50, 0, 50);
	assert_int_equal(mfs_alloc_free(a, 0, 10, 7), 0);
	assert_int_equal(mfs_alloc_grow(a, 120), 0);
	mfs_alloc_reset(a, 0);
	assert_int_equal(mfs_alloc_free_blocks(a), 0);
	assert_int_equal(mfs_alloc_avail_blocks(a), 0);
	assert_int_equal(mfs_alloc_block_count(a), 120);
	assert_false(mfs_alloc_is_free(a, 0));
	assert_false(mfs_alloc_is_free(a, 60));
	assert_false(mfs_alloc_pop_dirty(a, &s, &e));
	assert_int_equal(mfs_alloc_alloc(a, 0, 1, 1, &s, &l), -ENOSPC);
	expect_runs(a, 0, UINT64_MAX, NULL, 0);
	/* The pin of generation 7 is gone too: unpin finds nothing. */
	mfs_alloc_unpin(a, 7);
	assert_int_equal(mfs_alloc_free_blocks(a), 0);

	/* Reload, as abort does. */
	assert_int_equal(mfs_alloc_load(a, 0, 120), 0);
	expect_alloc(a, 0, 120, 120, 0, 120);
	mfs_alloc_destroy(a);
}

/* Host space is reserved for exactly the run handed out, before it is
 * handed out; a failed reservation allocates nothing. */
static void test_reserve(void **state)
{
	struct mfs_alloc *a = NULL;
	uint64_t s = 0, l = 0, ds, de;

	assert_int_equal(mfs_alloc_create(&fake_img, 0, 1000, &a), 0);
	assert_int_equal(mfs_alloc_load(a, 0, 1000), 0);
	assert_int_equal(reserve_calls, 0);

	reserve_rc = 0;
	expect_alloc(a, 300, 16, 1, 300, 16);
	assert_int_equal(reserve_calls, 1);
	assert_int_equal(reserve_off, 300 * 4096);
	assert_int_equal(reserve_len, 16 * 4096);
	drain_dirty(a);

	reserve_rc = -ENOSPC;
	assert_int_equal(mfs_alloc_alloc(a, 316, 8, 1, &s, &l), -ENOSPC);
	assert_int_equal(reserve_calls, 2);
	assert_int_equal(reserve_off, 316 * 4096);
	assert_int_equal(mfs_alloc_avail_blocks(a), 1000 - 16);
	assert_true(mfs_alloc_is_free(a, 316));
	assert_false(mfs_alloc_pop_dirty(a, &ds, &de));
	reserve_rc = -EIO;
	assert_int_equal(mfs_alloc_alloc(a, 316, 8, 1, &s, &l), -EIO);

	/* Frees never reserve. */
	assert_int_equal(mfs_alloc_free(a, 300, 16, 0), 0);
	assert_int_equal(reserve_calls, 3);
	reserve_rc = 0;
	expect_alloc(a, 316, 8, 1, 316, 8);
	mfs_alloc_destroy(a);
}

/* ---- randomized test against a bitmap model ---- */

#define M_MAX 4096          /* largest count the model grows to */
#define M_FIRST 3
#define M_USED (-1)          /* model state; 0 = avail, > 0 = pinned gen */

struct model {
	int64_t st[M_MAX];
	bool changed[M_MAX]; /* since the last dirty drain */
	uint64_t count;
	uint64_t avail, pinned;
	struct run *files;   /* allocated runs */
	size_t nfiles, cap;
	uint64_t rng;
	unsigned long op;
};

static uint64_t rnd(struct model *m, uint64_t n)
{
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return n ? m->rng % n : 0;
}

static void check_eq(struct model *m, const char *what, uint64_t got,
		     uint64_t exp)
{
	if (got != exp)
		fail_msg("op %lu: %s: got %" PRIu64 ", expected %" PRIu64,
			 m->op, what, got, exp);
}

static void file_push(struct model *m, uint64_t s, uint64_t l)
{
	if (m->nfiles == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		m->files = realloc(m->files, m->cap * sizeof(*m->files));
		assert_non_null(m->files);
	}
	m->files[m->nfiles].start = s;
	m->files[m->nfiles].len = l;
	m->nfiles++;
}

/* The policy of alloc.h, by brute force over the bitmap. */
static int model_alloc(struct model *m, uint64_t goal, uint64_t want,
		       uint64_t min, uint64_t *s, uint64_t *l)
{
	uint64_t after_s = 0, any_s = 0, best_s = 0, best_l = 0;
	bool after = false, any = false;
	uint64_t b;

	if (goal < M_FIRST || goal >= m->count)
		goal = M_FIRST;
	for (b = goal; b < m->count && m->st[b] == 0 && b - goal < want; b++)
		;
	if (b - goal >= want) {
		*s = goal;
		*l = want;
		return 0;
	}
	for (b = M_FIRST; b < m->count;) {
		uint64_t rs = b;

		if (m->st[b] != 0) {
			b++;
			continue;
		}
		while (b < m->count && m->st[b] == 0)
			b++;
		if (b - rs >= want && rs >= goal && !after) {
			after = true;
			after_s = rs;
		}
		if (b - rs >= want && !any) {
			any = true;
			any_s = rs;
		}
		if (b - rs > best_l) {
			best_l = b - rs;
			best_s = rs;
		}
	}
	if (after || any) {
		*s = after ? after_s : any_s;
		*l = want;
		return 0;
	}
	if (best_l < min)
		return -ENOSPC;
	*s = best_s;
	*l = best_l < want ? best_l : want;
	return 0;
}

/* Maximal free runs of the model inside [start, end). */
static void model_runs(struct model *m, uint64_t start, uint64_t end,
		       struct runs *rs)
{
	rs->n = 0;
	if (end > m->count)
		end = m->count;
	for (uint64_t b = start < M_FIRST ? M_FIRST : start; b < end;) {
		uint64_t s = b;

		if (m->st[b] == M_USED) {
			b++;
			continue;
		}
		while (b < end && m->st[b] != M_USED)
			b++;
		collect(rs, s, b - s);
	}
}

static void check_walk(struct model *m, struct mfs_alloc *a, uint64_t start,
		       uint64_t end)
{
	struct runs got = { 0 }, exp = { 0 };

	walk(a, start, end, &got);
	model_runs(m, start, end, &exp);
	check_eq(m, "walk runs", got.n, exp.n);
	for (size_t i = 0; i < exp.n; i++) {
		check_eq(m, "walk start", got.r[i].start, exp.r[i].start);
		check_eq(m, "walk len", got.r[i].len, exp.r[i].len);
	}
	free(got.r);
	free(exp.r);
}

static void check_full(struct model *m, struct mfs_alloc *a)
{
	uint64_t avail = 0, pinned = 0;

	for (uint64_t b = 0; b < m->count + 8; b++) {
		bool is_free = b >= M_FIRST && b < m->count &&
			       m->st[b] != M_USED;

		if (is_free && m->st[b] == 0)
			avail++;
		else if (is_free)
			pinned++;
		check_eq(m, "is_free", mfs_alloc_is_free(a, b), is_free);
	}
	check_eq(m, "model avail", m->avail, avail);
	check_eq(m, "model pinned", m->pinned, pinned);
	check_eq(m, "block_count", mfs_alloc_block_count(a), m->count);
	check_walk(m, a, 0, UINT64_MAX);
}

static void m_alloc(struct model *m, struct mfs_alloc *a)
{
	uint64_t goal = rnd(m, m->count + 16);
	uint64_t want = rnd(m, 8) ? 1 + rnd(m, 24) : 1 + rnd(m, 400);
	uint64_t min = 1 + rnd(m, want);
	uint64_t s = 0, l = 0, es = 0, el = 0;
	int rc, erc;

	erc = model_alloc(m, goal, want, min, &es, &el);
	rc = mfs_alloc_alloc(a, goal, want, min, &s, &l);
	check_eq(m, "alloc rc", (uint64_t)rc, (uint64_t)erc);
	if (rc)
		return;
	check_eq(m, "alloc start", s, es);
	check_eq(m, "alloc len", l, el);
	for (uint64_t b = s; b < s + l; b++) {
		m->st[b] = M_USED;
		m->changed[b] = true;
	}
	m->avail -= l;
	file_push(m, s, l);
}

static void m_free(struct model *m, struct mfs_alloc *a, uint64_t cur_gen)
{
	size_t i;
	struct run f;
	uint64_t s, l, gen;

	if (!m->nfiles)
		return;
	i = rnd(m, m->nfiles);
	f = m->files[i];
	if (rnd(m, 2)) {
		s = f.start;
		l = f.len;
	} else {
		s = f.start + rnd(m, f.len);
		l = 1 + rnd(m, f.start + f.len - s);
	}
	switch (rnd(m, 4)) {
	case 0:  gen = 0; break;
	case 1:  gen = cur_gen > 1 ? cur_gen - 1 : cur_gen; break;
	default: gen = cur_gen; break;
	}
	check_eq(m, "free rc", (uint64_t)mfs_alloc_free(a, s, l, gen), 0);
	for (uint64_t b = s; b < s + l; b++) {
		m->st[b] = (int64_t)gen;
		m->changed[b] = true;
	}
	if (gen)
		m->pinned += l;
	else
		m->avail += l;

	/* Keep what is left of the file as up to two runs. */
	m->files[i] = m->files[--m->nfiles];
	if (s > f.start)
		file_push(m, f.start, s - f.start);
	if (s + l < f.start + f.len)
		file_push(m, s + l, f.start + f.len - (s + l));
}

/* A free that must be refused: one of its blocks is free or it is out of
 * range. */
static void m_bad_free(struct model *m, struct mfs_alloc *a, uint64_t cur_gen)
{
	uint64_t b = rnd(m, m->count + 4), l = 1 + rnd(m, 8);
	bool bad = b < M_FIRST || b + l > m->count;

	for (uint64_t x = b; !bad && x < b + l; x++)
		bad = m->st[x] != M_USED;
	if (!bad)
		return;
	check_eq(m, "bad free rc",
		 (uint64_t)mfs_alloc_free(a, b, l, rnd(m, 2) ? cur_gen : 0),
		 (uint64_t)-EUCLEAN);
}

static void m_unpin(struct model *m, struct mfs_alloc *a, uint64_t gen)
{
	mfs_alloc_unpin(a, gen);
	for (uint64_t b = M_FIRST; b < m->count; b++) {
		if (m->st[b] > 0 && (uint64_t)m->st[b] <= gen) {
			m->st[b] = 0;
			m->pinned--;
			m->avail++;
		}
	}
}

static void m_drain_dirty(struct model *m, struct mfs_alloc *a)
{
	static bool covered[M_MAX];
	uint64_t s, e, prev_end = 0;

	memset(covered, 0, sizeof(covered));
	while (mfs_alloc_pop_dirty(a, &s, &e)) {
		if (!(prev_end <= s && s < e && e <= m->count))
			fail_msg("op %lu: bad dirty range %" PRIu64
				 "..%" PRIu64, m->op, s, e);
		for (uint64_t b = s; b < e; b++)
			covered[b] = true;
		prev_end = e;
	}
	for (uint64_t b = 0; b < M_MAX; b++) {
		if (m->changed[b] && !covered[b])
			fail_msg("op %lu: block %" PRIu64 " changed, not dirty",
				 m->op, b);
	}
	memset(m->changed, 0, sizeof(m->changed));
}

/* What abort does: forget everything, reload the free set. */
static void m_reset_reload(struct model *m, struct mfs_alloc *a)
{
	struct runs rs = { 0 };

	mfs_alloc_reset(a, 0);
	memset(m->changed, 0, sizeof(m->changed));
	model_runs(m, 0, m->count, &rs);
	for (size_t i = 0; i < rs.n; i++) {
		check_eq(m, "reload rc",
			 (uint64_t)mfs_alloc_load(a, rs.r[i].start,
						  rs.r[i].len), 0);
		for (uint64_t b = rs.r[i].start;
		     b < rs.r[i].start + rs.r[i].len; b++)
			m->st[b] = 0;
	}
	m->avail += m->pinned;
	m->pinned = 0;
	free(rs.r);
}

static void test_random_model(void **state)
{
	static struct model m; /* big: keep it off the stack */
	struct mfs_alloc *a = NULL;
	uint64_t gen = 1;
	const char *seed = getenv("MMAPFS_TEST_SEED");

	memset(&m, 0, sizeof(m));
	m.rng = seed ? strtoull(seed, NULL, 0) : 0x2545f4914f6cdd1dULL;
	if (!m.rng)
		m.rng = 1;
	m.count = 3000;
	for (uint64_t b = 0; b < M_MAX; b++)
		m.st[b] = M_USED;
	assert_int_equal(mfs_alloc_create(NULL, M_FIRST, m.count, &a), 0);
	/* Load in random pieces: load must merge them. */
	for (uint64_t b = M_FIRST; b < m.count;) {
		uint64_t l = 1 + rnd(&m, 300);

		if (l > m.count - b)
			l = m.count - b;
		assert_int_equal(mfs_alloc_load(a, b, l), 0);
		for (uint64_t x = b; x < b + l; x++)
			m.st[x] = 0;
		m.avail += l;
		b += l;
	}
	check_full(&m, a);

	for (m.op = 0; m.op < 250000; m.op++) {
		uint64_t r = rnd(&m, 1000);

		if (r < 440) {
			m_alloc(&m, a);
		} else if (r < 880) {
			m_free(&m, a, gen);
		} else if (r < 920) {
			m_bad_free(&m, a, gen);
		} else if (r < 960) {
			/* A commit: unpin what two generations ago freed. */
			if (gen > 2)
				m_unpin(&m, a, gen - 2);
			gen++;
		} else if (r < 965) {
			m_unpin(&m, a, rnd(&m, gen + 1));
		} else if (r < 985) {
			m_drain_dirty(&m, a);
		} else if (r < 987) {
			uint64_t n = m.count + rnd(&m, 40);

			if (n > M_MAX)
				n = M_MAX;
			check_eq(&m, "grow rc", (uint64_t)mfs_alloc_grow(a, n),
				 0);
			for (uint64_t b = m.count; b < n; b++) {
				m.st[b] = 0;
				m.changed[b] = true;
			}
			m.avail += n - m.count;
			m.count = n;
		} else if (r < 988 && rnd(&m, 20) == 0) {
			m_reset_reload(&m, a);
		} else {
			uint64_t s = rnd(&m, m.count + 8);

			check_walk(&m, a, s, s + rnd(&m, 600));
		}

		check_eq(&m, "avail", mfs_alloc_avail_blocks(a), m.avail);
		check_eq(&m, "free", mfs_alloc_free_blocks(a),
			 m.avail + m.pinned);
		for (int i = 0; i < 4; i++) {
			uint64_t b = rnd(&m, m.count + 2);

			check_eq(&m, "sampled is_free", mfs_alloc_is_free(a, b),
				 b >= M_FIRST && b < m.count &&
				 m.st[b] != M_USED);
		}
		if (m.op % 1000 == 999)
			check_full(&m, a);
	}
	check_full(&m, a);
	m_drain_dirty(&m, a);
	free(m.files);
	mfs_alloc_destroy(a);
}

/* ---- scale ---- */

static int count_runs(void *arg, uint64_t start, uint64_t len)
{
	(*(uint64_t *)arg)++;
	return 0;
}

/*
 * A million single-block runs: every operation must stay logarithmic
 * (a linear scan per call would take hours here). Not timed: a
 * correctness test at a size where the tree shape matters.
 */
static void test_scale(void **state)
{
	const uint64_t n = 1000000, count = 2 * n;
	struct mfs_alloc *a = mk(0, count, false);
	uint64_t s, l, runs = 0, rng = 88172645463325252ULL, taken = 0;

	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(mfs_alloc_free(a, 2 * i, 1, 0), 0);
	assert_int_equal(mfs_alloc_avail_blocks(a), n);
	assert_int_equal(mfs_alloc_walk_free(a, 0, count, count_runs, &runs),
			 0);
	assert_int_equal(runs, n);
	drain_dirty(a);

	/* No run of 2 anywhere: ENOSPC, found without scanning. */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(mfs_alloc_alloc(a, (uint64_t)i * 1999, 2, 2,
						 &s, &l), -ENOSPC);
	/* Random goals: the first free block at or after the goal. */
	for (int i = 0; i < 200000; i++) {
		uint64_t goal;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		goal = rng % count;
		assert_int_equal(mfs_alloc_alloc(a, goal, 1, 1, &s, &l), 0);
		assert_int_equal(l, 1);
		assert_int_equal(s % 2, 0);
		/* Nothing was free between goal and s (or, if it wrapped,
		 * from goal up). */
		runs = 0;
		assert_int_equal(mfs_alloc_walk_free(a, goal,
						     s >= goal ? s : count,
						     count_runs, &runs), 0);
		assert_int_equal(runs, 0);
		assert_false(mfs_alloc_is_free(a, s));
		taken++;
	}
	/* Falls back to the longest (all 1): want 4, min 1. */
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(mfs_alloc_alloc(a, count / 2, 4, 1, &s, &l),
				 0);
		assert_int_equal(l, 1);
		taken++;
	}
	assert_int_equal(mfs_alloc_avail_blocks(a), n - taken);

	/* Pin every odd block: runs of different sets touch everywhere. */
	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(mfs_alloc_free(a, 2 * i + 1, 1, 9), 0);
	runs = 0;
	assert_int_equal(mfs_alloc_walk_free(a, 0, count, count_runs, &runs),
			 0);
	assert_true(runs <= taken + 1);
	assert_int_equal(mfs_alloc_free_blocks(a), 2 * n - taken);
	mfs_alloc_unpin(a, 9);
	assert_int_equal(mfs_alloc_avail_blocks(a), 2 * n - taken);
	runs = 0;
	assert_int_equal(mfs_alloc_walk_free(a, 0, count, count_runs, &runs),
			 0);
	assert_true(runs <= taken + 1);
	mfs_alloc_destroy(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_goal_contiguity),
		cmocka_unit_test(test_goal_inside_run),
		cmocka_unit_test(test_fallbacks),
		cmocka_unit_test(test_bad_free),
		cmocka_unit_test(test_pins),
		cmocka_unit_test(test_load_keeps_pins),
		cmocka_unit_test(test_gen0_reuse),
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_walk_mutating),
		cmocka_unit_test(test_dirty),
		cmocka_unit_test(test_mark_dirty),
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_reserve),
		cmocka_unit_test(test_random_model),
		cmocka_unit_test(test_scale),
	};
	const char *filter = getenv("MMAPFS_TEST_FILTER");

	if (filter)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
