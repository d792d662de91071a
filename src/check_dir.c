/* SPDX-License-Identifier: MIT */
/*
 * check_dir.c — the checker's passes over the namespace: 2 (directory
 * entries), 3 (connectivity, '..', lost+found) and 4 (link counts, the
 * orphan list). See check.h and check_int.h.
 *
 * Layer: program library (9). Calls btree, inode and dir, and check.c's
 * repair helpers. Works on the model pass 1 built: dents[] (sorted by
 * directory) and ino[] (sorted by inode number).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check_int.h"
#include "dir.h"
#include "inode.h"
#include "mmapfs/mmapfs.h"

#define DI(f) offsetof(struct mfs_disk_inode, f)

static const char *type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "regular file";
	case S_IFDIR: return "directory";
	case S_IFLNK: return "symbolic link";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "character device";
	case S_IFBLK: return "block device";
	default: return "inode";
	}
}

static bool live(const struct dent *d)
{
	return !(d->flags & D_DROP);
}

/* ------------------------------------------------------------------ */
/* Pass 2: directory entries                                           */
/* ------------------------------------------------------------------ */

static const char *bad_name(const char *name, size_t len)
{
	if (memchr(name, '/', len))
		return "contains '/'";
	if (memchr(name, 0, len))
		return "contains a NUL byte";
	if ((len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return "is '.' or '..'";
	return NULL;
}

/* Checks of one entry on its own. */
static void check_dent(struct ck *c, struct dent *d)
{
	const char *name = ck_dname(c, d), *why;
	struct ino_rec *t;
	char esc[CK_ESC_SIZE];
	uint64_t h;

	why = bad_name(name, d->len);
	if (why) {
		d->flags |= D_DROP;
		ck_problem(c, "Remove", "Entry '%s' in directory %llu: the name %s",
			   ck_esc(name, d->len, esc), (unsigned long long)d->dir,
			   why);
		return;
	}
	t = ck_ino(c, d->ino);
	if (!t || (t->flags & I_CLEAR)) {
		d->flags |= D_DROP;
		ck_problem(c, "Clear", "Entry '%s' in directory %llu refers to "
			   "inode %llu, which does not exist",
			   ck_esc(name, d->len, esc), (unsigned long long)d->dir,
			   (unsigned long long)d->ino);
		return;
	}
	if (d->ino == MFS_ROOT_INO) {
		d->flags |= D_DROP;
		ck_problem(c, "Clear", "Entry '%s' in directory %llu refers to the "
			   "root directory", ck_esc(name, d->len, esc),
			   (unsigned long long)d->dir);
		return;
	}
	h = mfs_dir_hash(c->v, name, d->len);
	if (h != d->hash) {
		d->flags |= D_MOVE;
		d->new_hash = h;
		ck_problem(c, "Move", "Entry '%s' in directory %llu is stored under "
			   "hash %#llx, but its name hashes to %#llx",
			   ck_esc(name, d->len, esc), (unsigned long long)d->dir,
			   (unsigned long long)d->hash, (unsigned long long)h);
	}
	d->new_type = mfs_dir_type(t->mode);
	if (d->type != d->new_type) {
		d->flags |= D_TYPE;
		ck_problem(c, "Fix", "Entry '%s' in directory %llu has file type %u, "
			   "but inode %llu is a %s", ck_esc(name, d->len, esc),
			   (unsigned long long)d->dir, d->type,
			   (unsigned long long)d->ino, type_name(t->mode));
	}
}

/* Order: directory, hash of the name, name, then entries that need no
 * move first, then tree order. */
static int name_cmp(const void *a, const void *b, void *arg)
{
	const struct ck *c = arg;
	const struct dent *x = &c->dent[*(const size_t *)a];
	const struct dent *y = &c->dent[*(const size_t *)b];
	uint64_t hx, hy;
	int r;

	if (x->dir != y->dir)
		return x->dir < y->dir ? -1 : 1;
	/* Equal names hash alike: comparing the hashes first spares almost
	 * every memcmp (and entries come in tree order, by hash). */
	hx = x->flags & D_MOVE ? x->new_hash : x->hash;
	hy = y->flags & D_MOVE ? y->new_hash : y->hash;
	if (hx != hy)
		return hx < hy ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	r = memcmp(ck_dname(c, x), ck_dname(c, y), x->len);
	if (r)
		return r;
	if ((x->flags & D_MOVE) != (y->flags & D_MOVE))
		return (x->flags & D_MOVE) ? 1 : -1;
	return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static int target_cmp(const void *a, const void *b, void *arg)
{
	const struct ck *c = arg;
	const struct dent *x = &c->dent[*(const size_t *)a];
	const struct dent *y = &c->dent[*(const size_t *)b];

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

/* Live entries' indexes, for sorting. */
static size_t *live_index(struct ck *c, bool dirs_only, size_t *n)
{
	size_t *idx = malloc((c->ndent ? c->ndent : 1) * sizeof(*idx)), i;

	*n = 0;
	if (!idx)
		return NULL;
	for (i = 0; i < c->ndent; i++) {
		const struct dent *d = &c->dent[i];

		if (!live(d))
			continue;
		if (dirs_only) {
			const struct ino_rec *t = ck_ino(c, d->ino);

			if (!S_ISDIR(t->mode))
				continue;
		}
		idx[(*n)++] = i;
	}
	return idx;
}

/* A name may appear once per directory. */
static int check_duplicates(struct ck *c)
{
	char esc[CK_ESC_SIZE];
	size_t n, i, *idx = live_index(c, false, &n);

	if (!idx)
		return -ENOMEM;
	qsort_r(idx, n, sizeof(*idx), name_cmp, c);
	for (i = 1; i < n; i++) {
		struct dent *p = &c->dent[idx[i - 1]], *d = &c->dent[idx[i]];

		if (p->dir != d->dir || p->len != d->len ||
		    memcmp(ck_dname(c, p), ck_dname(c, d), d->len))
			continue;
		d->flags |= D_DROP;
		ck_problem(c, "Remove", "Directory %llu has a second entry named "
			   "'%s' (inode %llu)", (unsigned long long)d->dir,
			   ck_esc(ck_dname(c, d), d->len, esc),
			   (unsigned long long)d->ino);
	}
	free(idx);
	return 0;
}

/* A directory has exactly one entry: the one in its parent (di_parent)
 * if that is among them, else the first. */
static int check_dir_links(struct ck *c)
{
	char esc[CK_ESC_SIZE];
	size_t n, i, j, *idx = live_index(c, true, &n);

	if (!idx)
		return -ENOMEM;
	qsort_r(idx, n, sizeof(*idx), target_cmp, c);
	for (i = 0; i < n; i = j) {
		const struct ino_rec *t = ck_ino(c, c->dent[idx[i]].ino);
		size_t keep = idx[i];

		for (j = i + 1; j < n && c->dent[idx[j]].ino == t->ino; j++)
			;
		if (j - i == 1)
			continue;
		for (size_t k = i; k < j; k++)
			if (c->dent[idx[k]].dir == t->parent) {
				keep = idx[k];
				break;
			}
		for (size_t k = i; k < j; k++) {
			struct dent *d = &c->dent[idx[k]];

			if (idx[k] == keep)
				continue;
			d->flags |= D_DROP;
			ck_problem(c, "Remove", "Directory %llu has more than one "
				   "entry; entry '%s' in directory %llu is not the "
				   "one in its parent %llu",
				   (unsigned long long)t->ino,
				   ck_esc(ck_dname(c, d), d->len, esc),
				   (unsigned long long)d->dir,
				   (unsigned long long)c->dent[keep].dir);
		}
	}
	free(idx);
	return 0;
}

/* Make the changes the model decided. Removals and type fixes first;
 * moved entries are added at their hash afterwards, when every item they
 * may join has been cleaned. */
static void apply_dents(struct ck *c)
{
	size_t i;
	int rc;

	for (i = 0; i < c->ndent && !c->failed; i++) {
		struct dent *d = &c->dent[i];

		if (d->flags & (D_DROP | D_MOVE))
			rc = ck_dent_edit(c, d->dir, d->hash, ck_dname(c, d),
					  d->len, d->ino, -1);
		else if (d->flags & D_TYPE)
			rc = ck_dent_edit(c, d->dir, d->hash, ck_dname(c, d),
					  d->len, d->ino, d->new_type);
		else
			continue;
		if (rc)
			ck_fail(c, rc, "rewriting a directory entry");
	}
	for (i = 0; i < c->ndent && !c->failed; i++) {
		struct dent *d = &c->dent[i];

		if ((d->flags & (D_DROP | D_MOVE)) != D_MOVE)
			continue;
		rc = mfs_dir_add(c->v, d->dir, ck_dname(c, d), d->len, d->ino,
				 d->new_type);
		if (rc)
			ck_fail(c, rc, "moving a directory entry");
	}
}

int ck_pass2(struct ck *c)
{
	size_t i;
	int rc;

	ck_pass_start(c, 2, "Checking directory structure", c->ndent);
	for (i = 0; i < c->ndent; i++) {
		check_dent(c, &c->dent[i]);
		ck_progress(c, 1);
	}
	rc = check_duplicates(c);
	if (!rc)
		rc = check_dir_links(c);
	if (rc)
		return rc;
	/* Count what stays. */
	for (i = 0; i < c->nino; i++)
		c->ino[i].entries = 0;
	for (i = 0; i < c->ndent; i++) {
		struct dent *d = &c->dent[i];
		struct ino_rec *t, *owner;

		if (!live(d))
			continue;
		if (d->flags & D_MOVE)
			d->type = d->new_type;
		t = ck_ino(c, d->ino);
		owner = ck_ino(c, d->dir);
		t->links++;
		owner->entries++;
		if (S_ISDIR(t->mode)) {
			owner->subdirs++;
			t->dent_parent = d->dir;
		}
	}
	if (c->repair)
		apply_dents(c);
	for (i = 0; i < c->ndent; i++)
		if ((c->dent[i].flags & (D_DROP | D_MOVE)) == D_MOVE)
			c->dent[i].hash = c->dent[i].new_hash;
	ck_pass_end(c);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Pass 3: connectivity                                                */
/* ------------------------------------------------------------------ */

static void now(struct mfs_inode *in)
{
	mfs_inode_now(&in->mtime);
	in->atime = in->ctime = in->btime = in->mtime;
}

/* The root directory must exist: recreate it empty if it does not (what
 * it held is then reconnected under /lost+found). */
static int check_root(struct ck *c)
{
	struct ino_rec *r = ck_ino(c, MFS_ROOT_INO), nr;
	int rc;

	if (r && !(r->flags & I_CLEAR) && S_ISDIR(r->mode))
		return 0;
	memset(&nr, 0, sizeof(nr));
	nr.ino = MFS_ROOT_INO;
	nr.mode = S_IFDIR | 0755;
	nr.nlink = 2;
	nr.size = MFS_BLOCK_SIZE;
	nr.parent = MFS_ROOT_INO;
	nr.dent_parent = MFS_ROOT_INO;
	if (ck_problem(c, "Create", r && !(r->flags & I_CLEAR) ?
		       "The root directory (inode 1) is not a directory" :
		       "The root directory (inode 1) is missing")) {
		struct mfs_key k = mfs_key_make(MFS_ROOT_INO, MFS_ITEM_INODE, 0);
		uint8_t zero[sizeof(struct mfs_disk_inode)] = { 0 };
		struct mfs_inode in;

		rc = r ? ck_remove_inode(c, MFS_ROOT_INO) : 0;
		if (!rc)
			rc = mfs_btree_insert(c->v, MFS_TREE_FS, &k, zero,
					      sizeof(zero));
		if (!rc) {
			memset(&in, 0, sizeof(in));
			in.ino = MFS_ROOT_INO;
			in.mode = nr.mode;
			in.nlink = nr.nlink;
			in.size = nr.size;
			in.parent = nr.parent;
			in.generation = c->v->gen;
			now(&in);
			rc = mfs_inode_write(c->v, &in);
		}
		if (rc)
			ck_fail(c, rc, "creating the root directory");
	}
	if (r) {
		/* Keep what the entries of the old inode 1 counted. */
		nr.subdirs = S_ISDIR(r->mode) ? r->subdirs : 0;
		nr.entries = S_ISDIR(r->mode) ? r->entries : 0;
		*r = nr;
		return 0;
	}
	rc = ck_ino_append(c, &nr);
	if (rc)
		return rc;
	/* Keep ino[] sorted: inode 1 goes first. */
	memmove(&c->ino[1], &c->ino[0], (c->nino - 1) * sizeof(*c->ino));
	c->ino[0] = nr;
	return 0;
}

/* The range of dents of directory dir. */
static void dent_range(const struct ck *c, uint64_t dir, size_t *lo, size_t *hi)
{
	size_t a = 0, b = c->ndent;

	while (a < b) {
		size_t m = a + (b - a) / 2;

		if (c->dent[m].dir < dir)
			a = m + 1;
		else
			b = m;
	}
	*lo = a;
	for (b = a; b < c->ndent && c->dent[b].dir == dir; b++)
		;
	*hi = b;
}

/* Mark everything reachable from dir. */
static int reach(struct ck *c, uint64_t dir)
{
	uint64_t *queue;
	size_t qh = 0, qt = 0;

	queue = malloc((c->nino + 1) * sizeof(*queue));
	if (!queue)
		return -ENOMEM;
	ck_ino(c, dir)->flags |= I_REACHED;
	queue[qt++] = dir;
	while (qh < qt) {
		size_t lo, hi;

		dent_range(c, queue[qh++], &lo, &hi);
		for (size_t i = lo; i < hi; i++) {
			struct ino_rec *t;

			if (!live(&c->dent[i]))
				continue;
			t = ck_ino(c, c->dent[i].ino);
			if (t->flags & I_REACHED)
				continue;
			t->flags |= I_REACHED;
			ck_progress(c, 1);
			if (S_ISDIR(t->mode))
				queue[qt++] = t->ino;
		}
	}
	free(queue);
	return 0;
}

/* Find /lost+found among the root's entries. One that is not a directory
 * is moved out of the way (it is then unattached, and lands in the new
 * lost+found like everything else without an entry). */
static void find_lost_found(struct ck *c)
{
	static const char lf[] = "lost+found";
	size_t lo, hi;
	int rc;

	dent_range(c, MFS_ROOT_INO, &lo, &hi);
	for (size_t i = lo; i < hi; i++) {
		struct dent *d = &c->dent[i];
		struct ino_rec *t;

		if (!live(d) || d->len != sizeof(lf) - 1 ||
		    memcmp(ck_dname(c, d), lf, d->len))
			continue;
		t = ck_ino(c, d->ino);
		if (S_ISDIR(t->mode)) {
			c->lf_ino = t->ino;
			return;
		}
		d->flags |= D_DROP;
		t->links--;
		ck_ino(c, MFS_ROOT_INO)->entries--;
		if (ck_problem(c, "Remove", "/lost+found is not a directory "
			       "(inode %llu)", (unsigned long long)t->ino)) {
			rc = ck_dent_edit(c, d->dir, d->hash, lf, d->len, d->ino,
					  -1);
			if (rc)
				ck_fail(c, rc, "removing /lost+found");
		}
		return;
	}
}

/* /lost+found, created the first time it is needed. Returns its record,
 * or NULL if it could not be had. */
static struct ino_rec *lost_found(struct ck *c)
{
	static const char lf[] = "lost+found";
	struct ino_rec *root, r;
	struct mfs_inode in;
	int rc;

	if (c->lf_ino)
		return ck_ino(c, c->lf_ino);
	memset(&r, 0, sizeof(r));
	r.mode = S_IFDIR | 0700;
	r.nlink = 2;
	r.size = MFS_BLOCK_SIZE;
	r.parent = MFS_ROOT_INO;
	r.dent_parent = MFS_ROOT_INO;
	r.links = 1;
	r.flags = I_REACHED;
	if (ck_problem(c, "Create", "/lost+found not found")) {
		memset(&in, 0, sizeof(in));
		in.mode = r.mode;
		in.nlink = r.nlink;
		in.size = r.size;
		in.parent = r.parent;
		now(&in);
		rc = mfs_inode_create(c->v, &in);
		if (!rc)
			rc = mfs_dir_add(c->v, MFS_ROOT_INO, lf, sizeof(lf) - 1,
					 in.ino, DT_DIR);
		if (rc) {
			ck_fail(c, rc, "creating /lost+found");
			return NULL;
		}
		r.ino = in.ino;
	} else {
		/* What the repair would do, for the counts below. */
		r.ino = c->max_ino + 1;
	}
	rc = ck_ino_append(c, &r);
	if (rc)
		return NULL;
	c->lf_ino = r.ino;
	root = ck_ino(c, MFS_ROOT_INO);
	root->subdirs++;
	root->entries++;
	/* lost+found's own entry adds a link to the root: keep the root's
	 * count right, as its creation is what changes it. */
	root->nlink++;
	if (c->repair && !c->failed) {
		rc = ck_patch_inode(c, MFS_ROOT_INO, DI(di_nlink), 4, root->nlink);
		if (rc)
			ck_fail(c, rc, "updating the root directory");
	}
	return ck_ino(c, c->lf_ino);
}

/*
 * Give inode ino an entry "#ino" in /lost+found (the caller has reported
 * the problem; fix says whether to make the change). A directory gets
 * lost+found as its parent, and lost+found a link more.
 */
static int reconnect(struct ck *c, uint64_t ino, bool fix)
{
	struct ino_rec *lf = lost_found(c), *r;
	char name[48];
	int rc = 0;

	if (!lf)
		return c->failed ? 0 : -ENOMEM;
	r = ck_ino(c, ino);
	if (fix && !c->failed) {
		for (unsigned n = 0; n < 1000; n++) {
			if (n == 0)
				snprintf(name, sizeof(name), "#%llu",
					 (unsigned long long)ino);
			else
				snprintf(name, sizeof(name), "#%llu.%u",
					 (unsigned long long)ino, n);
			rc = mfs_dir_add(c->v, lf->ino, name, strlen(name), ino,
					 mfs_dir_type(r->mode));
			if (rc != -EEXIST)
				break;
		}
		if (!rc && S_ISDIR(r->mode)) {
			rc = ck_patch_inode(c, ino, DI(di_parent), 8, lf->ino);
			if (!rc)
				rc = ck_patch_inode(c, lf->ino, DI(di_nlink), 4,
						    lf->nlink + 1);
		}
		if (rc)
			ck_fail(c, rc, "connecting to /lost+found");
	}
	r->links++;
	r->flags |= I_REACHED;
	lf->entries++;
	if (S_ISDIR(r->mode)) {
		lf->subdirs++;
		lf->nlink++;
		r->dent_parent = lf->ino;
		r->parent = lf->ino;
		return reach(c, ino);
	}
	return 0;
}

/* Remove the one entry naming directory ino (it is in a loop). */
static void unlink_dir(struct ck *c, struct ino_rec *r, bool fix)
{
	for (size_t i = 0; i < c->ndent; i++) {
		struct dent *d = &c->dent[i];

		if (!live(d) || d->ino != r->ino)
			continue;
		d->flags |= D_DROP;
		r->links--;
		ck_ino(c, d->dir)->subdirs--;
		ck_ino(c, d->dir)->entries--;
		if (fix && !c->failed) {
			int rc = ck_dent_edit(c, d->dir, d->hash, ck_dname(c, d),
					      d->len, d->ino, -1);

			if (rc)
				ck_fail(c, rc, "removing a directory entry");
		}
		return;
	}
}

int ck_pass3(struct ck *c)
{
	size_t i;
	int rc;

	ck_pass_start(c, 3, "Checking directory connectivity", c->nino);
	/* Room for the root and lost+found, so that record pointers held
	 * below stay valid. */
	if (c->nino + 2 > c->ino_cap) {
		struct ino_rec *n = realloc(c->ino, (c->nino + 2) * sizeof(*n));

		if (!n)
			return -ENOMEM;
		c->ino = n;
		c->ino_cap = c->nino + 2;
	}
	rc = check_root(c);
	if (rc)
		return rc;
	/* Proper orphans stay where they are: pass 4 reclaims them. */
	for (i = 0; i < c->nino; i++) {
		struct ino_rec *r = &c->ino[i];

		if (r->nlink == 0 && (r->flags & I_ORPHAN) && r->links == 0 &&
		    r->entries == 0 && r->ino != MFS_ROOT_INO)
			r->flags |= I_LEGIT;
	}
	rc = reach(c, MFS_ROOT_INO);
	if (rc)
		return rc;
	find_lost_found(c);

	/* Unreachable directories: first those no entry names (the tops of
	 * detached subtrees), then, while any is left, a loop is broken. */
	for (i = 0; i < c->nino; i++) {
		struct ino_rec *r = &c->ino[i];

		if (!S_ISDIR(r->mode) || (r->flags & (I_REACHED | I_CLEAR | I_LEGIT)) ||
		    r->links)
			continue;
		lost_found(c);
		rc = reconnect(c, r->ino, ck_problem(c, "Connect to /lost+found",
			"Directory %llu is not connected to the tree (no entry "
			"names it)", (unsigned long long)r->ino));
		if (rc)
			return rc;
	}
	for (i = 0; i < c->nino; i++) {
		struct ino_rec *r = &c->ino[i];
		bool fix;

		if (!S_ISDIR(r->mode) || (r->flags & (I_REACHED | I_CLEAR | I_LEGIT)))
			continue;
		/* Every directory left has its entry in another one left, so
		 * going up nino times surely ends inside the loop itself. */
		for (size_t k = 0; k < c->nino; k++) {
			struct ino_rec *p = ck_ino(c, r->dent_parent);

			if (!p || (p->flags & I_REACHED))
				break;
			r = p;
		}
		lost_found(c);
		fix = ck_problem(c, "Connect to /lost+found", "Directory %llu is "
				 "in a loop of directories not reachable from the "
				 "root", (unsigned long long)r->ino);
		unlink_dir(c, r, fix);
		rc = reconnect(c, r->ino, fix);
		if (rc)
			return rc;
		/* What was below the loop is reachable now; if this one is
		 * not, it hangs below another loop. */
		if (!(c->ino[i].flags & I_REACHED))
			i--;
	}
	/* Every directory is reachable now, so every entry is: what has no
	 * entry is unattached. */
	for (i = 0; i < c->nino; i++) {
		struct ino_rec *r = &c->ino[i];

		if (S_ISDIR(r->mode) || r->links ||
		    (r->flags & (I_CLEAR | I_LEGIT)))
			continue;
		lost_found(c);
		rc = reconnect(c, r->ino, ck_problem(c, "Connect to /lost+found",
			"Inode %llu (%s, nlink %u) has no directory entry%s",
			(unsigned long long)r->ino, type_name(r->mode), r->nlink,
			r->nlink == 0 && !(r->flags & I_ORPHAN) ?
			" and is not on the orphan list" : ""));
		if (rc)
			return rc;
	}
	/* There is always a lost+found, as mkfs makes it (and e2fsck). */
	lost_found(c);
	/* '..' is the directory holding the entry. */
	for (i = 0; i < c->nino; i++) {
		struct ino_rec *r = &c->ino[i];
		uint64_t want = r->ino == MFS_ROOT_INO ? MFS_ROOT_INO : r->dent_parent;

		if (!S_ISDIR(r->mode) || (r->flags & (I_CLEAR | I_LEGIT)) ||
		    r->parent == want)
			continue;
		if (ck_problem(c, "Fix", "Directory %llu has '..' = %llu, should "
			       "be %llu", (unsigned long long)r->ino,
			       (unsigned long long)r->parent,
			       (unsigned long long)want)) {
			rc = ck_patch_inode(c, r->ino, DI(di_parent), 8, want);
			if (rc)
				ck_fail(c, rc, "writing an inode");
		}
		r->parent = want;
	}
	ck_pass_end(c);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Pass 4: reference counts and the orphan list                        */
/* ------------------------------------------------------------------ */

int ck_pass4(struct ck *c)
{
	size_t i;
	int rc;

	ck_pass_start(c, 4, "Checking reference counts", c->nino);
	for (i = 0; i < c->nino; i++) {
		struct ino_rec *r = &c->ino[i];
		struct mfs_key ok = mfs_key_make(MFS_ORPHAN_OBJID, MFS_ITEM_ORPHAN,
						 r->ino);
		uint32_t want;

		ck_progress(c, 1);
		if (r->flags & I_CLEAR)
			continue;
		if (r->flags & I_LEGIT) {
			if (c->repair && !c->failed) {
				rc = ck_remove_inode(c, r->ino);
				if (rc) {
					ck_fail(c, rc, "reclaiming an orphan");
					continue;
				}
				c->res->modified = true;
				ck_note(c, "Orphaned inode %llu (%s, unlinked while "
					"open): reclaimed", (unsigned long long)r->ino,
					type_name(r->mode));
			} else {
				ck_note(c, "Orphaned inode %llu (%s, unlinked while "
					"open): reclaimed at the next read-write "
					"open", (unsigned long long)r->ino,
					type_name(r->mode));
			}
			/* Still counted in pass 5: the committed state has it,
			 * rightly. */
			continue;
		}
		want = S_ISDIR(r->mode) ? 2 + r->subdirs : r->links;
		if (r->nlink != want) {
			if (ck_problem(c, "Fix", "Inode %llu ref count is %u, "
				       "should be %u", (unsigned long long)r->ino,
				       r->nlink, want)) {
				rc = ck_patch_inode(c, r->ino, DI(di_nlink), 4, want);
				if (rc)
					ck_fail(c, rc, "writing an inode");
			}
			r->nlink = want;
		}
		if (r->flags & I_ORPHAN) {
			if (ck_problem(c, "Remove", "Inode %llu is on the orphan "
				       "list but has %u links",
				       (unsigned long long)r->ino, r->nlink)) {
				rc = ck_delete_item(c, &ok);
				if (rc)
					ck_fail(c, rc, "removing an orphan entry");
			}
			r->flags &= ~(uint32_t)I_ORPHAN;
		}
	}
	for (i = 0; i < c->norphans; i++) {
		struct mfs_key ok = mfs_key_make(MFS_ORPHAN_OBJID, MFS_ITEM_ORPHAN,
						 c->orphans[i]);

		if (ck_ino(c, c->orphans[i]))
			continue;
		if (ck_problem(c, "Remove", "The orphan list names inode %llu, "
			       "which does not exist",
			       (unsigned long long)c->orphans[i])) {
			rc = ck_delete_item(c, &ok);
			if (rc)
				ck_fail(c, rc, "removing an orphan entry");
		}
	}
	ck_pass_end(c);
	return 0;
}
