/* SPDX-License-Identifier: MIT */
/*
 * test_powerloss.c — power-loss simulation of the commit protocol.
 *
 * The image's sync hook keeps "the last durable state": a copy of the whole
 * image taken after every sync. A crash image is that durable copy plus any
 * subset of the 4 KiB pages that differ in the image at a later moment (the
 * kernel may have written back any of them, in any order), and sometimes a
 * torn superblock page (old and new 512-byte sectors mixed, or a write cut
 * inside the superblock sector). Crash images are taken inside the hook —
 * i.e. in the middle of a commit, between its two syncs — and between
 * operations.
 *
 * Every crash image must open, pass mfs_btree_check on both trees, account
 * for every block exactly once, and hold exactly the last committed state,
 * or the state of the commit in flight when the crash happened (told apart
 * by the superblock generation).
 *
 * Explicit cases: a damaged newer superblock slot falls back to the older
 * one (with its whole tree intact, even after uncommitted work); both slots
 * damaged: -EUCLEAN.
 *
 * MMAPFS_SEED=n runs one seed; MMAPFS_CRASH_IMAGES=n crash images per seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <sys/mman.h>

#include "log.h"
#include "mfs_test.h"

#define MiB (1024ULL * 1024)
#define PAGE 4096u

/* Library log lines are expected here (torn superblocks): keep the last
 * one for failure messages instead of printing them all. */
static char last_log[1024];
static unsigned long log_lines;

static void quiet_sink(int level, const char *msg)
{
	(void)level;
	snprintf(last_log, sizeof(last_log), "%s", msg);
	log_lines++;
}

struct pl {
	uint64_t seed, rng;
	char dir[PATH_MAX];
	char img[PATH_MAX + 16];
	char crash[PATH_MAX + 16];
	struct mfs_vol *v;
	uint64_t size;
	uint8_t *durable;  /* the image after the last sync */
	uint8_t *crashbuf;
	struct model live, committed, inflight;
	uint64_t committed_gen;
	bool in_commit;
	unsigned long syncs, images, img_committed, img_inflight, img_rw;
	unsigned long img_in_hook, torn_sb, commits;
	unsigned long target;
	uint8_t buf[MFS_MAX_VALUE];
};

#define PL_FAIL(p, ...)                                                       \
	do {                                                                  \
		print_error("seed %" PRIu64 " sync %lu image %lu (last log: %s): ", \
			    (p)->seed, (p)->syncs, (p)->images, last_log);    \
		fail_msg(__VA_ARGS__);                                        \
	} while (0)

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	const uint8_t *p = buf;

	assert_true(fd >= 0);
	while (len) {
		ssize_t n = write(fd, p, len);
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
	assert_int_equal(close(fd), 0);
}

/* Open a crash image and check it against the expected states. */
static void pl_verify_crash(struct pl *p)
{
	struct mfs_vol *cv = NULL;
	const struct model *want;
	char tag[128];
	int rc;

	write_file(p->crash, p->crashbuf, p->size);
	rc = mfs_vol_open(p->crash, MFS_VOL_RDONLY | MFS_VOL_NOLOCK, &cv);
	if (rc)
		PL_FAIL(p, "crash image does not open: %d", rc);
	if (cv->sb.generation == p->committed_gen) {
		want = &p->committed;
		p->img_committed++;
	} else if (p->in_commit && cv->sb.generation > p->committed_gen) {
		want = &p->inflight;
		p->img_inflight++;
	} else {
		PL_FAIL(p, "crash image at generation %" PRIu64 ", committed %"
			PRIu64 ", in commit %d", cv->sb.generation, p->committed_gen,
			p->in_commit);
		return;
	}
	snprintf(tag, sizeof(tag), "seed %" PRIu64 " image %lu gen %" PRIu64,
		 p->seed, p->images, cv->sb.generation);
	for (unsigned t = 0; t < MFS_TREE_COUNT; t++) {
		rc = mfs_btree_check(cv, t, NULL, NULL);
		if (rc)
			PL_FAIL(p, "crash image: mfs_btree_check(%u) = %d", t, rc);
	}
	if (tree_matches_model(cv, MFS_TREE_FS, want, tag))
		PL_FAIL(p, "crash image content differs from the %s state",
			want == &p->committed ? "committed" : "in-flight");
	if (check_space(cv, tag))
		PL_FAIL(p, "crash image space accounting");
	rc = mfs_vol_close(cv);
	if (rc)
		PL_FAIL(p, "close of read-only crash image = %d", rc);

	/* Sometimes: the crash image is also usable read-write. */
	if (rng_chance(&p->rng, 1, 8)) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + 999, 9, p->images);
		struct model m = { 0 };

		rc = mfs_vol_open(p->crash, MFS_VOL_NOLOCK, &cv);
		if (rc)
			PL_FAIL(p, "crash image read-write open = %d", rc);
		rc = mfs_btree_insert(cv, MFS_TREE_FS, &k, "after", 5);
		if (rc)
			PL_FAIL(p, "insert into crash image = %d", rc);
		rc = mfs_txn_commit(cv);
		if (rc)
			PL_FAIL(p, "commit on crash image = %d", rc);
		model_copy(&m, want);
		model_set(&m, &k, "after", 5);
		if (tree_matches_model(cv, MFS_TREE_FS, &m, tag) ||
		    check_space(cv, tag))
			PL_FAIL(p, "crash image after a read-write commit");
		rc = mfs_vol_close(cv);
		if (rc)
			PL_FAIL(p, "close of crash image = %d", rc);
		model_free(&m);
		p->img_rw++;
	}
	p->images++;
}

/* Build one crash image from the durable copy and cur (the image now). */
static void pl_crash_image(struct pl *p, const uint8_t *cur)
{
	uint64_t pages = p->size / PAGE;
	unsigned mode = (unsigned)rng_below(&p->rng, 6);
	static const unsigned pct[] = { 0, 100, 10, 50, 90, 0 };

	memcpy(p->crashbuf, p->durable, p->size);
	for (uint64_t pg = 0; pg < pages; pg++) {
		const uint8_t *o = p->durable + pg * PAGE, *n = cur + pg * PAGE;
		uint8_t *c = p->crashbuf + pg * PAGE;

		if (memcmp(o, n, PAGE) == 0)
			continue;
		if (pg < MFS_SB_SLOTS) {
			switch (rng_below(&p->rng, 5)) {
			case 0: /* not written */
				break;
			case 1:
			case 2: /* written */
				memcpy(c, n, PAGE);
				break;
			case 3: /* sectors of the page mixed */
				for (unsigned s = 0; s < PAGE / 512; s++)
					if (rng_chance(&p->rng, 1, 2))
						memcpy(c + s * 512, n + s * 512, 512);
				p->torn_sb++;
				break;
			default: { /* the superblock sector itself cut short */
				size_t cut = 1 + (size_t)rng_below(&p->rng, 511);
				memcpy(c, n, cut);
				p->torn_sb++;
				break;
			}
			}
			continue;
		}
		if (mode == 5 || !rng_chance(&p->rng, pct[mode], 100))
			continue;
		memcpy(c, n, PAGE);
	}
	pl_verify_crash(p);
}

static void pl_hook(struct mfs_image *img, void *arg)
{
	struct pl *p = arg;

	p->syncs++;
	if (img->size != p->size)
		PL_FAIL(p, "image size changed to %" PRIu64, img->size);
	if (p->images < p->target && rng_chance(&p->rng, 3, 4)) {
		unsigned n = 1 + (unsigned)rng_below(&p->rng, 3);
		for (unsigned i = 0; i < n; i++) {
			pl_crash_image(p, img->base);
			p->img_in_hook++;
		}
	}
	memcpy(p->durable, img->base, p->size);
}

static void pl_open(struct pl *p)
{
	int rc = mfs_vol_open(p->img, 0, &p->v);

	if (rc)
		PL_FAIL(p, "open = %d", rc);
	/* Open committed (the dirty mark): everything is durable now. */
	memcpy(p->durable, p->v->img->base, p->size);
	p->committed_gen = p->v->sb.generation;
	p->v->img->sync_hook = pl_hook;
	p->v->img->sync_hook_arg = p;
}

/* Close the volume for good: no more crash images. */
static void pl_finish(struct pl *p)
{
	p->v->img->sync_hook = NULL;
	assert_int_equal(mfs_vol_close(p->v), 0);
	p->v = NULL;
	model_free(&p->live);
	model_free(&p->committed);
	model_free(&p->inflight);
	free(p->durable);
	free(p->crashbuf);
	free(p);
}

static void pl_op(struct pl *p)
{
	struct mfs_key k = mfs_key_make(T_OBJ_BASE + rng_below(&p->rng, 20),
					(uint8_t)(1 + rng_below(&p->rng, 2)),
					rng_below(&p->rng, 8));
	size_t len, i;
	bool has = model_find(&p->live, &k, &i);
	int rc;

	switch (rng_below(&p->rng, 4)) {
	case 0: len = 0; break;
	case 1: len = MFS_MAX_VALUE; break;
	default: len = (size_t)rng_below(&p->rng, MFS_MAX_VALUE + 1); break;
	}
	rng_fill(&p->rng, p->buf, len);
	switch (rng_below(&p->rng, 4)) {
	case 0:
		rc = mfs_btree_insert(p->v, MFS_TREE_FS, &k, p->buf, len);
		if (rc != (has ? -EEXIST : 0))
			PL_FAIL(p, "insert = %d", rc);
		if (!has)
			model_set(&p->live, &k, p->buf, len);
		break;
	case 1:
		rc = mfs_btree_put(p->v, MFS_TREE_FS, &k, p->buf, len);
		if (rc)
			PL_FAIL(p, "put = %d", rc);
		model_set(&p->live, &k, p->buf, len);
		break;
	default:
		rc = mfs_btree_delete(p->v, MFS_TREE_FS, &k);
		if (rc != (has ? 0 : -ENOENT))
			PL_FAIL(p, "delete = %d", rc);
		if (has)
			model_del(&p->live, &k);
		break;
	}
}

static void pl_commit(struct pl *p, bool close)
{
	/* A commit writes when something changed or blocks are pinned. */
	bool dirty = p->v->dirty || mfs_alloc_free_blocks(p->v->alloc) !=
				    mfs_alloc_avail_blocks(p->v->alloc);
	int rc;

	model_copy(&p->inflight, &p->live);
	p->in_commit = true;
	if (close) {
		rc = mfs_vol_close(p->v);
		p->v = NULL;
	} else {
		rc = mfs_txn_commit(p->v);
	}
	p->in_commit = false;
	if (rc)
		PL_FAIL(p, "%s = %d", close ? "close" : "commit", rc);
	model_copy(&p->committed, &p->live);
	p->commits += dirty;  /* those that had something to write */
	if (close) {
		pl_open(p);
	} else {
		/* A commit with nothing to write writes nothing. */
		if (dirty ? p->v->sb.generation <= p->committed_gen :
			    p->v->sb.generation != p->committed_gen)
			PL_FAIL(p, "commit (dirty %d) left generation %" PRIu64
				" (was %" PRIu64 ")", dirty, p->v->sb.generation,
				p->committed_gen);
		p->committed_gen = p->v->sb.generation;
	}
}

static void powerloss_run(const char *dir, uint64_t seed, unsigned long target)
{
	struct pl *p = calloc(1, sizeof(*p));
	unsigned long rounds = 0;

	assert_non_null(p);
	print_message("power loss: seed=%" PRIu64 " images=%lu (MMAPFS_SEED=%"
		      PRIu64 " to rerun)\n", seed, target, seed);
	p->seed = p->rng = seed;
	p->target = target;
	p->size = (4 + rng_below(&p->rng, 5)) * MiB;
	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	snprintf(p->img, sizeof(p->img), "%s/pl.img", dir);
	snprintf(p->crash, sizeof(p->crash), "%s/crash.img", dir);
	p->durable = malloc(p->size);
	p->crashbuf = malloc(p->size);
	assert_non_null(p->durable);
	assert_non_null(p->crashbuf);
	t_format(p->img, p->size);
	pl_open(p);
	model_load(&p->live, p->v, MFS_TREE_FS);
	model_copy(&p->committed, &p->live);
	if (rng_chance(&p->rng, 1, 2)) {
		/* Sometimes start empty: the smallest key then changes too. */
		while (p->live.n) {
			struct mfs_key k = p->live.it[0].key;
			assert_int_equal(mfs_btree_delete(p->v, MFS_TREE_FS, &k), 0);
			model_del(&p->live, &k);
		}
		pl_commit(p, false);
	}

	while (p->images < p->target) {
		unsigned nops = 1 + (unsigned)rng_below(&p->rng,
						       rng_chance(&p->rng, 1, 3) ? 5 : 120);
		for (unsigned i = 0; i < nops; i++) {
			pl_op(p);
			if (rng_chance(&p->rng, 1, 200))
				pl_crash_image(p, p->v->img->base);
		}
		unsigned act = (unsigned)rng_below(&p->rng, 100);
		if (act < 70) {
			pl_commit(p, false);
		} else if (act < 80) {
			assert_int_equal(mfs_txn_abort(p->v), 0);
			model_copy(&p->live, &p->committed);
		} else if (act < 85) {
			pl_commit(p, true);
		}
		/* else: keep going in the same transaction */
		if (++rounds > 100000)
			PL_FAIL(p, "no progress");
	}
	pl_commit(p, true);
	for (unsigned t = 0; t < MFS_TREE_COUNT; t++)
		assert_int_equal(mfs_btree_check(p->v, t, NULL, NULL), 0);
	assert_int_equal(tree_matches_model(p->v, MFS_TREE_FS, &p->live, "end"), 0);
	assert_int_equal(check_space(p->v, "end"), 0);
	print_message("  %lu commits, %lu syncs, %lu crash images (%lu in a sync "
		      "hook, %lu torn sb pages): %lu at the committed state, %lu at "
		      "the in-flight one, %lu reopened read-write; %zu items\n",
		      p->commits, p->syncs, p->images, p->img_in_hook, p->torn_sb,
		      p->img_committed, p->img_inflight, p->img_rw, p->live.n);
	/* The simulation must have exercised both outcomes. */
	assert_true(p->syncs >= 2 * p->commits);
	assert_true(p->img_committed > 0);
	assert_true(p->img_inflight > 0);
	pl_finish(p);
}

struct fx {
	char dir[PATH_MAX];
	char img[PATH_MAX + 16];
	char copy[PATH_MAX + 16];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	t_mkdtemp(f->dir, sizeof(f->dir));
	snprintf(f->img, sizeof(f->img), "%s/img", f->dir);
	snprintf(f->copy, sizeof(f->copy), "%s/copy", f->dir);
	last_log[0] = 0;
	mfs_log_set_sink(quiet_sink);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	mfs_log_set_sink(NULL);
	t_rmtree(f->dir);
	free(f);
	return 0;
}

static void test_powerloss_random(void **state)
{
	struct fx *f = *state;
	static const uint64_t defs[] = { 11, 22, 33 };
	uint64_t seeds[4];
	size_t n = t_seeds(seeds, 4, defs, 3);
	unsigned long per = t_env_u64("MMAPFS_CRASH_IMAGES", n == 1 ? 1000 : 300);

	for (size_t i = 0; i < n; i++)
		powerloss_run(f->dir, seeds[i], per);
}

/* ------------------------------------------------------------------ *
 * Explicit superblock-slot cases.
 * ------------------------------------------------------------------ */
static uint64_t slot_gen(const uint8_t *img, unsigned slot)
{
	return mfs_get_le64(img + (size_t)slot * MFS_BLOCK_SIZE + SB_OFF_GENERATION);
}

static uint8_t *map_file(const char *path, size_t *size)
{
	int fd = open(path, O_RDWR);
	struct stat st;
	void *p;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	close(fd);
	*size = (size_t)st.st_size;
	return p;
}

enum damage { D_FLIP, D_TORN, D_ZERO, D_MAGIC, D_COUNT };
static const char *const damage_name[] = { "flipped byte", "torn write",
					   "zeroed sector", "bad magic" };

static void damage_slot(uint8_t *img, unsigned slot, enum damage d)
{
	uint8_t *sb = img + (size_t)slot * MFS_BLOCK_SIZE;

	switch (d) {
	case D_FLIP:
		sb[200] ^= 0x10;
		break;
	case D_TORN: /* second half of the sector never made it */
		memset(sb + 256, 0, MFS_SB_SIZE - 256);
		sb[300] = 0x77;
		break;
	case D_ZERO:
		memset(sb, 0, MFS_SB_SIZE);
		break;
	default:
		sb[0] ^= 0xff;
		break;
	}
}

enum after { AFTER_NOTHING, AFTER_UNCOMMITTED, AFTER_ABORT, AFTER_CLOSE };

/*
 * Commit A, then commit B (deleting and rewriting most of A), then maybe
 * more uncommitted work, then "crash". Damage the slot holding B in each
 * way: the image must open at A, with all of A's tree intact.
 */
static void fallback_case(struct fx *f, enum after after)
{
	struct mfs_vol *v;
	struct model a = { 0 }, b = { 0 };
	uint8_t buf[MFS_MAX_VALUE];
	uint64_t rng = 77, gen_a, gen_b;
	unsigned newest;
	size_t size;
	uint8_t *map;

	t_format(f->img, 8 * MiB);
	v = t_open(f->img, 0);
	model_load(&a, v, MFS_TREE_FS);
	for (uint64_t i = 0; i < 800; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + i, 1, 0);
		size_t l = (size_t)rng_below(&rng, 500);
		rng_fill(&rng, buf, l);
		assert_int_equal(mfs_btree_insert(v, MFS_TREE_FS, &k, buf, l), 0);
		model_set(&a, &k, buf, l);
	}
	assert_int_equal(mfs_txn_commit(v), 0);
	gen_a = v->sb.generation;
	model_copy(&b, &a);
	for (uint64_t i = 0; i < 800; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + i, 1, 0);
		if (i % 3 == 0) {
			assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &k), 0);
			model_del(&b, &k);
		} else {
			size_t l = (size_t)rng_below(&rng, MFS_MAX_VALUE);
			rng_fill(&rng, buf, l);
			assert_int_equal(mfs_btree_update(v, MFS_TREE_FS, &k, buf, l), 0);
			model_set(&b, &k, buf, l);
		}
	}
	assert_int_equal(mfs_txn_commit(v), 0);
	gen_b = v->sb.generation;
	if (after == AFTER_UNCOMMITTED || after == AFTER_ABORT) {
		/* Uncommitted work may use only blocks free in both slots'
		 * states: blocks B freed stay pinned until B's successor is
		 * durable (docs/design.md §5), an abort in between or not. */
		for (int pass = after == AFTER_ABORT ? 0 : 1; pass < 2; pass++) {
			/* Until every available block has been used. */
			int rc = 0;
			for (uint64_t i = 0; i < 100000 && rc == 0; i++) {
				struct mfs_key k = mfs_key_make(T_OBJ_BASE + 5000 + i,
								1, 0);
				rng_fill(&rng, buf, sizeof(buf));
				rc = mfs_btree_insert(v, MFS_TREE_FS, &k, buf,
						      sizeof(buf));
			}
			assert_int_equal(rc, -ENOSPC);
			if (pass == 0)
				assert_int_equal(mfs_txn_abort(v), 0);
		}
	}
	if (after == AFTER_CLOSE) {
		/* A clean close writes a newer slot with B's trees; then the
		 * older slot holds B (the fallback is B itself). */
		assert_int_equal(mfs_vol_close(v), 0);
		model_copy(&a, &b);
		map = map_file(f->img, &size);
		gen_a = slot_gen(map, 0) < slot_gen(map, 1) ? slot_gen(map, 0) :
							       slot_gen(map, 1);
		gen_b = slot_gen(map, 0) ^ slot_gen(map, 1) ^ gen_a;
		munmap(map, size);
	} else {
		mfs_vol_close_dirty(v);
	}

	map = map_file(f->img, &size);
	newest = slot_gen(map, 1) == gen_b ? 1 : 0;
	assert_int_equal(slot_gen(map, newest), gen_b);
	assert_int_equal(slot_gen(map, !newest), gen_a);
	munmap(map, size);

	for (unsigned d = 0; d < D_COUNT; d++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + 99999, 1, 0);

		print_message("fallback after %s: %s in the newer slot %u\n",
			      after == AFTER_NOTHING ? "nothing" :
			      after == AFTER_UNCOMMITTED ? "uncommitted work" :
			      after == AFTER_ABORT ? "abort, uncommitted work" :
							  "clean close",
			      damage_name[d], newest);
		t_copy_file(f->img, f->copy);
		map = map_file(f->copy, &size);
		damage_slot(map, newest, (enum damage)d);
		munmap(map, size);

		v = t_open(f->copy, MFS_VOL_RDONLY);
		assert_int_equal(v->sb.generation, gen_a);
		assert_int_equal(mfs_btree_check(v, MFS_TREE_FS, NULL, NULL), 0);
		assert_int_equal(mfs_btree_check(v, MFS_TREE_FREE, NULL, NULL), 0);
		assert_int_equal(tree_matches_model(v, MFS_TREE_FS, &a, "fallback"), 0);
		assert_int_equal(check_space(v, "fallback"), 0);
		assert_int_equal(mfs_vol_close(v), 0);

		/* And it is writable: the next commit replaces the bad slot. */
		v = t_open(f->copy, 0);
		assert_int_equal(tree_matches_model(v, MFS_TREE_FS, &a, "fallback rw"),
				 0);
		assert_int_equal(mfs_btree_insert(v, MFS_TREE_FS, &k, "z", 1), 0);
		assert_int_equal(mfs_vol_close(v), 0);
		v = t_open(f->copy, 0);
		model_set(&a, &k, "z", 1);
		assert_int_equal(tree_matches_model(v, MFS_TREE_FS, &a, "fallback 2"),
				 0);
		assert_int_equal(check_space(v, "fallback 2"), 0);
		model_del(&a, &k);
		assert_int_equal(mfs_vol_close(v), 0);
	}
	model_free(&a);
	model_free(&b);
}

static void test_fallback_older_slot(void **state)
{
	fallback_case(*state, AFTER_NOTHING);
}

static void test_fallback_after_uncommitted(void **state)
{
	fallback_case(*state, AFTER_UNCOMMITTED);
}

static void test_fallback_after_abort(void **state)
{
	fallback_case(*state, AFTER_ABORT);
}

static void test_fallback_after_close(void **state)
{
	fallback_case(*state, AFTER_CLOSE);
}

static void test_both_slots_corrupt(void **state)
{
	struct fx *f = *state;
	struct mfs_vol *v;
	size_t size;
	uint8_t *map;

	t_format(f->img, 4 * MiB);
	v = t_open(f->img, 0);
	for (uint64_t i = 0; i < 100; i++) {
		struct mfs_key k = mfs_key_make(T_OBJ_BASE + i, 1, 0);
		assert_int_equal(mfs_btree_insert(v, MFS_TREE_FS, &k, &i, 8), 0);
	}
	assert_int_equal(mfs_txn_commit(v), 0);
	assert_int_equal(mfs_vol_close(v), 0);

	for (unsigned d0 = 0; d0 < D_COUNT; d0++) {
		for (unsigned d1 = 0; d1 < D_COUNT; d1++) {
			int want = d0 == D_MAGIC && d1 == D_MAGIC ? -EINVAL : -EUCLEAN;
			int rc;

			/* A zeroed sector has no magic either. */
			if ((d0 == D_ZERO || d0 == D_MAGIC) &&
			    (d1 == D_ZERO || d1 == D_MAGIC))
				want = -EINVAL;
			t_copy_file(f->img, f->copy);
			map = map_file(f->copy, &size);
			damage_slot(map, 0, (enum damage)d0);
			damage_slot(map, 1, (enum damage)d1);
			munmap(map, size);
			v = NULL;
			rc = mfs_vol_open(f->copy, MFS_VOL_RDONLY, &v);
			if (rc != want)
				fail_msg("slot 0 %s, slot 1 %s: open = %d, want %d",
					 damage_name[d0], damage_name[d1], rc, want);
			assert_null(v);
			rc = mfs_vol_open(f->copy, 0, &v);
			assert_int_equal(rc, want);
			assert_null(v);
		}
	}
	/* The original still opens. */
	v = t_open(f->img, 0);
	assert_int_equal(mfs_vol_close(v), 0);
}

/* Small commits, crash images at (nearly) every sync: the hook fires at
 * least twice per commit and both outcomes are seen. */
static void test_crash_every_commit(void **state)
{
	struct fx *f = *state;
	struct pl *p = calloc(1, sizeof(*p));
	struct mfs_key k = mfs_key_make(T_OBJ_BASE, 1, 0);

	assert_non_null(p);
	p->seed = p->rng = 5;
	p->size = 4 * MiB;
	p->durable = malloc(p->size);
	p->crashbuf = malloc(p->size);
	snprintf(p->img, sizeof(p->img), "%s", f->img);
	snprintf(p->crash, sizeof(p->crash), "%s", f->copy);
	t_format(p->img, p->size);
	pl_open(p);
	model_load(&p->live, p->v, MFS_TREE_FS);
	model_copy(&p->committed, &p->live);
	p->target = 1000000; /* every sync: all subsets below */
	for (int i = 0; i < 20; i++) {
		k.offset = (uint64_t)i;
		assert_int_equal(mfs_btree_insert(p->v, MFS_TREE_FS, &k, "v", 1), 0);
		model_set(&p->live, &k, "v", 1);
		pl_commit(p, false);
	}
	assert_true(p->syncs >= 40);
	assert_true(p->img_inflight > 0);
	assert_true(p->img_committed > 0);
	pl_commit(p, true);
	assert_int_equal(tree_matches_model(p->v, MFS_TREE_FS, &p->live, "end"), 0);
	pl_finish(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crash_every_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fallback_older_slot, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fallback_after_uncommitted,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_fallback_after_abort, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fallback_after_close, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_both_slots_corrupt, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_powerloss_random, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
