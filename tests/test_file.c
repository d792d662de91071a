/* SPDX-License-Identifier: MIT */
/*
 * test_file.c — unit tests of the file-data layer (src/file.c) on real
 * images: each test formats an image in a fresh directory under /tmp, opens
 * it and works on an in-memory struct mfs_inode (ino 1000, no INODE item:
 * the file layer only touches EXTENT items). Reads are checked by
 * concatenating the returned iovecs.
 *
 * The random model test runs write/truncate/punch/zero/fallocate/copy/
 * read/seek against a byte-array model, with commits, aborts, crashes
 * (close without commit) and reopens. Committed data is overwritten in
 * place, so an abort does not simply bring the old bytes back: the model
 * tracks, for each committed written block still mapped to its committed
 * disk block, what that disk block holds. MMAPFS_SEED=n reruns one seed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "btree.h"
#include "endian.h"
#include "file.h"
#include "image.h"
#include "log.h"
#include "newfs.h"
#include "txn.h"
#include "mmapfs/mmapfs.h"

#define KiB 1024ULL
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)
#define TiB (1024ULL * GiB)
#define BS ((uint64_t)MFS_BLOCK_SIZE)
#define INO 1000u

struct fx {
	char dir[64];
	char path[160];
	struct mfs_vol *v;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	strcpy(fx->dir, "/tmp/mfs-test-file-XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/disk.img", fx->dir);
	*state = fx;
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st; (void)type; (void)f;
	return remove(p) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	if (fx->v)
		mfs_vol_close_dirty(fx->v);
	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	mfs_log_set_sink(NULL);
	free(fx);
	return 0;
}

static struct mfs_vol *fx_format(struct fx *fx, uint64_t size)
{
	struct mfs_format_opts o = { .size = size };

	assert_int_equal(mfs_format(fx->path, &o), 0);
	assert_int_equal(mfs_vol_open(fx->path, 0, &fx->v), 0);
	return fx->v;
}

/* Commit, close, open again. */
static struct mfs_vol *fx_reopen(struct fx *fx)
{
	assert_int_equal(mfs_vol_close(fx->v), 0);
	fx->v = NULL;
	assert_int_equal(mfs_vol_open(fx->path, 0, &fx->v), 0);
	return fx->v;
}

/* What a crash leaves: close without committing, open again. */
static struct mfs_vol *fx_crash(struct fx *fx)
{
	mfs_vol_close_dirty(fx->v);
	fx->v = NULL;
	assert_int_equal(mfs_vol_open(fx->path, 0, &fx->v), 0);
	return fx->v;
}

static void new_inode(struct mfs_inode *in, uint64_t ino)
{
	memset(in, 0, sizeof(*in));
	in->ino = ino;
	in->mode = S_IFREG | 0644;
	in->nlink = 1;
}

/* ---- helpers ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void fill(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(rnd() >> 56) | 1;   /* never 0: zeros show */
}

/* Read [off, off+len) by concatenating the iovecs; returns the bytes. */
static size_t rd(struct mfs_vol *v, const struct mfs_inode *in, uint64_t off,
		 size_t len, uint8_t *buf)
{
	unsigned max = (unsigned)(len >> 12) + 2, cnt = 0, i;
	struct iovec *iov = calloc(max, sizeof(*iov));
	size_t bytes = 0, done = 0;

	assert_non_null(iov);
	assert_int_equal(mfs_file_read(v, in, off, len, iov, max, &cnt, &bytes), 0);
	assert_true(cnt <= max);
	for (i = 0; i < cnt; i++) {
		assert_true(iov[i].iov_len > 0);
		memcpy(buf + done, iov[i].iov_base, iov[i].iov_len);
		done += iov[i].iov_len;
	}
	assert_int_equal(done, bytes);
	free(iov);
	return bytes;
}

static void wr(struct mfs_vol *v, struct mfs_inode *in, uint64_t off,
	       const void *buf, size_t len)
{
	size_t n = 0;

	assert_int_equal(mfs_file_write(v, in, off, buf, len, &n), 0);
	assert_int_equal(n, len);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void expect_zeros(struct mfs_vol *v, const struct mfs_inode *in,
			 uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	assert_int_equal(rd(v, in, off, len, buf), len);
	assert_true(all_zero(buf, len));
	free(buf);
}

static void expect_bytes(struct mfs_vol *v, const struct mfs_inode *in,
			 uint64_t off, const uint8_t *exp, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	assert_int_equal(rd(v, in, off, len, buf), len);
	assert_memory_equal(buf, exp, len);
	free(buf);
}

struct xt {
	uint64_t fblk, block, count;
	uint32_t flags;
};

/* The EXTENT items of ino, in order (at most max); returns how many. */
static size_t extents(struct mfs_vol *v, uint64_t ino, struct xt *out,
		      size_t max)
{
	struct mfs_key lo = mfs_key_make(ino, MFS_ITEM_EXTENT, 0);
	struct mfs_key hi = mfs_key_make(ino, MFS_ITEM_EXTENT, UINT64_MAX), k;
	struct mfs_cursor c;
	const void *val;
	size_t len, n = 0;
	int rc;

	mfs_cursor_init(&c, v, MFS_TREE_FS, &lo, &hi);
	while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0) {
		assert_int_equal(len, sizeof(struct mfs_disk_extent));
		if (n < max) {
			out[n].fblk = k.offset;
			out[n].block = mfs_get_le64(val);
			out[n].count = mfs_get_le64((const uint8_t *)val + 8);
			out[n].flags = mfs_get_le32((const uint8_t *)val + 16);
		}
		n++;
	}
	assert_int_equal(rc, 0);
	return n;
}

static size_t count_extents(struct mfs_vol *v, uint64_t ino)
{
	return extents(v, ino, NULL, 0);
}

/* Sum of the extent lengths of every file on the volume. */
static uint64_t data_blocks(struct mfs_vol *v, uint64_t ino_lo, uint64_t ino_hi)
{
	struct mfs_key lo = mfs_key_make(ino_lo, 0, 0);
	struct mfs_key hi = mfs_key_make(ino_hi, 255, UINT64_MAX), k;
	struct mfs_cursor c;
	const void *val;
	size_t len;
	uint64_t sum = 0;
	int rc;

	mfs_cursor_init(&c, v, MFS_TREE_FS, &lo, &hi);
	while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0)
		if (k.type == MFS_ITEM_EXTENT)
			sum += mfs_get_le64((const uint8_t *)val + 8);
	assert_int_equal(rc, 0);
	return sum;
}

static int count_cb(void *arg, uint64_t block)
{
	(void)block;
	(*(uint64_t *)arg)++;
	return 0;
}

/* Every block is a superblock, a tree node, free, or file data. */
static void check_accounting(struct mfs_vol *v)
{
	uint64_t nodes = 0;

	assert_int_equal(mfs_btree_check(v, MFS_TREE_FS, count_cb, &nodes), 0);
	assert_int_equal(mfs_btree_check(v, MFS_TREE_FREE, count_cb, &nodes), 0);
	assert_int_equal(nodes + mfs_alloc_free_blocks(v->alloc) +
			 data_blocks(v, 0, UINT64_MAX) + 2,
			 mfs_alloc_block_count(v->alloc));
}

static void check_inode_blocks(struct mfs_vol *v, const struct mfs_inode *in)
{
	assert_int_equal(data_blocks(v, in->ino, in->ino) * 8, in->blocks);
}

/* ---- basic reads and writes ---- */

static void test_roundtrip(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	struct mfs_inode in;
	uint8_t *a = malloc(300 * KiB), *b = malloc(300 * KiB);
	static const struct { uint64_t off; size_t len; } w[] = {
		{ 0, 1 }, { 1, 4094 }, { 4095, 2 }, { 10000, 5000 },
		{ 123456, 70001 }, { 8191, 4097 }, { 250 * KiB, 13 },
	};
	uint8_t *model = calloc(1, 300 * KiB);
	uint64_t size = 0;

	new_inode(&in, INO);
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		fill(a, w[i].len);
		wr(v, &in, w[i].off, a, w[i].len);
		memcpy(model + w[i].off, a, w[i].len);
		if (w[i].off + w[i].len > size)
			size = w[i].off + w[i].len;
		assert_int_equal(in.size, size);
		check_inode_blocks(v, &in);
		expect_bytes(v, &in, 0, model, size);
	}
	/* Odd ranges inside, and across the end. */
	assert_int_equal(rd(v, &in, 4000, 9000, b), 9000);
	assert_memory_equal(b, model + 4000, 9000);
	assert_int_equal(rd(v, &in, size - 5, 100, b), 5);
	assert_memory_equal(b, model + size - 5, 5);
	assert_int_equal(rd(v, &in, size, 100, b), 0);
	assert_int_equal(rd(v, &in, size + 10 * MiB, 100, b), 0);
	/* The hole between 200000-ish and 250 KiB reads zeros. */
	expect_zeros(v, &in, 200 * KiB, 40 * KiB);
	/* Blocks: every block touched is allocated, no more. */
	{
		uint64_t blocks = 0;

		for (uint64_t blk = 0; blk < (size + BS - 1) / BS; blk++) {
			bool used = false;

			for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
				if (w[i].off < (blk + 1) * BS &&
				    w[i].off + w[i].len > blk * BS)
					used = true;
			blocks += used;
		}
		assert_int_equal(in.blocks, blocks * 8);
	}
	assert_int_equal(mfs_file_write(v, &in, 5, a, 0, &(size_t){ 1 }), 0);
	assert_int_equal(in.size, size);
	check_accounting(v);
	/* And after a commit and reopen. */
	v = fx_reopen(fx);
	expect_bytes(v, &in, 0, model, size);
	check_accounting(v);
	free(a);
	free(b);
	free(model);
}

/* iovecs: one per extent run, zeros from one shared buffer, -EINVAL when
 * the caller's array is too small. */
static void test_read_iovecs(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	struct mfs_inode in;
	struct iovec iov[600];
	unsigned cnt;
	size_t bytes;
	uint8_t *a = malloc(2 * MiB);

	new_inode(&in, INO);
	fill(a, 2 * MiB);
	wr(v, &in, 0, a, 2 * MiB);
	assert_int_equal(mfs_file_truncate(v, &in, 6 * MiB), 0);
	assert_int_equal(mfs_file_read(v, &in, 0, 2 * MiB, iov, 514, &cnt, &bytes), 0);
	assert_int_equal(cnt, 1);     /* one extent, one iovec */
	assert_int_equal(bytes, 2 * MiB);
	assert_int_equal(mfs_file_read(v, &in, 2 * MiB, 3 * MiB, iov, 770, &cnt, &bytes), 0);
	assert_int_equal(bytes, 3 * MiB);
	assert_int_equal(cnt, 3);     /* 1 MiB zero buffer, three times */
	assert_ptr_equal(iov[0].iov_base, iov[1].iov_base);
	assert_int_equal(mfs_file_read(v, &in, 0, 8192, iov, 4, &cnt, &bytes), 0);
	assert_int_equal(mfs_file_read(v, &in, 0, 8192, iov, 3, &cnt, &bytes), -EINVAL);
	assert_int_equal(mfs_file_read(v, &in, 0, 4096 * 100, iov, 101, &cnt, &bytes), -EINVAL);
	free(a);
}

/* Sequential 1 MiB writes stay in very few extents, with and without
 * commits in between (the nodes a commit copies must not land right after
 * the growing file). */
static void test_sequential_extents(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 256 * MiB);
	struct mfs_inode in, in2;
	uint8_t *a = malloc(MiB), *b = malloc(MiB);
	size_t n1, n2;

	new_inode(&in, INO);
	new_inode(&in2, INO + 1);
	for (unsigned i = 0; i < 64; i++) {
		fill(a, MiB);
		wr(v, &in, (uint64_t)i * MiB, a, MiB);
	}
	n1 = count_extents(v, INO);
	for (unsigned i = 0; i < 64; i++) {
		fill(a, MiB);
		wr(v, &in2, (uint64_t)i * MiB, a, MiB);
		if (i % 4 == 3)
			assert_int_equal(mfs_txn_commit(v), 0);
	}
	n2 = count_extents(v, INO + 1);
	print_message("64 MiB in 1 MiB writes: %zu extent(s) without commits, "
		      "%zu with a commit every 4 MiB\n", n1, n2);
	assert_true(n1 <= 4);
	assert_true(n2 <= 4);
	assert_int_equal(in.blocks, 64 * MiB / 512);
	check_inode_blocks(v, &in);
	check_inode_blocks(v, &in2);
	/* Content of the last one. */
	assert_int_equal(rd(v, &in2, 63 * MiB, MiB, b), MiB);
	assert_memory_equal(a, b, MiB);
	check_accounting(v);
	free(a);
	free(b);
}

/* Writes arriving out of order, as the kernel's writeback sends them (a
 * later part of the file first), still make one contiguous file: the goal
 * for a block is where it would be if the file were contiguous from the
 * extent before it. */
static void test_out_of_order_extents(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 256 * MiB);
	/* 1 MiB pieces of a 16 MiB file, in this order. */
	static const unsigned order[16] = { 0, 2, 1, 5, 3, 4, 8, 6, 7, 9, 12,
					    10, 11, 15, 13, 14 };
	struct mfs_inode in, in2, other;
	uint8_t *a = malloc(MiB);
	size_t n1, n2;

	new_inode(&in, INO);
	for (unsigned i = 0; i < 16; i++) {
		fill(a, MiB);
		wr(v, &in, (uint64_t)order[i] * MiB, a, MiB);
	}
	/* Again, while another file starts growing half-way: it may take a
	 * hole left for a piece still to come (no reservations), no more. */
	new_inode(&in2, INO + 1);
	new_inode(&other, INO + 2);
	for (unsigned i = 0; i < 16; i++) {
		fill(a, MiB);
		wr(v, &in2, (uint64_t)order[i] * MiB, a, MiB);
		if (i == 7)
			wr(v, &other, 0, a, MiB);
	}
	n1 = count_extents(v, INO);
	n2 = count_extents(v, INO + 1);
	print_message("16 MiB written out of order: %zu extent(s); with "
		      "another file growing meanwhile: %zu\n", n1, n2);
	assert_int_equal(n1, 1);
	assert_true(n2 <= 4);
	check_inode_blocks(v, &in);
	check_inode_blocks(v, &in2);
	check_accounting(v);
	free(a);
}

/*
 * Two streams of one file far apart, as the kernel writes a large file
 * back from two CPUs at once (seen: pieces 260 MiB apart), and a file whose
 * first piece to arrive is not its first: each stream's blocks go where the
 * file, contiguous, would have them, so the two streams do not take turns
 * in the same place (a 1 GiB file became 478 interleaved runs).
 */
static void test_far_streams(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 2048 * MiB);
	const uint64_t far = 600 * MiB;
	struct mfs_inode in, late;
	struct xt x[8];
	uint8_t *a = malloc(MiB);
	size_t n;

	/* Pieces 1..3 before piece 0: the file is still one run. */
	new_inode(&late, INO + 1);
	for (unsigned i = 0; i < 4; i++) {
		fill(a, MiB);
		wr(v, &late, (uint64_t)((i + 1) % 4) * MiB, a, MiB);
	}
	n = count_extents(v, INO + 1);
	print_message("piece 0 last: %zu extent(s)\n", n);
	assert_int_equal(n, 1);

	new_inode(&in, INO);
	fill(a, MiB);
	wr(v, &in, 0, a, MiB);
	for (unsigned i = 1; i < 8; i++) {
		fill(a, MiB);
		wr(v, &in, far + (uint64_t)i * MiB, a, MiB);
		fill(a, MiB);
		wr(v, &in, (uint64_t)i * MiB, a, MiB);
	}
	n = extents(v, INO, x, 8);
	print_message("two streams 600 MiB apart: %zu extent(s)\n", n);
	assert_int_equal(n, 2);
	/* The far stream sits where the contiguous file would have it. */
	assert_int_equal(x[1].block - x[0].block, (far + MiB) / MFS_BLOCK_SIZE);

	check_inode_blocks(v, &in);
	check_inode_blocks(v, &late);
	check_accounting(v);
	free(a);
}

/* Overwrites of committed data go in place: same disk blocks. */
static void test_overwrite_in_place(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	struct mfs_inode in;
	struct xt before[4], after[4];
	uint8_t a[20000], b[3000];
	uint64_t free_before;

	new_inode(&in, INO);
	fill(a, sizeof(a));
	wr(v, &in, 0, a, sizeof(a));
	assert_int_equal(mfs_txn_commit(v), 0);
	assert_int_equal(extents(v, INO, before, 4), 1);
	free_before = mfs_alloc_free_blocks(v->alloc);
	fill(b, sizeof(b));
	wr(v, &in, 5000, b, sizeof(b));
	memcpy(a + 5000, b, sizeof(b));
	assert_int_equal(extents(v, INO, after, 4), 1);
	assert_memory_equal(before, after, sizeof(before[0]));
	assert_int_equal(mfs_alloc_free_blocks(v->alloc), free_before);
	expect_bytes(v, &in, 0, a, sizeof(a));
	/* Merged writes: extending right after the last block continues
	 * the same extent. */
	wr(v, &in, sizeof(a), b, sizeof(b));
	assert_int_equal(extents(v, INO, after, 4), 1);
	assert_int_equal(after[0].block, before[0].block);
	assert_int_equal(after[0].count, (sizeof(a) + sizeof(b) + BS - 1) / BS);
}

/* A block that held another file's bytes is zeroed around a partial write
 * (and around a partial write into a preallocated block). */
static void test_stale_block_zeroed(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	struct mfs_inode a, b, c;
	uint8_t junk[BS], data[10], *blk;
	struct xt x[2], y[2];
	uint8_t buf[BS];

	new_inode(&a, INO);
	new_inode(&b, INO + 1);
	new_inode(&c, INO + 2);
	memset(junk, 0xAA, sizeof(junk));
	wr(v, &a, 0, junk, sizeof(junk));
	wr(v, &a, BS, junk, sizeof(junk));
	assert_int_equal(extents(v, INO, x, 2), 1);
	assert_int_equal(mfs_file_truncate(v, &a, 0), 0);
	assert_int_equal(a.blocks, 0);
	assert_int_equal(count_extents(v, INO), 0);
	/* Pinned until two commits have passed. */
	assert_int_equal(mfs_txn_commit(v), 0);
	assert_int_equal(mfs_txn_commit(v), 0);
	assert_int_equal(mfs_txn_commit(v), 0);
	blk = mfs_image_block(v->img, x[0].block);
	assert_int_equal(blk[0], 0xAA);

	memset(data, 0x55, sizeof(data));
	wr(v, &b, 100, data, sizeof(data));
	assert_int_equal(extents(v, INO + 1, y, 2), 1);
	assert_int_equal(y[0].block, x[0].block);  /* the stale block reused */
	assert_int_equal(rd(v, &b, 0, 200, buf), 110);
	assert_true(all_zero(buf, 100));
	assert_memory_equal(buf + 100, data, 10);
	/* Past the end of file too, on disk (invariant for later growth). */
	assert_true(all_zero(blk, 100));
	assert_true(all_zero(blk + 110, BS - 110));
	assert_int_equal(mfs_file_truncate(v, &b, BS), 0);
	assert_int_equal(rd(v, &b, 0, BS, buf), BS);
	assert_true(all_zero(buf + 110, BS - 110));

	/* Preallocated stale block, then a partial write into it. */
	assert_int_equal(mfs_file_fallocate(v, &c, 0, 0, BS), 0);
	assert_int_equal(extents(v, INO + 2, y, 2), 1);
	assert_int_equal(y[0].block, x[0].block + 1);
	assert_int_equal(y[0].flags, MFS_EXTENT_UNWRITTEN);
	blk = mfs_image_block(v->img, y[0].block);
	assert_int_equal(blk[0], 0xAA);
	expect_zeros(v, &c, 0, BS);
	wr(v, &c, 2000, data, sizeof(data));
	assert_int_equal(extents(v, INO + 2, y, 2), 1);
	assert_int_equal(y[0].flags, 0);
	assert_int_equal(rd(v, &c, 0, BS, buf), BS);
	assert_true(all_zero(buf, 2000));
	assert_memory_equal(buf + 2000, data, 10);
	assert_true(all_zero(buf + 2010, BS - 2010));
	check_accounting(v);
}

/* ---- truncate ---- */

static void test_truncate(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	struct mfs_inode in;
	uint8_t *a = malloc(MiB), *b = malloc(MiB);
	uint64_t avail0 = mfs_alloc_avail_blocks(v->alloc);

	new_inode(&in, INO);
	fill(a, MiB);
	wr(v, &in, 0, a, MiB);
	assert_int_equal(mfs_txn_commit(v), 0);
	/* Down to mid-block, then up again: the cut bytes read as zeros. */
	assert_int_equal(mfs_file_truncate(v, &in, 10000), 0);
	assert_int_equal(in.size, 10000);
	assert_int_equal(in.blocks, 3 * 8);
	check_inode_blocks(v, &in);
	assert_int_equal(mfs_file_truncate(v, &in, 300000), 0);
	assert_int_equal(in.size, 300000);
	assert_int_equal(in.blocks, 3 * 8);
	assert_int_equal(rd(v, &in, 0, 300000, b), 300000);
	assert_memory_equal(b, a, 10000);
	assert_true(all_zero(b + 10000, 300000 - 10000));
	/* Truncate to the same size and to a block boundary. */
	assert_int_equal(mfs_file_truncate(v, &in, 300000), 0);
	assert_int_equal(mfs_file_truncate(v, &in, 8192), 0);
	assert_int_equal(in.blocks, 2 * 8);
	expect_bytes(v, &in, 0, a, 8192);
	/* Growing the file by writing past a truncated partial block. */
	assert_int_equal(mfs_file_truncate(v, &in, 5000), 0);
	wr(v, &in, 7000, a, 10);
	assert_int_equal(rd(v, &in, 0, 7010, b), 7010);
	assert_memory_equal(b, a, 5000);
	assert_true(all_zero(b + 5000, 2000));
	/* To zero: every block goes, reusable after two commits. */
	assert_int_equal(mfs_file_truncate(v, &in, 0), 0);
	assert_int_equal(in.size, 0);
	assert_int_equal(in.blocks, 0);
	assert_int_equal(count_extents(v, INO), 0);
	assert_true(mfs_alloc_avail_blocks(v->alloc) < avail0 - 200);
	assert_int_equal(mfs_txn_commit(v), 0);
	assert_int_equal(mfs_txn_commit(v), 0);
	assert_int_equal(mfs_txn_commit(v), 0);
	/* Within a few tree blocks of the start. */
	assert_true(mfs_alloc_avail_blocks(v->alloc) + 8 >= avail0);
	check_accounting(v);
	assert_int_equal(mfs_file_truncate(v, &in, MFS_FILE_SIZE_MAX), 0);
	assert_int_equal(mfs_file_truncate(v, &in, MFS_FILE_SIZE_MAX + 1), -EFBIG);
	assert_int_equal(in.blocks, 0);
	free(a);
	free(b);
}

/* Truncating keeps the tail zero on disk even when an abort brings an
 * older size back (committed data was overwritten in place). */
static void test_abort_tail(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	struct mfs_inode in, saved;
	uint8_t a[100], buf[8192];

	new_inode(&in, INO);
	fill(a, sizeof(a));
	wr(v, &in, 0, a, 100);
	assert_int_equal(mfs_txn_commit(v), 0);
	saved = in;
	wr(v, &in, 100, a, 100);            /* in place, past the old size */
	assert_int_equal(mfs_txn_abort(v), 0);
	in = saved;
	assert_int_equal(mfs_file_truncate(v, &in, 8192), 0);
	assert_int_equal(rd(v, &in, 0, 8192, buf), 8192);
	assert_memory_equal(buf, a, 100);
	assert_true(all_zero(buf + 100, 8092));
	/* The same with a write that grows the file from afar. */
	wr(v, &in, 0, a, 100);
	assert_int_equal(mfs_file_truncate(v, &in, 100), 0);
	assert_int_equal(mfs_txn_commit(v), 0);
	saved = in;
	wr(v, &in, 100, a, 100);
	v = fx_crash(fx);
	in = saved;
	wr(v, &in, 6000, a, 1);
	assert_int_equal(rd(v, &in, 0, 6001, buf), 6001);
	assert_true(all_zero(buf + 100, 5900));
}

/* ---- fallocate ---- */

static void test_fallocate_modes(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	struct mfs_inode in;
	uint8_t *a = malloc(MiB), *b = malloc(MiB);
	struct xt x[16];
	size_t n;

	new_inode(&in, INO);
	/* Mode 0: unwritten blocks, the size grows, reads zeros. */
	assert_int_equal(mfs_file_fallocate(v, &in, 0, 1000, 20000), 0);
	assert_int_equal(in.size, 21000);
	assert_int_equal(in.blocks, 6 * 8);
	assert_int_equal(extents(v, INO, x, 16), 1);
	assert_int_equal(x[0].flags, MFS_EXTENT_UNWRITTEN);
	assert_int_equal(x[0].fblk, 0);
	assert_int_equal(x[0].count, 6);
	expect_zeros(v, &in, 0, 21000);
	/* KEEP_SIZE beyond the end: blocks counted, size unchanged. */
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_KEEP_SIZE, 98304, 8192), 0);
	assert_int_equal(in.size, 21000);
	assert_int_equal(in.blocks, 8 * 8);
	check_inode_blocks(v, &in);
	assert_int_equal(rd(v, &in, 0, 200000, b), 21000);
	/* Allocating what is allocated already changes nothing. */
	assert_int_equal(mfs_file_fallocate(v, &in, 0, 0, 4096), 0);
	assert_int_equal(in.blocks, 8 * 8);
	/* A write into the unwritten middle splits the extent. */
	fill(a, 5000);
	wr(v, &in, 5000, a, 5000);
	n = extents(v, INO, x, 16);
	assert_int_equal(n, 4);   /* U [0,1) W [1,3) U [3,6) U [24,26) */
	assert_int_equal(x[0].flags, MFS_EXTENT_UNWRITTEN);
	assert_int_equal(x[1].flags, 0);
	assert_int_equal(x[1].fblk, 1);
	assert_int_equal(x[1].count, 2);
	assert_int_equal(x[2].flags, MFS_EXTENT_UNWRITTEN);
	assert_int_equal(in.blocks, 8 * 8);
	memset(b, 0, 21000);
	memcpy(b + 5000, a, 5000);
	expect_bytes(v, &in, 0, b, 21000);
	/* Writing the rest turns it all written, merged again. */
	fill(a, 21000);
	wr(v, &in, 0, a, 21000);
	n = extents(v, INO, x, 16);
	assert_int_equal(n, 2);
	assert_int_equal(x[0].flags, 0);
	assert_int_equal(x[0].count, 6);
	expect_bytes(v, &in, 0, a, 21000);
	/* A write past the end into the KEEP_SIZE blocks grows the file. */
	wr(v, &in, 100000 + 10, a, 10);
	assert_int_equal(in.size, 100020);
	expect_zeros(v, &in, 21000, 100010 - 21000);
	assert_int_equal(in.blocks, 8 * 8);

	/* PUNCH_HOLE: whole blocks freed, partial edges zeroed. */
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_PUNCH_HOLE |
					    FALLOC_FL_KEEP_SIZE, 1000, 10000), 0);
	assert_int_equal(in.size, 100020);
	assert_int_equal(in.blocks, 7 * 8);   /* block 1 of [0,6) went */
	memset(a + 1000, 0, 10000);
	expect_bytes(v, &in, 0, a, 21000);
	/* Punching inside one block frees nothing. */
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_PUNCH_HOLE |
					    FALLOC_FL_KEEP_SIZE, 12300, 10), 0);
	memset(a + 12300, 0, 10);
	expect_bytes(v, &in, 0, a, 21000);
	assert_int_equal(in.blocks, 7 * 8);
	/* Punching past the end does nothing. */
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_PUNCH_HOLE |
					    FALLOC_FL_KEEP_SIZE, 200000, 10000), 0);
	assert_int_equal(in.size, 100020);

	/* ZERO_RANGE: whole blocks unwritten, edges zeroed, holes
	 * preallocated, the size grows. */
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_ZERO_RANGE, 2000, 15000), 0);
	memset(a + 2000, 0, 15000);
	expect_bytes(v, &in, 0, a, 21000);
	n = extents(v, INO, x, 16);
	{
		uint64_t un = 0;

		for (size_t i = 0; i < n; i++)
			if (x[i].flags & MFS_EXTENT_UNWRITTEN)
				un += x[i].count;
		/* 1 (hole, refilled), 2, 3 (whole blocks), 25 (KEEP_SIZE) */
		assert_int_equal(un, 4);
	}
	assert_int_equal(in.blocks, 8 * 8);
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_ZERO_RANGE, 100000, 10000), 0);
	assert_int_equal(in.size, 110000);
	expect_zeros(v, &in, 100000, 10000);
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_ZERO_RANGE |
					    FALLOC_FL_KEEP_SIZE, 110000, 100000), 0);
	assert_int_equal(in.size, 110000);
	check_inode_blocks(v, &in);

	/* Errors, as Linux gives them. */
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_PUNCH_HOLE, 0, 10), -EOPNOTSUPP);
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_COLLAPSE_RANGE, 0, 4096), -EOPNOTSUPP);
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_INSERT_RANGE, 0, 4096), -EOPNOTSUPP);
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_NO_HIDE_STALE, 0, 4096), -EOPNOTSUPP);
	assert_int_equal(mfs_file_fallocate(v, &in, 0x40 /* UNSHARE */, 0, 4096), -EOPNOTSUPP);
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_PUNCH_HOLE |
					    FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					    0, 4096), -EOPNOTSUPP);
	assert_int_equal(mfs_file_fallocate(v, &in, 0, 0, 0), -EINVAL);
	assert_int_equal(mfs_file_fallocate(v, &in, 0, UINT64_MAX - 10, 100), -EINVAL);
	assert_int_equal(mfs_file_fallocate(v, &in, 0, MFS_FILE_SIZE_MAX - 10, 100), -EFBIG);
	assert_int_equal(in.size, 110000);
	check_inode_blocks(v, &in);
	check_accounting(v);
	v = fx_reopen(fx);
	expect_bytes(v, &in, 0, a, 21000);
	check_accounting(v);
	free(a);
	free(b);
}

/* ---- seek ---- */

static void test_seek(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	struct mfs_inode in;
	uint8_t a[BS];
	uint64_t r;

	new_inode(&in, INO);
	fill(a, sizeof(a));
	/* data [8K,12K) unwritten [12K,20K) hole data [40K,41K+100) size 100K */
	wr(v, &in, 8192, a, 4096);
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_KEEP_SIZE, 12288, 8192), 0);
	wr(v, &in, 40960, a, 1124);
	assert_int_equal(mfs_file_truncate(v, &in, 100000), 0);

	assert_int_equal(mfs_file_seek(v, &in, 0, SEEK_DATA, &r), 0);
	assert_int_equal(r, 8192);
	assert_int_equal(mfs_file_seek(v, &in, 9000, SEEK_DATA, &r), 0);
	assert_int_equal(r, 9000);
	assert_int_equal(mfs_file_seek(v, &in, 12288, SEEK_DATA, &r), 0);
	assert_int_equal(r, 40960);     /* unwritten is a hole */
	assert_int_equal(mfs_file_seek(v, &in, 42000, SEEK_DATA, &r), 0);
	assert_int_equal(r, 42000);     /* still in the written block */
	assert_int_equal(mfs_file_seek(v, &in, 45056, SEEK_DATA, &r), -ENXIO);
	assert_int_equal(mfs_file_seek(v, &in, 0, SEEK_HOLE, &r), 0);
	assert_int_equal(r, 0);
	assert_int_equal(mfs_file_seek(v, &in, 8192, SEEK_HOLE, &r), 0);
	assert_int_equal(r, 12288);
	assert_int_equal(mfs_file_seek(v, &in, 13000, SEEK_HOLE, &r), 0);
	assert_int_equal(r, 13000);
	assert_int_equal(mfs_file_seek(v, &in, 41000, SEEK_HOLE, &r), 0);
	assert_int_equal(r, 45056);
	assert_int_equal(mfs_file_seek(v, &in, 99999, SEEK_HOLE, &r), 0);
	assert_int_equal(r, 99999);
	assert_int_equal(mfs_file_seek(v, &in, 100000, SEEK_HOLE, &r), -ENXIO);
	assert_int_equal(mfs_file_seek(v, &in, 100000, SEEK_DATA, &r), -ENXIO);
	assert_int_equal(mfs_file_seek(v, &in, 0, SEEK_SET, &r), -EINVAL);
	/* A file that is all data: the hole is the end of file. */
	assert_int_equal(mfs_file_truncate(v, &in, 0), 0);
	wr(v, &in, 0, a, 3000);
	assert_int_equal(mfs_file_seek(v, &in, 10, SEEK_HOLE, &r), 0);
	assert_int_equal(r, 3000);
	assert_int_equal(mfs_file_seek(v, &in, 10, SEEK_DATA, &r), 0);
	assert_int_equal(r, 10);
	/* KEEP_SIZE blocks past the end do not count. */
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_KEEP_SIZE, 4096, 4096), 0);
	assert_int_equal(mfs_file_seek(v, &in, 10, SEEK_HOLE, &r), 0);
	assert_int_equal(r, 3000);
	/* Empty file. */
	assert_int_equal(mfs_file_truncate(v, &in, 0), 0);
	assert_int_equal(mfs_file_seek(v, &in, 0, SEEK_DATA, &r), -ENXIO);
	assert_int_equal(mfs_file_seek(v, &in, 0, SEEK_HOLE, &r), -ENXIO);
}

/* ---- copy ---- */

static void test_copy(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	struct mfs_inode s, d;
	uint8_t *a = malloc(MiB), *b = malloc(MiB), *exp = calloc(1, 2 * MiB);
	size_t n;
	uint64_t r;

	new_inode(&s, INO);
	new_inode(&d, INO + 1);
	fill(a, MiB);
	/* src: data [0, 100000), hole, data [300000, 400001) */
	wr(v, &s, 0, a, 100000);
	wr(v, &s, 300000, a + 300000, 100001);
	memcpy(exp, a, 100000);
	memcpy(exp + 300000, a + 300000, 100001);

	/* Between files, unaligned both ends. */
	assert_int_equal(mfs_file_copy(v, &s, 10, &d, 5, 500000, &n), 0);
	assert_int_equal(n, 400001 - 10);      /* clipped to the source */
	assert_int_equal(d.size, 5 + n);
	expect_bytes(v, &d, 0, (uint8_t[5]){ 0 }, 5);
	expect_bytes(v, &d, 5, exp + 10, n);
	check_inode_blocks(v, &d);
	/* The hole stayed (mostly) a hole. */
	assert_true(d.blocks < s.blocks + 3 * 8);
	assert_int_equal(mfs_file_seek(v, &d, 200000, SEEK_DATA, &r), 0);
	assert_true(r >= 290000 && r <= 300000);
	/* Over existing data: the copied hole must clear it. */
	memset(b, 0x77, MiB);
	wr(v, &d, 0, b, 600000);
	assert_int_equal(mfs_file_copy(v, &s, 0, &d, 0, 400001, &n), 0);
	assert_int_equal(n, 400001);
	assert_int_equal(d.size, 600000);
	expect_bytes(v, &d, 0, exp, 400001);
	assert_int_equal(rd(v, &d, 400001, 200000, b), 199999);
	for (size_t i = 0; i < 199999; i++)
		assert_int_equal(b[i], 0x77);
	/* Within one file, not overlapping, after its end. */
	assert_int_equal(mfs_file_copy(v, &s, 0, &s, 500000, 400001, &n), 0);
	assert_int_equal(n, 400001);
	assert_int_equal(s.size, 900001);
	memcpy(exp + 500000, exp, 400001);
	expect_bytes(v, &s, 0, exp, 900001);
	/* Overlapping within one file. */
	assert_int_equal(mfs_file_copy(v, &s, 0, &s, 1000, 5000, &n), -EINVAL);
	assert_int_equal(mfs_file_copy(v, &s, 1000, &s, 0, 5000, &n), -EINVAL);
	/* Past the source end: nothing. */
	assert_int_equal(mfs_file_copy(v, &s, 900001, &d, 0, 10, &n), 0);
	assert_int_equal(n, 0);
	/* Adjacent ranges sharing a block (src [0,6000) -> dst [6000,12000)). */
	assert_int_equal(mfs_file_truncate(v, &s, 6000), 0);
	assert_int_equal(mfs_file_copy(v, &s, 0, &s, 6000, 6000, &n), 0);
	assert_int_equal(n, 6000);
	memcpy(exp + 6000, exp, 6000);
	expect_bytes(v, &s, 0, exp, 12000);
	check_inode_blocks(v, &s);
	check_accounting(v);
	free(a);
	free(b);
	free(exp);
}

/* ---- sparse, limits, errors ---- */

static void test_sparse_4tib(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	struct mfs_inode in;
	enum { N = 300 };
	static uint64_t off[N];
	static size_t len[N];
	static uint64_t seed[N];
	uint8_t *a = malloc(20000), *b = malloc(20000);
	uint64_t r, blocks = 0;

	new_inode(&in, INO);
	/* Distinct 4 GiB slots (1024 of them), one write in each chosen. */
	for (unsigned i = 0; i < N; i++) {
		uint64_t slot;
		bool dup;

		do {
			slot = rnd_below(1024);
			dup = false;
			for (unsigned j = 0; j < i; j++)
				dup |= off[j] / (4 * GiB) == slot;
		} while (dup);
		len[i] = 1 + rnd_below(20000);
		off[i] = slot * 4 * GiB + rnd_below(4 * GiB - 20000);
		seed[i] = rnd();
		rng_state = seed[i];
		fill(a, len[i]);
		wr(v, &in, off[i], a, len[i]);
		blocks += (off[i] + len[i] + BS - 1) / BS - off[i] / BS;
	}
	assert_int_equal(in.blocks, blocks * 8);
	check_inode_blocks(v, &in);
	for (int pass = 0; pass < 2; pass++) {
		uint64_t first = UINT64_MAX;

		for (unsigned i = 0; i < N; i++) {
			rng_state = seed[i];
			fill(a, len[i]);
			expect_bytes(v, &in, off[i], a, len[i]);
			/* Just before and after: zeros (holes). */
			if (off[i] % BS >= 10) {
				assert_int_equal(rd(v, &in, off[i] - 10, 10, b), 10);
				assert_true(all_zero(b, 10));
			}
			if (off[i] + len[i] + 2 * BS + 100 <= in.size)
				expect_zeros(v, &in, off[i] + len[i] + 2 * BS, 100);
			assert_int_equal(mfs_file_seek(v, &in, off[i], SEEK_HOLE, &r), 0);
			assert_int_equal(r, (off[i] + len[i] + BS - 1) / BS * BS < in.size ?
					 (off[i] + len[i] + BS - 1) / BS * BS : in.size);
			if (off[i] < first)
				first = off[i];
		}
		assert_int_equal(mfs_file_seek(v, &in, 0, SEEK_DATA, &r), 0);
		assert_int_equal(r, first / BS * BS);
		check_accounting(v);
		v = fx_reopen(fx);
	}
	/* Cut it to 2 TiB: what was above is freed. */
	assert_int_equal(mfs_file_truncate(v, &in, 2 * TiB), 0);
	blocks = 0;
	for (unsigned i = 0; i < N; i++)
		if (off[i] < 2 * TiB)
			blocks += (off[i] + len[i] + BS - 1) / BS - off[i] / BS;
	assert_int_equal(in.blocks, blocks * 8);
	check_inode_blocks(v, &in);
	assert_int_equal(mfs_file_free_all(v, &in), 0);
	assert_int_equal(in.blocks, 0);
	assert_int_equal(count_extents(v, INO), 0);
	check_accounting(v);
	free(a);
	free(b);
}

static void test_efbig(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	struct mfs_inode in;
	uint8_t a[100];
	size_t n = 7;

	new_inode(&in, INO);
	fill(a, sizeof(a));
	assert_int_equal(mfs_file_write(v, &in, MFS_FILE_SIZE_MAX - 10, a, 100, &n), 0);
	assert_int_equal(n, 10);
	assert_int_equal(in.size, MFS_FILE_SIZE_MAX);
	expect_bytes(v, &in, MFS_FILE_SIZE_MAX - 10, a, 10);
	assert_int_equal(mfs_file_write(v, &in, MFS_FILE_SIZE_MAX, a, 100, &n), -EFBIG);
	assert_int_equal(n, 0);
	assert_int_equal(mfs_file_write(v, &in, UINT64_MAX - 5, a, 100, &n), -EFBIG);
	assert_int_equal(mfs_file_fallocate(v, &in, FALLOC_FL_KEEP_SIZE,
					    MFS_FILE_SIZE_MAX - BS, BS), 0);
	check_inode_blocks(v, &in);
	assert_int_equal(mfs_file_free_all(v, &in), 0);
	assert_int_equal(in.blocks, 0);
	check_accounting(v);
}

/* Filling the image: a short write, then -ENOSPC; the volume stays
 * consistent and commits. */
static void test_enospc(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 16 * MiB);
	struct mfs_inode in, in2, in3;
	uint8_t *a = malloc(MiB), *b = malloc(MiB);
	uint64_t off = 0, avail0 = mfs_alloc_avail_blocks(v->alloc);
	size_t n;
	int rc;

	new_inode(&in, INO);
	new_inode(&in2, INO + 1);
	new_inode(&in3, INO + 2);
	memset(a, 0x3c, MiB);
	/* Preallocated before the volume fills up. */
	assert_int_equal(mfs_file_fallocate(v, &in3, 0, 0, MiB), 0);
	for (;;) {
		rc = mfs_file_write(v, &in, off, a, MiB, &n);
		off += n;
		if (rc || n < MiB)
			break;
	}
	assert_int_equal(rc, 0);       /* the short write */
	assert_true(n < MiB);
	assert_int_equal(mfs_file_write(v, &in, off, a, MiB, &n), -ENOSPC);
	assert_int_equal(n, 0);
	assert_int_equal(in.size, off);
	assert_int_equal(mfs_file_fallocate(v, &in2, 0, 0, MiB), -ENOSPC);
	check_inode_blocks(v, &in2);
	/* Overwrites need no space; writes into preallocated blocks take
	 * tree blocks only from the reserve. */
	assert_true(mfs_alloc_avail_blocks(v->alloc) <= mfs_file_reserved(v));
	wr(v, &in, 0, a, MiB);
	for (unsigned i = 0; i < 128; i++)
		wr(v, &in3, i * 2 * BS + 100, a, 100);
	assert_int_equal(in3.blocks, MiB / 512);
	assert_int_equal(count_extents(v, INO + 2), 256);
	expect_bytes(v, &in3, 2 * BS + 100, a, 100);
	expect_zeros(v, &in3, 200, 2 * BS - 100);
	check_accounting(v);
	assert_int_equal(mfs_txn_commit(v), 0);
	check_accounting(v);
	assert_int_equal(rd(v, &in, off - MiB, MiB, b), MiB);
	assert_memory_equal(a, b, MiB);
	/* Free it all: the space is back after two commits. */
	assert_int_equal(mfs_file_free_all(v, &in), 0);
	assert_int_equal(mfs_file_free_all(v, &in3), 0);
	assert_int_equal(in.blocks, 0);
	assert_int_equal(in3.blocks, 0);
	assert_int_equal(count_extents(v, INO + 2), 0);
	assert_int_equal(mfs_txn_commit(v), 0);
	assert_int_equal(mfs_txn_commit(v), 0);
	assert_int_equal(mfs_txn_commit(v), 0);
	assert_true(mfs_alloc_avail_blocks(v->alloc) + 8 >= avail0);
	check_accounting(v);
	free(a);
	free(b);
}

/* Random changes to several files on a volume kept full: every operation
 * either works or says -ENOSPC, never fails half-way (sticky error), and
 * every commit succeeds; the accounting stays exact. */
static void full_volume(struct fx *fx, uint64_t size, unsigned ops)
{
	struct mfs_vol *v = fx_format(fx, size);
	enum { NF = 8 };
	struct mfs_inode in[NF];
	uint8_t *a = malloc(512 * KiB);
	unsigned long nospc = 0;

	fill(a, 512 * KiB);
	for (unsigned i = 0; i < NF; i++)
		new_inode(&in[i], INO + i);
	for (unsigned op = 0; op < ops; op++) {
		struct mfs_inode *f = &in[rnd_below(NF)];
		uint64_t len = 1 + rnd_below(rnd_below(4) ? 3 * BS : 512 * KiB);
		uint64_t off = rnd_below(2 * MiB);
		size_t n;
		int rc;

		switch (rnd_below(10)) {
		case 0: case 1: case 2: case 3: case 4:
			rc = mfs_file_write(v, f, off, a, len, &n);
			break;
		case 5:
			rc = mfs_file_truncate(v, f, rnd_below(f->size + 1));
			break;
		case 6:
			rc = mfs_file_fallocate(v, f, FALLOC_FL_PUNCH_HOLE |
						FALLOC_FL_KEEP_SIZE, off, len);
			break;
		case 7:
			rc = mfs_file_fallocate(v, f, FALLOC_FL_ZERO_RANGE, off, len);
			break;
		default:
			rc = mfs_file_fallocate(v, f, FALLOC_FL_KEEP_SIZE, off, len);
			break;
		}
		if (rc == -ENOSPC)
			nospc++;
		else
			assert_int_equal(rc, 0);
		assert_int_equal(v->error, 0);
		if (op % 16 == 15) {
			assert_int_equal(mfs_txn_commit(v), 0);
			check_accounting(v);
			for (unsigned i = 0; i < NF; i++)
				check_inode_blocks(v, &in[i]);
		}
	}
	print_message("full volume of %llu KiB: %lu of %u operations "
		      "got ENOSPC\n", (unsigned long long)(size / KiB), nospc, ops);
	assert_true(nospc > ops / 10);
	for (unsigned i = 0; i < NF; i++)
		assert_int_equal(mfs_file_free_all(v, &in[i]), 0);
	assert_int_equal(mfs_txn_commit(v), 0);
	check_accounting(v);
	assert_int_equal(mfs_vol_close(v), 0);
	fx->v = NULL;
	remove(fx->path);
	free(a);
}

static void test_full_volume(void **state)
{
	full_volume(*state, 256 * KiB, 2000);
	full_volume(*state, 512 * KiB, 3000);
	full_volume(*state, 4 * MiB, 6000);
}

static void put_extent(struct mfs_vol *v, uint64_t fblk, uint64_t block,
		       uint64_t count, uint32_t flags, size_t len)
{
	uint8_t val[32] = { 0 };
	struct mfs_key k = mfs_key_make(INO, MFS_ITEM_EXTENT, fblk);

	mfs_put_le64(val, block);
	mfs_put_le64(val + 8, count);
	mfs_put_le32(val + 16, flags);
	assert_int_equal(mfs_btree_put(v, MFS_TREE_FS, &k, val, len), 0);
}

static void silent(int level, const char *msg)
{
	(void)level;
	(void)msg;
}

/* Damaged extent items: -EUCLEAN from every entry point, no crash. */
static void test_corrupt_extent(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	uint64_t total = mfs_alloc_block_count(v->alloc);
	static const struct { uint64_t fblk, block, count; uint32_t flags; size_t len; } bad[] = {
		{ 0, 10000, 0, 0, 24 },                       /* empty */
		{ 0, 0, 5, 0, 24 },                           /* superblocks */
		{ 0, 1, 5, 0, 24 },
		{ 0, 16380, 10, 0, 24 },                      /* past the end */
		{ 0, UINT64_MAX - 2, 5, 0, 24 },              /* wraps */
		{ 0, 0x7fffffffffffffffULL, 2, 0, 24 },
		{ 0, 5000, 5, 4, 24 },                        /* unknown flag */
		{ 0, 5000, 5, 0, 16 },                        /* short item */
		{ 0, 5000, 5, 0, 32 },                        /* long item */
		{ (1ULL << 38) - 2, 5000, 5, 0, 24 },         /* past 1 PiB */
		{ 1ULL << 40, 5000, 5, 0, 24 },
	};
	struct mfs_inode in;
	struct iovec iov[16];
	unsigned cnt;
	size_t bytes, n;
	uint64_t r;
	uint8_t a[10] = { 1 };

	assert_int_equal(total, 16384);
	mfs_log_set_sink(silent);
	new_inode(&in, INO);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t at = bad[i].fblk * BS;

		in.size = at < MFS_FILE_SIZE_MAX ? at + 20000 : MFS_FILE_SIZE_MAX;
		if (at >= MFS_FILE_SIZE_MAX)
			at = MFS_FILE_SIZE_MAX - 4096;
		put_extent(v, bad[i].fblk, bad[i].block, bad[i].count,
			   bad[i].flags, bad[i].len);
		assert_int_equal(mfs_file_read(v, &in, at, 4096, iov, 8, &cnt, &bytes),
				 bad[i].fblk >= (1ULL << 38) ? 0 : -EUCLEAN);
		if (bad[i].fblk < (1ULL << 38)) {
			assert_int_equal(v->error, -EUCLEAN);
			assert_int_equal(mfs_file_seek(v, &in, at, SEEK_DATA, &r), -EUCLEAN);
			v->error = 0;
			assert_int_equal(mfs_file_write(v, &in, at + 1, a, 10, &n), -EUCLEAN);
			v->error = 0;
			assert_int_equal(mfs_file_truncate(v, &in, 0), -EUCLEAN);
			v->error = 0;
		}
		assert_int_equal(mfs_file_free_all(v, &in), -EUCLEAN);
		assert_int_equal(mfs_txn_abort(v), 0);
	}
	/* Two extents mapping the same file block. */
	in.size = 20 * BS;
	put_extent(v, 0, 5000, 3, 0, 24);
	put_extent(v, 2, 6000, 4, 0, 24);
	assert_int_equal(mfs_file_read(v, &in, 0, 8 * 4096, iov, 16, &cnt, &bytes), -EUCLEAN);
	assert_int_equal(mfs_txn_abort(v), 0);
	/* Two extents claiming one disk block: freeing finds it. */
	put_extent(v, 0, 5000, 10, 0, 24);
	put_extent(v, 20, 5005, 10, 0, 24);
	in.size = 30 * BS;
	assert_int_equal(mfs_file_truncate(v, &in, 0), -EUCLEAN);
	assert_int_equal(mfs_txn_abort(v), 0);
	mfs_log_set_sink(NULL);
}

static void test_readonly(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = fx_format(fx, 64 * MiB);
	struct mfs_inode in;
	uint8_t a[100];
	size_t n;

	new_inode(&in, INO);
	fill(a, sizeof(a));
	wr(v, &in, 0, a, sizeof(a));
	assert_int_equal(mfs_vol_close(v), 0);
	assert_int_equal(mfs_vol_open(fx->path, MFS_VOL_RDONLY, &fx->v), 0);
	v = fx->v;
	expect_bytes(v, &in, 0, a, sizeof(a));
	assert_int_equal(mfs_file_write(v, &in, 0, a, 10, &n), -EROFS);
	assert_int_equal(mfs_file_truncate(v, &in, 0), -EROFS);
	assert_int_equal(mfs_file_fallocate(v, &in, 0, 0, 10), -EROFS);
	assert_int_equal(mfs_file_free_all(v, &in), -EROFS);
	expect_bytes(v, &in, 0, a, sizeof(a));
}

/* ---- the random model test ---- */

#define MAXF (4u * (unsigned)MiB)
#define MBLK (MAXF / BS)
enum { H = 0, U = 1, W = 2 };

struct model {
	uint8_t *cur;     /* what reads return; zero past size */
	uint8_t *disk;    /* content of the committed disk block of each
			   * committed written file block */
	uint8_t st[MBLK];  /* hole, unwritten, written: running state */
	uint8_t cst[MBLK]; /* committed state */
	bool live[MBLK];   /* still mapped to its committed written block */
	uint64_t phys[MBLK]; /* committed disk block of live blocks */
	uint64_t size;
	struct mfs_inode in, cin;
};

static uint64_t up(uint64_t x)
{
	return (x + BS - 1) / BS * BS;
}

/* A byte of the block mapped at b changes on disk. */
static void m_phys(struct model *m, uint64_t b, uint8_t val)
{
	if (m->live[b / BS])
		m->disk[b] = val;
}

static void m_zero_written(struct model *m, uint64_t from, uint64_t to)
{
	for (uint64_t b = from; b < to; b++)
		if (m->st[b / BS] == W) {
			m->cur[b] = 0;
			m_phys(m, b, 0);
		}
}

static void m_zero_tail(struct model *m)
{
	m_zero_written(m, m->size, up(m->size));
}

static void m_zero_edges(struct model *m, uint64_t off, uint64_t end)
{
	uint64_t a = up(off), b = end / BS * BS;

	if (a > b) {
		m_zero_written(m, off, end);
		return;
	}
	m_zero_written(m, off, a);
	m_zero_written(m, b, end);
}

static void m_write(struct model *m, uint64_t off, const uint8_t *data,
		    uint64_t len)
{
	uint64_t end = off + len;

	if (end > m->size)
		m_zero_tail(m);
	for (uint64_t blk = off / BS; blk < (end + BS - 1) / BS; blk++) {
		uint64_t s = blk * BS, lo = off > s ? off : s;
		uint64_t hi = end < s + BS ? end : s + BS;

		for (uint64_t b = s; b < s + BS; b++) {
			bool in = b >= lo && b < hi;

			if (in)
				m->cur[b] = data[b - off];
			if (in || m->st[blk] == U)
				m_phys(m, b, in ? data[b - off] : 0);
		}
		m->st[blk] = W;
	}
	if (end > m->size)
		m->size = end;
}

/* Whole blocks [a, b) leave the file. */
static void m_unmap(struct model *m, uint64_t a, uint64_t b)
{
	for (uint64_t blk = a; blk < b && blk < MBLK; blk++) {
		m->st[blk] = H;
		m->live[blk] = false;
	}
}

static void m_truncate(struct model *m, uint64_t ns)
{
	if (ns > m->size) {
		m_zero_tail(m);
		m->size = ns;
		return;
	}
	m_unmap(m, (ns + BS - 1) / BS, MBLK);
	m_zero_written(m, ns, up(ns));
	memset(m->cur + ns, 0, m->size - ns);
	m->size = ns;
}

/* Punch without the end-of-file clip (copy's holes use it too). */
static void m_punch_raw(struct model *m, uint64_t off, uint64_t end)
{
	m_zero_edges(m, off, end);
	m_unmap(m, up(off) / BS, end / BS);
	memset(m->cur + off, 0, end - off);
}

static void m_punch(struct model *m, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;

	if (off >= m->size)
		return;
	if (end > up(m->size))
		end = up(m->size);
	m_punch_raw(m, off, end);
}

static void m_prealloc(struct model *m, uint64_t off, uint64_t end)
{
	for (uint64_t blk = off / BS; blk < (end + BS - 1) / BS; blk++)
		if (m->st[blk] == H)
			m->st[blk] = U;
}

static void m_fallocate(struct model *m, uint64_t off, uint64_t len, bool keep,
			bool zero)
{
	uint64_t end = off + len;

	if (!keep && end > m->size)
		m_zero_tail(m);
	if (zero) {
		m_zero_edges(m, off, end);
		for (uint64_t blk = up(off) / BS; blk < end / BS; blk++)
			if (m->st[blk] == W)
				m->st[blk] = U;
		memset(m->cur + off, 0, len);
	}
	m_prealloc(m, off, end);
	if (!keep && end > m->size)
		m->size = end;
}

/* Same order and run boundaries as mfs_file_copy. */
static uint64_t m_copy(struct model *m, uint64_t soff, uint64_t doff,
		       uint64_t len)
{
	uint64_t pos = soff, end;

	if (soff >= m->size || len == 0)
		return 0;
	if (len > m->size - soff)
		len = m->size - soff;
	end = soff + len;
	if (doff + len > m->size)
		m_zero_tail(m);
	while (pos < end) {
		uint64_t blk = pos / BS, stop;

		if (m->st[blk] == W) {
			stop = (blk + 1) * BS < end ? (blk + 1) * BS : end;
			m_write(m, doff + pos - soff, m->cur + pos, stop - pos);
		} else {
			uint64_t q = blk + 1;

			while (q * BS < end && m->st[q] != W)
				q++;
			stop = q * BS < end ? q * BS : end;
			m_punch_raw(m, doff + pos - soff, doff + stop - soff);
		}
		pos = stop;
	}
	if (doff + len > m->size)
		m->size = doff + len;
	return len;
}

/* Commit: the running state becomes the committed one. */
static void m_commit(struct model *m, struct mfs_vol *v)
{
	struct xt *x = calloc(MBLK + 1, sizeof(*x));
	size_t n = extents(v, INO, x, MBLK + 1);

	for (uint64_t blk = 0; blk < MBLK; blk++) {
		if (m->st[blk] == W && !m->live[blk])
			memcpy(m->disk + blk * BS, m->cur + blk * BS, BS);
		m->live[blk] = m->st[blk] == W;
		m->cst[blk] = m->st[blk];
	}
	for (size_t i = 0; i < n; i++)
		for (uint64_t j = 0; j < x[i].count; j++)
			m->phys[x[i].fblk + j] = x[i].block + j;
	m->cin = m->in;
	free(x);
}

/* Abort or crash: the committed map is back, with what its written
 * blocks hold now (in-place changes stay). */
static void m_abort(struct model *m)
{
	m->in = m->cin;
	m->size = m->in.size;
	memset(m->cur, 0, MAXF);
	for (uint64_t blk = 0; blk < MBLK; blk++) {
		m->st[blk] = m->cst[blk];
		m->live[blk] = m->cst[blk] == W;
		if (m->st[blk] != W || blk * BS >= m->size)
			continue;
		for (uint64_t b = blk * BS; b < (blk + 1) * BS && b < m->size; b++)
			m->cur[b] = m->disk[b];
	}
}

static void m_check(struct model *m, struct mfs_vol *v)
{
	struct xt *x = calloc(MBLK + 1, sizeof(*x));
	size_t n = extents(v, INO, x, MBLK + 1);
	uint8_t *buf = malloc(MAXF);
	uint64_t blocks = 0;
	uint8_t st[MBLK] = { 0 };

	assert_int_equal(m->in.size, m->size);
	assert_int_equal(rd(v, &m->in, 0, MAXF, buf), m->size);
	assert_memory_equal(buf, m->cur, m->size);
	assert_true(n <= MBLK);
	for (size_t i = 0; i < n; i++) {
		assert_true(x[i].fblk + x[i].count <= MBLK);
		for (uint64_t j = 0; j < x[i].count; j++) {
			uint64_t blk = x[i].fblk + j;

			st[blk] = x[i].flags ? U : W;
			if (m->live[blk])
				assert_int_equal(m->phys[blk], x[i].block + j);
		}
		blocks += x[i].count;
	}
	assert_memory_equal(st, m->st, MBLK);
	assert_int_equal(m->in.blocks, blocks * 8);
	free(x);
	free(buf);
}

static uint64_t r_len(void)
{
	switch (rnd_below(4)) {
	case 0:
		return 1 + rnd_below(100);
	case 1:
		return BS - 3 + rnd_below(7);
	case 2:
		return 1 + rnd_below(5 * BS);
	default:
		return 1 + rnd_below(128 * KiB);
	}
}

static uint64_t r_off(const struct model *m, uint64_t len)
{
	uint64_t lim = MAXF - len, o;

	switch (rnd_below(3)) {
	case 0:
		o = m->size > 2 * BS ? m->size - rnd_below(2 * BS) : 0;
		break;
	case 1:
		o = rnd_below(BS) * BS + rnd_below(3);
		break;
	default:
		o = rnd_below(MAXF);
	}
	return o > lim ? rnd_below(lim + 1) : o;
}

static void one_op(struct model *m, struct mfs_vol *v, uint8_t *data,
		   unsigned long *counts)
{
	uint64_t len = r_len(), off = r_off(m, len), r;
	unsigned op = (unsigned)rnd_below(100);
	size_t n;
	int rc;

	if (op < 35) {
		fill(data, len);
		wr(v, &m->in, off, data, len);
		m_write(m, off, data, len);
		counts[0]++;
	} else if (op < 43) {
		uint64_t ns = rnd_below(2) ? rnd_below(MAXF) : rnd_below(m->size + 1);

		assert_int_equal(mfs_file_truncate(v, &m->in, ns), 0);
		m_truncate(m, ns);
		counts[1]++;
	} else if (op < 53) {
		assert_int_equal(mfs_file_fallocate(v, &m->in, FALLOC_FL_PUNCH_HOLE |
						    FALLOC_FL_KEEP_SIZE, off, len), 0);
		m_punch(m, off, len);
		counts[2]++;
	} else if (op < 63) {
		bool keep = rnd_below(2);

		assert_int_equal(mfs_file_fallocate(v, &m->in, FALLOC_FL_ZERO_RANGE |
						    (keep ? FALLOC_FL_KEEP_SIZE : 0),
						    off, len), 0);
		m_fallocate(m, off, len, keep, true);
		counts[3]++;
	} else if (op < 71) {
		bool keep = rnd_below(2);

		assert_int_equal(mfs_file_fallocate(v, &m->in,
						    keep ? FALLOC_FL_KEEP_SIZE : 0,
						    off, len), 0);
		m_fallocate(m, off, len, keep, false);
		counts[4]++;
	} else if (op < 85) {
		uint8_t *buf = malloc(len);

		n = rd(v, &m->in, off, len, buf);
		assert_int_equal(n, off >= m->size ? 0 :
				 (m->size - off < len ? m->size - off : len));
		assert_memory_equal(buf, m->cur + off, n);
		free(buf);
		counts[5]++;
	} else if (op < 93) {
		uint64_t soff = rnd_below(m->size + 1), doff = r_off(m, len);
		uint64_t clen = m->size > soff ? m->size - soff : 0;

		if (clen > len)
			clen = len;
		rc = mfs_file_copy(v, &m->in, soff, &m->in, doff, len, &n);
		if (clen && soff < doff + clen && doff < soff + clen) {
			assert_int_equal(rc, -EINVAL);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(n, m_copy(m, soff, doff, len));
		}
		counts[6]++;
	} else {
		int whence = rnd_below(2) ? SEEK_DATA : SEEK_HOLE;
		uint64_t exp = off;

		rc = mfs_file_seek(v, &m->in, off, whence, &r);
		if (off >= m->size) {
			assert_int_equal(rc, -ENXIO);
		} else if (whence == SEEK_DATA) {
			while (exp < m->size && m->st[exp / BS] != W)
				exp = (exp / BS + 1) * BS;
			if (exp >= m->size) {
				assert_int_equal(rc, -ENXIO);
			} else {
				assert_int_equal(rc, 0);
				assert_int_equal(r, exp);
			}
		} else {
			while (exp < m->size && m->st[exp / BS] == W)
				exp = (exp / BS + 1) * BS;
			assert_int_equal(rc, 0);
			assert_int_equal(r, exp < m->size ? exp : m->size);
		}
		counts[7]++;
	}
}

static void model_run(struct fx *fx, uint64_t seed, unsigned ops)
{
	struct model *m = calloc(1, sizeof(*m));
	uint8_t *data = malloc(MAXF);
	struct mfs_vol *v;
	unsigned long counts[8] = { 0 }, phases[4] = { 0 };
	unsigned done = 0;

	print_message("model test: seed %" PRIu64 ", %u ops "
		      "(MMAPFS_SEED=%" PRIu64 " to rerun)\n", seed, ops, seed);
	rng_state = seed ? seed : 1;
	mfs_log_set_sink(silent);   /* "not unmounted cleanly" after crashes */
	m->cur = calloc(1, MAXF);
	m->disk = calloc(1, MAXF);
	v = fx_format(fx, 128 * MiB);
	new_inode(&m->in, INO);
	m->cin = m->in;
	while (done < ops) {
		unsigned k = 1 + (unsigned)rnd_below(120), what;

		for (unsigned i = 0; i < k && done < ops; i++, done++)
			one_op(m, v, data, counts);
		m_check(m, v);
		assert_int_equal(v->error, 0);
		what = (unsigned)rnd_below(10);
		if (what < 5) {
			assert_int_equal(mfs_txn_commit(v), 0);
			m_commit(m, v);
			check_accounting(v);
			assert_int_equal(mfs_alloc_free_blocks(v->alloc), v->sb.free_blocks);
		} else if (what < 7) {
			assert_int_equal(mfs_txn_abort(v), 0);
			m_abort(m);
		} else if (what < 8) {
			v = fx_crash(fx);
			m_abort(m);
		} else if (what < 9) {
			v = fx_reopen(fx);
			m_commit(m, v);
		} else {
			check_accounting(v);   /* mid-transaction */
		}
		phases[what < 5 ? 0 : what < 8 ? 1 : what < 9 ? 2 : 3]++;
		m_check(m, v);
		check_inode_blocks(v, &m->in);
	}
	assert_int_equal(mfs_txn_commit(v), 0);
	m_commit(m, v);
	check_accounting(v);
	print_message("  write %lu truncate %lu punch %lu zero %lu fallocate %lu "
		      "read %lu copy %lu seek %lu; commits %lu, aborts/crashes "
		      "%lu, reopens %lu\n", counts[0], counts[1], counts[2],
		      counts[3], counts[4], counts[5], counts[6], counts[7],
		      phases[0], phases[1], phases[2]);
	assert_int_equal(mfs_vol_close(v), 0);
	fx->v = NULL;
	remove(fx->path);
	free(m->cur);
	free(m->disk);
	free(m);
	free(data);
}

static void test_random_model(void **state)
{
	struct fx *fx = *state;
	const char *env = getenv("MMAPFS_SEED");
	const char *nops = getenv("MMAPFS_OPS");
	unsigned ops = nops ? (unsigned)strtoul(nops, NULL, 0) : 15000;

	if (env) {
		model_run(fx, strtoull(env, NULL, 0), ops);
		return;
	}
	for (uint64_t seed = 1; seed <= 4; seed++)
		model_run(fx, seed * 0x9E3779B97F4A7C15ULL, ops);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_roundtrip),
		T(test_read_iovecs),
		T(test_sequential_extents),
		T(test_out_of_order_extents),
		T(test_far_streams),
		T(test_overwrite_in_place),
		T(test_stale_block_zeroed),
		T(test_truncate),
		T(test_abort_tail),
		T(test_fallocate_modes),
		T(test_seek),
		T(test_copy),
		T(test_sparse_4tib),
		T(test_efbig),
		T(test_enospc),
		T(test_full_volume),
		T(test_corrupt_extent),
		T(test_readonly),
		T(test_random_model),
	};

	rng_state = 0x1234567;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
