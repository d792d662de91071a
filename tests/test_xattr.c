/* SPDX-License-Identifier: MIT */
/*
 * test_xattr.c — unit tests of extended attributes (src/xattr.c).
 *
 * Each test formats a fresh image in a directory under /tmp (mkdtemp),
 * opens it as a volume and works on XATTR items of made-up inode numbers
 * (xattr.c does not care whether the inode exists). The layout checks
 * read items back with the B+tree and compare them byte for byte with
 * docs/format.md §8.6; the damage tests write bad items with
 * mfs_btree_put. Environment: MMAPFS_TEST_SEED sets the random model's
 * seed, MMAPFS_TEST_PARANOID checks the whole tree after every one of its
 * steps, MMAPFS_TEST_LOG sends log messages to stderr.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "alloc.h"
#include "btree.h"
#include "endian.h"
#include "log.h"
#include "siphash.h"
#include "newfs.h"
#include "txn.h"
#include "xattr.h"

#define IMG_SIZE (256ULL << 20)
#define VMAX MFS_XATTR_VALUE_MAX

struct fx {
	char dir[64];
	char path[128];
	struct mfs_vol *v;
};

/* Everything mfs_log said since setup (the damage tests check it). */
static char logbuf[16384];

static void log_capture(int level, const char *msg)
{
	size_t n = strlen(logbuf);

	(void)level;
	if (n + 2 < sizeof(logbuf))
		snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
}

static int setup_size(void **state, uint64_t size)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct mfs_format_opts opts = { .size = size };

	if (!fx)
		return -1;
	strcpy(fx->dir, "/tmp/mfs-test-xattr-XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/disk.img", fx->dir);
	logbuf[0] = '\0';
	mfs_log_set_sink(getenv("MMAPFS_TEST_LOG") ? NULL : log_capture);
	if (mfs_format(fx->path, &opts) != 0 ||
	    mfs_vol_open(fx->path, 0, &fx->v) != 0) {
		fprintf(stderr, "cannot make an image: %s", logbuf);
		return -1;
	}
	*state = fx;
	return 0;
}

static int setup(void **state)
{
	return setup_size(state, IMG_SIZE);
}

static int setup_small(void **state)
{
	return setup_size(state, 4u << 20);
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	if (fx->v)
		mfs_vol_close_dirty(fx->v);
	unlink(fx->path);
	rmdir(fx->dir);
	mfs_log_set_sink(NULL);
	free(fx);
	return 0;
}

/* ---- helpers ---- */

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Deterministic value bytes for (seed, length). */
static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;

	for (size_t i = 0; i < len; i++) {
		if (i % 8 == 0)
			rng_next(&s);
		buf[i] = (uint8_t)(s >> (8 * (i % 8)));
	}
}

static void vol_reopen(struct fx *fx)
{
	assert_int_equal(mfs_vol_close(fx->v), 0);
	fx->v = NULL;
	assert_int_equal(mfs_vol_open(fx->path, 0, &fx->v), 0);
}

static void crash_reopen(struct fx *fx)
{
	mfs_vol_close_dirty(fx->v);
	fx->v = NULL;
	assert_int_equal(mfs_vol_open(fx->path, 0, &fx->v), 0);
}

static void check_trees(struct mfs_vol *v)
{
	assert_int_equal(mfs_btree_check(v, MFS_TREE_FS, NULL, NULL), 0);
	assert_int_equal(mfs_btree_check(v, MFS_TREE_FREE, NULL, NULL), 0);
	assert_int_equal(v->error, 0);
}

static uint64_t hash_of(struct mfs_vol *v, const char *name)
{
	return mfs_siphash(v->sb.hash_seed, name, strlen(name)) >> 8;
}

static struct mfs_key chunk_key(struct mfs_vol *v, uint64_t ino,
				const char *name, unsigned chunk)
{
	return mfs_key_make(ino, MFS_ITEM_XATTR,
			    (hash_of(v, name) << MFS_XATTR_CHUNK_BITS) | chunk);
}

/* Items in [first, last] of type XATTR of ino, by cursor. */
static unsigned count_range(struct mfs_vol *v, uint64_t ino, uint64_t first,
			    uint64_t last)
{
	struct mfs_key s = mfs_key_make(ino, MFS_ITEM_XATTR, first);
	struct mfs_key e = mfs_key_make(ino, MFS_ITEM_XATTR, last);
	struct mfs_cursor c;
	unsigned n = 0;
	int rc;

	mfs_cursor_init(&c, v, MFS_TREE_FS, &s, &e);
	while ((rc = mfs_cursor_next(&c, NULL, NULL, NULL)) > 0)
		n++;
	assert_int_equal(rc, 0);
	return n;
}

static unsigned count_items(struct mfs_vol *v, uint64_t ino)
{
	return count_range(v, ino, 0, UINT64_MAX);
}

static unsigned count_chunks(struct mfs_vol *v, uint64_t ino, const char *name)
{
	uint64_t base = hash_of(v, name) << MFS_XATTR_CHUNK_BITS;

	return count_range(v, ino, base, base + MFS_XATTR_CHUNKS - 1);
}

/* Chunks an attribute takes, from the format's rules. */
static unsigned chunks_for(size_t name_len, size_t size)
{
	size_t cap0 = MFS_MAX_VALUE - MFS_XATTR_HDR - name_len;

	if (size <= cap0)
		return 1;
	return 1 + (unsigned)((size - cap0 + MFS_MAX_VALUE - 1) / MFS_MAX_VALUE);
}

static void expect_xattr(struct mfs_vol *v, uint64_t ino, const char *name,
			 const uint8_t *exp, size_t n)
{
	uint8_t *buf = malloc(VMAX + 16);
	size_t len = 12345;

	assert_non_null(buf);
	assert_int_equal(mfs_xattr_get(v, ino, name, NULL, 0, &len), 0);
	assert_int_equal(len, n);
	len = 0;
	memset(buf, 0xa5, VMAX + 16);
	assert_int_equal(mfs_xattr_get(v, ino, name, buf, VMAX + 16, &len), 0);
	assert_int_equal(len, n);
	if (n)
		assert_memory_equal(buf, exp, n);
	assert_int_equal(buf[n], 0xa5); /* nothing written past the value */
	if (n) {
		assert_int_equal(mfs_xattr_get(v, ino, name, buf, n, &len), 0);
		assert_memory_equal(buf, exp, n);
	}
	if (n > 1) {
		assert_int_equal(mfs_xattr_get(v, ino, name, buf, n - 1, &len),
				 -ERANGE);
		assert_int_equal(len, n);
	}
	free(buf);
}

static void expect_absent(struct mfs_vol *v, uint64_t ino, const char *name)
{
	char b[4];
	size_t len;

	assert_int_equal(mfs_xattr_get(v, ino, name, NULL, 0, &len), -ENODATA);
	assert_int_equal(mfs_xattr_get(v, ino, name, b, sizeof(b), &len),
			 -ENODATA);
	assert_int_equal(count_chunks(v, ino, name), 0);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The list of ino must hold exactly names[0..n) (any order). */
static void expect_list(struct mfs_vol *v, uint64_t ino, const char **names,
			size_t n)
{
	size_t need = 0, len = 0, got = 0;
	const char **exp = malloc((n + 1) * sizeof(*exp));
	const char **have = malloc((n + 1) * sizeof(*have));
	char *buf;

	assert_non_null(exp);
	assert_non_null(have);
	for (size_t i = 0; i < n; i++) {
		need += strlen(names[i]) + 1;
		exp[i] = names[i];
	}
	assert_int_equal(mfs_xattr_list(v, ino, NULL, 0, &len), 0);
	assert_int_equal(len, need);
	buf = malloc(need + 1);
	assert_non_null(buf);
	if (need) {
		assert_int_equal(mfs_xattr_list(v, ino, buf, need - 1, &len),
				 -ERANGE);
		assert_int_equal(len, need);
	}
	buf[need] = 'X';
	assert_int_equal(mfs_xattr_list(v, ino, buf, need + 1, &len), 0);
	assert_int_equal(len, need);
	assert_int_equal(buf[need], 'X');
	for (size_t off = 0; off < need; off += strlen(buf + off) + 1) {
		assert_true(got < n);
		have[got++] = buf + off;
	}
	assert_int_equal(got, n);
	qsort(exp, n, sizeof(*exp), cmp_str);
	qsort(have, n, sizeof(*have), cmp_str);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(exp[i], have[i]);
	free(buf);
	free(exp);
	free(have);
}

/* ---- basics ---- */

static void test_basic(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx->v;
	const char *both[] = { "user.mime_type", "trusted.x" };
	char buf[64];
	size_t len;

	expect_list(v, 100, NULL, 0);
	assert_int_equal(mfs_xattr_set(v, 100, "user.mime_type", "text/plain",
				       10, 0), 0);
	assert_int_equal(mfs_xattr_set(v, 100, "trusted.x", "", 0, 0), 0);
	expect_xattr(v, 100, "user.mime_type", (const uint8_t *)"text/plain", 10);
	expect_xattr(v, 100, "trusted.x", NULL, 0);
	expect_list(v, 100, both, 2);
	expect_list(v, 99, NULL, 0);
	expect_list(v, 101, NULL, 0);
	expect_absent(v, 101, "user.mime_type");

	/* Plain set replaces. */
	assert_int_equal(mfs_xattr_set(v, 100, "user.mime_type", "a/b", 3, 0), 0);
	assert_int_equal(mfs_xattr_get(v, 100, "user.mime_type", buf,
				       sizeof(buf), &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "a/b", 3);

	assert_int_equal(mfs_xattr_remove(v, 100, "user.mime_type"), 0);
	expect_absent(v, 100, "user.mime_type");
	expect_list(v, 100, both + 1, 1);
	assert_int_equal(mfs_xattr_remove(v, 100, "trusted.x"), 0);
	expect_list(v, 100, NULL, 0);
	assert_int_equal(count_items(v, 100), 0);
	check_trees(v);
}

/* Chunk 0 as docs/format.md §8.6 describes it, byte for byte. */
static void test_layout(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx->v;
	const char *name = "security.selinux";
	uint8_t *val = malloc(3000);
	struct mfs_key k;
	const uint8_t *p;
	size_t len, nl = strlen(name), cap0 = 976 - nl;
	uint64_t h;

	assert_non_null(val);
	fill(val, 3000, 7);
	assert_int_equal(mfs_xattr_set(v, 42, name, val, 3000, 0), 0);
	h = mfs_siphash(v->sb.hash_seed, name, nl) >> 8;
	assert_true(h < (1ULL << 56));

	k = mfs_key_make(42, MFS_ITEM_XATTR, h << 7);
	assert_int_equal(mfs_btree_lookup(v, MFS_TREE_FS, &k,
					  (const void **)&p, &len), 0);
	assert_int_equal(len, 984);
	assert_int_equal(mfs_get_le32(p), 3000);
	assert_int_equal(p[4], nl);
	assert_int_equal(p[5], 0);
	assert_int_equal(mfs_get_le16(p + 6), 0);
	assert_memory_equal(p + 8, name, nl);
	assert_memory_equal(p + 8 + nl, val, cap0);

	/* 3000 = 960 in chunk 0 + 984 + 984 + 72 */
	assert_int_equal(cap0, 960);
	for (unsigned c = 1; c <= 3; c++) {
		size_t want = c < 3 ? 984 : 72;

		k.offset = (h << 7) | c;
		assert_int_equal(mfs_btree_lookup(v, MFS_TREE_FS, &k,
						  (const void **)&p, &len), 0);
		assert_int_equal(len, want);
		assert_memory_equal(p, val + cap0 + (c - 1) * 984, want);
	}
	k.offset = (h << 7) | 4;
	assert_int_equal(mfs_btree_lookup(v, MFS_TREE_FS, &k, NULL, NULL),
			 -ENOENT);
	assert_int_equal(count_items(v, 42), 4);
	free(val);
}

static void test_names(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx->v;
	static const char *bad_ns[] = {
		"user.", "trusted.", "security.", "system.", "system.foo",
		"system.posix_acl_access2", "system.posix_acl_defaul",
		"system.posix_acl_", "foo.bar", "user", "USER.x", "xuser.a",
		".user.a", "os2.x", "btrfs.compression",
	};
	static const char *good[] = {
		"user.a", "trusted.overlay.opaque", "security.capability",
		"system.posix_acl_access", "system.posix_acl_default",
		"user.with space", "user.\xff\x01",
	};
	char name[300];
	char buf[8];
	size_t len;

	for (size_t i = 0; i < sizeof(bad_ns) / sizeof(bad_ns[0]); i++) {
		assert_int_equal(mfs_xattr_set(v, 7, bad_ns[i], "v", 1, 0),
				 -EOPNOTSUPP);
		assert_int_equal(mfs_xattr_get(v, 7, bad_ns[i], buf,
					       sizeof(buf), &len), -EOPNOTSUPP);
		assert_int_equal(mfs_xattr_remove(v, 7, bad_ns[i]),
				 -EOPNOTSUPP);
	}
	assert_int_equal(count_items(v, 7), 0);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(mfs_xattr_set(v, 7, good[i], "v", 1, 0), 0);
		expect_xattr(v, 7, good[i], (const uint8_t *)"v", 1);
	}
	expect_list(v, 7, good, sizeof(good) / sizeof(good[0]));

	/* 255 bytes is the longest name; 256 and empty are -ERANGE. */
	memset(name, 'n', sizeof(name));
	memcpy(name, "user.", 5);
	name[255] = '\0';
	assert_int_equal(mfs_xattr_set(v, 8, name, "v", 1, 0), 0);
	expect_xattr(v, 8, name, (const uint8_t *)"v", 1);
	{
		const char *one[] = { name };

		expect_list(v, 8, one, 1);
	}
	name[255] = 'n';
	name[256] = '\0';
	assert_int_equal(mfs_xattr_set(v, 8, name, "v", 1, 0), -ERANGE);
	assert_int_equal(mfs_xattr_get(v, 8, name, buf, sizeof(buf), &len),
			 -ERANGE);
	assert_int_equal(mfs_xattr_remove(v, 8, name), -ERANGE);
	name[299] = '\0';   /* much too long, also for a bad namespace */
	memcpy(name, "bogus", 5);
	assert_int_equal(mfs_xattr_set(v, 8, name, "v", 1, 0), -ERANGE);
	assert_int_equal(mfs_xattr_set(v, 8, "", "v", 1, 0), -ERANGE);
	assert_int_equal(mfs_xattr_get(v, 8, "", buf, sizeof(buf), &len),
			 -ERANGE);
	assert_int_equal(count_items(v, 8), 1);
	check_trees(v);
}

static void test_errors(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx->v;
	uint8_t *big = calloc(1, VMAX + 1);
	char buf[32];
	size_t len;

	assert_non_null(big);
	/* E2BIG, before anything else is looked at. */
	assert_int_equal(mfs_xattr_set(v, 5, "user.big", big, VMAX + 1, 0),
			 -E2BIG);
	assert_int_equal(mfs_xattr_set(v, 5, "user.big", big, SIZE_MAX, 0),
			 -E2BIG);
	expect_absent(v, 5, "user.big");

	/* Flags. */
	assert_int_equal(mfs_xattr_set(v, 5, "user.a", "1", 1, XATTR_REPLACE),
			 -ENODATA);
	assert_int_equal(count_items(v, 5), 0);
	assert_int_equal(mfs_xattr_set(v, 5, "user.a", "1", 1, XATTR_CREATE), 0);
	assert_int_equal(mfs_xattr_set(v, 5, "user.a", "2", 1, XATTR_CREATE),
			 -EEXIST);
	expect_xattr(v, 5, "user.a", (const uint8_t *)"1", 1);
	assert_int_equal(mfs_xattr_set(v, 5, "user.a", "22", 2, XATTR_REPLACE),
			 0);
	expect_xattr(v, 5, "user.a", (const uint8_t *)"22", 2);
	assert_int_equal(mfs_xattr_set(v, 5, "user.a", "3", 1,
				       XATTR_CREATE | XATTR_REPLACE), -EEXIST);
	assert_int_equal(mfs_xattr_set(v, 5, "user.b", "3", 1,
				       XATTR_CREATE | XATTR_REPLACE), -ENODATA);
	assert_int_equal(mfs_xattr_set(v, 5, "user.a", "3", 1, 4), -EINVAL);
	assert_int_equal(mfs_xattr_set(v, 5, "user.a", NULL, 1, 0), -EINVAL);
	assert_int_equal(mfs_xattr_set(v, 5, "user.a", NULL, 0, 0), 0);
	expect_xattr(v, 5, "user.a", NULL, 0);
	assert_int_equal(mfs_xattr_set(v, 5, "user.a", "22", 2, 0), 0);

	/* get: size 0 reports the length; too small is -ERANGE. */
	len = 0;
	assert_int_equal(mfs_xattr_get(v, 5, "user.a", NULL, 0, &len), 0);
	assert_int_equal(len, 2);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(mfs_xattr_get(v, 5, "user.a", buf, 1, &len), -ERANGE);
	assert_int_equal(mfs_xattr_get(v, 5, "user.missing", buf, sizeof(buf),
				       &len), -ENODATA);
	assert_int_equal(mfs_xattr_get(v, 6, "user.a", buf, sizeof(buf), &len),
			 -ENODATA);

	/* remove */
	assert_int_equal(mfs_xattr_remove(v, 5, "user.missing"), -ENODATA);
	assert_int_equal(mfs_xattr_remove(v, 6, "user.a"), -ENODATA);
	assert_int_equal(mfs_xattr_remove(v, 5, "user.a"), 0);
	assert_int_equal(mfs_xattr_remove(v, 5, "user.a"), -ENODATA);

	/* list: too small is -ERANGE at every size short of the need. */
	assert_int_equal(mfs_xattr_set(v, 5, "user.one", "1", 1, 0), 0);
	assert_int_equal(mfs_xattr_set(v, 5, "user.two", "2", 1, 0), 0);
	assert_int_equal(mfs_xattr_list(v, 5, NULL, 0, &len), 0);
	assert_int_equal(len, 18);
	for (size_t s = 1; s < 18; s++)
		assert_int_equal(mfs_xattr_list(v, 5, buf, s, &len), -ERANGE);
	assert_int_equal(mfs_xattr_list(v, 5, buf, 18, &len), 0);
	assert_int_equal(len, 18);
	assert_int_equal(count_items(v, 5), 2);
	assert_int_equal(v->error, 0);
	check_trees(v);
	free(big);
}

/* ---- sizes and chunking ---- */

static void check_sizes(struct fx *fx, const char *name, const size_t *sizes,
			size_t n, uint64_t ino0)
{
	uint8_t *val = malloc(VMAX);

	assert_non_null(val);
	for (size_t i = 0; i < n; i++) {
		fill(val, sizes[i], sizes[i] + strlen(name));
		expect_xattr(fx->v, ino0 + i, name, val, sizes[i]);
		assert_int_equal(count_chunks(fx->v, ino0 + i, name),
				 chunks_for(strlen(name), sizes[i]));
		assert_int_equal(count_items(fx->v, ino0 + i),
				 chunks_for(strlen(name), sizes[i]));
	}
	free(val);
}

static void test_sizes(void **state)
{
	struct fx *fx = *state;
	char longname[256];
	const char *names[] = { "user.a", longname };
	size_t sizes[32], n = 0;
	uint8_t *val = malloc(VMAX + 1);

	assert_non_null(val);
	memset(longname, 'L', 255);
	memcpy(longname, "trusted.", 8);
	longname[255] = '\0';
	for (size_t ni = 0; ni < 2; ni++) {
		size_t cap0 = 976 - strlen(names[ni]);
		const size_t base[] = {
			0, 1, 983, 984, 985, 2000, 65536, cap0 - 1, cap0,
			cap0 + 1, cap0 + 984, cap0 + 985, 65535, 30000,
		};

		n = sizeof(base) / sizeof(base[0]);
		memcpy(sizes, base, sizeof(base));
		for (size_t i = 0; i < n; i++) {
			fill(val, sizes[i], sizes[i] + strlen(names[ni]));
			assert_int_equal(mfs_xattr_set(fx->v, 1000 * (ni + 1) + i,
						       names[ni], val, sizes[i],
						       XATTR_CREATE), 0);
		}
		assert_int_equal(mfs_xattr_set(fx->v, 999, names[ni], val,
					       VMAX + 1, 0), -E2BIG);
		check_sizes(fx, names[ni], sizes, n, 1000 * (ni + 1));
	}
	/* 65536 with a 255-byte name is the most chunks there are. */
	assert_int_equal(chunks_for(255, 65536), 67);
	assert_int_equal(count_items(fx->v, 999), 0);
	check_trees(fx->v);

	assert_int_equal(mfs_txn_commit(fx->v), 0);
	vol_reopen(fx);
	check_trees(fx->v);
	for (size_t ni = 0; ni < 2; ni++) {
		size_t cap0 = 976 - strlen(names[ni]);
		const size_t base[] = {
			0, 1, 983, 984, 985, 2000, 65536, cap0 - 1, cap0,
			cap0 + 1, cap0 + 984, cap0 + 985, 65535, 30000,
		};

		check_sizes(fx, names[ni], base, sizeof(base) / sizeof(base[0]),
			    1000 * (ni + 1));
	}
	free(val);
}

/* Shrinking deletes the chunks no longer used, in the same transaction
 * and across commits (where the deletes copy committed nodes). */
static void test_replace(void **state)
{
	struct fx *fx = *state;
	const size_t seq[] = { 65536, 10, 30000, 0, 65536, 985, 984, 1,
			       20000, 40000, 5000, 65536, 3 };
	uint8_t *val = malloc(VMAX);

	assert_non_null(val);
	assert_int_equal(mfs_xattr_set(fx->v, 9, "user.before", "b", 1, 0), 0);
	assert_int_equal(mfs_xattr_set(fx->v, 11, "user.after", "a", 1, 0), 0);
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
			fill(val, seq[i], i + 100 * (unsigned)round);
			assert_int_equal(mfs_xattr_set(fx->v, 10, "user.v", val,
						       seq[i], i ? XATTR_REPLACE
								 : 0), 0);
			expect_xattr(fx->v, 10, "user.v", val, seq[i]);
			assert_int_equal(count_items(fx->v, 10),
					 chunks_for(6, seq[i]));
			if (round)
				assert_int_equal(mfs_txn_commit(fx->v), 0);
		}
		check_trees(fx->v);
	}
	expect_xattr(fx->v, 9, "user.before", (const uint8_t *)"b", 1);
	expect_xattr(fx->v, 11, "user.after", (const uint8_t *)"a", 1);
	assert_int_equal(count_items(fx->v, 9), 1);
	assert_int_equal(count_items(fx->v, 11), 1);
	assert_int_equal(mfs_xattr_remove(fx->v, 10, "user.v"), 0);
	assert_int_equal(count_items(fx->v, 10), 0);
	check_trees(fx->v);
	free(val);
}

/* ---- many attributes ---- */

static void test_many_on_one(void **state)
{
	struct fx *fx = *state;
	enum { N = 1000 };
	static char names[N][32];
	const char *ptrs[N];
	uint8_t *val = malloc(VMAX);
	size_t n;

	assert_non_null(val);
	for (unsigned i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "%s.attr%04u",
			 i % 3 == 0 ? "user" : i % 3 == 1 ? "trusted"
							  : "security", i);
		ptrs[i] = names[i];
		fill(val, (i * 37) % 3000, i);
		assert_int_equal(mfs_xattr_set(fx->v, 50, names[i], val,
					       (i * 37) % 3000, XATTR_CREATE), 0);
	}
	expect_list(fx->v, 50, ptrs, N);
	check_trees(fx->v);
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < N; i++) {
			fill(val, (i * 37) % 3000, i);
			expect_xattr(fx->v, 50, names[i], val, (i * 37) % 3000);
		}
		assert_int_equal(mfs_txn_commit(fx->v), 0);
		vol_reopen(fx);
		check_trees(fx->v);
	}
	/* Remove the odd ones; the rest must be complete. */
	for (unsigned i = 1; i < N; i += 2)
		assert_int_equal(mfs_xattr_remove(fx->v, 50, names[i]), 0);
	n = 0;
	for (unsigned i = 0; i < N; i += 2)
		ptrs[n++] = names[i];
	expect_list(fx->v, 50, ptrs, n);
	for (unsigned i = 0; i < N; i++) {
		if (i % 2) {
			expect_absent(fx->v, 50, names[i]);
		} else {
			fill(val, (i * 37) % 3000, i);
			expect_xattr(fx->v, 50, names[i], val, (i * 37) % 3000);
		}
	}
	check_trees(fx->v);
	assert_int_equal(mfs_xattr_remove_all(fx->v, 50), 0);
	assert_int_equal(count_items(fx->v, 50), 0);
	expect_list(fx->v, 50, NULL, 0);
	check_trees(fx->v);
	free(val);
}

/* Other items of the same inodes: the inode, inline data, directory
 * entries and extents around the XATTR items must stay untouched. */
static void put_neighbours(struct mfs_vol *v, uint64_t ino)
{
	static const uint8_t types[] = { MFS_ITEM_INODE, MFS_ITEM_INLINE,
					 MFS_ITEM_DIRENT, MFS_ITEM_EXTENT };
	uint8_t val[24];

	memset(val, (int)ino, sizeof(val));
	for (size_t i = 0; i < sizeof(types); i++) {
		struct mfs_key k = mfs_key_make(ino, types[i], i == 0 ? 0
								       : UINT64_MAX);

		assert_int_equal(mfs_btree_put(v, MFS_TREE_FS, &k, val,
					       sizeof(val)), 0);
	}
}

static unsigned count_all(struct mfs_vol *v, uint64_t ino)
{
	struct mfs_key s = mfs_key_make(ino, 0, 0);
	struct mfs_key e = mfs_key_make(ino, 255, UINT64_MAX);
	struct mfs_cursor c;
	unsigned n = 0;

	mfs_cursor_init(&c, v, MFS_TREE_FS, &s, &e);
	while (mfs_cursor_next(&c, NULL, NULL, NULL) > 0)
		n++;
	return n;
}

static void test_many_inodes(void **state)
{
	struct fx *fx = *state;
	enum { NINO = 300, PER = 10 };
	uint8_t val[1500];
	char name[32];
	const char *list[PER];
	static char names[PER][32];

	for (unsigned j = 0; j < PER; j++) {
		snprintf(names[j], sizeof(names[j]), "user.k%u", j);
		list[j] = names[j];
	}
	for (uint64_t ino = 1000; ino < 1000 + NINO; ino++) {
		put_neighbours(fx->v, ino);
		for (unsigned j = 0; j < PER; j++) {
			fill(val, (ino + j) % 1500, ino * 16 + j);
			assert_int_equal(mfs_xattr_set(fx->v, ino, names[j],
						       val, (ino + j) % 1500, 0),
					 0);
		}
	}
	assert_int_equal(mfs_txn_commit(fx->v), 0);
	check_trees(fx->v);
	/* remove_all of every third inode (after commit: copies). */
	for (uint64_t ino = 1000; ino < 1000 + NINO; ino += 3)
		assert_int_equal(mfs_xattr_remove_all(fx->v, ino), 0);
	assert_int_equal(mfs_xattr_remove_all(fx->v, 5000), 0); /* none */
	vol_reopen(fx);
	check_trees(fx->v);
	for (uint64_t ino = 1000; ino < 1000 + NINO; ino++) {
		bool gone = (ino - 1000) % 3 == 0;

		assert_int_equal(count_all(fx->v, ino),
				 4 + (gone ? 0 : count_items(fx->v, ino)));
		if (gone) {
			assert_int_equal(count_items(fx->v, ino), 0);
			expect_list(fx->v, ino, NULL, 0);
			continue;
		}
		expect_list(fx->v, ino, list, PER);
		for (unsigned j = 0; j < PER; j++) {
			fill(val, (ino + j) % 1500, ino * 16 + j);
			snprintf(name, sizeof(name), "user.k%u", j);
			expect_xattr(fx->v, ino, name, val, (ino + j) % 1500);
		}
	}
}

/* ---- transactions ---- */

static void test_commit_abort(void **state)
{
	struct fx *fx = *state;
	uint8_t *val = malloc(VMAX);
	const char *one[] = { "user.keep" };

	assert_non_null(val);
	fill(val, 20000, 1);
	assert_int_equal(mfs_xattr_set(fx->v, 3, "user.keep", val, 20000, 0), 0);
	assert_int_equal(mfs_txn_commit(fx->v), 0);

	/* Changes, then abort: back to the commit. */
	fill(val, 500, 2);
	assert_int_equal(mfs_xattr_set(fx->v, 3, "user.keep", val, 500, 0), 0);
	assert_int_equal(mfs_xattr_set(fx->v, 3, "user.new", val, 500, 0), 0);
	assert_int_equal(mfs_txn_abort(fx->v), 0);
	fill(val, 20000, 1);
	expect_xattr(fx->v, 3, "user.keep", val, 20000);
	expect_absent(fx->v, 3, "user.new");
	expect_list(fx->v, 3, one, 1);

	/* Changes, then a crash: back to the commit. */
	assert_int_equal(mfs_xattr_remove(fx->v, 3, "user.keep"), 0);
	assert_int_equal(mfs_xattr_set(fx->v, 3, "user.new", val, 500, 0), 0);
	crash_reopen(fx);
	expect_xattr(fx->v, 3, "user.keep", val, 20000);
	expect_absent(fx->v, 3, "user.new");

	/* Changes, commit, crash: kept. */
	assert_int_equal(mfs_xattr_remove(fx->v, 3, "user.keep"), 0);
	assert_int_equal(mfs_xattr_set(fx->v, 3, "user.new", val, 500, 0), 0);
	assert_int_equal(mfs_txn_commit(fx->v), 0);
	crash_reopen(fx);
	expect_absent(fx->v, 3, "user.keep");
	expect_xattr(fx->v, 3, "user.new", val, 500);
	assert_int_equal(count_items(fx->v, 3), 1);
	check_trees(fx->v);
	free(val);
}

/* A read-only volume refuses changes whole and still answers reads; so
 * does one with the sticky error set. */
static void test_readonly(void **state)
{
	struct fx *fx = *state;
	const char *one[] = { "user.r" };
	uint8_t *val = malloc(VMAX);

	assert_non_null(val);
	fill(val, 40000, 3);
	assert_int_equal(mfs_xattr_set(fx->v, 4, "user.r", val, 40000, 0), 0);
	assert_int_equal(mfs_vol_close(fx->v), 0);
	fx->v = NULL;
	assert_int_equal(mfs_vol_open(fx->path, MFS_VOL_RDONLY, &fx->v), 0);
	assert_int_equal(mfs_xattr_set(fx->v, 4, "user.r", val, 10, 0), -EROFS);
	assert_int_equal(mfs_xattr_set(fx->v, 4, "user.n", val, 40000, 0),
			 -EROFS);
	assert_int_equal(mfs_xattr_remove(fx->v, 4, "user.r"), -EROFS);
	assert_int_equal(mfs_xattr_remove_all(fx->v, 4), -EROFS);
	/* argument errors still come first */
	assert_int_equal(mfs_xattr_set(fx->v, 4, "bad.r", val, 1, 0),
			 -EOPNOTSUPP);
	expect_xattr(fx->v, 4, "user.r", val, 40000);
	expect_list(fx->v, 4, one, 1);
	assert_int_equal(mfs_vol_close(fx->v), 0);
	fx->v = NULL;

	assert_int_equal(mfs_vol_open(fx->path, 0, &fx->v), 0);
	fx->v->error = -EIO;
	assert_int_equal(mfs_xattr_set(fx->v, 4, "user.n", val, 40000, 0),
			 -EIO);
	assert_int_equal(mfs_xattr_remove(fx->v, 4, "user.r"), -EIO);
	assert_int_equal(mfs_xattr_remove_all(fx->v, 4), -EIO);
	expect_xattr(fx->v, 4, "user.r", val, 40000);
	fx->v->error = 0;
	assert_int_equal(count_items(fx->v, 4), chunks_for(6, 40000));
	free(val);
}

/* Fill a 4 MiB image until it is full: every attribute that went in
 * stays whole, every one refused left nothing behind. */
static void test_enospc(void **state)
{
	struct fx *fx = *state;
	uint8_t *val = malloc(VMAX);
	char name[32];
	unsigned n, big = 0;
	size_t len0;
	int rc = 0;

	assert_non_null(val);
	for (n = 0; n < 10000; n++) {
		size_t size = big < 40 ? VMAX : 900;

		snprintf(name, sizeof(name), "user.f%u", n);
		fill(val, size, n);
		rc = mfs_xattr_set(fx->v, 77, name, val, size, 0);
		if (rc == -ENOSPC && big < 40) {
			big = 40;   /* now small ones until that fails too */
			assert_int_equal(count_chunks(fx->v, 77, name), 0);
			n--;
			continue;
		}
		if (rc)
			break;
		if (size == VMAX)
			big++;
	}
	assert_int_equal(rc, -ENOSPC);
	assert_true(n > 0);
	assert_int_equal(fx->v->error, 0);
	snprintf(name, sizeof(name), "user.f%u", n);
	assert_int_equal(count_chunks(fx->v, 77, name), 0);
	check_trees(fx->v);
	for (unsigned i = 0; i < n; i++) {
		size_t len;

		snprintf(name, sizeof(name), "user.f%u", i);
		assert_int_equal(mfs_xattr_get(fx->v, 77, name, NULL, 0, &len), 0);
		fill(val, len, i);
		expect_xattr(fx->v, 77, name, val, len);
	}
	/* Everything that went in is committed and whole. (Removing on a
	 * volume this full is refused by the B+tree's own space check, a
	 * limitation of the layers below.) */
	assert_int_equal(mfs_txn_commit(fx->v), 0);
	vol_reopen(fx);
	check_trees(fx->v);
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "user.f%u", i);
		assert_int_equal(mfs_xattr_get(fx->v, 77, name, NULL, 0, &len0),
				 0);
		fill(val, len0, i);
		expect_xattr(fx->v, 77, name, val, len0);
	}
	expect_absent(fx->v, 77, "user.f10000");
	free(val);
}

/* ---- damaged images ---- */

static void put_raw(struct mfs_vol *v, struct mfs_key k, const void *val,
		    size_t len)
{
	assert_int_equal(mfs_btree_put(v, MFS_TREE_FS, &k, val, len), 0);
}

/* Chunk 0 for name: header fields as given, name, then nval bytes. */
static size_t make_head(uint8_t *buf, uint32_t total, unsigned name_len,
			unsigned flags, const char *name, size_t nval)
{
	size_t nl = strlen(name);

	memset(buf, 0, 8);
	mfs_put_le32(buf, total);
	buf[4] = (uint8_t)name_len;
	buf[5] = (uint8_t)flags;
	memcpy(buf + 8, name, nl);
	memset(buf + 8 + nl, 'v', nval);
	return 8 + nl + nval;
}

/* Every operation that decodes the attribute must report -EUCLEAN, set
 * the sticky error and log; abort must clear it. */
static void expect_corrupt(struct fx *fx, uint64_t ino, const char *name,
			   bool get_too)
{
	char *buf = malloc(VMAX);
	size_t len;

	assert_non_null(buf);
	logbuf[0] = '\0';
	assert_int_equal(mfs_xattr_list(fx->v, ino, buf, VMAX, &len), -EUCLEAN);
	assert_int_equal(fx->v->error, -EUCLEAN);
	assert_non_null(strstr(logbuf, "corruption"));
	if (get_too) {
		assert_int_equal(mfs_xattr_get(fx->v, ino, name, buf, VMAX,
					       &len), -EUCLEAN);
		assert_int_equal(mfs_xattr_set(fx->v, ino, name, "x", 1, 0),
				 -EUCLEAN);
		assert_int_equal(mfs_xattr_remove(fx->v, ino, name), -EUCLEAN);
	}
	assert_int_equal(mfs_txn_abort(fx->v), 0);
	assert_int_equal(fx->v->error, 0);
	free(buf);
}

static void test_corrupt(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx->v;
	const char *nm = "user.victim";
	size_t nl = strlen(nm);
	uint8_t b[MFS_MAX_VALUE];
	uint8_t *val = malloc(VMAX);
	size_t len;

	assert_non_null(val);
	/* A good neighbour that must survive everything. */
	fill(val, 5000, 5);
	assert_int_equal(mfs_xattr_set(v, 20, "user.good", val, 5000, 0), 0);
	assert_int_equal(mfs_txn_commit(v), 0);

	/* chunk 0 shorter than the header */
	put_raw(v, chunk_key(v, 20, nm, 0), "abc", 3);
	expect_corrupt(fx, 20, nm, true);
	put_raw(v, chunk_key(v, 20, nm, 0), "", 0);
	expect_corrupt(fx, 20, nm, true);
	/* value length over 64 KiB */
	put_raw(v, chunk_key(v, 20, nm, 0), b,
		make_head(b, VMAX + 1, (unsigned)nl, 0, nm, 976 - nl));
	expect_corrupt(fx, 20, nm, true);
	put_raw(v, chunk_key(v, 20, nm, 0), b,
		make_head(b, UINT32_MAX, (unsigned)nl, 0, nm, 976 - nl));
	expect_corrupt(fx, 20, nm, true);
	/* name length 0, and one longer than the item */
	put_raw(v, chunk_key(v, 20, nm, 0), b, make_head(b, 0, 0, 0, nm, 0));
	expect_corrupt(fx, 20, nm, true);
	put_raw(v, chunk_key(v, 20, nm, 0), b, make_head(b, 0, 200, 0, nm, 0));
	expect_corrupt(fx, 20, nm, true);
	put_raw(v, chunk_key(v, 20, nm, 0), b, make_head(b, 0, 255, 0, nm, 0));
	expect_corrupt(fx, 20, nm, true);
	/* name length one short of the stored name (a different name) */
	put_raw(v, chunk_key(v, 20, nm, 0), b,
		make_head(b, 0, (unsigned)nl - 1, 0, nm, 0));
	expect_corrupt(fx, 20, nm, true);
	/* unknown flags */
	put_raw(v, chunk_key(v, 20, nm, 0), b,
		make_head(b, 3, (unsigned)nl, 1, nm, 3));
	expect_corrupt(fx, 20, nm, true);
	/* value bytes in chunk 0 disagree with the length: few, many */
	put_raw(v, chunk_key(v, 20, nm, 0), b,
		make_head(b, 10, (unsigned)nl, 0, nm, 5));
	expect_corrupt(fx, 20, nm, true);
	put_raw(v, chunk_key(v, 20, nm, 0), b,
		make_head(b, 10, (unsigned)nl, 0, nm, 11));
	expect_corrupt(fx, 20, nm, true);
	put_raw(v, chunk_key(v, 20, nm, 0), b,
		make_head(b, 2000, (unsigned)nl, 0, nm, 500));
	expect_corrupt(fx, 20, nm, true);
	/* NUL inside the stored name (name_len covers "user.victim\0x") */
	{
		char z[16] = "user.victim";

		z[11] = '\0';
		z[12] = 'x';
		memset(b, 0, 8);
		b[4] = 13;
		memcpy(b + 8, z, 13);
		put_raw(v, chunk_key(v, 20, nm, 0), b, 8 + 13);
		expect_corrupt(fx, 20, nm, true);
	}

	/* continuation chunks: missing, short, long, stray, orphaned */
	fill(val, 3000, 9);
	assert_int_equal(mfs_xattr_set(v, 20, nm, val, 3000, 0), 0);
	assert_int_equal(mfs_txn_commit(v), 0);
	{
		struct mfs_key k = chunk_key(v, 20, nm, 1);

		assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &k), 0);
		/* size 0 needs no continuation chunk */
		assert_int_equal(mfs_xattr_get(v, 20, nm, NULL, 0, &len), 0);
		assert_int_equal(len, 3000);
		expect_corrupt(fx, 20, nm, false);
		assert_int_equal(mfs_xattr_get(v, 20, nm, val, VMAX, &len), 0);
		assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &k), 0);
		assert_int_equal(mfs_xattr_get(v, 20, nm, val, VMAX, &len),
				 -EUCLEAN);
		assert_int_equal(mfs_txn_abort(v), 0);
	}
	/* 3000 bytes with an 11-byte name: 965 + 984 + 984 + 67 */
	assert_int_equal(chunks_for(nl, 3000), 4);
	put_raw(v, chunk_key(v, 20, nm, 2), "short", 5);
	expect_corrupt(fx, 20, nm, false);
	assert_int_equal(mfs_xattr_get(v, 20, nm, val, VMAX, &len), 0);
	put_raw(v, chunk_key(v, 20, nm, 1), val, 983);
	assert_int_equal(mfs_xattr_get(v, 20, nm, val, VMAX, &len), -EUCLEAN);
	assert_int_equal(mfs_txn_abort(v), 0);
	put_raw(v, chunk_key(v, 20, nm, 3), val, 68);
	assert_int_equal(mfs_xattr_get(v, 20, nm, val, VMAX, &len), -EUCLEAN);
	assert_int_equal(mfs_txn_abort(v), 0);
	put_raw(v, chunk_key(v, 20, nm, 3), val, 66);
	expect_corrupt(fx, 20, nm, false);
	put_raw(v, chunk_key(v, 20, nm, 4), "x", 1);    /* past the last */
	expect_corrupt(fx, 20, nm, false);
	put_raw(v, chunk_key(v, 20, nm, 127), "x", 1);
	expect_corrupt(fx, 20, nm, false);
	put_raw(v, chunk_key(v, 20, "user.nohead", 1), "x", 1);
	expect_corrupt(fx, 20, nm, false);
	assert_int_equal(mfs_xattr_get(v, 20, "user.nohead", NULL, 0, &len),
			 -ENODATA);
	assert_int_equal(mfs_txn_abort(v), 0);
	/* an item whose offset is no chunk 0 of any 56-bit hash */
	put_raw(v, mfs_key_make(20, MFS_ITEM_XATTR, UINT64_MAX), "x", 1);
	expect_corrupt(fx, 20, nm, false);

	/* remove_all deletes damaged attributes without decoding them. */
	put_raw(v, chunk_key(v, 20, "user.bad", 0), "abc", 3);
	put_raw(v, chunk_key(v, 20, "user.nohead", 5), "x", 1);
	put_raw(v, mfs_key_make(20, MFS_ITEM_XATTR, UINT64_MAX), "x", 1);
	assert_int_equal(mfs_xattr_remove_all(v, 20), 0);
	assert_int_equal(count_items(v, 20), 0);
	assert_int_equal(v->error, 0);
	assert_int_equal(mfs_txn_abort(v), 0);

	/* After all this, the committed state is intact. */
	fill(val, 5000, 5);
	expect_xattr(v, 20, "user.good", val, 5000);
	fill(val, 3000, 9);
	expect_xattr(v, 20, nm, val, 3000);
	check_trees(v);
	free(val);
}

/*
 * A hash collision, simulated: chunk 0 at the key of "user.b" holds the
 * well-formed attribute "user.a". Lookups of "user.b" must see another
 * name there and never return its value; list, which checks every name
 * against its key, reports the damage (a real collision would pass).
 */
static void test_collision(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx->v;
	uint8_t b[MFS_MAX_VALUE];
	char buf[16];
	size_t len;

	put_raw(v, chunk_key(v, 30, "user.b", 0), b,
		make_head(b, 3, 6, 0, "user.a", 3));
	assert_int_equal(mfs_xattr_get(v, 30, "user.b", buf, sizeof(buf), &len),
			 -ENODATA);
	assert_int_equal(mfs_xattr_get(v, 30, "user.b", NULL, 0, &len),
			 -ENODATA);
	assert_int_equal(mfs_xattr_remove(v, 30, "user.b"), -ENODATA);
	assert_int_equal(mfs_xattr_set(v, 30, "user.b", "new", 3,
				       XATTR_REPLACE), -ENODATA);
	logbuf[0] = '\0';
	assert_int_equal(mfs_xattr_set(v, 30, "user.b", "new", 3, 0), -ENOSPC);
	assert_non_null(strstr(logbuf, "collision"));
	assert_int_equal(mfs_xattr_set(v, 30, "user.b", "new", 3, XATTR_CREATE),
			 -ENOSPC);
	assert_int_equal(count_items(v, 30), 1);
	assert_int_equal(v->error, 0);
	/* "user.a" itself lives at another key. */
	assert_int_equal(mfs_xattr_get(v, 30, "user.a", NULL, 0, &len),
			 -ENODATA);
	assert_int_equal(mfs_xattr_set(v, 30, "user.a", "aa", 2, 0), 0);
	expect_xattr(v, 30, "user.a", (const uint8_t *)"aa", 2);
	assert_int_equal(mfs_xattr_list(v, 30, NULL, 0, &len), -EUCLEAN);
	assert_int_equal(mfs_txn_abort(v), 0);
}

/* ---- a B+tree bug the random model found ---- */

static void bt_insert(struct mfs_vol *v, uint64_t off)
{
	static const uint8_t val[900];
	struct mfs_key k = mfs_key_make(500, MFS_ITEM_XATTR, off);

	assert_int_equal(mfs_btree_insert(v, MFS_TREE_FS, &k, val, sizeof(val)),
			 0);
}

static void bt_delete(struct mfs_vol *v, uint64_t off)
{
	struct mfs_key k = mfs_key_make(500, MFS_ITEM_XATTR, off);

	assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &k), 0);
}

/*
 * An internal node's first key is only a lower bound. When its child 0
 * empties and is dropped, the old second key becomes the first, and keys
 * below it are still routed to child 0; a split of child 0 then used to
 * insert a separator at or below the first key (keys out of order: the
 * node failed verification after the commit). Belongs in the B+tree's own
 * suite; kept here with the xattr tests that found it.
 */
static void test_btree_split_below_first_key(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx->v;
	struct mfs_key s = mfs_key_make(0, 0, 0);
	struct mfs_key e = mfs_key_make(UINT64_MAX, 255, UINT64_MAX);
	struct mfs_key keys[16], k;
	struct mfs_cursor c;
	unsigned n = 0;

	/* Start from an empty tree: drop what mkfs wrote. */
	mfs_cursor_init(&c, v, MFS_TREE_FS, &s, &e);
	while (mfs_cursor_next(&c, &k, NULL, NULL) > 0) {
		assert_true(n < 16);
		keys[n++] = k;
	}
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &keys[i]), 0);
	/* Leaves of three 900-byte items: [100 110 120] [130 140 150] ... */
	for (uint64_t i = 0; i < 12; i++)
		bt_insert(v, 100 + 10 * i);
	assert_int_equal(v->roots[MFS_TREE_FS].level, 1);
	bt_insert(v, 135);      /* child 1 too full to merge with child 0 */
	bt_delete(v, 100);
	bt_delete(v, 110);
	bt_delete(v, 120);      /* child 0 empty: dropped; first key is 130 */
	check_trees(v);
	bt_insert(v, 101);      /* below 130: child 0, which splits */
	bt_insert(v, 102);
	bt_insert(v, 103);      /* splits again at 130 */
	check_trees(v);
	assert_int_equal(mfs_txn_commit(v), 0);
	vol_reopen(fx);
	check_trees(fx->v);
	for (uint64_t off = 101; off <= 103; off++) {
		k = mfs_key_make(500, MFS_ITEM_XATTR, off);
		assert_int_equal(mfs_btree_lookup(fx->v, MFS_TREE_FS, &k, NULL,
						  NULL), 0);
	}
}

/* ---- random model ---- */

#define M_INOS 4
#define M_NAMES 40
#define M_OPS 25000

struct m_attr {
	bool present;
	uint32_t size;
	uint64_t seed;
};

struct model {
	struct m_attr cur[M_INOS][M_NAMES];
	struct m_attr com[M_INOS][M_NAMES];   /* as last committed */
	char names[M_NAMES][256];
	uint64_t rng;
	uint64_t seed0;
	unsigned step;
};

/* The name hashes depend on the image's random seed; make them depend on
 * the test's seed instead, so that a failure can be replayed. Set after
 * every open (nothing else in this test hashes names). */
static void m_hash_seed(struct model *m, struct mfs_vol *v)
{
	v->sb.hash_seed[0] = m->seed0 ^ 0x736f6d6570736575ULL;
	v->sb.hash_seed[1] = m->seed0 ^ 0x646f72616e646f6dULL;
}

static uint64_t rnd(struct model *m, uint64_t n)
{
	return rng_next(&m->rng) % n;
}

static void m_check(struct model *m, long got, long exp, const char *what)
{
	if (got != exp) {
		print_message("random model: seed %#" PRIx64 " step %u: %s: "
			      "got %ld, expected %ld\n", m->seed0, m->step,
			      what, got, exp);
		fail();
	}
}

static size_t m_size(struct model *m, size_t name_len)
{
	size_t cap0 = 976 - name_len;
	const size_t edges[] = { 0, 1, 983, 984, 985, cap0 - 1, cap0, cap0 + 1,
				 cap0 + 984, cap0 + 985, 2000, VMAX - 1, VMAX };

	switch (rnd(m, 10)) {
	case 0: case 1: case 2: case 3:
		return rnd(m, 100);
	case 4: case 5:
		return edges[rnd(m, sizeof(edges) / sizeof(edges[0]))];
	case 6: case 7: case 8:
		return rnd(m, 5000);
	default:
		return rnd(m, VMAX + 1);
	}
}

static void m_verify_all(struct model *m, struct mfs_vol *v, uint8_t *val,
			 uint8_t *buf)
{
	unsigned total = 0;

	for (unsigned i = 0; i < M_INOS; i++) {
		const char *present[M_NAMES];
		size_t n = 0;
		unsigned items = 0;

		for (unsigned j = 0; j < M_NAMES; j++) {
			struct m_attr *a = &m->cur[i][j];
			size_t len = 0;
			int rc;

			rc = mfs_xattr_get(v, 10 + i, m->names[j], buf, VMAX,
					   &len);
			m_check(m, rc, a->present ? 0 : -ENODATA, "verify get");
			if (!a->present)
				continue;
			present[n++] = m->names[j];
			m_check(m, (long)len, a->size, "verify length");
			fill(val, a->size, a->seed);
			m_check(m, memcmp(buf, val, a->size) != 0, 0,
				"verify value");
			items += chunks_for(strlen(m->names[j]), a->size);
		}
		expect_list(v, 10 + i, present, n);
		m_check(m, count_items(v, 10 + i), items, "item count");
		total += items;
	}
	(void)total;
	check_trees(v);
}

static void test_random_model(void **state)
{
	struct fx *fx = *state;
	static struct model m;
	const char *seed = getenv("MMAPFS_TEST_SEED");
	uint8_t *val = malloc(VMAX + 1), *buf = malloc(VMAX + 1);
	static const char *prefixes[] = { "user.", "trusted.", "security." };
	unsigned commits = 0, aborts = 0, reopens = 0, crashes = 0;

	assert_non_null(val);
	assert_non_null(buf);
	memset(&m, 0, sizeof(m));
	m.seed0 = seed ? strtoull(seed, NULL, 0) : 0x5eed5eed1234ULL;
	m.rng = m.seed0 ? m.seed0 : 1;
	m_hash_seed(&m, fx->v);
	for (unsigned j = 0; j < M_NAMES; j++) {
		if (j == 0) {
			strcpy(m.names[j], "system.posix_acl_access");
		} else if (j == 1) {
			strcpy(m.names[j], "system.posix_acl_default");
		} else if (j % 7 == 0) {  /* 255-byte names */
			memset(m.names[j], 'a' + (int)(j % 26), 255);
			memcpy(m.names[j], prefixes[j % 3], strlen(prefixes[j % 3]));
			m.names[j][255] = '\0';
		} else {
			snprintf(m.names[j], sizeof(m.names[j]), "%sn%u",
				 prefixes[j % 3], j);
		}
	}

	for (m.step = 0; m.step < M_OPS; m.step++) {
		unsigned op = (unsigned)rnd(&m, 1000);
		unsigned i = (unsigned)rnd(&m, M_INOS);
		unsigned j = (unsigned)rnd(&m, M_NAMES);
		struct m_attr *a = &m.cur[i][j];
		const char *name = m.names[j];
		uint64_t ino = 10 + i;
		size_t len = 0;
		int rc;

		if (op < 420) {                          /* set */
			int flags = (int)rnd(&m, 4);
			size_t size = m_size(&m, strlen(name));
			uint64_t s = rng_next(&m.rng);
			int exp = 0;

			if (flags == 3)
				flags = 0;
			if ((flags & XATTR_CREATE) && a->present)
				exp = -EEXIST;
			else if ((flags & XATTR_REPLACE) && !a->present)
				exp = -ENODATA;
			fill(val, size, s);
			rc = mfs_xattr_set(fx->v, ino, name, val, size, flags);
			m_check(&m, rc, exp, "set");
			if (!rc) {
				a->present = true;
				a->size = (uint32_t)size;
				a->seed = s;
			}
		} else if (op < 680) {                   /* get */
			size_t want = a->present ? a->size : 0;
			size_t bsize;
			int exp;

			switch (rnd(&m, 4)) {
			case 0: bsize = 0; break;
			case 1: bsize = want; break;
			case 2: bsize = want ? want - 1 : 0; break;
			default: bsize = VMAX + 1; break;
			}
			exp = !a->present ? -ENODATA
			      : bsize && bsize < want ? -ERANGE : 0;
			rc = mfs_xattr_get(fx->v, ino, name, buf, bsize, &len);
			m_check(&m, rc, exp, "get");
			if (a->present)
				m_check(&m, (long)len, (long)want, "get length");
			if (!rc && bsize) {
				fill(val, want, a->seed);
				m_check(&m, memcmp(buf, val, want) != 0, 0,
					"get value");
			}
		} else if (op < 850) {                   /* remove */
			rc = mfs_xattr_remove(fx->v, ino, name);
			m_check(&m, rc, a->present ? 0 : -ENODATA, "remove");
			a->present = false;
		} else if (op < 930) {                   /* list */
			const char *present[M_NAMES];
			size_t n = 0;

			for (unsigned x = 0; x < M_NAMES; x++)
				if (m.cur[i][x].present)
					present[n++] = m.names[x];
			expect_list(fx->v, ino, present, n);
		} else if (op < 940) {                   /* remove_all */
			m_check(&m, mfs_xattr_remove_all(fx->v, ino), 0,
				"remove_all");
			memset(m.cur[i], 0, sizeof(m.cur[i]));
			m_check(&m, count_items(fx->v, ino), 0,
				"remove_all items");
		} else if (op < 975) {                   /* commit */
			m_check(&m, mfs_txn_commit(fx->v), 0, "commit");
			memcpy(m.com, m.cur, sizeof(m.com));
			commits++;
		} else if (op < 987) {                   /* abort */
			m_check(&m, mfs_txn_abort(fx->v), 0, "abort");
			memcpy(m.cur, m.com, sizeof(m.cur));
			aborts++;
		} else if (op < 994) {                   /* clean reopen */
			vol_reopen(fx);
			m_hash_seed(&m, fx->v);
			memcpy(m.com, m.cur, sizeof(m.com));
			reopens++;
		} else {                                 /* crash */
			crash_reopen(fx);
			m_hash_seed(&m, fx->v);
			memcpy(m.cur, m.com, sizeof(m.cur));
			crashes++;
		}
		if (getenv("MMAPFS_TEST_PARANOID") &&
		    mfs_btree_check(fx->v, MFS_TREE_FS, NULL, NULL) != 0) {
			print_message("tree bad after step %u op %u ino %u "
				      "name %u\n", m.step, op, i, j);
			fail();
		}
		if (m.step % 2500 == 2499)
			m_verify_all(&m, fx->v, val, buf);
	}
	m_verify_all(&m, fx->v, val, buf);
	vol_reopen(fx);
	m_hash_seed(&m, fx->v);
	m_verify_all(&m, fx->v, val, buf);
	print_message("random model: %u ops, %u commits, %u aborts, %u reopens, "
		      "%u crashes\n", M_OPS, commits, aborts, reopens, crashes);
	free(val);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_on_one, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_many_inodes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_commit_abort, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc, setup_small,
						teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_collision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_btree_split_below_first_key,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_model, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
