/* SPDX-License-Identifier: MIT */
/*
 * test_fs.c — the filesystem core API (include/mmapfs/mmapfs.h, src/fs.c).
 *
 * Every test runs on a fresh image (mfs_format into a mkdtemp directory,
 * mfs_fs_open); the teardown closes it and removes the directory. After
 * each phase a test closes the filesystem and checks the image through the
 * lower layers (check_image): both B+trees pass mfs_btree_check; every
 * block is exactly one of superblock, tree node, file data (EXTENT items)
 * or free; and the FS tree is a consistent filesystem (a small fsck: every
 * entry names an inode of its type, link counts, parents, reachability,
 * symlink chunks, the superblock's inode count, no orphans left).
 *
 * Expected errnos are what Linux ext4 gives: the differential test
 * (test_diff_ext4) runs the same random operations on a loop-mounted ext4
 * and on mmapfs and compares every return code, the namespace and, per
 * operation, which timestamps changed. Reproduce a run with MMAPFS_SEED=n
 * (one seed) and scale it with MMAPFS_OPS=n (total operations).
 *
 * File data and xattr tests probe the core first and skip (saying so)
 * while it answers EOPNOTSUPP (src/stubs_tmp.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mfs_skip.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "mmapfs/mmapfs.h"
#include "alloc.h"
#include "btree.h"
#include "dir.h"
#include "endian.h"
#include "fs_internal.h"
#include "image.h"
#include "inode.h"
#include "log.h"
#include "newfs.h"
#include "txn.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#define XATTR_CREATE_ 1
#define XATTR_REPLACE_ 2

_Static_assert(MFS_RENAME_NOREPLACE == RENAME_NOREPLACE, "flag");
_Static_assert(MFS_RENAME_EXCHANGE == RENAME_EXCHANGE, "flag");

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

#define IMG_SIZE (2ULL << 30) /* sparse: costs only what is used */

struct fx {
	char dir[64];
	char img[96];
	struct mfs_fs *fs;
};

static const struct mfs_cred ROOT = { 0, 0, true, true };
/* An ordinary user: no CAP_FSETID, not in the file's group. */
static const struct mfs_cred USER = { 1000, 1000, false, false };

static int rm_one(const char *p, const struct stat *st, int type,
		  struct FTW *f)
{
	(void)st; (void)type; (void)f;
	return remove(p) == 0 ? 0 : -1;
}

static int rm_tree(const char *dir)
{
	/* FTW_MOUNT: never descend into something still mounted. */
	return nftw(dir, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct mfs_format_opts o = { .size = IMG_SIZE };
	int rc;

	if (!fx)
		return -1;
	strcpy(fx->dir, "/tmp/mfs-test-fs-XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(fx->img, sizeof(fx->img), "%s/fs.img", fx->dir);
	rc = mfs_format(fx->img, &o);
	if (!rc)
		rc = mfs_fs_open(fx->img, 0, &fx->fs);
	if (rc) {
		fprintf(stderr, "setup: %s\n", strerror(-rc));
		rm_tree(fx->dir);
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	int rc = 0;

	if (fx->fs && mfs_fs_close(fx->fs) != 0)
		rc = -1;
	if (rm_tree(fx->dir) != 0)
		rc = -1;
	free(fx);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static struct mfs_attr getattr_ok(struct mfs_fs *fs, uint64_t ino)
{
	struct mfs_attr a = { 0 };

	assert_int_equal(mfs_getattr(fs, ino, &a), 0);
	assert_int_equal(a.ino, ino);
	return a;
}

/* Lookup that gives its lookup count straight back. */
static int lookup_rc(struct mfs_fs *fs, uint64_t parent, const char *name,
		     struct mfs_attr *out)
{
	struct mfs_attr a = { 0 };
	int rc = mfs_lookup(fs, parent, name, &a);

	if (out)
		*out = (struct mfs_attr){ 0 };
	if (rc == 0) {
		mfs_forget(fs, a.ino, 1);
		if (out)
			*out = a;
	}
	return rc;
}

static uint64_t lookup_ok(struct mfs_fs *fs, uint64_t parent, const char *name)
{
	struct mfs_attr a = { 0 };

	assert_int_equal(lookup_rc(fs, parent, name, &a), 0);
	return a.ino;
}

static uint64_t mkfile(struct mfs_fs *fs, uint64_t parent, const char *name,
		       uint32_t mode)
{
	struct mfs_attr a = { 0 };

	assert_int_equal(mfs_mknod(fs, &ROOT, parent, name, S_IFREG | mode, 0,
				   &a), 0);
	mfs_forget(fs, a.ino, 1);
	return a.ino;
}

static uint64_t mkdir_ok(struct mfs_fs *fs, uint64_t parent, const char *name,
			 uint32_t mode)
{
	struct mfs_attr a = { 0 };

	assert_int_equal(mfs_mkdir(fs, &ROOT, parent, name, mode, &a), 0);
	mfs_forget(fs, a.ino, 1);
	return a.ino;
}

static uint64_t symlink_ok(struct mfs_fs *fs, uint64_t parent, const char *name,
			   const char *target)
{
	struct mfs_attr a = { 0 };

	assert_int_equal(mfs_symlink(fs, &ROOT, parent, name, target, &a), 0);
	mfs_forget(fs, a.ino, 1);
	return a.ino;
}

static void link_ok(struct mfs_fs *fs, uint64_t ino, uint64_t parent,
		    const char *name)
{
	struct mfs_attr a = { 0 };

	assert_int_equal(mfs_link(fs, ino, parent, name, &a), 0);
	assert_int_equal(a.ino, ino);
	mfs_forget(fs, ino, 1);
}

/* The inode's attributes are exactly *want. */
static void assert_attr_is(struct mfs_fs *fs, uint64_t ino,
			   const struct mfs_attr *want)
{
	struct mfs_attr a = getattr_ok(fs, ino);

	assert_memory_equal(&a, want, sizeof(a));
}

static int ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	if (a.tv_nsec != b.tv_nsec)
		return a.tv_nsec < b.tv_nsec ? -1 : 1;
	return 0;
}

#define assert_ts_newer(after, before) \
	assert_true(ts_cmp((after), (before)) > 0)
#define assert_ts_same(a, b) assert_int_equal(ts_cmp((a), (b)), 0)

/* Make sure the clock moved, so that "changed" is visible. */
static void tick(void)
{
	struct timespec a, b;

	clock_gettime(CLOCK_REALTIME, &a);
	do
		clock_gettime(CLOCK_REALTIME, &b);
	while (ts_cmp(a, b) == 0);
}

static char *name_of_len(size_t n, char c)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = 0;
	return s;
}

/* Is file data implemented (not the EOPNOTSUPP stub)? */
static bool data_supported(struct mfs_fs *fs)
{
	struct mfs_attr a = { 0 };
	size_t w = 0;
	int rc;

	assert_int_equal(mfs_create(fs, &ROOT, MFS_ROOT, ".probe-data", 0644,
				    O_RDWR, &a), 0);
	rc = mfs_write(fs, &ROOT, a.ino, 0, "x", 1, 0, &w);
	mfs_release(fs, a.ino);
	mfs_forget(fs, a.ino, 1);
	assert_int_equal(mfs_unlink(fs, MFS_ROOT, ".probe-data"), 0);
	/* File data is implemented: EOPNOTSUPP is a regression, not a
	 * reason to skip. */
	assert_int_equal(rc, 0);
	return true;
}

static bool xattr_supported(struct mfs_fs *fs)
{
	int rc = mfs_setxattr(fs, MFS_ROOT, "user.probe", "1", 1, 0);

	assert_int_equal(rc, 0);
	assert_int_equal(mfs_removexattr(fs, MFS_ROOT, "user.probe"), 0);
	return true;
}

/* Once guards that skipped while data and xattrs were not written yet; now
 * they fail if either has regressed. */
#define NEED_DATA(fs) assert_true(data_supported(fs))
#define NEED_XATTR(fs) assert_true(xattr_supported(fs))

/* Read a whole range through mfs_read into buf; returns bytes read. */
static size_t read_all(struct mfs_fs *fs, uint64_t ino, uint64_t off,
		       size_t len, void *buf)
{
	unsigned iovmax = (unsigned)(len >> 12) + 2, cnt = 0, i;
	struct iovec *iov = calloc(iovmax, sizeof(*iov));
	size_t bytes = 0, at = 0;

	assert_non_null(iov);
	assert_int_equal(mfs_read(fs, ino, off, len, iov, iovmax, &cnt,
				  &bytes), 0);
	assert_true(cnt <= iovmax);
	for (i = 0; i < cnt; i++) {
		assert_true(at + iov[i].iov_len <= len);
		memcpy((char *)buf + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	assert_int_equal(at, bytes);
	free(iov);
	return bytes;
}

static void write_ok(struct mfs_fs *fs, const struct mfs_cred *cred,
		     uint64_t ino, uint64_t off, const void *buf, size_t len)
{
	size_t w = 0;

	assert_int_equal(mfs_write(fs, cred, ino, off, buf, len, 0, &w), 0);
	assert_int_equal(w, len);
}

/* ------------------------------------------------------------------ */
/* Readdir collection                                                  */
/* ------------------------------------------------------------------ */

struct ent {
	char name[MFS_NAME_LEN + 1];
	uint64_t ino;
	uint32_t mode;   /* type bits only without plus */
	uint64_t off;
	struct mfs_attr attr;
};

struct ents {
	struct ent *e;
	size_t n, cap;
	size_t limit;    /* take at most this many per call; 0: no limit */
	size_t taken;
};

static int fill_collect(void *ctx, const char *name, size_t namelen,
			const struct mfs_attr *a, uint64_t next_off)
{
	struct ents *l = ctx;

	if (l->limit && l->taken >= l->limit)
		return 1;
	assert_int_equal(strlen(name), namelen);
	assert_true(namelen >= 1 && namelen <= MFS_NAME_LEN);
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->e = realloc(l->e, l->cap * sizeof(*l->e));
		assert_non_null(l->e);
	}
	memcpy(l->e[l->n].name, name, namelen + 1);
	l->e[l->n].ino = a->ino;
	l->e[l->n].mode = a->mode;
	l->e[l->n].off = next_off;
	l->e[l->n].attr = *a;
	l->n++;
	l->taken++;
	return 0;
}

static bool is_dot(const char *n)
{
	return !strcmp(n, ".") || !strcmp(n, "..");
}

/* List a directory from offset `off`, at most `chunk` entries per call
 * (0: no limit), appending to *out. With plus, the lookups counted for
 * the entries are given back unless keep is set. */
static void list_dir_from(struct mfs_fs *fs, uint64_t ino, uint64_t off,
			  size_t chunk, bool plus, bool keep, struct ents *out)
{
	for (;;) {
		size_t before = out->n, i;

		out->taken = 0;
		out->limit = chunk;
		assert_int_equal(mfs_readdir(fs, ino, off, plus, fill_collect,
					     out), 0);
		if (plus && !keep)
			for (i = before; i < out->n; i++)
				if (!is_dot(out->e[i].name))
					mfs_forget(fs, out->e[i].ino, 1);
		if (out->n == before)
			return;
		off = out->e[out->n - 1].off;
	}
}

static void list_dir(struct mfs_fs *fs, uint64_t ino, size_t chunk, bool plus,
		     struct ents *out)
{
	out->n = 0;
	list_dir_from(fs, ino, 0, chunk, plus, false, out);
}

static void ents_free(struct ents *l)
{
	free(l->e);
	memset(l, 0, sizeof(*l));
}

/* ------------------------------------------------------------------ */
/* Image consistency through the lower layers                          */
/* ------------------------------------------------------------------ */

struct ck_ino {
	uint64_t ino;
	uint32_t mode, nlink;
	uint64_t parent, size, blocks;
	uint64_t nentries;     /* directory entries naming it */
	uint64_t nsubdirs;     /* (directories) entries of directories */
	uint64_t entry_dir;    /* a directory holding an entry for it */
	uint64_t inline_len, inline_next;
	uint64_t ext_blocks, ext_end;
	bool reached;
};

struct ck_edge {
	uint64_t dir, ino;
};

struct ck {
	struct mfs_vol *v;
	uint64_t nblocks;
	uint8_t *used;         /* per block: how many owners */
	struct ck_ino *in;
	size_t nin, capin;
	struct ck_edge *edges;
	size_t nedges, capedges;
	uint64_t tree_blocks, data_blocks, free_blocks, orphans;
	unsigned errors;
};

static void ck_err(struct ck *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void ck_err(struct ck *c, const char *fmt, ...)
{
	va_list ap;

	if (c->errors++ > 20)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "check_image: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static void ck_mark(struct ck *c, uint64_t start, uint64_t len, const char *what)
{
	uint64_t b;

	if (start >= c->nblocks || len > c->nblocks - start) {
		ck_err(c, "%s: blocks %" PRIu64 "+%" PRIu64 " outside the image",
		       what, start, len);
		return;
	}
	for (b = start; b < start + len; b++)
		if (c->used[b]++)
			ck_err(c, "block %" PRIu64 " (%s) used twice", b, what);
}

static int ck_tree_block(void *arg, uint64_t block)
{
	struct ck *c = arg;

	ck_mark(c, block, 1, "tree node");
	c->tree_blocks++;
	return 0;
}

static int ck_free_run(void *arg, uint64_t start, uint64_t len)
{
	struct ck *c = arg;

	ck_mark(c, start, len, "free");
	c->free_blocks += len;
	return 0;
}

static struct ck_ino *ck_find(struct ck *c, uint64_t ino)
{
	size_t lo = 0, hi = c->nin;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (c->in[mid].ino == ino)
			return &c->in[mid];
		if (c->in[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int edge_cmp(const void *a, const void *b)
{
	const struct ck_edge *x = a, *y = b;

	return x->dir < y->dir ? -1 : x->dir > y->dir;
}

static void ck_dirent(struct ck *c, const struct mfs_key *k, const uint8_t *val,
		      size_t len)
{
	struct ck_ino *d = ck_find(c, k->objectid);
	size_t at = 0;

	if (!d || !S_ISDIR(d->mode)) {
		ck_err(c, "entries in %" PRIu64 ", not a directory", k->objectid);
		return;
	}
	while (at < len) {
		uint64_t ino;
		uint8_t type, nl;
		struct ck_ino *t;

		if (len - at < MFS_DIRENT_HDR) {
			ck_err(c, "dir %" PRIu64 ": truncated entry", k->objectid);
			return;
		}
		ino = mfs_get_le64(val + at);
		type = val[at + 8];
		nl = val[at + 9];
		if (nl == 0 || len - at - MFS_DIRENT_HDR < nl) {
			ck_err(c, "dir %" PRIu64 ": bad name length", k->objectid);
			return;
		}
		if (mfs_dir_hash(c->v, (const char *)val + at + MFS_DIRENT_HDR,
				 nl) != k->offset)
			ck_err(c, "dir %" PRIu64 ": entry %.*s under the wrong hash",
			       k->objectid, nl,
			       (const char *)val + at + MFS_DIRENT_HDR);
		t = ck_find(c, ino);
		if (!t) {
			ck_err(c, "dir %" PRIu64 ": entry %.*s -> missing inode %"
			       PRIu64, k->objectid, nl,
			       (const char *)val + at + MFS_DIRENT_HDR, ino);
		} else {
			if (type != (t->mode & S_IFMT) >> 12)
				ck_err(c, "dir %" PRIu64 ": entry %.*s: type %u, "
				       "inode mode %o", k->objectid, nl,
				       (const char *)val + at + MFS_DIRENT_HDR,
				       type, t->mode);
			t->nentries++;
			t->entry_dir = k->objectid;
			if (S_ISDIR(t->mode))
				d->nsubdirs++;
			if (c->nedges == c->capedges) {
				c->capedges = c->capedges ? 2 * c->capedges : 1024;
				c->edges = realloc(c->edges, c->capedges *
						   sizeof(*c->edges));
				assert_non_null(c->edges);
			}
			c->edges[c->nedges].dir = k->objectid;
			c->edges[c->nedges].ino = ino;
			c->nedges++;
		}
		at += MFS_DIRENT_HDR + nl;
	}
}

/* Walk the FS tree: every item must belong somewhere. */
static void ck_items(struct ck *c)
{
	struct mfs_key lo = mfs_key_make(0, 0, 0);
	struct mfs_key hi = mfs_key_make(UINT64_MAX, 255, UINT64_MAX);
	struct mfs_cursor cur;
	struct mfs_key k;
	const void *val;
	size_t len;
	int rc;

	/* Pass 1: inodes (keys are sorted, so c->in is sorted by ino). */
	mfs_cursor_init(&cur, c->v, MFS_TREE_FS, &lo, &hi);
	while ((rc = mfs_cursor_next(&cur, &k, &val, &len)) > 0) {
		const uint8_t *p = val;
		struct ck_ino *i;

		if (k.type != MFS_ITEM_INODE)
			continue;
		if (len != sizeof(struct mfs_disk_inode) || k.offset != 0) {
			ck_err(c, "inode %" PRIu64 ": bad item", k.objectid);
			continue;
		}
		if (c->nin == c->capin) {
			c->capin = c->capin ? 2 * c->capin : 1024;
			c->in = realloc(c->in, c->capin * sizeof(*c->in));
			assert_non_null(c->in);
		}
		i = &c->in[c->nin++];
		memset(i, 0, sizeof(*i));
		i->ino = k.objectid;
		i->mode = mfs_get_le32(p + offsetof(struct mfs_disk_inode, di_mode));
		i->nlink = mfs_get_le32(p + offsetof(struct mfs_disk_inode, di_nlink));
		i->size = mfs_get_le64(p + offsetof(struct mfs_disk_inode, di_size));
		i->blocks = mfs_get_le64(p + offsetof(struct mfs_disk_inode, di_blocks));
		i->parent = mfs_get_le64(p + offsetof(struct mfs_disk_inode, di_parent));
	}
	assert_int_equal(rc, 0);

	/* Pass 2: everything else. */
	mfs_cursor_init(&cur, c->v, MFS_TREE_FS, &lo, &hi);
	while ((rc = mfs_cursor_next(&cur, &k, &val, &len)) > 0) {
		struct ck_ino *i;

		if (k.type == MFS_ITEM_INODE)
			continue;
		if (k.type == MFS_ITEM_ORPHAN) {
			if (k.objectid != MFS_ORPHAN_OBJID || len != 0)
				ck_err(c, "bad orphan item");
			if (!ck_find(c, k.offset))
				ck_err(c, "orphan item for missing inode %" PRIu64,
				       k.offset);
			c->orphans++;
			continue;
		}
		i = ck_find(c, k.objectid);
		if (!i) {
			ck_err(c, "item type %u for missing inode %" PRIu64,
			       k.type, k.objectid);
			continue;
		}
		switch (k.type) {
		case MFS_ITEM_INLINE:
			if (k.offset != i->inline_next++ || len == 0 ||
			    len > MFS_MAX_VALUE)
				ck_err(c, "inode %" PRIu64 ": inline chunk %" PRIu64,
				       k.objectid, k.offset);
			i->inline_len += len;
			break;
		case MFS_ITEM_XATTR:
			break;
		case MFS_ITEM_DIRENT:
			ck_dirent(c, &k, val, len);
			break;
		case MFS_ITEM_EXTENT: {
			const uint8_t *p = val;
			uint64_t blk, cnt;

			if (!S_ISREG(i->mode) || len != sizeof(struct mfs_disk_extent)) {
				ck_err(c, "inode %" PRIu64 ": bad extent item",
				       k.objectid);
				break;
			}
			blk = mfs_get_le64(p);
			cnt = mfs_get_le64(p + 8);
			if (cnt == 0 || k.offset < i->ext_end)
				ck_err(c, "inode %" PRIu64 ": extent at %" PRIu64
				       " empty or overlapping", k.objectid, k.offset);
			i->ext_end = k.offset + cnt;
			i->ext_blocks += cnt;
			c->data_blocks += cnt;
			ck_mark(c, blk, cnt, "file data");
			break;
		}
		default:
			ck_err(c, "unknown item type %u", k.type);
		}
	}
	assert_int_equal(rc, 0);
}

static void ck_inodes(struct ck *c)
{
	size_t i, q = 0, qn = 0;
	uint64_t *queue;
	uint64_t maxino = 0;

	for (i = 0; i < c->nin; i++) {
		struct ck_ino *n = &c->in[i];

		if (n->ino > maxino)
			maxino = n->ino;
		if (S_ISDIR(n->mode)) {
			if (n->ino == MFS_ROOT) {
				if (n->nentries != 0 || n->parent != MFS_ROOT)
					ck_err(c, "root: %" PRIu64 " entries, parent %"
					       PRIu64, n->nentries, n->parent);
			} else if (n->nentries != 1 || n->parent != n->entry_dir) {
				ck_err(c, "dir %" PRIu64 ": %" PRIu64 " entries, "
				       "parent %" PRIu64 " but entry in %" PRIu64,
				       n->ino, n->nentries, n->parent, n->entry_dir);
			}
			if (n->nlink != 2 + n->nsubdirs)
				ck_err(c, "dir %" PRIu64 ": nlink %u, %" PRIu64
				       " subdirectories", n->ino, n->nlink,
				       n->nsubdirs);
		} else {
			if (n->nlink != n->nentries)
				ck_err(c, "inode %" PRIu64 " (mode %o): nlink %u, %"
				       PRIu64 " entries", n->ino, n->mode, n->nlink,
				       n->nentries);
		}
		if (S_ISLNK(n->mode)) {
			if (n->inline_len != n->size || n->size == 0 ||
			    n->size > MFS_SYMLINK_MAX)
				ck_err(c, "symlink %" PRIu64 ": size %" PRIu64
				       ", %" PRIu64 " bytes stored", n->ino,
				       n->size, n->inline_len);
		} else if (!S_ISREG(n->mode) && n->inline_next) {
			ck_err(c, "inode %" PRIu64 ": inline items", n->ino);
		}
		if (S_ISREG(n->mode) && n->blocks != n->ext_blocks * 8)
			ck_err(c, "file %" PRIu64 ": blocks %" PRIu64 ", extents "
			       "hold %" PRIu64 " blocks", n->ino, n->blocks,
			       n->ext_blocks);
	}
	/* Reachability from the root. */
	qsort(c->edges, c->nedges, sizeof(*c->edges), edge_cmp);
	queue = malloc((c->nin + 1) * sizeof(*queue));
	assert_non_null(queue);
	if (ck_find(c, MFS_ROOT)) {
		ck_find(c, MFS_ROOT)->reached = true;
		queue[qn++] = MFS_ROOT;
	} else {
		ck_err(c, "no root inode");
	}
	while (q < qn) {
		uint64_t dir = queue[q++];
		struct ck_edge key = { .dir = dir };
		struct ck_edge *e = bsearch(&key, c->edges, c->nedges,
					    sizeof(*e), edge_cmp);

		if (!e)
			continue;
		while (e > c->edges && e[-1].dir == dir)
			e--;
		for (; e < c->edges + c->nedges && e->dir == dir; e++) {
			struct ck_ino *t = ck_find(c, e->ino);

			if (t && !t->reached) {
				t->reached = true;
				if (S_ISDIR(t->mode))
					queue[qn++] = t->ino;
			}
		}
	}
	free(queue);
	for (i = 0; i < c->nin; i++)
		if (!c->in[i].reached)
			ck_err(c, "inode %" PRIu64 " (mode %o, nlink %u) is not "
			       "reachable from the root", c->in[i].ino,
			       c->in[i].mode, c->in[i].nlink);
	if (c->v->sb.inode_count != c->nin)
		ck_err(c, "superblock counts %" PRIu64 " inodes, tree has %zu",
		       c->v->sb.inode_count, c->nin);
	if (c->v->sb.next_ino <= maxino)
		ck_err(c, "next_ino %" PRIu64 " <= inode %" PRIu64,
		       c->v->sb.next_ino, maxino);
}

/* Everything check_image learnt, for tests that compare. */
struct ck_result {
	uint64_t tree_blocks, data_blocks, free_blocks, total, inodes;
};

/* Open the (closed) image read-only through the lower layers and check
 * all of it. */
static struct ck_result check_image(const char *img)
{
	struct ck c;
	struct ck_result r;
	uint64_t b;

	memset(&c, 0, sizeof(c));
	assert_int_equal(mfs_vol_open(img, MFS_VOL_RDONLY, &c.v), 0);
	c.nblocks = c.v->sb.block_count;
	c.used = calloc(c.nblocks, 1);
	assert_non_null(c.used);
	ck_mark(&c, 0, MFS_FIRST_DATA_BLOCK, "superblock");
	assert_int_equal(mfs_btree_check(c.v, MFS_TREE_FS, ck_tree_block, &c), 0);
	assert_int_equal(mfs_btree_check(c.v, MFS_TREE_FREE, ck_tree_block, &c), 0);
	assert_int_equal(mfs_alloc_walk_free(c.v->alloc, 0, c.nblocks,
					     ck_free_run, &c), 0);
	if (c.free_blocks != mfs_alloc_free_blocks(c.v->alloc))
		ck_err(&c, "free runs hold %" PRIu64 " blocks, allocator says %"
		       PRIu64, c.free_blocks, mfs_alloc_free_blocks(c.v->alloc));
	ck_items(&c);
	ck_inodes(&c);
	if (c.orphans)
		ck_err(&c, "%" PRIu64 " orphans left after a close", c.orphans);
	if (c.tree_blocks + c.data_blocks + mfs_alloc_free_blocks(c.v->alloc) +
	    MFS_FIRST_DATA_BLOCK != c.nblocks)
		ck_err(&c, "tree %" PRIu64 " + data %" PRIu64 " + free %" PRIu64
		       " + 2 != %" PRIu64 " blocks", c.tree_blocks,
		       c.data_blocks, mfs_alloc_free_blocks(c.v->alloc), c.nblocks);
	for (b = 0; b < c.nblocks; b++)
		if (!c.used[b]) {
			ck_err(&c, "block %" PRIu64 " is neither used nor free", b);
			break;
		}
	r.tree_blocks = c.tree_blocks;
	r.data_blocks = c.data_blocks;
	r.free_blocks = c.free_blocks;
	r.total = c.nblocks;
	r.inodes = c.nin;
	mfs_vol_close(c.v);
	free(c.used);
	free(c.in);
	free(c.edges);
	assert_int_equal(c.errors, 0);
	return r;
}

/* Close the filesystem cleanly, check the image, open it again. */
static struct ck_result reopen_check(struct fx *fx)
{
	struct ck_result r;

	assert_int_equal(mfs_fs_close(fx->fs), 0);
	fx->fs = NULL;
	r = check_image(fx->img);
	assert_int_equal(mfs_fs_open(fx->img, 0, &fx->fs), 0);
	return r;
}

/* A crash: close without committing, open again (orphans reclaimed). */
static void crash_reopen(struct fx *fx)
{
	mfs_fs_close_dirty(fx->fs);
	fx->fs = NULL;
	assert_int_equal(mfs_fs_open(fx->img, 0, &fx->fs), 0);
}

/* ------------------------------------------------------------------ */
/* Namespace dump: one sorted line per entry                           */
/* ------------------------------------------------------------------ */

struct dline {
	char *path;
	uint64_t ino;      /* to find hard links */
	char *text;
};

struct dump {
	struct dline *l;
	size_t n, cap;
};

static void dump_add(struct dump *d, const char *path, uint64_t ino,
		     const char *text)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 256;
		d->l = realloc(d->l, d->cap * sizeof(*d->l));
		assert_non_null(d->l);
	}
	d->l[d->n].path = strdup(path);
	d->l[d->n].ino = ino;
	d->l[d->n].text = strdup(text);
	d->n++;
}

static void dump_free(struct dump *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->l[i].path);
		free(d->l[i].text);
	}
	free(d->l);
	memset(d, 0, sizeof(*d));
}

static int dline_path_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dline *)a)->path,
		      ((const struct dline *)b)->path);
}

static int dline_ino_cmp(const void *a, const void *b)
{
	const struct dline *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return strcmp(x->path, y->path);
}

/* Sort by path and turn the result into text, naming for each hard link
 * the first path (in path order) of the same inode. */
static char *dump_text(struct dump *d)
{
	size_t i, cap = 1, at = 0;
	char **first = calloc(d->n + 1, sizeof(char *));
	char *out;

	assert_non_null(first);
	qsort(d->l, d->n, sizeof(*d->l), dline_ino_cmp);
	for (i = 0; i < d->n; i++) {
		size_t j = i;

		while (j > 0 && d->l[j - 1].ino == d->l[i].ino)
			j--;
		first[i] = d->l[j].path;
	}
	/* Attach "first" to each line, then sort by path. */
	for (i = 0; i < d->n; i++) {
		char *t;

		if (asprintf(&t, "%s%s%s", d->l[i].text,
			     strcmp(first[i], d->l[i].path) ? " =" : "",
			     strcmp(first[i], d->l[i].path) ? first[i] : "") < 0)
			fail();
		free(d->l[i].text);
		d->l[i].text = t;
	}
	qsort(d->l, d->n, sizeof(*d->l), dline_path_cmp);
	for (i = 0; i < d->n; i++)
		cap += strlen(d->l[i].path) + strlen(d->l[i].text) + 3;
	out = malloc(cap);
	assert_non_null(out);
	out[0] = 0;
	for (i = 0; i < d->n; i++)
		at += (size_t)sprintf(out + at, "%s %s\n", d->l[i].path,
				      d->l[i].text);
	free(first);
	return out;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n--) {
		h ^= *s++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV0 0xcbf29ce484222325ULL

static uint64_t mfs_file_hash(struct mfs_fs *fs, uint64_t ino, uint64_t size)
{
	static char buf[1 << 16];
	uint64_t h = FNV0, off;

	for (off = 0; off < size; off += sizeof(buf)) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);

		assert_int_equal(read_all(fs, ino, off, n, buf), n);
		h = fnv(h, buf, n);
	}
	return h;
}

struct dump_opts {
	bool exact;     /* inode numbers, times, generations (mfs vs mfs) */
	bool data;      /* hash file contents */
	bool xattr;     /* extended attributes (names, value hashes) */
	bool plus;      /* list with readdirplus */
	size_t chunk;   /* readdir entries per call */
};

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort a listxattr buffer (NUL-terminated names) in place. */
static void sort_xlist(char *buf, size_t len)
{
	char *names[256], *copy = malloc(len + 1);
	size_t n = 0, at, out = 0, i;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	for (at = 0; at < len && n < 256; at += strlen(copy + at) + 1)
		names[n++] = copy + at;
	qsort(names, n, sizeof(names[0]), str_cmp);
	for (i = 0; i < n; i++) {
		size_t l = strlen(names[i]) + 1;

		memcpy(buf + out, names[i], l);
		out += l;
	}
	free(copy);
}

/* " x:name=hash..." for the sorted names in list (len bytes); get(name)
 * fills value/vlen. */
static void xattr_text(char *t, size_t tn, char *list, size_t len,
		       int (*get)(void *ctx, const char *name, char *val,
				  size_t *vlen), void *ctx)
{
	static char val[MFS_XATTR_SIZE_MAX];
	size_t at, n = 0;

	t[0] = 0;
	sort_xlist(list, len);
	for (at = 0; at < len; at += strlen(list + at) + 1) {
		size_t vlen = 0;

		assert_int_equal(get(ctx, list + at, val, &vlen), 0);
		n += (size_t)snprintf(t + n, tn - n, " x:%s=%zu/%016" PRIx64,
				      list + at, vlen, fnv(FNV0, val, vlen));
	}
}

struct mx_ctx {
	struct mfs_fs *fs;
	uint64_t ino;
};

static int mx_get(void *ctx, const char *name, char *val, size_t *vlen)
{
	struct mx_ctx *c = ctx;

	return mfs_getxattr(c->fs, c->ino, name, val, MFS_XATTR_SIZE_MAX, vlen);
}

static void mfs_xattr_text(struct mfs_fs *fs, uint64_t ino, char *t, size_t tn)
{
	static char list[1 << 16];
	struct mx_ctx c = { fs, ino };
	size_t len = 0;

	assert_int_equal(mfs_listxattr(fs, ino, list, sizeof(list), &len), 0);
	xattr_text(t, tn, list, len, mx_get, &c);
}

static void attr_text(char *t, size_t tn, const struct mfs_attr *a,
		      const char *target, const struct dump_opts *o,
		      uint64_t datahash, const char *xattrs)
{
	int n = snprintf(t, tn, "mode=%o nlink=%u uid=%u gid=%u", a->mode,
			 a->nlink, a->uid, a->gid);

	if (!S_ISDIR(a->mode))
		n += snprintf(t + n, tn - (size_t)n, " size=%" PRIu64, a->size);
	if (S_ISCHR(a->mode) || S_ISBLK(a->mode))
		n += snprintf(t + n, tn - (size_t)n, " rdev=%" PRIx64, a->rdev);
	if (target)
		n += snprintf(t + n, tn - (size_t)n, " -> %s", target);
	if (o->data && S_ISREG(a->mode))
		n += snprintf(t + n, tn - (size_t)n, " data=%016" PRIx64, datahash);
	if (o->xattr && xattrs)
		n += snprintf(t + n, tn - (size_t)n, "%s", xattrs);
	if (o->exact)
		snprintf(t + n, tn - (size_t)n,
			 " ino=%" PRIu64 " gen=%" PRIu64 " blocks=%" PRIu64
			 " size=%" PRIu64 " m=%lld.%09ld c=%lld.%09ld a=%lld.%09ld"
			 " b=%lld.%09ld",
			 a->ino, a->generation, a->blocks, a->size,
			 (long long)a->mtime.tv_sec, a->mtime.tv_nsec,
			 (long long)a->ctime.tv_sec, a->ctime.tv_nsec,
			 (long long)a->atime.tv_sec, a->atime.tv_nsec,
			 (long long)a->btime.tv_sec, a->btime.tv_nsec);
}

static void mfs_dump_dir(struct mfs_fs *fs, uint64_t dir, const char *prefix,
			 const struct dump_opts *o, struct dump *d)
{
	struct ents l = { 0 };
	size_t i;

	list_dir(fs, dir, o->chunk, o->plus, &l);
	assert_true(l.n >= 2);
	assert_string_equal(l.e[0].name, ".");
	assert_string_equal(l.e[1].name, "..");
	assert_int_equal(l.e[0].ino, dir);
	for (i = 2; i < l.n; i++) {
		char path[4096], text[8192], tbuf[MFS_SYMLINK_MAX + 1], xt[2048];
		struct mfs_attr a;
		uint64_t h = 0;
		const char *target = NULL;

		xt[0] = 0;
		snprintf(path, sizeof(path), "%s%s", prefix, l.e[i].name);
		assert_int_equal(lookup_rc(fs, dir, l.e[i].name, &a), 0);
		assert_int_equal(a.ino, l.e[i].ino);
		assert_int_equal(a.mode & S_IFMT, l.e[i].mode & S_IFMT);
		if (o->plus) {
			/* atime may have moved since: reading the data of
			 * an earlier hard link of the same file */
			struct mfs_attr b = l.e[i].attr;

			b.atime = a.atime;
			assert_memory_equal(&a, &b, sizeof(a));
		}
		if (S_ISLNK(a.mode)) {
			size_t len = 0;

			assert_int_equal(mfs_readlink(fs, a.ino, tbuf,
						      sizeof(tbuf), &len), 0);
			assert_int_equal(len, a.size);
			tbuf[len] = 0;
			target = tbuf;
		}
		if (o->data && S_ISREG(a.mode))
			h = mfs_file_hash(fs, a.ino, a.size);
		if (o->xattr)
			mfs_xattr_text(fs, a.ino, xt, sizeof(xt));
		attr_text(text, sizeof(text), &a, target, o, h, xt);
		dump_add(d, path, a.ino, text);
		if (S_ISDIR(a.mode)) {
			char sub[4097 + 1];

			snprintf(sub, sizeof(sub), "%s/", path);
			mfs_dump_dir(fs, a.ino, sub, o, d);
		}
	}
	ents_free(&l);
}

/* The whole namespace below the root as text. */
static char *mfs_dump(struct mfs_fs *fs, const struct dump_opts *o)
{
	struct dump d = { 0 };
	struct mfs_attr root = getattr_ok(fs, MFS_ROOT);
	char text[8192], xt[2048], *s;

	xt[0] = 0;
	if (o->xattr)
		mfs_xattr_text(fs, MFS_ROOT, xt, sizeof(xt));
	attr_text(text, sizeof(text), &root, NULL, o, 0, xt);
	dump_add(&d, "/", MFS_ROOT, text);
	mfs_dump_dir(fs, MFS_ROOT, "", o, &d);
	s = dump_text(&d);
	dump_free(&d);
	return s;
}

/* Print the first lines where two dumps differ. */
static void print_dump_diff(const char *what_a, const char *a,
			    const char *what_b, const char *b)
{
	const char *pa = a, *pb = b;
	int shown = 0;

	while ((*pa || *pb) && shown < 12) {
		const char *ea = strchr(pa, '\n'), *eb = strchr(pb, '\n');
		size_t la = ea ? (size_t)(ea - pa) : strlen(pa);
		size_t lb = eb ? (size_t)(eb - pb) : strlen(pb);

		if (la != lb || memcmp(pa, pb, la)) {
			fprintf(stderr, "  %-6s %.*s\n  %-6s %.*s\n", what_a,
				(int)la, pa, what_b, (int)lb, pb);
			shown++;
		}
		pa += la + (ea ? 1 : 0);
		pb += lb + (eb ? 1 : 0);
	}
}

/* ------------------------------------------------------------------ */
/* 1. Operations one by one                                            */
/* ------------------------------------------------------------------ */

static void test_root(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	struct mfs_attr a = getattr_ok(fs, MFS_ROOT), l, x;
	struct mfs_statfs st;
	struct ents e = { 0 };

	assert_int_equal(a.mode, S_IFDIR | 0755);
	assert_int_equal(a.nlink, 3);
	assert_int_equal(a.uid, 0);
	assert_int_equal(a.gid, 0);
	assert_int_equal(lookup_rc(fs, MFS_ROOT, "lost+found", &l), 0);
	assert_int_equal(l.mode, S_IFDIR | 0700);
	assert_int_equal(l.nlink, 2);
	assert_int_equal(lookup_rc(fs, MFS_ROOT, ".", &x), 0);
	assert_int_equal(x.ino, MFS_ROOT);
	assert_int_equal(lookup_rc(fs, MFS_ROOT, "..", &x), 0);
	assert_int_equal(x.ino, MFS_ROOT);
	assert_int_equal(lookup_rc(fs, l.ino, "..", &x), 0);
	assert_int_equal(x.ino, MFS_ROOT);
	assert_int_equal(lookup_rc(fs, l.ino, ".", &x), 0);
	assert_int_equal(x.ino, l.ino);

	assert_int_equal(mfs_statfs(fs, &st), 0);
	assert_int_equal(st.bsize, 4096);
	assert_int_equal(st.namemax, 255);
	assert_int_equal(st.blocks, IMG_SIZE / 4096);
	assert_true(st.bfree > st.blocks - 64 && st.bfree < st.blocks);
	assert_true(st.bavail <= st.bfree);
	assert_true(st.files >= st.ffree + 2);

	assert_int_equal(mfs_getattr(fs, 0, &x), -ENOENT);
	assert_int_equal(mfs_getattr(fs, 999999, &x), -ENOENT);
	assert_int_equal(mfs_opendir(fs, MFS_ROOT), 0);
	assert_int_equal(mfs_opendir(fs, 999999), -ENOENT);
	assert_false(mfs_fs_readonly(fs));
	assert_int_equal(mfs_fs_error(fs), 0);

	list_dir(fs, MFS_ROOT, 0, false, &e);
	assert_int_equal(e.n, 3);
	assert_string_equal(e.e[0].name, ".");
	assert_int_equal(e.e[0].off, 1);
	assert_int_equal(e.e[0].ino, MFS_ROOT);
	assert_string_equal(e.e[1].name, "..");
	assert_int_equal(e.e[1].off, 2);
	assert_int_equal(e.e[1].ino, MFS_ROOT);
	assert_string_equal(e.e[2].name, "lost+found");
	assert_int_equal(e.e[2].ino, l.ino);
	assert_int_equal(e.e[2].mode, S_IFDIR);
	assert_true(e.e[2].off >= 3 && e.e[2].off < (1ULL << 63));
	ents_free(&e);
	reopen_check(fx);
}

static void test_mknod(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	const struct mfs_cred cr = { 1234, 5678, true, true };
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755), f;
	static const struct {
		const char *name;
		uint32_t mode;
		uint64_t rdev, want_rdev;
		uint32_t want_mode;
	} c[] = {
		{ "plain", 0644, 0, 0, S_IFREG | 0644 },
		{ "reg", S_IFREG | 0600, 5, 0, S_IFREG | 0600 },
		{ "fifo", S_IFIFO | 0640, 7, 0, S_IFIFO | 0640 },
		{ "sock", S_IFSOCK | 0755, 0, 0, S_IFSOCK | 0755 },
		{ "chr", S_IFCHR | 0600, 0x103, 0x103, S_IFCHR | 0600 },
		{ "blk", S_IFBLK | 0660, 0x709, 0x709, S_IFBLK | 0660 },
		{ "suid", S_IFREG | 06755, 0, 0, S_IFREG | 06755 },
	};
	struct mfs_attr a, b, p0, p1;
	char *n255 = name_of_len(255, 'n'), *n256 = name_of_len(256, 'n');
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		p0 = getattr_ok(fs, d);
		tick();
		assert_int_equal(mfs_mknod(fs, &cr, d, c[i].name, c[i].mode,
					   c[i].rdev, &a), 0);
		assert_int_equal(a.mode, c[i].want_mode);
		assert_int_equal(a.rdev, c[i].want_rdev);
		assert_int_equal(a.nlink, 1);
		assert_int_equal(a.uid, 1234);
		assert_int_equal(a.gid, 5678);
		assert_int_equal(a.size, 0);
		assert_int_equal(a.blocks, 0);
		assert_ts_same(a.mtime, a.ctime);
		assert_ts_same(a.atime, a.ctime);
		assert_ts_same(a.btime, a.ctime);
		assert_ts_newer(a.ctime, p0.ctime);
		b = getattr_ok(fs, a.ino);
		assert_memory_equal(&a, &b, sizeof(a));
		assert_int_equal(lookup_ok(fs, d, c[i].name), a.ino);
		mfs_forget(fs, a.ino, 1);
		p1 = getattr_ok(fs, d);
		assert_int_equal(p1.nlink, 2);
		assert_ts_same(p1.mtime, a.ctime);
		assert_ts_same(p1.ctime, a.ctime);
	}
	/* Errors change nothing. */
	p0 = getattr_ok(fs, d);
	tick();
	assert_int_equal(mfs_mknod(fs, &cr, d, "reg", S_IFREG | 0644, 0, &a),
			 -EEXIST);
	assert_int_equal(mfs_mknod(fs, &cr, d, "x", S_IFLNK | 0644, 0, &a),
			 -EINVAL);
	assert_int_equal(mfs_mknod(fs, &cr, d, "x", 0030644, 0, &a), -EINVAL);
	assert_int_equal(mfs_mknod(fs, &cr, d, ".", S_IFREG | 0644, 0, &a),
			 -EEXIST);
	assert_int_equal(mfs_mknod(fs, &cr, d, "..", S_IFREG | 0644, 0, &a),
			 -EEXIST);
	assert_int_equal(mfs_mknod(fs, &cr, d, n256, S_IFREG | 0644, 0, &a),
			 -ENAMETOOLONG);
	f = lookup_ok(fs, d, "reg");
	assert_int_equal(mfs_mknod(fs, &cr, f, "x", S_IFREG | 0644, 0, &a),
			 -ENOTDIR);
	assert_int_equal(mfs_mknod(fs, &cr, 424242, "x", S_IFREG | 0644, 0, &a),
			 -ENOENT);
	p1 = getattr_ok(fs, d);
	assert_memory_equal(&p0, &p1, sizeof(p0));
	assert_int_equal(lookup_rc(fs, d, "x", NULL), -ENOENT);
	assert_int_equal(mfs_mknod(fs, &cr, d, n255, S_IFREG | 0644, 0, &a), 0);
	mfs_forget(fs, a.ino, 1);
	assert_int_equal(lookup_ok(fs, d, n255), a.ino);
	free(n255);
	free(n256);
	reopen_check(fx);
}

/* mknod(2) of a directory is EPERM on Linux (may_mknod), not EINVAL. */
static void test_mknod_dir_eperm(void **state)
{
	struct fx *fx = *state;
	struct mfs_attr a = { 0 };

	assert_int_equal(mfs_mknod(fx->fs, &ROOT, MFS_ROOT, "x", S_IFDIR | 0755,
				   0, &a), -EPERM);
}

static void test_mkdir(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	const struct mfs_cred cr = { 77, 88, true, true };
	struct mfs_attr a, p0, p1, x;
	struct ents e = { 0 };
	uint64_t d, f;
	char *n255 = name_of_len(255, 'd'), *n256 = name_of_len(256, 'd');

	p0 = getattr_ok(fs, MFS_ROOT);
	tick();
	assert_int_equal(mfs_mkdir(fs, &cr, MFS_ROOT, "d", 0750, &a), 0);
	mfs_forget(fs, a.ino, 1);
	d = a.ino;
	assert_int_equal(a.mode, S_IFDIR | 0750);
	assert_int_equal(a.nlink, 2);
	assert_int_equal(a.uid, 77);
	assert_int_equal(a.gid, 88);
	assert_ts_newer(a.ctime, p0.ctime);
	p1 = getattr_ok(fs, MFS_ROOT);
	assert_int_equal(p1.nlink, p0.nlink + 1);
	assert_ts_same(p1.mtime, a.mtime);
	assert_ts_same(p1.ctime, a.ctime);
	assert_int_equal(lookup_rc(fs, d, "..", &x), 0);
	assert_int_equal(x.ino, MFS_ROOT);
	assert_int_equal(lookup_rc(fs, d, ".", &x), 0);
	assert_int_equal(x.ino, d);
	list_dir(fs, d, 0, false, &e);
	assert_int_equal(e.n, 2);
	assert_int_equal(e.e[1].ino, MFS_ROOT);
	ents_free(&e);

	/* Type bits in mode are ignored; the result is a directory. */
	assert_int_equal(mfs_mkdir(fs, &cr, d, "t", S_IFREG | 0700, &a), 0);
	mfs_forget(fs, a.ino, 1);
	assert_int_equal(a.mode, S_IFDIR | 0700);
	assert_int_equal(getattr_ok(fs, d).nlink, 3);

	f = mkfile(fs, d, "f", 0644);
	symlink_ok(fs, d, "s", "target");
	p0 = getattr_ok(fs, d);
	tick();
	assert_int_equal(mfs_mkdir(fs, &cr, d, "f", 0755, &a), -EEXIST);
	assert_int_equal(mfs_mkdir(fs, &cr, d, "s", 0755, &a), -EEXIST);
	assert_int_equal(mfs_mkdir(fs, &cr, d, "t", 0755, &a), -EEXIST);
	assert_int_equal(mfs_mkdir(fs, &cr, d, ".", 0755, &a), -EEXIST);
	assert_int_equal(mfs_mkdir(fs, &cr, d, "..", 0755, &a), -EEXIST);
	assert_int_equal(mfs_mkdir(fs, &cr, d, n256, 0755, &a), -ENAMETOOLONG);
	assert_int_equal(mfs_mkdir(fs, &cr, f, "x", 0755, &a), -ENOTDIR);
	assert_int_equal(mfs_mkdir(fs, &cr, 313131, "x", 0755, &a), -ENOENT);
	p1 = getattr_ok(fs, d);
	assert_memory_equal(&p0, &p1, sizeof(p0));
	assert_int_equal(mfs_mkdir(fs, &cr, d, n255, 0755, &a), 0);
	mfs_forget(fs, a.ino, 1);
	assert_int_equal(getattr_ok(fs, d).nlink, 4);

	/* Inside a removed directory (still referenced): ENOENT. */
	assert_int_equal(mfs_lookup(fs, d, "t", &x), 0);
	assert_int_equal(mfs_rmdir(fs, d, "t"), 0);
	assert_int_equal(getattr_ok(fs, x.ino).nlink, 0);
	assert_int_equal(mfs_mkdir(fs, &cr, x.ino, "y", 0755, &a), -ENOENT);
	assert_int_equal(mfs_mknod(fs, &cr, x.ino, "y", 0644, 0, &a), -ENOENT);
	assert_int_equal(mfs_symlink(fs, &cr, x.ino, "y", "t", &a), -ENOENT);
	assert_int_equal(mfs_create(fs, &cr, x.ino, "y", 0644, O_RDWR, &a),
			 -ENOENT);
	assert_int_equal(mfs_lookup(fs, x.ino, "y", &a), -ENOENT);
	assert_int_equal(mfs_link(fs, f, x.ino, "y", &a), -ENOENT);
	mfs_forget(fs, x.ino, 1);
	assert_int_equal(mfs_getattr(fs, x.ino, &a), -ENOENT);
	free(n255);
	free(n256);
	reopen_check(fx);
}

/* mkdir(2) keeps only the permission bits and the sticky bit of its mode
 * (vfs_mkdir: S_IRWXUGO | S_ISVTX); setgid comes only from a setgid
 * parent. ext4: mkdir("d", 07777) gives 01777. */
static void test_mkdir_mode_bits(void **state)
{
	struct fx *fx = *state;
	struct mfs_attr a = { 0 };

	assert_int_equal(mfs_mkdir(fx->fs, &ROOT, MFS_ROOT, "d", 07777, &a), 0);
	mfs_forget(fx->fs, a.ino, 1);
	assert_int_equal(a.mode, S_IFDIR | 01777);
}

static void test_setgid_dir(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	const struct mfs_cred user = { 1000, 1000, false, false };
	struct mfs_attr in = { 0 }, a;
	uint64_t sg, sub;

	sg = mkdir_ok(fs, MFS_ROOT, "sg", 0775);
	in.gid = 4242;
	assert_int_equal(mfs_setattr(fs, &ROOT, sg, &in, MFS_SET_GID, &a), 0);
	in.mode = 02775;
	assert_int_equal(mfs_setattr(fs, &ROOT, sg, &in, MFS_SET_MODE, &a), 0);
	assert_int_equal(a.mode, S_IFDIR | 02775);
	assert_int_equal(a.gid, 4242);

	assert_int_equal(mfs_mkdir(fs, &user, sg, "sub", 0755, &a), 0);
	mfs_forget(fs, a.ino, 1);
	sub = a.ino;
	assert_int_equal(a.uid, 1000);
	assert_int_equal(a.gid, 4242);
	assert_int_equal(a.mode, S_IFDIR | 02755);
	assert_int_equal(mfs_mkdir(fs, &user, sub, "subsub", 0700, &a), 0);
	mfs_forget(fs, a.ino, 1);
	assert_int_equal(a.gid, 4242);
	assert_int_equal(a.mode, S_IFDIR | 02700);
	assert_int_equal(mfs_mknod(fs, &user, sg, "f", S_IFREG | 0644, 0, &a), 0);
	mfs_forget(fs, a.ino, 1);
	assert_int_equal(a.gid, 4242);
	assert_int_equal(a.mode, S_IFREG | 0644);
	assert_int_equal(mfs_create(fs, &user, sub, "c", 0600, O_RDWR, &a), 0);
	mfs_release(fs, a.ino);
	mfs_forget(fs, a.ino, 1);
	assert_int_equal(a.gid, 4242);
	assert_int_equal(a.mode, S_IFREG | 0600);
	assert_int_equal(mfs_symlink(fs, &user, sg, "l", "f", &a), 0);
	mfs_forget(fs, a.ino, 1);
	assert_int_equal(a.gid, 4242);
	assert_int_equal(mfs_mknod(fs, &user, sg, "p", S_IFIFO | 0600, 0, &a), 0);
	mfs_forget(fs, a.ino, 1);
	assert_int_equal(a.gid, 4242);
	/* Outside: the creator's group. */
	assert_int_equal(mfs_mkdir(fs, &user, MFS_ROOT, "plain", 0755, &a), 0);
	mfs_forget(fs, a.ino, 1);
	assert_int_equal(a.gid, 1000);
	assert_int_equal(a.mode, S_IFDIR | 0755);
	reopen_check(fx);
}

static void test_symlink(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	static const size_t lens[] = { 1, 2, 100, 983, 984, 985, 1968, 1969,
				       2952, 4000, 4094, 4095 };
	char *t = malloc(MFS_SYMLINK_MAX + 2), buf[MFS_SYMLINK_MAX + 1];
	struct mfs_attr a, p0, p1;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755), f;
	size_t i, j, len;

	assert_non_null(t);
	for (i = 0; i < MFS_SYMLINK_MAX + 1; i++)
		t[i] = (char)('a' + (i * 7 + i / 26) % 26);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char name[32], save = t[lens[i]];

		snprintf(name, sizeof(name), "l%zu", lens[i]);
		t[lens[i]] = 0;
		p0 = getattr_ok(fs, d);
		tick();
		assert_int_equal(mfs_symlink(fs, &ROOT, d, name, t, &a), 0);
		mfs_forget(fs, a.ino, 1);
		assert_int_equal(a.mode, S_IFLNK | 0777);
		assert_int_equal(a.size, lens[i]);
		assert_int_equal(a.nlink, 1);
		p1 = getattr_ok(fs, d);
		assert_ts_newer(p1.mtime, p0.mtime);
		assert_ts_same(p1.ctime, a.ctime);
		memset(buf, 0, sizeof(buf));
		assert_int_equal(mfs_readlink(fs, a.ino, buf, sizeof(buf), &len), 0);
		assert_int_equal(len, lens[i]);
		assert_memory_equal(buf, t, len);
		/* Into smaller buffers: a prefix, the full length reported,
		 * nothing written past the buffer. */
		for (j = 0; j < 3; j++) {
			size_t sz = j == 0 ? 0 : j == 1 ? 10 : lens[i] / 2 + 1;
			size_t got = sz < lens[i] ? sz : lens[i];

			memset(buf, '#', sizeof(buf));
			assert_int_equal(mfs_readlink(fs, a.ino, buf, sz, &len), 0);
			assert_int_equal(len, lens[i]);
			assert_memory_equal(buf, t, got);
			assert_int_equal(buf[got], '#');
		}
		t[lens[i]] = save;
	}
	t[MFS_SYMLINK_MAX + 1] = 0;
	p0 = getattr_ok(fs, d);
	assert_int_equal(mfs_symlink(fs, &ROOT, d, "long", t, &a), -ENAMETOOLONG);
	assert_int_equal(mfs_symlink(fs, &ROOT, d, "empty", "", &a), -ENOENT);
	assert_int_equal(mfs_symlink(fs, &ROOT, d, "l1", "x", &a), -EEXIST);
	assert_int_equal(mfs_symlink(fs, &ROOT, d, ".", "x", &a), -EEXIST);
	p1 = getattr_ok(fs, d);
	assert_memory_equal(&p0, &p1, sizeof(p0));
	assert_int_equal(lookup_rc(fs, d, "long", NULL), -ENOENT);
	f = mkfile(fs, d, "f", 0644);
	assert_int_equal(mfs_symlink(fs, &ROOT, f, "x", "y", &a), -ENOTDIR);
	assert_int_equal(mfs_readlink(fs, f, buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(mfs_readlink(fs, d, buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(mfs_readlink(fs, 777777, buf, sizeof(buf), &len), -ENOENT);
	free(t);
	reopen_check(fx);
	/* Still there after the reopen. */
	fs = fx->fs;
	d = lookup_ok(fs, MFS_ROOT, "d");
	assert_int_equal(lookup_rc(fs, d, "l4095", &a), 0);
	assert_int_equal(mfs_readlink(fs, a.ino, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 4095);
}

static void test_link(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d1 = mkdir_ok(fs, MFS_ROOT, "d1", 0755);
	uint64_t d2 = mkdir_ok(fs, MFS_ROOT, "d2", 0755);
	uint64_t f = mkfile(fs, d1, "f", 0644), s, p, sub;
	struct mfs_attr a, f0, p1a, p1b, p2a, p2b;
	char *n255 = name_of_len(255, 'k'), *n256 = name_of_len(256, 'k');

	f0 = getattr_ok(fs, f);
	p1a = getattr_ok(fs, d1);
	p2a = getattr_ok(fs, d2);
	tick();
	assert_int_equal(mfs_link(fs, f, d2, "g", &a), 0);
	mfs_forget(fs, f, 1);
	assert_int_equal(a.ino, f);
	assert_int_equal(a.nlink, 2);
	assert_ts_newer(a.ctime, f0.ctime);
	assert_ts_same(a.mtime, f0.mtime);
	p1b = getattr_ok(fs, d1);
	p2b = getattr_ok(fs, d2);
	assert_memory_equal(&p1a, &p1b, sizeof(p1a));
	assert_ts_same(p2b.mtime, a.ctime);
	assert_ts_same(p2b.ctime, a.ctime);
	assert_int_equal(p2b.nlink, 2);
	assert_int_equal(lookup_ok(fs, d2, "g"), f);
	link_ok(fs, f, d1, "f2");
	assert_int_equal(getattr_ok(fs, f).nlink, 3);
	link_ok(fs, f, d1, n255);
	assert_int_equal(getattr_ok(fs, f).nlink, 4);

	/* Symlinks and special files link too. */
	s = symlink_ok(fs, d1, "s", "f");
	link_ok(fs, s, d2, "s2");
	assert_int_equal(getattr_ok(fs, s).nlink, 2);
	assert_int_equal(mfs_mknod(fs, &ROOT, d1, "p", S_IFIFO | 0644, 0, &a), 0);
	mfs_forget(fs, a.ino, 1);
	p = a.ino;
	link_ok(fs, p, d2, "p2");
	assert_int_equal(getattr_ok(fs, p).nlink, 2);

	sub = mkdir_ok(fs, d1, "sub", 0755);
	f0 = getattr_ok(fs, f);
	p2a = getattr_ok(fs, d2);
	tick();
	assert_int_equal(mfs_link(fs, f, d2, "g", &a), -EEXIST);
	assert_int_equal(mfs_link(fs, f, d2, ".", &a), -EEXIST);
	assert_int_equal(mfs_link(fs, f, d2, "..", &a), -EEXIST);
	assert_int_equal(mfs_link(fs, sub, d2, "subl", &a), -EPERM);
	assert_int_equal(mfs_link(fs, f, d2, n256, &a), -ENAMETOOLONG);
	assert_int_equal(mfs_link(fs, f, f, "x", &a), -ENOTDIR);
	assert_int_equal(mfs_link(fs, f, 919191, "x", &a), -ENOENT);
	assert_int_equal(mfs_link(fs, 919191, d2, "x", &a), -ENOENT);
	assert_attr_is(fs, f, &f0);
	p2b = getattr_ok(fs, d2);
	assert_memory_equal(&p2a, &p2b, sizeof(p2a));
	assert_int_equal(getattr_ok(fs, sub).nlink, 2);

	/* An unlinked file that is still open cannot get a name again. */
	assert_int_equal(mfs_create(fs, &ROOT, d1, "tmp", 0644, O_RDWR, &a), 0);
	assert_int_equal(mfs_unlink(fs, d1, "tmp"), 0);
	assert_int_equal(mfs_link(fs, a.ino, d2, "back", &a), -ENOENT);
	assert_int_equal(lookup_rc(fs, d2, "back", NULL), -ENOENT);
	mfs_release(fs, a.ino);
	mfs_forget(fs, a.ino, 1);
	free(n255);
	free(n256);
	reopen_check(fx);
}

/* linkat(2) looks the new name up first: an existing name is EEXIST even
 * when the source is a directory (ext4; the EPERM check comes later in
 * vfs_link). */
static void test_link_dir_onto_existing(void **state)
{
	struct fx *fx = *state;
	uint64_t d = mkdir_ok(fx->fs, MFS_ROOT, "d", 0755);
	struct mfs_attr a = { 0 };

	mkfile(fx->fs, MFS_ROOT, "f", 0644);
	assert_int_equal(mfs_link(fx->fs, d, MFS_ROOT, "f", &a), -EEXIST);
	assert_int_equal(mfs_link(fx->fs, d, MFS_ROOT, "d", &a), -EEXIST);
}

static void test_link_max(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755);
	uint64_t f = mkfile(fs, d, "f", 0644);
	struct mfs_attr a = { 0 };
	char name[32];
	unsigned i;

	for (i = 1; i < MFS_LINK_MAX; i++) {
		snprintf(name, sizeof(name), "l%u", i);
		assert_int_equal(mfs_link(fs, f, d, name, &a), 0);
		mfs_forget(fs, f, 1);
	}
	assert_int_equal(a.nlink, MFS_LINK_MAX);
	assert_int_equal(mfs_link(fs, f, d, "one-more", &a), -EMLINK);
	assert_int_equal(lookup_rc(fs, d, "one-more", NULL), -ENOENT);
	assert_int_equal(getattr_ok(fs, f).nlink, MFS_LINK_MAX);
	reopen_check(fx);
	fs = fx->fs;
	for (i = 1; i < MFS_LINK_MAX; i += 2) {
		snprintf(name, sizeof(name), "l%u", i);
		assert_int_equal(mfs_unlink(fs, d, name), 0);
	}
	assert_int_equal(getattr_ok(fs, f).nlink, MFS_LINK_MAX - MFS_LINK_MAX / 2);
	assert_int_equal(mfs_link(fs, f, d, "one-more", &a), 0);
	mfs_forget(fs, f, 1);
	reopen_check(fx);
}

static void test_unlink(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755), sub;
	uint64_t f = mkfile(fs, d, "f", 0644), s, t;
	struct mfs_attr a, p0, p1, f0;
	char *n256 = name_of_len(256, 'u');

	link_ok(fs, f, MFS_ROOT, "g");
	p0 = getattr_ok(fs, d);
	f0 = getattr_ok(fs, f);
	tick();
	assert_int_equal(mfs_unlink(fs, d, "f"), 0);
	p1 = getattr_ok(fs, d);
	a = getattr_ok(fs, f);
	assert_int_equal(a.nlink, 1);
	assert_ts_newer(a.ctime, f0.ctime);
	assert_ts_same(a.mtime, f0.mtime);
	assert_ts_newer(p1.mtime, p0.mtime);
	assert_ts_same(p1.ctime, p1.mtime);
	assert_int_equal(p1.nlink, 2);
	assert_int_equal(lookup_rc(fs, d, "f", NULL), -ENOENT);
	/* The last link of an unreferenced inode: gone at once. */
	assert_int_equal(mfs_unlink(fs, MFS_ROOT, "g"), 0);
	assert_int_equal(mfs_getattr(fs, f, &a), -ENOENT);

	/* A symlink: the link goes, its target stays. */
	t = mkfile(fs, d, "t", 0644);
	s = symlink_ok(fs, d, "s", "t");
	assert_int_equal(mfs_unlink(fs, d, "s"), 0);
	assert_int_equal(mfs_getattr(fs, s, &a), -ENOENT);
	assert_int_equal(getattr_ok(fs, t).nlink, 1);

	sub = mkdir_ok(fs, d, "sub", 0755);
	p0 = getattr_ok(fs, d);
	tick();
	assert_int_equal(mfs_unlink(fs, d, "sub"), -EISDIR);
	assert_int_equal(mfs_unlink(fs, d, "nope"), -ENOENT);
	assert_int_equal(mfs_unlink(fs, d, "."), -EISDIR);
	assert_int_equal(mfs_unlink(fs, d, ".."), -EISDIR);
	assert_int_equal(mfs_unlink(fs, d, n256), -ENAMETOOLONG);
	assert_int_equal(mfs_unlink(fs, t, "x"), -ENOTDIR);
	assert_int_equal(mfs_unlink(fs, 555555, "x"), -ENOENT);
	p1 = getattr_ok(fs, d);
	assert_memory_equal(&p0, &p1, sizeof(p0));
	assert_int_equal(getattr_ok(fs, sub).nlink, 2);
	free(n256);
	reopen_check(fx);
}

static void test_rmdir(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755), e, f;
	struct mfs_attr a, x, p0, p1;
	char *n256 = name_of_len(256, 'r');

	e = mkdir_ok(fs, d, "e", 0755);
	mkdir_ok(fs, d, "empty", 0755);
	f = mkfile(fs, e, "f", 0644);
	p0 = getattr_ok(fs, d);
	assert_int_equal(p0.nlink, 4);
	tick();
	assert_int_equal(mfs_rmdir(fs, d, "e"), -ENOTEMPTY);
	assert_int_equal(mfs_rmdir(fs, e, "f"), -ENOTDIR);
	assert_int_equal(mfs_rmdir(fs, d, "nope"), -ENOENT);
	assert_int_equal(mfs_rmdir(fs, d, "."), -EINVAL);
	assert_int_equal(mfs_rmdir(fs, d, ".."), -ENOTEMPTY);
	assert_int_equal(mfs_rmdir(fs, d, n256), -ENAMETOOLONG);
	assert_int_equal(mfs_rmdir(fs, f, "x"), -ENOTDIR);
	p1 = getattr_ok(fs, d);
	assert_memory_equal(&p0, &p1, sizeof(p0));

	assert_int_equal(mfs_rmdir(fs, d, "empty"), 0);
	p1 = getattr_ok(fs, d);
	assert_int_equal(p1.nlink, 3);
	assert_ts_newer(p1.mtime, p0.mtime);
	assert_ts_same(p1.ctime, p1.mtime);
	assert_int_equal(lookup_rc(fs, d, "empty", NULL), -ENOENT);

	/* A removed directory that is still looked up. */
	assert_int_equal(mfs_unlink(fs, e, "f"), 0);
	assert_int_equal(mfs_lookup(fs, d, "e", &x), 0);
	assert_int_equal(mfs_rmdir(fs, d, "e"), 0);
	a = getattr_ok(fs, x.ino);
	assert_int_equal(a.nlink, 0);
	assert_true(S_ISDIR(a.mode));
	assert_int_equal(getattr_ok(fs, d).nlink, 2);
	assert_int_equal(mfs_lookup(fs, x.ino, "f", &a), -ENOENT);
	mfs_forget(fs, x.ino, 1);
	assert_int_equal(mfs_getattr(fs, x.ino, &a), -ENOENT);
	free(n256);
	reopen_check(fx);
}

static void test_rename_file(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d1 = mkdir_ok(fs, MFS_ROOT, "d1", 0755);
	uint64_t d2 = mkdir_ok(fs, MFS_ROOT, "d2", 0755);
	uint64_t a = mkfile(fs, d1, "a", 0644), b, c, sub;
	struct mfs_attr x, a0, a1, p0, p1, q0, q1;
	char *n255 = name_of_len(255, 'm'), *n256 = name_of_len(256, 'm');

	/* Same directory. */
	a0 = getattr_ok(fs, a);
	p0 = getattr_ok(fs, d1);
	tick();
	assert_int_equal(mfs_rename(fs, d1, "a", d1, "b", 0), 0);
	assert_int_equal(lookup_rc(fs, d1, "a", NULL), -ENOENT);
	assert_int_equal(lookup_ok(fs, d1, "b"), a);
	a1 = getattr_ok(fs, a);
	p1 = getattr_ok(fs, d1);
	assert_ts_newer(a1.ctime, a0.ctime);
	assert_ts_same(a1.mtime, a0.mtime);
	assert_int_equal(a1.nlink, 1);
	assert_ts_newer(p1.mtime, p0.mtime);
	assert_ts_newer(p1.ctime, p0.ctime);
	assert_int_equal(p1.nlink, 2);

	/* Across directories. */
	p0 = getattr_ok(fs, d1);
	q0 = getattr_ok(fs, d2);
	tick();
	assert_int_equal(mfs_rename(fs, d1, "b", d2, n255, 0), 0);
	p1 = getattr_ok(fs, d1);
	q1 = getattr_ok(fs, d2);
	assert_ts_newer(p1.mtime, p0.mtime);
	assert_ts_newer(q1.mtime, q0.mtime);
	assert_int_equal(p1.nlink, 2);
	assert_int_equal(q1.nlink, 2);
	assert_int_equal(lookup_ok(fs, d2, n255), a);
	assert_int_equal(mfs_rename(fs, d2, n255, d1, "a", 0), 0);

	/* Over an existing file: the old one goes. */
	b = mkfile(fs, d1, "b", 0600);
	assert_int_equal(mfs_rename(fs, d1, "a", d1, "b", 0), 0);
	assert_int_equal(lookup_ok(fs, d1, "b"), a);
	assert_int_equal(mfs_getattr(fs, b, &x), -ENOENT);

	/* Over a file with another link: its count drops, ctime moves. */
	c = mkfile(fs, d1, "c", 0600);
	link_ok(fs, c, d2, "c2");
	a0 = getattr_ok(fs, c);
	tick();
	assert_int_equal(mfs_rename(fs, d1, "b", d1, "c", 0), 0);
	a1 = getattr_ok(fs, c);
	assert_int_equal(a1.nlink, 1);
	assert_ts_newer(a1.ctime, a0.ctime);
	assert_int_equal(lookup_ok(fs, d1, "c"), a);

	/* Over a file that is still looked up: it stays until forgotten. */
	b = mkfile(fs, d1, "b", 0600);
	assert_int_equal(mfs_lookup(fs, d1, "b", &x), 0);
	assert_int_equal(mfs_rename(fs, d1, "c", d1, "b", 0), 0);
	assert_int_equal(getattr_ok(fs, b).nlink, 0);
	mfs_forget(fs, b, 1);
	assert_int_equal(mfs_getattr(fs, b, &x), -ENOENT);

	/* Onto itself, or onto another link of the same inode: nothing. */
	link_ok(fs, a, d1, "hl");
	p0 = getattr_ok(fs, d1);
	assert_int_equal(mfs_rename(fs, d1, "b", d1, "b", 0), 0);
	assert_int_equal(mfs_rename(fs, d1, "b", d1, "hl", 0), 0);
	assert_int_equal(lookup_ok(fs, d1, "b"), a);
	assert_int_equal(lookup_ok(fs, d1, "hl"), a);
	assert_int_equal(getattr_ok(fs, a).nlink, 2);
	assert_attr_is(fs, d1, &p0);

	/* Errors. */
	sub = mkdir_ok(fs, d1, "sub", 0755);
	mkfile(fs, sub, "inside", 0644);
	p0 = getattr_ok(fs, d1);
	tick();
	assert_int_equal(mfs_rename(fs, d1, "b", d1, "sub", 0), -EISDIR);
	assert_int_equal(mfs_rename(fs, d1, "nope", d1, "x", 0), -ENOENT);
	assert_int_equal(mfs_rename(fs, d1, n256, d1, "x", 0), -ENAMETOOLONG);
	assert_int_equal(mfs_rename(fs, d1, "b", d1, n256, 0), -ENAMETOOLONG);
	assert_int_equal(mfs_rename(fs, a, "x", d1, "y", 0), -ENOTDIR);
	assert_int_equal(mfs_rename(fs, d1, "b", a, "y", 0), -ENOTDIR);
	assert_int_equal(mfs_rename(fs, 666666, "x", d1, "y", 0), -ENOENT);
	assert_int_equal(mfs_rename(fs, d1, "b", 666666, "y", 0), -ENOENT);
	assert_attr_is(fs, d1, &p0);
	free(n255);
	free(n256);
	reopen_check(fx);
}

/* rename(2) of a file onto the directory that contains it (an ancestor of
 * the source) is ENOTEMPTY on Linux: the VFS refuses a target that is an
 * ancestor of the source before looking at types. */
static void test_rename_onto_ancestor(void **state)
{
	struct fx *fx = *state;
	uint64_t d = mkdir_ok(fx->fs, MFS_ROOT, "d", 0755);

	mkfile(fx->fs, d, "f", 0644);
	assert_int_equal(mfs_rename(fx->fs, d, "f", MFS_ROOT, "d", 0),
			 -ENOTEMPTY);
	assert_int_equal(mfs_rename(fx->fs, d, "f", MFS_ROOT, "d",
				    MFS_RENAME_EXCHANGE), -EINVAL);
}

static void test_rename_dir(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d1 = mkdir_ok(fs, MFS_ROOT, "d1", 0755);
	uint64_t d2 = mkdir_ok(fs, MFS_ROOT, "d2", 0755);
	uint64_t x = mkdir_ok(fs, d1, "x", 0755), y, z, e;
	struct mfs_attr a, x0, x1, p0, q0;

	mkfile(fs, x, "inside", 0644);
	y = mkdir_ok(fs, x, "y", 0755);
	z = mkdir_ok(fs, y, "z", 0755);
	x0 = getattr_ok(fs, x);
	tick();
	assert_int_equal(mfs_rename(fs, d1, "x", d2, "x", 0), 0);
	assert_int_equal(getattr_ok(fs, d1).nlink, 2);
	assert_int_equal(getattr_ok(fs, d2).nlink, 3);
	assert_int_equal(lookup_rc(fs, x, "..", &a), 0);
	assert_int_equal(a.ino, d2);
	x1 = getattr_ok(fs, x);
	assert_ts_newer(x1.ctime, x0.ctime);
	assert_int_equal(x1.nlink, 3);
	assert_int_equal(lookup_ok(fs, y, "z"), z);

	/* Into its own subtree. */
	p0 = getattr_ok(fs, d2);
	assert_int_equal(mfs_rename(fs, d2, "x", x, "x2", 0), -EINVAL);
	assert_int_equal(mfs_rename(fs, d2, "x", y, "x2", 0), -EINVAL);
	assert_int_equal(mfs_rename(fs, d2, "x", z, "x2", 0), -EINVAL);
	assert_int_equal(mfs_rename(fs, MFS_ROOT, "d2", z, "x2", 0), -EINVAL);
	assert_int_equal(mfs_rename(fs, d2, "x", z, "x2", MFS_RENAME_NOREPLACE),
			 -EINVAL);
	/* Onto an ancestor (which is not empty). */
	assert_int_equal(mfs_rename(fs, y, "z", MFS_ROOT, "d2", 0), -ENOTEMPTY);
	assert_int_equal(mfs_rename(fs, x, "y", d2, "x", 0), -ENOTEMPTY);
	assert_attr_is(fs, d2, &p0);

	/* Over an empty directory, same parent. */
	e = mkdir_ok(fs, d2, "e", 0755);
	p0 = getattr_ok(fs, d2);
	assert_int_equal(p0.nlink, 4);
	assert_int_equal(mfs_rename(fs, d2, "x", d2, "e", 0), 0);
	assert_int_equal(getattr_ok(fs, d2).nlink, 3);
	assert_int_equal(mfs_getattr(fs, e, &a), -ENOENT);
	assert_int_equal(lookup_ok(fs, d2, "e"), x);
	/* Over an empty directory in another parent. */
	e = mkdir_ok(fs, d1, "e", 0755);
	assert_int_equal(getattr_ok(fs, d1).nlink, 3);
	assert_int_equal(mfs_rename(fs, d2, "e", d1, "e", 0), 0);
	assert_int_equal(getattr_ok(fs, d1).nlink, 3);
	assert_int_equal(getattr_ok(fs, d2).nlink, 2);
	assert_int_equal(mfs_getattr(fs, e, &a), -ENOENT);
	assert_int_equal(lookup_rc(fs, x, "..", &a), 0);
	assert_int_equal(a.ino, d1);
	/* Over a looked-up empty directory: it stays, unlinked, until forget. */
	e = mkdir_ok(fs, d2, "e", 0755);
	assert_int_equal(mfs_lookup(fs, d2, "e", &a), 0);
	assert_int_equal(mfs_rename(fs, d1, "e", d2, "e", 0), 0);
	assert_int_equal(getattr_ok(fs, e).nlink, 0);
	mfs_forget(fs, e, 1);
	assert_int_equal(mfs_getattr(fs, e, &a), -ENOENT);
	assert_int_equal(getattr_ok(fs, d1).nlink, 2);
	assert_int_equal(getattr_ok(fs, d2).nlink, 3);

	/* Over a non-empty directory; onto a file. */
	q0 = getattr_ok(fs, d2);
	mkdir_ok(fs, d1, "ne", 0755);
	mkfile(fs, d2, "file", 0644);
	e = lookup_ok(fs, d1, "ne");
	mkfile(fs, e, "f", 0644);
	assert_int_equal(mfs_rename(fs, d2, "e", d1, "ne", 0), -ENOTEMPTY);
	assert_int_equal(mfs_rename(fs, d2, "e", d2, "file", 0), -ENOTDIR);
	assert_int_equal(getattr_ok(fs, d2).nlink, q0.nlink);
	/* Moving the directory back to where it came from restores '..'. */
	assert_int_equal(mfs_rename(fs, d2, "e", MFS_ROOT, "top", 0), 0);
	assert_int_equal(getattr_ok(fs, MFS_ROOT).nlink, 6);
	assert_int_equal(lookup_rc(fs, x, "..", &a), 0);
	assert_int_equal(a.ino, MFS_ROOT);
	reopen_check(fx);
}

static void test_rename_flags(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755);
	uint64_t a = mkfile(fs, d, "a", 0644), b = mkfile(fs, d, "b", 0600);
	struct mfs_attr a0, b0, a1, b1, p0, p1;

	p0 = getattr_ok(fs, d);
	tick();
	assert_int_equal(mfs_rename(fs, d, "a", d, "b", MFS_RENAME_NOREPLACE),
			 -EEXIST);
	assert_int_equal(mfs_rename(fs, d, "a", d, "c", MFS_RENAME_EXCHANGE),
			 -ENOENT);
	assert_int_equal(mfs_rename(fs, d, "a", d, "b", MFS_RENAME_EXCHANGE |
				    MFS_RENAME_NOREPLACE), -EINVAL);
	assert_int_equal(mfs_rename(fs, d, "a", d, "b", 4), -EINVAL);
	assert_int_equal(mfs_rename(fs, d, "zz", d, "b", MFS_RENAME_NOREPLACE),
			 -ENOENT);
	assert_attr_is(fs, d, &p0);
	assert_int_equal(lookup_ok(fs, d, "a"), a);
	assert_int_equal(lookup_ok(fs, d, "b"), b);

	assert_int_equal(mfs_rename(fs, d, "a", d, "c", MFS_RENAME_NOREPLACE), 0);
	assert_int_equal(lookup_ok(fs, d, "c"), a);
	assert_int_equal(lookup_rc(fs, d, "a", NULL), -ENOENT);

	a0 = getattr_ok(fs, a);
	b0 = getattr_ok(fs, b);
	p0 = getattr_ok(fs, d);
	tick();
	assert_int_equal(mfs_rename(fs, d, "c", d, "b", MFS_RENAME_EXCHANGE), 0);
	assert_int_equal(lookup_ok(fs, d, "c"), b);
	assert_int_equal(lookup_ok(fs, d, "b"), a);
	a1 = getattr_ok(fs, a);
	b1 = getattr_ok(fs, b);
	p1 = getattr_ok(fs, d);
	assert_ts_newer(a1.ctime, a0.ctime);
	assert_ts_newer(b1.ctime, b0.ctime);
	assert_int_equal(a1.nlink, 1);
	assert_int_equal(b1.nlink, 1);
	assert_ts_newer(p1.mtime, p0.mtime);
	assert_int_equal(p1.nlink, 2);
	/* Exchange with another link of itself: nothing happens. */
	link_ok(fs, a, d, "hl");
	assert_int_equal(mfs_rename(fs, d, "b", d, "hl", MFS_RENAME_EXCHANGE), 0);
	assert_int_equal(lookup_ok(fs, d, "b"), a);
	assert_int_equal(lookup_ok(fs, d, "hl"), a);
	reopen_check(fx);
}

/* RENAME_NOREPLACE onto an existing name is EEXIST even when it names the
 * same inode (the VFS checks the target before the "same inode" shortcut);
 * ext4 gives EEXIST for both calls below. */
static void test_rename_noreplace_same_inode(void **state)
{
	struct fx *fx = *state;
	uint64_t a = mkfile(fx->fs, MFS_ROOT, "a", 0644);

	link_ok(fx->fs, a, MFS_ROOT, "b");
	assert_int_equal(mfs_rename(fx->fs, MFS_ROOT, "a", MFS_ROOT, "b",
				    MFS_RENAME_NOREPLACE), -EEXIST);
	assert_int_equal(mfs_rename(fx->fs, MFS_ROOT, "a", MFS_ROOT, "a",
				    MFS_RENAME_NOREPLACE), -EEXIST);
}

static void test_rename_exchange_file_dir(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d1 = mkdir_ok(fs, MFS_ROOT, "d1", 0755);
	uint64_t d2 = mkdir_ok(fs, MFS_ROOT, "d2", 0755);
	uint64_t f = mkfile(fs, d1, "f", 0644);
	uint64_t x = mkdir_ok(fs, d2, "x", 0755), c, y;
	struct mfs_attr a, f0, x0, p0, q0, f1, x1, p1, q1;

	c = mkfile(fs, x, "c", 0644);
	y = mkdir_ok(fs, x, "y", 0755);
	f0 = getattr_ok(fs, f);
	x0 = getattr_ok(fs, x);
	p0 = getattr_ok(fs, d1);
	q0 = getattr_ok(fs, d2);
	assert_int_equal(p0.nlink, 2);
	assert_int_equal(q0.nlink, 3);
	tick();
	assert_int_equal(mfs_rename(fs, d1, "f", d2, "x", MFS_RENAME_EXCHANGE), 0);
	assert_int_equal(lookup_rc(fs, d1, "f", &a), 0);
	assert_int_equal(a.ino, x);
	assert_true(S_ISDIR(a.mode));
	assert_int_equal(lookup_rc(fs, d2, "x", &a), 0);
	assert_int_equal(a.ino, f);
	assert_true(S_ISREG(a.mode));
	p1 = getattr_ok(fs, d1);
	q1 = getattr_ok(fs, d2);
	f1 = getattr_ok(fs, f);
	x1 = getattr_ok(fs, x);
	assert_int_equal(p1.nlink, 3);
	assert_int_equal(q1.nlink, 2);
	assert_int_equal(x1.nlink, 3);
	assert_int_equal(f1.nlink, 1);
	assert_ts_newer(p1.mtime, p0.mtime);
	assert_ts_newer(p1.ctime, p0.ctime);
	assert_ts_newer(q1.mtime, q0.mtime);
	assert_ts_newer(q1.ctime, q0.ctime);
	assert_ts_newer(f1.ctime, f0.ctime);
	assert_ts_newer(x1.ctime, x0.ctime);
	assert_ts_same(f1.mtime, f0.mtime);
	assert_int_equal(lookup_rc(fs, x, "..", &a), 0);
	assert_int_equal(a.ino, d1);
	assert_int_equal(lookup_ok(fs, x, "c"), c);
	assert_int_equal(lookup_rc(fs, y, "..", &a), 0);
	assert_int_equal(a.ino, x);
	/* The subtree check applies to both sides. */
	assert_int_equal(mfs_rename(fs, MFS_ROOT, "d1", x, "c",
				    MFS_RENAME_EXCHANGE), -EINVAL);
	assert_int_equal(mfs_rename(fs, x, "c", MFS_ROOT, "d1",
				    MFS_RENAME_EXCHANGE), -EINVAL);
	/* Two directories across parents: the counts move both ways. */
	assert_int_equal(mfs_rename(fs, d2, "x", d1, "f", MFS_RENAME_EXCHANGE), 0);
	assert_int_equal(getattr_ok(fs, d1).nlink, 2);
	assert_int_equal(getattr_ok(fs, d2).nlink, 3);
	mkdir_ok(fs, d1, "w", 0755);
	assert_int_equal(mfs_rename(fs, d1, "w", d2, "x", MFS_RENAME_EXCHANGE), 0);
	assert_int_equal(getattr_ok(fs, d1).nlink, 3);
	assert_int_equal(getattr_ok(fs, d2).nlink, 3);
	assert_int_equal(lookup_rc(fs, x, "..", &a), 0);
	assert_int_equal(a.ino, d1);
	reopen_check(fx);
}

static void test_setattr(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	const struct mfs_cred ingroup = { 1000, 1000, false, true };
	uint64_t f = mkfile(fs, MFS_ROOT, "f", 0644);
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755), p;
	struct mfs_attr in, a, a0;
	struct timespec t1 = { 1000000000, 123456789 }, t2 = { 1200000000, 5 };

	/* chmod: bits change, the type stays, ctime moves, mtime not. */
	memset(&in, 0, sizeof(in));
	a0 = getattr_ok(fs, f);
	tick();
	in.mode = S_IFDIR | 0600; /* type bits ignored */
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_MODE, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 0600);
	assert_ts_newer(a.ctime, a0.ctime);
	assert_ts_same(a.mtime, a0.mtime);
	assert_attr_is(fs, f, &a);

	/* chown drops setuid, and setgid when group-executable, for
	 * every caller (root too); directories keep theirs. */
	in.mode = 06755;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_MODE, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 06755);
	a0 = a;
	tick();
	in.uid = 501;
	in.gid = 502;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in,
				     MFS_SET_UID | MFS_SET_GID, &a), 0);
	assert_int_equal(a.uid, 501);
	assert_int_equal(a.gid, 502);
	assert_int_equal(a.mode, S_IFREG | 0755);
	assert_ts_newer(a.ctime, a0.ctime);
	in.mode = 06745;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_MODE, &a), 0);
	in.uid = 0;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_UID, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 02745);
	assert_int_equal(a.uid, 0);
	assert_int_equal(a.gid, 502);
	in.mode = 06755;
	assert_int_equal(mfs_setattr(fs, &ROOT, d, &in, MFS_SET_MODE, &a), 0);
	in.uid = 9;
	in.gid = 9;
	assert_int_equal(mfs_setattr(fs, &ROOT, d, &in,
				     MFS_SET_UID | MFS_SET_GID, &a), 0);
	assert_int_equal(a.mode, S_IFDIR | 06755);

	/* chmod g+s by a caller outside the group without CAP_FSETID:
	 * setgid is dropped (setattr_copy); inside the group it stays. */
	in.uid = 1000;
	in.gid = 2000;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in,
				     MFS_SET_UID | MFS_SET_GID, &a), 0);
	in.mode = 02755;
	assert_int_equal(mfs_setattr(fs, &USER, f, &in, MFS_SET_MODE, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 0755);
	assert_int_equal(mfs_setattr(fs, &ingroup, f, &in, MFS_SET_MODE, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 02755);

	/* chown keeps the setgid of a file its group may not execute only
	 * for a caller in the file's group or with CAP_FSETID
	 * (setattr_should_drop_sgid). */
	in.mode = 02745;
	in.gid = 1000;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_MODE, &a), 0);
	assert_int_equal(mfs_setattr(fs, &ingroup, f, &in, MFS_SET_GID, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 02745);
	assert_int_equal(mfs_setattr(fs, &USER, f, &in, MFS_SET_GID, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 0745);
	{
		const struct mfs_cred fsetid = { 1000, 1000, true, false };

		assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_MODE,
					     &a), 0);
		assert_int_equal(mfs_setattr(fs, &fsetid, f, &in, MFS_SET_GID,
					     &a), 0);
		assert_int_equal(a.mode, S_IFREG | 02745);
	}

	/* Times. */
	a0 = getattr_ok(fs, f);
	tick();
	in.atime = t1;
	in.mtime = t2;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in,
				     MFS_SET_ATIME | MFS_SET_MTIME, &a), 0);
	assert_ts_same(a.atime, t1);
	assert_ts_same(a.mtime, t2);
	assert_ts_newer(a.ctime, a0.ctime);
	a0 = a;
	tick();
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_ATIME_NOW, &a), 0);
	assert_ts_newer(a.atime, a0.ctime);
	assert_ts_same(a.mtime, t2);
	assert_ts_same(a.atime, a.ctime);
	tick();
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_MTIME_NOW, &a), 0);
	assert_ts_newer(a.mtime, a0.ctime);
	assert_ts_same(a.mtime, a.ctime);
	in.ctime = t1;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_CTIME, &a), 0);
	assert_ts_same(a.ctime, t1);
	assert_attr_is(fs, f, &a);

	/* Size on things that have none. */
	assert_int_equal(mfs_mknod(fs, &ROOT, MFS_ROOT, "p", S_IFIFO | 0644, 0,
				   &a), 0);
	mfs_forget(fs, a.ino, 1);
	p = a.ino;
	in.size = 0;
	a0 = getattr_ok(fs, d);
	assert_int_equal(mfs_setattr(fs, &ROOT, d, &in, MFS_SET_SIZE, &a), -EISDIR);
	assert_attr_is(fs, d, &a0);
	assert_int_equal(mfs_setattr(fs, &ROOT, p, &in, MFS_SET_SIZE, &a), -EINVAL);
	in.size = MFS_FILE_SIZE_MAX + 1;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_SIZE, &a), -EFBIG);
	assert_int_equal(mfs_setattr(fs, &ROOT, 818181, &in, MFS_SET_MODE, &a),
			 -ENOENT);
	reopen_check(fx);
	/* Explicit times survive a reopen with their nanoseconds. */
	a = getattr_ok(fx->fs, f);
	assert_ts_same(a.ctime, t1);
}

/* Linux (setattr_should_drop_sgid, since 6.2) also drops setgid without
 * group-execute when the writer or truncater is not in the file's group
 * and lacks CAP_FSETID; checked on this kernel's ext4: a 02746 file owned
 * by 1000:2000, opened with O_TRUNC (or written) by uid 1000 gid 1000,
 * becomes 0746. */
static void test_killpriv_sgid_outside_group(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	const struct mfs_cred in_grp = { 1000, 2000, false, true };
	struct mfs_attr in = { .uid = 1000, .gid = 2000 }, a;
	uint64_t f = mkfile(fs, MFS_ROOT, "f", 02746);
	uint64_t g = mkfile(fs, MFS_ROOT, "g", 02746);

	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_UID | MFS_SET_GID,
				     &a), 0);
	assert_int_equal(mfs_setattr(fs, &ROOT, g, &in, MFS_SET_UID | MFS_SET_GID,
				     &a), 0);
	assert_int_equal(a.mode, S_IFREG | 02746);
	assert_int_equal(mfs_open(fs, &in_grp, g, O_WRONLY | O_TRUNC), 0);
	assert_int_equal(mfs_release(fs, g), 0);
	assert_int_equal(getattr_ok(fs, g).mode, S_IFREG | 02746);
	assert_int_equal(mfs_open(fs, &USER, f, O_WRONLY | O_TRUNC), 0);
	assert_int_equal(mfs_release(fs, f), 0);
	assert_int_equal(getattr_ok(fs, f).mode, S_IFREG | 0746);
}

static void test_open_create(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	const struct mfs_cred cr = { 31, 32, true, true };
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755), f;
	struct mfs_attr a, p0, p1, f0;
	char *n256 = name_of_len(256, 'c');

	p0 = getattr_ok(fs, d);
	tick();
	assert_int_equal(mfs_create(fs, &cr, d, "f", 0640, O_RDWR | O_CREAT, &a), 0);
	f = a.ino;
	assert_int_equal(a.mode, S_IFREG | 0640);
	assert_int_equal(a.nlink, 1);
	assert_int_equal(a.uid, 31);
	assert_int_equal(a.gid, 32);
	assert_int_equal(a.size, 0);
	p1 = getattr_ok(fs, d);
	assert_ts_newer(p1.mtime, p0.mtime);
	assert_ts_same(p1.mtime, a.ctime);
	assert_int_equal(mfs_release(fs, f), 0);
	mfs_forget(fs, f, 1);

	assert_int_equal(mfs_create(fs, &cr, d, "f", 0640, O_RDWR, &a), -EEXIST);
	assert_int_equal(mfs_create(fs, &cr, d, n256, 0640, O_RDWR, &a),
			 -ENAMETOOLONG);
	assert_int_equal(mfs_create(fs, &cr, f, "x", 0640, O_RDWR, &a), -ENOTDIR);
	assert_int_equal(mfs_create(fs, &cr, 717171, "x", 0640, O_RDWR, &a),
			 -ENOENT);

	assert_int_equal(mfs_open(fs, &cr, d, O_RDONLY), 0);
	assert_int_equal(mfs_release(fs, d), 0);
	assert_int_equal(mfs_open(fs, &cr, d, O_WRONLY), -EISDIR);
	assert_int_equal(mfs_open(fs, &cr, d, O_RDWR), -EISDIR);
	assert_int_equal(mfs_open(fs, &cr, d, O_RDONLY | O_TRUNC), -EISDIR);
	assert_int_equal(mfs_open(fs, &cr, 717171, O_RDONLY), -ENOENT);
	assert_int_equal(mfs_open(fs, &cr, f, O_RDONLY), 0);
	assert_int_equal(mfs_release(fs, f), 0);
	/* O_TRUNC of an empty file still sets mtime and ctime. */
	f0 = getattr_ok(fs, f);
	tick();
	assert_int_equal(mfs_open(fs, &cr, f, O_WRONLY | O_TRUNC), 0);
	assert_int_equal(mfs_release(fs, f), 0);
	a = getattr_ok(fs, f);
	assert_ts_newer(a.mtime, f0.mtime);
	assert_ts_newer(a.ctime, f0.ctime);
	free(n256);
	reopen_check(fx);
}

static void test_lookup(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755), e, f;
	struct mfs_attr a, b;
	char *n255 = name_of_len(255, 'q'), *n256 = name_of_len(256, 'q');

	e = mkdir_ok(fs, d, "e", 0755);
	f = mkfile(fs, e, "f", 0644);
	assert_int_equal(lookup_rc(fs, d, "nope", NULL), -ENOENT);
	assert_int_equal(lookup_rc(fs, f, "x", NULL), -ENOTDIR);
	assert_int_equal(lookup_rc(fs, 626262, "x", NULL), -ENOENT);
	assert_int_equal(lookup_rc(fs, d, n255, NULL), -ENOENT);
	assert_int_equal(lookup_rc(fs, d, n256, NULL), -ENAMETOOLONG);
	assert_int_equal(lookup_rc(fs, e, "..", &a), 0);
	assert_int_equal(a.ino, d);
	assert_int_equal(lookup_rc(fs, e, ".", &a), 0);
	assert_int_equal(a.ino, e);
	assert_int_equal(lookup_rc(fs, d, "e", &a), 0);
	b = getattr_ok(fs, e);
	assert_memory_equal(&a, &b, sizeof(a));

	/* Lookup counts add up; forget takes them back. */
	assert_int_equal(mfs_lookup(fs, e, "f", &a), 0);
	assert_int_equal(mfs_lookup(fs, e, "f", &a), 0);
	assert_int_equal(mfs_lookup(fs, e, "f", &a), 0);
	assert_int_equal(mfs_unlink(fs, e, "f"), 0);
	assert_int_equal(getattr_ok(fs, f).nlink, 0);
	mfs_forget(fs, f, 2);
	assert_int_equal(getattr_ok(fs, f).nlink, 0);
	mfs_forget(fs, f, 1);
	assert_int_equal(mfs_getattr(fs, f, &a), -ENOENT);
	/* Forgetting more than was looked up clamps at zero. */
	f = mkfile(fs, e, "g", 0644);
	assert_int_equal(mfs_lookup(fs, e, "g", &a), 0);
	assert_int_equal(mfs_unlink(fs, e, "g"), 0);
	mfs_forget(fs, f, 1000);
	assert_int_equal(mfs_getattr(fs, f, &a), -ENOENT);
	mfs_forget(fs, f, 1); /* unknown inode: harmless */
	free(n255);
	free(n256);
	reopen_check(fx);
}

/* FNV-1a over a file's size and every data segment (offset and bytes):
 * changes when any byte of the (sparse) image does. */
static uint64_t file_hash(const char *path)
{
	static char buf[1 << 20];
	uint64_t h = 0xcbf29ce484222325ULL;
	struct stat st;
	off_t off = 0, end;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	h = (h ^ (uint64_t)st.st_size) * 0x100000001b3ULL;
	while ((off = lseek(fd, off, SEEK_DATA)) >= 0) {
		end = lseek(fd, off, SEEK_HOLE);
		assert_true(end > off);
		h = (h ^ (uint64_t)off) * 0x100000001b3ULL;
		while (off < end) {
			size_t want = (size_t)(end - off) < sizeof(buf)
				? (size_t)(end - off) : sizeof(buf);
			ssize_t got = pread(fd, buf, want, off);
			ssize_t i;

			assert_true(got > 0);
			for (i = 0; i < got; i++)
				h = (h ^ (uint8_t)buf[i]) * 0x100000001b3ULL;
			off += got;
		}
	}
	close(fd);
	return h;
}

/* MFS_FS_DEFER: an open that is closed before mfs_fs_start writes
 * nothing, not even after a crash left orphans to reclaim; mfs_fs_start
 * marks the image in use and reclaims them. */
static void test_defer(void **state)
{
	struct fx *fx = *state;
	struct mfs_attr a, x;
	uint64_t f, before;

	assert_int_equal(mfs_create(fx->fs, &ROOT, MFS_ROOT, "f", 0644, O_RDWR,
				    &a), 0);
	f = a.ino;
	assert_int_equal(mfs_unlink(fx->fs, MFS_ROOT, "f"), 0);
	assert_int_equal(mfs_fs_sync(fx->fs), 0);
	mfs_fs_close_dirty(fx->fs);     /* a crash: "f" is an orphan */
	fx->fs = NULL;

	before = file_hash(fx->img);
	assert_int_equal(mfs_fs_open(fx->img, MFS_FS_DEFER, &fx->fs), 0);
	assert_int_equal(mfs_fs_close(fx->fs), 0);
	fx->fs = NULL;
	assert_true(file_hash(fx->img) == before);

	assert_int_equal(mfs_fs_open(fx->img, MFS_FS_DEFER, &fx->fs), 0);
	assert_int_equal(getattr_ok(fx->fs, f).nlink, 0); /* not yet reaped */
	assert_int_equal(mfs_fs_start(fx->fs), 0);
	assert_int_equal(mfs_getattr(fx->fs, f, &x), -ENOENT);
	assert_int_equal(mfs_fs_start(fx->fs), 0);     /* a second is a no-op */
	assert_int_equal(mfs_fs_close(fx->fs), 0);
	fx->fs = NULL;
	assert_true(file_hash(fx->img) != before);
	assert_int_equal(check_image(fx->img).inodes, 2); /* root, lost+found */
	assert_int_equal(mfs_fs_open(fx->img, 0, &fx->fs), 0);
}

/* Bytes of host disk the image file occupies. */
static uint64_t host_bytes(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* Write a 16 MiB file "big" and a 1 MiB file "keep", delete "big", commit
 * until its blocks are reusable; returns how much the image's host usage
 * went down. "keep" must be intact, the image must check clean. */
static int64_t shrink_after_delete(struct fx *fx, unsigned flags)
{
	const size_t big = 16u << 20, keep = 1u << 20;
	uint8_t *buf = malloc(big), *back = malloc(keep);
	struct mfs_attr a;
	uint64_t bi, ki, h1, h2;

	assert_non_null(buf);
	assert_non_null(back);
	assert_int_equal(mfs_fs_close(fx->fs), 0);
	assert_int_equal(mfs_fs_open(fx->img, flags, &fx->fs), 0);
	for (size_t i = 0; i < big; i++)
		buf[i] = (uint8_t)(i * 7 + (i >> 12));
	assert_int_equal(mfs_create(fx->fs, &ROOT, MFS_ROOT, "big", 0644,
				    O_RDWR, &a), 0);
	bi = a.ino;
	write_ok(fx->fs, &ROOT, bi, 0, buf, big);
	assert_int_equal(mfs_create(fx->fs, &ROOT, MFS_ROOT, "keep", 0644,
				    O_RDWR, &a), 0);
	ki = a.ino;
	write_ok(fx->fs, &ROOT, ki, 0, buf + 5, keep);
	assert_int_equal(mfs_fs_sync(fx->fs), 0);
	h1 = host_bytes(fx->img);
	assert_int_equal(mfs_unlink(fx->fs, MFS_ROOT, "big"), 0);
	assert_int_equal(mfs_release(fx->fs, bi), 0);
	mfs_forget(fx->fs, bi, 1);
	/* Freed in generation g, reusable once g + 1 is durable. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(mfs_fs_sync(fx->fs), 0);
	h2 = host_bytes(fx->img);
	assert_int_equal(read_all(fx->fs, ki, 0, keep, back), keep);
	assert_memory_equal(back, buf + 5, keep);
	assert_int_equal(mfs_release(fx->fs, ki), 0);
	mfs_forget(fx->fs, ki, 1);

	/* The space is allocated again (and reserved) when reused. */
	assert_int_equal(mfs_create(fx->fs, &ROOT, MFS_ROOT, "again", 0644,
				    O_RDWR, &a), 0);
	write_ok(fx->fs, &ROOT, a.ino, 0, buf, big);
	assert_int_equal(mfs_fs_sync(fx->fs), 0);
	if (flags & MFS_FS_DISCARD)
		assert_true(host_bytes(fx->img) >= h2 + big - (1u << 20));
	memset(buf + big - keep, 0, keep);
	assert_int_equal(read_all(fx->fs, a.ino, 0, keep, buf + big - keep),
			 keep);
	for (size_t i = 0; i < keep; i++)
		assert_int_equal(buf[big - keep + i], (uint8_t)(i * 7 + (i >> 12)));
	assert_int_equal(mfs_release(fx->fs, a.ino), 0);
	mfs_forget(fx->fs, a.ino, 1);
	reopen_check(fx);
	assert_int_equal(mfs_unlink(fx->fs, MFS_ROOT, "keep"), 0);
	assert_int_equal(mfs_unlink(fx->fs, MFS_ROOT, "again"), 0);
	free(buf);
	free(back);
	return (int64_t)h1 - (int64_t)h2;
}

/* -o discard: the host gets a deleted file's space back; without it the
 * image keeps it (the default, as ext4's nodiscard). */
/* Pages of the image file in the page cache, or -1. */
static long image_resident(const char *img)
{
	int fd = open(img, O_RDONLY);
	struct stat st;
	unsigned char *vec = NULL;
	void *p = MAP_FAILED;
	long n = -1, pg = sysconf(_SC_PAGESIZE), i, pages;

	if (fd < 0 || fstat(fd, &st) != 0)
		goto out;
	pages = (st.st_size + pg - 1) / pg;
	vec = malloc((size_t)pages);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (!vec || p == MAP_FAILED || mincore(p, (size_t)st.st_size, vec))
		goto out;
	for (n = 0, i = 0; i < pages; i++)
		n += vec[i] & 1;
out:
	if (p != MAP_FAILED)
		munmap(p, (size_t)st.st_size);
	free(vec);
	if (fd >= 0)
		close(fd);
	return n;
}

/* Opening reads the superblocks and a few tree blocks, one page each: not
 * the host's read-around window (read_ahead_kb, 128 KiB to megabytes)
 * around each of them. A cold mount of a large image was 4x slower. */
static void test_open_reads_little(void **state)
{
	struct fx *fx = *state;
	int fd, i;
	long n;

	for (i = 0; i < 200; i++) {
		char name[32];

		snprintf(name, sizeof(name), "f%d", i);
		mkfile(fx->fs, MFS_ROOT_INO, name, 0644);
	}
	assert_int_equal(mfs_fs_close(fx->fs), 0);
	fx->fs = NULL;
	fd = open(fx->img, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	close(fd);
	n = image_resident(fx->img);
	assert_true(n >= 0);
	if (n > 0) /* a host that cannot evict (tmpfs): nothing to measure */
		MFS_SKIP("the image's pages cannot be evicted (tmpfs?)\n");
	assert_int_equal(mfs_fs_open(fx->img, 0, &fx->fs), 0);
	n = image_resident(fx->img);
	assert_true(n > 0);
	assert_true(n <= 24);
}

static void test_discard(void **state)
{
	struct fx *fx = *state;
	int64_t kept = shrink_after_delete(fx, 0);

	assert_true(kept < (1 << 20));
	assert_true(shrink_after_delete(fx, MFS_FS_DISCARD) >= (15 << 20));
}

static void test_orphans(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs;
	struct mfs_attr a, x;
	struct ents e = { 0 };
	struct ck_result r0, r1;
	uint64_t f, g, h, dd, q;
	size_t i;

	r0 = reopen_check(fx);
	fs = fx->fs;
	/* create: one lookup, one open. */
	assert_int_equal(mfs_create(fs, &ROOT, MFS_ROOT, "f", 0644, O_RDWR, &a), 0);
	f = a.ino;
	assert_int_equal(mfs_unlink(fs, MFS_ROOT, "f"), 0);
	x = getattr_ok(fs, f);
	assert_int_equal(x.nlink, 0);
	assert_int_equal(lookup_rc(fs, MFS_ROOT, "f", NULL), -ENOENT);
	list_dir(fs, MFS_ROOT, 0, false, &e);
	for (i = 0; i < e.n; i++)
		assert_int_not_equal(e.e[i].ino, f);
	assert_int_equal(mfs_release(fs, f), 0);
	assert_int_equal(getattr_ok(fs, f).nlink, 0);   /* lookup remains */
	mfs_forget(fs, f, 1);
	assert_int_equal(mfs_getattr(fs, f, &x), -ENOENT);

	/* Lookup only. */
	g = mkfile(fs, MFS_ROOT, "g", 0644);
	assert_int_equal(mfs_lookup(fs, MFS_ROOT, "g", &a), 0);
	assert_int_equal(mfs_unlink(fs, MFS_ROOT, "g"), 0);
	assert_int_equal(getattr_ok(fs, g).nlink, 0);
	mfs_forget(fs, g, 1);
	assert_int_equal(mfs_getattr(fs, g, &x), -ENOENT);

	/* Open only. */
	h = mkfile(fs, MFS_ROOT, "h", 0644);
	assert_int_equal(mfs_open(fs, &ROOT, h, O_RDONLY), 0);
	assert_int_equal(mfs_open(fs, &ROOT, h, O_RDWR), 0);
	assert_int_equal(mfs_unlink(fs, MFS_ROOT, "h"), 0);
	assert_int_equal(mfs_release(fs, h), 0);
	assert_int_equal(getattr_ok(fs, h).nlink, 0);
	assert_int_equal(mfs_release(fs, h), 0);
	assert_int_equal(mfs_getattr(fs, h, &x), -ENOENT);
	/* A release without an open is harmless. */
	assert_int_equal(mfs_release(fs, h), 0);
	r1 = reopen_check(fx);
	assert_int_equal(r1.inodes, r0.inodes);

	/* A crash while orphans are held: the next open reclaims them. */
	fs = fx->fs;
	assert_int_equal(mfs_create(fs, &ROOT, MFS_ROOT, "f", 0644, O_RDWR, &a), 0);
	f = a.ino;
	g = mkfile(fs, MFS_ROOT, "g", 0644);
	assert_int_equal(mfs_lookup(fs, MFS_ROOT, "g", &a), 0);
	dd = mkdir_ok(fs, MFS_ROOT, "dd", 0755);
	assert_int_equal(mfs_lookup(fs, MFS_ROOT, "dd", &a), 0);
	q = mkfile(fs, MFS_ROOT, "q", 0644);  /* replaced by rename below */
	assert_int_equal(mfs_lookup(fs, MFS_ROOT, "q", &a), 0);
	mkfile(fs, MFS_ROOT, "r", 0644);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_unlink(fs, MFS_ROOT, "f"), 0);
	assert_int_equal(mfs_unlink(fs, MFS_ROOT, "g"), 0);
	assert_int_equal(mfs_rmdir(fs, MFS_ROOT, "dd"), 0);
	assert_int_equal(mfs_rename(fs, MFS_ROOT, "r", MFS_ROOT, "q", 0), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(getattr_ok(fs, f).nlink, 0);
	assert_int_equal(getattr_ok(fs, g).nlink, 0);
	assert_int_equal(getattr_ok(fs, dd).nlink, 0);
	assert_int_equal(getattr_ok(fs, q).nlink, 0);
	crash_reopen(fx);
	fs = fx->fs;
	assert_int_equal(mfs_getattr(fs, f, &x), -ENOENT);
	assert_int_equal(mfs_getattr(fs, g, &x), -ENOENT);
	assert_int_equal(mfs_getattr(fs, dd, &x), -ENOENT);
	assert_int_equal(mfs_getattr(fs, q, &x), -ENOENT);
	r1 = reopen_check(fx);
	assert_int_equal(r1.inodes, r0.inodes + 1); /* "q" (was "r") */

	/* A clean close while references are held reclaims them too. */
	fs = fx->fs;
	assert_int_equal(mfs_create(fs, &ROOT, MFS_ROOT, "f", 0644, O_RDWR, &a), 0);
	f = a.ino;
	assert_int_equal(mfs_unlink(fs, MFS_ROOT, "f"), 0);
	r1 = reopen_check(fx);
	assert_int_equal(mfs_getattr(fx->fs, f, &x), -ENOENT);
	assert_int_equal(r1.inodes, r0.inodes + 1);
	ents_free(&e);
}

static void test_readdir_offsets(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755), f;
	struct ents all = { 0 }, part = { 0 };
	const size_t n = 300;
	static const size_t chunks[] = { 1, 2, 7, 64 };
	size_t i, j, k;
	char name[32];
	bool *seen = calloc(n, 1);

	assert_non_null(seen);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "file-%zu", i);
		if (i % 10 == 0)
			mkdir_ok(fs, d, name, 0755);
		else
			mkfile(fs, d, name, 0644);
	}
	list_dir(fs, d, 0, false, &all);
	assert_int_equal(all.n, n + 2);
	assert_string_equal(all.e[0].name, ".");
	assert_int_equal(all.e[0].off, 1);
	assert_int_equal(all.e[0].ino, d);
	assert_string_equal(all.e[1].name, "..");
	assert_int_equal(all.e[1].off, 2);
	assert_int_equal(all.e[1].ino, MFS_ROOT);
	for (i = 2; i < all.n; i++) {
		unsigned long v;

		assert_int_equal(sscanf(all.e[i].name, "file-%lu", &v), 1);
		assert_true(v < n && !seen[v]);
		seen[v] = true;
		assert_true(all.e[i].off > all.e[i - 1].off);
		assert_true(all.e[i].off < (1ULL << 63));
		assert_int_equal(all.e[i].mode, v % 10 ? S_IFREG : S_IFDIR);
		assert_int_equal(all.e[i].ino, lookup_ok(fs, d, all.e[i].name));
	}
	/* Resuming from each offset gives exactly the rest. */
	for (i = 0; i < all.n; i++) {
		part.n = 0;
		list_dir_from(fs, d, all.e[i].off, 0, false, false, &part);
		assert_int_equal(part.n, all.n - i - 1);
		for (j = 0; j < part.n; j++) {
			assert_string_equal(part.e[j].name, all.e[i + 1 + j].name);
			assert_int_equal(part.e[j].off, all.e[i + 1 + j].off);
		}
	}
	/* Any chunk size gives the same sequence. */
	for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		list_dir(fs, d, chunks[k], false, &part);
		assert_int_equal(part.n, all.n);
		for (j = 0; j < part.n; j++)
			assert_string_equal(part.e[j].name, all.e[j].name);
	}
	/* Plus: complete attributes. */
	list_dir(fs, d, 5, true, &part);
	assert_int_equal(part.n, all.n);
	for (j = 0; j < part.n; j++) {
		struct mfs_attr a = getattr_ok(fs, part.e[j].ino);

		assert_string_equal(part.e[j].name, all.e[j].name);
		assert_memory_equal(&a, &part.e[j].attr, sizeof(a));
	}
	/* Past the end, beyond 2^63, on files and missing inodes. */
	part.n = 0;
	assert_int_equal(mfs_readdir(fs, d, all.e[all.n - 1].off, false,
				     fill_collect, &part), 0);
	assert_int_equal(part.n, 0);
	assert_int_equal(mfs_readdir(fs, d, UINT64_MAX, false, fill_collect,
				     &part), 0);
	assert_int_equal(part.n, 0);
	f = lookup_ok(fs, d, "file-1");
	assert_int_equal(mfs_readdir(fs, f, 0, false, fill_collect, &part),
			 -ENOTDIR);
	assert_int_equal(mfs_opendir(fs, f), -ENOTDIR);
	assert_int_equal(mfs_readdir(fs, 535353, 0, false, fill_collect, &part),
			 -ENOENT);
	assert_int_equal(part.n, 0);
	ents_free(&all);
	ents_free(&part);
	free(seen);
	reopen_check(fx);
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static unsigned rnd(uint64_t *s, unsigned n)
{
	return (unsigned)(rng_next(s) % n);
}

/* Entries added and removed between readdir calls: every entry that exists
 * for the whole listing comes exactly once; nothing comes twice. */
static void test_readdir_stability(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755);
	uint64_t rng = 0x1234567;
	enum { NSTABLE = 150, NVOL = 150, ROUNDS = 20 };
	unsigned round;
	char name[32];

	for (unsigned i = 0; i < NSTABLE; i++) {
		snprintf(name, sizeof(name), "s%u", i);
		mkfile(fs, d, name, 0644);
	}
	for (round = 0; round < ROUNDS; round++) {
		struct ents l = { 0 };
		bool vol[NVOL];
		unsigned cnt_stable[NSTABLE] = { 0 }, created = 0;
		uint64_t off = 0;
		size_t i, j;

		/* Volatile names: some present at the start. */
		for (i = 0; i < NVOL; i++) {
			snprintf(name, sizeof(name), "v%zu", i);
			vol[i] = rnd(&rng, 2);
			if (vol[i])
				mkfile(fs, d, name, 0644);
		}
		for (;;) {
			size_t before = l.n;

			l.taken = 0;
			l.limit = 1 + rnd(&rng, 9);
			assert_int_equal(mfs_readdir(fs, d, off, round & 1,
						     fill_collect, &l), 0);
			if (round & 1)
				for (j = before; j < l.n; j++)
					if (!is_dot(l.e[j].name))
						mfs_forget(fs, l.e[j].ino, 1);
			if (l.n == before)
				break;
			off = l.e[l.n - 1].off;
			/* Churn: flip some volatile names, add new ones. */
			for (j = 0; j < 6; j++) {
				size_t v = rnd(&rng, NVOL);

				snprintf(name, sizeof(name), "v%zu", v);
				if (vol[v])
					assert_int_equal(mfs_unlink(fs, d, name), 0);
				else
					mkfile(fs, d, name, 0644);
				vol[v] = !vol[v];
			}
			snprintf(name, sizeof(name), "n%u-%u", round, created++);
			mkfile(fs, d, name, 0644);
		}
		for (i = 0; i < l.n; i++) {
			unsigned v;

			for (j = i + 1; j < l.n; j++)
				assert_string_not_equal(l.e[i].name, l.e[j].name);
			if (sscanf(l.e[i].name, "s%u", &v) == 1)
				cnt_stable[v]++;
		}
		for (i = 0; i < NSTABLE; i++)
			assert_int_equal(cnt_stable[i], 1);
		/* Clean the volatile and new names for the next round. */
		for (i = 0; i < NVOL; i++) {
			snprintf(name, sizeof(name), "v%zu", i);
			if (vol[i])
				assert_int_equal(mfs_unlink(fs, d, name), 0);
		}
		for (i = 0; i < created; i++) {
			snprintf(name, sizeof(name), "n%u-%zu", round, i);
			assert_int_equal(mfs_unlink(fs, d, name), 0);
		}
		ents_free(&l);
	}
	reopen_check(fx);
}

/* Takes ".", ".." and five more entries, then says its buffer is full. */
static int fill_take5(void *ctx, const char *name, size_t namelen,
		      const struct mfs_attr *a, uint64_t next_off)
{
	struct ents *l = ctx;
	size_t i, files = 0;

	for (i = 0; i < l->n; i++)
		files += !is_dot(l->e[i].name);
	if (!is_dot(name) && files >= 5)
		return 1;
	l->limit = 0;
	return fill_collect(ctx, name, namelen, a, next_off);
}

static void test_readdirplus_lookups(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755), ino[10];
	struct ents l = { 0 };
	struct mfs_attr a = { 0 };
	char name[16];
	size_t i, j;

	for (i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "f%zu", i);
		ino[i] = mkfile(fs, d, name, 0644);
	}
	assert_int_equal(mfs_readdir(fs, d, 0, true, fill_take5, &l), 0);
	assert_int_equal(l.n, 7); /* ".", "..", five files */
	for (i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "f%zu", i);
		assert_int_equal(mfs_unlink(fs, d, name), 0);
	}
	for (i = 0; i < 10; i++) {
		bool taken = false;

		for (j = 2; j < l.n; j++)
			taken |= l.e[j].ino == ino[i];
		assert_int_equal(mfs_getattr(fs, ino[i], &a), taken ? 0 : -ENOENT);
		if (taken) {
			assert_int_equal(a.nlink, 0);
			mfs_forget(fs, ino[i], 1);
			assert_int_equal(mfs_getattr(fs, ino[i], &a), -ENOENT);
		}
	}
	/* "." and ".." add no lookup: the directory goes at rmdir. */
	ents_free(&l);
	list_dir_from(fs, d, 0, 0, true, true, &l);
	assert_int_equal(l.n, 2);
	assert_int_equal(mfs_rmdir(fs, MFS_ROOT, "d"), 0);
	assert_int_equal(mfs_getattr(fs, d, &a), -ENOENT);
	ents_free(&l);
	reopen_check(fx);
}

static void test_names(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	char *n255 = name_of_len(255, 'z'), *m255 = name_of_len(255, 'y');
	char *n256 = name_of_len(256, 'z');
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755), f, sub;
	struct mfs_attr a, p0;
	struct ents l = { 0 };

	f = mkfile(fs, d, n255, 0644);
	assert_int_equal(lookup_ok(fs, d, n255), f);
	assert_int_equal(mfs_rename(fs, d, n255, d, m255, 0), 0);
	link_ok(fs, f, d, n255);
	assert_int_equal(mfs_unlink(fs, d, m255), 0);
	sub = mkdir_ok(fs, d, m255, 0755);
	list_dir(fs, d, 0, true, &l);
	assert_int_equal(l.n, 4);
	assert_int_equal(strlen(l.e[2].name), 255);
	assert_int_equal(strlen(l.e[3].name), 255);
	p0 = getattr_ok(fs, d);
	assert_int_equal(mfs_mknod(fs, &ROOT, d, n256, 0644, 0, &a), -ENAMETOOLONG);
	assert_int_equal(mfs_mkdir(fs, &ROOT, d, n256, 0755, &a), -ENAMETOOLONG);
	assert_int_equal(mfs_create(fs, &ROOT, d, n256, 0644, O_RDWR, &a),
			 -ENAMETOOLONG);
	assert_int_equal(mfs_symlink(fs, &ROOT, d, n256, "x", &a), -ENAMETOOLONG);
	assert_int_equal(mfs_link(fs, f, d, n256, &a), -ENAMETOOLONG);
	assert_int_equal(mfs_rename(fs, d, n255, d, n256, 0), -ENAMETOOLONG);
	assert_int_equal(mfs_rename(fs, d, n256, d, "x", 0), -ENAMETOOLONG);
	assert_int_equal(mfs_lookup(fs, d, n256, &a), -ENAMETOOLONG);
	assert_int_equal(mfs_unlink(fs, d, n256), -ENAMETOOLONG);
	assert_int_equal(mfs_rmdir(fs, d, n256), -ENAMETOOLONG);
	assert_attr_is(fs, d, &p0);
	assert_int_equal(mfs_rmdir(fs, d, m255), 0);
	assert_int_equal(mfs_getattr(fs, sub, &a), -ENOENT);
	free(n255);
	free(m255);
	free(n256);
	ents_free(&l);
	reopen_check(fx);
}

static void test_statfs(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	struct mfs_statfs s0, s1, s2;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755);
	char name[32];
	unsigned i;

	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_statfs(fs, &s0), 0);
	for (i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "file-%u", i);
		mkfile(fs, d, name, 0644);
	}
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_statfs(fs, &s1), 0);
	assert_true(s1.bfree < s0.bfree);
	assert_true(s1.bavail <= s1.bfree);
	assert_true(s1.files - s1.ffree >= s0.files - s0.ffree + 3000);
	for (i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "file-%u", i);
		assert_int_equal(mfs_unlink(fs, d, name), 0);
	}
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_statfs(fs, &s2), 0);
	assert_true(s2.bfree + 8 >= s0.bfree);
	assert_true(s2.bfree <= s0.bfree + 8);
	assert_int_equal(s2.files - s2.ffree, s0.files - s0.ffree);
	reopen_check(fx);
}

/* Failed operations change nothing: no times, no counts. */
static void test_failed_ops_change_nothing(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755);
	uint64_t e = mkdir_ok(fs, d, "e", 0755);
	uint64_t f = mkfile(fs, d, "f", 0644), g = mkfile(fs, e, "g", 0644);
	struct mfs_attr a, d0, e0, f0, g0, r0;

	r0 = getattr_ok(fs, MFS_ROOT);
	d0 = getattr_ok(fs, d);
	e0 = getattr_ok(fs, e);
	f0 = getattr_ok(fs, f);
	g0 = getattr_ok(fs, g);
	tick();
	assert_int_equal(mfs_mkdir(fs, &ROOT, d, "f", 0755, &a), -EEXIST);
	assert_int_equal(mfs_rmdir(fs, d, "e"), -ENOTEMPTY);
	assert_int_equal(mfs_unlink(fs, d, "e"), -EISDIR);
	assert_int_equal(mfs_rename(fs, d, "f", e, "g", MFS_RENAME_NOREPLACE),
			 -EEXIST);
	assert_int_equal(mfs_rename(fs, d, "f", d, "e", 0), -EISDIR);
	assert_int_equal(mfs_rename(fs, d, "e", e, "x", 0), -EINVAL);
	assert_int_equal(mfs_link(fs, e, d, "x", &a), -EPERM);
	assert_int_equal(mfs_link(fs, f, e, "g", &a), -EEXIST);
	assert_int_equal(mfs_symlink(fs, &ROOT, e, "g", "t", &a), -EEXIST);
	assert_int_equal(mfs_create(fs, &ROOT, e, "g", 0644, O_RDWR, &a), -EEXIST);
	assert_attr_is(fs, MFS_ROOT, &r0);
	assert_attr_is(fs, d, &d0);
	assert_attr_is(fs, e, &e0);
	assert_attr_is(fs, f, &f0);
	assert_attr_is(fs, g, &g0);
	reopen_check(fx);
}

static void test_readonly(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755);
	uint64_t f = mkfile(fs, d, "f", 0644), s = symlink_ok(fs, d, "s", "f");
	struct mfs_attr a, in = { .mode = 0600 };
	struct ents l = { 0 };
	char buf[16];
	size_t len;

	assert_int_equal(mfs_fs_close(fs), 0);
	assert_int_equal(mfs_fs_open(fx->img, MFS_FS_RDONLY, &fx->fs), 0);
	fs = fx->fs;
	assert_true(mfs_fs_readonly(fs));
	assert_int_equal(lookup_ok(fs, d, "f"), f);
	assert_int_equal(mfs_readlink(fs, s, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 1);
	list_dir(fs, d, 0, true, &l);
	assert_int_equal(l.n, 4);
	assert_int_equal(mfs_mkdir(fs, &ROOT, d, "x", 0755, &a), -EROFS);
	assert_int_equal(mfs_mknod(fs, &ROOT, d, "x", 0644, 0, &a), -EROFS);
	assert_int_equal(mfs_create(fs, &ROOT, d, "x", 0644, O_RDWR, &a), -EROFS);
	assert_int_equal(mfs_symlink(fs, &ROOT, d, "x", "y", &a), -EROFS);
	assert_int_equal(mfs_link(fs, f, d, "x", &a), -EROFS);
	assert_int_equal(mfs_unlink(fs, d, "f"), -EROFS);
	assert_int_equal(mfs_rmdir(fs, MFS_ROOT, "lost+found"), -EROFS);
	assert_int_equal(mfs_rename(fs, d, "f", d, "g", 0), -EROFS);
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_MODE, &a), -EROFS);
	assert_int_equal(mfs_open(fs, &ROOT, f, O_RDWR), -EROFS);
	assert_int_equal(mfs_open(fs, &ROOT, f, O_RDONLY), 0);
	assert_int_equal(mfs_release(fs, f), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	ents_free(&l);
	assert_int_equal(mfs_fs_close(fs), 0);
	fx->fs = NULL;
	check_image(fx->img);
	assert_int_equal(mfs_fs_open(fx->img, 0, &fx->fs), 0);
}

/* A namespace used by the persistence tests. */
static void build_tree(struct mfs_fs *fs, uint64_t *rng, unsigned n)
{
	uint64_t dirs[64] = { MFS_ROOT };
	unsigned ndirs = 1, i;
	char name[32];

	for (i = 0; i < n; i++) {
		uint64_t p = dirs[rnd(rng, ndirs)];
		struct mfs_attr a;
		int rc;

		snprintf(name, sizeof(name), "n%u", rnd(rng, 1000));
		switch (rnd(rng, 5)) {
		case 0:
			rc = mfs_mkdir(fs, &ROOT, p, name, 0755, &a);
			if (!rc && ndirs < 64)
				dirs[ndirs++] = a.ino;
			break;
		case 1:
			rc = mfs_symlink(fs, &ROOT, p, name, "some/target", &a);
			break;
		case 2:
			rc = mfs_mknod(fs, &ROOT, p, name, S_IFIFO | 0600, 0, &a);
			break;
		default:
			rc = mfs_mknod(fs, &ROOT, p, name, S_IFREG | 0640, 0, &a);
			break;
		}
		if (rc == 0)
			mfs_forget(fs, a.ino, 1);
		else
			assert_int_equal(rc, -EEXIST);
	}
}

static void test_persistence(void **state)
{
	struct fx *fx = *state;
	const struct dump_opts ex = { .exact = true };
	uint64_t rng = 42;
	char *d0, *d1, *d2;

	build_tree(fx->fs, &rng, 500);
	d0 = mfs_dump(fx->fs, &ex);
	reopen_check(fx);
	d1 = mfs_dump(fx->fs, &ex);
	assert_string_equal(d0, d1);
	free(d1);
	/* A crash right after a sync keeps everything. */
	build_tree(fx->fs, &rng, 200);
	free(d0);
	d0 = mfs_dump(fx->fs, &ex);
	assert_int_equal(mfs_fs_sync(fx->fs), 0);
	crash_reopen(fx);
	d1 = mfs_dump(fx->fs, &ex);
	assert_string_equal(d0, d1);
	/* A crash loses what was not synced, and only that. */
	build_tree(fx->fs, &rng, 200);
	crash_reopen(fx);
	d2 = mfs_dump(fx->fs, &ex);
	assert_string_equal(d0, d2);
	/* Abort is the same, without the crash. */
	build_tree(fx->fs, &rng, 200);
	assert_int_equal(mfs_fs_abort(fx->fs), 0);
	free(d2);
	d2 = mfs_dump(fx->fs, &ex);
	assert_string_equal(d0, d2);
	free(d0);
	free(d1);
	free(d2);
	reopen_check(fx);
}

/* ------------------------------------------------------------------ */
/* File data (skipped while src/stubs_tmp.c answers EOPNOTSUPP)        */
/* ------------------------------------------------------------------ */

static void fill_pattern(unsigned char *b, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)((seed + i * 131 + (i >> 9)) & 0xff);
}

static bool all_zero(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static void test_data_rw(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	unsigned char *w, *r;
	struct mfs_attr a, a0, a1;
	uint64_t f, p, d;
	size_t n;

	NEED_DATA(fs);
	w = malloc(1 << 20);
	r = malloc(1 << 20);
	assert_non_null(w);
	assert_non_null(r);
	assert_int_equal(mfs_create(fs, &ROOT, MFS_ROOT, "f", 0644, O_RDWR, &a), 0);
	f = a.ino;
	fill_pattern(w, 10000, 1);
	tick();
	write_ok(fs, &ROOT, f, 0, w, 10000);
	a1 = getattr_ok(fs, f);
	assert_int_equal(a1.size, 10000);
	assert_int_equal(a1.blocks, 3 * 8);
	assert_ts_newer(a1.mtime, a.mtime);
	assert_ts_same(a1.mtime, a1.ctime);
	assert_int_equal(read_all(fs, f, 0, 10000, r), 10000);
	assert_memory_equal(r, w, 10000);
	assert_int_equal(read_all(fs, f, 9000, 5000, r), 1000);
	assert_memory_equal(r, w + 9000, 1000);
	assert_int_equal(read_all(fs, f, 10000, 100, r), 0);
	assert_int_equal(read_all(fs, f, 1 << 30, 100, r), 0);

	/* Unaligned overwrite in the middle. */
	fill_pattern(w + 3000, 5000, 7);
	write_ok(fs, &ROOT, f, 3000, w + 3000, 5000);
	assert_int_equal(read_all(fs, f, 0, 10000, r), 10000);
	assert_memory_equal(r, w, 10000);
	assert_int_equal(getattr_ok(fs, f).size, 10000);

	/* A write far out leaves a hole that reads as zeros. */
	fill_pattern(w, 100, 3);
	write_ok(fs, &ROOT, f, (1 << 20) + 10, w, 100);
	a1 = getattr_ok(fs, f);
	assert_int_equal(a1.size, (1 << 20) + 110);
	assert_int_equal(a1.blocks, 4 * 8);
	assert_int_equal(read_all(fs, f, 10000, (1 << 20) - 10000, r),
			 (1 << 20) - 10000);
	assert_true(all_zero(r, (1 << 20) - 10000));
	assert_int_equal(read_all(fs, f, (1 << 20) + 10, 200, r), 100);
	assert_memory_equal(r, w, 100);

	/* Append writes at the end whatever the offset says. */
	n = (size_t)a1.size;
	{
		size_t wr = 0;

		assert_int_equal(mfs_write(fs, &ROOT, f, 0, "tail", 4,
					   MFS_WRITE_APPEND, &wr), 0);
		assert_int_equal(wr, 4);
	}
	assert_int_equal(getattr_ok(fs, f).size, n + 4);
	assert_int_equal(read_all(fs, f, n, 10, r), 4);
	assert_memory_equal(r, "tail", 4);

	/* relatime: a read after a write moves atime, a second one not. */
	write_ok(fs, &ROOT, f, 0, w, 1);
	a0 = getattr_ok(fs, f);
	tick();
	read_all(fs, f, 0, 10, r);
	a1 = getattr_ok(fs, f);
	assert_ts_newer(a1.atime, a0.atime);
	assert_ts_same(a1.mtime, a0.mtime);
	assert_ts_same(a1.ctime, a0.ctime);
	tick();
	read_all(fs, f, 0, 10, r);
	assert_ts_same(getattr_ok(fs, f).atime, a1.atime);

	/* Not regular files. */
	d = mkdir_ok(fs, MFS_ROOT, "d", 0755);
	assert_int_equal(mfs_mknod(fs, &ROOT, MFS_ROOT, "p", S_IFIFO | 0644, 0,
				   &a), 0);
	mfs_forget(fs, a.ino, 1);
	p = a.ino;
	{
		struct iovec iov[4];
		unsigned cnt;
		size_t wr, got;

		assert_int_equal(mfs_write(fs, &ROOT, d, 0, "x", 1, 0, &wr), -EISDIR);
		assert_int_equal(mfs_write(fs, &ROOT, p, 0, "x", 1, 0, &wr), -EINVAL);
		assert_int_equal(mfs_write(fs, &ROOT, 343434, 0, "x", 1, 0, &wr),
				 -ENOENT);
		assert_int_equal(mfs_read(fs, d, 0, 10, iov, 4, &cnt, &got), -EISDIR);
		assert_int_equal(mfs_read(fs, p, 0, 10, iov, 4, &cnt, &got), -EINVAL);
		/* Writing nothing changes nothing. */
		a0 = getattr_ok(fs, f);
		assert_int_equal(mfs_write(fs, &ROOT, f, 1 << 22, "x", 0, 0, &wr), 0);
		assert_int_equal(wr, 0);
		assert_attr_is(fs, f, &a0);
	}
	mfs_release(fs, f);
	mfs_forget(fs, f, 1);
	reopen_check(fx);
	fs = fx->fs;
	assert_int_equal(read_all(fs, f, (1 << 20) + 10, 100, r), 100);
	assert_memory_equal(r, w, 100);
	free(w);
	free(r);
}

/* Pages of the image holding [off, off+len) of ino that are in the page
 * cache (mincore on the pointers mfs_read gives, which touches nothing),
 * and pages in all. */
static void image_residency(struct mfs_fs *fs, uint64_t ino, uint64_t off,
			    size_t len, size_t *res, size_t *all)
{
	unsigned iovmax = (unsigned)(len >> 12) + 2, cnt = 0, i;
	struct iovec *iov = calloc(iovmax, sizeof(*iov));
	unsigned char vec[256];
	size_t bytes = 0;

	assert_non_null(iov);
	assert_int_equal(mfs_read(fs, ino, off, len, iov, iovmax, &cnt,
				  &bytes), 0);
	for (i = 0; i < cnt; i++) {
		uintptr_t a = (uintptr_t)iov[i].iov_base & ~(uintptr_t)4095;
		uintptr_t e = (uintptr_t)iov[i].iov_base + iov[i].iov_len;

		while (a < e) {
			size_t n = (e - a + 4095) >> 12, k;

			if (n > sizeof(vec))
				n = sizeof(vec);
			assert_int_equal(mincore((void *)a, n << 12, vec), 0);
			for (k = 0; k < n; k++)
				*res += vec[k] & 1;
			*all += n;
			a += n << 12;
		}
	}
	free(iov);
}

/* Skips the test when the image's pages cannot leave memory (tmpfs,
 * ramfs): nothing to measure there. */
static void skip_if_undroppable(struct fx *fx)
{
	struct statfs sf;

	assert_int_equal(statfs(fx->img, &sf), 0);
	if (sf.f_type == 0x01021994 || sf.f_type == 0x858458f6) {
		MFS_SKIP("image on tmpfs/ramfs: pages cannot be dropped\n");
	}
}

/* Read [0, size) of ino in chunks of step bytes, in order or from the end
 * backwards, each followed by mfs_read_cached as the FUSE glue does;
 * checks the data (pattern seed). */
/* The order of a stream's requests: from the start, from the end, or
 * from the start in groups of 8 each served last-first, as requests
 * served concurrently (over io_uring, one queue per CPU) may complete. */
enum order { FORWARD, BACKWARD, SHUFFLED };

static uint64_t nth_off(size_t i, size_t n, size_t step, enum order o)
{
	if (o == BACKWARD)
		return (n - 1 - i) * step;
	/* a last, short group goes in order */
	if (o == SHUFFLED && i / 8 * 8 + 8 <= n)
		return (i / 8 * 8 + 7 - i % 8) * step;
	return i * step;
}

static void read_handed_over(struct mfs_fs *fs, uint64_t ino, size_t size,
			     size_t step, enum order o, unsigned seed)
{
	unsigned char *want = malloc(size), *got = malloc(step);
	size_t i, n = size / step;

	assert_non_null(want);
	assert_non_null(got);
	fill_pattern(want, size, seed);
	for (i = 0; i < n; i++) {
		uint64_t off = nth_off(i, n, step, o);

		assert_int_equal(read_all(fs, ino, off, step, got), step);
		if (memcmp(got, want + off, step) != 0)
			fail_msg("data differs at %llu", (unsigned long long)off);
		mfs_read_cached(fs, ino, off, step);
	}
	free(want);
	free(got);
}

/*
 * mfs_read_cached: behind a sequential reader the image's copy of the file
 * is dropped (the caller keeps one); random or backward reads keep it. The
 * data never changes.
 */
static void test_read_cached_drops(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	const size_t big = 48u << 20, small = 8u << 20;
	size_t res = 0, all = 0;
	unsigned char *w;
	struct mfs_attr a;
	uint64_t f, g;

	NEED_DATA(fs);
	skip_if_undroppable(fx);
	w = malloc(big);
	assert_non_null(w);
	assert_int_equal(mfs_create(fs, &ROOT, MFS_ROOT, "f", 0644, O_RDWR, &a), 0);
	f = a.ino;
	fill_pattern(w, big, 7);
	write_ok(fs, &ROOT, f, 0, w, big);
	assert_int_equal(mfs_create(fs, &ROOT, MFS_ROOT, "g", 0644, O_RDWR, &a), 0);
	g = a.ino;
	fill_pattern(w, small, 8);
	write_ok(fs, &ROOT, g, 0, w, small);
	/* Clean pages only can go. */
	assert_int_equal(mfs_fs_sync(fs), 0);

	/* Backwards: no stream, nothing dropped. */
	read_handed_over(fs, g, small, 128u << 10, BACKWARD, 8);
	image_residency(fs, g, 0, small, &res, &all);
	assert_int_equal(all, small >> 12);
	assert_int_equal(res, all);

	/* A stream of 128 KiB reads: dropped behind it and at the end of
	 * the file. Folios that hold other blocks too (the tree's, next to
	 * the file's first and last blocks) may stay. */
	read_handed_over(fs, f, big, 128u << 10, FORWARD, 7);
	res = all = 0;
	image_residency(fs, f, 0, big, &res, &all);
	assert_int_equal(all, big >> 12);
	print_message("after a sequential read: %zu of %zu pages in memory\n", res, all);
	if (res > (4u << 20) >> 12)
		fail_msg("%zu of %zu pages still in memory", res, all);
	/* Read again (from the image file now), the same data. */
	read_handed_over(fs, f, big, 1u << 20, FORWARD, 7);
	/* Served out of order (io_uring's queues): dropped all the same,
	 * but for the late pieces of the last group. */
	read_handed_over(fs, f, big, 1u << 20, SHUFFLED, 7);
	res = all = 0;
	image_residency(fs, f, 0, big, &res, &all);
	print_message("after an out-of-order read: %zu of %zu pages in memory\n",
		      res, all);
	if (res > (16u << 20) >> 12)
		fail_msg("%zu of %zu pages still in memory", res, all);
	free(w);
}

/* Write [0, size) of ino (pattern seed) in chunks of step bytes, in order
 * o, each followed by mfs_write_behind as the FUSE glue does. */
static void write_handed_over(struct mfs_fs *fs, uint64_t ino, size_t size,
			      size_t step, enum order o, unsigned seed)
{
	unsigned char *w = malloc(size);
	size_t i, n = size / step;

	assert_non_null(w);
	fill_pattern(w, size, seed);
	for (i = 0; i < n; i++) {
		uint64_t off = nth_off(i, n, step, o);

		write_ok(fs, &ROOT, ino, off, w + off, step);
		mfs_write_behind(fs, ino, off, step);
	}
	free(w);
}

/*
 * mfs_write_behind: behind a sequential writer the image's copy is written
 * back and dropped (the caller keeps one); backward writes keep it. The
 * data never changes, before or after a commit and a reopen.
 */
/* O_TMPFILE: a file without links on the orphan list; one link may name
 * it; otherwise the last forget, or the next open after a crash, removes
 * it. Other files without links stay unnamable (ENOENT). */
/*
 * A failed sync of file data alone (nothing left to commit: a commit that
 * made room for an allocation already wrote the metadata) is as permanent
 * as a failed commit: fsync gets EIO, and neither an abort nor a retry
 * clears it, since the kernel may have dropped the pages that failed.
 */
static void test_data_sync_failure_sticks(void **state)
{
	struct fx *fx = *state;
	struct mfs_vol *v = mfs_fs_vol(fx->fs);
	struct mfs_attr a, b;
	char buf[8192];

	memset(buf, 'd', sizeof(buf));
	assert_int_equal(mfs_create(fx->fs, &ROOT, MFS_ROOT_INO, "f",
				    S_IFREG | 0644, O_RDWR, &a), 0);
	write_ok(fx->fs, &ROOT, a.ino, 0, buf, sizeof(buf));
	/* As need_space's unpin_for does: a commit outside sync. */
	assert_int_equal(mfs_txn_commit(v), 0);
	v->img->fail_syncs = 1;
	assert_int_equal(mfs_fsync(fx->fs, a.ino, true), -EIO);
	assert_int_equal(mfs_fs_abort(fx->fs), -EIO);
	assert_int_equal(mfs_fs_error(fx->fs), -EIO);
	assert_int_equal(mfs_fsync(fx->fs, a.ino, true), -EIO);
	assert_int_equal(mfs_create(fx->fs, &ROOT, MFS_ROOT_INO, "g",
				    S_IFREG | 0644, O_RDWR, &b), -EROFS);
	mfs_release(fx->fs, a.ino);
	assert_int_not_equal(mfs_fs_close(fx->fs), 0);
	fx->fs = NULL;
}

static void test_tmpfile(void **state)
{
	struct fx *fx = *state;
	struct mfs_attr a, b, c, x;
	size_t w;

	assert_int_equal(mfs_tmpfile(fx->fs, &ROOT, MFS_ROOT_INO, 0640, &a), 0);
	assert_int_equal(a.nlink, 0);
	assert_int_equal(a.mode, S_IFREG | 0640);
	assert_int_equal(mfs_write(fx->fs, &ROOT, a.ino, 0, "tmp", 3, 0, &w), 0);
	assert_int_equal(mfs_link(fx->fs, a.ino, MFS_ROOT_INO, "named", &x), 0);
	assert_int_equal(x.nlink, 1);
	mfs_forget(fx->fs, a.ino, 1); /* the link's lookup stays */
	assert_int_equal(mfs_lookup(fx->fs, MFS_ROOT_INO, "named", &x), 0);
	assert_int_equal(x.ino, a.ino);
	assert_int_equal(x.size, 3);
	/* Once unlinked it is an ordinary orphan: not linkable again. */
	assert_int_equal(mfs_unlink(fx->fs, MFS_ROOT_INO, "named"), 0);
	assert_int_equal(mfs_link(fx->fs, a.ino, MFS_ROOT_INO, "again", &x),
			 -ENOENT);
	mfs_forget(fx->fs, a.ino, 2);
	assert_int_equal(mfs_getattr(fx->fs, a.ino, &x), -ENOENT);
	/* Never named: gone with the last forget. */
	assert_int_equal(mfs_tmpfile(fx->fs, &ROOT, MFS_ROOT_INO, 0600, &b), 0);
	assert_int_equal(mfs_fs_sync(fx->fs), 0);
	mfs_forget(fx->fs, b.ino, 1);
	assert_int_equal(mfs_getattr(fx->fs, b.ino, &x), -ENOENT);
	/* Committed, then a crash: the next open removes it. */
	assert_int_equal(mfs_tmpfile(fx->fs, &ROOT, MFS_ROOT_INO, 0600, &c), 0);
	assert_int_equal(mfs_fs_sync(fx->fs), 0);
	crash_reopen(fx);
	assert_int_equal(mfs_getattr(fx->fs, c.ino, &x), -ENOENT);
	/* Not in a directory that is not one. */
	assert_int_equal(mfs_tmpfile(fx->fs, &ROOT, 999999, 0600, &x), -ENOENT);
}

/* MFS_WRITE_NO_GAP (writeback near full): a write beyond the end first
 * preallocates the gap from the end, so no hole is left if the gap's own
 * data then does not fit; or, without room for both, writes nothing. */
static void test_write_no_gap(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t f = mkfile(fs, MFS_ROOT_INO, "gap", 0644);
	uint64_t g = mkfile(fs, MFS_ROOT_INO, "sparse", 0644);
	static char zero[1 << 20], back[1 << 20];
	struct mfs_attr a;
	size_t w = 7;

	assert_int_equal(mfs_write(fs, &ROOT, f, 1 << 20, "abc", 3,
				   MFS_WRITE_NO_GAP, &w), 0);
	assert_int_equal(w, 3);
	assert_int_equal(mfs_getattr(fs, f, &a), 0);
	assert_int_equal(a.size, (1 << 20) + 3);
	assert_true(a.blocks * 512 >= (1 << 20) + 4096);
	assert_int_equal(read_all(fs, f, 0, 1 << 20, back), 1 << 20);
	assert_memory_equal(back, zero, 1 << 20);
	/* Without the flag the gap stays a hole. */
	write_ok(fs, &ROOT, g, 1 << 20, "abc", 3);
	assert_int_equal(mfs_getattr(fs, g, &a), 0);
	assert_int_equal(a.blocks, 8);
	/* A gap larger than the volume: nothing written, nothing changed. */
	w = 7;
	assert_int_equal(mfs_write(fs, &ROOT, g, 4ULL << 30, "abc", 3,
				   MFS_WRITE_NO_GAP, &w), -ENOSPC);
	assert_int_equal(w, 0);
	assert_int_equal(mfs_getattr(fs, g, &a), 0);
	assert_int_equal(a.size, (1 << 20) + 3);
	assert_int_equal(a.blocks, 8);
	/* Within the file's size the flag changes nothing. */
	assert_int_equal(mfs_write(fs, &ROOT, g, 0, "xyz", 3,
				   MFS_WRITE_NO_GAP, &w), 0);
	assert_int_equal(mfs_getattr(fs, g, &a), 0);
	assert_int_equal(a.blocks, 16);
}

static void test_write_behind_drops(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	const size_t big = 48u << 20, small = 8u << 20;
	size_t res = 0, all = 0;
	struct mfs_attr a;
	uint64_t f, g, h;

	NEED_DATA(fs);
	skip_if_undroppable(fx);
	assert_int_equal(mfs_create(fs, &ROOT, MFS_ROOT, "f", 0644, O_RDWR, &a), 0);
	f = a.ino;
	assert_int_equal(mfs_create(fs, &ROOT, MFS_ROOT, "g", 0644, O_RDWR, &a), 0);
	g = a.ino;
	assert_int_equal(mfs_create(fs, &ROOT, MFS_ROOT, "h", 0644, O_RDWR, &a), 0);
	h = a.ino;

	write_handed_over(fs, g, small, 1u << 20, BACKWARD, 8);
	image_residency(fs, g, 0, small, &res, &all);
	assert_int_equal(all, small >> 12);
	assert_int_equal(res, all);

	/* 16 MiB behind the end stays (and the folios at the edges). */
	write_handed_over(fs, f, big, 1u << 20, FORWARD, 7);
	res = all = 0;
	image_residency(fs, f, 0, big, &res, &all);
	assert_int_equal(all, big >> 12);
	print_message("after a sequential write: %zu of %zu pages in memory\n",
		      res, all);
	if (res > (24u << 20) >> 12)
		fail_msg("%zu of %zu pages still in memory", res, all);
	/* Out of order, as io_uring's queues complete writeback: the same,
	 * but for the late pieces of the last group. */
	write_handed_over(fs, h, big, 1u << 20, SHUFFLED, 9);
	res = all = 0;
	image_residency(fs, h, 0, big, &res, &all);
	print_message("after an out-of-order write: %zu of %zu pages in "
		      "memory\n", res, all);
	if (res > (32u << 20) >> 12)
		fail_msg("%zu of %zu pages still in memory", res, all);
	read_handed_over(fs, f, big, 1u << 20, FORWARD, 7);
	read_handed_over(fs, g, small, 1u << 20, FORWARD, 8);
	read_handed_over(fs, h, big, 1u << 20, FORWARD, 9);
	mfs_release(fs, f);
	mfs_release(fs, g);
	mfs_release(fs, h);
	mfs_forget(fs, f, 1);
	mfs_forget(fs, g, 1);
	mfs_forget(fs, h, 1);
	reopen_check(fx);
	read_handed_over(fx->fs, f, big, 1u << 20, FORWARD, 7);
	read_handed_over(fx->fs, g, small, 1u << 20, FORWARD, 8);
	read_handed_over(fx->fs, h, big, 1u << 20, FORWARD, 9);
}

static void test_data_efbig(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t f = mkfile(fs, MFS_ROOT, "f", 0644);
	struct mfs_attr in = { 0 }, a;
	unsigned char r[4];
	size_t wr = 0;

	NEED_DATA(fs);
	assert_int_equal(mfs_write(fs, &ROOT, f, MFS_FILE_SIZE_MAX, "ab", 2, 0,
				   &wr), -EFBIG);
	assert_int_equal(wr, 0);
	assert_int_equal(getattr_ok(fs, f).size, 0);
	/* Up to the limit: a short write, as write(2) does. */
	assert_int_equal(mfs_write(fs, &ROOT, f, MFS_FILE_SIZE_MAX - 1, "ab", 2,
				   0, &wr), 0);
	assert_int_equal(wr, 1);
	assert_int_equal(getattr_ok(fs, f).size, MFS_FILE_SIZE_MAX);
	assert_int_equal(read_all(fs, f, MFS_FILE_SIZE_MAX - 1, 4, r), 1);
	assert_int_equal(r[0], 'a');
	in.size = MFS_FILE_SIZE_MAX + 1;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_SIZE, &a), -EFBIG);
	in.size = 0;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_SIZE, &a), 0);
	assert_int_equal(a.blocks, 0);
	reopen_check(fx);
}

static void test_data_truncate(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	unsigned char w[3 * 4096 + 100], r[20000];
	uint64_t f = mkfile(fs, MFS_ROOT, "f", 0644);
	struct mfs_attr in = { 0 }, a, a0;

	NEED_DATA(fs);
	memset(w, 'x', sizeof(w));
	write_ok(fs, &ROOT, f, 0, w, sizeof(w));
	assert_int_equal(getattr_ok(fs, f).blocks, 4 * 8);
	a0 = getattr_ok(fs, f);
	tick();
	in.size = 5000;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_SIZE, &a), 0);
	assert_int_equal(a.size, 5000);
	assert_int_equal(a.blocks, 2 * 8);
	assert_ts_newer(a.mtime, a0.mtime);
	assert_ts_same(a.mtime, a.ctime);
	/* Growing again shows zeros past the old end, not the old bytes. */
	in.size = 20000;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_SIZE, &a), 0);
	assert_int_equal(a.size, 20000);
	assert_int_equal(a.blocks, 2 * 8);
	assert_int_equal(read_all(fs, f, 0, 20000, r), 20000);
	assert_memory_equal(r, w, 5000);
	assert_true(all_zero(r + 5000, 15000));
	/* The same size: times still move (truncate(2) on ext4). */
	a0 = a;
	tick();
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_SIZE, &a), 0);
	assert_ts_newer(a.mtime, a0.mtime);
	assert_ts_newer(a.ctime, a0.ctime);
	/* O_TRUNC. */
	write_ok(fs, &ROOT, f, 0, w, sizeof(w));
	assert_int_equal(mfs_open(fs, &ROOT, f, O_WRONLY | O_TRUNC), 0);
	assert_int_equal(mfs_release(fs, f), 0);
	a = getattr_ok(fs, f);
	assert_int_equal(a.size, 0);
	assert_int_equal(a.blocks, 0);
	/* Shrinking inside a block keeps the rest of it zero on regrowth. */
	write_ok(fs, &ROOT, f, 0, w, 4096);
	in.size = 10;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_SIZE, &a), 0);
	in.size = 4096;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_SIZE, &a), 0);
	assert_int_equal(read_all(fs, f, 0, 4096, r), 4096);
	assert_memory_equal(r, w, 10);
	assert_true(all_zero(r + 10, 4086));
	reopen_check(fx);
}

/* Writes and truncates by a caller without CAP_FSETID drop setuid, and
 * setgid when group-executable (ext4 via file_remove_privs and
 * do_truncate); a caller with it keeps them. */
static void test_data_killpriv(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	const struct mfs_cred user_in_group = { 1000, 1000, false, true };
	struct mfs_attr in = { 0 }, a;
	uint64_t f[8];
	size_t wr;
	unsigned i;

	NEED_DATA(fs);
	for (i = 0; i < 8; i++) {
		char name[8];

		snprintf(name, sizeof(name), "f%u", i);
		f[i] = mkfile(fs, MFS_ROOT, name, i == 2 ? 02745 : 06755);
	}
	assert_int_equal(mfs_write(fs, &USER, f[0], 0, "x", 1,
				   MFS_WRITE_KILL_PRIV, &wr), 0);
	assert_int_equal(getattr_ok(fs, f[0]).mode, S_IFREG | 0755);
	assert_int_equal(mfs_write(fs, &ROOT, f[1], 0, "x", 1,
				   MFS_WRITE_KILL_PRIV, &wr), 0);
	assert_int_equal(getattr_ok(fs, f[1]).mode, S_IFREG | 06755);
	/* setgid without group-execute is a mandatory-locking mark: kept
	 * for a writer in the group. */
	assert_int_equal(mfs_write(fs, &user_in_group, f[2], 0, "x", 1,
				   MFS_WRITE_KILL_PRIV, &wr), 0);
	assert_int_equal(getattr_ok(fs, f[2]).mode, S_IFREG | 02745);
	in.size = 100;
	assert_int_equal(mfs_setattr(fs, &USER, f[3], &in, MFS_SET_SIZE, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 0755);
	assert_int_equal(mfs_setattr(fs, &ROOT, f[4], &in, MFS_SET_SIZE, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 06755);
	assert_int_equal(mfs_open(fs, &USER, f[5], O_WRONLY | O_TRUNC), 0);
	assert_int_equal(mfs_release(fs, f[5]), 0);
	assert_int_equal(getattr_ok(fs, f[5]).mode, S_IFREG | 0755);
	assert_int_equal(mfs_open(fs, &ROOT, f[6], O_WRONLY | O_TRUNC), 0);
	assert_int_equal(mfs_release(fs, f[6]), 0);
	assert_int_equal(getattr_ok(fs, f[6]).mode, S_IFREG | 06755);
	reopen_check(fx);
}

static void test_data_killpriv_outside_group(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	struct mfs_attr in = { .uid = 1000, .gid = 2000, .size = 5 }, a;
	uint64_t f = mkfile(fs, MFS_ROOT, "f", 02746);
	uint64_t g = mkfile(fs, MFS_ROOT, "g", 02746);
	size_t wr;

	NEED_DATA(fs);
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_UID | MFS_SET_GID,
				     &a), 0);
	assert_int_equal(mfs_setattr(fs, &ROOT, g, &in, MFS_SET_UID | MFS_SET_GID,
				     &a), 0);
	assert_int_equal(mfs_write(fs, &USER, f, 0, "x", 1, MFS_WRITE_KILL_PRIV,
				   &wr), 0);
	assert_int_equal(getattr_ok(fs, f).mode, S_IFREG | 0746);
	assert_int_equal(mfs_setattr(fs, &USER, g, &in, MFS_SET_SIZE, &a), 0);
	assert_int_equal(a.mode, S_IFREG | 0746);
}

/* Killing privileges also drops "security.capability" (the kernel's
 * cap_inode_killpriv), before the data changes; MFS_SET_KILL_PRIV alone
 * kills them whatever the credentials (the kernel's word). */
static void test_data_killpriv_cap(void **state)
{
	static const unsigned char cap[20] = { 0x01, 0, 0, 0x02, 0, 0x04 };
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	struct mfs_attr in = { .uid = 7, .gid = 7, .size = 1 }, a;
	const char *name = "security.capability";
	uint64_t f[7];
	size_t wr, len;
	unsigned i;

	NEED_DATA(fs);
	for (i = 0; i < 7; i++) {
		char nm[8];

		snprintf(nm, sizeof(nm), "c%u", i);
		f[i] = mkfile(fs, MFS_ROOT, nm, 06755);
		assert_int_equal(mfs_setxattr(fs, f[i], name, cap, sizeof(cap),
					      0), 0);
	}
	/* with CAP_FSETID: a write keeps both */
	assert_int_equal(mfs_write(fs, &ROOT, f[0], 0, "x", 1,
				   MFS_WRITE_KILL_PRIV, &wr), 0);
	assert_int_equal(mfs_getxattr(fs, f[0], name, NULL, 0, &len), 0);
	assert_int_equal(getattr_ok(fs, f[0]).mode, S_IFREG | 06755);
	/* without: write, truncate, O_TRUNC open drop both */
	assert_int_equal(mfs_write(fs, &USER, f[1], 0, "x", 1,
				   MFS_WRITE_KILL_PRIV, &wr), 0);
	assert_int_equal(mfs_setattr(fs, &USER, f[2], &in, MFS_SET_SIZE, &a), 0);
	assert_int_equal(mfs_open(fs, &USER, f[3], O_WRONLY | O_TRUNC), 0);
	assert_int_equal(mfs_release(fs, f[3]), 0);
	/* chown, whoever asks */
	assert_int_equal(mfs_setattr(fs, &ROOT, f[4], &in, MFS_SET_UID, &a), 0);
	/* the kernel's word */
	assert_int_equal(mfs_setattr(fs, &ROOT, f[5], &in, MFS_SET_KILL_PRIV,
				     &a), 0);
	for (i = 1; i < 6; i++) {
		assert_int_equal(mfs_getxattr(fs, f[i], name, NULL, 0, &len),
				 -ENODATA);
		assert_int_equal(getattr_ok(fs, f[i]).mode & 06000, 0);
	}
	/* a write that is not flagged leaves them */
	assert_int_equal(mfs_write(fs, &USER, f[6], 0, "x", 1, 0, &wr), 0);
	assert_int_equal(mfs_getxattr(fs, f[6], name, NULL, 0, &len), 0);
	assert_int_equal(getattr_ok(fs, f[6]).mode, S_IFREG | 06755);
	reopen_check(fx);
}

static void test_data_orphan(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	unsigned char *w, *r;
	struct mfs_statfs s0, s1, s2;
	struct mfs_attr a = { 0 };
	uint64_t f;

	NEED_DATA(fs);
	w = malloc(1 << 20);
	r = malloc(1 << 20);
	assert_non_null(w);
	assert_non_null(r);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_statfs(fs, &s0), 0);
	assert_int_equal(mfs_create(fs, &ROOT, MFS_ROOT, "f", 0644, O_RDWR, &a), 0);
	f = a.ino;
	mfs_forget(fs, f, 1);
	fill_pattern(w, 1 << 20, 9);
	write_ok(fs, &ROOT, f, 0, w, 1 << 20);
	assert_int_equal(mfs_unlink(fs, MFS_ROOT, "f"), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(read_all(fs, f, 0, 1 << 20, r), 1 << 20);
	assert_memory_equal(r, w, 1 << 20);
	write_ok(fs, &ROOT, f, 1 << 20, w, 4096);
	assert_int_equal(getattr_ok(fs, f).size, (1 << 20) + 4096);
	assert_int_equal(mfs_statfs(fs, &s1), 0);
	assert_true(s1.bfree + 256 < s0.bfree);
	assert_int_equal(mfs_release(fs, f), 0);
	assert_int_equal(mfs_getattr(fs, f, &a), -ENOENT);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_statfs(fs, &s2), 0);
	assert_true(s2.bfree + 8 >= s0.bfree && s2.bfree <= s0.bfree + 8);

	/* The same through a crash: the data goes at the next open. */
	assert_int_equal(mfs_create(fs, &ROOT, MFS_ROOT, "g", 0644, O_RDWR, &a), 0);
	f = a.ino;
	write_ok(fs, &ROOT, f, 0, w, 1 << 20);
	assert_int_equal(mfs_unlink(fs, MFS_ROOT, "g"), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	crash_reopen(fx);
	fs = fx->fs;
	assert_int_equal(mfs_getattr(fs, f, &a), -ENOENT);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_statfs(fs, &s2), 0);
	assert_true(s2.bfree + 8 >= s0.bfree && s2.bfree <= s0.bfree + 8);
	free(w);
	free(r);
	reopen_check(fx);
}

static void test_data_fallocate(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	unsigned char *w, *r;
	uint64_t f = mkfile(fs, MFS_ROOT, "f", 0644);
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755);
	struct mfs_attr a, a0;
	const uint64_t M = 1 << 20;

	NEED_DATA(fs);
	w = malloc(1 << 20);
	r = malloc(1 << 20);
	assert_non_null(w);
	assert_non_null(r);
	a0 = getattr_ok(fs, f);
	tick();
	assert_int_equal(mfs_fallocate(fs, f, 0, 0, M), 0);
	a = getattr_ok(fs, f);
	assert_int_equal(a.size, M);
	assert_int_equal(a.blocks, M / 512);
	assert_ts_newer(a.ctime, a0.ctime);
	assert_int_equal(read_all(fs, f, 0, M, r), M);
	assert_true(all_zero(r, M));
	/* KEEP_SIZE past the end: blocks, no size. */
	assert_int_equal(mfs_fallocate(fs, f, FALLOC_FL_KEEP_SIZE, M, M), 0);
	a = getattr_ok(fs, f);
	assert_int_equal(a.size, M);
	assert_int_equal(a.blocks, 2 * M / 512);
	assert_int_equal(read_all(fs, f, M, 10, r), 0);
	/* Data over part of it, then punch a hole through. */
	fill_pattern(w, M, 5);
	write_ok(fs, &ROOT, f, 0, w, M);
	a0 = getattr_ok(fs, f);
	tick();
	assert_int_equal(mfs_fallocate(fs, f, FALLOC_FL_PUNCH_HOLE |
				       FALLOC_FL_KEEP_SIZE, 8192, 3 * 4096), 0);
	a = getattr_ok(fs, f);
	assert_int_equal(a.size, M);
	assert_int_equal(a.blocks, a0.blocks - 3 * 8);
	assert_ts_newer(a.mtime, a0.mtime);
	assert_ts_newer(a.ctime, a0.ctime);
	assert_int_equal(read_all(fs, f, 0, M, r), M);
	assert_memory_equal(r, w, 8192);
	assert_true(all_zero(r + 8192, 3 * 4096));
	assert_memory_equal(r + 8192 + 3 * 4096, w + 8192 + 3 * 4096,
			    M - 8192 - 3 * 4096);
	/* Unaligned punch: partial blocks zeroed, not freed. */
	assert_int_equal(mfs_fallocate(fs, f, FALLOC_FL_PUNCH_HOLE |
				       FALLOC_FL_KEEP_SIZE, 100000, 10), 0);
	assert_int_equal(read_all(fs, f, 99990, 30, r), 30);
	assert_memory_equal(r, w + 99990, 10);
	assert_true(all_zero(r + 10, 10));
	assert_memory_equal(r + 20, w + 100010, 10);
	/* Zero range, and zero range extending the file. */
	assert_int_equal(mfs_fallocate(fs, f, FALLOC_FL_ZERO_RANGE, 200000,
				       5000), 0);
	assert_int_equal(read_all(fs, f, 200000, 5000, r), 5000);
	assert_true(all_zero(r, 5000));
	assert_int_equal(mfs_fallocate(fs, f, FALLOC_FL_ZERO_RANGE, M - 10,
				       100), 0);
	assert_int_equal(getattr_ok(fs, f).size, M + 90);
	assert_int_equal(mfs_fallocate(fs, f, FALLOC_FL_ZERO_RANGE |
				       FALLOC_FL_KEEP_SIZE, M + 90, 4096), 0);
	assert_int_equal(getattr_ok(fs, f).size, M + 90);
	/* Refused modes and arguments. */
	assert_int_equal(mfs_fallocate(fs, f, FALLOC_FL_PUNCH_HOLE, 0, 4096),
			 -EOPNOTSUPP);
	assert_int_equal(mfs_fallocate(fs, f, FALLOC_FL_COLLAPSE_RANGE, 0, 4096),
			 -EOPNOTSUPP);
	assert_int_equal(mfs_fallocate(fs, f, FALLOC_FL_INSERT_RANGE, 0, 4096),
			 -EOPNOTSUPP);
	assert_int_equal(mfs_fallocate(fs, f, 0, 0, 0), -EINVAL);
	assert_int_equal(mfs_fallocate(fs, f, 0, MFS_FILE_SIZE_MAX, 4096), -EFBIG);
	assert_int_equal(mfs_fallocate(fs, d, 0, 0, 4096), -EISDIR);
	free(w);
	free(r);
	reopen_check(fx);
}

/* Every fallocate mode that succeeds sets mtime and ctime on ext4
 * (checked on this kernel: mode 0 inside or past the end, KEEP_SIZE past
 * the end, PUNCH_HOLE, ZERO_RANGE all change both). */
static void test_data_fallocate_times(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t f = mkfile(fs, MFS_ROOT, "f", 0644);
	static const struct {
		int mode;
		uint64_t off, len;
	} c[] = {
		{ 0, 0, 4096 },
		{ 0, 200000, 4096 },
		{ FALLOC_FL_KEEP_SIZE, 300000, 4096 },
		{ FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096 },
		{ FALLOC_FL_ZERO_RANGE, 0, 4096 },
		{ FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 400000, 4096 },
	};
	unsigned char w[8192];
	struct mfs_attr a0, a1;
	size_t i;

	NEED_DATA(fs);
	memset(w, 7, sizeof(w));
	write_ok(fs, &ROOT, f, 0, w, sizeof(w));
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		a0 = getattr_ok(fs, f);
		tick();
		assert_int_equal(mfs_fallocate(fs, f, c[i].mode, c[i].off,
					       c[i].len), 0);
		a1 = getattr_ok(fs, f);
		print_message("fallocate mode %#x: mtime %s, ctime %s\n",
			      c[i].mode, ts_cmp(a1.mtime, a0.mtime) ? "set" : "kept",
			      ts_cmp(a1.ctime, a0.ctime) ? "set" : "kept");
		assert_ts_newer(a1.ctime, a0.ctime);
		assert_ts_newer(a1.mtime, a0.mtime);
	}
}

static void test_data_lseek(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t f = mkfile(fs, MFS_ROOT, "f", 0644), res;
	struct mfs_attr in = { 0 }, a;
	unsigned char w[4096];
	const uint64_t M = 1 << 20;

	NEED_DATA(fs);
	memset(w, 1, sizeof(w));
	write_ok(fs, &ROOT, f, 0, w, 4096);
	write_ok(fs, &ROOT, f, M, w, 4096);
	in.size = 2 * M;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_SIZE, &a), 0);
	/* Preallocated (unwritten) space counts as a hole. */
	assert_int_equal(mfs_fallocate(fs, f, FALLOC_FL_KEEP_SIZE, 3 * M / 2,
				       8192), 0);
	assert_int_equal(mfs_lseek(fs, f, 0, SEEK_DATA, &res), 0);
	assert_int_equal(res, 0);
	assert_int_equal(mfs_lseek(fs, f, 0, SEEK_HOLE, &res), 0);
	assert_int_equal(res, 4096);
	assert_int_equal(mfs_lseek(fs, f, 100, SEEK_HOLE, &res), 0);
	assert_int_equal(res, 4096);
	assert_int_equal(mfs_lseek(fs, f, 4096, SEEK_DATA, &res), 0);
	assert_int_equal(res, M);
	assert_int_equal(mfs_lseek(fs, f, M + 5, SEEK_DATA, &res), 0);
	assert_int_equal(res, M + 5);
	assert_int_equal(mfs_lseek(fs, f, M, SEEK_HOLE, &res), 0);
	assert_int_equal(res, M + 4096);
	assert_int_equal(mfs_lseek(fs, f, M + 4096, SEEK_DATA, &res), -ENXIO);
	assert_int_equal(mfs_lseek(fs, f, 3 * M / 2, SEEK_HOLE, &res), 0);
	assert_int_equal(res, 3 * M / 2);
	assert_int_equal(mfs_lseek(fs, f, 2 * M, SEEK_HOLE, &res), -ENXIO);
	assert_int_equal(mfs_lseek(fs, f, 2 * M, SEEK_DATA, &res), -ENXIO);
	assert_int_equal(mfs_lseek(fs, f, 2 * M - 1, SEEK_HOLE, &res), 0);
	assert_int_equal(res, 2 * M - 1);
	assert_int_equal(mfs_lseek(fs, f, 0, SEEK_SET, &res), -EINVAL);
	assert_int_equal(mfs_lseek(fs, f, 0, SEEK_END, &res), -EINVAL);
	assert_int_equal(mfs_lseek(fs, 929292, 0, SEEK_DATA, &res), -ENOENT);
	reopen_check(fx);
}

static void test_data_copy(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	unsigned char *w, *r;
	uint64_t s = mkfile(fs, MFS_ROOT, "s", 0644);
	uint64_t t = mkfile(fs, MFS_ROOT, "t", 0644);
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755);
	struct mfs_attr a0, a1;
	size_t c;

	NEED_DATA(fs);
	w = malloc(200000);
	r = malloc(300000);
	assert_non_null(w);
	assert_non_null(r);
	fill_pattern(w, 200000, 11);
	write_ok(fs, &ROOT, s, 0, w, 100000);
	a0 = getattr_ok(fs, t);
	tick();
	assert_int_equal(mfs_copy_file_range(fs, s, 0, t, 5000, 100000, &c), 0);
	assert_int_equal(c, 100000);
	a1 = getattr_ok(fs, t);
	assert_int_equal(a1.size, 105000);
	assert_ts_newer(a1.mtime, a0.mtime);
	assert_ts_newer(a1.ctime, a0.ctime);
	assert_int_equal(read_all(fs, t, 0, 105000, r), 105000);
	assert_true(all_zero(r, 5000));
	assert_memory_equal(r + 5000, w, 100000);
	/* Short at the end of the source; nothing past it. */
	assert_int_equal(mfs_copy_file_range(fs, s, 90000, t, 0, 50000, &c), 0);
	assert_int_equal(c, 10000);
	assert_int_equal(mfs_copy_file_range(fs, s, 100000, t, 0, 50000, &c), 0);
	assert_int_equal(c, 0);
	assert_int_equal(read_all(fs, t, 0, 10000, r), 10000);
	assert_memory_equal(r, w + 90000, 10000);
	/* Within one file: fine apart, EINVAL when overlapping. */
	assert_int_equal(mfs_copy_file_range(fs, s, 0, s, 100000, 50000, &c), 0);
	assert_int_equal(c, 50000);
	assert_int_equal(read_all(fs, s, 100000, 50000, r), 50000);
	assert_memory_equal(r, w, 50000);
	assert_int_equal(mfs_copy_file_range(fs, s, 0, s, 1000, 50000, &c),
			 -EINVAL);
	assert_int_equal(mfs_copy_file_range(fs, d, 0, t, 0, 10, &c), -EISDIR);
	assert_int_equal(mfs_copy_file_range(fs, s, 0, d, 0, 10, &c), -EISDIR);
	free(w);
	free(r);
	reopen_check(fx);
}

/* ------------------------------------------------------------------ */
/* Extended attributes                                                 */
/* ------------------------------------------------------------------ */

/* ext4 leaves an attribute that is set to the value it already has alone:
 * success, but no change and so no new ctime (checked on ext4: a second
 * setxattr of the same value keeps ctime; a different value changes it). */
static void test_xattr_same_value_keeps_ctime(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t f = mkfile(fs, MFS_ROOT, "f", 0644);
	struct mfs_attr a0;

	NEED_XATTR(fs);
	assert_int_equal(mfs_setxattr(fs, f, "user.a", "same", 4, 0), 0);
	a0 = getattr_ok(fs, f);
	tick();
	assert_int_equal(mfs_setxattr(fs, f, "user.a", "same", 4, 0), 0);
	assert_int_equal(mfs_setxattr(fs, f, "user.a", "same", 4, XATTR_REPLACE_),
			 0);
	assert_attr_is(fs, f, &a0);
	assert_int_equal(mfs_setxattr(fs, f, "user.a", "diff", 4, 0), 0);
	assert_ts_newer(getattr_ok(fs, f).ctime, a0.ctime);
}

static void test_xattr(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t f = mkfile(fs, MFS_ROOT, "f", 0644);
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755);
	uint64_t l = symlink_ok(fs, MFS_ROOT, "l", "f");
	char *big, buf[256], *lbuf;
	char *n255, *n256;
	struct mfs_attr a0, a1;
	size_t len, i;

	NEED_XATTR(fs);
	big = malloc(MFS_XATTR_SIZE_MAX + 1);
	assert_non_null(big);
	a0 = getattr_ok(fs, f);
	tick();
	assert_int_equal(mfs_setxattr(fs, f, "user.a", "value", 5, 0), 0);
	a1 = getattr_ok(fs, f);
	assert_ts_newer(a1.ctime, a0.ctime);
	assert_ts_same(a1.mtime, a0.mtime);
	assert_int_equal(mfs_getxattr(fs, f, "user.a", NULL, 0, &len), 0);
	assert_int_equal(len, 5);
	assert_int_equal(mfs_getxattr(fs, f, "user.a", buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "value", 5);
	assert_int_equal(mfs_getxattr(fs, f, "user.a", buf, 4, &len), -ERANGE);
	assert_int_equal(mfs_getxattr(fs, f, "user.b", buf, sizeof(buf), &len),
			 -ENODATA);
	assert_int_equal(mfs_setxattr(fs, f, "user.a", "x", 1, XATTR_CREATE_),
			 -EEXIST);
	assert_int_equal(mfs_setxattr(fs, f, "user.b", "x", 1, XATTR_REPLACE_),
			 -ENODATA);
	assert_int_equal(mfs_setxattr(fs, f, "user.a", "new", 3, XATTR_REPLACE_),
			 0);
	assert_int_equal(mfs_getxattr(fs, f, "user.a", buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "new", 3);
	assert_int_equal(mfs_setxattr(fs, f, "user.empty", "", 0, XATTR_CREATE_),
			 0);
	assert_int_equal(mfs_getxattr(fs, f, "user.empty", buf, sizeof(buf), &len),
			 0);
	assert_int_equal(len, 0);
	assert_int_equal(mfs_setxattr(fs, f, "trusted.t", "1", 1, 0), 0);
	assert_int_equal(mfs_setxattr(fs, f, "security.s", "2", 1, 0), 0);
	assert_int_equal(mfs_setxattr(fs, f, "other.x", "1", 1, 0), -EOPNOTSUPP);
	assert_int_equal(mfs_getxattr(fs, f, "other.x", buf, sizeof(buf), &len),
			 -EOPNOTSUPP);
	/* Names up to 255 bytes; longer is ERANGE (setxattr(2)). */
	n255 = name_of_len(255, 'n');
	n256 = name_of_len(256, 'n');
	memcpy(n255, "user.", 5);
	memcpy(n256, "user.", 5);
	assert_int_equal(mfs_setxattr(fs, f, n255, "v", 1, 0), 0);
	assert_int_equal(mfs_setxattr(fs, f, n256, "v", 1, 0), -ERANGE);
	/* Values up to 64 KiB. */
	for (i = 0; i <= MFS_XATTR_SIZE_MAX; i++)
		big[i] = (char)(i * 7);
	assert_int_equal(mfs_setxattr(fs, f, "user.big", big, MFS_XATTR_SIZE_MAX,
				      0), 0);
	assert_int_equal(mfs_setxattr(fs, f, "user.big2", big,
				      MFS_XATTR_SIZE_MAX + 1, 0), -E2BIG);
	{
		char *back = malloc(MFS_XATTR_SIZE_MAX);

		assert_non_null(back);
		assert_int_equal(mfs_getxattr(fs, f, "user.big", back,
					      MFS_XATTR_SIZE_MAX, &len), 0);
		assert_int_equal(len, MFS_XATTR_SIZE_MAX);
		assert_memory_equal(back, big, MFS_XATTR_SIZE_MAX);
		free(back);
	}
	/* List: NUL-terminated names; size 0 gives the length. */
	assert_int_equal(mfs_listxattr(fs, f, NULL, 0, &len), 0);
	lbuf = malloc(len);
	assert_non_null(lbuf);
	{
		size_t full = len, at, found = 0;

		assert_int_equal(mfs_listxattr(fs, f, lbuf, full, &len), 0);
		assert_int_equal(len, full);
		for (at = 0; at < len; at += strlen(lbuf + at) + 1) {
			assert_true(memchr(lbuf + at, 0, len - at) != NULL);
			if (!strcmp(lbuf + at, "user.a") ||
			    !strcmp(lbuf + at, "user.big") ||
			    !strcmp(lbuf + at, "user.empty") ||
			    !strcmp(lbuf + at, "trusted.t") ||
			    !strcmp(lbuf + at, "security.s") ||
			    !strcmp(lbuf + at, n255))
				found++;
		}
		assert_int_equal(found, 6);
		assert_int_equal(mfs_listxattr(fs, f, lbuf, full - 1, &len), -ERANGE);
	}
	free(lbuf);
	/* Remove. */
	a0 = getattr_ok(fs, f);
	tick();
	assert_int_equal(mfs_removexattr(fs, f, "user.a"), 0);
	assert_ts_newer(getattr_ok(fs, f).ctime, a0.ctime);
	assert_int_equal(mfs_removexattr(fs, f, "user.a"), -ENODATA);
	assert_int_equal(mfs_getxattr(fs, f, "user.a", buf, sizeof(buf), &len),
			 -ENODATA);
	/* Directories and symlinks (trusted.*) carry them too. */
	assert_int_equal(mfs_setxattr(fs, d, "user.d", "dir", 3, 0), 0);
	assert_int_equal(mfs_setxattr(fs, l, "trusted.l", "lnk", 3, 0), 0);
	assert_int_equal(mfs_setxattr(fs, 949494, "user.x", "1", 1, 0), -ENOENT);
	assert_int_equal(mfs_getxattr(fs, 949494, "user.x", buf, 1, &len), -ENOENT);
	assert_int_equal(mfs_listxattr(fs, 949494, buf, 1, &len), -ENOENT);
	assert_int_equal(mfs_removexattr(fs, 949494, "user.x"), -ENOENT);
	/* Many attributes. */
	for (i = 0; i < 300; i++) {
		char name[32], val[100];

		snprintf(name, sizeof(name), "user.many%zu", i);
		memset(val, (int)i, sizeof(val));
		assert_int_equal(mfs_setxattr(fs, d, name, val, sizeof(val), 0), 0);
	}
	reopen_check(fx);
	fs = fx->fs;
	assert_int_equal(mfs_getxattr(fs, f, "user.big", NULL, 0, &len), 0);
	assert_int_equal(len, MFS_XATTR_SIZE_MAX);
	assert_int_equal(mfs_getxattr(fs, d, "user.d", buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 3);
	for (i = 0; i < 300; i += 37) {
		char name[32];

		snprintf(name, sizeof(name), "user.many%zu", i);
		assert_int_equal(mfs_getxattr(fs, d, name, buf, sizeof(buf), &len), 0);
		assert_int_equal(len, 100);
		assert_int_equal((unsigned char)buf[0], (unsigned char)i);
	}
	/* Attributes go with their inode (check_image finds strays). */
	assert_int_equal(mfs_unlink(fs, MFS_ROOT, "f"), 0);
	assert_int_equal(mfs_unlink(fs, MFS_ROOT, "l"), 0);
	assert_int_equal(mfs_rmdir(fs, MFS_ROOT, "d"), 0);
	free(big);
	free(n255);
	free(n256);
	reopen_check(fx);
}

/* ------------------------------------------------------------------ */
/* 3. Scale                                                            */
/* ------------------------------------------------------------------ */

static void test_scale_100k_files(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	enum { N = 100000 };
	uint64_t *ino = calloc(N, sizeof(*ino));
	struct mfs_statfs s0, s1;
	struct ents l = { 0 };
	struct mfs_attr a = { 0 };
	uint64_t d;
	char name[32];
	size_t i;

	assert_non_null(ino);
	d = mkdir_ok(fs, MFS_ROOT, "big", 0755);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_statfs(fs, &s0), 0);
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "file-%06zu", i);
		if (i % 2) {
			assert_int_equal(mfs_create(fs, &ROOT, d, name, 0644,
						    O_RDWR, &a), 0);
			mfs_release(fs, a.ino);
		} else {
			assert_int_equal(mfs_mknod(fs, &ROOT, d, name,
						   S_IFREG | 0644, 0, &a), 0);
		}
		mfs_forget(fs, a.ino, 1);
		ino[i] = a.ino;
	}
	assert_int_equal(getattr_ok(fs, d).nlink, 2);
	/* Listed: every name exactly once, with its inode. */
	list_dir(fs, d, 997, false, &l);
	assert_int_equal(l.n, N + 2);
	{
		bool *seen = calloc(N, 1);

		assert_non_null(seen);
		for (i = 2; i < l.n; i++) {
			unsigned long v;

			assert_int_equal(sscanf(l.e[i].name, "file-%lu", &v), 1);
			assert_true(v < N);
			assert_false(seen[v]);
			seen[v] = true;
			assert_int_equal(l.e[i].ino, ino[v]);
		}
		free(seen);
	}
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "file-%06zu", i);
		assert_int_equal(lookup_ok(fs, d, name), ino[i]);
	}
	reopen_check(fx);
	fs = fx->fs;
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "file-%06zu", (i * 7919) % N);
		assert_int_equal(mfs_unlink(fs, d, name), 0);
	}
	list_dir(fs, d, 0, false, &l);
	assert_int_equal(l.n, 2);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_statfs(fs, &s1), 0);
	print_message("100k files: bfree %" PRIu64 " at the start, %" PRIu64
		      " after removing them\n", s0.bfree, s1.bfree);
	assert_true(s1.bfree + 4 >= s0.bfree && s1.bfree <= s0.bfree + 4);
	assert_int_equal(s1.files - s1.ffree, s0.files - s0.ffree);
	assert_int_equal(mfs_rmdir(fs, MFS_ROOT, "big"), 0);
	ents_free(&l);
	free(ino);
	reopen_check(fx);
}

static void test_scale_deep_path(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	enum { DEPTH = 100 };
	uint64_t ino[DEPTH + 1];
	struct mfs_attr a = { 0 };
	char name[32];
	int i;

	ino[0] = MFS_ROOT;
	for (i = 1; i <= DEPTH; i++) {
		snprintf(name, sizeof(name), "level%03d", i);
		ino[i] = mkdir_ok(fs, ino[i - 1], name, 0755);
	}
	mkfile(fs, ino[DEPTH], "leaf", 0644);
	reopen_check(fx);
	fs = fx->fs;
	for (i = 1; i <= DEPTH; i++) {
		snprintf(name, sizeof(name), "level%03d", i);
		assert_int_equal(lookup_ok(fs, ino[i - 1], name), ino[i]);
		assert_int_equal(lookup_rc(fs, ino[i], "..", &a), 0);
		assert_int_equal(a.ino, ino[i - 1]);
		assert_int_equal(getattr_ok(fs, ino[i]).nlink, i == DEPTH ? 2 : 3);
	}
	/* The subtree check walks all the way. */
	assert_int_equal(mfs_rename(fs, MFS_ROOT, "level001", ino[DEPTH], "x", 0),
			 -EINVAL);
	assert_int_equal(mfs_rename(fs, ino[1], "level002", ino[DEPTH], "x", 0),
			 -EINVAL);
	/* Move the deepest directory to the top and back. */
	snprintf(name, sizeof(name), "level%03d", DEPTH);
	assert_int_equal(mfs_rename(fs, ino[DEPTH - 1], name, MFS_ROOT, "top", 0), 0);
	assert_int_equal(getattr_ok(fs, ino[DEPTH - 1]).nlink, 2);
	assert_int_equal(mfs_rename(fs, MFS_ROOT, "top", ino[DEPTH - 1], name, 0), 0);
	assert_int_equal(lookup_rc(fs, ino[DEPTH], "..", &a), 0);
	assert_int_equal(a.ino, ino[DEPTH - 1]);
	assert_int_equal(mfs_rmdir(fs, MFS_ROOT, "level001"), -ENOTEMPTY);
	assert_int_equal(mfs_unlink(fs, ino[DEPTH], "leaf"), 0);
	for (i = DEPTH; i >= 1; i--) {
		snprintf(name, sizeof(name), "level%03d", i);
		assert_int_equal(mfs_rmdir(fs, ino[i - 1], name), 0);
	}
	assert_int_equal(getattr_ok(fs, MFS_ROOT).nlink, 3);
	reopen_check(fx);
}

/* ext4 (dir_nlink, on by default) has no limit on subdirectories: past
 * 65000 it reports nlink 1. mmapfs promises ext4's errors, so mkdir must
 * not give EMLINK at 65000 links. */
static void test_scale_many_subdirs(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	uint64_t d = mkdir_ok(fs, MFS_ROOT, "d", 0755);
	struct mfs_attr a = { 0 };
	char name[32];
	unsigned i;
	int rc = 0;

	for (i = 0; i < MFS_LINK_MAX + 10; i++) {
		snprintf(name, sizeof(name), "sub%u", i);
		rc = mfs_mkdir(fs, &ROOT, d, name, 0755, &a);
		if (rc) {
			print_message("mkdir of subdirectory %u: %s\n", i,
				      strerror(-rc));
			break;
		}
		mfs_forget(fs, a.ino, 1);
	}
	assert_int_equal(rc, 0);
	reopen_check(fx);
}

static void test_scale_sparse_4tib(void **state)
{
	struct fx *fx = *state;
	struct mfs_fs *fs = fx->fs;
	const uint64_t SPAN = 4ULL << 40, N = 64, STEP = SPAN / N;
	uint64_t f, off[64], len[64], blocks = 0, end = 0, rng = 77, res;
	unsigned char w[8192], r[8192];
	struct mfs_statfs s0, s1;
	struct mfs_attr in = { 0 }, a;
	struct ck_result ck;
	unsigned i;

	NEED_DATA(fs);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_statfs(fs, &s0), 0);
	f = mkfile(fs, MFS_ROOT, "sparse", 0644);
	for (i = 0; i < N; i++) {
		off[i] = i * STEP + rng_next(&rng) % (STEP - 16384);
		len[i] = 4096 + i * 50;
		fill_pattern(w, len[i], i);
		write_ok(fs, &ROOT, f, off[i], w, len[i]);
		blocks += (off[i] + len[i] - 1) / 4096 - off[i] / 4096 + 1;
		if (off[i] + len[i] > end)
			end = off[i] + len[i];
	}
	a = getattr_ok(fs, f);
	assert_int_equal(a.size, end);
	assert_int_equal(a.blocks, blocks * 8);
	ck = reopen_check(fx);
	fs = fx->fs;
	assert_true(ck.data_blocks == blocks);
	for (i = 0; i < N; i++) {
		fill_pattern(w, len[i], i);
		assert_int_equal(read_all(fs, f, off[i], len[i], r), len[i]);
		assert_memory_equal(r, w, len[i]);
		/* The bytes just before are a hole (or the block's head). */
		if (off[i] % 4096 == 0 && off[i] >= 4096) {
			assert_int_equal(read_all(fs, f, off[i] - 4096, 4096, r), 4096);
			assert_true(all_zero(r, 4096));
		}
		assert_int_equal(mfs_lseek(fs, f, i ? off[i - 1] + len[i - 1] + 4096
					   : 0, SEEK_DATA, &res), 0);
		assert_int_equal(res, off[i] / 4096 * 4096);
	}
	in.size = 0;
	assert_int_equal(mfs_setattr(fs, &ROOT, f, &in, MFS_SET_SIZE, &a), 0);
	assert_int_equal(a.blocks, 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_fs_sync(fs), 0);
	assert_int_equal(mfs_statfs(fs, &s1), 0);
	assert_true(s1.bfree + 8 >= s0.bfree && s1.bfree <= s0.bfree + 8);
	ck = reopen_check(fx);
	assert_int_equal(ck.data_blocks, 0);
}

/* ------------------------------------------------------------------ */
/* 2. Random operations: the same on ext4 and on mmapfs                */
/* ------------------------------------------------------------------ */

/* Symlink targets all start here: the path never exists, so following a
 * symlink always ends in ENOENT on both sides, and the adapter below
 * need not follow symlinks. */
#define DEAD_TARGET "/nonexistent-mmapfs-test/"

enum op_kind {
	OP_MKDIR, OP_CREATE, OP_MKNOD, OP_SYMLINK, OP_LINK, OP_UNLINK,
	OP_RMDIR, OP_RENAME, OP_CHMOD, OP_CHOWN, OP_READLINK,
	/* data */
	OP_TRUNCATE, OP_WRITE, OP_READ, OP_FALLOC, OP_COPY,
	/* xattrs */
	OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR,
	OP_NKINDS
};

static const char *const op_names[OP_NKINDS] = {
	"mkdir", "create", "mknod", "symlink", "link", "unlink", "rmdir",
	"rename", "chmod", "chown", "readlink", "truncate", "write", "read",
	"fallocate", "copy_file_range", "lsetxattr", "lgetxattr", "llistxattr",
	"lremovexattr",
};

static bool op_data(unsigned k)
{
	return k >= OP_TRUNCATE && k <= OP_COPY;
}

static bool op_xattr(unsigned k)
{
	return k >= OP_SETXATTR;
}

/* Attribute names the random operations use. */
static const char *const xnames[] = { "user.a", "user.bb", "trusted.t" };

struct op {
	enum op_kind kind;
	char p1[64], p2[64];
	uint32_t mode;
	uint64_t rdev;
	unsigned flags;
	uint32_t uid, gid;
	uint64_t off, off2, len;
	int fmode;
	size_t tlen;              /* symlink target length */
	const char *xname;
	uint64_t dseed;           /* data and target content */
};

static char g_target[MFS_SYMLINK_MAX + 2];
static unsigned char g_wbuf[256 << 10];

/* Paths that recently named something: picking from them makes
 * operations on existing entries (unlink, rename, link...) common. */
struct gen {
	uint64_t rng;
	char ring[32][64];
	unsigned nring;
	char files[16][64];     /* paths that were regular files */
	unsigned nfiles;
};

static void gen_remember(struct gen *g, const char *path)
{
	snprintf(g->ring[g->nring % 32], sizeof(g->ring[0]), "%s", path);
	g->nring++;
}

static void gen_remember_file(struct gen *g, const char *path)
{
	snprintf(g->files[g->nfiles % 16], sizeof(g->files[0]), "%s", path);
	g->nfiles++;
}

static void gen_path(struct gen *g, char *p, size_t n)
{
	static const char names[] = "abcdefgh";
	uint64_t *rng = &g->rng;
	unsigned r = rnd(rng, 100), depth = r < 35 ? 1 : r < 75 ? 2 : 3, i;
	size_t at = 0;

	r = rnd(rng, 100);
	if (g->nring && r < 60) {
		const char *base = g->ring[rnd(rng, g->nring < 32 ? g->nring : 32)];
		unsigned slashes = 0;

		for (i = 0; base[i]; i++)
			slashes += base[i] == '/';
		if (r < 35 || slashes >= 2) {
			/* the path itself, or a sibling */
			snprintf(p, n, "%s", base);
			if (r >= 25) {
				char *last = strrchr(p, '/');

				last = last ? last + 1 : p;
				last[0] = names[rnd(rng, 8)];
				last[1] = 0;
			}
		} else {
			/* a child */
			snprintf(p, n, "%s/%c", base, names[rnd(rng, 8)]);
		}
		return;
	}
	for (i = 0; i < depth; i++)
		at += (size_t)snprintf(p + at, n - at, "%s%c", i ? "/" : "",
				       names[rnd(rng, 8)]);
}

static void gen_op(struct gen *g, struct op *o, bool data, bool xattr)
{
	uint64_t *rng = &g->rng;
	static const uint8_t weights[OP_NKINDS] = {
		[OP_MKDIR] = 12, [OP_CREATE] = 10, [OP_MKNOD] = 4,
		[OP_SYMLINK] = 6, [OP_LINK] = 8, [OP_UNLINK] = 10,
		[OP_RMDIR] = 8, [OP_RENAME] = 16, [OP_CHMOD] = 5,
		[OP_CHOWN] = 4, [OP_READLINK] = 3, [OP_TRUNCATE] = 5,
		[OP_WRITE] = 10, [OP_READ] = 4, [OP_FALLOC] = 3, [OP_COPY] = 3,
		[OP_SETXATTR] = 5, [OP_GETXATTR] = 3, [OP_LISTXATTR] = 2,
		[OP_REMOVEXATTR] = 2,
	};
	static const uint32_t fmodes[] = { 0644, 0600, 0755, 04755, 02755,
					   02745, 06711, 0444, 01644 };
	/* mkdir keeps only 01777 of these (ext4); 02000 comes from a
	 * setgid parent */
	static const uint32_t dmodes[] = { 0755, 0700, 0777, 01777, 0555,
					   02755, 07777 };
	static const uint32_t cmodes[] = { 0644, 0755, 04755, 02755, 02745,
					   06777, 01777, 0700, 02775, 0 };
	static const uint32_t ids[] = { 0, 1000, 4242 };
	static const int fmodes_falloc[] = {
		0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
	};
	unsigned total = 0, r, k;

	memset(o, 0, sizeof(*o));
	for (k = 0; k < OP_NKINDS; k++)
		if ((data || !op_data(k)) && (xattr || !op_xattr(k)))
			total += weights[k];
	r = rnd(rng, total);
	for (k = 0; k < OP_NKINDS; k++) {
		if ((!data && op_data(k)) || (!xattr && op_xattr(k)))
			continue;
		if (r < weights[k])
			break;
		r -= weights[k];
	}
	o->kind = (enum op_kind)k;
	gen_path(g, o->p1, sizeof(o->p1));
	gen_path(g, o->p2, sizeof(o->p2));
	/* Data operations mostly on files that were regular files. */
	if (op_data(k) && g->nfiles && rnd(rng, 100) < 75)
		snprintf(o->p1, sizeof(o->p1), "%s",
			 g->files[rnd(rng, g->nfiles < 16 ? g->nfiles : 16)]);
	if (k == OP_COPY && g->nfiles && rnd(rng, 100) < 75)
		snprintf(o->p2, sizeof(o->p2), "%s",
			 g->files[rnd(rng, g->nfiles < 16 ? g->nfiles : 16)]);
	o->dseed = rng_next(rng);
	switch (o->kind) {
	case OP_MKDIR:
		o->mode = dmodes[rnd(rng, 7)];
		break;
	case OP_CREATE:
		o->mode = fmodes[rnd(rng, 9)];
		break;
	case OP_MKNOD:
		switch (rnd(rng, 4)) {
		case 0: o->mode = S_IFIFO | 0644; break;
		case 1: o->mode = S_IFSOCK | 0755; break;
		case 2: o->mode = S_IFCHR | 0600; o->rdev = makedev(1, 3); break;
		default: o->mode = S_IFREG | fmodes[rnd(rng, 9)]; break;
		}
		break;
	case OP_SYMLINK:
		r = rnd(rng, 200);
		o->tlen = r == 0 ? 0 : r == 1 ? MFS_SYMLINK_MAX + 1 :
			  r < 5 ? MFS_SYMLINK_MAX : r < 20 ? 985 + rnd(rng, 2000) :
			  sizeof(DEAD_TARGET) + rnd(rng, 20);
		break;
	case OP_RENAME:
		r = rnd(rng, 10);
		o->flags = r < 6 ? 0 : r < 8 ? RENAME_NOREPLACE : RENAME_EXCHANGE;
		break;
	case OP_CHMOD:
		o->mode = cmodes[rnd(rng, 10)];
		break;
	case OP_CHOWN:
		o->uid = ids[rnd(rng, 3)];
		o->gid = ids[rnd(rng, 3)];
		break;
	case OP_READLINK:
		o->len = 1 + rnd(rng, 100) * 41;
		break;
	case OP_TRUNCATE:
		r = rnd(rng, 10);
		o->off = r < 2 ? 0 : r < 8 ? rnd(rng, 65536) :
			 rnd(rng, (1 << 20) + 300000);
		break;
	case OP_WRITE:
	case OP_READ:
	case OP_FALLOC:
	case OP_COPY:
		r = rnd(rng, 100);
		o->off = r < 70 ? rnd(rng, 65536) : r < 95 ? rnd(rng, 512 << 10) :
			 (1 << 20) + rnd(rng, 100000);
		o->off2 = rnd(rng, 65536);
		r = rnd(rng, 100);
		o->len = 1 + (r < 90 ? rnd(rng, 16384) : rnd(rng, 128 << 10));
		o->fmode = fmodes_falloc[rnd(rng, 5)];
		break;
	case OP_SETXATTR:
	case OP_GETXATTR:
	case OP_LISTXATTR:
	case OP_REMOVEXATTR:
		o->xname = xnames[rnd(rng, 3)];
		r = rnd(rng, 10);
		o->flags = r < 6 ? 0 : r < 8 ? XATTR_CREATE_ : XATTR_REPLACE_;
		/* ext4 keeps all of an inode's attributes in one block */
		r = rnd(rng, 10);
		o->len = r == 0 ? 0 : r < 3 ? rnd(rng, 8) : rnd(rng, 300);
		if (o->kind != OP_SETXATTR)
			o->len = rnd(rng, 4) == 0 ? 0 : rnd(rng, 400);
		break;
	default:
		break;
	}
}

static void op_text(const struct op *o, char *b, size_t n)
{
	switch (o->kind) {
	case OP_LINK:
	case OP_COPY:
		snprintf(b, n, "%s %s %s off=%" PRIu64 " off2=%" PRIu64
			 " len=%" PRIu64, op_names[o->kind], o->p1, o->p2,
			 o->off, o->off2, o->len);
		break;
	case OP_RENAME:
		snprintf(b, n, "rename %s %s flags=%u", o->p1, o->p2, o->flags);
		break;
	case OP_SYMLINK:
		snprintf(b, n, "symlink %s (target of %zu bytes)", o->p1, o->tlen);
		break;
	case OP_CHOWN:
		snprintf(b, n, "lchown %s %u:%u", o->p1, o->uid, o->gid);
		break;
	case OP_SETXATTR:
	case OP_GETXATTR:
	case OP_LISTXATTR:
	case OP_REMOVEXATTR:
		snprintf(b, n, "%s %s %s size=%" PRIu64 " flags=%u",
			 op_names[o->kind], o->p1, o->xname, o->len, o->flags);
		break;
	default:
		snprintf(b, n, "%s %s mode=%o off=%" PRIu64 " len=%" PRIu64
			 " fmode=%d", op_names[o->kind], o->p1, o->mode, o->off,
			 o->len, o->fmode);
	}
}

static const char *make_target(const struct op *o)
{
	uint64_t s = o->dseed | 1;
	size_t i, pre = sizeof(DEAD_TARGET) - 1;

	memcpy(g_target, DEAD_TARGET, pre);
	for (i = pre; i < o->tlen; i++)
		g_target[i] = (char)('a' + rnd(&s, 26));
	g_target[o->tlen] = 0;
	return g_target;
}

static void make_data(const struct op *o)
{
	uint64_t s = o->dseed | 1, i;

	for (i = 0; i < o->len && i < sizeof(g_wbuf); i += 8) {
		uint64_t v = rng_next(&s);

		memcpy(g_wbuf + i, &v, 8);
	}
}

/* What an operation gave besides its return code. */
struct res {
	int rc;
	bool skip;                /* special file: not opened on either side */
	size_t bytes;
	unsigned char *buf;       /* read/readlink contents (bytes) */
};

/* --- mmapfs side: what the kernel's path walk would do, then the core --- */

/* Resolve every component but the last. Symlinks there point at
 * DEAD_TARGET: ENOENT, as the kernel finds following them. */
static int m_parent(struct mfs_fs *fs, const char *path, uint64_t *dir,
		    char *last)
{
	uint64_t cur = MFS_ROOT;
	const char *p = path;

	for (;;) {
		const char *slash = strchr(p, '/');
		char comp[64];
		struct mfs_attr a;
		int rc;

		if (!slash) {
			strcpy(last, p);
			*dir = cur;
			return 0;
		}
		memcpy(comp, p, (size_t)(slash - p));
		comp[slash - p] = 0;
		rc = mfs_lookup(fs, cur, comp, &a);
		if (rc)
			return rc;
		mfs_forget(fs, a.ino, 1);
		if (S_ISLNK(a.mode))
			return -ENOENT;
		if (!S_ISDIR(a.mode))
			return -ENOTDIR;
		cur = a.ino;
		p = slash + 1;
	}
}

/* The whole path; with follow, a final symlink gives ENOENT. The lookup is
 * kept (the caller forgets a->ino) when keep is set. */
static int m_resolve(struct mfs_fs *fs, const char *path, bool follow,
		     bool keep, struct mfs_attr *a)
{
	char last[64];
	uint64_t dir;
	int rc = m_parent(fs, path, &dir, last);

	if (rc)
		return rc;
	rc = mfs_lookup(fs, dir, last, a);
	if (rc)
		return rc;
	if (!keep || (follow && S_ISLNK(a->mode)))
		mfs_forget(fs, a->ino, 1);
	if (follow && S_ISLNK(a->mode))
		return -ENOENT;
	return 0;
}

static bool special(uint32_t mode)
{
	return S_ISFIFO(mode) || S_ISSOCK(mode) || S_ISCHR(mode) ||
	       S_ISBLK(mode);
}

/* open(2) of path: resolve, refuse specials (skip), then mfs_open. */
static int m_open(struct mfs_fs *fs, const char *path, int flags, uint64_t *ino,
		  bool *skip)
{
	struct mfs_attr a = { 0 };
	int rc = m_resolve(fs, path, true, false, &a);

	if (rc)
		return rc;
	if (special(a.mode)) {
		*skip = true;
		return 0;
	}
	rc = mfs_open(fs, &ROOT, a.ino, flags);
	if (!rc)
		*ino = a.ino;
	return rc;
}

static void m_exec(struct mfs_fs *fs, const struct op *o, struct res *r)
{
	struct mfs_attr a, in;
	char last[64], last2[64];
	uint64_t dir, dir2, ino = 0, ino2 = 0;
	int rc;

	memset(&in, 0, sizeof(in));
	switch (o->kind) {
	case OP_MKDIR:
	case OP_CREATE:
	case OP_MKNOD:
	case OP_SYMLINK:
		rc = m_parent(fs, o->p1, &dir, last);
		if (o->kind == OP_SYMLINK && (o->tlen == 0 || o->tlen > MFS_SYMLINK_MAX) &&
		    rc) {
			/* getname() of the target fails before the walk */
			rc = o->tlen ? -ENAMETOOLONG : -ENOENT;
			break;
		}
		if (rc)
			break;
		if (o->kind == OP_MKDIR)
			rc = mfs_mkdir(fs, &ROOT, dir, last, o->mode, &a);
		else if (o->kind == OP_MKNOD)
			rc = mfs_mknod(fs, &ROOT, dir, last, o->mode, o->rdev, &a);
		else if (o->kind == OP_SYMLINK)
			rc = mfs_symlink(fs, &ROOT, dir, last, make_target(o), &a);
		else {
			rc = mfs_create(fs, &ROOT, dir, last, o->mode,
					O_WRONLY | O_CREAT | O_EXCL, &a);
			if (!rc)
				mfs_release(fs, a.ino);
		}
		if (!rc)
			mfs_forget(fs, a.ino, 1);
		break;
	case OP_LINK:
		rc = m_resolve(fs, o->p1, false, false, &a);
		if (!rc)
			rc = m_parent(fs, o->p2, &dir, last);
		if (!rc)
			rc = mfs_link(fs, a.ino, dir, last, &a);
		if (!rc)
			mfs_forget(fs, a.ino, 1);
		break;
	case OP_UNLINK:
	case OP_RMDIR:
		rc = m_parent(fs, o->p1, &dir, last);
		if (!rc)
			rc = o->kind == OP_UNLINK ? mfs_unlink(fs, dir, last)
						  : mfs_rmdir(fs, dir, last);
		break;
	case OP_RENAME:
		rc = m_parent(fs, o->p1, &dir, last);
		if (!rc)
			rc = m_parent(fs, o->p2, &dir2, last2);
		if (!rc)
			rc = mfs_rename(fs, dir, last, dir2, last2, o->flags);
		break;
	case OP_CHMOD:
		rc = m_resolve(fs, o->p1, true, false, &a);
		in.mode = o->mode;
		if (!rc)
			rc = mfs_setattr(fs, &ROOT, a.ino, &in, MFS_SET_MODE, &a);
		break;
	case OP_CHOWN:
		rc = m_resolve(fs, o->p1, false, false, &a);
		in.uid = o->uid;
		in.gid = o->gid;
		if (!rc)
			rc = mfs_setattr(fs, &ROOT, a.ino, &in,
					 MFS_SET_UID | MFS_SET_GID, &a);
		break;
	case OP_READLINK: {
		char buf[MFS_SYMLINK_MAX + 1];
		size_t len = 0;

		rc = m_resolve(fs, o->p1, false, false, &a);
		if (!rc)
			rc = mfs_readlink(fs, a.ino, buf, o->len, &len);
		if (!rc) {
			r->bytes = len < o->len ? len : o->len;
			r->buf = malloc(r->bytes + 1);
			memcpy(r->buf, buf, r->bytes);
		}
		break;
	}
	case OP_TRUNCATE:
		rc = m_resolve(fs, o->p1, true, false, &a);
		in.size = o->off;
		if (!rc)
			rc = mfs_setattr(fs, &ROOT, a.ino, &in, MFS_SET_SIZE, &a);
		break;
	case OP_WRITE:
	case OP_FALLOC:
		rc = m_open(fs, o->p1, O_WRONLY, &ino, &r->skip);
		if (rc || r->skip)
			break;
		if (o->kind == OP_WRITE) {
			make_data(o);
			rc = mfs_write(fs, &ROOT, ino, o->off, g_wbuf, o->len,
				       MFS_WRITE_KILL_PRIV, &r->bytes);
		} else {
			rc = mfs_fallocate(fs, ino, o->fmode, o->off, o->len);
		}
		mfs_release(fs, ino);
		break;
	case OP_READ: {
		unsigned iovmax = (unsigned)(o->len >> 12) + 2, cnt = 0, i;
		struct iovec *iov = calloc(iovmax, sizeof(*iov));

		rc = m_open(fs, o->p1, O_RDONLY, &ino, &r->skip);
		if (!rc && !r->skip) {
			rc = mfs_read(fs, ino, o->off, o->len, iov, iovmax, &cnt,
				      &r->bytes);
			if (!rc) {
				size_t at = 0;

				r->buf = malloc(r->bytes + 1);
				for (i = 0; i < cnt; i++) {
					memcpy(r->buf + at, iov[i].iov_base,
					       iov[i].iov_len);
					at += iov[i].iov_len;
				}
				if (at != r->bytes)
					rc = -EPROTO;
			}
			mfs_release(fs, ino);
		}
		free(iov);
		break;
	}
	case OP_COPY:
		rc = m_open(fs, o->p1, O_RDONLY, &ino, &r->skip);
		if (rc || r->skip)
			break;
		rc = m_open(fs, o->p2, O_WRONLY, &ino2, &r->skip);
		if (!rc && !r->skip) {
			rc = mfs_copy_file_range(fs, ino, o->off, ino2, o->off2,
						 o->len, &r->bytes);
			mfs_release(fs, ino2);
		}
		mfs_release(fs, ino);
		break;
	case OP_SETXATTR:
	case OP_GETXATTR:
	case OP_LISTXATTR:
	case OP_REMOVEXATTR: {
		static char xbuf[MFS_XATTR_SIZE_MAX];
		size_t len = 0;

		rc = m_resolve(fs, o->p1, false, false, &a);
		if (rc)
			break;
		/* The VFS (xattr_permission) allows user.* only on regular
		 * files and directories. */
		if (o->kind != OP_LISTXATTR && !strncmp(o->xname, "user.", 5) &&
		    !S_ISREG(a.mode) && !S_ISDIR(a.mode)) {
			rc = o->kind == OP_GETXATTR ? -ENODATA : -EPERM;
			break;
		}
		if (o->kind == OP_SETXATTR) {
			make_data(o);
			rc = mfs_setxattr(fs, a.ino, o->xname, g_wbuf, o->len,
					  (int)o->flags);
		} else if (o->kind == OP_REMOVEXATTR) {
			rc = mfs_removexattr(fs, a.ino, o->xname);
		} else {
			rc = o->kind == OP_GETXATTR ?
			     mfs_getxattr(fs, a.ino, o->xname, o->len ? xbuf : NULL,
					  o->len, &len) :
			     mfs_listxattr(fs, a.ino, o->len ? xbuf : NULL, o->len,
					   &len);
			if (!rc) {
				r->bytes = len;
				if (o->len) {
					r->buf = malloc(len + 1);
					memcpy(r->buf, xbuf, len);
				}
			}
		}
		break;
	}
	default:
		rc = -ENOSYS;
	}
	r->rc = rc;
}

/* --- ext4 side: the system calls --- */

static int e_open(int mfd, const char *path, int flags, int *fd, bool *skip)
{
	struct stat st;

	if (fstatat(mfd, path, &st, 0) == 0 && special(st.st_mode)) {
		*skip = true;
		return 0;
	}
	*fd = openat(mfd, path, flags | O_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

#define SYSRC(x) ((x) < 0 ? -errno : 0)

static void e_exec(int mfd, const char *mnt, const struct op *o, struct res *r)
{
	char full[256];
	int rc, fd = -1, fd2 = -1;

	switch (o->kind) {
	case OP_MKDIR:
		rc = SYSRC(mkdirat(mfd, o->p1, o->mode));
		break;
	case OP_CREATE:
		fd = openat(mfd, o->p1, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			    o->mode);
		rc = SYSRC(fd);
		if (fd >= 0)
			close(fd);
		break;
	case OP_MKNOD:
		rc = SYSRC(mknodat(mfd, o->p1, o->mode, (dev_t)o->rdev));
		break;
	case OP_SYMLINK:
		rc = SYSRC(symlinkat(make_target(o), mfd, o->p1));
		break;
	case OP_LINK:
		rc = SYSRC(linkat(mfd, o->p1, mfd, o->p2, 0));
		break;
	case OP_UNLINK:
		rc = SYSRC(unlinkat(mfd, o->p1, 0));
		break;
	case OP_RMDIR:
		rc = SYSRC(unlinkat(mfd, o->p1, AT_REMOVEDIR));
		break;
	case OP_RENAME:
		rc = SYSRC(syscall(SYS_renameat2, mfd, o->p1, mfd, o->p2,
				   o->flags));
		break;
	case OP_CHMOD:
		rc = SYSRC(fchmodat(mfd, o->p1, o->mode, 0));
		break;
	case OP_CHOWN:
		rc = SYSRC(fchownat(mfd, o->p1, o->uid, o->gid,
				    AT_SYMLINK_NOFOLLOW));
		break;
	case OP_READLINK: {
		char buf[MFS_SYMLINK_MAX + 1];
		ssize_t n = readlinkat(mfd, o->p1, buf, o->len);

		rc = SYSRC(n);
		if (n >= 0) {
			r->bytes = (size_t)n;
			r->buf = malloc(r->bytes + 1);
			memcpy(r->buf, buf, r->bytes);
		}
		break;
	}
	case OP_TRUNCATE:
		snprintf(full, sizeof(full), "%s/%s", mnt, o->p1);
		rc = SYSRC(truncate(full, (off_t)o->off));
		break;
	case OP_WRITE:
	case OP_FALLOC:
		rc = e_open(mfd, o->p1, O_WRONLY, &fd, &r->skip);
		if (rc || r->skip)
			break;
		if (o->kind == OP_WRITE) {
			ssize_t n;

			make_data(o);
			n = pwrite(fd, g_wbuf, o->len, (off_t)o->off);
			rc = SYSRC(n);
			r->bytes = n > 0 ? (size_t)n : 0;
		} else {
			rc = SYSRC(fallocate(fd, o->fmode, (off_t)o->off,
					     (off_t)o->len));
		}
		close(fd);
		break;
	case OP_READ:
		rc = e_open(mfd, o->p1, O_RDONLY, &fd, &r->skip);
		if (rc || r->skip)
			break;
		r->buf = malloc(o->len + 1);
		{
			ssize_t n = pread(fd, r->buf, o->len, (off_t)o->off);

			rc = SYSRC(n);
			r->bytes = n > 0 ? (size_t)n : 0;
		}
		close(fd);
		break;
	case OP_COPY:
		rc = e_open(mfd, o->p1, O_RDONLY, &fd, &r->skip);
		if (rc || r->skip)
			break;
		rc = e_open(mfd, o->p2, O_WRONLY, &fd2, &r->skip);
		if (!rc && !r->skip) {
			loff_t in = (loff_t)o->off, out = (loff_t)o->off2;
			ssize_t n = copy_file_range(fd, &in, fd2, &out, o->len, 0);

			rc = SYSRC(n);
			r->bytes = n > 0 ? (size_t)n : 0;
		}
		if (fd2 >= 0)
			close(fd2);
		close(fd);
		break;
	case OP_SETXATTR:
	case OP_GETXATTR:
	case OP_LISTXATTR:
	case OP_REMOVEXATTR: {
		static char xbuf[MFS_XATTR_SIZE_MAX];
		ssize_t n = 0;

		snprintf(full, sizeof(full), "%s/%s", mnt, o->p1);
		if (o->kind == OP_SETXATTR) {
			make_data(o);
			rc = SYSRC(lsetxattr(full, o->xname, g_wbuf, o->len,
					     (int)o->flags));
			break;
		}
		if (o->kind == OP_REMOVEXATTR) {
			rc = SYSRC(lremovexattr(full, o->xname));
			break;
		}
		n = o->kind == OP_GETXATTR ?
		    lgetxattr(full, o->xname, o->len ? xbuf : NULL, o->len) :
		    llistxattr(full, o->len ? xbuf : NULL, o->len);
		rc = SYSRC(n);
		if (n >= 0) {
			r->bytes = (size_t)n;
			if (o->len) {
				r->buf = malloc(r->bytes + 1);
				memcpy(r->buf, xbuf, r->bytes);
			}
		}
		break;
	}
	default:
		rc = -ENOSYS;
	}
	r->rc = rc;
}

/* --- Dumps of the ext4 side --- */

/* The ext4 scratch filesystem (see ext4_mount). */
static char g_ext4_dir[64], g_ext4_img[128], g_ext4_mnt[128];
static volatile sig_atomic_t g_ext4_mounted;

static uint64_t e_file_hash(int dfd, const char *name)
{
	static char buf[1 << 16];
	uint64_t h = FNV0;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	assert_true(fd >= 0);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		h = fnv(h, buf, (size_t)n);
	assert_true(n == 0);
	close(fd);
	return h;
}

static void st_to_attr(const struct stat *st, struct mfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->mode = st->st_mode;
	a->nlink = (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->size = (uint64_t)st->st_size;
	a->rdev = st->st_rdev;
}

static int ex_get(void *ctx, const char *name, char *val, size_t *vlen)
{
	ssize_t n = lgetxattr(ctx, name, val, MFS_XATTR_SIZE_MAX);

	if (n < 0)
		return -errno;
	*vlen = (size_t)n;
	return 0;
}

static void e_xattr_text(const char *path, char *t, size_t tn)
{
	static char list[1 << 16];
	char full[4200];
	ssize_t n;

	snprintf(full, sizeof(full), "%s/%s", g_ext4_mnt, path);
	n = llistxattr(full, list, sizeof(list));
	assert_true(n >= 0);
	xattr_text(t, tn, list, (size_t)n, ex_get, full);
}

static void e_dump_dir(int dfd, const char *prefix, const struct dump_opts *o,
		       struct dump *d)
{
	DIR *dir = fdopendir(dup(dfd));
	struct dirent *de;

	assert_non_null(dir);
	rewinddir(dir);   /* the dup shares the offset of earlier listings */
	while ((de = readdir(dir))) {
		char path[4096], text[8192], tbuf[MFS_SYMLINK_MAX + 1], xt[2048];
		const char *target = NULL;
		struct mfs_attr a;
		struct stat st;
		uint64_t h = 0;

		xt[0] = 0;
		if (is_dot(de->d_name))
			continue;
		assert_int_equal(fstatat(dfd, de->d_name, &st,
					 AT_SYMLINK_NOFOLLOW), 0);
		st_to_attr(&st, &a);
		snprintf(path, sizeof(path), "%s%s", prefix, de->d_name);
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlinkat(dfd, de->d_name, tbuf, sizeof(tbuf));

			assert_true(n > 0);
			tbuf[n] = 0;
			target = tbuf;
		}
		if (o->data && S_ISREG(st.st_mode))
			h = e_file_hash(dfd, de->d_name);
		if (o->xattr)
			e_xattr_text(path, xt, sizeof(xt));
		attr_text(text, sizeof(text), &a, target, o, h, xt);
		dump_add(d, path, st.st_ino, text);
		if (S_ISDIR(st.st_mode)) {
			char sub[4097 + 1];
			int sfd = openat(dfd, de->d_name,
					 O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			assert_true(sfd >= 0);
			snprintf(sub, sizeof(sub), "%s/", path);
			e_dump_dir(sfd, sub, o, d);
			close(sfd);
		}
	}
	closedir(dir);
}

static char *e_dump(int mfd, const struct dump_opts *o)
{
	struct dump d = { 0 };
	struct mfs_attr a = { 0 };
	struct stat st;
	char text[8192], xt[2048], *s;

	assert_int_equal(fstat(mfd, &st), 0);
	st_to_attr(&st, &a);
	xt[0] = 0;
	if (o->xattr)
		e_xattr_text("", xt, sizeof(xt));
	attr_text(text, sizeof(text), &a, NULL, o, 0, xt);
	dump_add(&d, "/", st.st_ino, text);
	e_dump_dir(mfd, "", o, &d);
	s = dump_text(&d);
	dump_free(&d);
	return s;
}

/* --- The ext4 mount, and its cleanup whatever happens --- */


static void ext4_umount(void)
{
	if (g_ext4_mounted) {
		if (umount2(g_ext4_mnt, 0) != 0)
			umount2(g_ext4_mnt, MNT_DETACH);
		g_ext4_mounted = 0;
	}
}

static void ext4_cleanup(void)
{
	ext4_umount();
	if (g_ext4_dir[0]) {
		unlink(g_ext4_img);
		rmdir(g_ext4_mnt);
		rmdir(g_ext4_dir);
		g_ext4_dir[0] = 0;
	}
}

static void ext4_on_signal(int sig)
{
	ext4_umount();   /* umount2 is async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

static int run_quiet(char *const argv[])
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Make and mount a 128 MiB ext4; NULL and why on failure. */
static const char *ext4_mount(void)
{
	static bool hooked;
	int fd;

	if (!hooked) {
		static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

		atexit(ext4_cleanup);
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			signal(sigs[i], ext4_on_signal);
		hooked = true;
	}
	if (geteuid() != 0)
		return "not root";
	strcpy(g_ext4_dir, "/tmp/mfs-test-ext4-XXXXXX");
	if (!mkdtemp(g_ext4_dir)) {
		g_ext4_dir[0] = 0;
		return "mkdtemp failed";
	}
	snprintf(g_ext4_img, sizeof(g_ext4_img), "%s/ext4.img", g_ext4_dir);
	snprintf(g_ext4_mnt, sizeof(g_ext4_mnt), "%s/mnt", g_ext4_dir);
	fd = open(g_ext4_img, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, 128 << 20) != 0) {
		if (fd >= 0)
			close(fd);
		return "cannot create the ext4 image";
	}
	close(fd);
	if (mkdir(g_ext4_mnt, 0755) != 0)
		return "cannot create the mount point";
	{
		char *mk[] = { "mkfs.ext4", "-q", "-F", "-b", "4096", "-I", "256",
			       "-N", "8192", g_ext4_img, NULL };
		char *mt[] = { "mount", "-t", "ext4", "-o", "loop", g_ext4_img,
			       g_ext4_mnt, NULL };

		if (run_quiet(mk) != 0)
			return "mkfs.ext4 failed (is e2fsprogs installed?)";
		if (run_quiet(mt) != 0)
			return "mount -o loop failed (no loop devices?)";
	}
	g_ext4_mounted = 1;
	return NULL;
}

/* Remove everything but lost+found. */
static void ext4_clean(int mfd)
{
	DIR *dir = fdopendir(dup(mfd));
	struct dirent *de;

	assert_non_null(dir);
	rewinddir(dir);
	while ((de = readdir(dir))) {
		char p[512];

		if (is_dot(de->d_name) || !strcmp(de->d_name, "lost+found"))
			continue;
		snprintf(p, sizeof(p), "%s/%s", g_ext4_mnt, de->d_name);
		assert_int_equal(rm_tree(p), 0);
	}
	closedir(dir);
}

/* --- The differential run --- */

#define HIST 48
#define HISTLEN 400

struct mismatch {
	char key[64];
	char example[400];
	unsigned long count;
};

struct diff {
	struct fx *fx;
	int mfd;
	bool data, xattr;
	unsigned seed;
	unsigned long opno;
	char hist[HIST][HISTLEN];
	unsigned long nhist;
	struct mismatch mm[64];
	unsigned nmm;
	unsigned long nmm_total;
	unsigned long counts[OP_NKINDS][2];   /* [kind][ok] */
};

static void diff_hist_print(struct diff *d)
{
	unsigned long i = d->nhist > HIST ? d->nhist - HIST : 0;

	fprintf(stderr, "last operations (seed %u; MMAPFS_SEED=%u reproduces):\n",
		d->seed, d->seed);
	for (; i < d->nhist; i++)
		fprintf(stderr, "  %s\n", d->hist[i % HIST]);
}

static void diff_fatal(struct diff *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
static void diff_fatal(struct diff *d, const char *fmt, ...)
{
	va_list ap;

	diff_hist_print(d);
	fprintf(stderr, "DIVERGENCE at op %lu: ", d->opno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	fail_msg("mmapfs and ext4 diverged (seed %u, op %lu)", d->seed, d->opno);
	abort(); /* not reached */
}

/* Both failed, differently: the namespace is unchanged on both sides, so
 * keep going and report the difference at the end. */
static void diff_errno(struct diff *d, const struct op *o, int erc, int mrc,
		       const char *text)
{
	char key[64];
	unsigned i;

	snprintf(key, sizeof(key), "%s%s ext4=%d mmapfs=%d",
		 op_names[o->kind], o->kind == OP_RENAME ?
		 (o->flags == RENAME_EXCHANGE ? "(EXCHANGE)" :
		  o->flags == RENAME_NOREPLACE ? "(NOREPLACE)" : "") : "",
		 erc, mrc);
	d->nmm_total++;
	for (i = 0; i < d->nmm; i++)
		if (!strcmp(d->mm[i].key, key)) {
			d->mm[i].count++;
			return;
		}
	if (d->nmm == sizeof(d->mm) / sizeof(d->mm[0]))
		return;
	snprintf(d->mm[d->nmm].key, sizeof(d->mm[0].key), "%s", key);
	snprintf(d->mm[d->nmm].example, sizeof(d->mm[0].example),
		 "seed %u op %lu: %s", d->seed, d->opno, text);
	d->mm[d->nmm].count = 1;
	d->nmm++;
}

/* An object an operation touches, held on both sides across it. */
struct probe {
	char what[80];
	int fd;                   /* ext4: O_PATH, -1: none */
	uint64_t ino;             /* mmapfs: looked up, 0: none */
	bool root;
	struct stat e0;
	struct mfs_attr m0;
};

static void probe_take(struct diff *d, const char *path, struct probe *p)
{
	struct mfs_attr a = { 0 };
	int rc;

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	snprintf(p->what, sizeof(p->what), "%s", path[0] ? path : "/");
	if (!path[0]) {
		p->fd = openat(d->mfd, ".", O_PATH | O_CLOEXEC);
		p->ino = MFS_ROOT;
		p->root = true;
	} else {
		p->fd = openat(d->mfd, path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		rc = m_resolve(d->fx->fs, path, false, true, &a);
		if (rc == 0)
			p->ino = a.ino;
	}
	if ((p->fd >= 0) != (p->ino != 0))
		diff_fatal(d, "%s exists on %s only", p->what,
			   p->fd >= 0 ? "ext4" : "mmapfs");
	if (p->fd < 0)
		return;
	assert_int_equal(fstat(p->fd, &p->e0), 0);
	assert_int_equal(mfs_getattr(d->fx->fs, p->ino, &p->m0), 0);
}

static bool st_ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static void probe_check(struct diff *d, struct probe *p)
{
	struct stat e1;
	struct mfs_attr m1;
	bool em, ec, mm, mc;
	int rc;

	if (p->fd < 0)
		return;
	assert_int_equal(fstat(p->fd, &e1), 0);
	rc = mfs_getattr(d->fx->fs, p->ino, &m1);
	if (rc)
		diff_fatal(d, "%s: mmapfs lost a looked-up inode: %s", p->what,
			   strerror(-rc));
	if (e1.st_mode != m1.mode || e1.st_nlink != m1.nlink ||
	    e1.st_uid != m1.uid || e1.st_gid != m1.gid ||
	    (!S_ISDIR(e1.st_mode) && (uint64_t)e1.st_size != m1.size))
		diff_fatal(d, "%s after the op: ext4 mode %o nlink %lu uid %u "
			   "gid %u size %lld; mmapfs mode %o nlink %u uid %u "
			   "gid %u size %" PRIu64, p->what, e1.st_mode,
			   (unsigned long)e1.st_nlink, e1.st_uid, e1.st_gid,
			   (long long)e1.st_size, m1.mode, m1.nlink, m1.uid,
			   m1.gid, m1.size);
	em = !st_ts_eq(p->e0.st_mtim, e1.st_mtim);
	ec = !st_ts_eq(p->e0.st_ctim, e1.st_ctim);
	mm = ts_cmp(p->m0.mtime, m1.mtime) != 0;
	mc = ts_cmp(p->m0.ctime, m1.ctime) != 0;
	if (em != mm || ec != mc)
		diff_fatal(d, "%s: ext4 changed mtime %d ctime %d; mmapfs "
			   "changed mtime %d ctime %d", p->what, em, ec, mm, mc);
}

static void probe_drop(struct diff *d, struct probe *p)
{
	if (p->fd >= 0)
		close(p->fd);
	if (p->ino && !p->root)
		mfs_forget(d->fx->fs, p->ino, 1);
}

static void parent_of(const char *path, char *out, size_t n)
{
	const char *s = strrchr(path, '/');

	if (!s)
		out[0] = 0;
	else
		snprintf(out, n, "%.*s", (int)(s - path), path);
}

static void diff_compare_all(struct diff *d, bool data)
{
	struct dump_opts o = { .data = data && d->data, .xattr = d->xattr,
			       .plus = d->opno % 2, .chunk = d->opno % 7 };
	char *e = e_dump(d->mfd, &o), *m = mfs_dump(d->fx->fs, &o);

	if (strcmp(e, m)) {
		diff_hist_print(d);
		fprintf(stderr, "namespaces differ after op %lu:\n", d->opno);
		print_dump_diff("ext4", e, "mmapfs", m);
		free(e);
		free(m);
		fail_msg("namespaces differ (seed %u, op %lu)", d->seed, d->opno);
	}
	free(e);
	free(m);
}

static void diff_one(struct diff *d, struct gen *g)
{
	struct op o;
	struct res er = { 0 }, mr = { 0 };
	struct probe pr[4];
	char text[300], par[64];
	_Static_assert(HISTLEN > sizeof(text) + 64, "hist");
	unsigned np = 0, i;
	bool two;

	gen_op(g, &o, d->data, d->xattr);
	op_text(&o, text, sizeof(text));
	snprintf(d->hist[d->nhist % HIST], sizeof(d->hist[0]), "#%lu %s",
		 d->opno, text);
	d->nhist++;
	two = o.kind == OP_LINK || o.kind == OP_RENAME || o.kind == OP_COPY;
	probe_take(d, o.p1, &pr[np++]);
	parent_of(o.p1, par, sizeof(par));
	probe_take(d, par, &pr[np++]);
	if (two) {
		probe_take(d, o.p2, &pr[np++]);
		parent_of(o.p2, par, sizeof(par));
		probe_take(d, par, &pr[np++]);
	}
	e_exec(d->mfd, g_ext4_mnt, &o, &er);
	m_exec(d->fx->fs, &o, &mr);
	snprintf(d->hist[(d->nhist - 1) % HIST], sizeof(d->hist[0]),
		 "#%lu %s -> ext4 %d, mmapfs %d", d->opno, text, er.rc, mr.rc);
	if (er.skip != mr.skip)
		diff_fatal(d, "one side saw a special file");
	if (er.rc != mr.rc) {
		if (er.rc == 0 || mr.rc == 0)
			diff_fatal(d, "%s: ext4 %d (%s), mmapfs %d (%s)", text,
				   er.rc, strerror(-er.rc), mr.rc,
				   strerror(-mr.rc));
		diff_errno(d, &o, er.rc, mr.rc, text);
	} else if (er.rc == 0 && !er.skip) {
		if (er.bytes != mr.bytes)
			diff_fatal(d, "%s: ext4 did %zu bytes, mmapfs %zu", text,
				   er.bytes, mr.bytes);
		if (o.kind == OP_LISTXATTR && er.buf && mr.buf) {
			sort_xlist((char *)er.buf, er.bytes);
			sort_xlist((char *)mr.buf, mr.bytes);
		}
		if (er.buf && mr.buf && memcmp(er.buf, mr.buf, er.bytes))
			diff_fatal(d, "%s: different bytes", text);
	}
	d->counts[o.kind][er.rc == 0]++;
	if (er.rc == 0 && mr.rc == 0) {
		gen_remember(g, o.kind == OP_LINK || o.kind == OP_RENAME ? o.p2
								      : o.p1);
		if (o.kind == OP_CREATE ||
		    (o.kind == OP_MKNOD && S_ISREG(o.mode)))
			gen_remember_file(g, o.p1);
	}
	for (i = 0; i < np; i++)
		probe_check(d, &pr[i]);
	for (i = 0; i < np; i++)
		probe_drop(d, &pr[i]);
	free(er.buf);
	free(mr.buf);
}

static unsigned long env_ul(const char *name, unsigned long dflt)
{
	const char *s = getenv(name);

	return s && *s ? strtoul(s, NULL, 0) : dflt;
}

static void diff_seed(struct diff *d, unsigned seed, unsigned long nops)
{
	struct fx *fx = d->fx;
	struct mfs_format_opts fo = { .size = 1ULL << 30, .force = true };
	struct gen g = { .rng = 0x9e3779b97f4a7c15ULL ^
				((uint64_t)seed * 0x100000001b3ULL) };
	uint64_t *rng = &g.rng;
	unsigned long i;

	rng_next(rng);
	d->seed = seed;
	d->nhist = 0;
	/* Fresh images on both sides. */
	assert_int_equal(mfs_fs_close(fx->fs), 0);
	fx->fs = NULL;
	assert_int_equal(mfs_format(fx->img, &fo), 0);
	assert_int_equal(mfs_fs_open(fx->img, 0, &fx->fs), 0);
	ext4_clean(d->mfd);
	d->data = data_supported(fx->fs);
	d->xattr = xattr_supported(fx->fs);
	diff_compare_all(d, true);
	for (i = 0; i < nops; i++) {
		d->opno = i;
		diff_one(d, &g);
		if (i % 100 == 99)
			diff_compare_all(d, i % 1000 == 999);
		switch (rnd(rng, 3000)) {
		case 0: case 1: case 2: case 3: case 4: case 5:
			assert_int_equal(mfs_fs_sync(fx->fs), 0);
			break;
		case 6:
			reopen_check(fx);
			diff_compare_all(d, false);
			break;
		case 7:
			assert_int_equal(mfs_fs_sync(fx->fs), 0);
			crash_reopen(fx);
			diff_compare_all(d, false);
			break;
		default:
			break;
		}
	}
	d->opno = nops;
	diff_compare_all(d, true);
	reopen_check(fx);
	diff_compare_all(d, true);
}

struct diff_fx {
	struct fx *fx;
	int mfd;
	const char *why;
};

static int setup_ext4(void **state)
{
	struct diff_fx *dfx = calloc(1, sizeof(*dfx));
	void *inner;

	if (!dfx || setup(&inner) != 0)
		return -1;
	dfx->fx = inner;
	dfx->mfd = -1;
	dfx->why = ext4_mount();
	if (!dfx->why) {
		dfx->mfd = open(g_ext4_mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfx->mfd < 0)
			dfx->why = "cannot open the ext4 mount";
	}
	*state = dfx;
	return 0;
}

static int teardown_ext4(void **state)
{
	struct diff_fx *dfx = *state;
	void *inner = dfx->fx;
	int rc;

	if (dfx->mfd >= 0)
		close(dfx->mfd);
	ext4_cleanup();
	rc = teardown(&inner);
	free(dfx);
	return rc;
}

static void test_diff_ext4(void **state)
{
	struct diff_fx *dfx = *state;
	struct diff *d;
	unsigned long total = env_ul("MMAPFS_OPS", 100000), per;
	unsigned nseeds = 4, s, first = 1;
	mode_t old_umask;
	bool failed;

	if (dfx->why) {
		MFS_SKIP("differential test against ext4: %s\n", dfx->why);
	}
	if (getenv("MMAPFS_SEED")) {
		first = (unsigned)env_ul("MMAPFS_SEED", 1);
		nseeds = 1;
	}
	per = total / nseeds;
	d = calloc(1, sizeof(*d));
	assert_non_null(d);
	d->fx = dfx->fx;
	d->mfd = dfx->mfd;
	old_umask = umask(0);
	for (s = 0; s < nseeds; s++) {
		diff_seed(d, first + s, per);
		print_message("seed %u: %lu operations agree (namespace%s%s)\n",
			      first + s, per, d->xattr ? ", xattrs" : "",
			      d->data ? ", file data" :
			      "; file data not implemented yet");
	}
	umask(old_umask);
	{
		unsigned k;

		print_message("operations (succeeded/failed on both):");
		for (k = 0; k < OP_NKINDS; k++)
			if (d->counts[k][0] + d->counts[k][1])
				print_message(" %s %lu/%lu", op_names[k],
					      d->counts[k][1], d->counts[k][0]);
		print_message("\n");
	}
	failed = d->nmm > 0;
	if (failed) {
		unsigned i;

		fprintf(stderr, "%lu operations failed with a different errno "
			"than on ext4:\n", d->nmm_total);
		for (i = 0; i < d->nmm; i++)
			fprintf(stderr, "  %6lu x %s   e.g. %s\n", d->mm[i].count,
				d->mm[i].key, d->mm[i].example);
	}
	free(d);
	assert_false(failed);
}

/* --- The same operations on mmapfs alone, with abort and crashes --- */

static void test_random_abort(void **state)
{
	struct fx *fx = *state;
	unsigned long nops = env_ul("MMAPFS_OPS", 100000) / 5, i;
	struct gen g = { .rng = env_ul("MMAPFS_SEED", 1) *
				0x9e3779b97f4a7c15ULL + 1 };
	uint64_t *rng = &g.rng;
	bool data = data_supported(fx->fs);
	bool xattr = xattr_supported(fx->fs);
	const struct dump_opts ex = { .exact = true, .xattr = xattr };
	char *snap;
	unsigned aborts = 0, crashes = 0;

	assert_int_equal(mfs_fs_sync(fx->fs), 0);
	snap = mfs_dump(fx->fs, &ex);
	for (i = 0; i < nops; i++) {
		struct op o;
		struct res r = { 0 };

		gen_op(&g, &o, data, xattr);
		m_exec(fx->fs, &o, &r);
		free(r.buf);
		if (r.rc == 0) {
			gen_remember(&g, o.kind == OP_LINK || o.kind == OP_RENAME
					 ? o.p2 : o.p1);
			if (o.kind == OP_CREATE ||
			    (o.kind == OP_MKNOD && S_ISREG(o.mode)))
				gen_remember_file(&g, o.p1);
		}
		switch (rnd(rng, 500)) {
		case 0: case 1: {
			char *now;

			assert_int_equal(mfs_fs_abort(fx->fs), 0);
			now = mfs_dump(fx->fs, &ex);
			if (strcmp(now, snap)) {
				print_dump_diff("commit", snap, "abort", now);
				fail_msg("abort did not restore the last commit "
					 "(op %lu)", i);
			}
			free(now);
			aborts++;
			break;
		}
		case 2: {
			char *now;

			crash_reopen(fx);
			now = mfs_dump(fx->fs, &ex);
			if (strcmp(now, snap)) {
				print_dump_diff("commit", snap, "crash", now);
				fail_msg("a crash did not leave the last commit "
					 "(op %lu)", i);
			}
			free(now);
			crashes++;
			/* The open committed (orphans, dirty mark). */
			free(snap);
			snap = mfs_dump(fx->fs, &ex);
			break;
		}
		case 3: case 4: case 5: case 6: case 7:
			assert_int_equal(mfs_fs_sync(fx->fs), 0);
			free(snap);
			snap = mfs_dump(fx->fs, &ex);
			break;
		case 8:
			reopen_check(fx);
			free(snap);
			snap = mfs_dump(fx->fs, &ex);
			break;
		}
	}
	free(snap);
	print_message("%lu operations, %u aborts, %u crashes\n", nops, aborts,
		      crashes);
	reopen_check(fx);
}

/* ------------------------------------------------------------------ */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* ------------------------------------------------------------------ */
/* Link counts a damaged image gets wrong                              */
/* ------------------------------------------------------------------ */

/* Set an inode's link count in the image (closed), as damage would. */
static void set_nlink(struct fx *fx, uint64_t ino, uint32_t nlink)
{
	struct mfs_vol *v;
	struct mfs_inode in;

	assert_int_equal(mfs_vol_open(fx->img, 0, &v), 0);
	assert_int_equal(mfs_inode_read(v, ino, &in), 0);
	in.nlink = nlink;
	assert_int_equal(mfs_inode_write(v, &in), 0);
	v->dirty = true;
	assert_int_equal(mfs_txn_commit(v), 0);
	assert_int_equal(mfs_vol_close(v), 0);
}

/* Reopen, expect op to find corruption (-EUCLEAN: EIO to the user) and
 * change nothing that gets committed. */
static void expect_corrupt(struct fx *fx, int rc)
{
	assert_int_equal(rc, -EUCLEAN);
	assert_int_not_equal(mfs_fs_close(fx->fs), 0);
	assert_int_equal(mfs_fs_open(fx->img, 0, &fx->fs), 0);
}

/*
 * A file still named by an entry with a link count of 0, or a directory
 * holding a subdirectory with a link count below 3: unlink, rmdir and
 * rename would have wrapped the count around (4 billion links, the inode
 * never freed). They, and a lookup of the name, must report corruption
 * instead and leave the image as it was.
 */
static void test_link_count_damaged(void **state)
{
	struct fx *fx = *state;
	struct mfs_attr f, g, d, sub;

	assert_int_equal(mfs_create(fx->fs, &ROOT, MFS_ROOT, "f", S_IFREG | 0644,
				    0, &f), 0);
	mfs_release(fx->fs, f.ino);
	assert_int_equal(mfs_create(fx->fs, &ROOT, MFS_ROOT, "g", S_IFREG | 0644,
				    0, &g), 0);
	mfs_release(fx->fs, g.ino);
	assert_int_equal(mfs_mkdir(fx->fs, &ROOT, MFS_ROOT, "d", 0755, &d), 0);
	assert_int_equal(mfs_mkdir(fx->fs, &ROOT, d.ino, "sub", 0755, &sub), 0);
	assert_int_equal(mfs_fs_close(fx->fs), 0);

	set_nlink(fx, f.ino, 0);
	set_nlink(fx, d.ino, 2);
	assert_int_equal(mfs_fs_open(fx->img, 0, &fx->fs), 0);
	expect_corrupt(fx, mfs_unlink(fx->fs, MFS_ROOT, "f"));
	expect_corrupt(fx, mfs_rename(fx->fs, MFS_ROOT, "g", MFS_ROOT, "f", 0));
	expect_corrupt(fx, mfs_rename(fx->fs, MFS_ROOT, "f", MFS_ROOT, "h", 0));
	expect_corrupt(fx, mfs_rmdir(fx->fs, d.ino, "sub"));
	expect_corrupt(fx, mfs_rename(fx->fs, d.ino, "sub", MFS_ROOT, "sub2", 0));
	/* Nothing changed. */
	assert_int_equal(getattr_ok(fx->fs, f.ino).nlink, 0);
	assert_int_equal(getattr_ok(fx->fs, g.ino).nlink, 1);
	assert_int_equal(getattr_ok(fx->fs, d.ino).nlink, 2);
	assert_int_equal(lookup_rc(fx->fs, d.ino, "sub", NULL), 0);
	/* Even a lookup of a name whose inode has no links is damage found
	 * (as ext4's "deleted inode referenced"). */
	expect_corrupt(fx, lookup_rc(fx->fs, MFS_ROOT, "f", NULL));
	/* Good counts still work. */
	assert_int_equal(mfs_unlink(fx->fs, MFS_ROOT, "g"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_root),
		T(test_link_count_damaged),
		T(test_mknod),
		T(test_mknod_dir_eperm),
		T(test_mkdir),
		T(test_mkdir_mode_bits),
		T(test_setgid_dir),
		T(test_symlink),
		T(test_link),
		T(test_link_dir_onto_existing),
		T(test_link_max),
		T(test_unlink),
		T(test_rmdir),
		T(test_rename_file),
		T(test_rename_onto_ancestor),
		T(test_rename_dir),
		T(test_rename_flags),
		T(test_rename_noreplace_same_inode),
		T(test_rename_exchange_file_dir),
		T(test_setattr),
		T(test_killpriv_sgid_outside_group),
		T(test_open_create),
		T(test_lookup),
		T(test_orphans),
		T(test_defer),
		T(test_discard),
		T(test_open_reads_little),
		T(test_readdir_offsets),
		T(test_readdir_stability),
		T(test_readdirplus_lookups),
		T(test_names),
		T(test_statfs),
		T(test_failed_ops_change_nothing),
		T(test_readonly),
		T(test_persistence),
		T(test_data_rw),
		T(test_read_cached_drops),
		T(test_write_no_gap),
		T(test_tmpfile),
		T(test_data_sync_failure_sticks),
		T(test_write_behind_drops),
		T(test_data_efbig),
		T(test_data_truncate),
		T(test_data_killpriv),
		T(test_data_killpriv_outside_group),
		T(test_data_killpriv_cap),
		T(test_data_orphan),
		T(test_data_fallocate),
		T(test_data_fallocate_times),
		T(test_data_lseek),
		T(test_data_copy),
		T(test_xattr_same_value_keeps_ctime),
		T(test_xattr),
		T(test_scale_100k_files),
		T(test_scale_deep_path),
		T(test_scale_many_subdirs),
		T(test_scale_sparse_4tib),
		T(test_random_abort),
		cmocka_unit_test_setup_teardown(test_diff_ext4, setup_ext4,
						teardown_ext4),
	};

	/* Crash tests make the core say "not unmounted cleanly"; keep
	 * errors (corruption is logged as one). */
	mfs_log_set_level(MFS_LOG_ERR);
	return mfs_test_exit(cmocka_run_group_tests_name("fs", tests, NULL, NULL));
}
