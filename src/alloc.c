/* SPDX-License-Identifier: MIT */
/*
 * alloc.c — the in-memory free-space map; see alloc.h for the contract.
 *
 * Layer 3. Calls only mfs_image_reserve() from the image layer (and only
 * when the allocator was given an image), and libc.
 *
 * Every set of blocks here — avail, each generation's pinned set, and the
 * dirty ranges — is an "extent set": disjoint [start, start+len) runs in a
 * treap keyed by start, each node augmented with the longest run in its
 * subtree (max_len). That answers "leftmost run at or after goal with at
 * least want blocks" and "longest run" in O(log n), which matters because a
 * large fragmented image holds millions of runs. Within one set adjacent
 * runs are always merged; runs of different sets may touch (a pinned run
 * next to an avail one), and never overlap.
 *
 * Failure atomicity: every public call that changes something first makes
 * sure enough spare tree nodes are at hand (node_reserve), so once it starts
 * changing sets it cannot fail half-way.
 */
#include "alloc.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

struct ext_node {
	uint64_t start;
	uint64_t len;
	uint64_t max_len;          /* longest len in this subtree */
	struct ext_node *l, *r;
	uint32_t prio;             /* treap heap order: parent >= children */
};

struct ext_set {
	struct ext_node *root;
	uint64_t blocks;           /* sum of len */
};

struct pin {
	uint64_t gen;
	struct ext_set set;
};

/* Spare nodes kept after being released; the rest go back to malloc so a
 * big merge does not leave the allocator holding peak memory. */
#define SPARE_MAX 64

struct mfs_alloc {
	struct mfs_image *img;
	uint64_t first, count;     /* managed blocks: [first, count) */
	struct ext_set avail;
	struct pin *pins;          /* unordered; few live generations */
	size_t npins, pins_cap;
	uint64_t pinned_blocks;    /* sum over pins, so counters stay O(1) */
	struct ext_set dirty;
	struct ext_node *spare;    /* linked through ->l */
	unsigned nspare;
	uint32_t rng;              /* xorshift32 state for treap priorities */
};

/* ---- extent-set primitives (treap) ---- */

static inline uint64_t ext_end(const struct ext_node *n)
{
	return n->start + n->len;
}

static inline uint64_t sub_max(const struct ext_node *n)
{
	return n ? n->max_len : 0;
}

static void update(struct ext_node *n)
{
	uint64_t m = n->len;

	if (sub_max(n->l) > m)
		m = n->l->max_len;
	if (sub_max(n->r) > m)
		m = n->r->max_len;
	n->max_len = m;
}

static struct ext_node *rot_right(struct ext_node *n)
{
	struct ext_node *l = n->l;

	n->l = l->r;
	l->r = n;
	update(n);
	update(l);
	return l;
}

static struct ext_node *rot_left(struct ext_node *n)
{
	struct ext_node *r = n->r;

	n->r = r->l;
	r->l = n;
	update(n);
	update(r);
	return r;
}

/* Insert n (a detached node whose start is not yet in the tree). */
static struct ext_node *t_insert(struct ext_node *t, struct ext_node *n)
{
	if (!t) {
		n->l = n->r = NULL;
		update(n);
		return n;
	}
	assert(n->start != t->start);
	if (n->start < t->start) {
		t->l = t_insert(t->l, n);
		if (t->l->prio > t->prio)
			return rot_right(t);
	} else {
		t->r = t_insert(t->r, n);
		if (t->r->prio > t->prio)
			return rot_left(t);
	}
	update(t);
	return t;
}

/* Join two treaps where every key of a is below every key of b. */
static struct ext_node *t_join(struct ext_node *a, struct ext_node *b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	if (a->prio > b->prio) {
		a->r = t_join(a->r, b);
		update(a);
		return a;
	}
	b->l = t_join(a, b->l);
	update(b);
	return b;
}

/* Unlink the node whose start is key (it must exist); it is not freed. */
static struct ext_node *t_unlink(struct ext_node *t, uint64_t key)
{
	assert(t);
	if (key < t->start) {
		t->l = t_unlink(t->l, key);
	} else if (key > t->start) {
		t->r = t_unlink(t->r, key);
	} else {
		return t_join(t->l, t->r);
	}
	update(t);
	return t;
}

/*
 * Recompute max_len on the path to the node whose start is key, after its
 * len or start changed in place. A start may move only within the gap that
 * no other node's start lies in (down to just after the previous run, or up
 * to inside its own old run): then every comparison on the way down gives
 * the same answer for the new start as for the old, so key, the new start,
 * still finds the node.
 */
static void t_fix(struct ext_node *t, uint64_t key)
{
	assert(t);
	if (key < t->start)
		t_fix(t->l, key);
	else if (key > t->start)
		t_fix(t->r, key);
	update(t);
}

/* The run with the largest start <= key, or NULL. */
static struct ext_node *t_floor(struct ext_node *t, uint64_t key)
{
	struct ext_node *best = NULL;

	while (t) {
		if (t->start <= key) {
			best = t;
			t = t->r;
		} else {
			t = t->l;
		}
	}
	return best;
}

/* The run with the smallest start > key, or NULL. */
static struct ext_node *t_above(struct ext_node *t, uint64_t key)
{
	struct ext_node *best = NULL;

	while (t) {
		if (t->start > key) {
			best = t;
			t = t->l;
		} else {
			t = t->r;
		}
	}
	return best;
}

static struct ext_node *t_leftmost(struct ext_node *t)
{
	while (t && t->l)
		t = t->l;
	return t;
}

/*
 * The leftmost run with start >= goal and len >= want, or NULL. O(depth):
 * a subtree lying wholly at or after goal is entered only when its max_len
 * promises a hit, so the search never backtracks out of one empty-handed.
 */
static struct ext_node *t_first_fit(struct ext_node *t, uint64_t goal,
				    uint64_t want)
{
	struct ext_node *hit;

	while (t && t->max_len >= want) {
		if (t->start < goal) {
			t = t->r;
			continue;
		}
		hit = t_first_fit(t->l, goal, want);
		if (hit)
			return hit;
		if (t->len >= want)
			return t;
		t = t->r;
	}
	return NULL;
}

/* The leftmost of the longest runs, or NULL if the set is empty. */
static struct ext_node *t_longest(struct ext_node *t)
{
	while (t) {
		if (sub_max(t->l) == t->max_len)
			t = t->l;
		else if (t->len == t->max_len)
			return t;
		else
			t = t->r;
	}
	return NULL;
}

/* The run that contains blk, or NULL. */
static struct ext_node *set_find(const struct ext_set *s, uint64_t blk)
{
	struct ext_node *n = t_floor(s->root, blk);

	return n && ext_end(n) > blk ? n : NULL;
}

/* The first run that ends after pos (it may contain pos), or NULL. */
static struct ext_node *set_from(const struct ext_set *s, uint64_t pos)
{
	struct ext_node *n = set_find(s, pos);

	return n ? n : t_above(s->root, pos);
}

/* True if [start, end) shares a block with s. */
static bool set_overlaps(const struct ext_set *s, uint64_t start, uint64_t end)
{
	struct ext_node *n = set_from(s, start);

	return n && n->start < end;
}

/* ---- node supply ---- */

/* Make sure k spare nodes are at hand. 0 or -ENOMEM (nothing changed). */
static int node_reserve(struct mfs_alloc *a, unsigned k)
{
	while (a->nspare < k) {
		struct ext_node *n = malloc(sizeof(*n));

		if (!n)
			return -ENOMEM;
		n->l = a->spare;
		a->spare = n;
		a->nspare++;
	}
	return 0;
}

static struct ext_node *node_get(struct mfs_alloc *a, uint64_t start,
				 uint64_t len)
{
	struct ext_node *n = a->spare;

	assert(n); /* callers node_reserve() before changing anything */
	a->spare = n->l;
	a->nspare--;
	a->rng ^= a->rng << 13;
	a->rng ^= a->rng >> 17;
	a->rng ^= a->rng << 5;
	n->prio = a->rng;
	n->start = start;
	n->len = len;
	n->l = n->r = NULL;
	return n;
}

static void node_put(struct mfs_alloc *a, struct ext_node *n)
{
	if (a->nspare >= SPARE_MAX) {
		free(n);
		return;
	}
	n->l = a->spare;
	a->spare = n;
	a->nspare++;
}

/* ---- extent-set operations ---- */

/*
 * Add [start, start+len), which must not overlap s, merging with the runs
 * that touch it. n is a detached node to use (or to release if the range
 * merges), or NULL to take a spare one. Needs at most one spare node.
 */
static void set_add(struct mfs_alloc *a, struct ext_set *s, uint64_t start,
		    uint64_t len, struct ext_node *n)
{
	uint64_t end = start + len;
	struct ext_node *prev = t_floor(s->root, start);
	struct ext_node *next = t_above(s->root, start);

	assert(len > 0);
	assert(!prev || ext_end(prev) <= start);
	assert(!next || next->start >= end);
	s->blocks += len;
	if (prev && ext_end(prev) == start) {
		prev->len += len;
		if (next && next->start == end) {
			prev->len += next->len;
			s->root = t_unlink(s->root, next->start);
			node_put(a, next);
		}
		t_fix(s->root, prev->start);
	} else if (next && next->start == end) {
		next->start = start;
		next->len += len;
		t_fix(s->root, next->start);
	} else {
		if (n) {
			n->start = start;
			n->len = len;
		} else {
			n = node_get(a, start, len);
		}
		s->root = t_insert(s->root, n);
		return;
	}
	if (n)
		node_put(a, n);
}

/*
 * Remove [start, start+len), which must lie inside run n of s, splitting n
 * if the range is in its middle. Needs at most one spare node.
 */
static void set_cut(struct mfs_alloc *a, struct ext_set *s,
		    struct ext_node *n, uint64_t start, uint64_t len)
{
	uint64_t end = start + len, n_end = ext_end(n);

	assert(n->start <= start && end <= n_end);
	s->blocks -= len;
	if (n->start == start && n_end == end) {
		s->root = t_unlink(s->root, n->start);
		node_put(a, n);
	} else if (n->start == start) {
		n->start = end;
		n->len = n_end - end;
		t_fix(s->root, n->start);
	} else {
		n->len = start - n->start;
		t_fix(s->root, n->start);
		if (end < n_end)
			s->root = t_insert(s->root,
					   node_get(a, end, n_end - end));
	}
}

/* Add [start, end) to a set of merged ranges that may already overlap it.
 * Needs at most one spare node. */
static void set_union(struct mfs_alloc *a, struct ext_set *s, uint64_t start,
		      uint64_t end)
{
	struct ext_node *n = t_floor(s->root, start);

	if (n && ext_end(n) >= start) {
		if (ext_end(n) >= end)
			return;
		start = n->start;
		s->blocks -= n->len;
		s->root = t_unlink(s->root, n->start);
		node_put(a, n);
	}
	while ((n = t_above(s->root, start)) && n->start <= end) {
		if (ext_end(n) > end)
			end = ext_end(n);
		s->blocks -= n->len;
		s->root = t_unlink(s->root, n->start);
		node_put(a, n);
	}
	s->blocks += end - start;
	s->root = t_insert(s->root, node_get(a, start, end - start));
}

/*
 * Detach every node of t in order, calling fn on each. Rotates left
 * children up instead of recursing, so it needs no stack however deep the
 * tree is.
 */
typedef void drain_fn(struct mfs_alloc *a, struct ext_node *n, void *arg);

static void t_drain(struct ext_node *t, drain_fn *fn, struct mfs_alloc *a,
		    void *arg)
{
	while (t) {
		if (t->l) {
			struct ext_node *l = t->l;

			t->l = l->r;
			l->r = t;
			t = l;
		} else {
			struct ext_node *next = t->r;

			t->r = NULL;
			fn(a, t, arg);
			t = next;
		}
	}
}

static void drain_free(struct mfs_alloc *a, struct ext_node *n, void *arg)
{
	free(n);
}

struct release_cb {
	void (*fn)(void *arg, uint64_t start, uint64_t len);
	void *arg;
};

static void drain_to_avail(struct mfs_alloc *a, struct ext_node *n, void *arg)
{
	const struct release_cb *cb = arg;

	if (cb && cb->fn)
		cb->fn(cb->arg, n->start, n->len);
	set_add(a, &a->avail, n->start, n->len, n);
}

static void set_clear(struct ext_set *s)
{
	t_drain(s->root, drain_free, NULL, NULL);
	s->root = NULL;
	s->blocks = 0;
}

/* ---- public API ---- */

/* Blocks must stay byte-addressable for mfs_image_reserve(). */
#define MAX_BLOCKS (UINT64_MAX >> MFS_BLOCK_SHIFT)

int mfs_alloc_create(struct mfs_image *img, uint64_t first, uint64_t count,
		     struct mfs_alloc **out)
{
	struct mfs_alloc *a;

	if (first > count || count > MAX_BLOCKS)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->img = img;
	a->first = first;
	a->count = count;
	a->rng = 0x9e3779b9u; /* fixed: runs are reproducible */
	*out = a;
	return 0;
}

void mfs_alloc_destroy(struct mfs_alloc *a)
{
	if (!a)
		return;
	mfs_alloc_reset(a, 0);
	free(a->pins);
	while (a->spare) {
		struct ext_node *n = a->spare;

		a->spare = n->l;
		free(n);
	}
	free(a);
}

static struct pin *pin_find(struct mfs_alloc *a, uint64_t gen)
{
	for (size_t i = 0; i < a->npins; i++)
		if (a->pins[i].gen == gen)
			return &a->pins[i];
	return NULL;
}

/* 0 if [start, start+len) lies inside the managed range and no block of it
 * is free (avail or pinned); -EUCLEAN otherwise. */
static int check_not_free(struct mfs_alloc *a, uint64_t start, uint64_t len)
{
	uint64_t end;

	if (len == 0 || start < a->first || start >= a->count ||
	    len > a->count - start)
		return -EUCLEAN;
	end = start + len;
	if (set_overlaps(&a->avail, start, end))
		return -EUCLEAN;
	for (size_t i = 0; i < a->npins; i++)
		if (set_overlaps(&a->pins[i].set, start, end))
			return -EUCLEAN;
	return 0;
}

/* The first pinned run (over all generations) that ends after pos and
 * starts before end, or NULL. */
static struct ext_node *first_pinned(struct mfs_alloc *a, uint64_t pos,
				     uint64_t end)
{
	struct ext_node *best = NULL;

	for (size_t i = 0; i < a->npins; i++) {
		struct ext_node *n = set_from(&a->pins[i].set, pos);

		if (n && n->start < end && (!best || n->start < best->start))
			best = n;
	}
	return best;
}

int mfs_alloc_load(struct mfs_alloc *a, uint64_t start, uint64_t len)
{
	uint64_t end, pos;
	int rc;

	if (len == 0 || start < a->first || start >= a->count ||
	    len > a->count - start)
		return -EUCLEAN;
	end = start + len;
	if (set_overlaps(&a->avail, start, end))
		return -EUCLEAN;
	/* Parts still pinned (kept across an abort) stay pinned. */
	for (pos = start; pos < end;) {
		struct ext_node *p = first_pinned(a, pos, end);
		uint64_t stop = p ? (p->start > pos ? p->start : pos) : end;

		if (stop > pos) {
			rc = node_reserve(a, 1);
			if (rc)
				return rc;
			set_add(a, &a->avail, pos, stop - pos, NULL);
		}
		if (!p)
			break;
		pos = ext_end(p) < end ? ext_end(p) : end;
	}
	return 0;
}

int mfs_alloc_alloc(struct mfs_alloc *a, uint64_t goal, uint64_t want,
		    uint64_t min, uint64_t *start, uint64_t *len)
{
	struct ext_node *n;
	uint64_t s, l;
	int rc;

	if (min == 0 || min > want)
		return -EINVAL;
	rc = node_reserve(a, 2); /* split of the run + dirty range */
	if (rc)
		return rc;
	if (goal < a->first || goal >= a->count)
		goal = a->first;

	/* Take from goal itself when it is free with room: a file that
	 * grows then continues right after its last block. */
	n = set_find(&a->avail, goal);
	if (n && ext_end(n) - goal >= want) {
		s = goal;
		l = want;
	} else {
		n = t_first_fit(a->avail.root, goal, want);
		if (!n)
			n = t_first_fit(a->avail.root, 0, want);
		if (!n) {
			n = t_longest(a->avail.root);
			if (!n || n->len < min)
				return -ENOSPC;
		}
		s = n->start;
		l = n->len < want ? n->len : want;
	}

	if (a->img) {
		rc = mfs_image_reserve(a->img, s << MFS_BLOCK_SHIFT,
				       l << MFS_BLOCK_SHIFT);
		if (rc)
			return rc;
	}
	set_cut(a, &a->avail, n, s, l);
	set_union(a, &a->dirty, s, s + l);
	*start = s;
	*len = l;
	return 0;
}

int mfs_alloc_free(struct mfs_alloc *a, uint64_t start, uint64_t len,
		   uint64_t gen)
{
	struct ext_set *s = &a->avail;
	int rc = check_not_free(a, start, len);

	if (rc)
		return rc;
	rc = node_reserve(a, 2); /* the run + dirty range */
	if (rc)
		return rc;
	if (gen) {
		struct pin *p = pin_find(a, gen);

		if (!p) {
			if (a->npins == a->pins_cap) {
				size_t cap = a->pins_cap ? 2 * a->pins_cap : 4;
				struct pin *np = realloc(a->pins,
							 cap * sizeof(*np));

				if (!np)
					return -ENOMEM;
				a->pins = np;
				a->pins_cap = cap;
			}
			p = &a->pins[a->npins++];
			p->gen = gen;
			p->set.root = NULL;
			p->set.blocks = 0;
		}
		s = &p->set;
		a->pinned_blocks += len;
	}
	set_add(a, s, start, len, NULL);
	set_union(a, &a->dirty, start, start + len);
	return 0;
}

void mfs_alloc_unpin(struct mfs_alloc *a, uint64_t gen)
{
	mfs_alloc_unpin_cb(a, gen, NULL, NULL);
}

void mfs_alloc_unpin_cb(struct mfs_alloc *a, uint64_t gen,
			void (*released)(void *arg, uint64_t start,
					 uint64_t len),
			void *arg)
{
	struct release_cb cb = { released, arg };
	size_t i = 0;

	while (i < a->npins) {
		struct pin *p = &a->pins[i];

		if (p->gen > gen) {
			i++;
			continue;
		}
		a->pinned_blocks -= p->set.blocks;
		/* Reuses the pinned nodes, so this needs no memory. */
		t_drain(p->set.root, drain_to_avail, a, &cb);
		*p = a->pins[--a->npins];
	}
}

void mfs_alloc_reset(struct mfs_alloc *a, uint64_t keep_gen)
{
	size_t i = 0;

	set_clear(&a->avail);
	set_clear(&a->dirty);
	while (i < a->npins) {
		struct pin *p = &a->pins[i];

		if (p->gen <= keep_gen) {
			i++;
			continue;
		}
		a->pinned_blocks -= p->set.blocks;
		set_clear(&p->set);
		*p = a->pins[--a->npins];
	}
}

int mfs_alloc_grow(struct mfs_alloc *a, uint64_t new_count)
{
	int rc;

	if (new_count < a->count || new_count > MAX_BLOCKS)
		return -EINVAL;
	if (new_count == a->count)
		return 0;
	rc = node_reserve(a, 2);
	if (rc)
		return rc;
	set_add(a, &a->avail, a->count, new_count - a->count, NULL);
	set_union(a, &a->dirty, a->count, new_count);
	a->count = new_count;
	return 0;
}

int mfs_alloc_mark_dirty(struct mfs_alloc *a, uint64_t start, uint64_t end)
{
	int rc;

	if (start < a->first)
		start = a->first;
	if (end > a->count)
		end = a->count;
	if (start >= end)
		return 0;
	rc = node_reserve(a, 1);
	if (rc)
		return rc;
	set_union(a, &a->dirty, start, end);
	return 0;
}

bool mfs_alloc_pop_dirty(struct mfs_alloc *a, uint64_t *start, uint64_t *end)
{
	struct ext_node *n = t_leftmost(a->dirty.root);

	if (!n)
		return false;
	*start = n->start;
	*end = ext_end(n);
	a->dirty.blocks -= n->len;
	a->dirty.root = t_unlink(a->dirty.root, n->start);
	node_put(a, n);
	return true;
}

/*
 * A merge of avail and the pinned sets. Each step seeks every set by block
 * number rather than keeping iterators, so cb may change the allocator (the
 * txn layer allocates while writing the FREE tree); later runs then reflect
 * the state at the time they are reached.
 */
int mfs_alloc_walk_free(struct mfs_alloc *a, uint64_t start, uint64_t end,
			int (*cb)(void *arg, uint64_t start, uint64_t len),
			void *arg)
{
	uint64_t pos = start > a->first ? start : a->first;

	for (;;) {
		uint64_t run_s = UINT64_MAX, run_e = 0;
		bool grew;
		int rc;

		if (end > a->count)
			end = a->count;
		if (pos >= end)
			return 0;
		for (size_t i = 0; i <= a->npins; i++) {
			struct ext_set *s = i < a->npins ? &a->pins[i].set
							 : &a->avail;
			struct ext_node *n = set_from(s, pos);

			if (n && n->start < run_s) {
				run_s = n->start;
				run_e = ext_end(n);
			}
		}
		if (run_s >= end)
			return 0;
		if (run_s < pos)
			run_s = pos;
		/* Runs of different sets may touch: follow the chain. */
		do {
			grew = false;
			for (size_t i = 0; i <= a->npins && run_e < end; i++) {
				struct ext_set *s = i < a->npins
					? &a->pins[i].set : &a->avail;
				struct ext_node *n = set_find(s, run_e);

				if (n) {
					run_e = ext_end(n);
					grew = true;
				}
			}
		} while (grew && run_e < end);
		if (run_e > end)
			run_e = end;
		rc = cb(arg, run_s, run_e - run_s);
		if (rc)
			return rc;
		pos = run_e;
	}
}

bool mfs_alloc_is_free(struct mfs_alloc *a, uint64_t blk)
{
	if (set_find(&a->avail, blk))
		return true;
	for (size_t i = 0; i < a->npins; i++)
		if (set_find(&a->pins[i].set, blk))
			return true;
	return false;
}

uint64_t mfs_alloc_free_blocks(const struct mfs_alloc *a)
{
	return a->avail.blocks + a->pinned_blocks;
}

uint64_t mfs_alloc_avail_blocks(const struct mfs_alloc *a)
{
	return a->avail.blocks;
}

uint64_t mfs_alloc_block_count(const struct mfs_alloc *a)
{
	return a->count;
}
