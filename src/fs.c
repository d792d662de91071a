/* SPDX-License-Identifier: MIT */
/*
 * fs.c — the filesystem core API; see include/mmapfs/mmapfs.h.
 *
 * Layer 7. Calls inode, dir, file, xattr and txn. One function per
 * operation; POSIX rules (types, link counts, times, setuid clearing, the
 * orphan list) live here, item layouts do not.
 *
 * Locking: fs->lock is a reader/writer lock. Lookups, getattr, read,
 * readdir, readlink, getxattr, lseek and statfs take it shared; everything
 * that changes the trees takes it exclusive (a commit too). The table of
 * in-memory references (lookup and open counts) has its own mutex, so
 * shared-lock holders can count lookups.
 *
 * Unlinked inodes: when a link count reaches 0 while the inode is still
 * referenced (lookup count or open count), an ORPHAN item records it and the
 * inode stays; the last mfs_forget/mfs_release removes it. After a crash the
 * next mfs_fs_open removes every orphan.
 */
#include "mmapfs/mmapfs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "btree.h"
#include "dir.h"
#include "file.h"
#include "fs_internal.h"
#include "image.h"
#include "inode.h"
#include "log.h"
#include "txn.h"
#include "xattr.h"

/*
 * Sequential read streams, for mfs_read_cached: per slot, picked by the
 * inode number, the end of the last read of an inode. Approximate on
 * purpose: inodes that hash alike share a slot and the fields are not
 * updated together, so at worst a stream is taken for random reads or the
 * other way round, which only changes what is dropped.
 */
#define STREAM_SLOTS 64
struct stream {
	_Atomic uint64_t ino;
	_Atomic uint64_t end;     /* of the last read */
};

/* In-memory references to an inode. */
struct ref {
	uint64_t ino;
	uint64_t nlookup;
	uint64_t nopen;
	bool linkable;   /* made by mfs_tmpfile, not linked yet */
};

struct mfs_fs {
	struct mfs_vol *v;
	pthread_rwlock_t lock;
	pthread_mutex_t ref_lock;
	struct ref *refs;    /* open-addressing table, ino 0 = empty */
	size_t ref_cap, ref_nr;
	/* File data was written in place since the last sync. */
	bool data_dirty;
	/* Opened with MFS_FS_DEFER and mfs_fs_start not called yet: nothing
	 * has been written, and close writes nothing either. */
	bool deferred;
	struct stream streams[STREAM_SLOTS];
	struct stream wstreams[STREAM_SLOTS]; /* writers: mfs_write_behind */
	/* The host's side of mfs_space_left, at most HOST_SPACE_NS old. */
	_Atomic uint64_t host_free, host_backed, host_at;
	/* mfs_fs_copy_on_sync: where the durable state goes, or NULL. */
	char *durable_path;
};

/* ------------------------------------------------------------------ */
/* Reference table                                                     */
/* ------------------------------------------------------------------ */

static size_t ref_hash(uint64_t ino, size_t cap)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 20) & (cap - 1);
}

static struct ref *ref_find(struct mfs_fs *fs, uint64_t ino)
{
	size_t i;

	if (!fs->ref_cap)
		return NULL;
	for (i = ref_hash(ino, fs->ref_cap);; i = (i + 1) & (fs->ref_cap - 1)) {
		if (fs->refs[i].ino == ino)
			return &fs->refs[i];
		if (fs->refs[i].ino == 0)
			return NULL;
	}
}

static int ref_grow(struct mfs_fs *fs)
{
	size_t ncap = fs->ref_cap ? fs->ref_cap * 2 : 1024, i;
	struct ref *n = calloc(ncap, sizeof(*n));

	if (!n)
		return -ENOMEM;
	for (i = 0; i < fs->ref_cap; i++) {
		size_t j;

		if (!fs->refs[i].ino)
			continue;
		for (j = ref_hash(fs->refs[i].ino, ncap); n[j].ino;
		     j = (j + 1) & (ncap - 1))
			;
		n[j] = fs->refs[i];
	}
	free(fs->refs);
	fs->refs = n;
	fs->ref_cap = ncap;
	return 0;
}

/* Add to an inode's counts (creating its entry). Caller holds ref_lock. */
static int ref_add(struct mfs_fs *fs, uint64_t ino, uint64_t lookups,
		   uint64_t opens)
{
	struct ref *r = ref_find(fs, ino);

	if (!r) {
		size_t i;

		if ((fs->ref_nr + 1) * 2 > fs->ref_cap && ref_grow(fs))
			return -ENOMEM;
		for (i = ref_hash(ino, fs->ref_cap); fs->refs[i].ino;
		     i = (i + 1) & (fs->ref_cap - 1))
			;
		r = &fs->refs[i];
		r->ino = ino;
		r->linkable = false;
		fs->ref_nr++;
	}
	r->nlookup += lookups;
	r->nopen += opens;
	return 0;
}

/* Remove an entry, re-placing the entries after it (linear probing). */
static void ref_del(struct mfs_fs *fs, struct ref *r)
{
	size_t i = (size_t)(r - fs->refs), j = i;

	fs->refs[i].ino = 0;
	fs->ref_nr--;
	for (;;) {
		struct ref tmp;
		size_t k;

		j = (j + 1) & (fs->ref_cap - 1);
		if (!fs->refs[j].ino)
			return;
		tmp = fs->refs[j];
		fs->refs[j].ino = 0;
		for (k = ref_hash(tmp.ino, fs->ref_cap); fs->refs[k].ino;
		     k = (k + 1) & (fs->ref_cap - 1))
			;
		fs->refs[k] = tmp;
	}
}

static int ref_lookup(struct mfs_fs *fs, uint64_t ino)
{
	int rc;

	pthread_mutex_lock(&fs->ref_lock);
	rc = ref_add(fs, ino, 1, 0);
	pthread_mutex_unlock(&fs->ref_lock);
	return rc;
}

static bool referenced(struct mfs_fs *fs, uint64_t ino)
{
	struct ref *r;
	bool yes;

	pthread_mutex_lock(&fs->ref_lock);
	r = ref_find(fs, ino);
	yes = r && (r->nlookup || r->nopen);
	pthread_mutex_unlock(&fs->ref_lock);
	return yes;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static void rdlock(struct mfs_fs *fs)
{
	pthread_rwlock_rdlock(&fs->lock);
}

static void wrlock(struct mfs_fs *fs)
{
	pthread_rwlock_wrlock(&fs->lock);
}

static void unlock(struct mfs_fs *fs)
{
	pthread_rwlock_unlock(&fs->lock);
}

/* May the tree be changed now? */
static int writable(struct mfs_fs *fs)
{
	if (fs->v->error)
		return -EROFS;
	if (fs->v->readonly)
		return -EROFS;
	return 0;
}

/*
 * Space. Blocks freed by a transaction become usable only two commits
 * later (design.md §5), and every tree change, a delete included, needs a
 * few free blocks for copies of the nodes it touches. So operations that
 * make the filesystem grow stop short of a reserve, which deletes may use:
 * a full filesystem can always be emptied. When space runs short and
 * pinned blocks would help, commit (twice) to release them first.
 */
#define OP_BLOCKS 16u /* tree blocks a namespace change may need */

static uint64_t reserve_blocks(const struct mfs_fs *fs)
{
	uint64_t r = mfs_alloc_block_count(fs->v->alloc) / 64;

	return r < 16 ? 16 : r > 8192 ? 8192 : r;
}

/* Commit (up to twice) until want blocks are available, if pinned blocks
 * can make up the difference. Caller holds the write lock. */
static int unpin_for(struct mfs_fs *fs, uint64_t want)
{
	struct mfs_alloc *a = fs->v->alloc;
	int i, rc;

	for (i = 0; i < 2 && mfs_alloc_avail_blocks(a) < want; i++) {
		if (mfs_alloc_free_blocks(a) <= mfs_alloc_avail_blocks(a))
			break; /* nothing pinned: a commit cannot help */
		fs->v->dirty = true;
		rc = mfs_txn_commit(fs->v);
		if (rc)
			return rc;
	}
	return 0;
}

/* For an operation that makes the filesystem grow by up to `blocks`:
 * 0 if they are available beyond the reserve, else -ENOSPC. Caller holds
 * the write lock. */
static int need_space(struct mfs_fs *fs, uint64_t blocks)
{
	uint64_t want = blocks + fs->v->reserve;
	int rc;

	if (blocks > mfs_alloc_block_count(fs->v->alloc))
		return -ENOSPC;
	rc = unpin_for(fs, want);
	if (rc)
		return rc;
	return mfs_alloc_avail_blocks(fs->v->alloc) >= want ? 0 : -ENOSPC;
}

/* For a delete: copies of the tree nodes it touches come from the
 * reserve, and blocks it frees return only after two commits, so a long
 * run of deletes on a full filesystem commits whenever the reserve runs
 * half empty. Leaves half of it for the commit's own FREE-tree changes. */
static int need_delete_space(struct mfs_fs *fs)
{
	/* file.c lets removals go on while half of its reserve is left:
	 * keep at least that much plus a namespace change available. */
	return unpin_for(fs, mfs_file_reserved(fs->v) / 2 + OP_BLOCKS);
}

static uint64_t blocks_for(uint64_t bytes)
{
	return (bytes + MFS_BLOCK_SIZE - 1) / MFS_BLOCK_SIZE;
}

/* The API's limit is the format's: one number, two names (mmapfs.h has no
 * format knowledge). */
_Static_assert(MFS_NAME_LEN == MFS_NAME_MAX, "name length limit");

static int check_name(const char *name, size_t *len)
{
	size_t n = strnlen(name, MFS_NAME_LEN + 1);

	if (n > MFS_NAME_LEN)
		return -ENAMETOOLONG;
	if (n == 0 || strchr(name, '/'))
		return -EINVAL;
	*len = n;
	return 0;
}

static bool is_dot(const char *name)
{
	return !strcmp(name, ".") || !strcmp(name, "..");
}

static void to_attr(const struct mfs_inode *in, struct mfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = in->ino;
	a->generation = in->generation;
	a->mode = in->mode;
	a->nlink = in->nlink;
	a->uid = in->uid;
	a->gid = in->gid;
	a->rdev = in->rdev;
	a->size = in->size;
	a->blocks = in->blocks;
	a->atime = in->atime;
	a->mtime = in->mtime;
	a->ctime = in->ctime;
	a->btime = in->btime;
}

/* Read a directory inode: -ENOTDIR if it is not one, -ENOENT if it was
 * removed (a deleted directory still referenced has nlink 0). */
static int get_dir(struct mfs_vol *v, uint64_t ino, struct mfs_inode *d)
{
	int rc = mfs_inode_read(v, ino, d);

	if (rc)
		return rc;
	if (!S_ISDIR(d->mode))
		return -ENOTDIR;
	if (d->nlink == 0)
		return -ENOENT;
	return 0;
}

static void touch_mc(struct mfs_inode *in)
{
	mfs_inode_now(&in->mtime);
	in->ctime = in->mtime;
}

/* Drop setuid, and setgid when group-executable, as the kernel does for a
 * write or truncate by a caller without CAP_FSETID. */
static bool kill_priv(struct mfs_inode *in, const struct mfs_cred *cred)
{
	uint32_t old = in->mode;

	if (!S_ISREG(in->mode))
		return false;
	in->mode &= ~(uint32_t)S_ISUID;
	/* setattr_should_drop_sgid(): group-executable, or the caller is
	 * not in the file's group. */
	if ((in->mode & S_IXGRP) || !cred->in_group)
		in->mode &= ~(uint32_t)S_ISGID;
	return in->mode != old;
}

/*
 * Drop "security.capability" (file capabilities), which the kernel kills
 * along with setuid on write, truncate and chown. Called before anything
 * else changes, like file_remove_privs, so that a failure leaves the
 * request undone. Looks the name up first: nearly every file has none, and
 * then nothing is reserved or written. Caller holds the write lock.
 */
static int kill_cap(struct mfs_fs *fs, uint64_t ino)
{
	static const char name[] = "security.capability";
	size_t len;
	int rc;

	rc = mfs_xattr_get(fs->v, ino, name, NULL, 0, &len);
	if (rc == -ENODATA)
		return 0;
	if (!rc)
		rc = need_delete_space(fs);
	if (!rc)
		rc = mfs_xattr_remove(fs->v, ino, name);
	return rc;
}

/* A file-layer call that fails may already have changed the extent map
 * (and in->blocks or in->size) before it stopped: write the inode back so
 * that it always agrees with its extents. Returns rc. Caller holds the
 * write lock. */
static int keep_inode(struct mfs_fs *fs, struct mfs_inode *in,
		      const struct mfs_inode *orig, int rc)
{
	/* The size stays as it was (the call failed); blocks past it are
	 * allowed, as after fallocate with KEEP_SIZE. */
	in->size = orig->size;
	if (in->blocks != orig->blocks) {
		int rc2 = mfs_inode_write(fs->v, in);

		if (!rc)
			rc = rc2;
	}
	return rc;
}

/* Put an unlinked inode on the orphan list, or remove it now if nothing
 * references it. */
static int drop_inode(struct mfs_fs *fs, struct mfs_inode *in)
{
	struct mfs_key k;

	if (in->nlink > 0)
		return mfs_inode_write(fs->v, in);
	if (referenced(fs, in->ino)) {
		int rc = mfs_inode_write(fs->v, in);

		if (rc)
			return rc;
		k = mfs_key_make(MFS_ORPHAN_OBJID, MFS_ITEM_ORPHAN, in->ino);
		rc = mfs_btree_put(fs->v, MFS_TREE_FS, &k, NULL, 0);
		return rc;
	}
	return mfs_inode_remove(fs->v, in);
}

/* Remove an orphan whose references are all gone. Caller holds the write
 * lock. */
static int reap(struct mfs_fs *fs, uint64_t ino)
{
	struct mfs_inode in;
	int rc;

	if (writable(fs))
		return 0; /* the next open reclaims it */
	rc = mfs_inode_read(fs->v, ino, &in);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	if (in.nlink != 0 || referenced(fs, ino))
		return 0;
	rc = need_delete_space(fs);
	if (rc)
		return rc;
	return mfs_inode_remove(fs->v, &in);
}

/*
 * Go through the orphan list. With reap, remove every inode on it (at
 * open, after a crash, and at close, when no reference can remain).
 * Without, only read the list and its inodes, changing nothing: what a
 * reap reads, so that a deferred open finds the same damage an immediate
 * one would, before anything is mounted.
 */
static int walk_orphans(struct mfs_fs *fs, bool reap)
{
	struct mfs_key lo = mfs_key_make(MFS_ORPHAN_OBJID, MFS_ITEM_ORPHAN, 0);
	struct mfs_key hi = mfs_key_make(MFS_ORPHAN_OBJID, MFS_ITEM_ORPHAN,
					 UINT64_MAX);
	struct mfs_cursor c;
	struct mfs_key k;
	int rc;

	for (;;) {
		struct mfs_inode in;

		mfs_cursor_init(&c, fs->v, MFS_TREE_FS, &lo, &hi);
		rc = mfs_cursor_next(&c, &k, NULL, NULL);
		if (rc <= 0)
			return rc;
		rc = mfs_inode_read(fs->v, k.offset, &in);
		if (!reap) {
			if (rc && rc != -ENOENT)
				return rc;
			/* The next key after this one. */
			if (k.offset == UINT64_MAX)
				return 0;
			lo = k;
			lo.offset++;
			continue;
		}
		if (rc == 0 && in.nlink == 0) {
			rc = mfs_inode_remove(fs->v, &in);
		} else if (rc == 0 || rc == -ENOENT) {
			/* Stale entry: the inode is linked again or gone. */
			rc = mfs_btree_delete(fs->v, MFS_TREE_FS, &k);
		}
		if (rc)
			return rc;
		lo = k;
	}
}

/* ------------------------------------------------------------------ */
/* Open, close, sync                                                   */
/* ------------------------------------------------------------------ */

static void fs_free(struct mfs_fs *fs);

/* Mark a writable image in use and reclaim the orphans a crash left. */
static int start(struct mfs_fs *fs, const char *image)
{
	int rc = mfs_vol_mark(fs->v);

	if (!rc)
		rc = walk_orphans(fs, true);
	if (!rc)
		rc = mfs_txn_commit(fs->v);
	if (rc)
		mfs_log(MFS_LOG_ERR, "%s%sreclaiming unlinked files: %s",
			image ? image : "", image ? ": " : "", strerror(-rc));
	return rc;
}

int mfs_fs_open(const char *image, unsigned flags, struct mfs_fs **out)
{
	struct mfs_fs *fs;
	unsigned vflags = 0;
	int rc;

	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	if (flags & MFS_FS_RDONLY)
		vflags |= MFS_VOL_RDONLY;
	if (flags & MFS_FS_NOLOCK)
		vflags |= MFS_VOL_NOLOCK;
	if (flags & MFS_FS_DEFER)
		vflags |= MFS_VOL_DEFER;
	if (flags & MFS_FS_DISCARD)
		vflags |= MFS_VOL_DISCARD;
	if (flags & MFS_FS_WAIT)
		vflags |= MFS_VOL_WAIT;
	rc = mfs_vol_open(image, vflags, &fs->v);
	if (rc) {
		free(fs);
		return rc;
	}
	pthread_rwlock_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->ref_lock, NULL);
	fs->v->reserve = reserve_blocks(fs);
	fs->deferred = !fs->v->readonly && (flags & MFS_FS_DEFER);
	if (fs->deferred) {
		rc = walk_orphans(fs, false);
		if (rc) {
			mfs_log(MFS_LOG_ERR, "%s: reading the list of unlinked "
				"files: %s", image, strerror(-rc));
			mfs_vol_close_dirty(fs->v);
			fs_free(fs);
			return rc;
		}
	} else if (!fs->v->readonly) {
		rc = start(fs, image);
		if (rc) {
			mfs_vol_close_dirty(fs->v);
			fs_free(fs);
			return rc;
		}
	}
	/* Open has read what it needs (mfs_vol_open made reads random): file
	 * data read in order wants the kernel's read-around again. */
	mfs_image_advise(fs->v->img, false);
	*out = fs;
	return 0;
}

int mfs_fs_probe(const char *image)
{
	struct mfs_attr a;
	struct mfs_fs *fs;
	int rc;

	/* What the daemon reads when it opens and mounts: the superblocks,
	 * the FREE tree (mfs_vol_open), the list of unlinked files
	 * (mfs_fs_open with MFS_FS_DEFER) and the root directory. */
	rc = mfs_fs_open(image, MFS_FS_RDONLY | MFS_FS_NOLOCK, &fs);
	if (rc)
		return rc;
	rdlock(fs);
	rc = walk_orphans(fs, false);
	unlock(fs);
	if (!rc)
		rc = mfs_getattr(fs, MFS_ROOT_INO, &a);
	mfs_fs_close(fs);
	return rc;
}

int mfs_fs_start(struct mfs_fs *fs)
{
	int rc = 0;

	wrlock(fs);
	if (fs->deferred) {
		rc = start(fs, NULL);
		if (rc == 0)
			fs->deferred = false;
	}
	unlock(fs);
	return rc;
}

static void fs_free(struct mfs_fs *fs)
{
	pthread_rwlock_destroy(&fs->lock);
	pthread_mutex_destroy(&fs->ref_lock);
	free(fs->refs);
	free(fs->durable_path);
	free(fs);
}

/*
 * The sync hook of mfs_fs_copy_on_sync: a sync just made the whole image as
 * it is now durable (a fdatasync, or the superblock's msync with nothing
 * else written since the fdatasync before it; the caller holds the lock
 * that every change of the mapping takes). Copy it, pages of zeros as
 * holes, to a temporary file and rename that over the path, so the path
 * always holds one whole durable state.
 */
static void copy_durable(struct mfs_image *img, void *arg)
{
	static const uint8_t zero[MFS_BLOCK_SIZE];
	const char *path = arg;
	char tmp[4096];
	uint64_t off;
	int fd;

	fd = -1;
	errno = ENAMETOOLONG;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		goto fail;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)img->size) != 0)
		goto fail;
	for (off = 0; off < img->size; off += MFS_BLOCK_SIZE) {
		if (memcmp(img->base + off, zero, MFS_BLOCK_SIZE) == 0)
			continue;
		if (pwrite(fd, img->base + off, MFS_BLOCK_SIZE, (off_t)off) !=
		    MFS_BLOCK_SIZE)
			goto fail;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		fd = -1;
		goto fail;
	}
	return;
fail:
	mfs_log(MFS_LOG_ERR, "%s: cannot copy the durable state: %s", path,
		strerror(errno));
	if (fd >= 0)
		close(fd);
}

int mfs_fs_copy_on_sync(struct mfs_fs *fs, const char *path)
{
	fs->durable_path = strdup(path);
	if (!fs->durable_path)
		return -ENOMEM;
	fs->v->img->sync_hook_arg = fs->durable_path;
	fs->v->img->sync_hook = copy_durable;
	/* What the disk holds now: the image as opened. */
	copy_durable(fs->v->img, fs->durable_path);
	return 0;
}

void mfs_fs_fail_syncs(struct mfs_fs *fs, unsigned n)
{
	wrlock(fs);
	fs->v->img->fail_syncs = n;
	unlock(fs);
}

int mfs_fs_close(struct mfs_fs *fs)
{
	int rc = 0, rc2;

	if (!fs)
		return 0;
	wrlock(fs);
	if (!fs->deferred && !writable(fs))
		rc = walk_orphans(fs, true);
	rc2 = mfs_vol_close(fs->v);
	unlock(fs);
	fs_free(fs);
	return rc ? rc : rc2;
}

void mfs_fs_close_dirty(struct mfs_fs *fs)
{
	if (!fs)
		return;
	mfs_vol_close_dirty(fs->v);
	fs_free(fs);
}

/* Commit, or with nothing to commit make written data durable. Caller
 * holds the write lock. */
static int sync_locked(struct mfs_fs *fs)
{
	int rc;

	if (fs->v->error)
		return -EIO;
	if (fs->v->readonly)
		return 0;
	if (fs->v->dirty) {
		rc = mfs_txn_commit(fs->v);
	} else if (fs->data_dirty) {
		rc = mfs_image_sync(fs->v->img);
		if (rc)
			mfs_vol_sync_failed(fs->v, rc, "sync of file data");
	} else {
		/* Nothing changed, but blocks freed by the last commits are
		 * released only by commits: txn commits while some are
		 * pinned (so an idle filesystem gets them back, and with
		 * discard gives them to the host), and is a no-op else. */
		rc = mfs_txn_commit(fs->v);
	}
	if (rc)
		return rc == -ENOSPC ? -ENOSPC : -EIO;
	fs->data_dirty = false;
	return 0;
}

int mfs_fs_sync(struct mfs_fs *fs)
{
	int rc;

	wrlock(fs);
	rc = sync_locked(fs);
	unlock(fs);
	return rc;
}

int mfs_fs_abort(struct mfs_fs *fs)
{
	int rc;

	wrlock(fs);
	rc = mfs_txn_abort(fs->v);
	unlock(fs);
	return rc;
}

struct mfs_vol *mfs_fs_vol(struct mfs_fs *fs) { return fs->v; }

int mfs_fs_error(struct mfs_fs *fs)
{
	return fs->v->error;
}

bool mfs_fs_readonly(struct mfs_fs *fs)
{
	return fs->v->readonly || fs->v->error;
}

/* ------------------------------------------------------------------ */
/* Lookup and attributes                                               */
/* ------------------------------------------------------------------ */

/* Resolve name in dir to an inode (".", ".." included). Caller holds the
 * lock. */
static int resolve(struct mfs_vol *v, uint64_t parent, const char *name,
		   struct mfs_inode *in)
{
	struct mfs_inode d;
	uint64_t ino;
	size_t len;
	int rc;

	rc = get_dir(v, parent, &d);
	if (rc)
		return rc;
	if (!strcmp(name, "."))
		return mfs_inode_read(v, parent, in);
	if (!strcmp(name, ".."))
		return mfs_inode_read(v, d.parent, in);
	rc = check_name(name, &len);
	if (rc)
		return rc;
	rc = mfs_dir_lookup(v, parent, name, len, &ino, NULL);
	if (rc)
		return rc;
	rc = mfs_inode_read(v, ino, in);
	if (rc == -ENOENT)
		return MFS_CORRUPT(v, "directory %llu: entry for missing inode %llu",
				   (unsigned long long)parent,
				   (unsigned long long)ino);
	/* Names and link counts change together under the write lock: an
	 * entry naming an inode with no links is damage (ext4: "deleted
	 * inode referenced"), not a file being removed. */
	if (!rc && in->nlink == 0)
		return MFS_CORRUPT(v, "directory %llu: entry for inode %llu, "
				   "whose link count is 0",
				   (unsigned long long)parent,
				   (unsigned long long)ino);
	return rc;
}

int mfs_lookup(struct mfs_fs *fs, uint64_t parent, const char *name,
	       struct mfs_attr *attr)
{
	struct mfs_inode in;
	int rc;

	rdlock(fs);
	/* "." of any inode, not only a directory: the kernel decodes NFS
	 * file handles (FUSE_EXPORT_SUPPORT) by looking up "." in the node
	 * the handle names, whatever its type. */
	if (!strcmp(name, "."))
		rc = mfs_inode_read(fs->v, parent, &in);
	else
		rc = resolve(fs->v, parent, name, &in);
	if (!rc)
		rc = ref_lookup(fs, in.ino);
	if (!rc)
		to_attr(&in, attr);
	unlock(fs);
	return rc;
}

void mfs_forget(struct mfs_fs *fs, uint64_t ino, uint64_t nlookup)
{
	struct ref *r;
	bool gone = false;

	pthread_mutex_lock(&fs->ref_lock);
	r = ref_find(fs, ino);
	if (r) {
		r->nlookup = nlookup < r->nlookup ? r->nlookup - nlookup : 0;
		if (!r->nlookup && !r->nopen) {
			ref_del(fs, r);
			gone = true;
		}
	}
	pthread_mutex_unlock(&fs->ref_lock);
	if (gone) {
		wrlock(fs);
		reap(fs, ino);
		unlock(fs);
	}
}

int mfs_getattr(struct mfs_fs *fs, uint64_t ino, struct mfs_attr *attr)
{
	struct mfs_inode in;
	int rc;

	rdlock(fs);
	rc = mfs_inode_read(fs->v, ino, &in);
	if (!rc)
		to_attr(&in, attr);
	unlock(fs);
	return rc;
}

int mfs_setattr(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t ino,
		const struct mfs_attr *a, unsigned set, struct mfs_attr *out)
{
	struct mfs_inode in;
	struct timespec now;
	bool kill;
	int rc;

	wrlock(fs);
	rc = writable(fs);
	if (!rc)
		rc = mfs_inode_read(fs->v, ino, &in);
	if (rc)
		goto out;
	mfs_inode_now(&now);
	/* A truncate by a caller without CAP_FSETID, or what the kernel says
	 * (MFS_SET_KILL_PRIV), kill privileges; so does chown of anything but
	 * a directory. Not a truncate that is about to fail. */
	kill = S_ISREG(in.mode) &&
	       ((set & MFS_SET_KILL_PRIV) ||
		((set & MFS_SET_SIZE) && !cred->cap_fsetid)) &&
	       (!(set & MFS_SET_SIZE) || a->size <= MFS_FILE_SIZE_MAX);
	if (kill || ((set & (MFS_SET_UID | MFS_SET_GID)) &&
		     !S_ISDIR(in.mode))) {
		rc = kill_cap(fs, ino);
		if (rc)
			goto out;
	}
	if (set & MFS_SET_SIZE) {
		if (S_ISDIR(in.mode)) {
			rc = -EISDIR;
			goto out;
		}
		if (!S_ISREG(in.mode)) {
			rc = -EINVAL;
			goto out;
		}
		if (a->size > MFS_FILE_SIZE_MAX) {
			rc = -EFBIG;
			goto out;
		}
		struct mfs_inode orig = in;

		rc = need_delete_space(fs);
		if (!rc)
			rc = mfs_file_truncate(fs->v, &in, a->size);
		if (rc) {
			rc = keep_inode(fs, &in, &orig, rc);
			goto out;
		}
		in.mtime = now;
	}
	if (kill)
		kill_priv(&in, cred);
	if (set & (MFS_SET_UID | MFS_SET_GID)) {
		if ((set & MFS_SET_UID) && a->uid != in.uid)
			in.uid = a->uid;
		if ((set & MFS_SET_GID) && a->gid != in.gid)
			in.gid = a->gid;
		/* chown drops setuid on non-directories for every caller
		 * (Linux since 2.2.13), and setgid as setattr_should_drop_
		 * sgid() says: when group-executable, or when the caller is
		 * neither in the file's (old) group nor has CAP_FSETID. */
		if (!S_ISDIR(in.mode)) {
			in.mode &= ~(uint32_t)S_ISUID;
			if ((in.mode & S_IXGRP) ||
			    (!cred->in_group && !cred->cap_fsetid))
				in.mode &= ~(uint32_t)S_ISGID;
		}
	}
	if (set & MFS_SET_MODE) {
		in.mode = (in.mode & S_IFMT) | (a->mode & 07777);
		if (!cred->cap_fsetid && !cred->in_group && cred->uid != 0)
			in.mode &= ~(uint32_t)S_ISGID;
	}
	if (set & MFS_SET_ATIME_NOW)
		in.atime = now;
	else if (set & MFS_SET_ATIME)
		in.atime = a->atime;
	if (set & MFS_SET_MTIME_NOW)
		in.mtime = now;
	else if (set & MFS_SET_MTIME)
		in.mtime = a->mtime;
	in.ctime = (set & MFS_SET_CTIME) ? a->ctime : now;
	rc = mfs_inode_write(fs->v, &in);
	if (!rc && out)
		to_attr(&in, out);
out:
	unlock(fs);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Creating entries                                                    */
/* ------------------------------------------------------------------ */

/* Store a symlink target as INLINE items of at most MFS_MAX_VALUE bytes. */
static int put_target(struct mfs_vol *v, uint64_t ino, const char *target,
		      size_t len)
{
	size_t off;

	for (off = 0; off < len; off += MFS_MAX_VALUE) {
		size_t n = len - off < MFS_MAX_VALUE ? len - off : MFS_MAX_VALUE;
		struct mfs_key k = mfs_key_make(ino, MFS_ITEM_INLINE,
						off / MFS_MAX_VALUE);
		int rc = mfs_btree_insert(v, MFS_TREE_FS, &k, target + off, n);

		if (rc)
			return rc;
	}
	return 0;
}

/* A new inode of mode made by cred in directory dir, before its links,
 * size and place: owner, times, and what a setgid directory passes on
 * (its group; its setgid bit, to subdirectories). */
static void init_inode(struct mfs_inode *in, const struct mfs_cred *cred,
		       const struct mfs_inode *dir, uint32_t mode)
{
	memset(in, 0, sizeof(*in));
	in->mode = mode;
	in->uid = cred->uid;
	in->gid = cred->gid;
	if (dir->mode & S_ISGID) {
		in->gid = dir->gid;
		if (S_ISDIR(mode))
			in->mode |= S_ISGID;
	}
	mfs_inode_now(&in->mtime);
	in->atime = in->ctime = in->btime = in->mtime;
}

/*
 * The common part of mknod, mkdir, symlink and create: a new inode of
 * `mode` named `name` in `parent`. Caller holds the write lock.
 */
static int new_entry(struct mfs_fs *fs, const struct mfs_cred *cred,
		     uint64_t parent, const char *name, uint32_t mode,
		     uint64_t rdev, const char *target, struct mfs_inode *in)
{
	struct mfs_vol *v = fs->v;
	struct mfs_inode d;
	size_t len, tlen = 0;
	uint64_t ino;
	int rc;

	rc = writable(fs);
	if (rc)
		return rc;
	rc = get_dir(v, parent, &d);
	if (rc)
		return rc;
	if (is_dot(name))
		return -EEXIST;
	rc = check_name(name, &len);
	if (rc)
		return rc;
	if (target) {
		tlen = strnlen(target, MFS_SYMLINK_MAX + 1);
		if (tlen > MFS_SYMLINK_MAX)
			return -ENAMETOOLONG;
		if (tlen == 0)
			return -ENOENT;
	}
	rc = mfs_dir_lookup(v, parent, name, len, &ino, NULL);
	if (rc == 0)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	rc = need_space(fs, OP_BLOCKS);
	if (rc)
		return rc;

	init_inode(in, cred, &d, mode);
	in->nlink = S_ISDIR(mode) ? 2 : 1;
	in->rdev = rdev;
	in->parent = S_ISDIR(mode) ? parent : 0;
	in->size = S_ISDIR(mode) ? MFS_BLOCK_SIZE : tlen;
	rc = mfs_inode_create(v, in);
	if (rc)
		return rc;
	if (target)
		rc = put_target(v, in->ino, target, tlen);
	if (!rc)
		rc = mfs_dir_add(v, parent, name, len, in->ino,
				 mfs_dir_type(mode));
	if (rc) {
		/* Undo, so a failed create leaves no inode behind. */
		in->nlink = 0;
		mfs_inode_remove(v, in);
		return rc;
	}
	if (S_ISDIR(mode))
		d.nlink++;
	d.mtime = in->mtime;
	d.ctime = in->mtime;
	rc = mfs_inode_write(v, &d);
	if (!rc)
		rc = ref_lookup(fs, in->ino);
	return rc;
}

int mfs_mknod(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t parent,
	      const char *name, uint32_t mode, uint64_t rdev,
	      struct mfs_attr *attr)
{
	struct mfs_inode in;
	int rc;

	switch (mode & S_IFMT) {
	case 0:
		mode |= S_IFREG;
		break;
	case S_IFREG: case S_IFIFO: case S_IFSOCK:
		rdev = 0;
		break;
	case S_IFCHR: case S_IFBLK:
		break;
	case S_IFDIR:
		return -EPERM;
	default:
		return -EINVAL;
	}
	wrlock(fs);
	rc = new_entry(fs, cred, parent, name, mode & (S_IFMT | 07777), rdev,
		       NULL, &in);
	if (!rc)
		to_attr(&in, attr);
	unlock(fs);
	return rc;
}

int mfs_mkdir(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t parent,
	      const char *name, uint32_t mode, struct mfs_attr *attr)
{
	struct mfs_inode in;
	int rc;

	wrlock(fs);
	rc = new_entry(fs, cred, parent, name, S_IFDIR | (mode & 01777), 0,
		       NULL, &in);
	if (!rc)
		to_attr(&in, attr);
	unlock(fs);
	return rc;
}

int mfs_symlink(struct mfs_fs *fs, const struct mfs_cred *cred,
		uint64_t parent, const char *name, const char *target,
		struct mfs_attr *attr)
{
	struct mfs_inode in;
	int rc;

	wrlock(fs);
	rc = new_entry(fs, cred, parent, name, S_IFLNK | 0777, 0, target, &in);
	if (!rc)
		to_attr(&in, attr);
	unlock(fs);
	return rc;
}

int mfs_create(struct mfs_fs *fs, const struct mfs_cred *cred,
	       uint64_t parent, const char *name, uint32_t mode, int flags,
	       struct mfs_attr *attr)
{
	struct mfs_inode in;
	int rc;

	(void)flags;
	wrlock(fs);
	rc = new_entry(fs, cred, parent, name, S_IFREG | (mode & 07777), 0,
		       NULL, &in);
	if (!rc) {
		pthread_mutex_lock(&fs->ref_lock);
		rc = ref_add(fs, in.ino, 0, 1);
		pthread_mutex_unlock(&fs->ref_lock);
	}
	if (!rc)
		to_attr(&in, attr);
	unlock(fs);
	return rc;
}

int mfs_tmpfile(struct mfs_fs *fs, const struct mfs_cred *cred,
		uint64_t parent, uint32_t mode, struct mfs_attr *attr)
{
	struct mfs_vol *v = fs->v;
	struct mfs_inode in, d;
	struct ref *r;
	int rc;

	wrlock(fs);
	rc = writable(fs);
	if (!rc)
		rc = get_dir(v, parent, &d);
	if (!rc)
		rc = need_space(fs, OP_BLOCKS);
	if (rc)
		goto out;
	init_inode(&in, cred, &d, S_IFREG | (mode & 07777));
	/* No links from the start: the orphan list keeps it, the last
	 * forget (or the next open after a crash) removes it, unless
	 * mfs_link names it first. */
	rc = mfs_inode_create(v, &in);
	if (rc)
		goto out;
	pthread_mutex_lock(&fs->ref_lock);
	rc = ref_add(fs, in.ino, 1, 0);
	r = rc ? NULL : ref_find(fs, in.ino);
	if (r)
		r->linkable = true;
	pthread_mutex_unlock(&fs->ref_lock);
	if (rc) {
		mfs_inode_remove(v, &in);
		goto out;
	}
	rc = drop_inode(fs, &in);
	if (rc) {
		unlock(fs);
		mfs_forget(fs, in.ino, 1); /* reaps it; takes the lock */
		return rc;
	}
	to_attr(&in, attr);
out:
	unlock(fs);
	return rc;
}

/* Was ino made by mfs_tmpfile and never linked? Then its first link takes
 * it off the orphan list. */
static bool take_linkable(struct mfs_fs *fs, uint64_t ino)
{
	struct ref *r;
	bool yes;

	pthread_mutex_lock(&fs->ref_lock);
	r = ref_find(fs, ino);
	yes = r && r->linkable;
	if (yes)
		r->linkable = false;
	pthread_mutex_unlock(&fs->ref_lock);
	return yes;
}

int mfs_link(struct mfs_fs *fs, uint64_t ino, uint64_t newparent,
	     const char *newname, struct mfs_attr *attr)
{
	struct mfs_vol *v = fs->v;
	struct mfs_inode in, d;
	size_t len;
	uint64_t other;
	int rc;

	wrlock(fs);
	rc = writable(fs);
	if (!rc)
		rc = mfs_inode_read(v, ino, &in);
	if (!rc)
		rc = get_dir(v, newparent, &d);
	if (rc)
		goto out;
	if (is_dot(newname)) {
		rc = -EEXIST;
		goto out;
	}
	rc = check_name(newname, &len);
	if (rc)
		goto out;
	rc = mfs_dir_lookup(v, newparent, newname, len, &other, NULL);
	if (rc == 0)
		rc = -EEXIST;
	if (rc != -ENOENT)
		goto out;
	if (S_ISDIR(in.mode)) {
		rc = -EPERM;
		goto out;
	}
	if (in.nlink >= MFS_LINK_MAX) {
		rc = -EMLINK;
		goto out;
	}
	rc = need_space(fs, OP_BLOCKS);
	if (rc)
		goto out;
	/* An unlinked file cannot be named again (ENOENT, as on ext4),
	 * except an O_TMPFILE file (linkat with AT_EMPTY_PATH). */
	if (in.nlink == 0) {
		struct mfs_key k = mfs_key_make(MFS_ORPHAN_OBJID,
						MFS_ITEM_ORPHAN, ino);

		if (!take_linkable(fs, ino)) {
			rc = -ENOENT;
			goto out;
		}
		rc = mfs_btree_delete(v, MFS_TREE_FS, &k);
		if (rc)
			goto out;
	}
	rc = mfs_dir_add(v, newparent, newname, len, ino,
			 mfs_dir_type(in.mode));
	if (rc)
		goto out;
	in.nlink++;
	mfs_inode_now(&in.ctime);
	d.mtime = d.ctime = in.ctime;
	rc = mfs_inode_write(v, &in);
	if (!rc)
		rc = mfs_inode_write(v, &d);
	if (!rc)
		rc = ref_lookup(fs, ino);
	if (!rc)
		to_attr(&in, attr);
out:
	unlock(fs);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Removing and renaming                                               */
/* ------------------------------------------------------------------ */

/* The link counts an entry implies: a file named by an entry has at least
 * one link, a directory holding a subdirectory at least three. A damaged
 * image may say less; removing or renaming would then wrap the count
 * around (a file with 4 billion links, never freed), so it is corruption
 * instead, found before anything changes. */
static int check_links(struct mfs_vol *v, const struct mfs_inode *in,
		       const struct mfs_inode *dir)
{
	if (in->nlink < 1)
		return MFS_CORRUPT(v, "inode %llu: link count 0, but directory "
				   "%llu names it", (unsigned long long)in->ino,
				   (unsigned long long)dir->ino);
	if (S_ISDIR(in->mode) && dir->nlink < 3)
		return MFS_CORRUPT(v, "directory %llu: link count %u, but it "
				   "holds directory %llu",
				   (unsigned long long)dir->ino, dir->nlink,
				   (unsigned long long)in->ino);
	return 0;
}

static int remove_entry(struct mfs_fs *fs, uint64_t parent, const char *name,
			bool dir)
{
	struct mfs_vol *v = fs->v;
	struct mfs_inode d, in;
	size_t len;
	int rc;

	wrlock(fs);
	rc = writable(fs);
	if (!rc)
		rc = get_dir(v, parent, &d);
	if (rc)
		goto out;
	if (is_dot(name)) {
		rc = !dir ? -EISDIR : !strcmp(name, ".") ? -EINVAL : -ENOTEMPTY;
		goto out;
	}
	rc = resolve(v, parent, name, &in);
	if (!rc)
		rc = check_name(name, &len);
	if (rc)
		goto out;
	if (dir && !S_ISDIR(in.mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	if (!dir && S_ISDIR(in.mode)) {
		rc = -EISDIR;
		goto out;
	}
	if (dir) {
		rc = mfs_dir_is_empty(v, in.ino);
		if (rc < 0)
			goto out;
		if (rc == 0) {
			rc = -ENOTEMPTY;
			goto out;
		}
	}
	rc = check_links(v, &in, &d);
	if (rc)
		goto out;
	rc = need_delete_space(fs);
	if (rc)
		goto out;
	rc = mfs_dir_remove(v, parent, name, len);
	if (rc)
		goto out;
	mfs_inode_now(&d.mtime);
	d.ctime = d.mtime;
	in.ctime = d.mtime;
	if (dir) {
		d.nlink--;
		in.nlink = 0;
	} else {
		in.nlink--;
	}
	rc = mfs_inode_write(v, &d);
	if (!rc)
		rc = drop_inode(fs, &in);
out:
	unlock(fs);
	return rc;
}

int mfs_unlink(struct mfs_fs *fs, uint64_t parent, const char *name)
{
	return remove_entry(fs, parent, name, false);
}

int mfs_rmdir(struct mfs_fs *fs, uint64_t parent, const char *name)
{
	return remove_entry(fs, parent, name, true);
}

/* Is dir `anc` the directory `ino` or one of its ancestors? */
static int is_ancestor(struct mfs_vol *v, uint64_t anc, uint64_t ino)
{
	unsigned depth;

	for (depth = 0; depth < 1u << 20; depth++) {
		struct mfs_inode d;
		int rc;

		if (ino == anc)
			return 1;
		if (ino == MFS_ROOT_INO)
			return 0;
		rc = mfs_inode_read(v, ino, &d);
		if (rc)
			return rc;
		ino = d.parent;
	}
	return MFS_CORRUPT(v, "directory %llu: parent chain loops",
			   (unsigned long long)anc);
}

/* Write the two parents, or one if they are the same directory. */
static int write_parents(struct mfs_vol *v, struct mfs_inode *p1,
			 struct mfs_inode *p2)
{
	int rc = mfs_inode_write(v, p1);

	if (!rc && p2->ino != p1->ino)
		rc = mfs_inode_write(v, p2);
	return rc;
}

int mfs_rename(struct mfs_fs *fs, uint64_t parent, const char *name,
	       uint64_t newparent, const char *newname, unsigned flags)
{
	struct mfs_vol *v = fs->v;
	struct mfs_inode p1, p2, src, dst;
	struct mfs_inode *pp2;
	size_t len, nlen;
	struct timespec now;
	bool have_dst;
	int rc;

	if ((flags & ~(MFS_RENAME_NOREPLACE | MFS_RENAME_EXCHANGE)) ||
	    flags == (MFS_RENAME_NOREPLACE | MFS_RENAME_EXCHANGE))
		return -EINVAL;
	wrlock(fs);
	rc = writable(fs);
	if (!rc)
		rc = get_dir(v, parent, &p1);
	if (!rc)
		rc = get_dir(v, newparent, &p2);
	if (rc)
		goto out;
	pp2 = newparent == parent ? &p1 : &p2;
	if (is_dot(name) || is_dot(newname)) {
		rc = is_dot(name) ? -EINVAL : -EBUSY;
		goto out;
	}
	rc = check_name(name, &len);
	if (!rc)
		rc = check_name(newname, &nlen);
	if (!rc)
		rc = resolve(v, parent, name, &src);
	if (rc)
		goto out;
	rc = resolve(v, newparent, newname, &dst);
	if (rc && rc != -ENOENT)
		goto out;
	have_dst = rc == 0;
	rc = 0;
	if (have_dst && (flags & MFS_RENAME_NOREPLACE)) {
		rc = -EEXIST;
		goto out;
	}
	if (!have_dst && (flags & MFS_RENAME_EXCHANGE)) {
		rc = -ENOENT;
		goto out;
	}
	/* The target may not be an ancestor of the source. */
	if (have_dst && S_ISDIR(dst.mode) && newparent != parent) {
		rc = is_ancestor(v, dst.ino, parent);
		if (rc) {
			rc = rc < 0 ? rc : (flags & MFS_RENAME_EXCHANGE) ? -EINVAL
								     : -ENOTEMPTY;
			goto out;
		}
	}
	if (have_dst && dst.ino == src.ino)
		goto out; /* the same file: nothing to do (POSIX) */
	rc = check_links(v, &src, &p1);
	if (!rc && have_dst)
		rc = check_links(v, &dst, pp2);
	if (rc)
		goto out;
	/* A directory cannot move below itself. */
	if (S_ISDIR(src.mode) && newparent != parent) {
		rc = is_ancestor(v, src.ino, newparent);
		if (rc) {
			rc = rc > 0 ? -EINVAL : rc;
			goto out;
		}
	}
	if ((flags & MFS_RENAME_EXCHANGE) && S_ISDIR(dst.mode) &&
	    newparent != parent) {
		rc = is_ancestor(v, dst.ino, parent);
		if (rc) {
			rc = rc > 0 ? -EINVAL : rc;
			goto out;
		}
	}
	/* A rename moves entries, it does not add data: like a delete it
	 * may use the reserve, so a full filesystem can still be tidied
	 * (a rename over a name frees that file too). */
	rc = need_delete_space(fs);
	if (rc)
		goto out;
	mfs_inode_now(&now);

	if (flags & MFS_RENAME_EXCHANGE) {
		rc = mfs_dir_set(v, parent, name, len, dst.ino,
				 mfs_dir_type(dst.mode));
		if (!rc)
			rc = mfs_dir_set(v, newparent, newname, nlen, src.ino,
					 mfs_dir_type(src.mode));
		if (rc)
			goto out;
		if (newparent != parent) {
			if (S_ISDIR(src.mode)) {
				src.parent = newparent;
				p1.nlink--;
				pp2->nlink++;
			}
			if (S_ISDIR(dst.mode)) {
				dst.parent = parent;
				pp2->nlink--;
				p1.nlink++;
			}
		}
		src.ctime = dst.ctime = now;
		p1.mtime = p1.ctime = pp2->mtime = pp2->ctime = now;
		rc = mfs_inode_write(v, &src);
		if (!rc)
			rc = mfs_inode_write(v, &dst);
		if (!rc)
			rc = write_parents(v, &p1, pp2);
		goto out;
	}

	if (have_dst) {
		if (S_ISDIR(src.mode) && !S_ISDIR(dst.mode)) {
			rc = -ENOTDIR;
			goto out;
		}
		if (!S_ISDIR(src.mode) && S_ISDIR(dst.mode)) {
			rc = -EISDIR;
			goto out;
		}
		if (S_ISDIR(dst.mode)) {
			rc = mfs_dir_is_empty(v, dst.ino);
			if (rc < 0)
				goto out;
			if (rc == 0) {
				rc = -ENOTEMPTY;
				goto out;
			}
		}
		rc = mfs_dir_set(v, newparent, newname, nlen, src.ino,
				 mfs_dir_type(src.mode));
		if (rc)
			goto out;
		dst.ctime = now;
		if (S_ISDIR(dst.mode)) {
			dst.nlink = 0;
			pp2->nlink--;
		} else {
			dst.nlink--;
		}
	} else {
		rc = mfs_dir_add(v, newparent, newname, nlen, src.ino,
				 mfs_dir_type(src.mode));
		if (rc)
			goto out;
	}
	rc = mfs_dir_remove(v, parent, name, len);
	if (rc)
		goto out;
	if (S_ISDIR(src.mode) && newparent != parent) {
		src.parent = newparent;
		p1.nlink--;
		pp2->nlink++;
	}
	src.ctime = now;
	p1.mtime = p1.ctime = pp2->mtime = pp2->ctime = now;
	rc = mfs_inode_write(v, &src);
	if (!rc)
		rc = write_parents(v, &p1, pp2);
	if (!rc && have_dst)
		rc = drop_inode(fs, &dst);
out:
	unlock(fs);
	return rc;
}

int mfs_readlink(struct mfs_fs *fs, uint64_t ino, char *buf, size_t size,
		 size_t *len)
{
	struct mfs_inode in;
	size_t off = 0;
	int rc;

	rdlock(fs);
	rc = mfs_inode_read(fs->v, ino, &in);
	if (rc)
		goto out;
	if (!S_ISLNK(in.mode)) {
		rc = -EINVAL;
		goto out;
	}
	if (in.size == 0 || in.size > MFS_SYMLINK_MAX) {
		rc = MFS_CORRUPT(fs->v, "symlink %llu: size %llu",
				 (unsigned long long)ino,
				 (unsigned long long)in.size);
		goto out;
	}
	while (off < in.size) {
		struct mfs_key k = mfs_key_make(ino, MFS_ITEM_INLINE,
						off / MFS_MAX_VALUE);
		size_t want = in.size - off < MFS_MAX_VALUE ? in.size - off
							    : MFS_MAX_VALUE;
		const void *val;
		size_t vlen;

		rc = mfs_btree_lookup(fs->v, MFS_TREE_FS, &k, &val, &vlen);
		if (rc == -ENOENT || (!rc && vlen != want))
			rc = MFS_CORRUPT(fs->v, "symlink %llu: target chunk missing",
					 (unsigned long long)ino);
		if (rc)
			goto out;
		if (off < size)
			memcpy(buf + off, val, size - off < vlen ? size - off : vlen);
		off += vlen;
	}
	*len = in.size;
out:
	unlock(fs);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

int mfs_open(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t ino,
	     int flags)
{
	struct mfs_inode in;
	bool wr = (flags & O_ACCMODE) != O_RDONLY;
	int rc;

	if ((flags & O_TRUNC) || wr)
		wrlock(fs);
	else
		rdlock(fs);
	rc = mfs_inode_read(fs->v, ino, &in);
	if (rc)
		goto out;
	if (S_ISDIR(in.mode) && (wr || (flags & O_TRUNC))) {
		rc = -EISDIR;
		goto out;
	}
	if (wr && (rc = writable(fs)))
		goto out;
	if ((flags & O_TRUNC) && S_ISREG(in.mode) && wr) {
		if (!cred->cap_fsetid && (rc = kill_cap(fs, ino)))
			goto out;
		if (in.size) {
			struct mfs_inode orig = in;

			rc = mfs_file_truncate(fs->v, &in, 0);
			if (rc) {
				rc = keep_inode(fs, &in, &orig, rc);
				goto out;
			}
		}
		touch_mc(&in);
		if (!cred->cap_fsetid)
			kill_priv(&in, cred);
		rc = mfs_inode_write(fs->v, &in);
		if (rc)
			goto out;
	}
	pthread_mutex_lock(&fs->ref_lock);
	rc = ref_add(fs, ino, 0, 1);
	pthread_mutex_unlock(&fs->ref_lock);
out:
	unlock(fs);
	return rc;
}

int mfs_release(struct mfs_fs *fs, uint64_t ino)
{
	struct ref *r;
	bool gone = false;

	pthread_mutex_lock(&fs->ref_lock);
	r = ref_find(fs, ino);
	if (r && r->nopen) {
		r->nopen--;
		if (!r->nlookup && !r->nopen) {
			ref_del(fs, r);
			gone = true;
		}
	}
	pthread_mutex_unlock(&fs->ref_lock);
	if (gone) {
		wrlock(fs);
		reap(fs, ino);
		unlock(fs);
	}
	return 0;
}

/* relatime: update atime if it is not newer than mtime or ctime, or is
 * more than a day old. */
static bool atime_due(const struct mfs_inode *in)
{
	struct timespec now;

	if (in->atime.tv_sec < in->mtime.tv_sec ||
	    (in->atime.tv_sec == in->mtime.tv_sec &&
	     in->atime.tv_nsec <= in->mtime.tv_nsec))
		return true;
	if (in->atime.tv_sec < in->ctime.tv_sec ||
	    (in->atime.tv_sec == in->ctime.tv_sec &&
	     in->atime.tv_nsec <= in->ctime.tv_nsec))
		return true;
	mfs_inode_now(&now);
	return now.tv_sec - in->atime.tv_sec >= 24 * 3600;
}

int mfs_read(struct mfs_fs *fs, uint64_t ino, uint64_t off, size_t len,
	     struct iovec *iov, unsigned iovmax, unsigned *iovcnt,
	     size_t *bytes)
{
	struct mfs_inode in;
	bool due = false;
	int rc;

	rdlock(fs);
	rc = mfs_inode_read(fs->v, ino, &in);
	if (!rc && S_ISDIR(in.mode))
		rc = -EISDIR;
	else if (!rc && !S_ISREG(in.mode))
		rc = -EINVAL;
	if (!rc)
		rc = mfs_file_read(fs->v, &in, off, len, iov, iovmax, iovcnt,
				   bytes);
	if (!rc && *bytes && !writable(fs))
		due = atime_due(&in);
	unlock(fs);
	if (due) {
		wrlock(fs);
		if (mfs_inode_read(fs->v, ino, &in) == 0 && atime_due(&in)) {
			mfs_inode_now(&in.atime);
			mfs_inode_write(fs->v, &in);
		}
		unlock(fs);
	}
	return rc;
}

/*
 * Dropping behind a sequential reader (mfs_read_cached). The image's pages
 * come in by faults of the copy from the mapping, and a major fault reads
 * a window around the page, centred on it (mmap read-around: the host's
 * read-ahead size, half of it behind): pages dropped just behind the
 * reader would be read again, for nothing. So a stream drops DROP_LAG
 * behind itself, every DROP_STEP it advances, the DROP_SPAN before that
 * point. The span is one step more than the largest folio of the image's
 * page cache (2 MiB on x86-64; FADV_DONTNEED keeps a folio that extends
 * past its range), so that every folio of the file's data falls wholly
 * inside some span. At the end of the file the rest goes too.
 */
#define DROP_LAG (16ull << 20)
#define DROP_STEP (1ull << 20)
#define DROP_SPAN (3ull << 20)
/* How far a request of a stream may start past its end, or end before
 * it, and still count as the stream's: the kernel sends readahead reads
 * and writeback writes several at a time, and over io_uring each CPU's
 * queue serves its own concurrently (4 entries of up to 1 MiB each on
 * 2 CPUs), so they complete out of order. */
#define STREAM_SLACK (8ull << 20)

/* Most runs of contiguous blocks dropped per call (fragmented files). */
#define IMG_RUNS 16

struct img_runs {
	unsigned n;
	uint64_t off[IMG_RUNS], len[IMG_RUNS];
};

/*
 * Add a run, joined to one it touches in the image: pieces of a file
 * written out of order (writeback served by several io_uring queues) lie
 * in the image in another order than in the file, and a large folio
 * spanning two pieces is only dropped by a range covering it whole.
 */
static int add_img_run(void *arg, uint64_t img_off, uint64_t bytes)
{
	struct img_runs *r = arg;
	unsigned i;

	for (i = 0; i < r->n; i++) {
		if (r->off[i] + r->len[i] == img_off) {
			r->len[i] += bytes;
			return 0;
		}
		if (img_off + bytes == r->off[i]) {
			r->off[i] = img_off;
			r->len[i] += bytes;
			return 0;
		}
	}
	r->off[r->n] = img_off;
	r->len[r->n] = bytes;
	return ++r->n == IMG_RUNS;
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* Slots a file's streams may take: several, since over io_uring each
 * CPU's queue serves the requests issued on its CPU, and the kernel
 * writes back several ranges of a file at once from different CPUs (a
 * 1 GiB sequential write showed up to 6 concurrent streams 50-150 MiB
 * apart; with one slot per file the daemon kept 370 MiB of image pages
 * instead of 26 MiB, with 8 it keeps 90 MiB). */
#define STREAM_WAYS 8

/*
 * Find the stream of ino in table tab that the request [off, end)
 * continues and move it to end: true if that advanced it, with the end
 * it had in *last. A request near several of ino's streams continues the
 * one it moves least (a finished stream at the end of the file must not
 * swallow the next pass over the file); one that only ends behind its
 * streams (completed late) leaves them as they are; one far from all of
 * them begins a new stream, in a slot of another file if there is one
 * among ino's ways. Threads serving the same stream race only in the
 * compare-and-swap: each step is taken once. A lost race elsewhere costs
 * a drop, never data.
 */
static bool stream_advance(struct stream *tab, uint64_t ino, uint64_t off,
			   uint64_t end, uint64_t *last)
{
	size_t h = (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 58), k;
	struct stream *st, *best = NULL, *spare = NULL, *oldest = NULL;
	uint64_t e, best_e = 0, oldest_e = UINT64_MAX;
	bool near = false;

	for (k = 0; k < STREAM_WAYS; k++) {
		st = &tab[(h + k) % STREAM_SLOTS];
		if (atomic_load_explicit(&st->ino, memory_order_relaxed) != ino) {
			if (!spare)
				spare = st;
			continue;
		}
		e = atomic_load_explicit(&st->end, memory_order_relaxed);
		if (e < oldest_e) {
			oldest = st;
			oldest_e = e;
		}
		if (off > e + STREAM_SLACK || end + STREAM_SLACK < e)
			continue;
		near = true;
		if (e < end && (!best || e > best_e)) {
			best = st;
			best_e = e;
		}
	}
	if (!best) {
		if (near)
			return false;
		/* Another file's slot, else this file's least advanced. */
		st = spare ? spare : oldest;
		atomic_store_explicit(&st->ino, ino, memory_order_relaxed);
		atomic_store_explicit(&st->end, end, memory_order_relaxed);
		return false;
	}
	e = best_e;
	do {
		if (end <= e)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&best->end, &e, end,
							memory_order_relaxed,
							memory_order_relaxed));
	*last = e;
	return true;
}

void mfs_read_cached(struct mfs_fs *fs, uint64_t ino, uint64_t off,
		     size_t len)
{
	uint64_t end = off + len, last, mark, from, to;
	struct img_runs d = { 0 };
	struct mfs_inode in;
	unsigned i;

	if (len == 0 || end < off ||
	    !stream_advance(fs->streams, ino, off, end, &last))
		return;
	/* The step boundaries the stream's lagging point crossed, if any
	 * (several when out-of-order requests moved it a long way). */
	mark = sub0(end, DROP_LAG) / DROP_STEP * DROP_STEP;
	from = sub0(sub0(last, DROP_LAG) / DROP_STEP * DROP_STEP + DROP_STEP,
		    DROP_SPAN);
	to = mark > sub0(last, DROP_LAG) ? mark : 0;

	rdlock(fs);
	if (mfs_inode_read(fs->v, ino, &in) == 0 && S_ISREG(in.mode)) {
		if (end >= in.size)
			to = end;
		if (to > from)
			mfs_file_data_runs(fs->v, &in, from, to - from,
					   add_img_run, &d);
	}
	unlock(fs);
	/* Outside the lock: the blocks may be freed and reused meanwhile,
	 * which is harmless (mfs_image_drop never loses data). */
	for (i = 0; i < d.n; i++)
		mfs_image_drop(fs->v->img, d.off[i], d.len[i]);
}

/*
 * Writing behind a sequential writer (mfs_write_behind). Each WB_STEP the
 * stream advances, writeback starts for the step WB_START_LAG behind its
 * end, and the step WB_DROP_LAG behind it, written back by then as a rule
 * (else waited for), is dropped, with the folio margin of DROP_SPAN.
 */
#define WB_STEP (4ull << 20)
#define WB_START_LAG (2ull << 20)
#define WB_DROP_LAG (16ull << 20)

/* The image runs of [from, to) of regular file ino, into *r. */
static void data_runs(struct mfs_fs *fs, uint64_t ino, uint64_t from,
		      uint64_t to, struct img_runs *r)
{
	struct mfs_inode in;

	r->n = 0;
	if (to <= from)
		return;
	rdlock(fs);
	if (mfs_inode_read(fs->v, ino, &in) == 0 && S_ISREG(in.mode))
		mfs_file_data_runs(fs->v, &in, from, to - from, add_img_run, r);
	unlock(fs);
}

void mfs_write_behind(struct mfs_fs *fs, uint64_t ino, uint64_t off,
		      size_t len)
{
	uint64_t end = off + len, last, mark, prev;
	struct img_runs d;
	unsigned i;

	if (len == 0 || end < off ||
	    !stream_advance(fs->wstreams, ino, off, end, &last))
		return;
	/* The steps the stream's lagging point crossed: one as a rule,
	 * several when out-of-order requests moved it a long way. */
	mark = sub0(end, WB_START_LAG) / WB_STEP * WB_STEP;
	prev = sub0(last, WB_START_LAG) / WB_STEP * WB_STEP;
	if (mark <= prev)
		return;
	/* Outside the lock, as in mfs_read_cached: harmless if the blocks
	 * are freed and reused meanwhile. */
	data_runs(fs, ino, prev, mark, &d);
	for (i = 0; i < d.n; i++)
		mfs_image_writeback(fs->v->img, d.off[i], d.len[i], false);
	mark = sub0(mark, WB_DROP_LAG - WB_START_LAG);
	prev = sub0(prev, WB_DROP_LAG - WB_START_LAG);
	if (mark <= prev)
		return;
	data_runs(fs, ino, sub0(prev, DROP_SPAN - DROP_STEP), mark, &d);
	for (i = 0; i < d.n; i++) {
		mfs_image_writeback(fs->v->img, d.off[i], d.len[i], true);
		mfs_image_drop(fs->v->img, d.off[i], d.len[i]);
	}
}

/* For a change to a regular file's data: the volume is writable and ino
 * is a regular file (-EISDIR for a directory, not_reg for other types).
 * Caller holds the write lock. */
static int get_regular(struct mfs_fs *fs, uint64_t ino, struct mfs_inode *in,
		       int not_reg)
{
	int rc = writable(fs);

	if (!rc)
		rc = mfs_inode_read(fs->v, ino, in);
	if (rc)
		return rc;
	if (S_ISDIR(in->mode))
		return -EISDIR;
	return S_ISREG(in->mode) ? 0 : not_reg;
}

int mfs_write(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t ino,
	      uint64_t off, const void *buf, size_t len, unsigned flags,
	      size_t *written)
{
	struct mfs_inode in, orig;
	int rc;

	*written = 0;
	wrlock(fs);
	rc = get_regular(fs, ino, &in, -EINVAL);
	if (rc)
		goto out;
	if (flags & MFS_WRITE_APPEND)
		off = in.size;
	if (len == 0)
		goto out;
	if ((flags & MFS_WRITE_KILL_PRIV) && !cred->cap_fsetid &&
	    (rc = kill_cap(fs, ino)))
		goto out;
	if ((flags & MFS_WRITE_NO_GAP) && off > in.size) {
		/* Room for the gap first, or nothing: a hole left by data
		 * that then does not fit would read as zeros. */
		rc = need_space(fs, blocks_for(off - in.size) +
				blocks_for(len) + OP_BLOCKS);
		if (!rc) {
			orig = in;
			rc = mfs_file_fallocate(fs->v, &in, FALLOC_FL_KEEP_SIZE,
						in.size, off - in.size);
			if (rc) {
				rc = keep_inode(fs, &in, &orig, rc);
				goto out;
			}
			rc = mfs_inode_write(fs->v, &in);
		}
		if (rc)
			goto out;
	}
	rc = need_space(fs, blocks_for(len) + OP_BLOCKS);
	if (rc == -ENOSPC) {
		/* Write what fits, as a short write (overwrites need none). */
		rc = 0;
	}
	if (rc)
		goto out;
	orig = in;
	rc = mfs_file_write(fs->v, &in, off, buf, len, written);
	if (*written == 0) {
		rc = keep_inode(fs, &in, &orig, rc);
		goto out;
	}
	rc = 0;
	fs->data_dirty = true;
	touch_mc(&in);
	if ((flags & MFS_WRITE_KILL_PRIV) && !cred->cap_fsetid)
		kill_priv(&in, cred);
	rc = mfs_inode_write(fs->v, &in);
out:
	unlock(fs);
	return rc;
}

int mfs_fsync(struct mfs_fs *fs, uint64_t ino, bool datasync)
{
	(void)ino;
	(void)datasync;
	return mfs_fs_sync(fs);
}

int mfs_fallocate(struct mfs_fs *fs, uint64_t ino, int mode, uint64_t off,
		  uint64_t len)
{
	struct mfs_inode in, orig;
	int rc;

	wrlock(fs);
	rc = get_regular(fs, ino, &in, -ENODEV);
	if (rc)
		goto out;
	if (!(mode & FALLOC_FL_PUNCH_HOLE))
		rc = need_space(fs, (mode & FALLOC_FL_ZERO_RANGE ? 0 :
				     blocks_for(len)) + OP_BLOCKS);
	else
		rc = need_delete_space(fs);
	if (rc)
		goto out;
	orig = in;
	rc = mfs_file_fallocate(fs->v, &in, mode, off, len);
	if (rc) {
		rc = keep_inode(fs, &in, &orig, rc);
		goto out;
	}
	/* ext4 sets mtime and ctime for every mode (file_modified). */
	touch_mc(&in);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		fs->data_dirty = true;
	rc = mfs_inode_write(fs->v, &in);
out:
	unlock(fs);
	return rc;
}

int mfs_lseek(struct mfs_fs *fs, uint64_t ino, uint64_t off, int whence,
	      uint64_t *result)
{
	struct mfs_inode in;
	int rc;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	rdlock(fs);
	rc = mfs_inode_read(fs->v, ino, &in);
	if (!rc && !S_ISREG(in.mode))
		rc = S_ISDIR(in.mode) ? -EISDIR : -EINVAL;
	if (!rc)
		rc = mfs_file_seek(fs->v, &in, off, whence, result);
	unlock(fs);
	return rc;
}

int mfs_copy_file_range(struct mfs_fs *fs, uint64_t ino_in, uint64_t off_in,
			uint64_t ino_out, uint64_t off_out, size_t len,
			size_t *copied)
{
	struct mfs_inode src, dst, orig;
	int rc;

	*copied = 0;
	wrlock(fs);
	rc = get_regular(fs, ino_in, &src, -EINVAL);
	if (!rc)
		rc = get_regular(fs, ino_out, &dst, -EINVAL);
	if (rc)
		goto out;
	rc = need_space(fs, blocks_for(len) + OP_BLOCKS);
	if (rc)
		goto out;
	orig = dst;
	if (ino_in == ino_out) {
		rc = mfs_file_copy(fs->v, &dst, off_in, &dst, off_out, len, copied);
	} else {
		rc = mfs_file_copy(fs->v, &src, off_in, &dst, off_out, len, copied);
	}
	if (rc || *copied == 0) {
		rc = keep_inode(fs, &dst, &orig, rc);
		goto out;
	}
	fs->data_dirty = true;
	touch_mc(&dst);
	rc = mfs_inode_write(fs->v, &dst);
out:
	unlock(fs);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Directories                                                         */
/* ------------------------------------------------------------------ */

int mfs_opendir(struct mfs_fs *fs, uint64_t ino)
{
	struct mfs_inode d;
	int rc;

	rdlock(fs);
	rc = mfs_inode_read(fs->v, ino, &d);
	if (!rc && !S_ISDIR(d.mode))
		rc = -ENOTDIR;
	unlock(fs);
	return rc;
}

struct rd {
	struct mfs_fs *fs;
	bool plus;
	mfs_fill_t fill;
	void *ctx;
	int err;
};

static int rd_cb(void *ctx, const char *name, size_t len, uint64_t ino,
		 uint8_t type, uint64_t hash)
{
	struct rd *r = ctx;
	struct mfs_attr a;
	char nm[MFS_NAME_LEN + 1];

	memset(&a, 0, sizeof(a));
	a.ino = ino;
	a.mode = (uint32_t)type << 12;
	if (r->plus) {
		struct mfs_inode in;
		int rc = mfs_inode_read(r->fs->v, ino, &in);

		if (rc) {
			r->err = rc == -ENOENT ? -EIO : rc;
			return 1;
		}
		to_attr(&in, &a);
	}
	memcpy(nm, name, len);
	nm[len] = 0;
	if (r->fill(r->ctx, nm, len, &a, hash))
		return 1;
	if (r->plus) {
		int rc = ref_lookup(r->fs, ino);

		if (rc) {
			r->err = rc;
			return 1;
		}
	}
	return 0;
}

int mfs_readdir(struct mfs_fs *fs, uint64_t ino, uint64_t off, bool plus,
		mfs_fill_t fill, void *ctx)
{
	struct mfs_inode d;
	struct mfs_attr a;
	struct rd r = { .fs = fs, .plus = plus, .fill = fill, .ctx = ctx };
	int rc;

	rdlock(fs);
	rc = mfs_inode_read(fs->v, ino, &d);
	if (!rc && !S_ISDIR(d.mode))
		rc = -ENOTDIR;
	if (rc || off >= (1ULL << 63))
		goto out;
	if (off == 0) {
		to_attr(&d, &a);
		if (fill(ctx, ".", 1, &a, 1))
			goto out;
		off = 1;
	}
	if (off == 1) {
		struct mfs_inode p;

		rc = mfs_inode_read(fs->v, d.parent, &p);
		if (rc)
			goto out;
		to_attr(&p, &a);
		if (fill(ctx, "..", 2, &a, 2))
			goto out;
		off = 2;
	}
	/* Entries after the one whose hash is off. */
	rc = mfs_dir_iterate(fs->v, ino, off + 1, rd_cb, &r);
	if (rc > 0)
		rc = r.err;
out:
	unlock(fs);
	return rc;
}

/* How long the host's free space is trusted: statvfs and fstat cost
 * two system calls, and the WRITE path asks for every request. */
#define HOST_SPACE_NS 20000000ull

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Ask the host again if its answer is older than HOST_SPACE_NS. Outside
 * the lock: a slow host filesystem must not hold up every writer. */
static void refresh_host(struct mfs_fs *fs)
{
	uint64_t now = now_ns(), hfree, backed;

	if (now - atomic_load(&fs->host_at) <= HOST_SPACE_NS ||
	    mfs_image_host_space(fs->v->img, &hfree, &backed) != 0)
		return;
	atomic_store(&fs->host_free, hfree);
	atomic_store(&fs->host_backed, backed);
	atomic_store(&fs->host_at, now);
}

/*
 * Blocks the host can still back for new data: its free space, plus what
 * the image already holds beyond the blocks in use (freed blocks stay
 * allocated on the host until a discard), as refresh_host last heard.
 * Without an answer from the host: as many as there are free blocks.
 * Caller holds the lock.
 */
static uint64_t host_blocks_left(struct mfs_fs *fs, uint64_t free_blocks)
{
	uint64_t hfree, backed, used;

	if (atomic_load(&fs->host_at) == 0)
		return free_blocks; /* the host never answered */
	hfree = atomic_load(&fs->host_free);
	backed = atomic_load(&fs->host_backed);
	used = (mfs_alloc_block_count(fs->v->alloc) - free_blocks) <<
	       MFS_BLOCK_SHIFT;
	if (backed > used)
		hfree += backed - used;
	return hfree >> MFS_BLOCK_SHIFT;
}

/* Free blocks beyond the reserve that the host can back. Caller holds the
 * lock. */
static uint64_t blocks_left(struct mfs_fs *fs)
{
	uint64_t free_blocks = mfs_alloc_free_blocks(fs->v->alloc);
	uint64_t left = free_blocks > fs->v->reserve ?
			free_blocks - fs->v->reserve : 0;
	uint64_t host = host_blocks_left(fs, free_blocks);

	/* The reserve's blocks need the host's space as much. */
	host = host > fs->v->reserve ? host - fs->v->reserve : 0;
	return left < host ? left : host;
}

uint64_t mfs_space_left(struct mfs_fs *fs)
{
	uint64_t left;

	if (fs->v->readonly)
		return 0;
	refresh_host(fs);
	rdlock(fs);
	left = blocks_left(fs);
	unlock(fs);
	return left << MFS_BLOCK_SHIFT;
}

int mfs_statfs(struct mfs_fs *fs, struct mfs_statfs *st)
{
	uint64_t free_blocks;

	refresh_host(fs);
	rdlock(fs);
	free_blocks = mfs_alloc_free_blocks(fs->v->alloc);
	memset(st, 0, sizeof(*st));
	st->bsize = MFS_BLOCK_SIZE;
	st->namemax = MFS_NAME_LEN;
	st->blocks = mfs_alloc_block_count(fs->v->alloc);
	st->bfree = free_blocks;
	/* Pinned blocks come back within two commits; the reserve is only
	 * for deletes. */
	st->bavail = blocks_left(fs);
	/* Inodes are items, not a fixed table: a small file costs well
	 * under a block, so report room for 8 per free block. */
	st->ffree = free_blocks * 8;
	st->files = fs->v->inode_count + st->ffree;
	unlock(fs);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Extended attributes                                                 */
/* ------------------------------------------------------------------ */

int mfs_setxattr(struct mfs_fs *fs, uint64_t ino, const char *name,
		 const void *value, size_t size, int flags)
{
	struct mfs_inode in;
	int rc;

	wrlock(fs);
	rc = writable(fs);
	if (!rc)
		rc = mfs_inode_read(fs->v, ino, &in);
	if (!rc)
		rc = need_space(fs, OP_BLOCKS * (1 + size / MFS_MAX_VALUE));
	if (!rc && !(flags & XATTR_CREATE)) {
		/* ext4 leaves an attribute set to the value it already has
		 * alone: no change, no new ctime. */
		void *old = malloc(size ? size : 1);
		size_t olen = 0;

		if (old && mfs_xattr_get(fs->v, ino, name, old, size, &olen) == 0 &&
		    olen == size && !memcmp(old, value, size)) {
			free(old);
			goto out;
		}
		free(old);
	}
	if (!rc)
		rc = mfs_xattr_set(fs->v, ino, name, value, size, flags);
	if (!rc) {
		mfs_inode_now(&in.ctime);
		rc = mfs_inode_write(fs->v, &in);
	}
out:
	unlock(fs);
	return rc;
}

int mfs_getxattr(struct mfs_fs *fs, uint64_t ino, const char *name,
		 void *buf, size_t size, size_t *len)
{
	struct mfs_inode in;
	int rc;

	rdlock(fs);
	rc = mfs_inode_read(fs->v, ino, &in);
	if (!rc)
		rc = mfs_xattr_get(fs->v, ino, name, buf, size, len);
	unlock(fs);
	return rc;
}

int mfs_listxattr(struct mfs_fs *fs, uint64_t ino, char *buf, size_t size,
		  size_t *len)
{
	struct mfs_inode in;
	int rc;

	rdlock(fs);
	rc = mfs_inode_read(fs->v, ino, &in);
	if (!rc)
		rc = mfs_xattr_list(fs->v, ino, buf, size, len);
	unlock(fs);
	return rc;
}

int mfs_removexattr(struct mfs_fs *fs, uint64_t ino, const char *name)
{
	struct mfs_inode in;
	int rc;

	wrlock(fs);
	rc = writable(fs);
	if (!rc)
		rc = mfs_inode_read(fs->v, ino, &in);
	if (!rc)
		rc = need_delete_space(fs);
	if (!rc)
		rc = mfs_xattr_remove(fs->v, ino, name);
	if (!rc) {
		mfs_inode_now(&in.ctime);
		rc = mfs_inode_write(fs->v, &in);
	}
	unlock(fs);
	return rc;
}
