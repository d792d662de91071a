/* SPDX-License-Identifier: MIT */
/*
 * btree.h — the copy-on-write B+tree.
 *
 * Layer 4. Calls image (block pointers), alloc (new blocks for copies) and
 * crc32c. Knows nothing of what items mean.
 *
 * Keys are (objectid, type, offset), compared in that order. Values are
 * 0..MFS_MAX_VALUE bytes. Every node reached from a committed root is
 * read-only: the first change to a node in a transaction copies it to a
 * newly allocated block (and its parent, up to the root), and frees the old
 * one pinned to the running generation. A node whose generation equals the
 * running one was written in this transaction and is changed in place; so
 * each block is copied at most once per transaction.
 *
 * Every node read is checked before use: a node written by an earlier
 * commit must have a valid crc32c, the magic, its own block number, the
 * generation its parent records, the expected level and tree, the UUID,
 * and item offsets and lengths that stay inside the block. Failing any of
 * these gives -EUCLEAN (via MFS_CORRUPT) and nothing is changed. Checksums
 * of changed nodes are computed at commit (mfs_btree_finish).
 *
 * All functions return 0 or a negative errno. -ENOENT means "no such key".
 * Pointers to values point into the mapping and stay valid only until the
 * next change to any tree of the volume.
 */
#ifndef MFS_BTREE_H
#define MFS_BTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vol.h"

struct mfs_key {
	uint64_t objectid;
	uint64_t offset;
	uint8_t type;
};

int mfs_key_cmp(const struct mfs_key *a, const struct mfs_key *b);

static inline struct mfs_key mfs_key_make(uint64_t objectid, uint8_t type,
					  uint64_t offset)
{
	struct mfs_key k = { .objectid = objectid, .offset = offset, .type = type };
	return k;
}

/* Write an empty leaf as the root of tree `tree` (a new block from the
 * allocator, generation v->gen). Used by mkfs. */
int mfs_btree_create(struct mfs_vol *v, unsigned tree);

/* Exact lookup. On success *val and *len describe the value (read-only). */
int mfs_btree_lookup(struct mfs_vol *v, unsigned tree,
		     const struct mfs_key *key, const void **val, size_t *len);

/* Like lookup, but first copies the path so the value may be changed in
 * place (same length) through *val. */
int mfs_btree_lookup_mut(struct mfs_vol *v, unsigned tree,
			 const struct mfs_key *key, void **val, size_t *len);

/* Insert a new item; -EEXIST if the key is present, -E2BIG if len >
 * MFS_MAX_VALUE, -ENOSPC if no block could be allocated. */
int mfs_btree_insert(struct mfs_vol *v, unsigned tree,
		     const struct mfs_key *key, const void *val, size_t len);

/* Replace the value of an existing item (the size may change); -ENOENT if
 * absent. */
int mfs_btree_update(struct mfs_vol *v, unsigned tree,
		     const struct mfs_key *key, const void *val, size_t len);

/* Insert or replace. */
int mfs_btree_put(struct mfs_vol *v, unsigned tree, const struct mfs_key *key,
		  const void *val, size_t len);

/* Delete an item; -ENOENT if absent. Underfull nodes are merged with a
 * neighbour when the two fit in one; a root with one child is collapsed. */
int mfs_btree_delete(struct mfs_vol *v, unsigned tree,
		     const struct mfs_key *key);

/*
 * Ordered iteration over [start, end] (both inclusive). Changes to the
 * trees while iterating are allowed: the cursor notices and re-seeks just
 * past the last key it returned.
 *
 *   struct mfs_cursor c;
 *   mfs_cursor_init(&c, v, tree, &start, &end);
 *   while ((rc = mfs_cursor_next(&c, &key, &val, &len)) > 0) ...
 *
 * mfs_cursor_next returns 1 with an item, 0 at the end, or -errno.
 */
struct mfs_cursor {
	struct mfs_vol *v;
	unsigned tree;
	struct mfs_key next;   /* smallest key not yet returned */
	struct mfs_key end;
	uint64_t seq;          /* v->seq when path was taken */
	bool done;
	bool have_path;
	int depth;             /* number of levels in path (root first) */
	struct {
		uint64_t block;
		unsigned slot;
	} path[MFS_MAX_LEVELS];
};

void mfs_cursor_init(struct mfs_cursor *c, struct mfs_vol *v, unsigned tree,
		     const struct mfs_key *start, const struct mfs_key *end);
int mfs_cursor_next(struct mfs_cursor *c, struct mfs_key *key,
		    const void **val, size_t *len);

/* Find the last item with key <= *key. Returns 0 and sets *key, *val,
 * *len, or -ENOENT if there is none. */
int mfs_btree_lookup_le(struct mfs_vol *v, unsigned tree, struct mfs_key *key,
			const void **val, size_t *len);

/* Commit support: compute the checksum of every node written in the
 * running transaction (those reachable through pointers of generation
 * v->gen). Called by txn before the first sync. */
int mfs_btree_finish(struct mfs_vol *v, unsigned tree);

/*
 * Full check of one tree: every node's checksum, header, level, key order
 * inside and against the parent's bounds, item bounds, and (since each
 * level must be one less than its parent) the absence of loops. If
 * block_cb is not NULL it is called for every node block. Returns 0, or
 * -EUCLEAN after logging the first problem.
 */
int mfs_btree_check(struct mfs_vol *v, unsigned tree,
		    int (*block_cb)(void *arg, uint64_t block), void *arg);

#endif
