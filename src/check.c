/* SPDX-License-Identifier: MIT */
/*
 * check.c — the checker's driver, messages, shared helpers, the repairs of
 * single items, and pass 5 (free space); see check.h. Pass 1 and the tree
 * walk are in check_tree.c, passes 2-4 in check_dir.c.
 *
 * Layer: program library (9). Calls txn, btree, alloc, image.
 *
 * Repairing. Nothing is changed until pass 1 has seen every block the
 * committed state points at. Then the allocator is loaded with the
 * complement of those blocks, so every block a repair writes (tree copies,
 * clones) is one the committed state does not use, and nothing the
 * committed state uses is written: a crash before the final commit leaves
 * the image as it was. Every repair goes through the btree API in the one
 * running transaction; pass 5 then walks the repaired trees and frees
 * every block nothing uses any more, and one commit makes it all durable.
 * The committed result is then checked again, read-only.
 */
#include "check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "btree.h"
#include "check_int.h"
#include "mmapfs/mmapfs.h"
#include "crc32c.h"
#include "endian.h"
#include "image.h"
#include "log.h"
#include "txn.h"

const char *const ck_tree_name[MFS_TREE_COUNT] = { "FS", "FREE" };

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

static void vline(struct ck *c, const char *fmt, va_list ap)
{
	vfprintf(c->out, fmt, ap);
}

static const char *past(const char *action)
{
	static const struct { const char *a, *p; } t[] = {
		{ "Clear", "CLEARED" }, { "Remove", "REMOVED" },
		{ "Connect to /lost+found", "RECONNECTED" },
		{ "Drop", "DROPPED" }, { "Rebuild", "REBUILT" },
		{ "Rewrite", "REWRITTEN" }, { "Clone", "CLONED" },
		{ "Move", "MOVED" }, { "Create", "CREATED" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(t[i].a, action))
			return t[i].p;
	return "FIXED";
}

bool ck_problem(struct ck *c, const char *action, const char *fmt, ...)
{
	bool fix = c->repair && !c->failed;
	va_list ap;

	c->res->problems++;
	if (fix)
		c->res->fixed++;
	else
		c->res->unfixed++;
	c->pass_problems = true;
	va_start(ap, fmt);
	if (c->verify) {
		fprintf(c->out, "%s: after repair: ", c->name);
		vline(c, fmt, ap);
		fprintf(c->out, ".\n");
	} else if (c->o->flags & MFS_CHECK_PREEN) {
		fprintf(c->out, "%s: ", c->name);
		vline(c, fmt, ap);
		fprintf(c->out, ".  %s.\n", fix ? past(action) : "NOT FIXED");
	} else {
		vline(c, fmt, ap);
		fprintf(c->out, ".  %s? %s\n", action, fix ? "yes" : "no");
	}
	va_end(ap);
	return fix;
}

void ck_error(struct ck *c, const char *fmt, ...)
{
	va_list ap;

	c->res->problems++;
	c->res->unfixed++;
	c->pass_problems = true;
	va_start(ap, fmt);
	if (c->verify || (c->o->flags & MFS_CHECK_PREEN))
		fprintf(c->out, "%s: ", c->name);
	vline(c, fmt, ap);
	fprintf(c->out, ".  Not fixed: check it by hand.\n");
	va_end(ap);
}

int ck_fail(struct ck *c, int rc, const char *what)
{
	fprintf(c->out, "%s: repair failed: %s: %s\n", c->name, what,
		strerror(rc < 0 ? -rc : rc));
	if (c->res->fixed) {
		c->res->fixed--;
		c->res->unfixed++;
	}
	c->failed = true;
	c->res->repair_failed = true;
	return rc;
}

void ck_note(struct ck *c, const char *fmt, ...)
{
	va_list ap;

	if (c->verify)
		return;
	va_start(ap, fmt);
	if (c->o->flags & MFS_CHECK_PREEN)
		fprintf(c->out, "%s: ", c->name);
	vline(c, fmt, ap);
	fprintf(c->out, "\n");
	va_end(ap);
}

void ck_verbose(struct ck *c, const char *fmt, ...)
{
	va_list ap;

	if (c->verify || !(c->o->flags & MFS_CHECK_VERBOSE))
		return;
	va_start(ap, fmt);
	vline(c, fmt, ap);
	fprintf(c->out, "\n");
	va_end(ap);
}

void ck_progress(struct ck *c, uint64_t add)
{
	uint64_t before = c->prog_done;

	if (!c->o->progress || c->verify)
		return;
	c->prog_done += add;
	if (c->prog_done > c->prog_total)
		c->prog_done = c->prog_total;
	if (c->prog_done / c->prog_step != before / c->prog_step)
		c->o->progress(c->o->progress_arg, c->pass, c->prog_done,
			       c->prog_total);
}

void ck_pass_start(struct ck *c, unsigned pass, const char *title,
		   uint64_t total)
{
	c->pass = pass;
	c->pass_problems = false;
	c->prog_done = 0;
	c->prog_total = total ? total : 1;
	c->prog_step = c->prog_total / 100 ? c->prog_total / 100 : 1;
	if (!c->verify && !(c->o->flags & MFS_CHECK_PREEN))
		fprintf(c->out, "Pass %u: %s\n", pass, title);
	if (c->o->progress && !c->verify)
		c->o->progress(c->o->progress_arg, pass, 0, c->prog_total);
}

void ck_pass_end(struct ck *c)
{
	if (c->o->progress && !c->verify && c->prog_done != c->prog_total)
		c->o->progress(c->o->progress_arg, c->pass, c->prog_total,
			       c->prog_total);
	/* A blank line after a pass with problems; after the last one the
	 * program's summary starts with one. */
	if (c->pass_problems && c->pass < 5 && !c->verify &&
	    !(c->o->flags & MFS_CHECK_PREEN))
		fprintf(c->out, "\n");
}

const char *ck_esc(const char *name, size_t len, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < len && i < MFS_NAME_MAX; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch > 0x20 && ch < 0x7f && ch != '\\') {
			buf[o++] = (char)ch;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[ch >> 4];
			buf[o++] = hex[ch & 15];
		}
	}
	buf[o] = 0;
	return buf;
}

static const char *item_type_name(unsigned type)
{
	switch (type) {
	case MFS_ITEM_INODE: return "INODE";
	case MFS_ITEM_INLINE: return "INLINE";
	case MFS_ITEM_XATTR: return "XATTR";
	case MFS_ITEM_DIRENT: return "DIRENT";
	case MFS_ITEM_EXTENT: return "EXTENT";
	case MFS_ITEM_ORPHAN: return "ORPHAN";
	case MFS_ITEM_FREE: return "FREE";
	default: return "?";
	}
}

const char *ck_key_str(const struct mfs_key *k, char *buf, size_t len)
{
	if (!k)
		snprintf(buf, len, "*");
	else
		snprintf(buf, len, "(%llu, %s, %llu)",
			 (unsigned long long)k->objectid,
			 item_type_name(k->type),
			 (unsigned long long)k->offset);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Growing arrays and block runs                                       */
/* ------------------------------------------------------------------ */

/* Make room for one more element in *p (nr used, *cap allocated). */
int ck_grow(void **p, size_t *cap, size_t nr, size_t size)
{
	size_t ncap;
	void *np;

	if (nr < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	np = realloc(*p, ncap * size);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

int ck_runs_add(struct runs *r, uint64_t start, uint64_t len)
{
	int rc;

	if (len == 0)
		return 0;
	if (r->nr && r->r[r->nr - 1].start + r->r[r->nr - 1].len == start) {
		r->r[r->nr - 1].len += len;
		return 0;
	}
	rc = ck_grow((void **)&r->r, &r->cap, r->nr, sizeof(*r->r));
	if (rc)
		return rc;
	r->r[r->nr].start = start;
	r->r[r->nr].len = len;
	r->nr++;
	return 0;
}

static int run_cmp(const void *a, const void *b)
{
	const struct run *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Sort and merge overlapping or adjacent runs. */
void ck_runs_normalize(struct runs *r)
{
	size_t i, o = 0;

	if (r->nr < 2)
		return;
	qsort(r->r, r->nr, sizeof(*r->r), run_cmp);
	for (i = 1; i < r->nr; i++) {
		struct run *last = &r->r[o];

		if (r->r[i].start <= last->start + last->len) {
			uint64_t end = r->r[i].start + r->r[i].len;

			if (end > last->start + last->len)
				last->len = end - last->start;
		} else {
			r->r[++o] = r->r[i];
		}
	}
	r->nr = o + 1;
}

/* out = a \ b, both normalized. */
int ck_runs_subtract(const struct runs *a, const struct runs *b,
			 struct runs *out)
{
	size_t j = 0;
	int rc;

	for (size_t i = 0; i < a->nr; i++) {
		uint64_t s = a->r[i].start, e = s + a->r[i].len;

		while (j < b->nr && b->r[j].start + b->r[j].len <= s)
			j++;
		for (size_t k = j; k < b->nr && b->r[k].start < e; k++) {
			if (b->r[k].start > s) {
				rc = ck_runs_add(out, s, b->r[k].start - s);
				if (rc)
					return rc;
			}
			if (b->r[k].start + b->r[k].len > s)
				s = b->r[k].start + b->r[k].len;
		}
		if (s < e) {
			rc = ck_runs_add(out, s, e - s);
			if (rc)
				return rc;
		}
	}
	return 0;
}

bool ck_runs_equal(const struct runs *a, const struct runs *b)
{
	if (a->nr != b->nr)
		return false;
	for (size_t i = 0; i < a->nr; i++)
		if (a->r[i].start != b->r[i].start || a->r[i].len != b->r[i].len)
			return false;
	return true;
}

uint64_t ck_runs_blocks(const struct runs *r)
{
	uint64_t n = 0;

	for (size_t i = 0; i < r->nr; i++)
		n += r->r[i].len;
	return n;
}

int ck_runs_add_cb(void *arg, uint64_t start, uint64_t len)
{
	return ck_runs_add(arg, start, len);
}

/* The runs held by an allocator used as a set of claimed blocks. */
int ck_set_runs(struct mfs_alloc *set, uint64_t nblocks, struct runs *out)
{
	return mfs_alloc_walk_free(set, MFS_FIRST_DATA_BLOCK, nblocks,
				   ck_runs_add_cb, out);
}

/* All blocks of [2, nblocks) not in set. */
int ck_complement(const struct runs *set, uint64_t nblocks,
		      struct runs *out)
{
	struct runs all = { 0 };
	int rc = ck_runs_add(&all, MFS_FIRST_DATA_BLOCK,
			  nblocks - MFS_FIRST_DATA_BLOCK);

	if (!rc)
		rc = ck_runs_subtract(&all, set, out);
	free(all.r);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The model                                                           */
/* ------------------------------------------------------------------ */

/*
 * c->ino is sorted by inode number, and the numbers are mostly dense (given
 * out in order, a few freed). So start where ino would be if they were all
 * there, gallop out from there to bracket it and bisect the bracket: one
 * or two records looked at instead of ~20 cache misses for a million.
 */
struct ino_rec *ck_ino(struct ck *c, uint64_t ino)
{
	size_t lo, hi, g, step, probe;
	uint64_t first, span;

	if (!c->nino)
		return NULL;
	first = c->ino[0].ino;
	span = c->ino[c->nino - 1].ino - first;
	if (ino < first || ino - first > span)
		return NULL;
	g = span ? (size_t)((unsigned __int128)(ino - first) *
			    (c->nino - 1) / span) : 0;
	if (c->ino[g].ino == ino)
		return &c->ino[g];
	/* Bracket: the first record >= ino is in [lo, hi], where hi is
	 * c->nino or a record >= ino. */
	if (c->ino[g].ino < ino) {
		lo = g + 1;
		hi = c->nino;
		for (step = 1; (probe = lo + step - 1) < hi; step <<= 1) {
			if (c->ino[probe].ino >= ino) {
				hi = probe;
				break;
			}
			lo = probe + 1;
		}
	} else {
		lo = 0;
		hi = g;
		for (step = 1; step <= hi; step <<= 1) {
			probe = hi - step;
			if (c->ino[probe].ino < ino) {
				lo = probe + 1;
				break;
			}
			hi = probe;
		}
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->ino[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->nino && c->ino[lo].ino == ino ? &c->ino[lo] : NULL;
}

int ck_ino_append(struct ck *c, const struct ino_rec *r)
{
	int rc = ck_grow((void **)&c->ino, &c->ino_cap, c->nino, sizeof(*c->ino));

	if (rc)
		return rc;
	c->ino[c->nino++] = *r;
	if (r->ino > c->max_ino)
		c->max_ino = r->ino;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Repairs of items                                                    */
/* ------------------------------------------------------------------ */

int ck_delete_item(struct ck *c, const struct mfs_key *k)
{
	int rc = mfs_btree_delete(c->v, MFS_TREE_FS, k);

	return rc == -ENOENT ? 0 : rc;
}

int ck_patch_inode(struct ck *c, uint64_t ino, size_t off, unsigned width,
		   uint64_t val)
{
	struct mfs_key k = mfs_key_make(ino, MFS_ITEM_INODE, 0);
	void *p;
	size_t len;
	int rc;

	rc = mfs_btree_lookup_mut(c->v, MFS_TREE_FS, &k, &p, &len);
	if (rc)
		return rc;
	if (len != sizeof(struct mfs_disk_inode) || off + width > len)
		return -EUCLEAN;
	if (width == 4)
		mfs_put_le32((uint8_t *)p + off, (uint32_t)val);
	else
		mfs_put_le64((uint8_t *)p + off, val);
	return 0;
}

int ck_dent_edit(struct ck *c, uint64_t dir, uint64_t hash, const char *name,
		 size_t len, uint64_t ino, int type)
{
	struct mfs_key k = mfs_key_make(dir, MFS_ITEM_DIRENT, hash);
	uint8_t buf[MFS_MAX_VALUE];
	const void *val;
	size_t vlen, at = 0;
	int rc;

	rc = mfs_btree_lookup(c->v, MFS_TREE_FS, &k, &val, &vlen);
	if (rc)
		return rc;
	memcpy(buf, val, vlen);
	while (at + MFS_DIRENT_HDR <= vlen) {
		size_t nl = buf[at + 9], elen = MFS_DIRENT_HDR + nl;

		if (nl == 0 || at + elen > vlen)
			break;
		if (nl == len && mfs_get_le64(buf + at) == ino &&
		    !memcmp(buf + at + MFS_DIRENT_HDR, name, len)) {
			if (type >= 0) {
				buf[at + 8] = (uint8_t)type;
				return mfs_btree_update(c->v, MFS_TREE_FS, &k, buf,
							vlen);
			}
			if (vlen == elen)
				return mfs_btree_delete(c->v, MFS_TREE_FS, &k);
			memmove(buf + at, buf + at + elen, vlen - at - elen);
			return mfs_btree_update(c->v, MFS_TREE_FS, &k, buf,
						vlen - elen);
		}
		at += elen;
	}
	return -ENOENT;
}

int ck_remove_inode(struct ck *c, uint64_t ino)
{
	struct mfs_key lo = mfs_key_make(ino, 0, 0);
	struct mfs_key hi = mfs_key_make(ino, UINT8_MAX, UINT64_MAX);
	struct mfs_key k;
	struct mfs_cursor cur;
	int rc;

	/* The cursor re-seeks past the last key after each delete. */
	mfs_cursor_init(&cur, c->v, MFS_TREE_FS, &lo, &hi);
	while ((rc = mfs_cursor_next(&cur, &k, NULL, NULL)) > 0) {
		rc = mfs_btree_delete(c->v, MFS_TREE_FS, &k);
		if (rc)
			return rc;
	}
	if (rc)
		return rc;
	k = mfs_key_make(MFS_ORPHAN_OBJID, MFS_ITEM_ORPHAN, ino);
	return ck_delete_item(c, &k);
}

/* ------------------------------------------------------------------ */
/* Pass 5: free space and counters                                     */
/* ------------------------------------------------------------------ */

static void print_runs(struct ck *c, const char *what, const struct runs *r)
{
	char buf[400];
	size_t o = 0, i;

	for (i = 0; i < r->nr && i < 8; i++) {
		const struct run *x = &r->r[i];

		if (x->len == 1)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, " %llu",
					      (unsigned long long)x->start);
		else
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, " %llu-%llu",
					      (unsigned long long)x->start,
					      (unsigned long long)(x->start + x->len - 1));
	}
	if (i < r->nr)
		snprintf(buf + o, sizeof(buf) - o, " and %zu more ranges",
			 r->nr - i);
	ck_problem(c, "Fix", "Free space: %llu block%s %s:%s",
		   (unsigned long long)ck_runs_blocks(r),
		   ck_runs_blocks(r) == 1 ? "" : "s", what, buf);
}

static int pass5(struct ck *c)
{
	struct mfs_vol *v = c->v;
	struct runs want = { 0 }, leak = { 0 }, clash = { 0 };
	uint64_t inodes = 0, want_free;
	size_t i;
	int rc;

	/* The committed state against itself: its FREE tree and counters
	 * against what its trees point at and hold. (What the repairs change
	 * is accounted for by ck_reconcile(), silently.) */
	ck_pass_start(c, 5, "Checking free space", 1);
	rc = ck_complement(&c->refd, c->nblocks, &want);
	if (rc)
		goto out;
	/* A damaged FREE tree was reported and is rebuilt: its runs say
	 * nothing. */
	if (!c->free_bad) {
		rc = ck_runs_subtract(&want, &c->free, &leak);
		if (!rc)
			rc = ck_runs_subtract(&c->free, &want, &clash);
		if (rc)
			goto out;
		if (clash.nr)
			print_runs(c, "in use but listed as free", &clash);
		if (leak.nr)
			print_runs(c, "neither in use nor free (leaked)", &leak);
	}
	want_free = ck_runs_blocks(&want);
	if (v->sb.free_blocks != want_free)
		ck_problem(c, "Fix", "Free blocks count wrong (%llu, counted=%llu)",
			   (unsigned long long)v->sb.free_blocks,
			   (unsigned long long)want_free);
	if (v->sb.inode_count != c->inode_items)
		ck_problem(c, "Fix", "Inode count wrong (%llu, counted=%llu)",
			   (unsigned long long)v->sb.inode_count,
			   (unsigned long long)c->inode_items);
	if (v->sb.next_ino <= c->max_ino_read)
		ck_problem(c, "Fix", "Next inode number %llu is not above the "
			   "highest inode %llu",
			   (unsigned long long)v->sb.next_ino,
			   (unsigned long long)c->max_ino_read);
	/* The result as the repair leaves it (or would). */
	for (i = 0; i < c->nino; i++)
		if (!(c->ino[i].flags & I_CLEAR))
			inodes++;
	c->res->files = inodes;
	c->res->blocks_used = c->nblocks - want_free;
	if (c->repair && !c->failed) {
		rc = ck_reconcile(c);
		if (rc)
			rc = ck_fail(c, rc, "rebuilding the free space");
	}
	ck_pass_end(c);
out:
	free(want.r);
	free(leak.r);
	free(clash.r);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Driver                                                              */
/* ------------------------------------------------------------------ */

/* Do two superblocks of the same generation describe the same commit?
 * (They do on a fresh image: mkfs writes generation 1 to both slots.) */
static bool same_commit(const struct mfs_super *a, const struct mfs_super *b)
{
	for (unsigned i = 0; i < MFS_TREE_COUNT; i++)
		if (a->roots[i].block != b->roots[i].block ||
		    a->roots[i].generation != b->roots[i].generation ||
		    a->roots[i].level != b->roots[i].level)
			return false;
	return a->state == b->state && a->block_count == b->block_count &&
	       a->free_blocks == b->free_blocks &&
	       a->inode_count == b->inode_count && a->next_ino == b->next_ino;
}

/*
 * The slot not in use. What a crash can leave there is normal: a commit
 * writes that slot, so power lost during the write leaves it torn (no
 * magic, or a bad checksum: a torn sector, zeros, garbage) while the slot
 * in use holds the last commit; and a superblock write the disk lost
 * leaves it older than the commit before the one in use. Neither touches
 * the state in use, and the next commit rewrites the slot: CK_SLOT_NOTE.
 * A slot whose checksum is right was written whole by some writer, so
 * anything wrong with it is not a crash's doing: fields no writer makes,
 * an unknown version, another filesystem, a generation that cannot be
 * (newer than the one in use, or equal to it but another state):
 * CK_SLOT_BAD, a problem.
 */
enum ck_slot ck_other_slot(struct mfs_vol *v, struct mfs_super *sb,
			   const char **why)
{
	unsigned other = 1u - v->cur_slot;
	const uint8_t *p = mfs_image_block(v->img, other);
	int rc;

	memset(sb, 0, sizeof(*sb));
	if (mfs_get_le64(p + offsetof(struct mfs_disk_super, sb_magic)) !=
	    MFS_SB_MAGIC) {
		*why = "has no mmapfs magic";
		return CK_SLOT_NOTE;
	}
	if (mfs_get_le32(p + offsetof(struct mfs_disk_super, sb_crc)) !=
	    mfs_crc32c(0, p + MFS_SB_CRC_START, MFS_SB_SIZE - MFS_SB_CRC_START)) {
		*why = "has a bad checksum";
		return CK_SLOT_NOTE;
	}
	rc = mfs_super_decode(p, mfs_image_blocks(v->img), other, sb);
	if (rc == -EPROTONOSUPPORT) {
		*why = "has an unsupported version or feature";
		return CK_SLOT_BAD;
	}
	if (rc) {
		*why = "has impossible fields";
		return CK_SLOT_BAD;
	}
	if (memcmp(sb->uuid, v->sb.uuid, MFS_UUID_SIZE) ||
	    memcmp(sb->hash_seed, v->sb.hash_seed, sizeof(sb->hash_seed)) ||
	    sb->block_count > v->sb.block_count) {
		*why = "does not belong with the slot in use";
		return CK_SLOT_BAD;
	}
	if (sb->generation > v->sb.generation ||
	    (sb->generation == v->sb.generation && !same_commit(sb, &v->sb))) {
		*why = "has an impossible generation";
		return CK_SLOT_BAD;
	}
	if (sb->generation + 1 < v->sb.generation) {
		*why = "is older than the commit before the one in use";
		return CK_SLOT_NOTE;
	}
	*why = NULL;
	return CK_SLOT_OK;
}

static void ck_free(struct ck *c)
{
	mfs_alloc_destroy(c->used);
	free(c->extra.r);
	free(c->refd.r);
	free(c->free.r);
	free(c->leaves);
	free(c->badkeys);
	free(c->ino);
	free(c->dent);
	free(c->names);
	free(c->ext);
	free(c->orphans);
}

static void stats(struct ck *c)
{
	uint64_t reg = 0, dir = 0, lnk = 0, other = 0, eblocks = 0;

	for (size_t i = 0; i < c->nino; i++) {
		const struct ino_rec *r = &c->ino[i];

		if (r->flags & I_CLEAR)
			continue;
		if (S_ISREG(r->mode))
			reg++;
		else if (S_ISDIR(r->mode))
			dir++;
		else if (S_ISLNK(r->mode))
			lnk++;
		else
			other++;
	}
	for (size_t i = 0; i < c->next; i++)
		eblocks += c->ext[i].count;
	ck_verbose(c, "\n%12llu regular files\n%12llu directories\n"
		   "%12llu symbolic links\n%12llu special files\n"
		   "%12zu directory entries\n%12zu extents (%llu blocks)\n"
		   "%12llu FS tree nodes, %llu items\n%12llu FREE tree nodes, "
		   "%zu free runs\n%12zu orphans",
		   (unsigned long long)reg, (unsigned long long)dir,
		   (unsigned long long)lnk, (unsigned long long)other, c->ndent,
		   c->next, (unsigned long long)eblocks,
		   (unsigned long long)c->nodes[MFS_TREE_FS],
		   (unsigned long long)c->items,
		   (unsigned long long)c->nodes[MFS_TREE_FREE], c->free.nr,
		   c->norphans);
}

/* One run of the five passes over v. */
static int check_vol(struct mfs_vol *v, const struct mfs_check_opts *o,
		     struct mfs_check_result *res, bool repair, bool verify)
{
	struct ck c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.v = v;
	c.o = o;
	c.res = res;
	c.out = o->out ? o->out : stdout;
	c.name = o->name ? o->name : "image";
	c.repair = repair;
	c.verify = verify;
	c.nblocks = v->sb.block_count;
	rc = mfs_alloc_create(NULL, MFS_FIRST_DATA_BLOCK, c.nblocks, &c.used);
	if (rc)
		return rc;
	rc = ck_pass1(&c);
	if (!rc)
		rc = ck_pass2(&c);
	if (!rc)
		rc = ck_pass3(&c);
	if (!rc)
		rc = ck_pass4(&c);
	if (!rc)
		rc = pass5(&c);
	if (!rc)
		stats(&c);
	ck_free(&c);
	/* A failed repair is reported and counted; the check still ran. */
	return c.failed ? 0 : rc;
}

/* The log sink while checking: the core's errors go to stderr (anything
 * else only with -v), since every problem is reported by the checker
 * itself. While opening, the first error is kept for the caller instead. */
static bool log_verbose;
static char *open_error;

static void log_sink(int level, const char *msg)
{
	if (open_error) {
		if (level <= MFS_LOG_ERR && !open_error[0])
			snprintf(open_error, sizeof(((struct mfs_check_result *)0)->error),
				 "%s", msg);
		return;
	}
	if (log_verbose || level <= MFS_LOG_ERR)
		fprintf(stderr, "%s: %s\n", mfs_log_progname(), msg);
}

static int check_image(const char *path, const struct mfs_check_opts *o,
		       struct mfs_check_result *res)
{
	bool repair = o->flags & MFS_CHECK_REPAIR;
	FILE *out = o->out ? o->out : stdout;
	const char *name = o->name ? o->name : path;
	struct mfs_check_opts opts = *o;
	struct mfs_vol *v;
	bool clean;
	int rc;

	memset(res, 0, sizeof(*res));
	opts.out = out;
	opts.name = name;
	log_verbose = o->flags & MFS_CHECK_VERBOSE;
	open_error = res->error;
	mfs_log_set_sink(log_sink);
	rc = mfs_vol_open(path, MFS_VOL_FSCK | MFS_VOL_WAIT |
			  (repair ? 0 : MFS_VOL_RDONLY), &v);
	open_error = NULL;
	if (rc)
		return rc;
	/* The core opens such an image read-only; a checker cannot vouch for
	 * structures it does not know. */
	if (v->sb.feature_ro_compat & ~MFS_FEATURE_RO_COMPAT_SUPP) {
		snprintf(res->error, sizeof(res->error), "%s: has features this "
			 "version does not know (ro_compat 0x%x); it cannot be "
			 "checked", name,
			 (unsigned)(v->sb.feature_ro_compat &
				    ~MFS_FEATURE_RO_COMPAT_SUPP));
		mfs_vol_close_dirty(v);
		return -EPROTONOSUPPORT;
	}
	res->blocks_total = v->sb.block_count;
	res->files = v->sb.inode_count;
	res->blocks_used = v->sb.block_count - v->sb.free_blocks;

	clean = v->sb.state == MFS_STATE_CLEAN;
	if (clean && !(o->flags & MFS_CHECK_FORCE)) {
		struct mfs_super other;
		const char *why;

		/* Anything unusual in the other slot, even what a crash
		 * leaves, is worth a full check; and so is an image that a
		 * mount would refuse, whatever its superblock says. */
		if (ck_other_slot(v, &other, &why) == CK_SLOT_OK) {
			char probe[sizeof(res->error)] = "";

			open_error = probe;
			rc = mfs_fs_probe(path);
			open_error = NULL;
			if (rc == 0) {
				res->skipped_clean = true;
				mfs_vol_close_dirty(v);
				return 0;
			}
			fprintf(out, "%s: marked clean, but a mount would "
				"refuse it (%s): checking everything\n", name,
				probe[0] ? probe : strerror(-rc));
		}
	}

	rc = check_vol(v, &opts, res, repair, false);
	if (rc || !repair || res->repair_failed) {
		/* Nothing committed: the image stays as it was. */
		mfs_vol_close_dirty(v);
		return rc;
	}
	if (res->fixed || res->modified) {
		struct mfs_check_result vr;

		rc = mfs_txn_commit(v);
		if (rc) {
			fprintf(out, "%s: committing the repairs failed: %s\n",
				name, strerror(-rc));
			res->repair_failed = true;
			res->unfixed += res->fixed;
			res->fixed = 0;
			mfs_vol_close_dirty(v);
			return 0;
		}
		res->modified = true;
		/* Prove the repair: the committed result must check clean. */
		memset(&vr, 0, sizeof(vr));
		rc = check_vol(v, &opts, &vr, false, true);
		if (rc || vr.problems) {
			fprintf(out, "%s: %llu problems remain after the repair%s\n",
				name, (unsigned long long)vr.problems,
				rc ? " (the check failed)" : "");
			res->unfixed += vr.problems ? vr.problems : 1;
			mfs_vol_close_dirty(v);
			return 0;
		}
		res->files = vr.files;
		res->blocks_used = vr.blocks_used;
	} else if (clean) {
		/* Nothing to write. */
		mfs_vol_close_dirty(v);
		return 0;
	}
	/* Mark it clean. */
	rc = mfs_vol_close(v);
	if (rc) {
		fprintf(out, "%s: marking the image clean failed: %s\n", name,
			strerror(-rc));
		res->repair_failed = true;
	}
	return 0;
}

int mfs_check(const char *path, const struct mfs_check_opts *o,
	      struct mfs_check_result *res)
{
	void (*saved)(int, const char *) = mfs_log_get_sink();
	int rc;

	rc = check_image(path, o, res);
	/* The caller's sink, not stderr: a daemon or a test has its own. */
	mfs_log_set_sink(saved);
	return rc;
}
