/* SPDX-License-Identifier: MIT */
/*
 * file.c — file data: the extent map of a regular file, and read, write,
 * truncate, fallocate, seek and copy on top of it.
 *
 * Layer 6. Calls btree (the file's EXTENT items in the FS tree), alloc (data
 * blocks) and image (pointers into the mapping). The contract is in file.h.
 *
 * The extent map: items (ino, EXTENT, f) -> {block, count, flags} map file
 * blocks [f, f+count) to disk blocks [block, block+count). Items never
 * overlap; a file block without one is a hole. An unwritten extent owns its
 * blocks but reads as zeros. Every item is checked (ext_decode) before any
 * of its numbers is used, so a damaged tree gives -EUCLEAN, never a pointer
 * outside the image.
 *
 * Invariants the functions below keep:
 *  1. Bytes of a written block past in->size read as zeros only because
 *     every read stops at the size: on disk they may be stale, since an
 *     abort or a crash brings an older size back while committed data
 *     changed in place stays. So whatever grows the size first zeroes the
 *     rest of the old last block (zero_tail).
 *  2. No whole written block lies past the end of the file: shrinking
 *     frees them (a truncate that fails half-way keeps the size covering
 *     what is left), and the size and the map roll back together.
 *  3. A metadata step (changes to a few neighbouring items) starts only if
 *     the allocator can cover the tree node copies and splits it may need
 *     (change_room; data allocation keeps a larger reserve), so it never
 *     fails half-way for lack of space. A step that fails half-way for
 *     another reason sets the volume's sticky error, as btree.c does: only
 *     an abort repairs the map.
 *  4. Blocks leaving a file are freed pinned to the running generation:
 *     the committed state may still use them, and nothing tells a data block
 *     allocated in this transaction apart from an older one.
 */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "btree.h"
#include "endian.h"
#include "image.h"
#include "log.h"
#include "mmapfs/mmapfs.h"

#define BS ((uint64_t)MFS_BLOCK_SIZE)
/* File blocks a file may map: [0, FILE_BLOCKS). */
#define FILE_BLOCKS (MFS_FILE_SIZE_MAX >> MFS_BLOCK_SHIFT)
/* Most blocks one allocation asks for (128 MiB). */
#define ALLOC_MAX 32768u
#define ZERO_SIZE (1u << 20)

_Static_assert(MFS_FILE_SIZE_MAX % MFS_BLOCK_SIZE == 0, "size max");

/* What holes and unwritten extents read as. */
static const uint8_t zero_buf[ZERO_SIZE];

struct ext {
	uint64_t fblk;   /* first file block (the key offset) */
	uint64_t block;  /* first disk block */
	uint64_t count;  /* blocks, >= 1 */
	uint32_t flags;  /* 0 or MFS_EXTENT_UNWRITTEN */
};

static inline uint64_t ext_end(const struct ext *e)
{
	return e->fblk + e->count;
}

static inline bool ext_written(const struct ext *e)
{
	return !(e->flags & MFS_EXTENT_UNWRITTEN);
}

static inline uint64_t blocks_up(uint64_t bytes)
{
	return (bytes + BS - 1) >> MFS_BLOCK_SHIFT;
}

static inline uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static struct mfs_key ext_key(uint64_t ino, uint64_t fblk)
{
	return mfs_key_make(ino, MFS_ITEM_EXTENT, fblk);
}

/* Pointer to file byte pos (inside e) in the mapping; e was checked. */
static uint8_t *ext_ptr(struct mfs_vol *v, const struct ext *e, uint64_t pos)
{
	return (uint8_t *)mfs_image_block(v->img, e->block) +
	       (pos - (e->fblk << MFS_BLOCK_SHIFT));
}

/* ------------------------------------------------------------------ */
/* Extent items                                                        */
/* ------------------------------------------------------------------ */

/*
 * Decode the EXTENT item (k, val, len) into *e and check it: the value's
 * length, a non-empty run of disk blocks inside the filesystem and the
 * mapping, file blocks below the largest file size, known flags.
 * Returns 0 or -EUCLEAN.
 */
static int ext_decode(struct mfs_vol *v, const struct mfs_key *k,
		      const void *val, size_t len, struct ext *e)
{
	uint64_t limit = min64(mfs_alloc_block_count(v->alloc),
			       mfs_image_blocks(v->img));

	if (len != sizeof(struct mfs_disk_extent))
		return MFS_CORRUPT(v, "inode %llu: extent item at block %llu "
				   "has %zu bytes", (unsigned long long)k->objectid,
				   (unsigned long long)k->offset, len);
	e->fblk = k->offset;
	e->block = mfs_get_le64(MFS_FIELD_PTR(val, struct mfs_disk_extent, ex_block));
	e->count = mfs_get_le64(MFS_FIELD_PTR(val, struct mfs_disk_extent, ex_count));
	e->flags = mfs_get_le32(MFS_FIELD_PTR(val, struct mfs_disk_extent, ex_flags));
	if (e->count == 0 || e->block < MFS_FIRST_DATA_BLOCK ||
	    e->block > limit || e->count > limit - e->block ||
	    e->fblk >= FILE_BLOCKS || e->count > FILE_BLOCKS - e->fblk ||
	    (e->flags & ~(uint32_t)MFS_EXTENT_UNWRITTEN))
		return MFS_CORRUPT(v, "inode %llu: bad extent: file block %llu, "
				   "disk block %llu, count %llu, flags %#x",
				   (unsigned long long)k->objectid,
				   (unsigned long long)e->fblk,
				   (unsigned long long)e->block,
				   (unsigned long long)e->count, e->flags);
	return 0;
}

/* Write e as a new item (insert) or over the item at its key (update). */
static int ext_store(struct mfs_vol *v, uint64_t ino, const struct ext *e,
		     bool insert)
{
	uint8_t val[sizeof(struct mfs_disk_extent)] = { 0 };
	struct mfs_key k = ext_key(ino, e->fblk);

	mfs_put_le64(MFS_FIELD_WPTR(val, struct mfs_disk_extent, ex_block), e->block);
	mfs_put_le64(MFS_FIELD_WPTR(val, struct mfs_disk_extent, ex_count), e->count);
	mfs_put_le32(MFS_FIELD_WPTR(val, struct mfs_disk_extent, ex_flags), e->flags);
	if (insert)
		return mfs_btree_insert(v, MFS_TREE_FS, &k, val, sizeof(val));
	return mfs_btree_update(v, MFS_TREE_FS, &k, val, sizeof(val));
}

static int ext_delete(struct mfs_vol *v, uint64_t ino, uint64_t fblk)
{
	struct mfs_key k = ext_key(ino, fblk);

	return mfs_btree_delete(v, MFS_TREE_FS, &k);
}

/* The extent starting exactly at fblk: 1 and *e, 0 if none, or -errno. */
static int ext_get(struct mfs_vol *v, uint64_t ino, uint64_t fblk,
		   struct ext *e)
{
	struct mfs_key k = ext_key(ino, fblk);
	const void *val;
	size_t len;
	int rc = mfs_btree_lookup(v, MFS_TREE_FS, &k, &val, &len);

	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	rc = ext_decode(v, &k, val, len, e);
	return rc ? rc : 1;
}

/* The last extent starting at or before fblk: 1 and *e, 0, or -errno. */
static int ext_prev(struct mfs_vol *v, uint64_t ino, uint64_t fblk,
		    struct ext *e)
{
	struct mfs_key k = ext_key(ino, fblk);
	const void *val;
	size_t len;
	int rc = mfs_btree_lookup_le(v, MFS_TREE_FS, &k, &val, &len);

	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	if (k.objectid != ino || k.type != MFS_ITEM_EXTENT)
		return 0;
	rc = ext_decode(v, &k, val, len, e);
	return rc ? rc : 1;
}

/*
 * In-order iteration over the extents that cover or follow a file block.
 * Each extent is checked against the one before it in key order (no
 * overlap). Tree changes during the iteration are allowed (the cursor
 * re-seeks) as long as they add no item ahead of the iterator.
 */
struct ext_iter {
	struct mfs_vol *v;
	uint64_t ino;
	struct mfs_cursor c;
	uint64_t end;      /* end of the last extent seen */
	bool have_prev;    /* prev: the last extent starting at or before */
	struct ext prev;   /* the start block */
	bool pending;      /* prev covers the start block: return it first */
};

/* Start at file block fblk (< FILE_BLOCKS); iterate up to extents starting
 * at block last. Returns 0 or -errno. */
static int iter_start(struct ext_iter *it, struct mfs_vol *v, uint64_t ino,
		      uint64_t fblk, uint64_t last)
{
	struct mfs_key lo = ext_key(ino, fblk + 1), hi = ext_key(ino, last);
	int rc;

	memset(it, 0, sizeof(*it));
	it->v = v;
	it->ino = ino;
	rc = ext_prev(v, ino, fblk, &it->prev);
	if (rc < 0)
		return rc;
	it->have_prev = rc == 1;
	if (it->have_prev)
		it->end = ext_end(&it->prev);
	it->pending = it->have_prev && it->end > fblk;
	mfs_cursor_init(&it->c, v, MFS_TREE_FS, &lo, &hi);
	return 0;
}

/* The next extent: 1 and *e, 0 at the end, or -errno. */
static int iter_next(struct ext_iter *it, struct ext *e)
{
	struct mfs_key k;
	const void *val;
	size_t len;
	int rc;

	if (it->pending) {
		it->pending = false;
		*e = it->prev;
		return 1;
	}
	rc = mfs_cursor_next(&it->c, &k, &val, &len);
	if (rc <= 0)
		return rc;
	rc = ext_decode(it->v, &k, val, len, e);
	if (rc)
		return rc;
	if (e->fblk < it->end)
		return MFS_CORRUPT(it->v, "inode %llu: extent at block %llu "
				   "overlaps the one before (ending at %llu)",
				   (unsigned long long)it->ino,
				   (unsigned long long)e->fblk,
				   (unsigned long long)it->end);
	it->end = ext_end(e);
	return 1;
}

/* What maps one file block. */
struct ext_pos {
	bool covered;      /* cur maps the block */
	struct ext cur;
	bool have_prev;    /* prev: the last extent starting at or before the */
	struct ext prev;   /* block (the same as cur when covered) */
	uint64_t hole_end; /* !covered: the next mapped block, or FILE_BLOCKS */
};

/* Fill *p for file block fblk (< FILE_BLOCKS). Returns 0 or -errno. */
static int ext_locate(struct mfs_vol *v, uint64_t ino, uint64_t fblk,
		      struct ext_pos *p)
{
	struct ext_iter it;
	int rc = iter_start(&it, v, ino, fblk, FILE_BLOCKS - 1);

	if (rc)
		return rc;
	p->have_prev = it.have_prev;
	p->prev = it.prev;
	p->covered = it.pending;
	p->cur = it.prev;
	if (p->covered)
		return 0;
	rc = iter_next(&it, &p->cur);
	if (rc < 0)
		return rc;
	p->hole_end = rc ? p->cur.fblk : FILE_BLOCKS;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Changing the map                                                    */
/* ------------------------------------------------------------------ */

static int may_change(const struct mfs_vol *v)
{
	if (v->error)
		return v->error;
	if (v->readonly)
		return -EROFS;
	return 0;
}

/*
 * Blocks kept back from data allocation, for what must not fail for lack
 * of space on a full volume: removing data (an unlink or truncate must
 * work when writes have filled the volume), writing into preallocated
 * blocks, and the commit's own tree copies. A metadata step needs a few
 * changes on neighbouring items, each copying a path and splitting at most
 * one node per level; the commit copies the FREE tree's changed nodes.
 * Data allocation stops at the reserve; changes that allocate no data may
 * use half of it.
 */
static uint64_t reserve(const struct mfs_vol *v)
{
	uint64_t levels = v->roots[MFS_TREE_FS].level +
			  v->roots[MFS_TREE_FREE].level + 2u;
	uint64_t fixed = 16u + 4u * levels;
	uint64_t scaled = min64(mfs_alloc_block_count(v->alloc) / 1024u, 8192u);

	/* The fs layer may keep back more (v->reserve, see fs.c). */
	return max64(max64(fixed, scaled), v->reserve);
}

/* Invariant 3 for a step that allocates no data: 0 or -ENOSPC. */
static int change_room(struct mfs_vol *v)
{
	return mfs_alloc_avail_blocks(v->alloc) >= reserve(v) / 2u ? 0 : -ENOSPC;
}

uint64_t mfs_file_reserved(struct mfs_vol *v)
{
	return reserve(v);
}

/* A step failed after changing the tree (invariant 3). */
static int step_failed(struct mfs_vol *v, uint64_t ino, int rc)
{
	mfs_log(MFS_LOG_ERR, "inode %llu: extent map change failed half-way "
		"(%s); the volume is read-only until the transaction is "
		"aborted", (unsigned long long)ino, strerror(-rc));
	if (!v->error)
		v->error = rc;
	return rc;
}

/*
 * Allocate up to want data blocks near goal, keeping the reserve.
 * Returns 0 with the run in *start, *got (>= 1), -ENOSPC, or -errno.
 */
static int alloc_data(struct mfs_vol *v, uint64_t goal, uint64_t want,
		      uint64_t *start, uint64_t *got)
{
	uint64_t avail = mfs_alloc_avail_blocks(v->alloc);
	uint64_t keep = reserve(v);

	if (avail <= keep)
		return -ENOSPC;
	if (want > avail - keep)
		want = avail - keep;
	return mfs_alloc_alloc(v->alloc, goal, want, 1, start, got);
}

/*
 * Where new blocks for file block fblk (a hole, described by p) should go:
 * where they would be if the file were contiguous, i.e. the disk blocks of
 * the extent before them plus the distance in the file, or for a file's
 * first extent a fixed point past the start of the image (away from where
 * tree nodes are allocated first: v->meta_goal starts at the front, and
 * the nodes a commit copies then do not land right after a growing file)
 * plus fblk. A growing file stays contiguous, and so does one whose blocks
 * arrive out of order, as the writeback cache sends them: "right after the
 * previous extent" cut 1 MiB writes of a 1 GiB file into hundreds of runs
 * (a later block took the place an earlier one arrived for afterwards),
 * and so did a cap on the distance (256 MiB) when the kernel wrote two
 * ranges of one file 260 MiB apart at once: both streams continued the
 * same extent and took turns in the same place (figures: docs/
 * performance.md, "Measurements behind the design"). A goal past the end
 * of the image falls back to the previous extent's end.
 */
static uint64_t data_goal(const struct mfs_vol *v, const struct ext_pos *p,
			  uint64_t fblk)
{
	uint64_t count = mfs_alloc_block_count(v->alloc);
	uint64_t base = MFS_FIRST_DATA_BLOCK + count / 16;

	if (p->have_prev) {
		uint64_t end = p->prev.fblk + p->prev.count;

		base = p->prev.block + p->prev.count;
		if (base < count && fblk > end && fblk - end < count - base)
			return base + (fblk - end);
		return base;
	}
	return base < count && fblk < count - base ? base + fblk : base;
}

/*
 * Map n, whose file blocks are a hole now, merged with the extent ending
 * where it starts and the one starting where it ends when their disk
 * blocks and flags continue it. The caller checked change_room. Returns 0 or
 * -errno; the tree is unchanged if the first change fails.
 */
static int map_insert(struct mfs_vol *v, uint64_t ino, struct ext n)
{
	struct ext_pos p = { 0 };
	struct ext right;
	bool left = false, join_right;
	int rc;

	if (n.fblk > 0) {
		rc = ext_locate(v, ino, n.fblk - 1, &p);
		if (rc)
			return rc;
		left = p.covered && ext_end(&p.cur) == n.fblk &&
		       p.cur.flags == n.flags &&
		       p.cur.block + p.cur.count == n.block;
	}
	rc = ext_get(v, ino, ext_end(&n), &right);
	if (rc < 0)
		return rc;
	join_right = rc == 1 && right.flags == n.flags &&
		     n.block + n.count == right.block;
	if (join_right)
		n.count += right.count;
	if (left) {
		p.cur.count += n.count;
		rc = ext_store(v, ino, &p.cur, false);
	} else {
		rc = ext_store(v, ino, &n, true);
	}
	if (rc || !join_right)
		return rc;
	rc = ext_delete(v, ino, right.fblk);
	return rc ? step_failed(v, ino, rc) : 0;
}

/* Take blocks [lo, hi) out of extent e (e->fblk <= lo < hi <= its end),
 * keeping the parts before and after as extents. */
static int ext_cut(struct mfs_vol *v, uint64_t ino, const struct ext *e,
		   uint64_t lo, uint64_t hi)
{
	int rc;

	if (lo > e->fblk) {
		struct ext l = *e;

		l.count = lo - e->fblk;
		rc = ext_store(v, ino, &l, false);
	} else {
		rc = ext_delete(v, ino, e->fblk);
	}
	if (rc || hi == ext_end(e))
		return rc;
	{
		struct ext r = { hi, e->block + (hi - e->fblk), ext_end(e) - hi,
				 e->flags };

		rc = ext_store(v, ino, &r, true);
	}
	return rc ? step_failed(v, ino, rc) : 0;
}

/* Give blocks [lo, hi) of extent e the flags `flags`, keeping their disk
 * blocks: cut them out and map them again, merged with their neighbours. */
static int ext_convert(struct mfs_vol *v, uint64_t ino, const struct ext *e,
		       uint64_t lo, uint64_t hi, uint32_t flags)
{
	struct ext mid = { lo, e->block + (lo - e->fblk), hi - lo, flags };
	int rc = change_room(v);

	if (!rc)
		rc = ext_cut(v, ino, e, lo, hi);
	if (rc)
		return rc;
	rc = map_insert(v, ino, mid);
	return rc ? step_failed(v, ino, rc) : 0;
}

static void blocks_sub(struct mfs_inode *in, uint64_t count)
{
	uint64_t sectors = count << (MFS_BLOCK_SHIFT - 9);

	in->blocks = in->blocks > sectors ? in->blocks - sectors : 0;
}

/*
 * Free file blocks [a, b), last extent first, splitting extents that
 * straddle a or b; the blocks leave in->blocks and go back pinned
 * (invariant 4). *low is where the freed range starts: a on success; after
 * an error blocks [*low, b) are freed and the rest is untouched. Returns 0
 * or -errno.
 */
static int map_remove(struct mfs_vol *v, struct mfs_inode *in, uint64_t a,
		      uint64_t b, uint64_t *low)
{
	uint64_t pos = b;
	int rc = 0;

	while (pos > a) {
		uint64_t lo, hi, first;
		struct ext e;

		rc = ext_prev(v, in->ino, pos - 1, &e);
		if (rc < 0)
			break;
		if (rc == 0 || ext_end(&e) <= a) {
			rc = 0;
			pos = a;
			break;
		}
		lo = max64(a, e.fblk);
		hi = min64(pos, ext_end(&e));
		rc = change_room(v);
		if (!rc)
			rc = ext_cut(v, in->ino, &e, lo, hi);
		if (rc)
			break;
		pos = lo;
		first = e.block + (lo - e.fblk);
		rc = mfs_alloc_free(v->alloc, first, hi - lo, v->gen);
		if (rc == -EUCLEAN) {
			rc = MFS_CORRUPT(v, "inode %llu: blocks %llu+%llu of its "
					 "extent are free already",
					 (unsigned long long)in->ino,
					 (unsigned long long)first,
					 (unsigned long long)(hi - lo));
		} else if (rc) {
			rc = step_failed(v, in->ino, rc);
		}
		if (rc)
			break;
		blocks_sub(in, hi - lo);
	}
	*low = pos;
	return rc;
}

/* Zero bytes [from, to) of the file where they are written data, in place
 * (holes and unwritten blocks read as zeros already). */
static int zero_written(struct mfs_vol *v, const struct mfs_inode *in,
			uint64_t from, uint64_t to)
{
	uint64_t pos = from;

	while (pos < to) {
		struct ext_pos p;
		uint64_t stop;
		int rc = ext_locate(v, in->ino, pos >> MFS_BLOCK_SHIFT, &p);

		if (rc)
			return rc;
		if (!p.covered) {
			pos = p.hole_end << MFS_BLOCK_SHIFT;
			continue;
		}
		stop = min64(to, ext_end(&p.cur) << MFS_BLOCK_SHIFT);
		if (ext_written(&p.cur))
			memset(ext_ptr(v, &p.cur, pos), 0, stop - pos);
		pos = stop;
	}
	return 0;
}

/* Invariant 1, before the size grows: zero the rest of the last block. */
static int zero_tail(struct mfs_vol *v, const struct mfs_inode *in)
{
	uint64_t s = min64(in->size, MFS_FILE_SIZE_MAX);

	return zero_written(v, in, s, blocks_up(s) << MFS_BLOCK_SHIFT);
}

/* Zero the parts of [off, end) in blocks it covers only partly. */
static int zero_edges(struct mfs_vol *v, const struct mfs_inode *in,
		      uint64_t off, uint64_t end)
{
	uint64_t a = blocks_up(off) << MFS_BLOCK_SHIFT;
	uint64_t b = end & ~(BS - 1);
	int rc;

	if (a > b)
		return zero_written(v, in, off, end);
	rc = zero_written(v, in, off, a);
	return rc ? rc : zero_written(v, in, b, end);
}

/* Map unwritten blocks to the holes among file blocks [a, b). */
static int prealloc(struct mfs_vol *v, struct mfs_inode *in, uint64_t a,
		    uint64_t b)
{
	uint64_t pos = a;

	while (pos < b) {
		struct ext_pos p;
		struct ext n = { pos, 0, 0, MFS_EXTENT_UNWRITTEN };
		int rc = ext_locate(v, in->ino, pos, &p);

		if (rc)
			return rc;
		if (p.covered) {
			pos = ext_end(&p.cur);
			continue;
		}
		rc = alloc_data(v, data_goal(v, &p, pos),
				min64(min64(b, p.hole_end) - pos, ALLOC_MAX),
				&n.block, &n.count);
		if (rc)
			return rc;
		rc = map_insert(v, in->ino, n);
		if (rc) {
			mfs_alloc_free(v->alloc, n.block, n.count, 0);
			return rc;
		}
		in->blocks += n.count << (MFS_BLOCK_SHIFT - 9);
		pos += n.count;
	}
	return 0;
}

/* Make written blocks among file blocks [a, b) unwritten, in place. */
static int to_unwritten(struct mfs_vol *v, struct mfs_inode *in, uint64_t a,
			uint64_t b)
{
	uint64_t pos = a;

	while (pos < b) {
		struct ext_pos p;
		uint64_t hi;
		int rc = ext_locate(v, in->ino, pos, &p);

		if (rc)
			return rc;
		if (!p.covered) {
			pos = p.hole_end;
			continue;
		}
		hi = min64(b, ext_end(&p.cur));
		if (ext_written(&p.cur)) {
			rc = ext_convert(v, in->ino, &p.cur, pos, hi,
					 MFS_EXTENT_UNWRITTEN);
			if (rc)
				return rc;
		}
		pos = hi;
	}
	return 0;
}

/* Make bytes [off, end) a hole: free whole blocks, zero partial ones. */
static int punch(struct mfs_vol *v, struct mfs_inode *in, uint64_t off,
		 uint64_t end)
{
	uint64_t a = blocks_up(off), b = end >> MFS_BLOCK_SHIFT, low;
	int rc = zero_edges(v, in, off, end);

	if (rc || a >= b)
		return rc;
	return map_remove(v, in, a, b, &low);
}

/* ------------------------------------------------------------------ */
/* Read                                                                */
/* ------------------------------------------------------------------ */

struct iov_out {
	struct iovec *iov;
	unsigned max, n;
};

static bool is_zero_buf(const void *p)
{
	return (uintptr_t)p >= (uintptr_t)zero_buf &&
	       (uintptr_t)p < (uintptr_t)zero_buf + ZERO_SIZE;
}

/* Append file data at p, joined to the last entry if it continues it. */
static int iov_data(struct iov_out *o, uint8_t *p, size_t len)
{
	struct iovec *last = o->n ? &o->iov[o->n - 1] : NULL;

	if (last && !is_zero_buf(last->iov_base) &&
	    (uint8_t *)last->iov_base + last->iov_len == p) {
		last->iov_len += len;
		return 0;
	}
	if (o->n == o->max)
		return -EINVAL;
	o->iov[o->n].iov_base = p;
	o->iov[o->n].iov_len = len;
	o->n++;
	return 0;
}

/* Append len zero bytes: entries of the shared zero buffer. */
static int iov_zeros(struct iov_out *o, size_t len)
{
	while (len > 0) {
		struct iovec *last = o->n ? &o->iov[o->n - 1] : NULL;
		size_t take;

		if (last && is_zero_buf(last->iov_base) &&
		    last->iov_len < ZERO_SIZE) {
			take = min64(len, ZERO_SIZE - last->iov_len);
			last->iov_len += take;
		} else {
			if (o->n == o->max)
				return -EINVAL;
			take = min64(len, ZERO_SIZE);
			o->iov[o->n].iov_base = (void *)(uintptr_t)zero_buf;
			o->iov[o->n].iov_len = take;
			o->n++;
		}
		len -= take;
	}
	return 0;
}

int mfs_file_read(struct mfs_vol *v, const struct mfs_inode *in, uint64_t off,
		  size_t len, struct iovec *iov, unsigned iovmax,
		  unsigned *iovcnt, size_t *bytes)
{
	struct iov_out o = { iov, iovmax, 0 };
	uint64_t size = min64(in->size, MFS_FILE_SIZE_MAX), pos, end, stop;
	struct ext_iter it;
	struct ext e;
	bool have = false;
	int rc;

	*iovcnt = 0;
	*bytes = 0;
	if (iovmax < (len >> MFS_BLOCK_SHIFT) + 2)
		return -EINVAL;
	if (off >= size || len == 0)
		return 0;
	end = off + min64(len, size - off);
	rc = iter_start(&it, v, in->ino, off >> MFS_BLOCK_SHIFT,
			(end - 1) >> MFS_BLOCK_SHIFT);
	if (rc)
		return rc;
	for (pos = off; pos < end; pos = stop) {
		if (!have) {
			rc = iter_next(&it, &e);
			if (rc < 0)
				return rc;
			have = rc == 1;
		}
		if (!have || (e.fblk << MFS_BLOCK_SHIFT) > pos) {
			stop = have ? min64(end, e.fblk << MFS_BLOCK_SHIFT) : end;
			rc = iov_zeros(&o, stop - pos);
		} else {
			stop = min64(end, ext_end(&e) << MFS_BLOCK_SHIFT);
			rc = ext_written(&e) ? iov_data(&o, ext_ptr(v, &e, pos), stop - pos)
					     : iov_zeros(&o, stop - pos);
			have = false;
		}
		if (rc)
			return rc;
	}
	*iovcnt = o.n;
	*bytes = end - off;
	return 0;
}

int mfs_file_data_runs(struct mfs_vol *v, const struct mfs_inode *in,
		       uint64_t off, uint64_t len,
		       int (*fn)(void *arg, uint64_t img_off, uint64_t bytes),
		       void *arg)
{
	uint64_t size = min64(in->size, MFS_FILE_SIZE_MAX);
	uint64_t first, last, run_blk = 0, run_cnt = 0, a, b;
	struct ext_iter it;
	struct ext e;
	int rc;

	if (off >= size || len == 0)
		return 0;
	first = off >> MFS_BLOCK_SHIFT;
	last = blocks_up(off + min64(len, size - off)) - 1;
	rc = iter_start(&it, v, in->ino, first, last);
	if (rc)
		return rc;
	while ((rc = iter_next(&it, &e)) == 1) {
		if (e.fblk > last)
			break;
		if (!ext_written(&e) || ext_end(&e) <= first)
			continue;
		a = max64(e.fblk, first);
		b = min64(ext_end(&e), last + 1);
		/* Joined to the run before when it continues it on disk. */
		if (run_cnt && run_blk + run_cnt == e.block + (a - e.fblk)) {
			run_cnt += b - a;
			continue;
		}
		if (run_cnt && fn(arg, run_blk << MFS_BLOCK_SHIFT,
				  run_cnt << MFS_BLOCK_SHIFT))
			return 0;
		run_blk = e.block + (a - e.fblk);
		run_cnt = b - a;
	}
	if (rc < 0)
		return rc;
	if (run_cnt)
		fn(arg, run_blk << MFS_BLOCK_SHIFT, run_cnt << MFS_BLOCK_SHIFT);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Write                                                               */
/* ------------------------------------------------------------------ */

/*
 * Fill the start of a hole: new blocks near the file's previous extent,
 * zeroed where the write does not cover them (a freed block keeps stale
 * bytes), then mapped. Advances *pos by what went in.
 */
static int write_hole(struct mfs_vol *v, struct mfs_inode *in,
		      const struct ext_pos *p, uint64_t *pos, uint64_t end,
		      const uint8_t *buf)
{
	uint64_t fblk = *pos >> MFS_BLOCK_SHIFT;
	uint64_t last = min64(p->hole_end, blocks_up(end));
	uint64_t head = *pos & (BS - 1), stop;
	struct ext n = { fblk, 0, 0, 0 };
	uint8_t *d;
	int rc;

	rc = alloc_data(v, data_goal(v, p, fblk), min64(last - fblk, ALLOC_MAX),
			&n.block, &n.count);
	if (rc)
		return rc;
	d = mfs_image_block(v->img, n.block);
	if (!d || n.count > mfs_image_blocks(v->img) - n.block) {
		mfs_alloc_free(v->alloc, n.block, n.count, 0);
		return -EIO;
	}
	stop = min64(end, ext_end(&n) << MFS_BLOCK_SHIFT);
	memset(d, 0, head);
	memcpy(d + head, buf, stop - *pos);
	memset(d + head + (stop - *pos), 0,
	       (n.count << MFS_BLOCK_SHIFT) - head - (stop - *pos));
	rc = map_insert(v, in->ino, n);
	if (rc) {
		mfs_alloc_free(v->alloc, n.block, n.count, 0);
		return rc;
	}
	in->blocks += n.count << (MFS_BLOCK_SHIFT - 9);
	*pos = stop;
	return 0;
}

/*
 * Write into unwritten extent e at *pos: the data goes to its blocks, the
 * parts of the first and last block the write misses are zeroed (they read
 * as zeros so far), and those blocks become written.
 */
static int write_unwritten(struct mfs_vol *v, struct mfs_inode *in,
			   const struct ext *e, uint64_t *pos, uint64_t end,
			   const uint8_t *buf)
{
	uint64_t lo = *pos >> MFS_BLOCK_SHIFT;
	uint64_t hi = min64(ext_end(e), blocks_up(end));
	uint64_t stop = min64(end, hi << MFS_BLOCK_SHIFT);
	uint8_t *d = ext_ptr(v, e, lo << MFS_BLOCK_SHIFT);
	uint64_t head = *pos & (BS - 1);
	int rc = change_room(v);

	if (rc)
		return rc;
	memset(d, 0, head);
	memcpy(d + head, buf, stop - *pos);
	memset(d + head + (stop - *pos), 0, (hi << MFS_BLOCK_SHIFT) - stop);
	rc = ext_convert(v, in->ino, e, lo, hi, 0);
	if (rc)
		return rc;
	*pos = stop;
	return 0;
}

/* Write from buf at *pos up to end or the end of the extent or hole there. */
static int write_step(struct mfs_vol *v, struct mfs_inode *in, uint64_t *pos,
		      uint64_t end, const uint8_t *buf)
{
	struct ext_pos p;
	uint64_t stop;
	int rc = ext_locate(v, in->ino, *pos >> MFS_BLOCK_SHIFT, &p);

	if (rc)
		return rc;
	if (!p.covered)
		return write_hole(v, in, &p, pos, end, buf);
	if (!ext_written(&p.cur))
		return write_unwritten(v, in, &p.cur, pos, end, buf);
	/* Committed data is overwritten in place (data=ordered). */
	stop = min64(end, ext_end(&p.cur) << MFS_BLOCK_SHIFT);
	memcpy(ext_ptr(v, &p.cur, *pos), buf, stop - *pos);
	*pos = stop;
	return 0;
}

int mfs_file_write(struct mfs_vol *v, struct mfs_inode *in, uint64_t off,
		   const void *buf, size_t len, size_t *written)
{
	uint64_t pos = off, end;
	int rc = may_change(v);

	*written = 0;
	if (rc || len == 0)
		return rc;
	if (off >= MFS_FILE_SIZE_MAX)
		return -EFBIG;
	/* Like ext4: a short write up to the limit, -EFBIG on the next. */
	end = off + min64(len, MFS_FILE_SIZE_MAX - off);
	if (end > in->size)
		rc = zero_tail(v, in);
	while (!rc && pos < end)
		rc = write_step(v, in, &pos, end, (const uint8_t *)buf + (pos - off));
	*written = pos - off;
	if (pos > in->size)
		in->size = pos;
	if (rc == -ENOSPC && pos > off)
		return 0;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Truncate, fallocate, seek                                           */
/* ------------------------------------------------------------------ */

int mfs_file_truncate(struct mfs_vol *v, struct mfs_inode *in, uint64_t size)
{
	uint64_t low;
	int rc = may_change(v);

	if (rc)
		return rc;
	if (size > MFS_FILE_SIZE_MAX)
		return -EFBIG;
	if (size > in->size) {
		rc = zero_tail(v, in);
		if (!rc)
			in->size = size;
		return rc;
	}
	/* Like ext4, also when the size does not change: blocks preallocated
	 * past the end go too. */
	rc = map_remove(v, in, blocks_up(size), FILE_BLOCKS, &low);
	if (rc) {
		/* Invariant 2: the file still covers what is left. */
		in->size = min64(in->size, max64(size, low << MFS_BLOCK_SHIFT));
		return rc;
	}
	rc = zero_written(v, in, size, blocks_up(size) << MFS_BLOCK_SHIFT);
	if (!rc)
		in->size = size;
	return rc;
}

#define FALLOC_SUPPORTED (FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | \
			  FALLOC_FL_ZERO_RANGE)

/* The checks of Linux's vfs_fallocate, in its order. */
static int falloc_check(int mode, uint64_t off, uint64_t len)
{
	if (len == 0 || off > INT64_MAX || len > INT64_MAX)
		return -EINVAL;
	if (mode & ~FALLOC_SUPPORTED)
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	return 0;
}

int mfs_file_fallocate(struct mfs_vol *v, struct mfs_inode *in, int mode,
		       uint64_t off, uint64_t len)
{
	uint64_t end;
	bool grow;
	int rc = falloc_check(mode, off, len);

	if (!rc)
		rc = may_change(v);
	if (rc)
		return rc;
	end = off + len;
	if (end > MFS_FILE_SIZE_MAX)
		return -EFBIG;
	grow = !(mode & FALLOC_FL_KEEP_SIZE) && end > in->size;
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		/* As ext4: nothing past the block holding the end of file. */
		if (off >= in->size)
			return 0;
		return punch(v, in, off, min64(end, blocks_up(in->size) << MFS_BLOCK_SHIFT));
	}
	if (grow)
		rc = zero_tail(v, in);
	if (!rc && (mode & FALLOC_FL_ZERO_RANGE)) {
		rc = zero_edges(v, in, off, end);
		if (!rc)
			rc = to_unwritten(v, in, blocks_up(off), end >> MFS_BLOCK_SHIFT);
	}
	if (!rc)
		rc = prealloc(v, in, off >> MFS_BLOCK_SHIFT, blocks_up(end));
	if (!rc && grow)
		in->size = end;
	return rc;
}

/* SEEK_DATA: the first byte of written data at or after pos. */
static int seek_data(struct ext_iter *it, uint64_t pos, uint64_t *result)
{
	struct ext e;
	int rc;

	while ((rc = iter_next(it, &e)) > 0) {
		if (ext_written(&e)) {
			*result = max64(pos, e.fblk << MFS_BLOCK_SHIFT);
			return 0;
		}
	}
	return rc < 0 ? rc : -ENXIO;
}

/* SEEK_HOLE: the first byte at or after pos not in written data. */
static int seek_hole(struct ext_iter *it, uint64_t pos, uint64_t size,
		     uint64_t *result)
{
	struct ext e;
	int rc;

	while ((rc = iter_next(it, &e)) > 0 && ext_written(&e) &&
	       (e.fblk << MFS_BLOCK_SHIFT) <= pos)
		pos = ext_end(&e) << MFS_BLOCK_SHIFT;
	if (rc < 0)
		return rc;
	*result = min64(pos, size);
	return 0;
}

int mfs_file_seek(struct mfs_vol *v, const struct mfs_inode *in, uint64_t off,
		  int whence, uint64_t *result)
{
	uint64_t size = min64(in->size, MFS_FILE_SIZE_MAX);
	struct ext_iter it;
	int rc;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (off >= size)
		return -ENXIO;
	/* Only extents starting before the end: data found is inside. */
	rc = iter_start(&it, v, in->ino, off >> MFS_BLOCK_SHIFT,
			(size - 1) >> MFS_BLOCK_SHIFT);
	if (rc)
		return rc;
	if (whence == SEEK_DATA)
		return seek_data(&it, off, result);
	return seek_hole(&it, off, size, result);
}

/* ------------------------------------------------------------------ */
/* Copy, free                                                          */
/* ------------------------------------------------------------------ */

/* End of the run of holes and unwritten blocks of in starting at pos
 * (which is in one), capped at end. */
static int zero_run_end(struct mfs_vol *v, const struct mfs_inode *in,
			uint64_t pos, uint64_t end, uint64_t *stop)
{
	while (pos < end) {
		struct ext_pos p;
		int rc = ext_locate(v, in->ino, pos >> MFS_BLOCK_SHIFT, &p);

		if (rc)
			return rc;
		if (p.covered && ext_written(&p.cur))
			break;
		pos = (p.covered ? ext_end(&p.cur) : p.hole_end) << MFS_BLOCK_SHIFT;
	}
	*stop = min64(pos, end);
	return 0;
}

/*
 * Copy the run of src starting at *pos (the rest of a written extent, or a
 * run of holes and unwritten blocks, which becomes a hole in dst) to dst at
 * *pos + doff - soff. Advances *pos; a short write is -ENOSPC.
 */
static int copy_step(struct mfs_vol *v, const struct mfs_inode *src,
		     uint64_t soff, struct mfs_inode *dst, uint64_t doff,
		     uint64_t *pos, uint64_t end)
{
	uint64_t dpos = doff + (*pos - soff), stop;
	struct ext_pos p;
	size_t done;
	int rc = ext_locate(v, src->ino, *pos >> MFS_BLOCK_SHIFT, &p);

	if (rc)
		return rc;
	if (p.covered && ext_written(&p.cur)) {
		/* The source bytes stay put: the ranges do not overlap and
		 * no block is shared between extents. */
		stop = min64(end, ext_end(&p.cur) << MFS_BLOCK_SHIFT);
		rc = mfs_file_write(v, dst, dpos, ext_ptr(v, &p.cur, *pos),
				    stop - *pos, &done);
		*pos += done;
		return rc ? rc : *pos < stop ? -ENOSPC : 0;
	}
	rc = zero_run_end(v, src, *pos, end, &stop);
	if (!rc)
		rc = punch(v, dst, dpos, dpos + (stop - *pos));
	if (!rc)
		*pos = stop;
	return rc;
}

int mfs_file_copy(struct mfs_vol *v, const struct mfs_inode *src,
		  uint64_t soff, struct mfs_inode *dst, uint64_t doff,
		  size_t len, size_t *copied)
{
	uint64_t pos = soff, end;
	int rc = may_change(v);

	*copied = 0;
	if (rc)
		return rc;
	if (soff >= src->size || len == 0)
		return 0;
	len = min64(len, src->size - soff);
	if (src->ino == dst->ino && soff < doff + len && doff < soff + len)
		return -EINVAL;
	if (doff >= MFS_FILE_SIZE_MAX)
		return -EFBIG;
	end = soff + min64(len, MFS_FILE_SIZE_MAX - doff);
	if (doff + (end - soff) > dst->size)
		rc = zero_tail(v, dst);
	while (!rc && pos < end)
		rc = copy_step(v, src, soff, dst, doff, &pos, end);
	*copied = pos - soff;
	if (doff + *copied > dst->size)
		dst->size = doff + *copied;
	if (rc == -ENOSPC && pos > soff)
		return 0;
	return rc;
}

int mfs_file_free_all(struct mfs_vol *v, struct mfs_inode *in)
{
	struct mfs_key lo = ext_key(in->ino, FILE_BLOCKS);
	struct mfs_key hi = ext_key(in->ino, UINT64_MAX);
	struct mfs_cursor c;
	uint64_t low;
	int rc = may_change(v);

	if (!rc)
		rc = map_remove(v, in, 0, FILE_BLOCKS, &low);
	if (rc)
		return rc;
	/* An item past the largest file was never written by us. */
	mfs_cursor_init(&c, v, MFS_TREE_FS, &lo, &hi);
	rc = mfs_cursor_next(&c, NULL, NULL, NULL);
	if (rc > 0)
		return MFS_CORRUPT(v, "inode %llu: extent item past the largest "
				   "file size", (unsigned long long)in->ino);
	return rc;
}
