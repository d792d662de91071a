/* SPDX-License-Identifier: MIT */
/*
 * check_tree.c — the checker's tree walk, pass 1 (trees, items, blocks)
 * and the walk of the repaired trees for pass 5. See check.h.
 *
 * Layer: program library (9). Calls btree, alloc, image, txn.
 *
 * Tree nodes are read straight from the mapping and checked here,
 * independently of btree.c: magic, own block number, the generation the
 * parent's pointer records, level, tree, UUID, checksum, item and pointer
 * bounds, key order and the parent's key range, values that do not
 * overlap, and no node reached twice from either tree. A damaged node is
 * reported and skipped, never followed, and the walk goes on. Everything
 * the btree API later touches has passed these checks, which include all
 * of btree.c's own, so a repair never trips over damage.
 *
 * Repairs of pass 1: a damaged FS tree is rebuilt from the items of its
 * good leaves (what was under a damaged node is lost, and reported); a
 * damaged or wrong FREE tree is replaced by one written from the blocks in
 * use; bad items are deleted; extents overlapping their own file are
 * dropped, extents sharing blocks with anything else are cloned.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "btree.h"
#include "check_int.h"
#include "crc32c.h"
#include "endian.h"
#include "image.h"
#include "mmapfs/mmapfs.h"
#include "siphash.h"
#include "txn.h"
#include "xattr.h"

#define DI(f) offsetof(struct mfs_disk_inode, f)
#define ITEM_SZ sizeof(struct mfs_disk_item)
#define PTR_SZ sizeof(struct mfs_disk_ptr)
#define LEAF_ITEMS_MAX (MFS_NODE_SPACE / ITEM_SZ)
#define FILE_BLOCKS_MAX (MFS_FILE_SIZE_MAX >> MFS_BLOCK_SHIFT)

/* ------------------------------------------------------------------ */
/* Nodes                                                               */
/* ------------------------------------------------------------------ */

static unsigned nd_nritems(const uint8_t *n)
{
	return mfs_get_le16(n + offsetof(struct mfs_disk_node, nd_nritems));
}

static const uint8_t *item_at(const uint8_t *n, unsigned i)
{
	return n + MFS_NODE_HDR + i * ITEM_SZ;
}

static void item_key(const uint8_t *it, struct mfs_key *k)
{
	k->objectid = mfs_get_le64(it + offsetof(struct mfs_disk_item, it_objectid));
	k->offset = mfs_get_le64(it + offsetof(struct mfs_disk_item, it_offset));
	k->type = it[offsetof(struct mfs_disk_item, it_type)];
}

static unsigned item_size(const uint8_t *it)
{
	return mfs_get_le16(it + offsetof(struct mfs_disk_item, it_size));
}

static unsigned item_voff(const uint8_t *it)
{
	return mfs_get_le16(it + offsetof(struct mfs_disk_item, it_voff));
}

static const uint8_t *ptr_at(const uint8_t *n, unsigned i)
{
	return n + MFS_NODE_HDR + i * PTR_SZ;
}

static void ptr_key(const uint8_t *p, struct mfs_key *k)
{
	k->objectid = mfs_get_le64(p + offsetof(struct mfs_disk_ptr, kp_objectid));
	k->offset = mfs_get_le64(p + offsetof(struct mfs_disk_ptr, kp_offset));
	k->type = p[offsetof(struct mfs_disk_ptr, kp_type)];
}

static uint64_t ptr_block(const uint8_t *p)
{
	return mfs_get_le64(p + offsetof(struct mfs_disk_ptr, kp_block));
}

static uint64_t ptr_gen(const uint8_t *p)
{
	return mfs_get_le64(p + offsetof(struct mfs_disk_ptr, kp_generation));
}

struct span {
	unsigned off, len;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* A walk over one tree. */
struct walk {
	struct ck *c;
	unsigned tree;
	bool running;              /* nodes of v->gen have no checksum yet */
	struct mfs_alloc *claims;  /* node blocks are claimed here */
	int (*leaf)(struct walk *w, uint64_t block, const uint8_t *n);
	int (*bad)(struct walk *w, uint64_t block, unsigned level,
		   const struct mfs_key *lo, const struct mfs_key *hi,
		   const char *why);
	void *arg;                 /* the callbacks' own state */
	uint64_t nodes;
};

/* Check the items of a leaf: bounds, order, the parent's range, values
 * that do not overlap. NULL or the reason. */
static const char *leaf_check(const uint8_t *n, unsigned nr,
			      const struct mfs_key *lo, const struct mfs_key *hi)
{
	struct span sp[LEAF_ITEMS_MAX];
	struct mfs_key k, prev = { 0, 0, 0 };
	unsigned i, nsp = 0, data_start = MFS_NODE_HDR + nr * (unsigned)ITEM_SZ;

	for (i = 0; i < nr; i++) {
		const uint8_t *it = item_at(n, i);
		unsigned sz = item_size(it), off = item_voff(it);

		if (sz > MFS_MAX_VALUE || off < data_start ||
		    off + sz > MFS_BLOCK_SIZE)
			return "has an item value outside the block";
		item_key(it, &k);
		if (i > 0 && mfs_key_cmp(&prev, &k) >= 0)
			return "has keys out of order";
		if ((lo && mfs_key_cmp(&k, lo) < 0) ||
		    (hi && mfs_key_cmp(&k, hi) >= 0))
			return "has a key outside the range its parent gives";
		prev = k;
		/* An empty value occupies nothing, wherever it points. */
		if (sz) {
			sp[nsp].off = off;
			sp[nsp].len = sz;
			nsp++;
		}
	}
	qsort(sp, nsp, sizeof(sp[0]), span_cmp);
	for (i = 1; i < nsp; i++)
		if (sp[i - 1].off + sp[i - 1].len > sp[i].off)
			return "has item values that overlap";
	return NULL;
}

static const char *inner_check(const uint8_t *n, unsigned nr, uint64_t gen,
			       const struct mfs_key *lo, const struct mfs_key *hi)
{
	struct mfs_key k, prev = { 0, 0, 0 };
	unsigned i;

	if (nr == 0 || nr > MFS_NODE_MAX_PTRS)
		return "has a bad pointer count";
	for (i = 0; i < nr; i++) {
		ptr_key(ptr_at(n, i), &k);
		if (i > 0 && mfs_key_cmp(&prev, &k) >= 0)
			return "has keys out of order";
		/* ptr[0]'s key only bounds the node from below. */
		if ((i > 0 && lo && mfs_key_cmp(&k, lo) < 0) ||
		    (hi && mfs_key_cmp(&k, hi) >= 0))
			return "has a key outside the range its parent gives";
		if (ptr_gen(ptr_at(n, i)) > gen)
			return "points to a child newer than itself";
		prev = k;
	}
	return NULL;
}

/* Map and check node (block, gen, level) as its parent describes it.
 * Returns the node, or NULL with the reason in why. */
static const uint8_t *node_check(struct walk *w, uint64_t block, uint64_t gen,
				 unsigned level, const struct mfs_key *lo,
				 const struct mfs_key *hi, bool is_root,
				 char *why, size_t wlen)
{
	struct mfs_vol *v = w->c->v;
	uint64_t maxgen = w->running ? v->gen : v->sb.generation;
	const uint8_t *n;
	const char *msg;
	unsigned nr;

	if (block < MFS_FIRST_DATA_BLOCK || block >= w->c->nblocks ||
	    !(n = mfs_image_block(v->img, block))) {
		snprintf(why, wlen, "is outside the image");
		return NULL;
	}
	if (gen == 0 || gen > maxgen || level >= MFS_MAX_LEVELS) {
		snprintf(why, wlen, "has an impossible generation or level in "
			 "its pointer");
		return NULL;
	}
	if (mfs_get_le32(n + offsetof(struct mfs_disk_node, nd_magic)) != MFS_NODE_MAGIC ||
	    mfs_get_le64(n + offsetof(struct mfs_disk_node, nd_block)) != block) {
		snprintf(why, wlen, "is not a tree node");
		return NULL;
	}
	if (mfs_get_le64(n + offsetof(struct mfs_disk_node, nd_generation)) != gen) {
		snprintf(why, wlen, "has generation %llu, its parent expects %llu",
			 (unsigned long long)mfs_get_le64(
				 n + offsetof(struct mfs_disk_node, nd_generation)),
			 (unsigned long long)gen);
		return NULL;
	}
	if (n[offsetof(struct mfs_disk_node, nd_level)] != level ||
	    mfs_get_le32(n + offsetof(struct mfs_disk_node, nd_tree)) != w->tree) {
		snprintf(why, wlen, "has the wrong level or tree");
		return NULL;
	}
	if (!(w->running && gen == v->gen) &&
	    mfs_get_le32(n) != mfs_crc32c(0, n + 4, MFS_BLOCK_SIZE - 4)) {
		snprintf(why, wlen, "has a bad checksum");
		return NULL;
	}
	if (memcmp(n + offsetof(struct mfs_disk_node, nd_uuid), v->sb.uuid,
		   MFS_UUID_SIZE) != 0) {
		snprintf(why, wlen, "belongs to another filesystem");
		return NULL;
	}
	nr = nd_nritems(n);
	if (level == 0) {
		if (nr > LEAF_ITEMS_MAX)
			msg = "has too many items";
		else if (nr == 0 && !is_root)
			msg = "is an empty leaf";
		else
			msg = leaf_check(n, nr, lo, hi);
	} else {
		msg = inner_check(n, nr, gen, lo, hi);
	}
	if (msg) {
		snprintf(why, wlen, "%s", msg);
		return NULL;
	}
	return n;
}

static int walk_rec(struct walk *w, uint64_t block, uint64_t gen,
		    unsigned level, const struct mfs_key *lo,
		    const struct mfs_key *hi, bool is_root)
{
	char why[128];
	const uint8_t *n;
	unsigned i, nr;
	int rc;

	n = node_check(w, block, gen, level, lo, hi, is_root, why, sizeof(why));
	if (!n)
		return w->bad(w, block, level, lo, hi, why);
	/* Levels strictly descend, so a second visit is a shared node, never
	 * a loop. */
	rc = mfs_alloc_load(w->claims, block, 1);
	if (rc == -EUCLEAN)
		return w->bad(w, block, level, lo, hi,
			      "is referenced more than once");
	if (rc)
		return rc;
	w->nodes++;
	ck_progress(w->c, 1);
	if (level == 0)
		return w->leaf(w, block, n);
	nr = nd_nritems(n);
	for (i = 0; i < nr; i++) {
		const uint8_t *p = ptr_at(n, i);
		struct mfs_key clo, chi;
		const struct mfs_key *plo = lo, *phi = hi;

		if (i > 0) {
			ptr_key(p, &clo);
			plo = &clo;
		}
		if (i + 1 < nr) {
			ptr_key(ptr_at(n, i + 1), &chi);
			phi = &chi;
		}
		rc = walk_rec(w, ptr_block(p), ptr_gen(p), level - 1, plo, phi,
			      false);
		if (rc)
			return rc;
	}
	return 0;
}

static int walk_tree(struct walk *w, const struct mfs_root *root)
{
	return walk_rec(w, root->block, root->generation, root->level, NULL,
			NULL, true);
}

/* ------------------------------------------------------------------ */
/* Pass 1: the superblock slots                                        */
/* ------------------------------------------------------------------ */

/* The slot that is not current: what a crash leaves there (torn, or older
 * than it should be) is a note, since the slot in use is whole and the
 * next commit rewrites the other one (a commit always writes the slot that
 * is not current); a slot written whole but wrong is a problem, rewritten
 * by the repair's commit. See ck_other_slot(). */
static void check_slots(struct ck *c)
{
	struct mfs_vol *v = c->v;
	unsigned other = 1u - v->cur_slot;
	struct mfs_super sb;
	const char *why;

	switch (ck_other_slot(v, &sb, &why)) {
	case CK_SLOT_BAD:
		if (ck_problem(c, "Rewrite", "Superblock slot %u %s (slot %u, "
			       "generation %llu, is in use)", other, why,
			       v->cur_slot, (unsigned long long)v->sb.generation))
			v->dirty = true;
		return;
	case CK_SLOT_NOTE:
		if (sb.generation)
			ck_note(c, "Note: superblock slot %u %s (generation %llu; "
				"slot %u, generation %llu, is in use), as a lost "
				"superblock write leaves it: harmless, the next "
				"commit rewrites it",
				other, why, (unsigned long long)sb.generation,
				v->cur_slot, (unsigned long long)v->sb.generation);
		else
			ck_note(c, "Note: superblock slot %u %s (slot %u, "
				"generation %llu, is in use), as a commit "
				"interrupted by a crash leaves it: harmless, the "
				"next commit rewrites it", other, why, v->cur_slot,
				(unsigned long long)v->sb.generation);
		return;
	case CK_SLOT_OK:
		break;
	}
	ck_verbose(c, "Superblock slot %u: generation %llu (in use); slot %u: "
		   "generation %llu", v->cur_slot,
		   (unsigned long long)v->sb.generation, other,
		   (unsigned long long)sb.generation);
}

/* ------------------------------------------------------------------ */
/* Pass 1: the FREE tree                                               */
/* ------------------------------------------------------------------ */

static int bad_node(struct walk *w, uint64_t block, unsigned level,
		    const struct mfs_key *lo, const struct mfs_key *hi,
		    const char *why)
{
	struct ck *c = w->c;
	char a[64], b[64];

	/* The committed state points at it: never hand it out before the
	 * repair is committed. */
	if (block >= MFS_FIRST_DATA_BLOCK && block < c->nblocks) {
		int rc = ck_runs_add(&c->extra, block, 1);

		if (rc)
			return rc;
	}
	if (w->tree == MFS_TREE_FREE) {
		c->free_bad = true;
		ck_problem(c, "Rebuild", "FREE tree: node %llu (level %u) %s; "
			   "the free-space tree will be rebuilt from the blocks "
			   "in use", (unsigned long long)block, level, why);
	} else {
		c->fs_bad = true;
		ck_problem(c, "Drop", "FS tree: node %llu (level %u) %s; the "
			   "items in [%s, %s) under it are lost",
			   (unsigned long long)block, level, why,
			   ck_key_str(lo, a, sizeof(a)), ck_key_str(hi, b, sizeof(b)));
	}
	return 0;
}

static int free_leaf(struct walk *w, uint64_t block, const uint8_t *n)
{
	struct ck *c = w->c;
	unsigned i, nr = nd_nritems(n);
	char ks[64];

	for (i = 0; i < nr; i++) {
		const uint8_t *it = item_at(n, i);
		struct mfs_key k;
		uint64_t start, count, end = 0;

		item_key(it, &k);
		start = k.offset;
		count = item_size(it) == 8 ? mfs_get_le64(n + item_voff(it)) : 0;
		if (k.objectid != 0 || k.type != MFS_ITEM_FREE ||
		    item_size(it) != 8 || count == 0 ||
		    start < MFS_FIRST_DATA_BLOCK || start >= c->nblocks ||
		    count > c->nblocks - start) {
			c->free_bad = true;
			ck_problem(c, "Rebuild", "FREE tree: item %s is not a "
				   "valid free run", ck_key_str(&k, ks, sizeof(ks)));
			continue;
		}
		if (c->free.nr) {
			const struct run *l = &c->free.r[c->free.nr - 1];

			end = l->start + l->len;
		}
		if (start < end) {
			c->free_bad = true;
			ck_problem(c, "Rebuild", "FREE tree: free run %llu+%llu "
				   "overlaps the run before it",
				   (unsigned long long)start,
				   (unsigned long long)count);
			continue;
		}
		if (ck_runs_add(&c->free, start, count))
			return -ENOMEM;
	}
	(void)block;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Pass 1: the FS tree's items                                         */
/* ------------------------------------------------------------------ */

static int bad_item(struct ck *c, const struct mfs_key *k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* An item to delete: recorded (in key order) and reported. */
static int bad_item(struct ck *c, const struct mfs_key *k, const char *fmt, ...)
{
	char why[160], ks[64];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	rc = ck_grow((void **)&c->badkeys, &c->badkeys_cap, c->nbadkeys,
		  sizeof(*c->badkeys));
	if (rc)
		return rc;
	c->badkeys[c->nbadkeys++] = *k;
	ck_problem(c, "Remove", "Item %s %s", ck_key_str(k, ks, sizeof(ks)), why);
	return 0;
}

static bool mode_known(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFIFO:
	case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		return true;
	default:
		return false;
	}
}

static int inode_item(struct ck *c, const struct mfs_key *k,
		      const uint8_t *val, size_t len)
{
	struct ino_rec r;

	c->inode_items++;
	if (k->objectid > c->max_ino_read)
		c->max_ino_read = k->objectid;

	if (k->offset != 0 || len != sizeof(struct mfs_disk_inode))
		return bad_item(c, k, "is not a valid inode (%zu bytes)", len);
	memset(&r, 0, sizeof(r));
	r.ino = k->objectid;
	r.mode = mfs_get_le32(val + DI(di_mode));
	if (!mode_known(r.mode))
		return bad_item(c, k, "is an inode of unknown type (mode 0%o)",
				(unsigned)r.mode);
	r.nlink = mfs_get_le32(val + DI(di_nlink));
	r.size = mfs_get_le64(val + DI(di_size));
	r.blocks = mfs_get_le64(val + DI(di_blocks));
	r.parent = mfs_get_le64(val + DI(di_parent));
	r.dflags = mfs_get_le64(val + DI(di_flags));
	r.rdev = mfs_get_le64(val + DI(di_rdev));
	for (unsigned i = 0; i < 4; i++)
		if (mfs_get_le32(val + DI(di_atime_ns) + 4 * i) >= 1000000000u)
			r.bad_ns |= 1u << i;
	return ck_ino_append(c, &r);
}

/* The blocks an EXTENT value points at, if they lie in the image: the
 * committed state references them, whatever else is wrong. */
static int extent_ref(struct ck *c, const uint8_t *val, size_t len)
{
	uint64_t b, n;

	if (len != sizeof(struct mfs_disk_extent))
		return 0;
	b = mfs_get_le64(val + offsetof(struct mfs_disk_extent, ex_block));
	n = mfs_get_le64(val + offsetof(struct mfs_disk_extent, ex_count));
	if (b < MFS_FIRST_DATA_BLOCK || b >= c->nblocks || n == 0 ||
	    n > c->nblocks - b)
		return 0;
	return ck_runs_add(&c->extra, b, n);
}

static int extent_item(struct ck *c, struct ino_rec *owner,
		       const struct mfs_key *k, const uint8_t *val, size_t len)
{
	uint64_t b, n;
	uint32_t fl;
	int rc;

	if (!S_ISREG(owner->mode))
		return bad_item(c, k, "is an extent of inode %llu, which is not "
				"a regular file", (unsigned long long)owner->ino);
	if (len != sizeof(struct mfs_disk_extent))
		return bad_item(c, k, "is not a valid extent (%zu bytes)", len);
	b = mfs_get_le64(val + offsetof(struct mfs_disk_extent, ex_block));
	n = mfs_get_le64(val + offsetof(struct mfs_disk_extent, ex_count));
	fl = mfs_get_le32(val + offsetof(struct mfs_disk_extent, ex_flags));
	if (n == 0)
		return bad_item(c, k, "is an empty extent");
	if (fl & ~MFS_EXTENT_UNWRITTEN)
		return bad_item(c, k, "is an extent with unknown flags 0x%x",
				(unsigned)fl);
	if (b < MFS_FIRST_DATA_BLOCK || b >= c->nblocks || n > c->nblocks - b)
		return bad_item(c, k, "maps blocks %llu-%llu, outside the image "
				"(blocks 2-%llu)", (unsigned long long)b,
				(unsigned long long)(b + n - 1),
				(unsigned long long)(c->nblocks - 1));
	if (k->offset > FILE_BLOCKS_MAX || n > FILE_BLOCKS_MAX - k->offset)
		return bad_item(c, k, "lies beyond the largest file size");
	rc = ck_grow((void **)&c->ext, &c->ext_cap, c->next, sizeof(*c->ext));
	if (rc)
		return rc;
	c->ext[c->next].ino = owner->ino;
	c->ext[c->next].fblk = k->offset;
	c->ext[c->next].block = b;
	c->ext[c->next].count = n;
	c->ext[c->next].flags = fl;
	c->ext[c->next].act = E_KEEP;
	c->next++;
	ck_progress(c, n);
	return 0;
}

static int dirent_item(struct ck *c, struct ino_rec *owner,
		       const struct mfs_key *k, const uint8_t *val, size_t len)
{
	size_t at;

	if (!S_ISDIR(owner->mode))
		return bad_item(c, k, "is a directory entry of inode %llu, which "
				"is not a directory", (unsigned long long)owner->ino);
	/* The framing must hold for the whole item before any entry counts:
	 * a bad length makes every later entry meaningless. */
	if (len == 0)
		return bad_item(c, k, "is an empty directory entry item");
	for (at = 0; at < len;) {
		size_t nl;

		if (len - at < MFS_DIRENT_HDR)
			return bad_item(c, k, "has a truncated directory entry");
		nl = val[at + 9];
		if (nl == 0 || len - at - MFS_DIRENT_HDR < nl)
			return bad_item(c, k, "has a directory entry with a bad "
					"name length");
		at += MFS_DIRENT_HDR + nl;
	}
	for (at = 0; at < len;) {
		size_t nl = val[at + 9];
		struct dent *d;
		int rc;

		rc = ck_grow((void **)&c->dent, &c->dent_cap, c->ndent,
			  sizeof(*c->dent));
		if (!rc && c->names_len > UINT32_MAX - MFS_NAME_MAX - 1)
			rc = -ENOMEM; /* names are found by a 32-bit offset */
		if (!rc && c->names_len + nl + 1 > c->names_cap) {
			size_t ncap = c->names_cap ? c->names_cap * 2 : 4096;
			char *nn;

			while (ncap < c->names_len + nl + 1)
				ncap *= 2;
			nn = realloc(c->names, ncap);
			if (!nn)
				return -ENOMEM;
			c->names = nn;
			c->names_cap = ncap;
		}
		if (rc)
			return rc;
		d = &c->dent[c->ndent++];
		memset(d, 0, sizeof(*d));
		d->dir = k->objectid;
		d->hash = k->offset;
		d->ino = mfs_get_le64(val + at);
		d->type = val[at + 8];
		d->len = (uint8_t)nl;
		d->name = (uint32_t)c->names_len;
		memcpy(c->names + c->names_len, val + at + MFS_DIRENT_HDR, nl);
		c->names[c->names_len + nl] = 0;
		c->names_len += nl + 1;
		owner->entries++;
		at += MFS_DIRENT_HDR + nl;
	}
	return 0;
}

static int xa_end(struct ck *c);
static int xattr_item(struct ck *c, const struct mfs_key *k,
		      const uint8_t *val, size_t len);

static int fs_item(struct ck *c, const struct mfs_key *k, const uint8_t *val,
		   size_t len)
{
	struct ino_rec *owner = NULL;
	int rc;

	c->items++;
	/* Any item but the next chunk of the current attribute ends it. */
	if (c->xa.active && (k->type != MFS_ITEM_XATTR ||
			     k->objectid != c->xa.ino ||
			     (k->offset & (MFS_XATTR_CHUNKS - 1)) == 0 ||
			     k->offset >> MFS_XATTR_CHUNK_BITS != c->xa.h)) {
		rc = xa_end(c);
		if (rc)
			return rc;
	}
	if (k->type == MFS_ITEM_EXTENT) {
		rc = extent_ref(c, val, len);
		if (rc)
			return rc;
	}
	if (k->objectid == MFS_ORPHAN_OBJID) {
		if (k->type != MFS_ITEM_ORPHAN)
			return bad_item(c, k, "has the orphan list's id but is "
					"not an orphan entry");
		if (len != 0 || k->offset == 0 || k->offset > MFS_MAX_INO)
			return bad_item(c, k, "is a malformed orphan entry");
		rc = ck_grow((void **)&c->orphans, &c->orphans_cap, c->norphans,
			  sizeof(*c->orphans));
		if (rc)
			return rc;
		c->orphans[c->norphans++] = k->offset;
		return 0;
	}
	if (k->objectid == 0 || k->objectid > MFS_MAX_INO)
		return bad_item(c, k, "has an invalid object id");
	if (k->type == MFS_ITEM_INODE)
		return inode_item(c, k, val, len);
	/* Every other item of an inode follows its INODE item in key order. */
	if (c->nino && c->ino[c->nino - 1].ino == k->objectid)
		owner = &c->ino[c->nino - 1];
	switch (k->type) {
	case MFS_ITEM_INLINE: case MFS_ITEM_XATTR: case MFS_ITEM_DIRENT:
	case MFS_ITEM_EXTENT:
		if (!owner)
			return bad_item(c, k, "belongs to inode %llu, which does "
					"not exist", (unsigned long long)k->objectid);
		break;
	case MFS_ITEM_ORPHAN:
		return bad_item(c, k, "is an orphan entry outside the orphan list");
	default:
		return bad_item(c, k, "has unknown type %u", k->type);
	}
	switch (k->type) {
	case MFS_ITEM_INLINE:
		if (!S_ISLNK(owner->mode))
			return bad_item(c, k, "is inline data of inode %llu, which "
					"is not a symbolic link",
					(unsigned long long)owner->ino);
		/* Chunk c starts at byte c * 984: no gap, every chunk but
		 * the last full. */
		if (len == 0 || k->offset != owner->inline_next ||
		    owner->inline_bytes != k->offset * MFS_MAX_VALUE)
			owner->flags |= I_INLINE_BAD;
		owner->inline_next = k->offset + 1;
		owner->inline_bytes += len;
		return 0;
	case MFS_ITEM_XATTR:
		return xattr_item(c, k, val, len);
	case MFS_ITEM_DIRENT:
		return dirent_item(c, owner, k, val, len);
	default:
		return extent_item(c, owner, k, val, len);
	}
}

/* ---- Extended attributes (format.md §8.6, rules 1-4) ---- */

/* Drop every chunk of the current attribute read so far. */
static int xa_drop(struct ck *c, const char *why)
{
	unsigned i;
	int rc;

	for (i = 0; i < c->xa.nkeys; i++) {
		rc = bad_item(c, &c->xa.keys[i], "%s", why);
		if (rc)
			return rc;
	}
	c->xa.nkeys = 0;
	c->xa.bad = true;
	return 0;
}

/* The current attribute has ended (the next item is not one of its
 * chunks): it must have had all its chunks. */
static int xa_end(struct ck *c)
{
	char why[96];
	int rc = 0;

	if (c->xa.active && !c->xa.bad && c->xa.next != c->xa.n) {
		snprintf(why, sizeof(why), "is part of an incomplete extended "
			 "attribute (%u of %u chunks)", c->xa.next, c->xa.n);
		rc = xa_drop(c, why);
	}
	c->xa.active = false;
	return rc;
}

static int xattr_item(struct ck *c, const struct mfs_key *k,
		      const uint8_t *val, size_t len)
{
	uint64_t h = k->offset >> MFS_XATTR_CHUNK_BITS;
	unsigned ch = (unsigned)(k->offset & (MFS_XATTR_CHUNKS - 1));
	size_t want;

	if (ch == 0) {
		uint32_t total;
		unsigned nl;

		c->xa.active = true;
		c->xa.bad = false;
		c->xa.ino = k->objectid;
		c->xa.h = h;
		c->xa.nkeys = 0;
		if (len < MFS_XATTR_HDR)
			goto bad_head;
		total = mfs_get_le32(val);
		nl = val[4];
		if (total > MFS_XATTR_VALUE_MAX || nl == 0 || val[5] != 0 ||
		    len != MFS_XATTR_HDR + nl + mfs_xattr_first_len(total, nl) ||
		    memchr(val + MFS_XATTR_HDR, 0, nl) ||
		    mfs_siphash(c->v->sb.hash_seed, val + MFS_XATTR_HDR,
				nl) >> 8 != h)
			goto bad_head;
		c->xa.total = total;
		c->xa.name_len = nl;
		c->xa.n = mfs_xattr_chunks(total, nl);
		c->xa.next = 1;
		c->xa.keys[c->xa.nkeys++] = *k;
		return 0;
bad_head:
		c->xa.bad = true;
		return bad_item(c, k, "is a damaged extended attribute header");
	}
	if (!c->xa.active || c->xa.ino != k->objectid || c->xa.h != h)
		return bad_item(c, k, "is a chunk of an extended attribute "
				"without its first chunk");
	if (c->xa.bad)
		return bad_item(c, k, "is a chunk of a damaged extended "
				"attribute");
	if (ch != c->xa.next || ch >= c->xa.n) {
		int rc = xa_drop(c, "belongs to an extended attribute with "
				 "misplaced chunks");

		return rc ? rc : bad_item(c, k, "is a misplaced chunk of an "
					  "extended attribute");
	}
	want = c->xa.total - mfs_xattr_first_len(c->xa.total, c->xa.name_len) -
	       (size_t)(ch - 1) * MFS_MAX_VALUE;
	if (want > MFS_MAX_VALUE)
		want = MFS_MAX_VALUE;
	if (len != want) {
		int rc = xa_drop(c, "belongs to an extended attribute with a "
				 "chunk of the wrong size");

		return rc ? rc : bad_item(c, k, "is an extended attribute "
					  "chunk of %zu bytes, should be %zu",
					  len, want);
	}
	c->xa.keys[c->xa.nkeys++] = *k;
	c->xa.next++;
	return 0;
}

static int fs_leaf(struct walk *w, uint64_t block, const uint8_t *n)
{
	struct ck *c = w->c;
	unsigned i, nr = nd_nritems(n);
	int rc;

	rc = ck_grow((void **)&c->leaves, &c->leaves_cap, c->nleaves,
		  sizeof(*c->leaves));
	if (rc)
		return rc;
	c->leaves[c->nleaves++] = block;
	for (i = 0; i < nr; i++) {
		const uint8_t *it = item_at(n, i);
		struct mfs_key k;

		item_key(it, &k);
		rc = fs_item(c, &k, n + item_voff(it), item_size(it));
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Pass 1: repairs of the trees                                        */
/* ------------------------------------------------------------------ */

/*
 * Load the allocator before the first change. Free is every block the
 * committed state does not point at (blocks of damaged nodes and dropped
 * extents included), so nothing the committed state uses is overwritten
 * before the repair commits. If the FREE tree says exactly that, it stays;
 * otherwise a new, empty FREE tree replaces it and the whole range is
 * marked dirty, so the commit writes every run.
 */
static int alloc_init(struct ck *c)
{
	struct mfs_vol *v = c->v;
	struct runs avail = { 0 };
	size_t i;
	int rc;

	rc = ck_complement(&c->refd, c->nblocks, &avail);
	for (i = 0; !rc && i < avail.nr; i++)
		rc = mfs_alloc_load(v->alloc, avail.r[i].start, avail.r[i].len);
	if (rc)
		goto out;
	/* c->free is sorted and merged already: see free_leaf(). */
	if (c->free_bad || !ck_runs_equal(&avail, &c->free)) {
		/* Pass 5 reports the differences; the FREE tree is rewritten
		 * from the allocator at commit. */
		rc = mfs_btree_create(v, MFS_TREE_FREE);
		if (!rc)
			rc = mfs_alloc_mark_dirty(v->alloc, MFS_FIRST_DATA_BLOCK,
						  c->nblocks);
		if (rc)
			goto out;
		ck_verbose(c, "Free-space tree: rebuilding");
	}
	if (v->next_ino <= c->max_ino)
		v->next_ino = c->max_ino + 1;
out:
	free(avail.r);
	return rc;
}

/* Everything the committed state points at: claimed blocks and the
 * others (damaged nodes, extents being dropped or cloned). */
static int compute_refd(struct ck *c)
{
	int rc = ck_set_runs(c->used, c->nblocks, &c->refd);

	for (size_t i = 0; !rc && i < c->extra.nr; i++)
		rc = ck_runs_add(&c->refd, c->extra.r[i].start, c->extra.r[i].len);
	ck_runs_normalize(&c->refd);
	return rc;
}

static bool is_badkey(const struct ck *c, const struct mfs_key *k)
{
	size_t lo = 0, hi = c->nbadkeys;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = mfs_key_cmp(&c->badkeys[mid], k);

		if (cmp == 0)
			return true;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* A new FS tree holding the good items of the good leaves. The old tree's
 * blocks are untouched (not free in the allocator) until the commit. */
static int rebuild_fs(struct ck *c)
{
	size_t i;
	int rc;

	rc = mfs_btree_create(c->v, MFS_TREE_FS);
	for (i = 0; !rc && i < c->nleaves; i++) {
		const uint8_t *n = mfs_image_block(c->v->img, c->leaves[i]);
		unsigned j, nr = nd_nritems(n);

		for (j = 0; !rc && j < nr; j++) {
			const uint8_t *it = item_at(n, j);
			struct mfs_key k;

			item_key(it, &k);
			if (!is_badkey(c, &k))
				rc = mfs_btree_insert(c->v, MFS_TREE_FS, &k,
						      n + item_voff(it),
						      item_size(it));
		}
	}
	return rc;
}

/* Give extent e its own blocks, with a copy of its data. */
static int clone_extent(struct ck *c, const struct ext *e)
{
	struct mfs_vol *v = c->v;
	uint64_t done = 0, goal = e->block;
	int rc;

	while (done < e->count) {
		uint8_t val[sizeof(struct mfs_disk_extent)] = { 0 };
		struct mfs_key k = mfs_key_make(e->ino, MFS_ITEM_EXTENT,
						e->fblk + done);
		uint64_t s, l;

		rc = mfs_alloc_alloc(v->alloc, goal, e->count - done, 1, &s, &l);
		if (rc)
			return rc;
		if (!(e->flags & MFS_EXTENT_UNWRITTEN))
			memcpy(mfs_image_block(v->img, s),
			       mfs_image_block(v->img, e->block + done),
			       l << MFS_BLOCK_SHIFT);
		mfs_put_le64(val + offsetof(struct mfs_disk_extent, ex_block), s);
		mfs_put_le64(val + offsetof(struct mfs_disk_extent, ex_count), l);
		mfs_put_le32(val + offsetof(struct mfs_disk_extent, ex_flags),
			     e->flags);
		rc = mfs_btree_put(v, MFS_TREE_FS, &k, val, sizeof(val));
		if (rc)
			return rc;
		done += l;
		goal = s + l;
	}
	return 0;
}

/* Ownership: tree nodes were claimed by the walks; now each extent claims
 * its blocks. An extent overlapping an earlier one of its file is
 * dropped; one whose blocks are already claimed is cloned. */
static int claim_extents(struct ck *c)
{
	uint64_t prev_ino = 0, prev_end = 0;
	int rc;

	for (size_t i = 0; i < c->next; i++) {
		struct ext *e = &c->ext[i];
		struct ino_rec *r = ck_ino(c, e->ino);

		if (e->ino == prev_ino && e->fblk < prev_end) {
			e->act = E_DROP;
			ck_problem(c, "Remove", "Inode %llu: extent at file block "
				   "%llu overlaps the one before it",
				   (unsigned long long)e->ino,
				   (unsigned long long)e->fblk);
			continue;
		}
		rc = mfs_alloc_load(c->used, e->block, e->count);
		if (rc == -EUCLEAN) {
			e->act = E_CLONE;
			ck_problem(c, "Clone", "Inode %llu: blocks %llu-%llu (file "
				   "block %llu) are also used by another file or "
				   "a tree node", (unsigned long long)e->ino,
				   (unsigned long long)e->block,
				   (unsigned long long)(e->block + e->count - 1),
				   (unsigned long long)e->fblk);
		} else if (rc) {
			return rc;
		}
		prev_ino = e->ino;
		prev_end = e->fblk + e->count;
		r->ext_blocks += e->count;
		if (prev_end > r->ext_end)
			r->ext_end = prev_end;
	}
	return 0;
}

static int apply_extents(struct ck *c)
{
	int rc;

	for (size_t i = 0; i < c->next && !c->failed; i++) {
		const struct ext *e = &c->ext[i];

		if (e->act == E_DROP) {
			struct mfs_key k = mfs_key_make(e->ino, MFS_ITEM_EXTENT,
							e->fblk);

			rc = ck_delete_item(c, &k);
			if (rc)
				return ck_fail(c, rc, "removing an extent");
		} else if (e->act == E_CLONE) {
			rc = clone_extent(c, e);
			if (rc)
				return ck_fail(c, rc, "cloning an extent");
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Pass 1: each inode against its items                                */
/* ------------------------------------------------------------------ */

static void fix_field(struct ck *c, struct ino_rec *r, const char *what,
		      size_t off, unsigned width, uint64_t have, uint64_t want)
{
	int rc;

	if (!ck_problem(c, "Fix", "Inode %llu: %s is %s%llu, should be %llu",
			(unsigned long long)r->ino, what,
			width == 4 && have == 1000000000u ? "at least " : "",
			(unsigned long long)have, (unsigned long long)want))
		return;
	rc = ck_patch_inode(c, r->ino, off, width, want);
	if (rc)
		ck_fail(c, rc, "writing an inode");
}

static void check_inode(struct ck *c, struct ino_rec *r)
{
	uint64_t want_size = r->size, want_blocks = 0;

	switch (r->mode & S_IFMT) {
	case S_IFREG:
		want_blocks = r->ext_blocks * 8;
		if (r->size > MFS_FILE_SIZE_MAX)
			want_size = r->ext_end << MFS_BLOCK_SHIFT;
		break;
	case S_IFDIR:
		want_size = MFS_BLOCK_SIZE;
		break;
	case S_IFLNK:
		if ((r->flags & I_INLINE_BAD) || r->inline_bytes == 0 ||
		    r->inline_bytes > MFS_SYMLINK_MAX) {
			r->flags |= I_CLEAR;
			if (ck_problem(c, "Clear", "Inode %llu: symbolic link "
				       "with a damaged or missing target",
				       (unsigned long long)r->ino)) {
				int rc = ck_remove_inode(c, r->ino);

				if (rc)
					ck_fail(c, rc, "removing an inode");
			}
			return;
		}
		want_size = r->inline_bytes;
		break;
	default:
		want_size = 0;
		break;
	}
	if (r->size != want_size) {
		fix_field(c, r, "size", DI(di_size), 8, r->size, want_size);
		r->size = want_size;
	}
	if (r->blocks != want_blocks) {
		fix_field(c, r, "di_blocks", DI(di_blocks), 8, r->blocks,
			  want_blocks);
		r->blocks = want_blocks;
	}
	if (!S_ISDIR(r->mode) && r->parent != 0) {
		fix_field(c, r, "di_parent (of a non-directory)", DI(di_parent),
			  8, r->parent, 0);
		r->parent = 0;
	}
	if (r->dflags != 0) {
		fix_field(c, r, "di_flags (reserved)", DI(di_flags), 8,
			  r->dflags, 0);
		r->dflags = 0;
	}
	if (r->rdev != 0 && !S_ISCHR(r->mode) && !S_ISBLK(r->mode)) {
		fix_field(c, r, "di_rdev (of a non-device)", DI(di_rdev), 8,
			  r->rdev, 0);
		r->rdev = 0;
	}
	for (unsigned i = 0; i < 4; i++) {
		static const char *const what[4] = {
			"atime nanoseconds", "mtime nanoseconds",
			"ctime nanoseconds", "btime nanoseconds" };

		if (r->bad_ns & (1u << i))
			fix_field(c, r, what[i], DI(di_atime_ns) + 4 * i, 4,
				  1000000000u, 0);
	}
	r->bad_ns = 0;
}

/* ------------------------------------------------------------------ */
/* Pass 1                                                              */
/* ------------------------------------------------------------------ */

int ck_pass1(struct ck *c)
{
	struct mfs_vol *v = c->v;
	struct walk w = { .c = c, .claims = c->used, .bad = bad_node };
	uint64_t used_est = v->sb.block_count - v->sb.free_blocks;
	size_t i;
	int rc;

	ck_pass_start(c, 1, "Checking trees and blocks", used_est);
	check_slots(c);

	w.tree = MFS_TREE_FREE;
	w.leaf = free_leaf;
	rc = walk_tree(&w, &v->sb.roots[MFS_TREE_FREE]);
	if (rc)
		return rc;
	c->nodes[MFS_TREE_FREE] = w.nodes;

	w.tree = MFS_TREE_FS;
	w.leaf = fs_leaf;
	w.nodes = 0;
	rc = walk_tree(&w, &v->sb.roots[MFS_TREE_FS]);
	if (!rc)
		rc = xa_end(c);
	if (rc)
		return rc;
	c->nodes[MFS_TREE_FS] = w.nodes;

	/* Cross-check with the btree layer's own checker. */
	if (!c->fs_bad && !c->free_bad) {
		for (unsigned t = 0; t < MFS_TREE_COUNT; t++) {
			rc = mfs_btree_check(v, t, NULL, NULL);
			v->error = 0;
			if (rc)
				ck_error(c, "%s tree: the B+tree layer's check "
					 "fails (see the message above), though "
					 "every node looked valid", ck_tree_name[t]);
		}
	}

	rc = claim_extents(c);
	if (!rc)
		rc = compute_refd(c);
	if (rc)
		return rc;
	for (i = 0; i < c->norphans; i++) {
		struct ino_rec *r = ck_ino(c, c->orphans[i]);

		if (r)
			r->flags |= I_ORPHAN;
	}

	if (c->repair) {
		rc = alloc_init(c);
		if (rc)
			return ck_fail(c, rc, "loading the allocator");
		if (c->fs_bad) {
			rc = rebuild_fs(c);
			if (rc)
				return ck_fail(c, rc, "rebuilding the FS tree");
		} else {
			for (i = 0; i < c->nbadkeys; i++) {
				rc = ck_delete_item(c, &c->badkeys[i]);
				if (rc)
					return ck_fail(c, rc, "removing an item");
			}
		}
		rc = apply_extents(c);
		if (rc)
			return rc;
	}
	for (i = 0; i < c->nino; i++)
		check_inode(c, &c->ino[i]);
	ck_pass_end(c);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Pass 5: the repaired state                                          */
/* ------------------------------------------------------------------ */

/* The repaired state: walk its trees, claim every block, free what nothing
 * uses, and set the counters from what is there. */
struct final {
	struct ck *c;
	uint64_t inodes, max_ino;
};

static int final_bad(struct walk *w, uint64_t block, unsigned level,
		     const struct mfs_key *lo, const struct mfs_key *hi,
		     const char *why)
{
	fprintf(w->c->out, "%s: internal error: repaired %s tree: node %llu %s\n",
		w->c->name, ck_tree_name[w->tree], (unsigned long long)block, why);
	return -EUCLEAN;
}

static int final_free_leaf(struct walk *w, uint64_t block, const uint8_t *n)
{
	return 0;
}

static int final_fs_leaf(struct walk *w, uint64_t block, const uint8_t *n)
{
	struct final *f = w->arg;
	unsigned i, nr = nd_nritems(n);

	for (i = 0; i < nr; i++) {
		const uint8_t *it = item_at(n, i);
		const uint8_t *val = n + item_voff(it);
		struct mfs_key k;

		item_key(it, &k);
		if (k.type == MFS_ITEM_INODE) {
			f->inodes++;
			if (k.objectid > f->max_ino)
				f->max_ino = k.objectid;
		} else if (k.type == MFS_ITEM_EXTENT &&
			   item_size(it) == sizeof(struct mfs_disk_extent)) {
			uint64_t b = mfs_get_le64(val), cnt = mfs_get_le64(val + 8);

			if (mfs_alloc_load(w->claims, b, cnt)) {
				fprintf(w->c->out, "%s: internal error: repaired "
					"extent (%llu, %llu) claims used blocks\n",
					w->c->name, (unsigned long long)k.objectid,
					(unsigned long long)k.offset);
				return -EUCLEAN;
			}
		}
	}
	return 0;
}

int ck_reconcile(struct ck *c)
{
	struct mfs_vol *v = c->v;
	struct final f = { .c = c };
	struct walk w = { .c = c, .running = true, .bad = final_bad, .arg = &f };
	struct runs claimed = { 0 }, nfree = { 0 }, afree = { 0 }, leak = { 0 },
		    clash = { 0 };
	int rc;

	rc = mfs_alloc_create(NULL, MFS_FIRST_DATA_BLOCK, c->nblocks,
			      &w.claims);
	if (rc)
		return rc;
	w.tree = MFS_TREE_FREE;
	w.leaf = final_free_leaf;
	rc = walk_tree(&w, &v->roots[MFS_TREE_FREE]);
	if (!rc) {
		w.tree = MFS_TREE_FS;
		w.leaf = final_fs_leaf;
		rc = walk_tree(&w, &v->roots[MFS_TREE_FS]);
	}
	if (!rc)
		rc = ck_set_runs(w.claims, c->nblocks, &claimed);
	if (!rc)
		rc = ck_complement(&claimed, c->nblocks, &nfree);
	if (!rc)
		rc = mfs_alloc_walk_free(v->alloc, MFS_FIRST_DATA_BLOCK,
					 c->nblocks, ck_runs_add_cb, &afree);
	if (!rc)
		rc = ck_runs_subtract(&nfree, &afree, &leak);
	if (!rc)
		rc = ck_runs_subtract(&afree, &nfree, &clash);
	if (!rc && clash.nr) {
		fprintf(c->out, "%s: internal error: %llu blocks in use are "
			"free in the allocator\n", c->name,
			(unsigned long long)ck_runs_blocks(&clash));
		rc = -EUCLEAN;
	}
	/* Pinned to the running generation: the committed state may still
	 * use them (the old copies of rebuilt trees). */
	for (size_t i = 0; !rc && i < leak.nr; i++)
		rc = mfs_alloc_free(v->alloc, leak.r[i].start, leak.r[i].len,
				    v->gen);
	if (!rc) {
		v->inode_count = f.inodes;
		if (v->next_ino <= f.max_ino)
			v->next_ino = f.max_ino + 1;
		v->dirty = true;
		ck_verbose(c, "Free space: %llu blocks returned",
			   (unsigned long long)ck_runs_blocks(&leak));
	}
	mfs_alloc_destroy(w.claims);
	free(claimed.r);
	free(nfree.r);
	free(afree.r);
	free(leak.r);
	free(clash.r);
	return rc;
}
