/* SPDX-License-Identifier: MIT */
/*
 * txn.c — volumes and transactions; see txn.h for the contract.
 *
 * Layer 5. Calls image, alloc, btree, crc32c and log.
 *
 * States of a volume:
 *
 *   mfs_vol_open ──> RUNNING(gen = committed + 1) ──commit──> RUNNING(gen+1)
 *                        │   ▲
 *                        │   └──abort (roots and allocator reloaded)
 *                        ├──corruption or a failed change──> ERROR (sticky
 *                        │  error: no more commits; mfs_txn_abort goes
 *                        │  back to RUNNING; close leaves the image as the
 *                        │  last commit made it)
 *                        └──a sync failed (commit or file data:
 *                           mfs_vol_sync_failed)──> FATAL (error and fatal:
 *                           nothing, not even abort, leads out; the kernel
 *                           may have dropped the pages that failed)
 *
 * Invariants:
 *  (1) The blocks reachable from the committed superblock (its tree nodes)
 *      are never written while it is the newest valid one: changes go to
 *      copies (btree.c), and blocks it uses are never free in the allocator.
 *  (2) A block freed in generation g is pinned (not reusable) until the
 *      commit of g+1 is durable, so the superblock slot holding g-1 stays a
 *      valid fallback while g is current. (After a remount pins are not
 *      known: the fallback is then only guaranteed during the next commit.)
 *  (3) The FREE tree committed with generation g lists exactly the blocks
 *      that the trees of generation g do not use (blocks 0 and 1 aside).
 *  (4) A superblock slot is written only after a sync has made every block
 *      it reaches durable, and is itself followed by a sync before the
 *      commit is reported done.
 */
#include "txn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "alloc.h"
#include "btree.h"
#include "crc32c.h"
#include "endian.h"
#include "image.h"
#include "log.h"

#define FREE_OBJ 0u
/* Commit gives up if the FREE tree keeps changing itself this often. */
#define MAX_FREE_PASSES 1000

/* ------------------------------------------------------------------ */
/* Superblock encoding                                                 */
/* ------------------------------------------------------------------ */

#define SB_FIELD(p, f) ((uint8_t *)(p) + offsetof(struct mfs_disk_super, f))
#define SB_CFIELD(p, f) ((const uint8_t *)(p) + offsetof(struct mfs_disk_super, f))

void mfs_super_encode(const struct mfs_super *sb, unsigned slotno, void *slot)
{
	uint8_t buf[MFS_SB_SIZE];
	unsigned i;

	memset(buf, 0, sizeof(buf));
	mfs_put_le64(SB_FIELD(buf, sb_magic), MFS_SB_MAGIC);
	mfs_put_le32(SB_FIELD(buf, sb_version), sb->version);
	mfs_put_le32(SB_FIELD(buf, sb_block_size), MFS_BLOCK_SIZE);
	mfs_put_le32(SB_FIELD(buf, sb_slot), slotno);
	mfs_put_le32(SB_FIELD(buf, sb_feature_compat), sb->feature_compat);
	mfs_put_le32(SB_FIELD(buf, sb_feature_ro_compat), sb->feature_ro_compat);
	mfs_put_le32(SB_FIELD(buf, sb_feature_incompat), sb->feature_incompat);
	mfs_put_le32(SB_FIELD(buf, sb_state), sb->state);
	mfs_put_le64(SB_FIELD(buf, sb_generation), sb->generation);
	mfs_put_le64(SB_FIELD(buf, sb_block_count), sb->block_count);
	mfs_put_le64(SB_FIELD(buf, sb_free_blocks), sb->free_blocks);
	mfs_put_le64(SB_FIELD(buf, sb_inode_count), sb->inode_count);
	mfs_put_le64(SB_FIELD(buf, sb_next_ino), sb->next_ino);
	mfs_put_le64(SB_FIELD(buf, sb_hash_seed), sb->hash_seed[0]);
	mfs_put_le64(SB_FIELD(buf, sb_hash_seed) + 8, sb->hash_seed[1]);
	mfs_put_le64(SB_FIELD(buf, sb_mkfs_time), sb->mkfs_time);
	mfs_put_le64(SB_FIELD(buf, sb_commit_time), sb->commit_time);
	mfs_put_le64(SB_FIELD(buf, sb_mount_count), sb->mount_count);
	for (i = 0; i < MFS_TREE_COUNT; i++) {
		uint8_t *r = SB_FIELD(buf, sb_roots) + i * sizeof(struct mfs_disk_root);

		mfs_put_le64(r + offsetof(struct mfs_disk_root, rt_block),
			     sb->roots[i].block);
		mfs_put_le64(r + offsetof(struct mfs_disk_root, rt_generation),
			     sb->roots[i].generation);
		r[offsetof(struct mfs_disk_root, rt_level)] = sb->roots[i].level;
	}
	memcpy(SB_FIELD(buf, sb_uuid), sb->uuid, MFS_UUID_SIZE);
	memcpy(SB_FIELD(buf, sb_label), sb->label, MFS_LABEL_MAX);
	mfs_put_le32(SB_FIELD(buf, sb_crc),
		     mfs_crc32c(0, buf + MFS_SB_CRC_START,
				MFS_SB_SIZE - MFS_SB_CRC_START));
	memcpy(slot, buf, sizeof(buf));
}

int mfs_super_decode(const void *slot, uint64_t image_blocks, unsigned slotno,
		     struct mfs_super *sb)
{
	const uint8_t *p = slot;
	unsigned i;

	memset(sb, 0, sizeof(*sb));
	if (mfs_get_le64(SB_CFIELD(p, sb_magic)) != MFS_SB_MAGIC)
		return -EINVAL;
	if (mfs_get_le32(SB_CFIELD(p, sb_crc)) !=
	    mfs_crc32c(0, p + MFS_SB_CRC_START, MFS_SB_SIZE - MFS_SB_CRC_START))
		return -EUCLEAN;
	sb->version = mfs_get_le32(SB_CFIELD(p, sb_version));
	sb->feature_compat = mfs_get_le32(SB_CFIELD(p, sb_feature_compat));
	sb->feature_ro_compat = mfs_get_le32(SB_CFIELD(p, sb_feature_ro_compat));
	sb->feature_incompat = mfs_get_le32(SB_CFIELD(p, sb_feature_incompat));
	if (sb->version != MFS_VERSION)
		return -EPROTONOSUPPORT;
	if (mfs_get_le32(SB_CFIELD(p, sb_block_size)) != MFS_BLOCK_SIZE ||
	    mfs_get_le32(SB_CFIELD(p, sb_slot)) != slotno)
		return -EUCLEAN;
	sb->state = mfs_get_le32(SB_CFIELD(p, sb_state));
	sb->generation = mfs_get_le64(SB_CFIELD(p, sb_generation));
	sb->block_count = mfs_get_le64(SB_CFIELD(p, sb_block_count));
	sb->free_blocks = mfs_get_le64(SB_CFIELD(p, sb_free_blocks));
	sb->inode_count = mfs_get_le64(SB_CFIELD(p, sb_inode_count));
	sb->next_ino = mfs_get_le64(SB_CFIELD(p, sb_next_ino));
	sb->hash_seed[0] = mfs_get_le64(SB_CFIELD(p, sb_hash_seed));
	sb->hash_seed[1] = mfs_get_le64(SB_CFIELD(p, sb_hash_seed) + 8);
	sb->mkfs_time = mfs_get_le64(SB_CFIELD(p, sb_mkfs_time));
	sb->commit_time = mfs_get_le64(SB_CFIELD(p, sb_commit_time));
	sb->mount_count = mfs_get_le64(SB_CFIELD(p, sb_mount_count));
	for (i = 0; i < MFS_TREE_COUNT; i++) {
		const uint8_t *r = SB_CFIELD(p, sb_roots) + i * sizeof(struct mfs_disk_root);

		sb->roots[i].block = mfs_get_le64(r + offsetof(struct mfs_disk_root, rt_block));
		sb->roots[i].generation =
			mfs_get_le64(r + offsetof(struct mfs_disk_root, rt_generation));
		sb->roots[i].level = r[offsetof(struct mfs_disk_root, rt_level)];
		if (sb->roots[i].block < MFS_FIRST_DATA_BLOCK ||
		    sb->roots[i].block >= sb->block_count ||
		    sb->roots[i].level >= MFS_MAX_LEVELS ||
		    sb->roots[i].generation == 0 ||
		    sb->roots[i].generation > sb->generation)
			return -EUCLEAN;
	}
	memcpy(sb->uuid, SB_CFIELD(p, sb_uuid), MFS_UUID_SIZE);
	memcpy(sb->label, SB_CFIELD(p, sb_label), MFS_LABEL_MAX);
	if (sb->generation == 0 ||
	    (sb->state != MFS_STATE_CLEAN && sb->state != MFS_STATE_DIRTY) ||
	    sb->block_count < MFS_IMAGE_MIN_BYTES / MFS_BLOCK_SIZE ||
	    sb->block_count > MFS_IMAGE_MAX_BYTES / MFS_BLOCK_SIZE ||
	    sb->block_count > image_blocks ||
	    sb->free_blocks > sb->block_count - MFS_FIRST_DATA_BLOCK ||
	    sb->inode_count < 1 ||
	    sb->next_ino < MFS_FIRST_INO || sb->next_ino > MFS_MAX_INO)
		return -EUCLEAN;
	/* Last, so that a slot whose only problem is its features is
	 * decoded in full: it still counts when choosing (format.md 4.2). */
	if (sb->feature_incompat & ~MFS_FEATURE_INCOMPAT_SUPP)
		return -EPROTONOSUPPORT;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The FREE tree                                                       */
/* ------------------------------------------------------------------ */

static struct mfs_key free_key(uint64_t start)
{
	return mfs_key_make(FREE_OBJ, MFS_ITEM_FREE, start);
}

static int put_free(struct mfs_vol *v, uint64_t start, uint64_t len)
{
	uint8_t val[8];
	struct mfs_key k = free_key(start);

	mfs_put_le64(val, len);
	return mfs_btree_put(v, MFS_TREE_FREE, &k, val, sizeof(val));
}

static int del_free(struct mfs_vol *v, uint64_t start)
{
	struct mfs_key k = free_key(start);

	return mfs_btree_delete(v, MFS_TREE_FREE, &k);
}

/* Decode a FREE item; -EUCLEAN if it is not one or out of bounds. */
static int free_item(struct mfs_vol *v, const struct mfs_key *k,
		     const void *val, size_t len, uint64_t *start, uint64_t *count)
{
	uint64_t end;

	if (k->objectid != FREE_OBJ || k->type != MFS_ITEM_FREE || len != 8)
		return MFS_CORRUPT(v, "FREE tree: unexpected item");
	*start = k->offset;
	*count = mfs_get_le64(val);
	end = *start + *count;
	if (*count == 0 || end < *start || *start < MFS_FIRST_DATA_BLOCK ||
	    end > v->sb.block_count)
		return MFS_CORRUPT(v, "FREE tree: run %llu+%llu outside the image",
				   (unsigned long long)*start,
				   (unsigned long long)*count);
	return 0;
}

struct run_list {
	uint64_t (*r)[2];
	size_t nr, cap;
};

static int run_add(void *arg, uint64_t start, uint64_t len)
{
	struct run_list *l = arg;

	if (l->nr == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 16;
		uint64_t (*nr)[2] = realloc(l->r, ncap * sizeof(*nr));

		if (!nr)
			return -ENOMEM;
		l->r = nr;
		l->cap = ncap;
	}
	l->r[l->nr][0] = start;
	l->r[l->nr][1] = len;
	l->nr++;
	return 0;
}

/*
 * Make the FREE tree hold exactly the allocator's free runs on [s, e),
 * leaving it unchanged outside, and keep its items maximal runs: a run is
 * joined with the item ending at s and the item starting at e.
 */
static int sync_free_range(struct mfs_vol *v, uint64_t s, uint64_t e)
{
	struct run_list old = { 0 }, now = { 0 };
	struct mfs_key k = free_key(s);
	const void *val;
	size_t len, i;
	uint64_t ps = 0, pc = 0, start = 0, count = 0;
	bool have_prev = false;
	int rc;

	/* An item starting before s that reaches into the range: cut it at s,
	 * keeping any part past e as its own item. */
	rc = mfs_btree_lookup_le(v, MFS_TREE_FREE, &k, &val, &len);
	if (rc && rc != -ENOENT)
		return rc;
	if (rc == 0 && k.type == MFS_ITEM_FREE && k.offset < s) {
		rc = free_item(v, &k, val, len, &ps, &pc);
		if (rc)
			return rc;
		if (ps + pc > s) {
			if (ps + pc > e) {
				rc = put_free(v, e, ps + pc - e);
				if (rc)
					return rc;
			}
			pc = s - ps;
			rc = put_free(v, ps, pc);
			if (rc)
				return rc;
		}
		have_prev = ps + pc == s;
	}
	/* Items starting inside the range go; a part past e stays. */
	{
		struct mfs_cursor c;
		struct mfs_key lo = free_key(s), hi = free_key(e - 1);

		mfs_cursor_init(&c, v, MFS_TREE_FREE, &lo, &hi);
		while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0) {
			rc = free_item(v, &k, val, len, &start, &count);
			if (!rc)
				rc = run_add(&old, start, count);
			if (rc)
				goto out;
		}
		if (rc)
			goto out;
	}
	for (i = 0; i < old.nr; i++) {
		rc = del_free(v, old.r[i][0]);
		if (rc)
			goto out;
		if (old.r[i][0] + old.r[i][1] > e) {
			rc = put_free(v, e, old.r[i][0] + old.r[i][1] - e);
			if (rc)
				goto out;
		}
	}
	/* The allocator's runs, read after the deletes above (which may have
	 * allocated or freed blocks inside the range themselves). */
	rc = mfs_alloc_walk_free(v->alloc, s, e, run_add, &now);
	if (rc)
		goto out;
	for (i = 0; i < now.nr; i++) {
		start = now.r[i][0];
		count = now.r[i][1];
		if (start + count == e) {
			/* Join the item starting at e, if any. */
			struct mfs_key ek = free_key(e);

			rc = mfs_btree_lookup(v, MFS_TREE_FREE, &ek, &val, &len);
			if (rc == 0) {
				uint64_t es, ec;

				rc = free_item(v, &ek, val, len, &es, &ec);
				if (!rc)
					rc = del_free(v, e);
				if (rc)
					goto out;
				count += ec;
			} else if (rc != -ENOENT) {
				goto out;
			}
		}
		if (start == s && have_prev) {
			rc = put_free(v, ps, pc + count);
		} else {
			rc = put_free(v, start, count);
		}
		if (rc)
			goto out;
	}
	rc = 0;
out:
	free(old.r);
	free(now.r);
	return rc;
}

/* Write every allocator change into the FREE tree. Each pass takes the
 * ranges dirty at its start; its tree changes allocate and free node
 * blocks, which dirties more ranges for the next pass. A node is copied at
 * most once per transaction, so the passes end. */
static int sync_free_tree(struct mfs_vol *v)
{
	struct run_list pass = { 0 };
	uint64_t s, e;
	int passes = 0, rc = 0;
	size_t i;

	for (;;) {
		pass.nr = 0;
		while (mfs_alloc_pop_dirty(v->alloc, &s, &e)) {
			rc = run_add(&pass, s, e - s);
			if (rc)
				goto out;
		}
		if (pass.nr == 0)
			break;
		if (++passes > MAX_FREE_PASSES) {
			mfs_log(MFS_LOG_ERR, "commit: free-space tree does not settle");
			rc = -EIO;
			goto out;
		}
		for (i = 0; i < pass.nr; i++) {
			s = pass.r[i][0];
			e = s + pass.r[i][1];
			if (s < MFS_FIRST_DATA_BLOCK)
				s = MFS_FIRST_DATA_BLOCK;
			if (e <= s)
				continue;
			rc = sync_free_range(v, s, e);
			if (rc)
				goto out;
		}
	}
out:
	free(pass.r);
	return rc;
}

/* Load the allocator from the committed FREE tree. */
static int load_free(struct mfs_vol *v)
{
	struct mfs_cursor c;
	struct mfs_key lo = free_key(0), hi = free_key(UINT64_MAX), k;
	const void *val;
	size_t len;
	uint64_t start = 0, count = 0, total = 0;
	int rc;

	mfs_cursor_init(&c, v, MFS_TREE_FREE, &lo, &hi);
	while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0) {
		rc = free_item(v, &k, val, len, &start, &count);
		if (rc)
			return rc;
		rc = mfs_alloc_load(v->alloc, start, count);
		if (rc)
			return MFS_CORRUPT(v, "FREE tree: run %llu+%llu overlaps another",
					   (unsigned long long)start,
					   (unsigned long long)count);
		total += count;
	}
	if (rc)
		return rc;
	if (total != v->sb.free_blocks)
		return MFS_CORRUPT(v, "FREE tree holds %llu blocks, superblock says %llu",
				   (unsigned long long)total,
				   (unsigned long long)v->sb.free_blocks);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Commit                                                              */
/* ------------------------------------------------------------------ */

static void *slot_ptr(struct mfs_vol *v, unsigned slot)
{
	return mfs_image_block(v->img, slot);
}

static int fail_io(struct mfs_vol *v, int rc, const char *what)
{
	char msg[64];

	snprintf(msg, sizeof(msg), "commit: %s", what);
	return mfs_vol_sync_failed(v, rc, msg);
}

/* Released by mfs_alloc_unpin_cb: nothing any slot reaches. Failures only
 * cost host space, so they switch discarding off with a log line. */
static void discard_run(void *arg, uint64_t start, uint64_t len)
{
	struct mfs_vol *v = arg;
	int rc;

	if (!v->discard || len < MFS_DISCARD_MIN)
		return;
	rc = mfs_image_discard(v->img, start << MFS_BLOCK_SHIFT,
			       len << MFS_BLOCK_SHIFT);
	if (rc) {
		mfs_log(MFS_LOG_WARNING, "%s: cannot give freed space back to "
			"the host (%s); discard is off from now on",
			v->img->path, strerror(-rc));
		v->discard = false;
	}
}

/* Steps 1-6 of the commit protocol (txn.h), with state as the new
 * superblock's state. */
static int commit(struct mfs_vol *v, uint32_t state)
{
	struct mfs_super nsb;
	unsigned slot = 1u - v->cur_slot, i;
	int rc;

	rc = sync_free_tree(v);
	if (rc)
		return fail_io(v, rc, "writing the free-space tree");
	for (i = 0; i < MFS_TREE_COUNT; i++) {
		rc = mfs_btree_finish(v, i);
		if (rc)
			return fail_io(v, rc, "checksumming");
	}
	rc = mfs_image_sync(v->img);
	if (rc)
		return fail_io(v, rc, "sync");

	nsb = v->sb;
	nsb.generation = v->gen;
	nsb.state = state;
	nsb.block_count = mfs_alloc_block_count(v->alloc);
	nsb.free_blocks = mfs_alloc_free_blocks(v->alloc);
	nsb.inode_count = v->inode_count;
	nsb.next_ino = v->next_ino;
	nsb.commit_time = (uint64_t)time(NULL);
	if (!v->marked)
		nsb.mount_count++; /* the first commit of this open */
	memcpy(nsb.roots, v->roots, sizeof(nsb.roots));
	mfs_super_encode(&nsb, slot, slot_ptr(v, slot));
	rc = mfs_image_sync_range(v->img, (uint64_t)slot * MFS_BLOCK_SIZE,
				  MFS_BLOCK_SIZE);
	if (rc)
		return fail_io(v, rc, "superblock sync");

	v->sb = nsb;
	v->cur_slot = slot;
	/* Invariant (2): what generation gen-1 freed was used by gen-2, whose
	 * slot has just been overwritten. */
	mfs_alloc_unpin_cb(v->alloc, v->gen - 1, discard_run, v);
	v->gen++;
	v->dirty = false;
	v->marked = true;
	return 0;
}

int mfs_vol_mark(struct mfs_vol *v)
{
	if (v->error)
		return v->error;
	if (v->readonly || v->marked)
		return 0;
	return commit(v, MFS_STATE_DIRTY);
}

int mfs_txn_commit(struct mfs_vol *v)
{
	if (v->error)
		return v->error;
	if (v->readonly)
		return -EROFS;
	/* A transaction with nothing changed and nothing pinned writes
	 * nothing. Pinned blocks are released only by commits, so while some
	 * are pinned a clean transaction still commits (an idle filesystem
	 * gets its freed space back within two commit intervals). */
	if (!v->dirty && mfs_alloc_free_blocks(v->alloc) ==
			 mfs_alloc_avail_blocks(v->alloc))
		return 0;
	return commit(v, MFS_STATE_DIRTY);
}

int mfs_txn_abort(struct mfs_vol *v)
{
	int rc;

	if (v->fatal)
		return v->error;
	if (v->readonly && !v->error)
		return 0;
	memcpy(v->roots, v->sb.roots, sizeof(v->roots));
	v->inode_count = v->sb.inode_count;
	v->next_ino = v->sb.next_ino;
	/* Keep what the last commits freed pinned (invariant 2). */
	mfs_alloc_reset(v->alloc, v->sb.generation);
	v->seq++;
	v->error = 0;
	rc = load_free(v);
	if (rc) {
		v->error = rc;
		return rc;
	}
	v->dirty = false;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Open and close                                                      */
/* ------------------------------------------------------------------ */

static void vol_free(struct mfs_vol *v)
{
	if (!v)
		return;
	mfs_alloc_destroy(v->alloc);
	mfs_image_close(v->img);
	free(v->vcache);
	free(v);
}

/* Pick the valid slot with the highest generation. */
static int pick_super(struct mfs_vol *v, const char *path)
{
	struct mfs_super sb[MFS_SB_SLOTS];
	int rc[MFS_SB_SLOTS];
	unsigned i;
	int best = -1;

	for (i = 0; i < MFS_SB_SLOTS; i++) {
		rc[i] = mfs_super_decode(slot_ptr(v, i), mfs_image_blocks(v->img),
					 i, &sb[i]);
		/* A slot valid but for unknown incompat features (decoded in
		 * full: version 1) takes part in the choice: if it is the
		 * newest, a newer program wrote the current state, and
		 * opening the older slot would throw that away. */
		if ((rc[i] == 0 || (rc[i] == -EPROTONOSUPPORT &&
				    sb[i].version == MFS_VERSION)) &&
		    (best < 0 || sb[i].generation > sb[best].generation))
			best = (int)i;
	}
	if (best >= 0 && rc[best] == -EPROTONOSUPPORT) {
		mfs_log(MFS_LOG_ERR, "%s: uses features this version does not "
			"know (incompat 0x%x); it cannot be opened", path,
			(unsigned)(sb[best].feature_incompat &
				   ~MFS_FEATURE_INCOMPAT_SUPP));
		return -EPROTONOSUPPORT;
	}
	if (best < 0) {
		if (rc[0] == -EINVAL && rc[1] == -EINVAL) {
			mfs_log(MFS_LOG_ERR, "%s: not an mmapfs image (bad magic)", path);
			return -EINVAL;
		}
		if (rc[0] == -EPROTONOSUPPORT || rc[1] == -EPROTONOSUPPORT) {
			mfs_log(MFS_LOG_ERR, "%s: unsupported format version or "
				"feature (this program supports version %u)",
				path, MFS_VERSION);
			return -EPROTONOSUPPORT;
		}
		mfs_log(MFS_LOG_ERR, "%s: no valid superblock (both copies are "
			"damaged or do not fit the file)", path);
		return -EUCLEAN;
	}
	if (rc[1 - best] != 0)
		mfs_log(MFS_LOG_WARNING, "%s: superblock slot %d is invalid; "
			"using slot %d", path, 1 - best, best);
	v->sb = sb[best];
	v->cur_slot = (unsigned)best;
	return 0;
}

int mfs_vol_open(const char *path, unsigned flags, struct mfs_vol **out)
{
	struct mfs_vol *v;
	unsigned iflags = 0;
	int rc;

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (flags & MFS_VOL_RDONLY)
		iflags |= MFS_IMAGE_RDONLY;
	if (flags & MFS_VOL_NOLOCK)
		iflags |= MFS_IMAGE_NOLOCK;
	if (flags & MFS_VOL_WAIT)
		iflags |= MFS_IMAGE_WAIT;
	rc = mfs_image_open(path, iflags, &v->img);
	if (rc)
		goto fail;
	/* Until the opener has read what it needs (mfs_fs_open: the end of
	 * its open; a checker, which reads everything: now). */
	mfs_image_advise(v->img, !(flags & MFS_VOL_FSCK));
	if (mfs_image_blocks(v->img) < MFS_SB_SLOTS) {
		rc = -EINVAL;
		goto fail;
	}
	rc = pick_super(v, path);
	if (rc)
		goto fail;
	if (v->sb.feature_ro_compat & ~MFS_FEATURE_RO_COMPAT_SUPP) {
		if (!(flags & MFS_VOL_RDONLY)) {
			mfs_log(MFS_LOG_ERR, "%s: has features this version can "
				"only read; open it read-only", path);
			rc = -EPROTONOSUPPORT;
			goto fail;
		}
	}
	v->readonly = flags & MFS_VOL_RDONLY;
	v->discard = !v->readonly && (flags & MFS_VOL_DISCARD);
	v->gen = v->sb.generation + 1;
	memcpy(v->roots, v->sb.roots, sizeof(v->roots));
	v->inode_count = v->sb.inode_count;
	v->next_ino = v->sb.next_ino;
	v->meta_goal = MFS_FIRST_DATA_BLOCK;
	v->vcache = calloc(65536, sizeof(*v->vcache));
	rc = mfs_alloc_create(v->readonly ? NULL : v->img, MFS_FIRST_DATA_BLOCK,
			      v->sb.block_count, &v->alloc);
	if (rc)
		goto fail;
	if (flags & MFS_VOL_FSCK) {
		v->marked = true; /* repairs are not a mount */
		*out = v;
		return 0;
	}
	rc = load_free(v);
	if (rc) {
		mfs_log(MFS_LOG_ERR, "%s: the free-space tree is damaged", path);
		goto fail;
	}
	if (!v->readonly) {
		if (v->sb.state != MFS_STATE_CLEAN)
			mfs_log(MFS_LOG_NOTICE, "%s: was not unmounted cleanly; "
				"opening the last committed state", path);
		/* Mark it in use, so a crash from here on is visible. */
		if (!(flags & MFS_VOL_DEFER)) {
			rc = commit(v, MFS_STATE_DIRTY);
			if (rc)
				goto fail;
		}
	}
	*out = v;
	return 0;
fail:
	vol_free(v);
	return rc;
}

int mfs_vol_close(struct mfs_vol *v)
{
	int rc = 0;

	if (!v)
		return 0;
	if (!v->readonly && !v->error && (v->marked || v->dirty))
		rc = commit(v, MFS_STATE_CLEAN);
	else if (v->error)
		rc = v->error;
	vol_free(v);
	return rc;
}

void mfs_vol_close_dirty(struct mfs_vol *v)
{
	vol_free(v);
}

/* ------------------------------------------------------------------ */
/* Format                                                              */
/* ------------------------------------------------------------------ */

int mfs_vol_format(const char *path, const struct mfs_format_opts *opts,
		   mfs_format_tree_fn tree)
{
	struct mfs_vol *v;
	uint64_t blocks, t;
	size_t label_len = 0;
	int rc;

	if (opts->size % MFS_BLOCK_SIZE || opts->size < MFS_IMAGE_MIN_BYTES ||
	    opts->size > MFS_IMAGE_MAX_BYTES)
		return -EINVAL;
	if (opts->label) {
		label_len = strlen(opts->label);
		if (label_len > MFS_LABEL_MAX)
			return -ENAMETOOLONG;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	rc = mfs_image_create(path, opts->size, opts->force, opts->prealloc,
			      &v->img);
	if (rc)
		goto out;
	blocks = opts->size / MFS_BLOCK_SIZE;
	t = opts->time ? opts->time : (uint64_t)time(NULL);

	v->marked = true; /* mkfs is not a mount: mount_count stays 0 */
	v->sb.version = MFS_VERSION;
	v->sb.block_count = blocks;
	v->sb.mkfs_time = t;
	if (opts->uuid) {
		memcpy(v->sb.uuid, opts->uuid, MFS_UUID_SIZE);
	} else if (getrandom(v->sb.uuid, MFS_UUID_SIZE, 0) != MFS_UUID_SIZE) {
		rc = -EIO;
		goto out;
	} else {
		v->sb.uuid[6] = (v->sb.uuid[6] & 0x0f) | 0x40; /* v4 UUID */
		v->sb.uuid[8] = (v->sb.uuid[8] & 0x3f) | 0x80;
	}
	if (opts->hash_seed) {
		memcpy(v->sb.hash_seed, opts->hash_seed, sizeof(v->sb.hash_seed));
	} else if (getrandom(v->sb.hash_seed, sizeof(v->sb.hash_seed), 0) !=
		   sizeof(v->sb.hash_seed)) {
		rc = -EIO;
		goto out;
	}
	if (label_len)
		memcpy(v->sb.label, opts->label, label_len);
	/* Slot 1 is written by the first commit; slot 0 must not look like
	 * a superblock from an earlier format of the same file. */
	memset(slot_ptr(v, 0), 0, MFS_BLOCK_SIZE);
	memset(slot_ptr(v, 1), 0, MFS_BLOCK_SIZE);
	v->cur_slot = 0;
	v->gen = 1;
	v->meta_goal = MFS_FIRST_DATA_BLOCK;
	rc = mfs_alloc_create(v->img, MFS_FIRST_DATA_BLOCK, blocks, &v->alloc);
	if (!rc)
		rc = mfs_alloc_load(v->alloc, MFS_FIRST_DATA_BLOCK,
				    blocks - MFS_FIRST_DATA_BLOCK);
	if (!rc)
		rc = mfs_btree_create(v, MFS_TREE_FREE);
	if (!rc)
		rc = mfs_btree_create(v, MFS_TREE_FS);
	if (rc)
		goto out;
	rc = tree(v, opts, t);
	if (rc)
		goto out;
	{
		/* Everything is dirty: the FREE tree is built from scratch. */
		uint64_t s, e;

		while (mfs_alloc_pop_dirty(v->alloc, &s, &e))
			;
		rc = sync_free_range(v, MFS_FIRST_DATA_BLOCK, blocks);
		if (rc)
			goto out;
	}
	rc = commit(v, MFS_STATE_CLEAN);
	if (rc)
		goto out;
	/* Both slots hold generation 1, so the first open finds two valid
	 * copies (on a tie slot 0 wins) and the first commit writes slot 1. */
	mfs_super_encode(&v->sb, 1u - v->cur_slot, slot_ptr(v, 1u - v->cur_slot));
	rc = mfs_image_sync(v->img);
out:
	vol_free(v);
	return rc;
}
