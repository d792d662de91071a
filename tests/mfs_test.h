/* SPDX-License-Identifier: MIT */
/*
 * mfs_test.h — helpers shared by the CMocka suites of the foundation layers
 * (btree, txn, power loss, corrupt images).
 *
 * Everything here is static inline so that each suite stays one .c file in
 * tests/meson.build's unit_tests list. Include after <cmocka.h>.
 *
 *   - temporary directories (mkdtemp, removed recursively in teardown);
 *   - a seeded PRNG (splitmix64) and MMAPFS_SEED parsing;
 *   - a reference model: a sorted array of key -> bytes;
 *   - tree_matches_model(): a full cursor walk compared with a model;
 *   - check_space(): every block of the image is used exactly once, by a
 *     superblock slot, a tree node or a FREE tree run (no leak, no double
 *     use), and the counts agree with the superblock and the allocator.
 */
#ifndef MFS_TEST_H
#define MFS_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "btree.h"
#include "endian.h"
#include "image.h"
#include "newfs.h"
#include "txn.h"
#include "vol.h"

/* Keys written by the tests use objectids from here up, so that they never
 * collide with what mkfs puts in the FS tree. */
#define T_OBJ_BASE 0x100000ULL

/* ------------------------------------------------------------------ *
 * Temporary directories.
 * ------------------------------------------------------------------ */
static inline void t_mkdtemp(char *buf, size_t n)
{
	const char *base = getenv("TMPDIR");

	snprintf(buf, n, "%s/mmapfs-test-XXXXXX", base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(buf));
}

static inline int t_rm_one(const char *p, const struct stat *st, int flag,
			   struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static inline void t_rmtree(const char *dir)
{
	if (dir && *dir)
		nftw(dir, t_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void t_format(const char *path, uint64_t size)
{
	struct mfs_format_opts o;
	int rc;

	memset(&o, 0, sizeof(o));
	o.size = size;
	o.force = true;
	rc = mfs_format(path, &o);
	if (rc)
		fail_msg("mfs_format(%s, %" PRIu64 ") = %d", path, size, rc);
}

static inline struct mfs_vol *t_open(const char *path, unsigned flags)
{
	struct mfs_vol *v = NULL;
	int rc = mfs_vol_open(path, flags, &v);

	if (rc)
		fail_msg("mfs_vol_open(%s, %#x) = %d", path, flags, rc);
	assert_non_null(v);
	return v;
}

/* Copy a file (an image) to another path. */
static inline void t_copy_file(const char *from, const char *to)
{
	static char buf[1 << 16];
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	assert_true(in >= 0);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	assert_int_equal(close(out), 0);
}

/* ------------------------------------------------------------------ *
 * PRNG.
 * ------------------------------------------------------------------ */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return rng_next(s) % n;
}

/* True with probability num/den. */
static inline bool rng_chance(uint64_t *s, unsigned num, unsigned den)
{
	return rng_below(s, den) < num;
}

static inline void rng_fill(uint64_t *s, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len >= 8) {
		uint64_t x = rng_next(s);
		memcpy(p, &x, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t x = rng_next(s);
		memcpy(p, &x, len);
	}
}

/* Seeds to run: MMAPFS_SEED=n runs only n; otherwise the defaults plus one
 * derived from the clock and pid (printed, so any failure reproduces).
 * Returns the number of seeds written to out. */
static inline size_t t_seeds(uint64_t *out, size_t max, const uint64_t *defaults,
			     size_t ndefaults)
{
	const char *env = getenv("MMAPFS_SEED");
	size_t n = 0;

	if (env && *env) {
		out[0] = strtoull(env, NULL, 0);
		return 1;
	}
	for (size_t i = 0; i < ndefaults && n < max; i++)
		out[n++] = defaults[i];
	if (n < max) {
		uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		out[n++] = rng_next(&t) & 0xffffffffULL;
	}
	return n;
}

/* An integer from the environment, or def. */
static inline uint64_t t_env_u64(const char *name, uint64_t def)
{
	const char *env = getenv(name);

	return env && *env ? strtoull(env, NULL, 0) : def;
}

/* ------------------------------------------------------------------ *
 * Reference model: a sorted array of (key, bytes).
 * ------------------------------------------------------------------ */
struct m_item {
	struct mfs_key key;
	uint16_t len;
	uint8_t *val;
};

struct model {
	struct m_item *it;
	size_t n, cap;
};

static inline int t_keycmp(const struct mfs_key *a, const struct mfs_key *b)
{
	if (a->objectid != b->objectid)
		return a->objectid < b->objectid ? -1 : 1;
	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	if (a->offset != b->offset)
		return a->offset < b->offset ? -1 : 1;
	return 0;
}

static inline bool t_keyeq(const struct mfs_key *a, const struct mfs_key *b)
{
	return t_keycmp(a, b) == 0;
}

#define T_KEY_FMT "(%#" PRIx64 ", %u, %#" PRIx64 ")"
#define T_KEY_ARG(k) (k).objectid, (unsigned)(k).type, (k).offset

static inline const struct mfs_key *t_key_min(void)
{
	static const struct mfs_key k = { 0, 0, 0 };
	return &k;
}

static inline const struct mfs_key *t_key_max(void)
{
	static const struct mfs_key k = { UINT64_MAX, UINT64_MAX, UINT8_MAX };
	return &k;
}

/* Binary search: true if present; *idx is its index or the insertion
 * point. */
static inline bool model_find(const struct model *m, const struct mfs_key *k,
			      size_t *idx)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = t_keycmp(&m->it[mid].key, k);

		if (c == 0) {
			*idx = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*idx = lo;
	return false;
}

static inline void model_set(struct model *m, const struct mfs_key *k,
			     const void *val, size_t len)
{
	size_t i;
	uint8_t *copy = malloc(len ? len : 1);

	assert_non_null(copy);
	if (len)
		memcpy(copy, val, len);
	if (model_find(m, k, &i)) {
		free(m->it[i].val);
		m->it[i].val = copy;
		m->it[i].len = (uint16_t)len;
		return;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->it = realloc(m->it, m->cap * sizeof(*m->it));
		assert_non_null(m->it);
	}
	memmove(&m->it[i + 1], &m->it[i], (m->n - i) * sizeof(*m->it));
	m->it[i].key = *k;
	m->it[i].len = (uint16_t)len;
	m->it[i].val = copy;
	m->n++;
}

static inline bool model_del(struct model *m, const struct mfs_key *k)
{
	size_t i;

	if (!model_find(m, k, &i))
		return false;
	free(m->it[i].val);
	memmove(&m->it[i], &m->it[i + 1], (m->n - i - 1) * sizeof(*m->it));
	m->n--;
	return true;
}

static inline void model_free(struct model *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->it[i].val);
	free(m->it);
	memset(m, 0, sizeof(*m));
}

/* dst := deep copy of src. */
static inline void model_copy(struct model *dst, const struct model *src)
{
	model_free(dst);
	dst->cap = dst->n = src->n;
	dst->it = malloc((src->n ? src->n : 1) * sizeof(*dst->it));
	assert_non_null(dst->it);
	for (size_t i = 0; i < src->n; i++) {
		dst->it[i] = src->it[i];
		dst->it[i].val = malloc(src->it[i].len ? src->it[i].len : 1);
		assert_non_null(dst->it[i].val);
		memcpy(dst->it[i].val, src->it[i].val, src->it[i].len);
	}
}

/* Load every item of tree into m (which is emptied first). */
static inline void model_load(struct model *m, struct mfs_vol *v, unsigned tree)
{
	struct mfs_cursor c;
	struct mfs_key k;
	const void *val;
	size_t len;
	int rc;

	model_free(m);
	mfs_cursor_init(&c, v, tree, t_key_min(), t_key_max());
	while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0)
		model_set(m, &k, val, len);
	assert_int_equal(rc, 0);
}

/*
 * Walk items of tree in [lo, hi] with a cursor and compare with the model's
 * items in the same range. Returns 0 if equal; otherwise prints the first
 * difference (with tag, e.g. the seed) and returns -1. A cursor error is
 * returned as is.
 */
static inline int tree_range_matches_model(struct mfs_vol *v, unsigned tree,
					   const struct model *m,
					   const struct mfs_key *lo,
					   const struct mfs_key *hi,
					   const char *tag)
{
	struct mfs_cursor c;
	struct mfs_key k;
	const void *val;
	size_t len, i;
	int rc;

	model_find(m, lo, &i);
	mfs_cursor_init(&c, v, tree, lo, hi);
	while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0) {
		if (i >= m->n || t_keycmp(&m->it[i].key, hi) > 0) {
			print_error("%s: tree has extra item " T_KEY_FMT "\n", tag,
				    T_KEY_ARG(k));
			return -1;
		}
		if (!t_keyeq(&k, &m->it[i].key)) {
			print_error("%s: tree item " T_KEY_FMT " but model "
				    T_KEY_FMT "\n", tag, T_KEY_ARG(k),
				    T_KEY_ARG(m->it[i].key));
			return -1;
		}
		if (len != m->it[i].len ||
		    (len && memcmp(val, m->it[i].val, len) != 0)) {
			print_error("%s: value of " T_KEY_FMT " differs (len %zu, "
				    "model %u)\n", tag, T_KEY_ARG(k), len,
				    m->it[i].len);
			return -1;
		}
		i++;
	}
	if (rc < 0) {
		print_error("%s: mfs_cursor_next = %d\n", tag, rc);
		return rc;
	}
	if (i < m->n && t_keycmp(&m->it[i].key, hi) <= 0) {
		print_error("%s: tree lacks item " T_KEY_FMT "\n", tag,
			    T_KEY_ARG(m->it[i].key));
		return -1;
	}
	return 0;
}

static inline int tree_matches_model(struct mfs_vol *v, unsigned tree,
				     const struct model *m, const char *tag)
{
	return tree_range_matches_model(v, tree, m, t_key_min(), t_key_max(), tag);
}

/* ------------------------------------------------------------------ *
 * Space accounting.
 * ------------------------------------------------------------------ */
struct blkmap {
	uint8_t *use;      /* 0 unused, else T_USE_* of the first user */
	uint64_t n;
	uint64_t dup, oob;
	uint64_t first_dup;
	uint64_t tree_blocks;
};

enum { T_USE_SB = 1, T_USE_TREE = 2, T_USE_FREE = 3, T_USE_DATA = 4 };

static inline void blkmap_mark(struct blkmap *b, uint64_t blk, uint8_t what)
{
	if (blk >= b->n) {
		b->oob++;
		return;
	}
	if (b->use[blk]) {
		if (!b->dup)
			b->first_dup = blk;
		b->dup++;
		return;
	}
	b->use[blk] = what;
}

static inline int blkmap_tree_cb(void *arg, uint64_t blk)
{
	struct blkmap *b = arg;

	b->tree_blocks++;
	blkmap_mark(b, blk, T_USE_TREE);
	return 0;
}

/*
 * Prove the free space exact in the state just committed or opened (the
 * FREE tree only reflects the running state at commit):
 *   every block in [0, block_count) is exactly one of: superblock slot,
 *   node of the FS or FREE tree, free run in the FREE tree, or data block of
 *   an extent item written by mkfs (objectid < T_OBJ_BASE);
 *   the FREE tree's total equals sb.free_blocks and the allocator's count.
 * Returns 0 or -1 after printing what is wrong.
 */
static inline int check_space(struct mfs_vol *v, const char *tag)
{
	struct blkmap b;
	struct mfs_cursor c;
	struct mfs_key k;
	const void *val;
	size_t len;
	uint64_t free_total = 0, nblocks = v->sb.block_count;
	int rc, ret = 0;

	memset(&b, 0, sizeof(b));
	b.n = nblocks;
	b.use = calloc(nblocks ? nblocks : 1, 1);
	assert_non_null(b.use);
	blkmap_mark(&b, 0, T_USE_SB);
	blkmap_mark(&b, 1, T_USE_SB);
	for (unsigned t = 0; t < MFS_TREE_COUNT; t++) {
		rc = mfs_btree_check(v, t, blkmap_tree_cb, &b);
		if (rc) {
			print_error("%s: mfs_btree_check(tree %u) = %d\n", tag, t, rc);
			ret = -1;
			goto out;
		}
	}
	/* Data blocks referenced by mkfs-made extents (if any). */
	{
		struct mfs_key lo = mfs_key_make(0, 0, 0);
		struct mfs_key hi = mfs_key_make(T_OBJ_BASE - 1, UINT8_MAX, UINT64_MAX);

		mfs_cursor_init(&c, v, MFS_TREE_FS, &lo, &hi);
		while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0) {
			if (k.type != MFS_ITEM_EXTENT || len < sizeof(struct mfs_disk_extent))
				continue;
			uint64_t eb = mfs_get_le64((const uint8_t *)val +
					offsetof(struct mfs_disk_extent, ex_block));
			uint64_t ec = mfs_get_le64((const uint8_t *)val +
					offsetof(struct mfs_disk_extent, ex_count));
			for (uint64_t i = 0; i < ec && i < nblocks; i++)
				blkmap_mark(&b, eb + i, T_USE_DATA);
		}
		if (rc < 0) {
			print_error("%s: FS cursor = %d\n", tag, rc);
			ret = -1;
			goto out;
		}
	}
	mfs_cursor_init(&c, v, MFS_TREE_FREE, t_key_min(), t_key_max());
	while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0) {
		if (k.type != MFS_ITEM_FREE || k.objectid != 0 || len != 8) {
			print_error("%s: odd FREE item " T_KEY_FMT " len %zu\n", tag,
				    T_KEY_ARG(k), len);
			ret = -1;
			goto out;
		}
		uint64_t cnt = mfs_get_le64(val);
		if (cnt == 0 || k.offset >= nblocks || cnt > nblocks - k.offset) {
			print_error("%s: FREE run %" PRIu64 "+%" PRIu64
				    " outside %" PRIu64 " blocks\n", tag, k.offset,
				    cnt, nblocks);
			ret = -1;
			goto out;
		}
		for (uint64_t i = 0; i < cnt; i++)
			blkmap_mark(&b, k.offset + i, T_USE_FREE);
		free_total += cnt;
	}
	if (rc < 0) {
		print_error("%s: FREE cursor = %d\n", tag, rc);
		ret = -1;
		goto out;
	}
	if (b.dup || b.oob) {
		print_error("%s: %" PRIu64 " blocks used twice (first %" PRIu64
			    ", first use %u), %" PRIu64 " out of bounds\n", tag,
			    b.dup, b.first_dup,
			    b.dup ? b.use[b.first_dup] : 0, b.oob);
		ret = -1;
	}
	for (uint64_t i = 0; i < nblocks; i++) {
		if (!b.use[i]) {
			print_error("%s: block %" PRIu64 " of %" PRIu64
				    " is neither free nor used (leak)\n", tag, i,
				    nblocks);
			ret = -1;
			break;
		}
	}
	if (free_total != v->sb.free_blocks) {
		print_error("%s: FREE tree holds %" PRIu64 " blocks, sb says %" PRIu64
			    "\n", tag, free_total, v->sb.free_blocks);
		ret = -1;
	}
	if (v->alloc && mfs_alloc_free_blocks(v->alloc) != free_total) {
		print_error("%s: allocator has %" PRIu64 " free, FREE tree %" PRIu64
			    "\n", tag, mfs_alloc_free_blocks(v->alloc), free_total);
		ret = -1;
	}
out:
	free(b.use);
	return ret;
}

/* Count the nodes of one tree (asserting it checks clean). */
static inline uint64_t t_tree_blocks(struct mfs_vol *v, unsigned tree)
{
	struct blkmap b;
	int rc;

	memset(&b, 0, sizeof(b));
	b.n = mfs_image_blocks(v->img);
	b.use = calloc(b.n, 1);
	assert_non_null(b.use);
	rc = mfs_btree_check(v, tree, blkmap_tree_cb, &b);
	free(b.use);
	assert_int_equal(rc, 0);
	assert_int_equal(b.dup, 0);
	assert_int_equal(b.oob, 0);
	return b.tree_blocks;
}

/* ------------------------------------------------------------------ *
 * Raw on-disk access (for damage and for power-loss images).
 * ------------------------------------------------------------------ */
#define SB_OFF_MAGIC 0u
#define SB_OFF_CRC 8u
#define SB_OFF_VERSION 12u
#define SB_OFF_BLOCK_SIZE 16u
#define SB_OFF_SLOT 20u
#define SB_OFF_COMPAT 24u
#define SB_OFF_RO_COMPAT 28u
#define SB_OFF_INCOMPAT 32u
#define SB_OFF_GENERATION 40u
#define SB_OFF_BLOCK_COUNT 48u
#define SB_OFF_FREE_BLOCKS 56u
#define SB_OFF_ROOTS 128u
#define SB_ROOT_SIZE 24u

#define ND_OFF_CRC 0u
#define ND_OFF_MAGIC 4u
#define ND_OFF_BLOCK 8u
#define ND_OFF_GENERATION 16u
#define ND_OFF_UUID 24u
#define ND_OFF_TREE 40u
#define ND_OFF_NRITEMS 44u
#define ND_OFF_LEVEL 46u

#define IT_SIZE 24u
#define IT_OFF_OBJECTID 0u
#define IT_OFF_OFFSET 8u
#define IT_OFF_TYPE 16u
#define IT_OFF_SIZE 18u
#define IT_OFF_VOFF 20u

#define KP_SIZE 40u
#define KP_OFF_OBJECTID 0u
#define KP_OFF_OFFSET 8u
#define KP_OFF_TYPE 16u
#define KP_OFF_BLOCK 24u
#define KP_OFF_GENERATION 32u

#endif
