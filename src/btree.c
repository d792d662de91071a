/* SPDX-License-Identifier: MIT */
/*
 * btree.c — the copy-on-write B+tree; see btree.h for the contract.
 *
 * Layer 4. Calls image (block pointers), alloc (blocks for copies and
 * splits), crc32c and log. Nothing here knows what an item means.
 *
 * Node layout (docs/format.md has the byte tables):
 *   leaf:     header | item[0..n) ascending ->      free      <- values
 *   internal: header | ptr[0..n) ascending ->      free
 *
 * Invariants kept by every change (checked by mfs_btree_check):
 *  (1) Keys strictly ascend within a node and across the leaves.
 *  (2) For ptr[i] of an internal node, every key in the child's subtree is
 *      >= ptr[i].key (i > 0) and < ptr[i+1].key. ptr[0].key is only a lower
 *      bound of the node's own range, never used for routing.
 *  (3) A child's level is its parent's minus one; its generation equals the
 *      generation recorded in the parent's pointer.
 *  (4) Only the root may be empty (a leaf with no items). A non-root node
 *      may be underfull: a delete merges it with a neighbour only when the
 *      two fit in one node.
 *  (5) A node of generation v->gen was written in the running transaction
 *      and is reachable only from nodes of generation v->gen; every other
 *      node is immutable until a copy replaces it.
 *
 * Changes are made bottom-up: the recursion descends read-only, the leaf is
 * copied (if needed) and changed, and each parent is copied and its pointer
 * updated on the way back. A lookup that fails (-EEXIST, -ENOENT) therefore
 * copies nothing. Before a change starts, enough free blocks for the worst
 * case (a copy and a split at every level and a new root) are checked, so
 * a change does not run out of space half-way; if it still fails half-way
 * (the host disk filled up), the volume's sticky error is set and only an
 * abort can continue.
 */
#include "btree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "endian.h"
#include "image.h"
#include "log.h"

#define HDR MFS_NODE_HDR
#define ITEM_SZ ((unsigned)sizeof(struct mfs_disk_item))
#define PTR_SZ ((unsigned)sizeof(struct mfs_disk_ptr))
#define MAX_LEAF_ITEMS (MFS_NODE_SPACE / ITEM_SZ)
#define VCACHE_SIZE 65536u

/* An internal node is "underfull" below this many pointers, a leaf below
 * this many bytes used; underfull nodes are merged with a neighbour when
 * the two fit in one node. */
#define MIN_PTRS (MFS_NODE_MAX_PTRS / 4)
#define MIN_LEAF_BYTES (MFS_NODE_SPACE / 4)

/* ------------------------------------------------------------------ */
/* Keys and raw node access                                            */
/* ------------------------------------------------------------------ */

int mfs_key_cmp(const struct mfs_key *a, const struct mfs_key *b)
{
	if (a->objectid != b->objectid)
		return a->objectid < b->objectid ? -1 : 1;
	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	if (a->offset != b->offset)
		return a->offset < b->offset ? -1 : 1;
	return 0;
}

/* The smallest key greater than k; false if k is the largest key. */
static bool key_succ(struct mfs_key *k)
{
	if (++k->offset != 0)
		return true;
	if (++k->type != 0)
		return true;
	return ++k->objectid != 0;
}

static const struct mfs_key key_min = { 0, 0, 0 };

static inline unsigned nd_nritems(const uint8_t *n)
{
	return mfs_get_le16(n + offsetof(struct mfs_disk_node, nd_nritems));
}

static inline void set_nritems(uint8_t *n, unsigned v)
{
	mfs_put_le16(n + offsetof(struct mfs_disk_node, nd_nritems), (uint16_t)v);
}

static inline unsigned nd_level(const uint8_t *n)
{
	return n[offsetof(struct mfs_disk_node, nd_level)];
}

static inline uint64_t nd_gen(const uint8_t *n)
{
	return mfs_get_le64(n + offsetof(struct mfs_disk_node, nd_generation));
}

static inline const uint8_t *citem_at(const uint8_t *n, unsigned i)
{
	return n + HDR + i * ITEM_SZ;
}

static void item_key(const uint8_t *it, struct mfs_key *k)
{
	k->objectid = mfs_get_le64(it + offsetof(struct mfs_disk_item, it_objectid));
	k->offset = mfs_get_le64(it + offsetof(struct mfs_disk_item, it_offset));
	k->type = it[offsetof(struct mfs_disk_item, it_type)];
}

static inline unsigned item_size(const uint8_t *it)
{
	return mfs_get_le16(it + offsetof(struct mfs_disk_item, it_size));
}

static inline unsigned item_voff(const uint8_t *it)
{
	return mfs_get_le16(it + offsetof(struct mfs_disk_item, it_voff));
}

static inline const uint8_t *cptr_at(const uint8_t *n, unsigned i)
{
	return n + HDR + i * PTR_SZ;
}

static inline uint8_t *ptr_at(uint8_t *n, unsigned i)
{
	return n + HDR + i * PTR_SZ;
}

static void ptr_key(const uint8_t *p, struct mfs_key *k)
{
	k->objectid = mfs_get_le64(p + offsetof(struct mfs_disk_ptr, kp_objectid));
	k->offset = mfs_get_le64(p + offsetof(struct mfs_disk_ptr, kp_offset));
	k->type = p[offsetof(struct mfs_disk_ptr, kp_type)];
}

static inline uint64_t ptr_block(const uint8_t *p)
{
	return mfs_get_le64(p + offsetof(struct mfs_disk_ptr, kp_block));
}

static inline uint64_t ptr_gen(const uint8_t *p)
{
	return mfs_get_le64(p + offsetof(struct mfs_disk_ptr, kp_generation));
}

static void ptr_set(uint8_t *p, const struct mfs_key *k, uint64_t block,
		    uint64_t gen)
{
	memset(p, 0, PTR_SZ);
	mfs_put_le64(p + offsetof(struct mfs_disk_ptr, kp_objectid), k->objectid);
	mfs_put_le64(p + offsetof(struct mfs_disk_ptr, kp_offset), k->offset);
	p[offsetof(struct mfs_disk_ptr, kp_type)] = k->type;
	mfs_put_le64(p + offsetof(struct mfs_disk_ptr, kp_block), block);
	mfs_put_le64(p + offsetof(struct mfs_disk_ptr, kp_generation), gen);
}

static void ptr_set_child(uint8_t *p, uint64_t block, uint64_t gen)
{
	mfs_put_le64(p + offsetof(struct mfs_disk_ptr, kp_block), block);
	mfs_put_le64(p + offsetof(struct mfs_disk_ptr, kp_generation), gen);
}

/* First index in a leaf whose key is >= k (n if none); *found if equal. */
static unsigned leaf_search(const uint8_t *n, const struct mfs_key *k,
			    bool *found)
{
	unsigned lo = 0, hi = nd_nritems(n);
	struct mfs_key ik;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		item_key(citem_at(n, mid), &ik);
		if (mfs_key_cmp(&ik, k) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	if (lo < nd_nritems(n)) {
		item_key(citem_at(n, lo), &ik);
		*found = mfs_key_cmp(&ik, k) == 0;
	}
	return lo;
}

/* Index of the child of an internal node whose range holds k: the last
 * pointer with key <= k, or 0. */
static unsigned node_search(const uint8_t *n, const struct mfs_key *k)
{
	unsigned lo = 1, hi = nd_nritems(n);
	struct mfs_key pk;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		ptr_key(cptr_at(n, mid), &pk);
		if (mfs_key_cmp(&pk, k) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

/* Bytes a leaf uses in its data area (item headers plus values). */
static unsigned leaf_used(const uint8_t *n)
{
	unsigned i, nr = nd_nritems(n), used = nr * ITEM_SZ;

	for (i = 0; i < nr; i++)
		used += item_size(citem_at(n, i));
	return used;
}

/* ------------------------------------------------------------------ */
/* Reading and verifying nodes                                         */
/* ------------------------------------------------------------------ */

static uint32_t node_crc(const uint8_t *n)
{
	return mfs_crc32c(0, n + 4, MFS_BLOCK_SIZE - 4);
}

/* The verified-node cache: slot by block, tag by (block, generation); a
 * tag is never 0, so an empty slot never matches. */
static uint64_t vcache_tag(uint64_t block, uint64_t gen)
{
	uint64_t x = block * 0x9e3779b97f4a7c15ULL ^ (gen + 0x632be59bd9b4e019ULL);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 29;
	return x | 1;
}

static bool vcache_has(struct mfs_vol *v, uint64_t block, uint64_t gen)
{
	if (!v->vcache)
		return false;
	return __atomic_load_n(&v->vcache[(block * 0x9e3779b97f4a7c15ULL) >> 48],
			       __ATOMIC_RELAXED) == vcache_tag(block, gen);
}

static void vcache_set(struct mfs_vol *v, uint64_t block, uint64_t gen)
{
	if (v->vcache)
		__atomic_store_n(&v->vcache[(block * 0x9e3779b97f4a7c15ULL) >> 48],
				 vcache_tag(block, gen), __ATOMIC_RELAXED);
}

/*
 * Check the items of a node from the image: counts, key order, value
 * bounds, keys inside [lo, hi) when bounds are given.
 */
static int verify_items(struct mfs_vol *v, const uint8_t *n, uint64_t block,
			const struct mfs_key *lo, const struct mfs_key *hi)
{
	unsigned i, nr = nd_nritems(n), level = nd_level(n);
	struct mfs_key k, prev = { 0, 0, 0 };

	if (level == 0) {
		unsigned data_start = HDR + nr * ITEM_SZ;

		if (nr > MAX_LEAF_ITEMS)
			return MFS_CORRUPT(v, "leaf %llu: %u items",
					   (unsigned long long)block, nr);
		for (i = 0; i < nr; i++) {
			const uint8_t *it = citem_at(n, i);
			unsigned sz = item_size(it), off = item_voff(it);

			if (sz > MFS_MAX_VALUE || off < data_start ||
			    off + sz > MFS_BLOCK_SIZE)
				return MFS_CORRUPT(v, "leaf %llu: item %u value out of bounds",
						   (unsigned long long)block, i);
			item_key(it, &k);
			if (i > 0 && mfs_key_cmp(&prev, &k) >= 0)
				return MFS_CORRUPT(v, "leaf %llu: keys out of order at %u",
						   (unsigned long long)block, i);
			if ((lo && mfs_key_cmp(&k, lo) < 0) ||
			    (hi && mfs_key_cmp(&k, hi) >= 0))
				return MFS_CORRUPT(v, "leaf %llu: key outside parent's range",
						   (unsigned long long)block);
			prev = k;
		}
		return 0;
	}
	if (nr == 0 || nr > MFS_NODE_MAX_PTRS)
		return MFS_CORRUPT(v, "node %llu: %u pointers",
				   (unsigned long long)block, nr);
	for (i = 0; i < nr; i++) {
		ptr_key(cptr_at(n, i), &k);
		if (i > 0 && mfs_key_cmp(&prev, &k) >= 0)
			return MFS_CORRUPT(v, "node %llu: keys out of order at %u",
					   (unsigned long long)block, i);
		/* ptr[0]'s key is not used for routing: only order matters. */
		if (i > 0 && lo && mfs_key_cmp(&k, lo) < 0)
			return MFS_CORRUPT(v, "node %llu: key below parent's range",
					   (unsigned long long)block);
		if (hi && mfs_key_cmp(&k, hi) >= 0)
			return MFS_CORRUPT(v, "node %llu: key beyond parent's range",
					   (unsigned long long)block);
		prev = k;
	}
	return 0;
}

/*
 * Map a node and check it. gen and level are what the parent (or the
 * superblock) says the node must have. Nodes of an earlier generation get
 * the full check once (then they are cached as verified); nodes written in
 * this transaction only the header check.
 */
static int node_get(struct mfs_vol *v, unsigned tree, uint64_t block,
		    uint64_t gen, unsigned level, uint8_t **out)
{
	uint8_t *n;
	int rc;

	if (block < MFS_FIRST_DATA_BLOCK ||
	    !(n = mfs_image_block(v->img, block)) ||
	    block >= mfs_alloc_block_count(v->alloc))
		return MFS_CORRUPT(v, "tree %u: node pointer %llu outside the image",
				   tree, (unsigned long long)block);
	if (gen > v->gen || level >= MFS_MAX_LEVELS)
		return MFS_CORRUPT(v, "tree %u: node %llu: bad generation or level",
				   tree, (unsigned long long)block);
	if (mfs_get_le32(n + offsetof(struct mfs_disk_node, nd_magic)) != MFS_NODE_MAGIC ||
	    mfs_get_le64(n + offsetof(struct mfs_disk_node, nd_block)) != block)
		return MFS_CORRUPT(v, "tree %u: block %llu is not a tree node",
				   tree, (unsigned long long)block);
	if (nd_gen(n) != gen)
		return MFS_CORRUPT(v, "tree %u: node %llu has generation %llu, expected %llu",
				   tree, (unsigned long long)block,
				   (unsigned long long)nd_gen(n),
				   (unsigned long long)gen);
	if (nd_level(n) != level ||
	    mfs_get_le32(n + offsetof(struct mfs_disk_node, nd_tree)) != tree)
		return MFS_CORRUPT(v, "tree %u: node %llu has wrong level or tree",
				   tree, (unsigned long long)block);
	if (gen == v->gen) {
		*out = n;
		return 0;
	}
	if (vcache_has(v, block, gen)) {
		*out = n;
		return 0;
	}
	if (mfs_get_le32(n) != node_crc(n))
		return MFS_CORRUPT(v, "tree %u: node %llu: checksum mismatch",
				   tree, (unsigned long long)block);
	if (memcmp(n + offsetof(struct mfs_disk_node, nd_uuid), v->sb.uuid,
		   MFS_UUID_SIZE) != 0)
		return MFS_CORRUPT(v, "tree %u: node %llu belongs to another filesystem",
				   tree, (unsigned long long)block);
	rc = verify_items(v, n, block, NULL, NULL);
	if (rc)
		return rc;
	vcache_set(v, block, gen);
	*out = n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Allocating, copying and freeing nodes                               */
/* ------------------------------------------------------------------ */

static int node_alloc(struct mfs_vol *v, unsigned tree, unsigned level,
		      uint64_t *block, uint8_t **out)
{
	uint64_t start, len;
	uint8_t *n;
	int rc;

	rc = mfs_alloc_alloc(v->alloc, v->meta_goal, 1, 1, &start, &len);
	if (rc)
		return rc;
	n = mfs_image_block(v->img, start);
	if (!n) {
		mfs_alloc_free(v->alloc, start, len, 0);
		return -EIO;
	}
	v->meta_goal = start + 1;
	memset(n, 0, MFS_BLOCK_SIZE);
	mfs_put_le32(n + offsetof(struct mfs_disk_node, nd_magic), MFS_NODE_MAGIC);
	mfs_put_le64(n + offsetof(struct mfs_disk_node, nd_block), start);
	mfs_put_le64(n + offsetof(struct mfs_disk_node, nd_generation), v->gen);
	memcpy(n + offsetof(struct mfs_disk_node, nd_uuid), v->sb.uuid, MFS_UUID_SIZE);
	mfs_put_le32(n + offsetof(struct mfs_disk_node, nd_tree), tree);
	n[offsetof(struct mfs_disk_node, nd_level)] = (uint8_t)level;
	*block = start;
	*out = n;
	return 0;
}

/* Release a node's block: at once if it was written in this transaction,
 * else pinned to it (the committed state still uses it). */
static int node_free(struct mfs_vol *v, uint64_t block, uint64_t gen)
{
	int rc = mfs_alloc_free(v->alloc, block, 1, gen == v->gen ? 0 : v->gen);

	if (rc)
		return MFS_CORRUPT(v, "freeing node %llu: %d",
				   (unsigned long long)block, rc);
	return 0;
}

/* Make node (block, gen) writable: a node of this transaction is returned
 * as is; any other is copied to a new block and the old one freed. */
static int node_cow(struct mfs_vol *v, uint64_t *block, uint64_t *gen,
		    uint8_t **n)
{
	uint64_t nb;
	uint8_t *copy;
	int rc;

	if (*gen == v->gen)
		return 0;
	{
		uint64_t start, len;

		rc = mfs_alloc_alloc(v->alloc, v->meta_goal, 1, 1, &start, &len);
		if (rc)
			return rc;
		nb = start;
	}
	copy = mfs_image_block(v->img, nb);
	if (!copy)
		return -EIO;
	v->meta_goal = nb + 1;
	memcpy(copy, *n, MFS_BLOCK_SIZE);
	mfs_put_le64(copy + offsetof(struct mfs_disk_node, nd_block), nb);
	mfs_put_le64(copy + offsetof(struct mfs_disk_node, nd_generation), v->gen);
	rc = node_free(v, *block, *gen);
	if (rc)
		return rc;
	*block = nb;
	*gen = v->gen;
	*n = copy;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Rebuilding leaves                                                   */
/* ------------------------------------------------------------------ */

struct ent {
	struct mfs_key key;
	const uint8_t *val;
	unsigned len;
};

/* Decode a leaf's items into ents (values still point into the leaf). */
static unsigned leaf_decode(const uint8_t *n, struct ent *ents)
{
	unsigned i, nr = nd_nritems(n);

	for (i = 0; i < nr; i++) {
		const uint8_t *it = citem_at(n, i);

		item_key(it, &ents[i].key);
		ents[i].len = item_size(it);
		ents[i].val = n + item_voff(it);
	}
	return nr;
}

static unsigned ents_bytes(const struct ent *e, unsigned nr)
{
	unsigned i, sz = 0;

	for (i = 0; i < nr; i++)
		sz += ITEM_SZ + e[i].len;
	return sz;
}

/* Write ents into leaf n (whose header is kept), through a scratch copy
 * because values may point into n itself. */
static void leaf_encode(uint8_t *n, const struct ent *ents, unsigned nr)
{
	uint8_t scratch[MFS_BLOCK_SIZE];
	unsigned i, end = MFS_BLOCK_SIZE;

	memcpy(scratch, n, HDR);
	memset(scratch + HDR, 0, MFS_BLOCK_SIZE - HDR);
	for (i = 0; i < nr; i++) {
		uint8_t *it = scratch + HDR + i * ITEM_SZ;

		end -= ents[i].len;
		mfs_put_le64(it + offsetof(struct mfs_disk_item, it_objectid),
			     ents[i].key.objectid);
		mfs_put_le64(it + offsetof(struct mfs_disk_item, it_offset),
			     ents[i].key.offset);
		it[offsetof(struct mfs_disk_item, it_type)] = ents[i].key.type;
		mfs_put_le16(it + offsetof(struct mfs_disk_item, it_size),
			     (uint16_t)ents[i].len);
		mfs_put_le16(it + offsetof(struct mfs_disk_item, it_voff),
			     (uint16_t)end);
		if (ents[i].len)
			memcpy(scratch + end, ents[i].val, ents[i].len);
	}
	set_nritems(scratch, nr);
	memcpy(n, scratch, MFS_BLOCK_SIZE);
}

/* ------------------------------------------------------------------ */
/* Changes                                                             */
/* ------------------------------------------------------------------ */

enum op { OP_INSERT, OP_UPDATE, OP_PUT, OP_DELETE, OP_MUT };

struct change {
	enum op op;
	unsigned tree;
	const struct mfs_key *key;
	const void *val;
	size_t len;
	void **mut_val;   /* OP_MUT: where the value landed */
	size_t *mut_len;
};

/* What a level reports to its parent. */
struct result {
	uint64_t block, gen;   /* the node, possibly copied */
	bool split;            /* a new right sibling follows it */
	struct mfs_key rkey;   /* ... whose first key is this */
	uint64_t rblock;
	bool underfull;        /* after a delete */
	bool empty;            /* no items or pointers left */
};

/*
 * The key range a node must keep to, from the separators on the way down
 * from the root: every key in the subtree under pointer i is >= key(i)
 * when i > 0 (the first pointer's key may be smaller than anything below
 * it, so it bounds nothing), and < key(i + 1). node_get checks a node's
 * items against each other but not against its parent (a node is verified
 * once, cached); a damaged separator would send lookups and cursors to
 * different leaves for the same key, and a file-layer loop that asks both
 * could then go on for ever. So every descent checks the child it reaches.
 */
struct range {
	bool has_lo, has_hi;
	struct mfs_key lo, hi;
};

/* The range of the child under pointer slot of internal node n. */
static void range_child(struct range *r, const uint8_t *n, unsigned slot)
{
	if (slot > 0) {
		ptr_key(cptr_at(n, slot), &r->lo);
		r->has_lo = true;
	}
	if (slot + 1 < nd_nritems(n)) {
		ptr_key(cptr_at(n, slot + 1), &r->hi);
		r->has_hi = true;
	}
}

/* Node n (reached under range r) keeps to it: a leaf's first and last
 * items, an internal node's second and last pointers (the first may be
 * smaller than anything below). 0 or -EUCLEAN. */
static int range_check(struct mfs_vol *v, unsigned tree, uint64_t block,
		       const uint8_t *n, const struct range *r)
{
	unsigned nr = nd_nritems(n);
	struct mfs_key first, last;
	bool leaf = nd_level(n) == 0;

	if (nr == 0 || (!leaf && nr < 2 && !r->has_hi))
		return 0;
	if (leaf) {
		item_key(citem_at(n, 0), &first);
		item_key(citem_at(n, nr - 1), &last);
	} else {
		ptr_key(cptr_at(n, nr > 1 ? 1 : 0), &first);
		ptr_key(cptr_at(n, nr - 1), &last);
	}
	if ((r->has_lo && (leaf || nr > 1) && mfs_key_cmp(&first, &r->lo) < 0) ||
	    (r->has_hi && mfs_key_cmp(&last, &r->hi) >= 0))
		return MFS_CORRUPT(v, "tree %u: node %llu holds keys outside "
				   "its parent's range", tree,
				   (unsigned long long)block);
	return 0;
}

static int change_rec(struct mfs_vol *v, struct change *c, uint64_t block,
		      uint64_t gen, unsigned level, struct result *res,
		      const struct range *r);

static int change_leaf(struct mfs_vol *v, struct change *c, uint8_t *n,
		       struct result *res)
{
	struct ent ents[MAX_LEAF_ITEMS + 1];
	unsigned nr, pos, total, k;
	bool found;
	int rc;

	pos = leaf_search(n, c->key, &found);
	switch (c->op) {
	case OP_INSERT:
		if (found)
			return -EEXIST;
		break;
	case OP_UPDATE:
	case OP_DELETE:
	case OP_MUT:
		if (!found)
			return -ENOENT;
		break;
	case OP_PUT:
		break;
	}
	rc = node_cow(v, &res->block, &res->gen, &n);
	if (rc)
		return rc;
	if (c->op == OP_MUT) {
		const uint8_t *it = citem_at(n, pos);

		*c->mut_val = n + item_voff(it);
		*c->mut_len = item_size(it);
		return 0;
	}
	nr = leaf_decode(n, ents);
	if (c->op == OP_DELETE) {
		memmove(&ents[pos], &ents[pos + 1], (nr - pos - 1) * sizeof(ents[0]));
		nr--;
	} else {
		if (!found) {
			memmove(&ents[pos + 1], &ents[pos], (nr - pos) * sizeof(ents[0]));
			nr++;
		}
		ents[pos].key = *c->key;
		ents[pos].val = c->val;
		ents[pos].len = (unsigned)c->len;
	}
	total = ents_bytes(ents, nr);
	if (total <= MFS_NODE_SPACE) {
		leaf_encode(n, ents, nr);
		res->underfull = total < MIN_LEAF_BYTES;
		res->empty = nr == 0;
		return 0;
	}
	/* Split: the first k items stay, the rest move to a new leaf. Taking
	 * the first k whose bytes reach half keeps both sides within a node
	 * because no item is larger than a quarter of one. */
	{
		unsigned acc = 0;
		uint8_t *right;

		for (k = 0; k < nr && acc < total / 2; k++)
			acc += ITEM_SZ + ents[k].len;
		if (k >= nr)
			k = nr - 1;
		rc = node_alloc(v, c->tree, 0, &res->rblock, &right);
		if (rc)
			return rc;
		leaf_encode(right, ents + k, nr - k);
		leaf_encode(n, ents, k);
		res->split = true;
		res->rkey = ents[k].key;
	}
	return 0;
}

/* Merge child j+1 into child j of internal node n (both writable after
 * this), and remove pointer j+1. Only when they fit in one node. */
static int merge_children(struct mfs_vol *v, struct change *c, uint8_t *n,
			  unsigned j, unsigned child_level, bool *merged)
{
	uint8_t *lp = ptr_at(n, j), *rp = ptr_at(n, j + 1);
	uint64_t lb = ptr_block(lp), lg = ptr_gen(lp);
	uint64_t rb = ptr_block(rp), rg = ptr_gen(rp);
	struct mfs_key sep;
	uint8_t *l, *r;
	unsigned nr = nd_nritems(n);
	int rc;

	*merged = false;
	rc = node_get(v, c->tree, lb, lg, child_level, &l);
	if (rc)
		return rc;
	rc = node_get(v, c->tree, rb, rg, child_level, &r);
	if (rc)
		return rc;
	if (child_level == 0) {
		struct ent ents[2 * MAX_LEAF_ITEMS];
		unsigned ln, rn;

		if (leaf_used(l) + leaf_used(r) > MFS_NODE_SPACE)
			return 0;
		rc = node_cow(v, &lb, &lg, &l);
		if (rc)
			return rc;
		ln = leaf_decode(l, ents);
		rn = leaf_decode(r, ents + ln);
		leaf_encode(l, ents, ln + rn);
	} else {
		unsigned ln = nd_nritems(l), rn = nd_nritems(r);

		if (ln + rn > MFS_NODE_MAX_PTRS)
			return 0;
		rc = node_cow(v, &lb, &lg, &l);
		if (rc)
			return rc;
		memcpy(ptr_at(l, ln), cptr_at(r, 0), (size_t)rn * PTR_SZ);
		/* The right node's first key is only a lower bound; the
		 * parent's separator is the exact one. */
		ptr_key(rp, &sep);
		ptr_set(ptr_at(l, ln), &sep, ptr_block(cptr_at(r, 0)),
			ptr_gen(cptr_at(r, 0)));
		set_nritems(l, ln + rn);
	}
	rc = node_free(v, rb, rg);
	if (rc)
		return rc;
	ptr_set_child(ptr_at(n, j), lb, lg);
	memmove(ptr_at(n, j + 1), cptr_at(n, j + 2), (size_t)(nr - j - 2) * PTR_SZ);
	set_nritems(n, nr - 1);
	memset(ptr_at(n, nr - 1), 0, PTR_SZ);
	*merged = true;
	return 0;
}

static int change_node(struct mfs_vol *v, struct change *c, uint8_t *n,
		       unsigned level, struct result *res,
		       const struct range *r)
{
	unsigned i = node_search(n, c->key), nr = nd_nritems(n);
	uint8_t *p = ptr_at(n, i);
	struct result cr = { .block = ptr_block(p), .gen = ptr_gen(p) };
	struct range child = *r;
	int rc;

	range_child(&child, n, i);
	rc = change_rec(v, c, cr.block, cr.gen, level - 1, &cr, &child);
	if (rc)
		return rc;
	rc = node_cow(v, &res->block, &res->gen, &n);
	if (rc)
		return rc;
	ptr_set_child(ptr_at(n, i), cr.block, cr.gen);
	/* ptr[0]'s key is only a lower bound, and keys below it are routed to
	 * child 0 too (after an emptied child 0 was dropped, it is the old
	 * ptr[1]'s key). Lower it to the key inserted, or a split of child 0
	 * would put a separator at or below it: keys out of order. */
	if (i == 0 && (c->op == OP_INSERT || c->op == OP_PUT)) {
		struct mfs_key k0;

		ptr_key(cptr_at(n, 0), &k0);
		if (mfs_key_cmp(c->key, &k0) < 0)
			ptr_set(ptr_at(n, 0), c->key, cr.block, cr.gen);
	}
	if (cr.empty) {
		/* Invariant (4): drop the empty child. */
		rc = node_free(v, cr.block, cr.gen);
		if (rc)
			return rc;
		memmove(ptr_at(n, i), cptr_at(n, i + 1), (size_t)(nr - i - 1) * PTR_SZ);
		set_nritems(n, --nr);
		memset(ptr_at(n, nr), 0, PTR_SZ);
		res->empty = nr == 0;
		res->underfull = nr < MIN_PTRS;
		return 0;
	}
	if (cr.split && nr < MFS_NODE_MAX_PTRS) {
		memmove(ptr_at(n, i + 2), cptr_at(n, i + 1), (size_t)(nr - i - 1) * PTR_SZ);
		ptr_set(ptr_at(n, i + 1), &cr.rkey, cr.rblock, v->gen);
		set_nritems(n, ++nr);
	} else if (cr.split) {
		/* Full: lay the pointers out in a scratch array one entry
		 * longer than a node holds, then split it in two halves. */
		uint8_t all[(MFS_NODE_MAX_PTRS + 1) * PTR_SZ];
		unsigned k;
		uint8_t *right;

		memcpy(all, cptr_at(n, 0), (size_t)(i + 1) * PTR_SZ);
		ptr_set(all + (i + 1) * PTR_SZ, &cr.rkey, cr.rblock, v->gen);
		memcpy(all + (i + 2) * PTR_SZ, cptr_at(n, i + 1),
		       (size_t)(nr - i - 1) * PTR_SZ);
		nr++;
		k = nr / 2;
		rc = node_alloc(v, c->tree, level, &res->rblock, &right);
		if (rc)
			return rc;
		memcpy(ptr_at(right, 0), all + k * PTR_SZ, (size_t)(nr - k) * PTR_SZ);
		set_nritems(right, nr - k);
		ptr_key(all + k * PTR_SZ, &res->rkey);
		memcpy(ptr_at(n, 0), all, (size_t)k * PTR_SZ);
		memset(ptr_at(n, k), 0, (size_t)(MFS_NODE_MAX_PTRS - k) * PTR_SZ);
		set_nritems(n, k);
		res->split = true;
	}
	if (cr.underfull && !cr.split && nd_nritems(n) > 1) {
		bool merged;
		unsigned j = i + 1 < nd_nritems(n) ? i : i - 1;

		rc = merge_children(v, c, n, j, level - 1, &merged);
		if (rc)
			return rc;
	}
	res->underfull = nd_nritems(n) < MIN_PTRS;
	return 0;
}

static int change_rec(struct mfs_vol *v, struct change *c, uint64_t block,
		      uint64_t gen, unsigned level, struct result *res,
		      const struct range *r)
{
	uint8_t *n;
	int rc;

	rc = node_get(v, c->tree, block, gen, level, &n);
	if (!rc)
		rc = range_check(v, c->tree, block, n, r);
	if (rc)
		return rc;
	res->block = block;
	res->gen = gen;
	res->split = false;
	res->underfull = false;
	res->empty = false;
	if (level == 0)
		return change_leaf(v, c, n, res);
	return change_node(v, c, n, level, res, r);
}

/* Apply a change from the root, then grow (split root) or shrink (root
 * with one child) the tree. */
static int change_tree(struct mfs_vol *v, struct change *c)
{
	struct mfs_root *root;
	struct result res;
	int rc;

	if (c->tree >= MFS_TREE_COUNT)
		return -EINVAL;
	if (v->readonly)
		return -EROFS;
	if (v->error)
		return v->error;
	root = &v->roots[c->tree];
	/* Worst case: a copy and a split per level, plus a new root. */
	if (mfs_alloc_avail_blocks(v->alloc) < 2u * (root->level + 1u) + 1u)
		return -ENOSPC;
	rc = change_rec(v, c, root->block, root->generation, root->level, &res,
			&(struct range){ 0 });
	if (rc == -EEXIST || rc == -ENOENT || rc == -EUCLEAN)
		return rc;
	if (rc)
		goto fail;
	root->block = res.block;
	root->generation = res.gen;
	v->seq++;
	v->dirty = true;
	if (res.split) {
		uint64_t nb;
		uint8_t *n, *left;

		if (root->level + 1u >= MFS_MAX_LEVELS) {
			rc = -EFBIG;
			goto fail;
		}
		rc = node_alloc(v, c->tree, root->level + 1u, &nb, &n);
		if (rc)
			goto fail;
		left = mfs_image_block(v->img, res.block);
		if (root->level == 0) {
			struct mfs_key k0 = key_min;

			if (nd_nritems(left))
				item_key(citem_at(left, 0), &k0);
			ptr_set(ptr_at(n, 0), &k0, res.block, v->gen);
		} else {
			struct mfs_key k0;

			ptr_key(cptr_at(left, 0), &k0);
			ptr_set(ptr_at(n, 0), &k0, res.block, v->gen);
		}
		ptr_set(ptr_at(n, 1), &res.rkey, res.rblock, v->gen);
		set_nritems(n, 2);
		root->block = nb;
		root->generation = v->gen;
		root->level++;
	}
	if (res.empty && root->level > 0) {
		/* Cannot happen (a root with one child is collapsed below), but
		 * an empty tree must be an empty leaf. */
		uint64_t nb;
		uint8_t *n;

		rc = node_free(v, root->block, root->generation);
		if (!rc)
			rc = node_alloc(v, c->tree, 0, &nb, &n);
		if (rc)
			goto fail;
		root->block = nb;
		root->generation = v->gen;
		root->level = 0;
	}
	while (root->level > 0) {
		uint8_t *n = mfs_image_block(v->img, root->block);
		uint64_t child;

		if (nd_nritems(n) != 1)
			break;
		/* The root was changed above, so it is of this generation. */
		child = ptr_block(cptr_at(n, 0));
		rc = node_free(v, root->block, root->generation);
		if (rc)
			goto fail;
		root->block = child;
		root->generation = ptr_gen(cptr_at(n, 0));
		root->level--;
	}
	return 0;
fail:
	/* Part of the change may be in place: only an abort can undo it. */
	mfs_log(MFS_LOG_ERR, "tree %u: change failed half-way (%s); the volume "
		"is read-only until the transaction is aborted",
		c->tree, strerror(-rc));
	if (!v->error)
		v->error = rc;
	return rc;
}

int mfs_btree_insert(struct mfs_vol *v, unsigned tree,
		     const struct mfs_key *key, const void *val, size_t len)
{
	struct change c = { .op = OP_INSERT, .tree = tree, .key = key,
			    .val = val, .len = len };

	if (len > MFS_MAX_VALUE)
		return -E2BIG;
	return change_tree(v, &c);
}

int mfs_btree_update(struct mfs_vol *v, unsigned tree,
		     const struct mfs_key *key, const void *val, size_t len)
{
	struct change c = { .op = OP_UPDATE, .tree = tree, .key = key,
			    .val = val, .len = len };

	if (len > MFS_MAX_VALUE)
		return -E2BIG;
	return change_tree(v, &c);
}

int mfs_btree_put(struct mfs_vol *v, unsigned tree, const struct mfs_key *key,
		  const void *val, size_t len)
{
	struct change c = { .op = OP_PUT, .tree = tree, .key = key,
			    .val = val, .len = len };

	if (len > MFS_MAX_VALUE)
		return -E2BIG;
	return change_tree(v, &c);
}

int mfs_btree_delete(struct mfs_vol *v, unsigned tree,
		     const struct mfs_key *key)
{
	struct change c = { .op = OP_DELETE, .tree = tree, .key = key };

	return change_tree(v, &c);
}

int mfs_btree_lookup_mut(struct mfs_vol *v, unsigned tree,
			 const struct mfs_key *key, void **val, size_t *len)
{
	struct change c = { .op = OP_MUT, .tree = tree, .key = key,
			    .mut_val = val, .mut_len = len };

	return change_tree(v, &c);
}

int mfs_btree_create(struct mfs_vol *v, unsigned tree)
{
	uint64_t block;
	uint8_t *n;
	int rc;

	if (tree >= MFS_TREE_COUNT)
		return -EINVAL;
	rc = node_alloc(v, tree, 0, &block, &n);
	if (rc)
		return rc;
	v->roots[tree].block = block;
	v->roots[tree].generation = v->gen;
	v->roots[tree].level = 0;
	v->seq++;
	v->dirty = true;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Lookups                                                             */
/* ------------------------------------------------------------------ */


/* Descend to the leaf whose range holds key. */
static int find_leaf(struct mfs_vol *v, unsigned tree,
		     const struct mfs_key *key, uint8_t **leaf)
{
	struct range r = { 0 };
	struct mfs_root *root;
	uint64_t block, gen;
	unsigned level;
	uint8_t *n;
	int rc;

	if (tree >= MFS_TREE_COUNT)
		return -EINVAL;
	root = &v->roots[tree];
	block = root->block;
	gen = root->generation;
	level = root->level;
	for (;;) {
		rc = node_get(v, tree, block, gen, level, &n);
		if (!rc)
			rc = range_check(v, tree, block, n, &r);
		if (rc)
			return rc;
		if (level == 0)
			break;
		{
			unsigned slot = node_search(n, key);
			const uint8_t *p = cptr_at(n, slot);

			range_child(&r, n, slot);
			block = ptr_block(p);
			gen = ptr_gen(p);
		}
		level--;
	}
	*leaf = n;
	return 0;
}

int mfs_btree_lookup(struct mfs_vol *v, unsigned tree,
		     const struct mfs_key *key, const void **val, size_t *len)
{
	uint8_t *leaf;
	unsigned pos;
	bool found;
	int rc;

	rc = find_leaf(v, tree, key, &leaf);
	if (rc)
		return rc;
	pos = leaf_search(leaf, key, &found);
	if (!found)
		return -ENOENT;
	if (val)
		*val = leaf + item_voff(citem_at(leaf, pos));
	if (len)
		*len = item_size(citem_at(leaf, pos));
	return 0;
}

/* ------------------------------------------------------------------ */
/* Cursors                                                             */
/* ------------------------------------------------------------------ */

void mfs_cursor_init(struct mfs_cursor *c, struct mfs_vol *v, unsigned tree,
		     const struct mfs_key *start, const struct mfs_key *end)
{
	memset(c, 0, sizeof(*c));
	c->v = v;
	c->tree = tree;
	c->next = *start;
	c->end = *end;
	c->done = mfs_key_cmp(start, end) > 0 || tree >= MFS_TREE_COUNT;
}

/* Build the path to the first item >= c->next. */
static int cursor_seek(struct mfs_cursor *c)
{
	struct mfs_vol *v = c->v;
	struct mfs_root *root = &v->roots[c->tree];
	uint64_t block = root->block, gen = root->generation;
	unsigned level = root->level;
	struct range r = { 0 };
	uint8_t *n;
	int rc, d = 0;

	for (;;) {
		unsigned slot;
		bool found;

		rc = node_get(v, c->tree, block, gen, level, &n);
		if (!rc)
			rc = range_check(v, c->tree, block, n, &r);
		if (rc)
			return rc;
		if (level == 0)
			slot = leaf_search(n, &c->next, &found);
		else
			slot = node_search(n, &c->next);
		c->path[d].block = block;
		c->path[d].slot = slot;
		d++;
		if (level == 0)
			break;
		range_child(&r, n, slot);
		block = ptr_block(cptr_at(n, slot));
		gen = ptr_gen(cptr_at(n, slot));
		level--;
	}
	c->depth = d;
	c->seq = v->seq;
	c->have_path = true;
	return 0;
}

/* Move the path to the first item of the next leaf; false at the end. */
static int cursor_next_leaf(struct mfs_cursor *c, bool *more)
{
	struct mfs_vol *v = c->v;
	int d = c->depth - 2;
	unsigned level;
	uint8_t *n;
	int rc;

	while (d >= 0) {
		n = mfs_image_block(v->img, c->path[d].block);
		if (c->path[d].slot + 1 < nd_nritems(n))
			break;
		d--;
	}
	if (d < 0) {
		*more = false;
		return 0;
	}
	c->path[d].slot++;
	level = (unsigned)(c->depth - 1 - d);
	for (; d < c->depth - 1; d++) {
		const uint8_t *p;

		n = mfs_image_block(v->img, c->path[d].block);
		p = cptr_at(n, c->path[d].slot);
		level--;
		rc = node_get(v, c->tree, ptr_block(p), ptr_gen(p), level, &n);
		if (rc)
			return rc;
		c->path[d + 1].block = ptr_block(p);
		c->path[d + 1].slot = 0;
	}
	*more = true;
	return 0;
}

int mfs_cursor_next(struct mfs_cursor *c, struct mfs_key *key,
		    const void **val, size_t *len)
{
	struct mfs_vol *v = c->v;
	uint8_t *leaf;
	const uint8_t *it;
	struct mfs_key k;
	int rc;

	if (c->done)
		return 0;
	if (!c->have_path || c->seq != v->seq) {
		rc = cursor_seek(c);
		if (rc)
			return rc;
	}
	for (;;) {
		leaf = mfs_image_block(v->img, c->path[c->depth - 1].block);
		if (c->path[c->depth - 1].slot < nd_nritems(leaf))
			break;
		{
			bool more;

			rc = cursor_next_leaf(c, &more);
			if (rc)
				return rc;
			if (!more) {
				c->done = true;
				return 0;
			}
		}
	}
	it = citem_at(leaf, c->path[c->depth - 1].slot);
	item_key(it, &k);
	/* Keys only grow along the leaves; one below where the cursor
	 * stands means a separator or a leaf is damaged (see struct range). */
	if (mfs_key_cmp(&k, &c->next) < 0)
		return MFS_CORRUPT(v, "tree %u: node %llu: keys out of order "
				   "across leaves", c->tree,
				   (unsigned long long)c->path[c->depth - 1].block);
	if (mfs_key_cmp(&k, &c->end) > 0) {
		c->done = true;
		return 0;
	}
	c->path[c->depth - 1].slot++;
	if (key)
		*key = k;
	if (val)
		*val = leaf + item_voff(it);
	if (len)
		*len = item_size(it);
	c->next = k;
	if (!key_succ(&c->next))
		c->done = true;
	return 1;
}

int mfs_btree_lookup_le(struct mfs_vol *v, unsigned tree, struct mfs_key *key,
			const void **val, size_t *len)
{
	struct mfs_root *root;
	uint64_t block, gen;
	unsigned level;
	/* The best candidate seen in a left subtree we did not enter. */
	uint64_t alt_block = 0, alt_gen = 0;
	unsigned alt_level = 0;
	bool have_alt = false;
	struct range r = { 0 }, alt_r = { 0 };
	unsigned pos;
	uint8_t *n;
	int rc;

	if (tree >= MFS_TREE_COUNT)
		return -EINVAL;
	root = &v->roots[tree];
	block = root->block;
	gen = root->generation;
	level = root->level;
	for (;;) {
		bool found;

		rc = node_get(v, tree, block, gen, level, &n);
		if (!rc)
			rc = range_check(v, tree, block, n, &r);
		if (rc)
			return rc;
		if (level > 0) {
			unsigned i = node_search(n, key);

			if (i > 0) {
				alt_block = ptr_block(cptr_at(n, i - 1));
				alt_gen = ptr_gen(cptr_at(n, i - 1));
				alt_level = level - 1;
				alt_r = r;
				range_child(&alt_r, n, i - 1);
				have_alt = true;
			}
			range_child(&r, n, i);
			block = ptr_block(cptr_at(n, i));
			gen = ptr_gen(cptr_at(n, i));
			level--;
			continue;
		}
		pos = leaf_search(n, key, &found);
		if (found || pos > 0) {
			if (!found)
				pos--;
			break;
		}
		/* Nothing <= key here: the answer is the last item of the
		 * nearest left subtree. */
		if (!have_alt)
			return -ENOENT;
		block = alt_block;
		gen = alt_gen;
		level = alt_level;
		have_alt = false;
		r = alt_r;
		for (;;) {
			rc = node_get(v, tree, block, gen, level, &n);
			if (!rc)
				rc = range_check(v, tree, block, n, &r);
			if (rc)
				return rc;
			if (level == 0)
				break;
			{
				const uint8_t *p = cptr_at(n, nd_nritems(n) - 1);

				range_child(&r, n, nd_nritems(n) - 1);
				block = ptr_block(p);
				gen = ptr_gen(p);
			}
			level--;
		}
		if (nd_nritems(n) == 0)
			return MFS_CORRUPT(v, "tree %u: empty non-root leaf %llu",
					   tree, (unsigned long long)block);
		pos = nd_nritems(n) - 1;
		break;
	}
	item_key(citem_at(n, pos), key);
	if (val)
		*val = n + item_voff(citem_at(n, pos));
	if (len)
		*len = item_size(citem_at(n, pos));
	return 0;
}

/* ------------------------------------------------------------------ */
/* Commit support and checking                                         */
/* ------------------------------------------------------------------ */

static int finish_rec(struct mfs_vol *v, unsigned tree, uint64_t block,
		      unsigned level)
{
	uint8_t *n = mfs_image_block(v->img, block);
	unsigned i;
	int rc;

	if (!n)
		return -EIO;
	if (level > 0) {
		for (i = 0; i < nd_nritems(n); i++) {
			const uint8_t *p = cptr_at(n, i);

			if (ptr_gen(p) != v->gen)
				continue;
			rc = finish_rec(v, tree, ptr_block(p), level - 1);
			if (rc)
				return rc;
		}
	}
	mfs_put_le32(n, node_crc(n));
	/* Written by us: no need to verify it after the commit. */
	vcache_set(v, block, v->gen);
	return 0;
}

int mfs_btree_finish(struct mfs_vol *v, unsigned tree)
{
	struct mfs_root *root;

	if (tree >= MFS_TREE_COUNT)
		return -EINVAL;
	root = &v->roots[tree];
	if (root->generation != v->gen)
		return 0;
	return finish_rec(v, tree, root->block, root->level);
}

struct check_ctx {
	struct mfs_vol *v;
	unsigned tree;
	int (*cb)(void *arg, uint64_t block);
	void *arg;
	/* Blocks seen, to report a node reachable twice. */
	uint64_t *seen;
	size_t seen_cap, seen_nr;
};

static int seen_add(struct check_ctx *cx, uint64_t block)
{
	size_t i;

	if ((cx->seen_nr + 1) * 2 > cx->seen_cap) {
		size_t ncap = cx->seen_cap ? cx->seen_cap * 2 : 1024;
		uint64_t *ns = calloc(ncap, sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		for (i = 0; i < cx->seen_cap; i++) {
			uint64_t b = cx->seen[i];
			size_t h;

			if (!b)
				continue;
			h = (size_t)((b * 0x9e3779b97f4a7c15ULL) % ncap);
			while (ns[h])
				h = (h + 1) % ncap;
			ns[h] = b;
		}
		free(cx->seen);
		cx->seen = ns;
		cx->seen_cap = ncap;
	}
	i = (size_t)((block * 0x9e3779b97f4a7c15ULL) % cx->seen_cap);
	while (cx->seen[i]) {
		if (cx->seen[i] == block)
			return MFS_CORRUPT(cx->v, "tree %u: node %llu is referenced twice",
					   cx->tree, (unsigned long long)block);
		i = (i + 1) % cx->seen_cap;
	}
	cx->seen[i] = block;
	cx->seen_nr++;
	return 0;
}

static int check_rec(struct check_ctx *cx, uint64_t block, uint64_t gen,
		     unsigned level, const struct mfs_key *lo,
		     const struct mfs_key *hi, bool is_root)
{
	struct mfs_vol *v = cx->v;
	uint8_t *n;
	unsigned i, nr;
	int rc;

	rc = seen_add(cx, block);
	if (rc)
		return rc;
	rc = node_get(v, cx->tree, block, gen, level, &n);
	if (rc)
		return rc;
	/* node_get skips these for cached and fresh nodes; a check does all. */
	if (gen != v->gen && mfs_get_le32(n) != node_crc(n))
		return MFS_CORRUPT(v, "tree %u: node %llu: checksum mismatch",
				   cx->tree, (unsigned long long)block);
	rc = verify_items(v, n, block, lo, hi);
	if (rc)
		return rc;
	nr = nd_nritems(n);
	if (nr == 0 && !is_root)
		return MFS_CORRUPT(v, "tree %u: empty non-root node %llu",
				   cx->tree, (unsigned long long)block);
	if (cx->cb) {
		rc = cx->cb(cx->arg, block);
		if (rc)
			return rc;
	}
	if (level == 0)
		return 0;
	for (i = 0; i < nr; i++) {
		const uint8_t *p = cptr_at(n, i);
		struct mfs_key clo, chi;
		const struct mfs_key *plo = lo, *phi = hi;

		if (i > 0) {
			ptr_key(p, &clo);
			plo = &clo;
		}
		if (i + 1 < nr) {
			ptr_key(cptr_at(n, i + 1), &chi);
			phi = &chi;
		}
		if (ptr_gen(p) > gen)
			return MFS_CORRUPT(v, "tree %u: node %llu points to a newer child",
					   cx->tree, (unsigned long long)block);
		rc = check_rec(cx, ptr_block(p), ptr_gen(p), level - 1, plo, phi,
			       false);
		if (rc)
			return rc;
	}
	return 0;
}

int mfs_btree_check(struct mfs_vol *v, unsigned tree,
		    int (*block_cb)(void *arg, uint64_t block), void *arg)
{
	struct check_ctx cx = { .v = v, .tree = tree, .cb = block_cb, .arg = arg };
	struct mfs_root *root;
	int rc;

	if (tree >= MFS_TREE_COUNT)
		return -EINVAL;
	root = &v->roots[tree];
	rc = check_rec(&cx, root->block, root->generation, root->level, NULL,
		       NULL, true);
	free(cx.seen);
	return rc;
}
