/* SPDX-License-Identifier: MIT */
/*
 * test_crash_fs.c — power-loss simulation of the whole filesystem, through
 * the core API (mmapfs.h).
 *
 * Random operations (create, mknod, mkdir, symlink, link, unlink, rmdir,
 * rename with its flags, writes that extend and overwrite, truncate,
 * fallocate in every mode, copy_file_range, xattrs, chmod/chown, open,
 * release, lookup, forget, fsync, sync, clean close and reopen) run on a
 * small namespace while a model predicts every result. The image's sync
 * hook keeps "the durable state": a copy of the image taken after every
 * sync. A crash image is that copy plus any subset of the 4 KiB pages that
 * differ at a later moment (the kernel writes back dirty pages of a shared
 * mapping whenever it likes, in any order), with torn superblock pages
 * (512-byte sectors mixed, or the superblock sector cut short). Crash
 * images are taken
 *   - inside a sync (the hook): in the middle of a commit, before or after
 *     its superblock write may have landed;
 *   - between operations;
 *   - in the middle of an operation: the image is write-protected and a
 *     copy is taken at the Nth first write to a page (SIGSEGV handler).
 *
 * Each crash image must:
 *   - open read-only at the generation of the last completed commit, or of
 *     the commit in flight (only when the crash hit that commit's
 *     superblock write);
 *   - pass mfs_btree_check on both trees and account for every block
 *     exactly once (tree nodes + extents + FREE runs + 2 superblocks);
 *   - be consistent: every item belongs to an inode, every directory entry
 *     names an existing inode of its type, link counts equal the entries
 *     (2 + subdirectories for directories), every directory's parent holds
 *     it and leads to the root, an inode has nlink 0 exactly when it is on
 *     the orphan list, st_blocks equals its extents, the superblock's inode
 *     count equals the inode items;
 *   - hold exactly the model's inodes (orphans included), then open with
 *     mfs_fs_open, which reclaims the orphans, and show through the API the
 *     model's namespace: names, inode numbers, types, modes, owners, link
 *     counts, sizes, device numbers, symlink targets, xattrs;
 *   - hold the model's file data (docs/design.md, data=ordered): at the
 *     commit in flight all of it; at the last completed commit every byte
 *     not changed in place since (an overwrite or an in-place zeroing after
 *     that commit may have landed, whole or torn). Everything before a
 *     successful fsync is therefore intact unless written again.
 *   - after the reclaim and a clean close, check again: no orphans left,
 *     their space back in the FREE tree.
 *
 * The same simulation also runs on a 1 MiB volume kept full (meson test
 * crash_fs_full): operations that need space may give ENOSPC (then the
 * model expects no change), writes and copies may be short, preallocation
 * and zero range may stop half-way (the model reads back what happened and
 * checks it is plausible), commits run inside operations to release pinned
 * blocks, and the filesystem must never turn read-only.
 *
 * Explicit cases: a crash right after fsync; during the first commit after
 * open (also of an image that crashed); an unlinked file still open at the
 * crash; in the middle of a large truncate; torn superblock writes.
 *
 * MMAPFS_SEED=n runs one seed (the explicit cases use it too);
 * MMAPFS_CRASH_IMAGES=n random crash images per seed (default 260 for each
 * of 4 seeds, 120 for each of 3 when full, 1000 for one given seed);
 * MMAPFS_TEST_FILTER=pattern runs only the matching tests (without it, all
 * but the full-volume ones, "*full*", which meson runs as crash_fs_full);
 * MMAPFS_CRASH_TRACE=1 prints each operation.
 * contrib/soak-crash.sh runs many seeds for a while.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <linux/falloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/xattr.h>

#include "check.h"
#include "dir.h"
#include "fs_internal.h"
#include "inode.h"
#include "log.h"
#include "mfs_test.h"
#include "mmapfs/mmapfs.h"

#define MiB (1024ULL * 1024)
#define PAGE 4096u
#define MAXN 56               /* model inodes, root and lost+found included */
#define MAXD 80               /* directory entries */
#define NXA 4                 /* xattr names */
#define XVAL_MAX 2600
#define NNAMES 7              /* names the random operations use */
#define NAME_LF NNAMES        /* "lost+found" */
#define NAME_BIG (NNAMES + 1) /* names only the explicit cases use */
#define NAME_OTHER (NNAMES + 2)
#define MIDMAX 8              /* snapshots in one operation */
#define MAXPEND 4

/* Every file offset and size stays below this (per test). */
static uint64_t g_maxf = 96u * 1024;

static const char *const xnames[NXA] = { "user.a", "user.bb", "trusted.c",
					 "security.d" };
static char name_long[201];

static const char *name_of(unsigned i)
{
	static const char *const n[] = { "a", "b", "c", "dir", "e", "f" };

	if (i < 6)
		return n[i];
	switch (i) {
	case NAME_LF: return "lost+found";
	case NAME_BIG: return "big";
	case NAME_OTHER: return "other";
	default: return name_long;
	}
}

static const struct mfs_cred cred = { 0, 0, true, true };

/*
 * mkfs takes the UUID and the directory hash seed from getrandom(2); the
 * hash decides where entries go in the tree, hence how many blocks a
 * volume uses and when a full one says ENOSPC. So that a seed reproduces a
 * run exactly, this executable's getrandom is the test's PRNG.
 */
static uint64_t g_random = 0x5eed;

ssize_t getrandom(void *buf, size_t len, unsigned int flags);
ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
	(void)flags;
	rng_fill(&g_random, buf, len);
	return (ssize_t)len;
}

/* Library log lines are expected (unclean images, torn superblocks): keep
 * the last one for failure messages. */
static char last_log[1024];

static void quiet_sink(int level, const char *msg)
{
	(void)level;
	snprintf(last_log, sizeof(last_log), "%s", msg);
}

static uint64_t round_up(uint64_t x)
{
	return (x + PAGE - 1) / PAGE * PAGE;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* ------------------------------------------------------------------ *
 * The model.
 * ------------------------------------------------------------------ */
struct mnode {
	uint64_t ino;              /* 0: free slot */
	uint32_t mode, nlink, uid, gid;
	uint64_t rdev, size, parent;
	char *target;              /* symlinks */
	bool xset[NXA];
	uint16_t xlen[NXA];
	uint8_t *xval[NXA];
	uint8_t *data;             /* regular files: live g_maxf bytes, else size */
	/* Live state only. since[i]: byte i may have changed in place since
	 * the last completed commit. */
	uint8_t *since;
	unsigned nopen, nlookup;   /* references the test holds */
};

struct mdent {
	uint64_t dir, ino;         /* ino 0: free slot */
	unsigned name;
};

struct mstate {
	struct mnode n[MAXN];
	struct mdent d[MAXD];
};

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	assert_non_null(p);
	return p;
}

static void *xcalloc(size_t n)
{
	void *p = calloc(n ? n : 1, 1);

	assert_non_null(p);
	return p;
}

static void node_clear(struct mnode *n)
{
	free(n->target);
	for (unsigned i = 0; i < NXA; i++)
		free(n->xval[i]);
	free(n->data);
	free(n->since);
	memset(n, 0, sizeof(*n));
}

static void st_free(struct mstate *s)
{
	for (unsigned i = 0; i < MAXN; i++)
		node_clear(&s->n[i]);
	memset(s->d, 0, sizeof(s->d));
}

/* dst := src; live copies get full-size data buffers and since maps. */
static void st_copy(struct mstate *dst, const struct mstate *src, bool live)
{
	st_free(dst);
	memcpy(dst->d, src->d, sizeof(dst->d));
	for (unsigned i = 0; i < MAXN; i++) {
		const struct mnode *a = &src->n[i];
		struct mnode *b = &dst->n[i];

		*b = *a;
		b->since = NULL;
		b->data = NULL;
		b->target = NULL;
		memset(b->xval, 0, sizeof(b->xval));
		if (!a->ino)
			continue;
		if (a->target) {
			b->target = strdup(a->target);
			assert_non_null(b->target);
		}
		for (unsigned x = 0; x < NXA; x++) {
			if (!a->xset[x])
				continue;
			b->xval[x] = xmalloc(a->xlen[x]);
			memcpy(b->xval[x], a->xval[x], a->xlen[x]);
		}
		if (a->data) {
			b->data = live ? xcalloc(g_maxf) : xmalloc(a->size);
			memcpy(b->data, a->data, a->size);
		}
		if (live) {
			if (S_ISREG(a->mode))
				b->since = xcalloc(g_maxf);
		} else {
			b->nopen = b->nlookup = 0;
		}
	}
}

static struct mnode *st_node(const struct mstate *s, uint64_t ino)
{
	for (unsigned i = 0; i < MAXN; i++)
		if (s->n[i].ino == ino && ino)
			return (struct mnode *)&s->n[i];
	return NULL;
}

static struct mdent *st_dent(const struct mstate *s, uint64_t dir, unsigned name)
{
	for (unsigned i = 0; i < MAXD; i++)
		if (s->d[i].ino && s->d[i].dir == dir && s->d[i].name == name)
			return (struct mdent *)&s->d[i];
	return NULL;
}

static unsigned st_entries(const struct mstate *s, uint64_t dir)
{
	unsigned n = 0;

	for (unsigned i = 0; i < MAXD; i++)
		n += s->d[i].ino && s->d[i].dir == dir;
	return n;
}

static unsigned st_free_nodes(const struct mstate *s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < MAXN; i++)
		n += !s->n[i].ino;
	return n;
}

static unsigned st_free_dents(const struct mstate *s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < MAXD; i++)
		n += !s->d[i].ino;
	return n;
}

static struct mnode *st_new_node(struct mstate *s)
{
	for (unsigned i = 0; i < MAXN; i++)
		if (!s->n[i].ino)
			return &s->n[i];
	fail_msg("model: no free inode slot");
	return NULL;
}

static void st_add_dent(struct mstate *s, uint64_t dir, unsigned name,
			uint64_t ino)
{
	for (unsigned i = 0; i < MAXD; i++) {
		if (!s->d[i].ino) {
			s->d[i].dir = dir;
			s->d[i].name = name;
			s->d[i].ino = ino;
			return;
		}
	}
	fail_msg("model: no free entry slot");
}

/* Is directory anc the directory ino or one of its ancestors? */
static bool st_is_ancestor(const struct mstate *s, uint64_t anc, uint64_t ino)
{
	for (unsigned depth = 0; depth < MAXN + 2; depth++) {
		const struct mnode *n;

		if (ino == anc)
			return true;
		if (ino == MFS_ROOT)
			return false;
		n = st_node(s, ino);
		if (!n)
			return false;
		ino = n->parent;
	}
	fail_msg("model: parent chain loops");
	return false;
}

/* ------------------------------------------------------------------ *
 * The simulation.
 * ------------------------------------------------------------------ */
struct ghost {
	uint64_t ino;
	uint8_t *since;
};

struct cf {
	const char *name;
	uint64_t seed, rng;
	char dir[PATH_MAX];
	char img[PATH_MAX + 16];
	char crash[PATH_MAX + 16];
	struct mfs_fs *fs;
	struct mfs_vol *v;
	uint64_t size;
	uint8_t *durable;          /* the image after the last sync */
	uint8_t *crashbuf;
	struct mstate live, committed;
	uint64_t committed_gen;
	bool model_dirty;          /* live differs from committed */
	/* Ranges the operation in progress may change in place (a commit
	 * inside it does not make them stable). */
	struct { uint64_t ino, lo, hi; } pend[MAXPEND];
	unsigned npend;
	/* since maps of files removed since the last commit */
	struct ghost *ghosts;
	size_t nghosts, capghosts;
	/* crash image policy */
	unsigned long target;      /* random images stop at this count */
	unsigned hook_pct;         /* chance that a sync makes images */
	unsigned hook_max;         /* images per such sync, at most */
	unsigned between_pct;      /* per mille: an image after an operation */
	unsigned mid_pm;           /* per mille: snapshots inside an operation */
	bool rw_check;             /* also use some crash images read-write */
	bool no_sync;              /* random operations without fsync/sync */
	bool full;                 /* a small volume kept full: ENOSPC allowed
				    * where an operation needs space */
	/* called in the sync hook before the random images */
	void (*extra_hook)(struct cf *c, const uint8_t *cur, uint64_t newgen);
	/* snapshots inside an operation (write faults) */
	uint8_t *armed_base;
	uint8_t *wpage[2];
	bool armed;
	unsigned long faults;
	unsigned long mid_at[MIDMAX];
	uint8_t *mid[MIDMAX];
	unsigned nmid_armed, nmid_taken, nmid_done;
	/* counters */
	unsigned long ops, syncs, commits, images, img_committed, img_inflight;
	unsigned long img_hook, img_between, img_mid, img_rw, torn_sb, orphans;
	unsigned long fsyncs, reopens, reclaimed, enospc, enospc_first, fscks;
	unsigned long fsck_notes;
	uint64_t bytes_checked, bytes_skipped;
	char op[200];
};

static struct cf *g_cf; /* for the SIGSEGV handler */

#define CF_FAIL(c, ...)                                                       \
	do {                                                                  \
		print_error("%s: seed %" PRIu64 " op %lu [%s] image %lu "     \
			    "(last log: %s):\n  ", (c)->name, (c)->seed,      \
			    (c)->ops, (c)->op, (c)->images, last_log);        \
		fail_msg(__VA_ARGS__);                                        \
	} while (0)

static void cf_pend(struct cf *c, uint64_t ino, uint64_t lo, uint64_t hi)
{
	hi = min64(hi, g_maxf);
	if (lo >= hi)
		return;
	assert_true(c->npend < MAXPEND);
	c->pend[c->npend].ino = ino;
	c->pend[c->npend].lo = lo;
	c->pend[c->npend].hi = hi;
	c->npend++;
}

/* The operation returned: its ranges join the since maps. */
static void cf_pend_apply(struct cf *c)
{
	for (unsigned i = 0; i < c->npend; i++) {
		struct mnode *n = st_node(&c->live, c->pend[i].ino);

		if (n && n->since)
			memset(n->since + c->pend[i].lo, 1,
			       c->pend[i].hi - c->pend[i].lo);
		else
			for (size_t g = 0; g < c->nghosts; g++)
				if (c->ghosts[g].ino == c->pend[i].ino)
					memset(c->ghosts[g].since + c->pend[i].lo, 1,
					       c->pend[i].hi - c->pend[i].lo);
	}
	c->npend = 0;
}

static const uint8_t *cf_since(const struct cf *c, uint64_t ino)
{
	const struct mnode *n = st_node(&c->live, ino);

	if (n && n->since)
		return n->since;
	for (size_t g = 0; g < c->nghosts; g++)
		if (c->ghosts[g].ino == ino)
			return c->ghosts[g].since;
	return NULL;
}

static bool cf_pending(const struct cf *c, uint64_t ino, uint64_t i)
{
	for (unsigned p = 0; p < c->npend; p++)
		if (c->pend[p].ino == ino && i >= c->pend[p].lo && i < c->pend[p].hi)
			return true;
	return false;
}

/* A live node goes away: keep its since map until the next commit. */
static void cf_drop_node(struct cf *c, struct mnode *n)
{
	if (n->since) {
		if (c->nghosts == c->capghosts) {
			c->capghosts = c->capghosts ? 2 * c->capghosts : 16;
			c->ghosts = realloc(c->ghosts, c->capghosts * sizeof(*c->ghosts));
			assert_non_null(c->ghosts);
		}
		c->ghosts[c->nghosts].ino = n->ino;
		c->ghosts[c->nghosts].since = n->since;
		c->nghosts++;
		n->since = NULL;
	}
	node_clear(n);
}

/* Remove n if it has no links and no references left. */
static void cf_maybe_gone(struct cf *c, struct mnode *n)
{
	if (n && n->nlink == 0 && !n->nopen && !n->nlookup)
		cf_drop_node(c, n);
}

/* A commit completed: the live state is the committed one. */
static void cf_committed(struct cf *c, uint64_t gen)
{
	c->committed_gen = gen;
	st_copy(&c->committed, &c->live, false);
	for (unsigned i = 0; i < MAXN; i++)
		if (c->live.n[i].since)
			memset(c->live.n[i].since, 0, g_maxf);
	for (size_t g = 0; g < c->nghosts; g++)
		free(c->ghosts[g].since);
	c->nghosts = 0;
	c->model_dirty = false;
	c->commits++;
}

/* ------------------------------------------------------------------ *
 * Checking a crash image.
 * ------------------------------------------------------------------ */
static void write_image(const char *path, const uint8_t *buf, uint64_t size)
{
	static const uint8_t zero[PAGE];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	for (uint64_t off = 0; off < size;) {
		uint64_t end;

		if (memcmp(buf + off, zero, PAGE) == 0) {
			off += PAGE;
			continue;
		}
		for (end = off + PAGE; end < size && memcmp(buf + end, zero, PAGE); )
			end += PAGE;
		for (uint64_t p = off; p < end;) {
			ssize_t n = pwrite(fd, buf + p, end - p, (off_t)p);

			assert_true(n > 0);
			p += (uint64_t)n;
		}
		off = end;
	}
	assert_int_equal(close(fd), 0);
}

struct sinode {
	uint64_t ino, parent, blocks, size, ext_blocks;
	uint32_t mode, nlink;
	unsigned links, subdirs, entries;
	bool orphan;
};

struct scan {
	struct sinode in[MAXN + 8];
	unsigned n;
	uint64_t orphans[MAXN + 8];
	unsigned norphans;
	/* directory walk */
	struct cf *c;
	struct sinode *dir;
	const char *tag;
	int err;
};

static struct sinode *scan_find(struct scan *s, uint64_t ino)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->in[i].ino == ino)
			return &s->in[i];
	return NULL;
}

static int scan_dirent(void *ctx, const char *name, size_t len, uint64_t ino,
		       uint8_t type, uint64_t hash)
{
	struct scan *s = ctx;
	struct sinode *t = scan_find(s, ino);

	(void)hash;
	if (!t) {
		print_error("%s: entry '%.*s' of directory %" PRIu64
			    " names missing inode %" PRIu64 "\n", s->tag,
			    (int)len, name, s->dir->ino, ino);
		s->err = -1;
		return 1;
	}
	if (type != (t->mode & S_IFMT) >> 12) {
		print_error("%s: entry '%.*s' has type %u, inode %" PRIu64
			    " mode %o\n", s->tag, (int)len, name, type, ino,
			    t->mode);
		s->err = -1;
		return 1;
	}
	t->links++;
	s->dir->entries++;
	if (S_ISDIR(t->mode)) {
		s->dir->subdirs++;
		if (t->parent != s->dir->ino) {
			print_error("%s: directory %" PRIu64 " is in %" PRIu64
				    " but says its parent is %" PRIu64 "\n",
				    s->tag, ino, s->dir->ino, t->parent);
			s->err = -1;
			return 1;
		}
	}
	return 0;
}

/*
 * The structure of the FS tree of a volume, against model state st (the
 * set of inodes, orphans included unless reclaimed). Fails the test on
 * any inconsistency.
 */
static void struct_check(struct cf *c, struct mfs_vol *v,
			 const struct mstate *st, bool reclaimed, const char *tag)
{
	struct scan *s = xcalloc(sizeof(*s));
	struct mfs_cursor cur;
	struct mfs_key k;
	const void *val;
	size_t len;
	int rc;

	s->c = c;
	s->tag = tag;
	mfs_cursor_init(&cur, v, MFS_TREE_FS, t_key_min(), t_key_max());
	while ((rc = mfs_cursor_next(&cur, &k, &val, &len)) > 0) {
		struct sinode *last = s->n ? &s->in[s->n - 1] : NULL;

		if (k.objectid == MFS_ORPHAN_OBJID) {
			if (k.type != MFS_ITEM_ORPHAN || s->norphans == MAXN + 8)
				CF_FAIL(c, "%s: odd item " T_KEY_FMT, tag, T_KEY_ARG(k));
			s->orphans[s->norphans++] = k.offset;
			continue;
		}
		if (k.type == MFS_ITEM_INODE) {
			struct mfs_inode in;

			if (k.offset != 0 || s->n == MAXN + 8)
				CF_FAIL(c, "%s: odd inode item " T_KEY_FMT " (%u inodes)",
					tag, T_KEY_ARG(k), s->n);
			rc = mfs_inode_read(v, k.objectid, &in);
			if (rc)
				CF_FAIL(c, "%s: inode %" PRIu64 ": read = %d", tag,
					k.objectid, rc);
			memset(&s->in[s->n], 0, sizeof(s->in[0]));
			s->in[s->n].ino = in.ino;
			s->in[s->n].mode = in.mode;
			s->in[s->n].nlink = in.nlink;
			s->in[s->n].parent = in.parent;
			s->in[s->n].blocks = in.blocks;
			s->in[s->n].size = in.size;
			s->n++;
			continue;
		}
		if (!last || last->ino != k.objectid)
			CF_FAIL(c, "%s: item " T_KEY_FMT " of a missing inode", tag,
				T_KEY_ARG(k));
		switch (k.type) {
		case MFS_ITEM_EXTENT:
			if (!S_ISREG(last->mode) || len != sizeof(struct mfs_disk_extent))
				CF_FAIL(c, "%s: extent item " T_KEY_FMT " of mode %o",
					tag, T_KEY_ARG(k), last->mode);
			last->ext_blocks += mfs_get_le64((const uint8_t *)val +
				offsetof(struct mfs_disk_extent, ex_count));
			break;
		case MFS_ITEM_INLINE:
			if (!S_ISLNK(last->mode))
				CF_FAIL(c, "%s: inline item " T_KEY_FMT " of mode %o",
					tag, T_KEY_ARG(k), last->mode);
			break;
		case MFS_ITEM_DIRENT:
			if (!S_ISDIR(last->mode))
				CF_FAIL(c, "%s: entry item " T_KEY_FMT " of mode %o",
					tag, T_KEY_ARG(k), last->mode);
			break;
		case MFS_ITEM_XATTR:
			break;
		default:
			CF_FAIL(c, "%s: unknown item " T_KEY_FMT, tag, T_KEY_ARG(k));
		}
	}
	if (rc < 0)
		CF_FAIL(c, "%s: FS tree cursor = %d", tag, rc);
	if (v->sb.inode_count != s->n)
		CF_FAIL(c, "%s: superblock counts %" PRIu64 " inodes, tree has %u",
			tag, v->sb.inode_count, s->n);

	/* Entries: each names an inode of its type; count links. */
	for (unsigned i = 0; i < s->n; i++) {
		if (!S_ISDIR(s->in[i].mode))
			continue;
		s->dir = &s->in[i];
		rc = mfs_dir_iterate(v, s->in[i].ino, 0, scan_dirent, s);
		if (rc < 0 || s->err)
			CF_FAIL(c, "%s: directory %" PRIu64 ": iterate = %d", tag,
				s->in[i].ino, rc);
	}

	/* Orphans: exactly the inodes without links. */
	for (unsigned o = 0; o < s->norphans; o++) {
		struct sinode *t = scan_find(s, s->orphans[o]);

		if (!t)
			CF_FAIL(c, "%s: orphan item for missing inode %" PRIu64, tag,
				s->orphans[o]);
		if (t->nlink)
			CF_FAIL(c, "%s: orphan item for inode %" PRIu64 " with %u "
				"links", tag, t->ino, t->nlink);
		t->orphan = true;
	}
	for (unsigned i = 0; i < s->n; i++) {
		struct sinode *t = &s->in[i];

		if (t->nlink == 0 && !t->orphan)
			CF_FAIL(c, "%s: inode %" PRIu64 " has no links and is not "
				"on the orphan list (leaked)", tag, t->ino);
		if (reclaimed && t->nlink == 0)
			CF_FAIL(c, "%s: orphan %" PRIu64 " not reclaimed", tag, t->ino);
		if (S_ISDIR(t->mode)) {
			unsigned want = t->ino == MFS_ROOT ? 0 : t->nlink ? 1 : 0;

			if (t->links != want)
				CF_FAIL(c, "%s: directory %" PRIu64 " (nlink %u) has "
					"%u entries naming it", tag, t->ino, t->nlink,
					t->links);
			if (t->nlink && t->nlink != 2 + t->subdirs)
				CF_FAIL(c, "%s: directory %" PRIu64 " has nlink %u "
					"and %u subdirectories", tag, t->ino, t->nlink,
					t->subdirs);
			if (!t->nlink && t->entries)
				CF_FAIL(c, "%s: removed directory %" PRIu64 " has "
					"%u entries", tag, t->ino, t->entries);
			/* The parent chain leads to the root. */
			if (t->nlink) {
				uint64_t p = t->ino;
				unsigned depth = 0;

				while (p != MFS_ROOT) {
					struct sinode *q = scan_find(s, p);

					if (!q || !S_ISDIR(q->mode) || !q->nlink ||
					    ++depth > s->n)
						CF_FAIL(c, "%s: directory %" PRIu64 " does "
							"not lead to the root (at %" PRIu64
							")", tag, t->ino, p);
					p = q->parent;
				}
			}
		} else if (t->nlink != t->links) {
			CF_FAIL(c, "%s: inode %" PRIu64 " has nlink %u and %u entries",
				tag, t->ino, t->nlink, t->links);
		}
		if (t->blocks != t->ext_blocks * (MFS_BLOCK_SIZE / 512))
			CF_FAIL(c, "%s: inode %" PRIu64 " counts %" PRIu64 " sectors, "
				"its extents %" PRIu64 " blocks", tag, t->ino, t->blocks,
				t->ext_blocks);
	}

	/* The inodes are the model's. */
	for (unsigned i = 0; i < s->n; i++) {
		struct sinode *t = &s->in[i];
		const struct mnode *m = st_node(st, t->ino);

		if (!m)
			CF_FAIL(c, "%s: inode %" PRIu64 " (mode %o nlink %u) is not in "
				"the model", tag, t->ino, t->mode, t->nlink);
		if (m->mode != t->mode || m->nlink != t->nlink ||
		    (!S_ISDIR(m->mode) && m->size != t->size))
			CF_FAIL(c, "%s: inode %" PRIu64 ": mode %o nlink %u size %"
				PRIu64 ", model %o %u %" PRIu64, tag, t->ino, t->mode,
				t->nlink, t->size, m->mode, m->nlink, m->size);
	}
	for (unsigned i = 0; i < MAXN; i++) {
		const struct mnode *m = &st->n[i];

		if (!m->ino || (reclaimed && m->nlink == 0))
			continue;
		if (!scan_find(s, m->ino))
			CF_FAIL(c, "%s: inode %" PRIu64 " (mode %o nlink %u) is missing",
				tag, m->ino, m->mode, m->nlink);
	}
	c->orphans += s->norphans;
	free(s);
}

/* ------------------------------------------------------------------ *
 * The namespace through the API.
 * ------------------------------------------------------------------ */
struct rdent {
	char name[MFS_NAME_LEN + 1];
	uint64_t ino;
	uint32_t type;
};

struct rdctx {
	struct rdent e[MAXD + 4];
	unsigned n;
	bool overflow;
};

static int rd_fill(void *ctx, const char *name, size_t namelen,
		   const struct mfs_attr *attr, uint64_t next_off)
{
	struct rdctx *r = ctx;

	(void)next_off;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	if (r->n == MAXD + 4 || namelen > MFS_NAME_LEN) {
		r->overflow = true;
		return 0;
	}
	memcpy(r->e[r->n].name, name, namelen);
	r->e[r->n].name[namelen] = 0;
	r->e[r->n].ino = attr->ino;
	r->e[r->n].type = attr->mode & S_IFMT;
	r->n++;
	return 0;
}

/* The data of regular file m as fs reads it, against the model: all of it
 * for the commit in flight, the bytes not changed in place since for the
 * last completed one. */
static void data_compare(struct cf *c, struct mfs_fs *fs, const struct mnode *m,
			 bool inflight, const char *tag)
{
	unsigned iovmax = (unsigned)(g_maxf / PAGE + 4), cnt = 0;
	struct iovec *iov = xmalloc(iovmax * sizeof(*iov));
	const uint8_t *since = inflight ? NULL : cf_since(c, m->ino);
	size_t bytes = 0;
	uint64_t pos = 0;
	int rc;

	rc = mfs_read(fs, m->ino, 0, m->size, iov, iovmax, &cnt, &bytes);
	if (rc || bytes != m->size)
		CF_FAIL(c, "%s: read of inode %" PRIu64 " = %d, %zu of %" PRIu64
			" bytes", tag, m->ino, rc, bytes, m->size);
	for (unsigned k = 0; k < cnt; k++) {
		const uint8_t *b = iov[k].iov_base;

		for (size_t j = 0; j < iov[k].iov_len; j++, pos++) {
			if (!inflight && ((since && since[pos]) ||
					  cf_pending(c, m->ino, pos))) {
				c->bytes_skipped++;
				continue;
			}
			if (b[j] != m->data[pos])
				CF_FAIL(c, "%s: inode %" PRIu64 " (size %" PRIu64 ") byte %"
					PRIu64 " is %#x, want %#x", tag, m->ino, m->size,
					pos, b[j], m->data[pos]);
			c->bytes_checked++;
		}
	}
	free(iov);
}

static void ns_compare(struct cf *c, struct mfs_fs *fs, const struct mstate *st,
		       bool inflight, const char *tag)
{
	for (unsigned i = 0; i < MAXN; i++) {
		const struct mnode *m = &st->n[i];
		struct mfs_attr a;
		int rc;

		if (!m->ino)
			continue;
		rc = mfs_getattr(fs, m->ino, &a);
		if (m->nlink == 0) {
			if (rc != -ENOENT)
				CF_FAIL(c, "%s: orphan %" PRIu64 " still there after "
					"open (getattr = %d)", tag, m->ino, rc);
			c->reclaimed++;
			continue;
		}
		if (rc)
			CF_FAIL(c, "%s: getattr(%" PRIu64 ") = %d", tag, m->ino, rc);
		if (a.mode != m->mode || a.nlink != m->nlink || a.uid != m->uid ||
		    a.gid != m->gid || a.size != m->size || a.rdev != m->rdev)
			CF_FAIL(c, "%s: inode %" PRIu64 ": mode %o nlink %u uid %u gid "
				"%u size %" PRIu64 " rdev %#" PRIx64 "; model %o %u %u %u %"
				PRIu64 " %#" PRIx64, tag, m->ino, a.mode, a.nlink, a.uid,
				a.gid, a.size, a.rdev, m->mode, m->nlink, m->uid, m->gid,
				m->size, m->rdev);
		if (S_ISLNK(m->mode)) {
			char buf[MFS_SYMLINK_MAX + 1];
			size_t len = 0;

			rc = mfs_readlink(fs, m->ino, buf, sizeof(buf), &len);
			if (rc || len != strlen(m->target) ||
			    memcmp(buf, m->target, len))
				CF_FAIL(c, "%s: symlink %" PRIu64 ": readlink = %d, "
					"length %zu, want %zu", tag, m->ino, rc, len,
					strlen(m->target));
		}
		{
			char list[256];
			size_t len = 0, off;
			unsigned have = 0, want = 0;

			rc = mfs_listxattr(fs, m->ino, list, sizeof(list), &len);
			if (rc)
				CF_FAIL(c, "%s: listxattr(%" PRIu64 ") = %d", tag,
					m->ino, rc);
			for (off = 0; off < len; off += strlen(list + off) + 1) {
				unsigned x;
				static uint8_t val[XVAL_MAX];
				size_t vlen = 0;

				for (x = 0; x < NXA; x++)
					if (!strcmp(list + off, xnames[x]))
						break;
				if (x == NXA || !m->xset[x])
					CF_FAIL(c, "%s: inode %" PRIu64 " has xattr %s",
						tag, m->ino, list + off);
				rc = mfs_getxattr(fs, m->ino, xnames[x], val,
						  sizeof(val), &vlen);
				if (rc || vlen != m->xlen[x] ||
				    memcmp(val, m->xval[x], vlen))
					CF_FAIL(c, "%s: inode %" PRIu64 " xattr %s: "
						"getxattr = %d, %zu bytes, want %u",
						tag, m->ino, xnames[x], rc, vlen,
						m->xlen[x]);
				have++;
			}
			for (unsigned x = 0; x < NXA; x++)
				want += m->xset[x];
			if (have != want)
				CF_FAIL(c, "%s: inode %" PRIu64 " has %u xattrs, want %u",
					tag, m->ino, have, want);
		}
		if (S_ISDIR(m->mode)) {
			struct rdctx *r = xcalloc(sizeof(*r));
			unsigned want = 0;

			rc = mfs_readdir(fs, m->ino, 0, false, rd_fill, r);
			if (rc || r->overflow)
				CF_FAIL(c, "%s: readdir(%" PRIu64 ") = %d", tag, m->ino,
					rc);
			for (unsigned d = 0; d < MAXD; d++) {
				const struct mdent *e = &st->d[d];
				const struct mnode *t;
				unsigned k;

				if (!e->ino || e->dir != m->ino)
					continue;
				want++;
				t = st_node(st, e->ino);
				for (k = 0; k < r->n; k++)
					if (!strcmp(r->e[k].name, name_of(e->name)))
						break;
				if (k == r->n || r->e[k].ino != e->ino ||
				    r->e[k].type != (t->mode & S_IFMT))
					CF_FAIL(c, "%s: directory %" PRIu64 ": entry '%.20s'"
						" is %s, want inode %" PRIu64, tag, m->ino,
						name_of(e->name), k == r->n ? "missing" :
						"different", e->ino);
			}
			if (r->n != want)
				CF_FAIL(c, "%s: directory %" PRIu64 " has %u entries, "
					"want %u", tag, m->ino, r->n, want);
			free(r);
		}
		if (S_ISREG(m->mode))
			data_compare(c, fs, m, inflight, tag);
	}
}

/* ------------------------------------------------------------------ *
 * Crash images.
 * ------------------------------------------------------------------ */
static uint64_t slot_gen(const uint8_t *img, unsigned slot)
{
	return mfs_get_le64(img + (size_t)slot * MFS_BLOCK_SIZE + SB_OFF_GENERATION);
}

/* Use a checked crash image read-write: a change survives a clean close. */
static void cf_verify_rw(struct cf *c, const char *tag)
{
	static const char nm[] = "after-the-crash";
	struct mfs_fs *fs = NULL;
	struct mfs_attr a;
	uint8_t buf[20000];
	struct iovec iov[16];
	unsigned cnt = 0;
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 13 + c->images);
	rc = mfs_fs_open(c->crash, MFS_FS_NOLOCK, &fs);
	if (rc)
		CF_FAIL(c, "%s: read-write open: %d", tag, rc);
	rc = mfs_create(fs, &cred, MFS_ROOT, nm, 0644, O_RDWR, &a);
	if (!rc)
		rc = mfs_write(fs, &cred, a.ino, 0, buf, sizeof(buf), 0, &n);
	if (c->full && (rc == -ENOSPC || (!rc && n < sizeof(buf)))) {
		/* A full volume: fine, if it closes cleanly. */
		if (mfs_fs_close(fs))
			CF_FAIL(c, "%s: close of a full crash image", tag);
		return;
	}
	if (rc || n != sizeof(buf))
		CF_FAIL(c, "%s: read-write use: %d", tag, rc);
	mfs_release(fs, a.ino);
	mfs_forget(fs, a.ino, 1);
	rc = mfs_fs_close(fs);
	if (!rc)
		rc = mfs_fs_open(c->crash, MFS_FS_NOLOCK, &fs);
	if (!rc)
		rc = mfs_lookup(fs, MFS_ROOT, nm, &a);
	if (!rc)
		rc = mfs_read(fs, a.ino, 0, sizeof(buf), iov, 16, &cnt, &n);
	if (rc || n != sizeof(buf))
		CF_FAIL(c, "%s: after read-write use: %d", tag, rc);
	for (size_t off = 0, k = 0; k < cnt; off += iov[k].iov_len, k++)
		if (memcmp(iov[k].iov_base, buf + off, iov[k].iov_len))
			CF_FAIL(c, "%s: data written after the crash differs", tag);
	mfs_forget(fs, a.ino, 1);
	rc = mfs_fs_close(fs);
	if (rc)
		CF_FAIL(c, "%s: close after read-write use = %d", tag, rc);
	c->img_rw++;
}

/* Does a superblock slot of the crash image fail to decode (torn)? */
static bool torn_slot(struct cf *c, const uint8_t *img)
{
	for (unsigned s = 0; s < MFS_SB_SLOTS; s++) {
		struct mfs_super sb;

		if (mfs_super_decode(img + (size_t)s * MFS_BLOCK_SIZE,
				     c->size / MFS_BLOCK_SIZE, s, &sb))
			return true;
	}
	return false;
}

/*
 * fsck.mmapfs's checker (read-only, forced) must find nothing to fix, on
 * every crash image. A superblock slot torn by the crash is what the
 * commit protocol expects (the other slot is the one in use, and the next
 * commit rewrites it): the checker must say so in a note, not call it a
 * problem (counted in fsck_notes).
 */
static void cf_fsck(struct cf *c, const char *tag, const char *when,
		    bool torn)
{
	struct mfs_check_opts o;
	struct mfs_check_result r;
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	int rc;

	assert_non_null(out);
	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	o.flags = MFS_CHECK_FORCE;
	o.out = out;
	o.name = c->crash;
	rc = mfs_check(c->crash, &o, &r);
	fclose(out);
	if (torn) {
		if (!buf || !strstr(buf, "Note: superblock slot "))
			CF_FAIL(c, "%s: fsck %s: no note about the torn "
				"superblock slot:\n%s", tag, when,
				buf ? buf : "");
		c->fsck_notes++;
	}
	if (rc || r.problems || r.skipped_clean || r.modified)
		CF_FAIL(c, "%s: fsck %s = %d (%s), %" PRIu64 " problems:\n%s", tag,
			when, rc, r.error, r.problems, buf ? buf : "");
	free(buf);
	c->fscks++;
}

/*
 * Check one crash image. inflight_gen: the generation of the commit whose
 * superblock write this crash may have caught (0: none). Returns true if
 * the image opened at that commit, false at the last completed one.
 */
static bool cf_verify(struct cf *c, const uint8_t *img, uint64_t inflight_gen,
		      const char *where)
{
	struct mfs_vol *cv = NULL;
	struct mfs_fs *cfs = NULL;
	const struct mstate *st;
	bool inflight = false;
	char tag[320];
	uint64_t gen;
	int rc;

	write_image(c->crash, img, c->size);
	rc = mfs_vol_open(c->crash, MFS_VOL_RDONLY | MFS_VOL_NOLOCK, &cv);
	if (rc)
		CF_FAIL(c, "crash image (%s) does not open: %d", where, rc);
	gen = cv->sb.generation;
	if (gen == c->committed_gen) {
		st = &c->committed;
		c->img_committed++;
	} else if (inflight_gen && gen == inflight_gen) {
		st = &c->live;
		inflight = true;
		c->img_inflight++;
	} else {
		CF_FAIL(c, "crash image (%s) at generation %" PRIu64 ", last commit %"
			PRIu64 ", in flight %" PRIu64, where, gen, c->committed_gen,
			inflight_gen);
		return false;
	}
	snprintf(tag, sizeof(tag), "crash image %lu (%s) at generation %" PRIu64
		 " (%s)", c->images, where, gen,
		 inflight ? "the commit in flight" : "the last completed commit");
	for (unsigned t = 0; t < MFS_TREE_COUNT; t++) {
		rc = mfs_btree_check(cv, t, NULL, NULL);
		if (rc)
			CF_FAIL(c, "%s: mfs_btree_check(%u) = %d", tag, t, rc);
	}
	if (check_space(cv, tag))
		CF_FAIL(c, "%s: space accounting", tag);
	struct_check(c, cv, st, false, tag);
	rc = mfs_vol_close(cv);
	if (rc)
		CF_FAIL(c, "%s: read-only close = %d", tag, rc);
	cf_fsck(c, tag, "of the crash image", torn_slot(c, img));

	/* Mount it: orphans are reclaimed; the namespace is the model's. */
	rc = mfs_fs_open(c->crash, MFS_FS_NOLOCK, &cfs);
	if (rc)
		CF_FAIL(c, "%s: mfs_fs_open = %d", tag, rc);
	ns_compare(c, cfs, st, inflight, tag);
	rc = mfs_fs_close(cfs);
	if (rc)
		CF_FAIL(c, "%s: mfs_fs_close = %d", tag, rc);

	/* After the reclaim: no orphans, their space is free again. */
	cv = NULL;
	rc = mfs_vol_open(c->crash, MFS_VOL_RDONLY | MFS_VOL_NOLOCK, &cv);
	if (rc)
		CF_FAIL(c, "%s: reopen after mount = %d", tag, rc);
	if (check_space(cv, tag))
		CF_FAIL(c, "%s: space accounting after the reclaim", tag);
	struct_check(c, cv, st, true, tag);
	mfs_vol_close(cv);
	cf_fsck(c, tag, "after the mount", false);

	if (c->rw_check && rng_chance(&c->rng, 1, 8))
		cf_verify_rw(c, tag);
	c->images++;
	return inflight;
}

/*
 * Build a crash image from the durable copy and cur (the image at the
 * moment of the crash): a random subset of the pages that differ, torn
 * superblock pages among them. inflight_gen as for cf_verify.
 */
static bool cf_crash_image(struct cf *c, const uint8_t *cur,
			   uint64_t inflight_gen, const char *where)
{
	uint64_t pages = c->size / PAGE;
	unsigned mode = (unsigned)rng_below(&c->rng, 6);
	unsigned pct[] = { 0, 100, 10, 50, 90, (unsigned)rng_below(&c->rng, 101) };

	memcpy(c->crashbuf, c->durable, c->size);
	for (uint64_t pg = 0; pg < pages; pg++) {
		const uint8_t *n = cur + pg * PAGE;
		uint8_t *o = c->crashbuf + pg * PAGE;

		if (memcmp(o, n, PAGE) == 0)
			continue;
		if (pg < MFS_SB_SLOTS) {
			if (!inflight_gen)
				CF_FAIL(c, "superblock %u changed outside a commit's "
					"sync (%s)", (unsigned)pg, where);
			switch (rng_below(&c->rng, 5)) {
			case 0: /* not written */
				break;
			case 1:
			case 2: /* written */
				memcpy(o, n, PAGE);
				break;
			case 3: /* sectors of the page mixed */
				for (unsigned s = 0; s < PAGE / 512; s++)
					if (rng_chance(&c->rng, 1, 2))
						memcpy(o + s * 512, n + s * 512, 512);
				c->torn_sb++;
				break;
			default: /* the superblock sector cut short */
				memcpy(o, n, 1 + (size_t)rng_below(&c->rng, 511));
				c->torn_sb++;
				break;
			}
			continue;
		}
		if (rng_chance(&c->rng, pct[mode], 100))
			memcpy(o, n, PAGE);
	}
	return cf_verify(c, c->crashbuf, inflight_gen, where);
}

/* Images from the snapshots taken inside an operation since the last
 * sync. */
static void cf_verify_mid(struct cf *c)
{
	for (; c->nmid_done < c->nmid_taken; c->nmid_done++) {
		unsigned n = 1 + (unsigned)rng_below(&c->rng, 2);
		char where[96];

		snprintf(where, sizeof(where), "inside the operation, at write "
			 "fault %lu", c->mid_at[c->nmid_done]);
		for (unsigned i = 0; i < n; i++) {
			cf_crash_image(c, c->mid[c->nmid_done], 0, where);
			c->img_mid++;
		}
	}
}

static void cf_hook(struct mfs_image *img, void *arg)
{
	struct cf *c = arg;
	uint64_t newgen = 0;

	c->syncs++;
	if (img->size != c->size)
		CF_FAIL(c, "image size changed to %" PRIu64, img->size);
	if (c->nmid_taken > c->nmid_done)
		cf_verify_mid(c);
	/* A superblock changed: this sync makes a commit durable. */
	for (unsigned s = 0; s < MFS_SB_SLOTS; s++)
		if (memcmp(c->durable + s * PAGE, img->base + s * PAGE, PAGE))
			newgen = slot_gen(img->base, s);
	if (c->extra_hook)
		c->extra_hook(c, img->base, newgen);
	if (c->images < c->target && rng_below(&c->rng, 100) < c->hook_pct) {
		unsigned n = 1 + (unsigned)rng_below(&c->rng, c->hook_max);
		const char *where = newgen ? "in a commit's superblock sync" :
					     "in a sync";

		for (unsigned i = 0; i < n; i++) {
			cf_crash_image(c, img->base, newgen, where);
			c->img_hook++;
		}
	}
	memcpy(c->durable, img->base, c->size);
	if (newgen)
		cf_committed(c, newgen);
}

/* ------------------------------------------------------------------ *
 * Snapshots inside an operation: the image is write-protected but for
 * the two pages written last, so that every write to another page faults;
 * at chosen faults (counted from 1) the whole image is copied before the
 * write happens: the image as it is at that instant inside the operation.
 * ------------------------------------------------------------------ */
static struct sigaction g_old_segv;

static void cf_segv(int sig, siginfo_t *si, void *uctx)
{
	struct cf *c = g_cf;
	uintptr_t a = (uintptr_t)si->si_addr;
	uint8_t *page;

	(void)uctx;
	if (!c || !c->armed || a < (uintptr_t)c->armed_base ||
	    a >= (uintptr_t)c->armed_base + c->size) {
		/* Not ours: fault again with the previous handler. */
		sigaction(sig, &g_old_segv, NULL);
		return;
	}
	c->faults++;
	if (c->nmid_taken < c->nmid_armed && c->faults == c->mid_at[c->nmid_taken])
		memcpy(c->mid[c->nmid_taken++], c->armed_base, c->size);
	/* Only the two pages written last stay writable (a store may straddle
	 * two pages), so each move to another page is a point to crash at. */
	page = (uint8_t *)(a & ~(uintptr_t)(PAGE - 1));
	if (c->wpage[1])
		mprotect(c->wpage[1], PAGE, PROT_READ);
	c->wpage[1] = c->wpage[0];
	c->wpage[0] = page;
	mprotect(page, PAGE, PROT_READ | PROT_WRITE);
}

/* Arm snapshots at write faults at[0] < at[1] < ... (n of them). */
static void cf_arm(struct cf *c, unsigned n, const unsigned long *at)
{
	struct sigaction sa;

	assert_true(n <= MIDMAX);
	for (unsigned i = 0; i < n; i++) {
		c->mid_at[i] = at[i];
		if (!c->mid[i])
			c->mid[i] = xmalloc(c->size);
	}
	c->nmid_armed = n;
	c->nmid_taken = c->nmid_done = 0;
	c->faults = 0;
	c->wpage[0] = c->wpage[1] = NULL;
	c->armed_base = c->v->img->base;
	g_cf = c;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = cf_segv;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGSEGV, &sa, &g_old_segv), 0);
	c->armed = true;
	assert_int_equal(mprotect(c->armed_base, c->size, PROT_READ), 0);
}

static void cf_disarm(struct cf *c)
{
	if (!c->armed)
		return;
	assert_int_equal(mprotect(c->armed_base, c->size, PROT_READ | PROT_WRITE), 0);
	c->armed = false;
	sigaction(SIGSEGV, &g_old_segv, NULL);
	cf_verify_mid(c);
}

/* ------------------------------------------------------------------ *
 * Opening, closing.
 * ------------------------------------------------------------------ */

/* The filesystem was (re)opened: everything on disk is durable, and it is
 * the live model. */
static void cf_attach(struct cf *c)
{
	c->v = mfs_fs_vol(c->fs);
	assert_non_null(c->v);
	assert_int_equal(c->v->img->size, c->size);
	memcpy(c->durable, c->v->img->base, c->size);
	c->v->img->sync_hook = cf_hook;
	c->v->img->sync_hook_arg = c;
	cf_committed(c, c->v->sb.generation);
}

static void cf_open(struct cf *c)
{
	int rc = mfs_fs_open(c->img, 0, &c->fs);

	if (rc)
		CF_FAIL(c, "mfs_fs_open = %d", rc);
	cf_attach(c);
	c->reopens++;
}

/* The handles are gone (a close, or a crash): orphans go. */
static void cf_forget_handles(struct cf *c)
{
	for (unsigned i = 0; i < MAXN; i++) {
		struct mnode *m = &c->live.n[i];

		if (!m->ino)
			continue;
		m->nopen = m->nlookup = 0;
		cf_maybe_gone(c, m);
	}
}

static struct cf *cf_new(const char *name, const char *dir, uint64_t seed,
			 uint64_t size)
{
	struct cf *c = xcalloc(sizeof(*c));
	struct mnode *m;
	struct mfs_attr a;
	int rc;

	c->name = name;
	c->seed = c->rng = seed;
	c->size = size;
	snprintf(c->dir, sizeof(c->dir), "%s", dir);
	snprintf(c->img, sizeof(c->img), "%s/fs.img", dir);
	snprintf(c->crash, sizeof(c->crash), "%s/crash.img", dir);
	c->durable = xmalloc(size);
	c->crashbuf = xmalloc(size);
	c->hook_max = 2;
	snprintf(c->op, sizeof(c->op), "setup");
	g_random = seed;
	t_format(c->img, size);
	rc = mfs_fs_open(c->img, 0, &c->fs);
	if (rc)
		CF_FAIL(c, "mfs_fs_open = %d", rc);

	/* The root and lost+found, as mkfs made them. */
	assert_int_equal(mfs_getattr(c->fs, MFS_ROOT, &a), 0);
	m = st_new_node(&c->live);
	m->ino = MFS_ROOT;
	m->mode = a.mode;
	m->nlink = a.nlink;
	m->uid = a.uid;
	m->gid = a.gid;
	m->size = a.size;
	m->parent = MFS_ROOT;
	assert_int_equal(mfs_lookup(c->fs, MFS_ROOT, "lost+found", &a), 0);
	mfs_forget(c->fs, a.ino, 1);
	m = st_new_node(&c->live);
	m->ino = a.ino;
	m->mode = a.mode;
	m->nlink = a.nlink;
	m->uid = a.uid;
	m->gid = a.gid;
	m->size = a.size;
	m->parent = MFS_ROOT;
	st_add_dent(&c->live, MFS_ROOT, NAME_LF, a.ino);
	cf_attach(c);
	return c;
}

static void cf_free(struct cf *c)
{
	cf_disarm(c);
	if (c->fs) {
		c->v->img->sync_hook = NULL;
		mfs_fs_close_dirty(c->fs);
	}
	st_free(&c->live);
	st_free(&c->committed);
	for (size_t g = 0; g < c->nghosts; g++)
		free(c->ghosts[g].since);
	free(c->ghosts);
	for (unsigned i = 0; i < MIDMAX; i++)
		free(c->mid[i]);
	free(c->durable);
	free(c->crashbuf);
	if (g_cf == c)
		g_cf = NULL;
	free(c);
}

/* ------------------------------------------------------------------ *
 * Operations: each runs on the filesystem, checks the result against the
 * model's prediction and updates the model.
 * ------------------------------------------------------------------ */
enum pick { P_DIR, P_REG, P_ANY, P_LINKED_NONDIR, P_OPEN, P_LOOKUP, P_REG_DATA };

static struct mnode *pick(struct cf *c, enum pick what)
{
	struct mnode *cand[MAXN];
	unsigned n = 0;

	for (unsigned i = 0; i < MAXN; i++) {
		struct mnode *m = &c->live.n[i];
		bool ok;

		if (!m->ino)
			continue;
		switch (what) {
		case P_DIR: ok = S_ISDIR(m->mode) && m->nlink; break;
		case P_REG: ok = S_ISREG(m->mode); break;
		case P_LINKED_NONDIR: ok = !S_ISDIR(m->mode) && m->nlink; break;
		case P_OPEN: ok = m->nopen > 0; break;
		case P_LOOKUP: ok = m->nlookup > 0; break;
		case P_REG_DATA: ok = S_ISREG(m->mode) && m->size; break;
		default: ok = true; break;
		}
		if (ok)
			cand[n++] = m;
	}
	return n ? cand[rng_below(&c->rng, n)] : NULL;
}

/* A random existing entry, or NULL. */
static struct mdent *pick_dent(struct cf *c)
{
	struct mdent *cand[MAXD];
	unsigned n = 0;

	for (unsigned i = 0; i < MAXD; i++)
		if (c->live.d[i].ino && c->live.d[i].name < NNAMES)
			cand[n++] = &c->live.d[i];
	return n ? cand[rng_below(&c->rng, n)] : NULL;
}

/* A directory and a name: mostly an existing entry's. */
static void pick_name(struct cf *c, bool existing, struct mnode **dir,
		      unsigned *name)
{
	struct mdent *d = existing ? pick_dent(c) : NULL;

	if (d) {
		*dir = st_node(&c->live, d->dir);
		*name = d->name;
		return;
	}
	*dir = pick(c, P_DIR);
	*name = (unsigned)rng_below(&c->rng, NNAMES);
}

/* An entry-returning call gave one lookup reference: mostly give it back
 * at once, as the kernel's dentry cache eventually does. */
static void cf_got_entry(struct cf *c, struct mnode *m)
{
	m->nlookup++;
	if (rng_chance(&c->rng, 7, 8)) {
		mfs_forget(c->fs, m->ino, 1);
		m->nlookup--;
	}
}

/* MMAPFS_CRASH_TRACE=1 prints every operation. */
static bool g_trace;

#define OP(c, ...)                                                            \
	do {                                                                  \
		snprintf((c)->op, sizeof((c)->op), __VA_ARGS__);              \
		if (g_trace)                                                  \
			print_message("op %lu: %s\n", (c)->ops, (c)->op);     \
	} while (0)

static void expect_rc(struct cf *c, int rc, int want)
{
	if (rc != want)
		CF_FAIL(c, "returned %d, the model says %d", rc, want);
}

/*
 * For an operation that needs space: on a full volume -ENOSPC is right
 * too (returns true: nothing changed, as far as the model knows). The core
 * checks for space before some checks ext4 makes first (rename onto a
 * directory, XATTR_REPLACE of a missing name...): counted apart.
 */
static bool no_space(struct cf *c, int rc, int want)
{
	if (c->full && rc == -ENOSPC && want != -ENOSPC) {
		c->enospc++;
		if (want) {
			c->enospc_first++;
			if (g_trace)
				print_message("  ENOSPC instead of %d\n", want);
		}
		return true;
	}
	expect_rc(c, rc, want);
	return false;
}

/*
 * After an operation that may have stopped half-way for lack of space:
 * read file m back. Its size must be the model's or new_size; bytes in
 * [lo, hi) may be the model's or alt's (zeros when alt is NULL), all others
 * the model's. The model takes what was read. Returns true if that
 * changed the model.
 */
static bool m_adopt(struct cf *c, struct mnode *m, uint64_t new_size,
		    uint64_t lo, uint64_t hi, const uint8_t *alt)
{
	unsigned iovmax = (unsigned)(g_maxf / PAGE + 4), cnt = 0;
	struct iovec *iov = xmalloc(iovmax * sizeof(*iov));
	struct mfs_attr a;
	size_t bytes = 0;
	uint64_t pos = 0;
	int rc = mfs_getattr(c->fs, m->ino, &a);
	bool changed;

	if (rc || (a.size != m->size && a.size != new_size))
		CF_FAIL(c, "after a partial failure: getattr = %d, size %" PRIu64
			", model %" PRIu64 " or %" PRIu64, rc, a.size, m->size,
			new_size);
	changed = a.size != m->size;
	if (a.size < m->size)
		memset(m->data + a.size, 0, m->size - a.size);
	m->size = a.size;
	rc = mfs_read(c->fs, m->ino, 0, g_maxf, iov, iovmax, &cnt, &bytes);
	if (rc || bytes != m->size)
		CF_FAIL(c, "read back = %d, %zu bytes", rc, bytes);
	for (unsigned k = 0; k < cnt; k++) {
		const uint8_t *b = iov[k].iov_base;

		for (size_t j = 0; j < iov[k].iov_len; j++, pos++) {
			uint8_t want = alt && pos >= lo && pos < hi ? alt[pos - lo] : 0;

			if (b[j] == m->data[pos])
				continue;
			if (pos < lo || pos >= hi || b[j] != want)
				CF_FAIL(c, "after a partial failure, byte %" PRIu64
					" is %#x: neither %#x nor %#x", pos, b[j],
					m->data[pos], want);
			m->data[pos] = b[j];
			changed = true;
		}
	}
	free(iov);
	return changed;
}

static void op_new(struct cf *c, unsigned kind)
{
	static const uint32_t perms[] = { 0644, 0600, 04755, 02775, 0755, 02755 };
	static const uint32_t types[] = { 0, S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR,
					  S_IFBLK };
	struct mnode *p, *m;
	unsigned nm;
	struct mfs_attr a;
	uint32_t perm = perms[rng_below(&c->rng, 6)], mode = 0;
	uint64_t rdev = 0;
	char *target = NULL;
	bool exists;
	int rc = 0, want;

	pick_name(c, rng_chance(&c->rng, 1, 4), &p, &nm);
	exists = st_dent(&c->live, p->ino, nm) != NULL;
	if (!exists && (st_free_nodes(&c->live) < 4 || !st_free_dents(&c->live)))
		return;
	want = exists ? -EEXIST : 0;
	switch (kind) {
	case 0:
		OP(c, "create %" PRIu64 "/%.12s %o", p->ino, name_of(nm), perm);
		rc = mfs_create(c->fs, &cred, p->ino, name_of(nm), perm, O_RDWR, &a);
		mode = S_IFREG | perm;
		break;
	case 1: {
		uint32_t t = types[rng_below(&c->rng, 6)];

		if (S_ISCHR(t) || S_ISBLK(t))
			rdev = 1 + rng_below(&c->rng, 0xffffff);
		OP(c, "mknod %" PRIu64 "/%.12s %o rdev %#" PRIx64, p->ino,
		   name_of(nm), t | perm, rdev);
		rc = mfs_mknod(c->fs, &cred, p->ino, name_of(nm), t | perm, rdev, &a);
		mode = (t ? t : S_IFREG) | perm;
		break;
	}
	case 2:
		OP(c, "mkdir %" PRIu64 "/%.12s %o", p->ino, name_of(nm), perm);
		rc = mfs_mkdir(c->fs, &cred, p->ino, name_of(nm), perm, &a);
		mode = S_IFDIR | (perm & 01777); /* as mkdir(2) */
		break;
	default: {
		size_t tlen;

		switch (rng_below(&c->rng, 8)) {
		case 0: tlen = MFS_MAX_VALUE + rng_below(&c->rng, 1200); break;
		case 1: tlen = MFS_SYMLINK_MAX; break;
		default: tlen = 1 + rng_below(&c->rng, 60); break;
		}
		target = xmalloc(tlen + 1);
		for (size_t i = 0; i < tlen; i++)
			target[i] = (char)('!' + rng_below(&c->rng, 90));
		target[tlen] = 0;
		OP(c, "symlink %" PRIu64 "/%.12s -> %zu bytes", p->ino, name_of(nm),
		   tlen);
		rc = mfs_symlink(c->fs, &cred, p->ino, name_of(nm), target, &a);
		mode = S_IFLNK | 0777;
		break;
	}
	}
	if (no_space(c, rc, want) || rc) {
		free(target);
		return;
	}
	m = st_new_node(&c->live);
	m->ino = a.ino;
	m->mode = mode;
	m->gid = p->mode & S_ISGID ? p->gid : 0;
	m->nlink = 1;
	if (S_ISDIR(mode)) {
		if (p->mode & S_ISGID)
			m->mode |= S_ISGID;
		m->nlink = 2;
		m->parent = p->ino;
		m->size = MFS_BLOCK_SIZE;
		p->nlink++;
	} else if (S_ISREG(mode)) {
		m->data = xcalloc(g_maxf);
		m->since = xcalloc(g_maxf);
	} else if (S_ISLNK(mode)) {
		m->target = target;
		m->size = strlen(target);
	} else {
		m->rdev = rdev;
	}
	if (a.mode != m->mode || a.nlink != m->nlink || a.gid != m->gid ||
	    a.size != m->size || a.rdev != m->rdev)
		CF_FAIL(c, "new inode: mode %o nlink %u gid %u size %" PRIu64
			" rdev %#" PRIx64 "; model %o %u %u %" PRIu64 " %#" PRIx64,
			a.mode, a.nlink, a.gid, a.size, a.rdev, m->mode, m->nlink,
			m->gid, m->size, m->rdev);
	st_add_dent(&c->live, p->ino, nm, m->ino);
	c->model_dirty = true;
	if (kind == 0)
		m->nopen = 1;
	cf_got_entry(c, m);
	if (kind == 0 && rng_chance(&c->rng, 1, 2)) {
		mfs_release(c->fs, m->ino);
		m->nopen = 0;
	}
}

static void op_link(struct cf *c)
{
	struct mnode *m = rng_chance(&c->rng, 1, 10) ? pick(c, P_ANY) :
						      pick(c, P_LINKED_NONDIR);
	struct mnode *p;
	struct mfs_attr a;
	unsigned nm;
	bool exists;
	int rc, want;

	if (!m)
		return;
	pick_name(c, rng_chance(&c->rng, 1, 4), &p, &nm);
	exists = st_dent(&c->live, p->ino, nm) != NULL;
	if (!exists && !st_free_dents(&c->live))
		return;
	want = exists ? -EEXIST : S_ISDIR(m->mode) ? -EPERM :
	       m->nlink == 0 ? -ENOENT : 0;
	OP(c, "link %" PRIu64 " to %" PRIu64 "/%.12s", m->ino, p->ino, name_of(nm));
	rc = mfs_link(c->fs, m->ino, p->ino, name_of(nm), &a);
	if (no_space(c, rc, want) || rc)
		return;
	m->nlink++;
	if (a.nlink != m->nlink)
		CF_FAIL(c, "nlink %u, model %u", a.nlink, m->nlink);
	st_add_dent(&c->live, p->ino, nm, m->ino);
	c->model_dirty = true;
	cf_got_entry(c, m);
}

static void op_remove(struct cf *c, bool dir)
{
	struct mnode *p, *m;
	struct mdent *d;
	unsigned nm;
	int rc, want;

	pick_name(c, rng_chance(&c->rng, 3, 4), &p, &nm);
	d = st_dent(&c->live, p->ino, nm);
	m = d ? st_node(&c->live, d->ino) : NULL;
	if (!dir)
		want = !d ? -ENOENT : S_ISDIR(m->mode) ? -EISDIR : 0;
	else
		want = !d ? -ENOENT : !S_ISDIR(m->mode) ? -ENOTDIR :
		       st_entries(&c->live, m->ino) ? -ENOTEMPTY : 0;
	OP(c, "%s %" PRIu64 "/%.12s", dir ? "rmdir" : "unlink", p->ino,
	   name_of(nm));
	rc = dir ? mfs_rmdir(c->fs, p->ino, name_of(nm)) :
		   mfs_unlink(c->fs, p->ino, name_of(nm));
	expect_rc(c, rc, want);
	if (rc)
		return;
	d->ino = 0;
	if (dir) {
		m->nlink = 0;
		p->nlink--;
	} else {
		m->nlink--;
	}
	c->model_dirty = true;
	cf_maybe_gone(c, m);
}

static void op_rename(struct cf *c)
{
	static const unsigned flagset[] = { 0, 0, 0, 0, MFS_RENAME_NOREPLACE,
					    MFS_RENAME_EXCHANGE };
	unsigned flags = flagset[rng_below(&c->rng, 6)];
	struct mnode *p1, *p2, *s = NULL, *d = NULL;
	struct mdent *e1, *e2;
	unsigned n1, n2;
	int rc, want;

	pick_name(c, rng_chance(&c->rng, 7, 8), &p1, &n1);
	pick_name(c, rng_chance(&c->rng, 1, 3), &p2, &n2);
	e1 = st_dent(&c->live, p1->ino, n1);
	e2 = st_dent(&c->live, p2->ino, n2);
	if (e1)
		s = st_node(&c->live, e1->ino);
	if (e2)
		d = st_node(&c->live, e2->ino);
	if (!e1)
		want = -ENOENT;
	else if (e2 && (flags & MFS_RENAME_NOREPLACE))
		want = -EEXIST;
	else if (!e2 && (flags & MFS_RENAME_EXCHANGE))
		want = -ENOENT;
	else if (e2 && S_ISDIR(d->mode) && p1 != p2 &&
		 st_is_ancestor(&c->live, d->ino, p1->ino))
		/* the target is an ancestor of the source */
		want = (flags & MFS_RENAME_EXCHANGE) ? -EINVAL : -ENOTEMPTY;
	else if (e2 && e2->ino == e1->ino)
		want = 0;
	else if (S_ISDIR(s->mode) && p1 != p2 &&
		 st_is_ancestor(&c->live, s->ino, p2->ino))
		want = -EINVAL;
	else if ((flags & MFS_RENAME_EXCHANGE) && S_ISDIR(d->mode) && p1 != p2 &&
		 st_is_ancestor(&c->live, d->ino, p1->ino))
		want = -EINVAL;
	else if (flags & MFS_RENAME_EXCHANGE)
		want = 0;
	else if (e2 && S_ISDIR(s->mode) && !S_ISDIR(d->mode))
		want = -ENOTDIR;
	else if (e2 && !S_ISDIR(s->mode) && S_ISDIR(d->mode))
		want = -EISDIR;
	else if (e2 && S_ISDIR(d->mode) && st_entries(&c->live, d->ino))
		want = -ENOTEMPTY;
	else
		want = 0;
	OP(c, "rename %" PRIu64 "/%.12s -> %" PRIu64 "/%.12s flags %u", p1->ino,
	   name_of(n1), p2->ino, name_of(n2), flags);
	rc = mfs_rename(c->fs, p1->ino, name_of(n1), p2->ino, name_of(n2), flags);
	if (no_space(c, rc, want) || rc || (e2 && e2->ino == e1->ino))
		return;
	c->model_dirty = true;
	if (flags & MFS_RENAME_EXCHANGE) {
		e1->ino = d->ino;
		e2->ino = s->ino;
		if (p1 != p2) {
			if (S_ISDIR(s->mode)) {
				s->parent = p2->ino;
				p1->nlink--;
				p2->nlink++;
			}
			if (S_ISDIR(d->mode)) {
				d->parent = p1->ino;
				p2->nlink--;
				p1->nlink++;
			}
		}
		return;
	}
	if (e2) {
		e2->ino = s->ino;
		e1->ino = 0;
		if (S_ISDIR(d->mode)) {
			d->nlink = 0;
			p2->nlink--;
		} else {
			d->nlink--;
		}
	} else {
		e1->dir = p2->ino;
		e1->name = n2;
	}
	if (S_ISDIR(s->mode) && p1 != p2) {
		s->parent = p2->ino;
		p1->nlink--;
		p2->nlink++;
	}
	cf_maybe_gone(c, d);
}

/* Bytes [lo, hi) of file m's model get data (or zeros if data is NULL). */
static void m_put(struct mnode *m, uint64_t lo, uint64_t hi, const uint8_t *data)
{
	if (data)
		memcpy(m->data + lo, data, hi - lo);
	else
		memset(m->data + lo, 0, hi - lo);
}

/* The size of file m becomes s: bytes past it are zero in the model. */
static void m_resize(struct mnode *m, uint64_t s)
{
	if (s < m->size)
		memset(m->data + s, 0, m->size - s);
	m->size = s;
}

/* Growing a file zeroes the rest of its last block in place. */
static void pend_grow(struct cf *c, const struct mnode *m, uint64_t end)
{
	if (end > m->size)
		cf_pend(c, m->ino, m->size, round_up(m->size));
}

static void op_write(struct cf *c)
{
	struct mnode *m = pick(c, P_REG);
	uint64_t len, off;
	unsigned flags = 0;
	uint8_t *buf;
	size_t done = 0;
	int rc;

	if (!m)
		return;
	len = 1 + rng_below(&c->rng, rng_chance(&c->rng, 1, c->full ? 2 : 4) ?
				      32768 : 8192);
	if (rng_chance(&c->rng, 1, 50))
		len = 1 + rng_below(&c->rng, g_maxf);
	len = min64(len, g_maxf);
	switch (rng_below(&c->rng, 5)) {
	case 0: /* extend */
		off = min64(m->size, g_maxf - len);
		break;
	case 1: /* anywhere */
		off = rng_below(&c->rng, g_maxf - len + 1);
		break;
	case 2: /* append */
		if (m->size + len <= g_maxf) {
			off = m->size;
			flags = MFS_WRITE_APPEND;
			break;
		}
		/* fall through */
	default: /* overwrite */
		off = m->size ? rng_below(&c->rng, m->size) : 0;
		off = min64(off, g_maxf - len);
		break;
	}
	buf = xmalloc(len);
	rng_fill(&c->rng, buf, len);
	OP(c, "write %" PRIu64 " at %" PRIu64 " len %" PRIu64 " (size %" PRIu64
	   ")%s", m->ino, off, len, m->size, flags ? " append" : "");
	cf_pend(c, m->ino, off, off + len);
	pend_grow(c, m, off + len);
	rc = mfs_write(c->fs, &cred, m->ino, flags ? 12345 : off, buf, len, flags,
		       &done);
	if (c->full && ((rc == 0 && done < len) || (rc == -ENOSPC && !done))) {
		c->enospc++;         /* short write on a full volume */
		len = done;
		rc = 0;
	}
	if (rc || done != len) {
		free(buf);
		CF_FAIL(c, "returned %d, %zu bytes written", rc, done);
	}
	if (len && off + len > m->size)
		m->size = off + len;
	m_put(m, off, off + len, buf);
	free(buf);
	c->model_dirty |= len > 0;
	cf_pend_apply(c);
}

static void op_truncate(struct cf *c)
{
	struct mnode *m = pick(c, P_REG);
	struct mfs_attr in, out;
	uint64_t s;
	int rc;

	if (!m)
		return;
	switch (rng_below(&c->rng, 4)) {
	case 0: s = 0; break;
	case 1: s = rng_below(&c->rng, g_maxf + 1); break;
	default:
		s = m->size + rng_below(&c->rng, 12000);
		s = s > 6000 ? s - 6000 : 0;
		s = min64(s, g_maxf);
		break;
	}
	memset(&in, 0, sizeof(in));
	in.size = s;
	OP(c, "truncate %" PRIu64 " from %" PRIu64 " to %" PRIu64, m->ino,
	   m->size, s);
	if (s < m->size)
		cf_pend(c, m->ino, s, round_up(s));
	pend_grow(c, m, s);
	rc = mfs_setattr(c->fs, &cred, m->ino, &in, MFS_SET_SIZE, &out);
	expect_rc(c, rc, 0);
	if (out.size != s)
		CF_FAIL(c, "size %" PRIu64, out.size);
	m_resize(m, s);
	c->model_dirty = true;
	cf_pend_apply(c);
}

static void op_fallocate(struct cf *c)
{
	static const int modes[] = {
		0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE,
		FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
	};
	struct mnode *m = pick(c, P_REG);
	int mode = modes[rng_below(&c->rng, 6)];
	bool keep = mode & FALLOC_FL_KEEP_SIZE;
	uint64_t off, len, end;
	int rc;

	if (!m)
		return;
	if (m->size && rng_chance(&c->rng, 2, 3))
		off = rng_below(&c->rng, m->size);
	else
		off = rng_below(&c->rng, g_maxf - 1);
	if (rng_chance(&c->rng, 1, 3))
		off &= ~(uint64_t)(PAGE - 1);
	len = 1 + rng_below(&c->rng, min64(g_maxf - off, 40000));
	end = off + len;
	OP(c, "fallocate %" PRIu64 " mode %#x %" PRIu64 "+%" PRIu64 " (size %"
	   PRIu64 ")", m->ino, mode, off, len, m->size);
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		if (off < m->size)
			cf_pend(c, m->ino, off, min64(end, round_up(m->size)));
	} else {
		if (!keep)
			pend_grow(c, m, end);
		if (mode & FALLOC_FL_ZERO_RANGE)
			cf_pend(c, m->ino, off, end);
	}
	rc = mfs_fallocate(c->fs, m->ino, mode, off, len);
	if (c->full && rc == -ENOSPC && !(mode & FALLOC_FL_PUNCH_HOLE)) {
		/* Preallocation stops where space ends (holes and unwritten
		 * blocks both read as zeros); a zero range may be done in
		 * part. */
		c->enospc++;
		if ((mode & FALLOC_FL_ZERO_RANGE) &&
		    m_adopt(c, m, m->size, off, end, NULL))
			c->model_dirty = true;
		cf_pend_apply(c);
		return;
	}
	expect_rc(c, rc, 0);
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		if (off < m->size)
			m_put(m, off, min64(end, m->size), NULL);
	} else {
		if (!keep && end > m->size)
			m->size = end;
		if (mode & FALLOC_FL_ZERO_RANGE && off < m->size)
			m_put(m, off, min64(end, m->size), NULL);
	}
	c->model_dirty = true;
	cf_pend_apply(c);
}

static void op_copy(struct cf *c)
{
	struct mnode *s = pick(c, P_REG_DATA), *d = pick(c, P_REG);
	uint64_t soff, doff, len, n;
	size_t copied = 0;
	uint8_t *tmp;
	int rc, want = 0;

	if (!s || !d)
		return;
	soff = rng_below(&c->rng, s->size);
	len = 1 + rng_below(&c->rng, 20000);
	n = min64(len, s->size - soff);
	doff = rng_chance(&c->rng, 1, 2) ? min64(d->size, g_maxf - n) :
					   rng_below(&c->rng, g_maxf - n + 1);
	if (s == d && soff < doff + n && doff < soff + n)
		want = -EINVAL;
	OP(c, "copy %" PRIu64 "@%" PRIu64 " -> %" PRIu64 "@%" PRIu64 " len %"
	   PRIu64 " (%" PRIu64 ")", s->ino, soff, d->ino, doff, len, n);
	if (!want) {
		cf_pend(c, d->ino, doff, doff + n);
		pend_grow(c, d, doff + n);
	}
	rc = mfs_copy_file_range(c->fs, s->ino, soff, d->ino, doff, len, &copied);
	tmp = xmalloc(n);
	memcpy(tmp, s->data + soff, n);
	if (c->full && want && rc == -ENOSPC) {
		c->enospc++;
		c->enospc_first++;
		free(tmp);
		c->npend = 0;
		return;
	}
	if (c->full && !want && ((rc == 0 && copied < n) ||
				 (rc == -ENOSPC && !copied))) {
		/* Short on a full volume: what was copied is in; holes of the
		 * source may have been punched in the rest. */
		c->enospc++;
		if (m_adopt(c, d, max64(d->size, doff + copied), doff, doff + n,
			    tmp) || copied)
			c->model_dirty = true;
		free(tmp);
		cf_pend_apply(c);
		return;
	}
	expect_rc(c, rc, want);
	if (rc) {
		free(tmp);
		c->npend = 0;
		return;
	}
	if (copied != n)
		CF_FAIL(c, "copied %zu", copied);
	if (doff + n > d->size)
		d->size = doff + n;
	m_put(d, doff, doff + n, tmp);
	free(tmp);
	c->model_dirty = true;
	cf_pend_apply(c);
}

static void op_xattr(struct cf *c, bool remove)
{
	struct mnode *m = pick(c, P_ANY);
	unsigned x = (unsigned)rng_below(&c->rng, NXA);
	int rc, want, flags = 0;

	if (remove) {
		want = m->xset[x] ? 0 : -ENODATA;
		OP(c, "removexattr %" PRIu64 " %s", m->ino, xnames[x]);
		rc = mfs_removexattr(c->fs, m->ino, xnames[x]);
		expect_rc(c, rc, want);
		if (rc)
			return;
		free(m->xval[x]);
		m->xval[x] = NULL;
		m->xset[x] = false;
		m->xlen[x] = 0;
	} else {
		size_t len = rng_chance(&c->rng, 1, 4) ?
			     rng_below(&c->rng, XVAL_MAX + 1) :
			     rng_below(&c->rng, 40);
		uint8_t *val = xmalloc(len);

		rng_fill(&c->rng, val, len);
		switch (rng_below(&c->rng, 4)) {
		case 0: flags = XATTR_CREATE; break;
		case 1: flags = XATTR_REPLACE; break;
		default: break;
		}
		want = (flags == XATTR_CREATE && m->xset[x]) ? -EEXIST :
		       (flags == XATTR_REPLACE && !m->xset[x]) ? -ENODATA : 0;
		/* Sometimes the value it has: ext4 leaves that alone. */
		if (m->xset[x] && flags != XATTR_CREATE && rng_chance(&c->rng, 1, 8)) {
			len = m->xlen[x];
			val = realloc(val, len ? len : 1);
			assert_non_null(val);
			memcpy(val, m->xval[x], len);
		}
		OP(c, "setxattr %" PRIu64 " %s %zu bytes flags %d", m->ino,
		   xnames[x], len, flags);
		rc = mfs_setxattr(c->fs, m->ino, xnames[x], val, len, flags);
		if (no_space(c, rc, want) || rc) {
			free(val);
			return;
		}
		if (m->xset[x] && m->xlen[x] == len &&
		    !memcmp(m->xval[x], val, len)) {
			free(val);
			return; /* unchanged: nothing to commit */
		}
		free(m->xval[x]);
		m->xval[x] = val;
		m->xset[x] = true;
		m->xlen[x] = (uint16_t)len;
	}
	c->model_dirty = true;
}

static void op_setattr(struct cf *c)
{
	static const uint32_t perms[] = { 0644, 0600, 04755, 02775, 06711, 0 };
	struct mnode *m = pick(c, P_ANY);
	struct mfs_attr in, out;
	unsigned set = 0;
	int rc;

	memset(&in, 0, sizeof(in));
	switch (rng_below(&c->rng, 3)) {
	case 0:
		set = MFS_SET_MODE;
		break;
	case 1:
		set = MFS_SET_UID | MFS_SET_GID;
		break;
	default:
		set = MFS_SET_MODE | MFS_SET_UID;
		break;
	}
	in.mode = perms[rng_below(&c->rng, 6)];
	in.uid = (uint32_t)rng_below(&c->rng, 3) * 1000;
	in.gid = (uint32_t)rng_below(&c->rng, 3) * 100;
	if (rng_chance(&c->rng, 1, 4))
		set |= MFS_SET_MTIME_NOW | MFS_SET_ATIME_NOW;
	OP(c, "setattr %" PRIu64 " %#x mode %o uid %u gid %u", m->ino, set,
	   in.mode, in.uid, in.gid);
	rc = mfs_setattr(c->fs, &cred, m->ino, &in, set, &out);
	expect_rc(c, rc, 0);
	if (set & MFS_SET_UID)
		m->uid = in.uid;
	if (set & MFS_SET_GID)
		m->gid = in.gid;
	if ((set & (MFS_SET_UID | MFS_SET_GID)) && !S_ISDIR(m->mode)) {
		m->mode &= ~(uint32_t)S_ISUID;
		if (m->mode & S_IXGRP)
			m->mode &= ~(uint32_t)S_ISGID;
	}
	if (set & MFS_SET_MODE)
		m->mode = (m->mode & S_IFMT) | in.mode;
	if (out.mode != m->mode || out.uid != m->uid || out.gid != m->gid)
		CF_FAIL(c, "mode %o uid %u gid %u; model %o %u %u", out.mode,
			out.uid, out.gid, m->mode, m->uid, m->gid);
	c->model_dirty = true;
}

static void op_open(struct cf *c)
{
	struct mnode *m = pick(c, P_REG);
	bool trunc = rng_chance(&c->rng, 1, 4);
	int rc;

	if (!m)
		return;
	OP(c, "open %" PRIu64 "%s (size %" PRIu64 ")", m->ino,
	   trunc ? " O_TRUNC" : "", m->size);
	rc = mfs_open(c->fs, &cred, m->ino, O_RDWR | (trunc ? O_TRUNC : 0));
	expect_rc(c, rc, 0);
	m->nopen++;
	if (trunc) {
		m_resize(m, 0);
		c->model_dirty = true;
	}
}

static void op_release(struct cf *c, bool forget)
{
	struct mnode *m = pick(c, forget ? P_LOOKUP : P_OPEN);

	if (!m)
		return;
	OP(c, "%s %" PRIu64 " (nlink %u)", forget ? "forget" : "release", m->ino,
	   m->nlink);
	if (forget) {
		mfs_forget(c->fs, m->ino, m->nlookup);
		m->nlookup = 0;
	} else {
		assert_int_equal(mfs_release(c->fs, m->ino), 0);
		m->nopen--;
	}
	if (m->nlink == 0 && !m->nopen && !m->nlookup) {
		c->model_dirty = true; /* the orphan goes */
		cf_maybe_gone(c, m);
	}
}

static void op_lookup(struct cf *c)
{
	struct mnode *p, *m;
	struct mdent *d;
	struct mfs_attr a;
	unsigned nm;
	int rc;

	pick_name(c, rng_chance(&c->rng, 3, 4), &p, &nm);
	d = st_dent(&c->live, p->ino, nm);
	OP(c, "lookup %" PRIu64 "/%.12s", p->ino, name_of(nm));
	rc = mfs_lookup(c->fs, p->ino, name_of(nm), &a);
	expect_rc(c, rc, d ? 0 : -ENOENT);
	if (rc)
		return;
	m = st_node(&c->live, d->ino);
	if (a.ino != m->ino || a.nlink != m->nlink || a.size != m->size)
		CF_FAIL(c, "inode %" PRIu64 " nlink %u size %" PRIu64, a.ino, a.nlink,
			a.size);
	m->nlookup++;
	if (rng_chance(&c->rng, 1, 3)) {
		mfs_forget(c->fs, m->ino, 1);
		m->nlookup--;
	}
}

/* Read a whole file and compare it with the live model. */
static void op_read(struct cf *c)
{
	struct mnode *m = pick(c, P_REG);
	unsigned iovmax = (unsigned)(g_maxf / PAGE + 4), cnt = 0;
	struct iovec *iov;
	size_t bytes = 0;
	uint64_t pos = 0;
	int rc;

	if (!m)
		return;
	OP(c, "read %" PRIu64 " (size %" PRIu64 ")", m->ino, m->size);
	iov = xmalloc(iovmax * sizeof(*iov));
	rc = mfs_read(c->fs, m->ino, 0, g_maxf, iov, iovmax, &cnt, &bytes);
	if (rc || bytes != m->size)
		CF_FAIL(c, "read = %d, %zu bytes", rc, bytes);
	for (unsigned k = 0; k < cnt; pos += iov[k].iov_len, k++)
		if (memcmp(iov[k].iov_base, m->data + pos, iov[k].iov_len))
			CF_FAIL(c, "live data differs from the model near %" PRIu64,
				pos);
	free(iov);
}

/* fsync, fsyncdir or sync: returns only once everything is durable. */
static void op_fsync(struct cf *c, bool all)
{
	struct mnode *m = pick(c, P_ANY);
	int rc;

	OP(c, "%s %" PRIu64, all ? "sync" : "fsync", m->ino);
	rc = all ? mfs_fs_sync(c->fs) :
		   mfs_fsync(c->fs, m->ino, rng_chance(&c->rng, 1, 2));
	expect_rc(c, rc, 0);
	if (c->model_dirty)
		CF_FAIL(c, "returned 0 before the last changes were committed");
	c->fsyncs++;
}

/* Clean close and reopen. */
static void cf_reopen(struct cf *c)
{
	int rc;

	OP(c, "close and reopen");
	cf_disarm(c); /* the mapping goes away */
	cf_forget_handles(c);
	c->model_dirty = true;
	rc = mfs_fs_close(c->fs);
	c->fs = NULL;
	expect_rc(c, rc, 0);
	if (c->model_dirty)
		CF_FAIL(c, "close did not commit");
	cf_open(c);
}

static void cf_random_op(struct cf *c)
{
	unsigned r = (unsigned)rng_below(&c->rng, 1000);

	c->ops++;
	/* A full volume: fewer removals, more (and larger) writes. */
	if (c->full && ((r >= 210 && r < 300) || (r >= 560 && r < 610)) &&
	    rng_chance(&c->rng, 2, 3))
		r = 400;
	if (r < 70)
		op_new(c, 0);
	else if (r < 100)
		op_new(c, 1);
	else if (r < 140)
		op_new(c, 2);
	else if (r < 170)
		op_new(c, 3);
	else if (r < 210)
		op_link(c);
	else if (r < 270)
		op_remove(c, false);
	else if (r < 300)
		op_remove(c, true);
	else if (r < 380)
		op_rename(c);
	else if (r < 560)
		op_write(c);
	else if (r < 610)
		op_truncate(c);
	else if (r < 670)
		op_fallocate(c);
	else if (r < 700)
		op_copy(c);
	else if (r < 750)
		op_xattr(c, false);
	else if (r < 770)
		op_xattr(c, true);
	else if (r < 810)
		op_setattr(c);
	else if (r < 840)
		op_open(c);
	else if (r < 870)
		op_release(c, false);
	else if (r < 890)
		op_release(c, true);
	else if (r < 910)
		op_lookup(c);
	else if (r < 925)
		op_read(c);
	else if (c->no_sync)
		op_write(c);
	else if (r < 990)
		op_fsync(c, false);
	else if (r < 997)
		op_fsync(c, true);
	else
		cf_reopen(c);
	if (c->npend)
		CF_FAIL(c, "pending ranges left");
	if (mfs_fs_error(c->fs) || mfs_fs_readonly(c->fs))
		CF_FAIL(c, "the filesystem turned read-only (error %d)",
			mfs_fs_error(c->fs));
	if (g_trace)
		print_message("   (volume dirty %d, model dirty %d)\n", c->v->dirty,
			      c->model_dirty);
}

/* One random operation, sometimes with snapshots inside it, sometimes
 * followed by a crash image. */
static void cf_step(struct cf *c)
{
	if (c->images < c->target && rng_below(&c->rng, 1000) < c->mid_pm) {
		unsigned long at[MIDMAX], t = 0;
		unsigned n = 1 + (unsigned)rng_below(&c->rng, 3);

		for (unsigned i = 0; i < n; i++) {
			t += 1 + rng_below(&c->rng, 12);
			at[i] = t;
		}
		cf_arm(c, n, at);
		cf_random_op(c);
		cf_disarm(c);
	} else {
		cf_random_op(c);
	}
	if (c->images < c->target && rng_below(&c->rng, 1000) < c->between_pct) {
		OP(c, "after op %lu", c->ops);
		cf_crash_image(c, c->v->img->base, 0, "between operations");
		c->img_between++;
	}
}

/* Sync, close cleanly, and check the image a last time against the
 * model. */
static void cf_finish(struct cf *c)
{
	struct mfs_vol *v;
	int rc;

	cf_disarm(c);
	c->target = 0;
	c->hook_pct = 0;
	c->extra_hook = NULL;
	op_fsync(c, true);
	cf_forget_handles(c);
	c->model_dirty = true;
	OP(c, "final close");
	rc = mfs_fs_close(c->fs);
	c->fs = NULL;
	expect_rc(c, rc, 0);
	if (c->model_dirty)
		CF_FAIL(c, "close did not commit");
	v = t_open(c->img, MFS_VOL_RDONLY);
	for (unsigned t = 0; t < MFS_TREE_COUNT; t++)
		assert_int_equal(mfs_btree_check(v, t, NULL, NULL), 0);
	assert_int_equal(check_space(v, "final"), 0);
	struct_check(c, v, &c->live, true, "final image");
	assert_int_equal(mfs_vol_close(v), 0);
}

static void cf_report(const struct cf *c)
{
	print_message("  %s seed %" PRIu64 ": %lu ops, %lu fsyncs, %lu commits, "
		      "%lu syncs, %lu reopens, %lu ENOSPC (%lu before another "
		      "error); %lu crash images (%lu in a sync, "
		      "%lu between operations, %lu inside one; %lu torn superblock "
		      "pages): %lu at the last commit, %lu at the one in flight, "
		      "%lu also used read-write, %lu fsck runs (%lu noting a torn "
		      "superblock slot); %lu orphans seen, "
		      "%lu reclaimed; "
		      "%" PRIu64 " data bytes compared, %" PRIu64 " skipped (changed "
		      "in place after the commit)\n", c->name, c->seed, c->ops,
		      c->fsyncs, c->commits, c->syncs, c->reopens, c->enospc,
		      c->enospc_first, c->images,
		      c->img_hook, c->img_between, c->img_mid, c->torn_sb,
		      c->img_committed, c->img_inflight, c->img_rw, c->fscks,
		      c->fsck_notes,
		      c->orphans,
		      c->reclaimed, c->bytes_checked, c->bytes_skipped);
}

/* ------------------------------------------------------------------ *
 * Explicit steps for the scripted cases.
 * ------------------------------------------------------------------ */

/* Create root/name, kept open. */
static struct mnode *ex_create(struct cf *c, unsigned nm)
{
	struct mnode *m, *root = st_node(&c->live, MFS_ROOT);
	struct mfs_attr a;
	int rc;

	OP(c, "create %s", name_of(nm));
	rc = mfs_create(c->fs, &cred, MFS_ROOT, name_of(nm), 0644, O_RDWR, &a);
	expect_rc(c, rc, 0);
	mfs_forget(c->fs, a.ino, 1);
	m = st_new_node(&c->live);
	m->ino = a.ino;
	m->mode = S_IFREG | 0644;
	m->gid = root->mode & S_ISGID ? root->gid : 0;
	m->nlink = 1;
	m->nopen = 1;
	m->data = xcalloc(g_maxf);
	m->since = xcalloc(g_maxf);
	st_add_dent(&c->live, MFS_ROOT, nm, m->ino);
	c->model_dirty = true;
	return m;
}

static void ex_write(struct cf *c, struct mnode *m, uint64_t off, uint64_t len)
{
	uint8_t *buf = xmalloc(len);
	size_t done = 0;
	int rc;

	assert_true(off + len <= g_maxf);
	rng_fill(&c->rng, buf, len);
	OP(c, "write %" PRIu64 " at %" PRIu64 " len %" PRIu64, m->ino, off, len);
	cf_pend(c, m->ino, off, off + len);
	pend_grow(c, m, off + len);
	rc = mfs_write(c->fs, &cred, m->ino, off, buf, len, 0, &done);
	if (rc || done != len)
		CF_FAIL(c, "write = %d, %zu bytes", rc, done);
	if (off + len > m->size)
		m->size = off + len;
	m_put(m, off, off + len, buf);
	free(buf);
	c->model_dirty = true;
	cf_pend_apply(c);
}

static void ex_truncate(struct cf *c, struct mnode *m, uint64_t s)
{
	struct mfs_attr in, out;
	int rc;

	memset(&in, 0, sizeof(in));
	in.size = s;
	OP(c, "truncate %" PRIu64 " from %" PRIu64 " to %" PRIu64, m->ino,
	   m->size, s);
	if (s < m->size)
		cf_pend(c, m->ino, s, round_up(s));
	pend_grow(c, m, s);
	rc = mfs_setattr(c->fs, &cred, m->ino, &in, MFS_SET_SIZE, &out);
	expect_rc(c, rc, 0);
	m_resize(m, s);
	c->model_dirty = true;
	cf_pend_apply(c);
}

static void ex_unlink(struct cf *c, unsigned nm)
{
	struct mdent *d = st_dent(&c->live, MFS_ROOT, nm);
	struct mnode *m;
	int rc;

	assert_non_null(d);
	m = st_node(&c->live, d->ino);
	OP(c, "unlink %s", name_of(nm));
	rc = mfs_unlink(c->fs, MFS_ROOT, name_of(nm));
	expect_rc(c, rc, 0);
	d->ino = 0;
	m->nlink--;
	c->model_dirty = true;
	cf_maybe_gone(c, m);
}

static void ex_images(struct cf *c, unsigned n, const char *where)
{
	unsigned long t = c->target;

	c->target = ULONG_MAX;
	for (unsigned i = 0; i < n; i++) {
		OP(c, "%s", where);
		cf_crash_image(c, c->v->img->base, 0, where);
		c->img_between++;
	}
	c->target = t;
}

/* ------------------------------------------------------------------ *
 * Fixtures.
 * ------------------------------------------------------------------ */
struct fx {
	char dir[PATH_MAX];
};

static int setup(void **state)
{
	struct fx *f = xcalloc(sizeof(*f));
	const char *base = getenv("TMPDIR");

	/* Many small images are written, mounted and synced: memory is the
	 * right place for them unless TMPDIR says otherwise. */
	if (!base || !*base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(f->dir, sizeof(f->dir), "%s/mmapfs-crash-XXXXXX", base);
	assert_non_null(mkdtemp(f->dir));
	last_log[0] = 0;
	mfs_log_set_sink(quiet_sink);
	g_maxf = 96u * 1024;
	memset(name_long, 'L', sizeof(name_long) - 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	mfs_log_set_sink(NULL);
	t_rmtree(f->dir);
	free(f);
	return 0;
}

/* ------------------------------------------------------------------ *
 * The random simulation.
 * ------------------------------------------------------------------ */
static void crash_run(const char *dir, uint64_t seed, unsigned long target,
		      bool full)
{
	uint64_t r = seed;
	uint64_t size = full ? 1 * MiB : (8 + 4 * rng_below(&r, 2)) * MiB;
	struct cf *c;

	g_maxf = full ? 256u * 1024 : 96u * 1024;
	print_message("crash_fs: %sseed=%" PRIu64 " images=%lu image size %" PRIu64
		      " MiB (MMAPFS_SEED=%" PRIu64 " to rerun)\n",
		      full ? "full volume, " : "", seed, target,
		      (uint64_t)(size / MiB), seed);
	c = cf_new(full ? "full volume" : "random", dir, seed, size);
	c->full = full;
	c->target = target;
	c->hook_pct = 30;
	c->hook_max = 2;
	c->between_pct = 30;
	c->mid_pm = full ? 50 : 25;
	c->rw_check = true;
	while (c->images < c->target) {
		cf_step(c);
		if (c->ops > 1000 * target + 100000)
			CF_FAIL(c, "no progress");
	}
	cf_finish(c);
	cf_report(c);
	/* Every kind of crash point was exercised. */
	assert_true(c->img_committed > 0);
	assert_true(c->img_inflight > 0);
	assert_true(c->img_hook > 0);
	assert_true(c->bytes_checked > 0);
	if (!full) {
		/* (a full volume commits so often that these can be rare) */
		assert_true(c->img_between > 0);
		assert_true(c->img_mid > 0);
	}
	if (full)
		assert_true(c->enospc > 0);
	cf_free(c);
}

static void test_crash_random(void **state)
{
	struct fx *f = *state;
	static const uint64_t defs[] = { 1, 2, 3 };
	uint64_t seeds[4];
	size_t n = t_seeds(seeds, 4, defs, 3);
	unsigned long per = t_env_u64("MMAPFS_CRASH_IMAGES", n == 1 ? 1000 : 260);

	for (size_t i = 0; i < n; i++) {
		char sub[PATH_MAX + 32];

		snprintf(sub, sizeof(sub), "%s/%zu", f->dir, i);
		assert_int_equal(mkdir(sub, 0700), 0);
		crash_run(sub, seeds[i], per, false);
		t_rmtree(sub);
	}
}

/* The same on a volume small enough to stay full: operations that need
 * space may fail with ENOSPC (short writes and copies, preallocation in
 * part), commits run inside operations to release pinned blocks, and
 * removals must always work. */
static void test_crash_random_full(void **state)
{
	struct fx *f = *state;
	static const uint64_t defs[] = { 5, 26 };
	uint64_t seeds[3];
	size_t n = t_seeds(seeds, 3, defs, 2);
	unsigned long per = t_env_u64("MMAPFS_CRASH_IMAGES", n == 1 ? 1000 : 120);

	for (size_t i = 0; i < n; i++) {
		char sub[PATH_MAX + 32];

		snprintf(sub, sizeof(sub), "%s/%zu", f->dir, i);
		assert_int_equal(mkdir(sub, 0700), 0);
		crash_run(sub, seeds[i], per, true);
		t_rmtree(sub);
	}
}

/* ------------------------------------------------------------------ *
 * Explicit cases.
 * ------------------------------------------------------------------ */

/* Right after fsync returns, any crash shows everything; after more
 * changes, everything the fsync covered that was not written again. */
static void test_crash_after_fsync(void **state)
{
	struct fx *f = *state;
	struct cf *c = cf_new("after fsync", f->dir,
				 t_env_u64("MMAPFS_SEED", 101), 8 * MiB);

	c->no_sync = true;
	for (int round = 0; round < 6; round++) {
		uint64_t skipped, checked;

		for (int i = 0; i < 40; i++)
			cf_random_op(c);
		op_fsync(c, round & 1);
		skipped = c->bytes_skipped;
		checked = c->bytes_checked;
		ex_images(c, 6, "right after fsync");
		if (c->bytes_skipped != skipped || c->bytes_checked == checked)
			CF_FAIL(c, "after fsync, %" PRIu64 " bytes compared, %"
				PRIu64 " skipped", c->bytes_checked - checked,
				c->bytes_skipped - skipped);
		for (int i = 0; i < 30; i++) {
			cf_random_op(c);
			if (i % 6 == 5)
				ex_images(c, 2, "after fsync and more changes");
		}
	}
	assert_true(c->bytes_skipped > 0);
	cf_finish(c);
	cf_report(c);
	cf_free(c);
}

/* The first commit after an open, with crash images at each of its syncs:
 * after a clean close, and after a crash that left an orphan. */
static void test_crash_first_commit_after_open(void **state)
{
	struct fx *f = *state;
	struct cf *c = cf_new("first commit after open", f->dir,
				 t_env_u64("MMAPFS_SEED", 202), 8 * MiB);

	c->no_sync = true;
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < 40; i++)
			cf_random_op(c);
		if (round % 2 == 0) {
			op_fsync(c, true);
			cf_reopen(c);
		} else {
			struct mnode *m = ex_create(c, NAME_BIG);

			ex_write(c, m, 0, 60000);
			ex_unlink(c, NAME_BIG); /* still open: an orphan */
			op_fsync(c, true);
			OP(c, "crash and reopen");
			c->v->img->sync_hook = NULL;
			mfs_fs_close_dirty(c->fs);
			c->fs = NULL;
			cf_forget_handles(c);
			cf_open(c);
		}
		c->target = ULONG_MAX;
		c->hook_pct = 100;
		c->hook_max = 4;
		for (int i = 0; i < 25; i++)
			cf_random_op(c);
		op_fsync(c, false);
		c->target = 0;
		c->hook_pct = 0;
	}
	assert_true(c->img_inflight > 0);
	assert_true(c->img_committed > 0);
	cf_finish(c);
	cf_report(c);
	cf_free(c);
}

/* An unlinked file still open when the machine stops is on the orphan
 * list; the next mount removes it and its space is free again. */
static void test_crash_unlinked_open(void **state)
{
	struct fx *f = *state;
	struct cf *c;
	struct mnode *m;
	struct mfs_vol *v;
	struct mfs_fs *fs;
	struct mfs_attr a;
	struct mfs_key k;
	uint64_t ino, free0, free1, len = 2 * MiB;

	g_maxf = len;
	c = cf_new("unlinked and open", f->dir,
				 t_env_u64("MMAPFS_SEED", 303), 8 * MiB);
	m = ex_create(c, NAME_BIG);
	ino = m->ino;
	for (uint64_t off = 0; off < len; off += 65536)
		ex_write(c, m, off, 65536);
	op_fsync(c, true);
	ex_unlink(c, NAME_BIG);
	assert_int_equal(m->nlink, 0);
	ex_images(c, 4, "unlinked while open, not committed");

	c->target = ULONG_MAX;
	c->hook_pct = 100;
	c->hook_max = 3;
	op_fsync(c, true);
	c->hook_pct = 0;
	ex_images(c, 4, "unlinked while open, committed");

	/* The orphan's blocks come back at the next mount. */
	OP(c, "orphan reclaim");
	write_image(c->crash, c->v->img->base, c->size);
	v = t_open(c->crash, MFS_VOL_RDONLY | MFS_VOL_NOLOCK);
	free0 = v->sb.free_blocks;
	k = mfs_key_make(MFS_ORPHAN_OBJID, MFS_ITEM_ORPHAN, ino);
	assert_int_equal(mfs_btree_lookup(v, MFS_TREE_FS, &k, NULL, NULL), 0);
	assert_int_equal(mfs_vol_close(v), 0);
	assert_int_equal(mfs_fs_open(c->crash, MFS_FS_NOLOCK, &fs), 0);
	assert_int_equal(mfs_getattr(fs, ino, &a), -ENOENT);
	assert_int_equal(mfs_fs_close(fs), 0);
	v = t_open(c->crash, MFS_VOL_RDONLY | MFS_VOL_NOLOCK);
	free1 = v->sb.free_blocks;
	assert_int_equal(mfs_btree_lookup(v, MFS_TREE_FS, &k, NULL, NULL), -ENOENT);
	assert_int_equal(check_space(v, "after the reclaim"), 0);
	assert_int_equal(mfs_vol_close(v), 0);
	if (free1 < free0 + len / MFS_BLOCK_SIZE)
		CF_FAIL(c, "free blocks %" PRIu64 " before the reclaim, %" PRIu64
			" after: the orphan's %" PRIu64 " blocks did not come back",
			free0, free1, len / MFS_BLOCK_SIZE);

	/* The open orphan is still a file: write, fsync, crash. */
	ex_write(c, m, 4096, 100000);
	ex_truncate(c, m, 300000);
	c->hook_pct = 100;
	op_fsync(c, false);
	c->hook_pct = 0;
	ex_images(c, 4, "orphan written after the unlink, committed");

	/* The last release removes it. */
	OP(c, "last release");
	assert_int_equal(mfs_release(c->fs, ino), 0);
	m->nopen = 0;
	c->model_dirty = true;
	cf_maybe_gone(c, m);
	ex_images(c, 3, "orphan released, not committed");
	c->hook_pct = 100;
	op_fsync(c, true);
	c->hook_pct = 0;
	ex_images(c, 3, "orphan released, committed");
	assert_true(c->orphans > 0);
	assert_true(c->reclaimed > 0);
	cf_finish(c);
	cf_report(c);
	cf_free(c);
}

static unsigned long count_extents(struct mfs_vol *v, uint64_t ino)
{
	struct mfs_key lo = mfs_key_make(ino, MFS_ITEM_EXTENT, 0);
	struct mfs_key hi = mfs_key_make(ino, MFS_ITEM_EXTENT, UINT64_MAX);
	struct mfs_cursor cur;
	unsigned long n = 0;
	int rc;

	mfs_cursor_init(&cur, v, MFS_TREE_FS, &lo, &hi);
	while ((rc = mfs_cursor_next(&cur, NULL, NULL, NULL)) > 0)
		n++;
	assert_int_equal(rc, 0);
	return n;
}

/* A crash in the middle of truncating a large, fragmented file: copies of
 * the image at many points inside the operation. */
static void test_crash_large_truncate(void **state)
{
	static const unsigned long at[MIDMAX] = { 1, 2, 4, 6, 8, 10, 12, 14 };
	struct fx *f = *state;
	struct cf *c;
	struct mnode *a, *b;
	unsigned long ext;

	g_maxf = 3 * MiB;
	c = cf_new("large truncate", f->dir,
				 t_env_u64("MMAPFS_SEED", 404), 16 * MiB);
	a = ex_create(c, NAME_BIG);
	b = ex_create(c, NAME_OTHER);
	for (uint64_t off = 0; off < g_maxf; off += 8192) {
		ex_write(c, a, off, 8192);
		ex_write(c, b, off / 2, 4096);
		if (off % (512 * 1024) == 0)
			op_fsync(c, false);
	}
	op_fsync(c, true);
	ext = count_extents(c->v, a->ino);
	print_message("  large truncate: %" PRIu64 " bytes in %lu extents\n",
		      a->size, ext);
	assert_true(ext >= 32);

	c->target = ULONG_MAX;
	cf_arm(c, MIDMAX, at);
	ex_truncate(c, a, 5000);
	cf_disarm(c);
	print_message("  large truncate: %lu write faults\n", c->faults);
	if (c->nmid_taken != MIDMAX)
		CF_FAIL(c, "only %lu write faults in the truncate", c->faults);
	c->hook_pct = 100;
	op_fsync(c, false);
	c->hook_pct = 0;

	/* And the other file, to zero through O_TRUNC, then regrown. */
	cf_arm(c, MIDMAX, at);
	OP(c, "open O_TRUNC %" PRIu64, b->ino);
	assert_int_equal(mfs_open(c->fs, &cred, b->ino, O_RDWR | O_TRUNC), 0);
	b->nopen++;
	m_resize(b, 0);
	c->model_dirty = true;
	cf_disarm(c);
	ex_truncate(c, a, 2 * MiB);
	ex_write(c, a, 1 * MiB, 70000);
	c->hook_pct = 100;
	op_fsync(c, false);
	c->hook_pct = 0;
	assert_true(c->img_mid >= 2 * MIDMAX - 4);
	cf_finish(c);
	cf_report(c);
	cf_free(c);
}

/* Fill file m with writes until the volume is full (a short write). */
static void ex_fill(struct cf *c, struct mnode *m)
{
	uint8_t *buf = xmalloc(65536);

	for (;;) {
		uint64_t off = m->size, len = min64(65536, g_maxf - off);
		size_t done = 0;
		int rc;

		assert_true(len > 0);
		rng_fill(&c->rng, buf, len);
		OP(c, "fill %" PRIu64 " at %" PRIu64, m->ino, off);
		rc = mfs_write(c->fs, &cred, m->ino, off, buf, len, 0, &done);
		if (rc && rc != -ENOSPC)
			CF_FAIL(c, "write = %d", rc);
		m->size += done;
		m_put(m, off, off + done, buf);
		c->model_dirty |= done > 0;
		if (done < len)
			break;
	}
	free(buf);
}

/*
 * Preallocation that runs out of space half-way on a nearly full volume
 * (zero range over a hole asks for no space up front): the blocks it got
 * stay mapped (unwritten), and the inode must count them — every crash
 * image checks st_blocks against the extents.
 */
static void test_crash_full_prealloc(void **state)
{
	static const int modes[] = { FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
				     FALLOC_FL_ZERO_RANGE,
				     FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE };
	struct fx *f = *state;
	struct cf *c;
	struct mnode *big, *other;
	int rc;

	g_maxf = 1 * MiB;
	c = cf_new("partial preallocation", f->dir,
		   t_env_u64("MMAPFS_SEED", 606), 1 * MiB);
	c->full = true;
	for (unsigned i = 0; i < 3; i++) {
		other = ex_create(c, NAME_OTHER);
		big = ex_create(c, NAME_BIG);
		ex_fill(c, big);
		ex_truncate(c, big, big->size - 65536);
		op_fsync(c, true);
		op_fsync(c, true);
		/* Beyond the end of "other": the model's bytes stay. */
		OP(c, "fallocate mode %#x on a full volume", modes[i]);
		rc = mfs_fallocate(c->fs, other->ino, modes[i], 8192, 512 * 1024);
		if (rc != -ENOSPC)
			CF_FAIL(c, "fallocate = %d, want -ENOSPC", rc);
		c->model_dirty = true; /* some blocks got mapped */
		ex_images(c, 2, "after a partial preallocation");
		c->hook_pct = 100;
		c->target = ULONG_MAX;
		op_fsync(c, true);
		c->hook_pct = 0;
		ex_images(c, 2, "after a partial preallocation, committed");
		assert_int_equal(mfs_release(c->fs, big->ino), 0);
		assert_int_equal(mfs_release(c->fs, other->ino), 0);
		big->nopen = other->nopen = 0;
		ex_unlink(c, NAME_BIG);
		ex_unlink(c, NAME_OTHER);
		op_fsync(c, true);
	}
	cf_finish(c);
	cf_report(c);
	cf_free(c);
}

static struct mnode *ex_mknod(struct cf *c, struct mnode *p, unsigned nm,
			      uint32_t mode)
{
	struct mnode *m;
	struct mfs_attr a;
	int rc;

	OP(c, "mknod %" PRIu64 "/%.12s %o", p->ino, name_of(nm), mode);
	rc = S_ISDIR(mode) ? mfs_mkdir(c->fs, &cred, p->ino, name_of(nm), mode, &a) :
			     mfs_mknod(c->fs, &cred, p->ino, name_of(nm), mode, 0, &a);
	expect_rc(c, rc, 0);
	mfs_forget(c->fs, a.ino, 1);
	m = st_new_node(&c->live);
	m->ino = a.ino;
	m->mode = mode;
	m->nlink = 1;
	if (S_ISDIR(mode)) {
		m->nlink = 2;
		m->parent = p->ino;
		m->size = MFS_BLOCK_SIZE;
		p->nlink++;
	} else {
		m->data = xcalloc(g_maxf);
		m->since = xcalloc(g_maxf);
	}
	st_add_dent(&c->live, p->ino, nm, m->ino);
	c->model_dirty = true;
	return m;
}

/*
 * Removing the last link of a file on a full volume must work, whatever
 * the transaction copied before: the volume is filled with data, then
 * chmods (which copy tree leaves and need no space) bring the free blocks
 * down to each level from 18 to 12, and the file is unlinked.
 */
static void test_crash_full_unlink(void **state)
{
	struct fx *f = *state;

	g_maxf = 1 * MiB;
	for (uint64_t target = 18; target >= 12; target--) {
		struct mnode *files[6 * NNAMES], *big, *root;
		struct cf *c;
		unsigned nf = 0, i;
		char sub[PATH_MAX + 32];
		uint8_t pad[600];

		snprintf(sub, sizeof(sub), "%s/%" PRIu64, f->dir, target);
		assert_int_equal(mkdir(sub, 0700), 0);
		c = cf_new("unlink on a full volume", sub,
			   t_env_u64("MMAPFS_SEED", 707), 1 * MiB);
		c->full = true;
		root = st_node(&c->live, MFS_ROOT);
		memset(pad, 'p', sizeof(pad));
		/* Inodes spread over many leaves. */
		for (unsigned d = 0; d < 6; d++) {
			struct mnode *dir = ex_mknod(c, root, d, S_IFDIR | 0755);

			for (unsigned nm = 0; nm < NNAMES; nm++) {
				struct mnode *m = ex_mknod(c, dir, nm, S_IFREG | 0644);

				OP(c, "setxattr %" PRIu64, m->ino);
				expect_rc(c, mfs_setxattr(c->fs, m->ino, xnames[0], pad,
							  sizeof(pad), 0), 0);
				m->xset[0] = true;
				m->xlen[0] = sizeof(pad);
				m->xval[0] = xmalloc(sizeof(pad));
				memcpy(m->xval[0], pad, sizeof(pad));
				files[nf++] = m;
			}
		}
		big = ex_create(c, NAME_BIG);
		assert_int_equal(mfs_release(c->fs, big->ino), 0);
		big->nopen = 0;
		ex_fill(c, big);
		op_fsync(c, true);
		op_fsync(c, true);
		for (i = 0; i < nf && mfs_alloc_avail_blocks(c->v->alloc) > target;
		     i++) {
			struct mfs_attr in, out;

			memset(&in, 0, sizeof(in));
			in.mode = 0600;
			OP(c, "chmod %" PRIu64, files[i]->ino);
			expect_rc(c, mfs_setattr(c->fs, &cred, files[i]->ino, &in,
						 MFS_SET_MODE, &out), 0);
			files[i]->mode = S_IFREG | 0600;
			c->model_dirty = true;
		}
		print_message("  unlink on a full volume: %u chmods, %" PRIu64
			      " blocks available, %" PRIu64 " free\n", i,
			      mfs_alloc_avail_blocks(c->v->alloc),
			      mfs_alloc_free_blocks(c->v->alloc));
		ex_images(c, 2, "full, before the unlink");
		ex_unlink(c, NAME_BIG);
		ex_images(c, 2, "full, after the unlink");
		c->hook_pct = 100;
		c->target = ULONG_MAX;
		op_fsync(c, true);
		cf_finish(c);
		cf_free(c);
	}
}

/* Torn writes of the superblock: each way of tearing the slot being
 * written, at each commit; the result must be the last commit, or the new
 * one when its sector is whole. */
static void torn_hook(struct cf *c, const uint8_t *cur, uint64_t newgen)
{
	static const size_t cuts[] = { 1, 12, 40, 300, 511 };

	if (!newgen)
		return;
	for (unsigned s = 0; s < MFS_SB_SLOTS; s++) {
		const uint8_t *n = cur + s * PAGE;

		if (!memcmp(c->durable + s * PAGE, n, PAGE))
			continue;
		for (unsigned var = 0; var < 12; var++) {
			uint8_t *o = c->crashbuf + s * PAGE;
			bool want_new, got;
			char where[96];

			memcpy(c->crashbuf, c->durable, c->size);
			switch (var) {
			case 0: /* not written */
				break;
			case 1: case 2: case 3: case 4: case 5:
				memcpy(o, n, cuts[var - 1]);
				break;
			case 6: /* all but the superblock sector */
				memcpy(o + 512, n + 512, PAGE - 512);
				break;
			case 7: /* only the superblock sector */
				memcpy(o, n, 512);
				break;
			case 8: /* the sector zeroed */
				memset(o, 0, 512);
				break;
			case 9: /* garbage */
				memset(o, 0xa5, 512);
				break;
			case 10: /* written with a flipped bit */
				memcpy(o, n, PAGE);
				o[100 + var] ^= 4;
				break;
			default: /* written */
				memcpy(o, n, PAGE);
				break;
			}
			/* The new commit if its superblock is whole (a cut may
			 * fall where old and new agree), else the old one. */
			want_new = !memcmp(o, n, MFS_SB_SIZE);
			snprintf(where, sizeof(where), "torn superblock slot %u, "
				 "variant %u", s, var);
			got = cf_verify(c, c->crashbuf, newgen, where);
			if (got != want_new)
				CF_FAIL(c, "%s: opened at the %s commit", where,
					got ? "new" : "old");
			c->torn_sb++;
		}
	}
}

static void test_crash_torn_superblock(void **state)
{
	struct fx *f = *state;
	struct cf *c = cf_new("torn superblock", f->dir,
				 t_env_u64("MMAPFS_SEED", 505), 8 * MiB);

	c->no_sync = true;
	c->extra_hook = torn_hook;
	c->target = ULONG_MAX;
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 30; i++)
			cf_random_op(c);
		op_fsync(c, false);
	}
	assert_true(c->torn_sb >= 4 * 12);
	assert_true(c->img_inflight > 0);
	cf_finish(c);
	cf_report(c);
	cf_free(c);
}

int main(void)
{
	/* e.g. MMAPFS_TEST_FILTER='test_crash_random*' (soak-crash.sh) */
	const char *filter = getenv("MMAPFS_TEST_FILTER");

	g_trace = t_env_u64("MMAPFS_CRASH_TRACE", 0) != 0;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crash_after_fsync, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_crash_first_commit_after_open,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_unlinked_open, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_crash_large_truncate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_crash_torn_superblock, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_crash_random, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_random_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_full_prealloc, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_crash_full_unlink, setup,
						teardown),
	};

	/* The full-volume cases are their own meson test (crash_fs_full). */
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	else
		cmocka_set_skip_filter("*full*");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
