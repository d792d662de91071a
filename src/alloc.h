/* SPDX-License-Identifier: MIT */
/*
 * alloc.h — the in-memory free-space map.
 *
 * Layer 3. Calls only the image layer (to reserve host space).
 *
 * The allocator holds, in memory, the set of blocks that are free in the
 * running transaction, split in two:
 *   avail   blocks that may be handed out now;
 *   pinned  blocks freed in generation g, still referenced by the committed
 *           state (or by the one before it), kept out of use until
 *           mfs_alloc_unpin(g) is called once it is safe.
 * "Free in the running state" is avail ∪ pinned; that is what the FREE tree
 * must hold when the running transaction commits (the txn layer writes it).
 *
 * Every change to the free set marks its block range dirty; the txn layer
 * drains dirty ranges at commit and rewrites the FREE tree items there.
 *
 * Not thread-safe: the caller serialises.
 */
#ifndef MFS_ALLOC_H
#define MFS_ALLOC_H

#include <stdbool.h>
#include <stdint.h>

struct mfs_image;
struct mfs_alloc;

/* Create an empty allocator for blocks [first, count): nothing is free
 * until mfs_alloc_load() adds it. img may be NULL (no host reservation, for
 * unit tests). Returns 0 and *out, or -ENOMEM. */
int mfs_alloc_create(struct mfs_image *img, uint64_t first, uint64_t count,
		     struct mfs_alloc **out);
void mfs_alloc_destroy(struct mfs_alloc *a);

/* Add [start, start+len) to avail, without marking it dirty: used when
 * loading the FREE tree at open, at format and after an abort. Blocks of
 * the range that are pinned (pins kept by mfs_alloc_reset) stay pinned.
 * -EUCLEAN if the range is out of bounds or overlaps avail. */
int mfs_alloc_load(struct mfs_alloc *a, uint64_t start, uint64_t len);

/*
 * Allocate a contiguous run of at least min and at most want blocks from
 * avail: the first run at or after goal that has want blocks, else the
 * longest run found (if >= min), wrapping around to the start. Reserves host
 * space for the run first. Returns 0 with *start and *len set, -ENOSPC if no
 * run of min blocks exists (or the host is full), or -errno.
 */
int mfs_alloc_alloc(struct mfs_alloc *a, uint64_t goal, uint64_t want,
		    uint64_t min, uint64_t *start, uint64_t *len);

/* Free a run. If gen is 0 the blocks go straight back to avail (they were
 * allocated in the running transaction and no committed state references
 * them); otherwise they are pinned to generation gen. -EUCLEAN if any block
 * in the run is already free or out of bounds (nothing is changed then). */
int mfs_alloc_free(struct mfs_alloc *a, uint64_t start, uint64_t len,
		   uint64_t gen);

/* Move every run pinned to a generation <= gen into avail. Does not mark
 * anything dirty: the FREE tree already holds pinned runs as free. */
void mfs_alloc_unpin(struct mfs_alloc *a, uint64_t gen);
/* The same, calling released(arg, start, len) for each run first (before
 * it merges with its neighbours in avail). released must not call into
 * the allocator. */
void mfs_alloc_unpin_cb(struct mfs_alloc *a, uint64_t gen,
			void (*released)(void *arg, uint64_t start,
					 uint64_t len),
			void *arg);

/* Empty avail and the dirty set and forget the pins of generations after
 * keep_gen, before a reload from the committed FREE tree on abort. Pins of
 * keep_gen and older stay: their blocks are free in that FREE tree but
 * still used by the older superblock slot. keep_gen 0 forgets every pin. */
void mfs_alloc_reset(struct mfs_alloc *a, uint64_t keep_gen);

/* Extend the managed range to [first, new_count); the new blocks are
 * added to avail and marked dirty. */
int mfs_alloc_grow(struct mfs_alloc *a, uint64_t new_count);

/* Mark [start, end) dirty without changing the free set, so that the next
 * commit rewrites the FREE tree there (fsck, after rebuilding the free set
 * from scratch). 0 or -ENOMEM. */
int mfs_alloc_mark_dirty(struct mfs_alloc *a, uint64_t start, uint64_t end);

/* Take one dirty range out of the dirty set: returns true and [*start,
 * *end), or false when nothing is dirty. Ranges returned may be larger than
 * what changed (they are merged). */
bool mfs_alloc_pop_dirty(struct mfs_alloc *a, uint64_t *start, uint64_t *end);

/* Call cb for every maximal run of blocks free in the running state
 * (avail ∪ pinned) that intersects [start, end), clipped to it, in order.
 * Stops and returns cb's value if non-zero. */
int mfs_alloc_walk_free(struct mfs_alloc *a, uint64_t start, uint64_t end,
			int (*cb)(void *arg, uint64_t start, uint64_t len),
			void *arg);

/* True if blk is free in the running state (avail or pinned). */
bool mfs_alloc_is_free(struct mfs_alloc *a, uint64_t blk);

uint64_t mfs_alloc_free_blocks(const struct mfs_alloc *a);  /* avail+pinned */
uint64_t mfs_alloc_avail_blocks(const struct mfs_alloc *a); /* avail */
uint64_t mfs_alloc_block_count(const struct mfs_alloc *a);  /* count */

#endif
