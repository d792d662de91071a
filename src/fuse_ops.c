/* SPDX-License-Identifier: MIT */
/*
 * fuse_ops.c — the libfuse low-level glue (layer 8).
 *
 * Each handler turns one request into one call of the core API (mmapfs.h)
 * and exactly one reply. No filesystem logic lives here: the core checks
 * names, types and limits and returns 0 or -errno; this file only flips the
 * sign (and turns -EUCLEAN, corruption, into EIO).
 *
 * What the kernel is told, and why (see also docs/design.md, "FUSE"):
 *
 * - Node ids are inode numbers (root 1), with the inode's generation. Every
 *   reply that hands the kernel an entry (lookup, create, mknod, mkdir,
 *   symlink, link, readdirplus) took one lookup count in the core; forget
 *   and forget_multi give them back. If the reply cannot be delivered (the
 *   request was interrupted), the count is given back here.
 * - Entry and attribute timeouts are a day, and misses are cached as
 *   negative entries for as long: the daemon is the only writer, so
 *   nothing changes behind the kernel's back.
 * - Writeback cache: the kernel owns size and mtime and sends them as
 *   setattr; it reads partial pages even on O_WRONLY files, so those are
 *   opened read-write in the core; it positions O_APPEND writes itself.
 *   Page-cache writes arrive with fi->writepage set and possibly another
 *   opener's fh (or none), so nothing here depends on fh: it is always 0.
 * - setuid/setgid and file capabilities: FUSE_HANDLE_KILLPRIV_V2 when the
 *   kernel offers it (libfuse 3.14 cannot negotiate it: fuse_io.c patches
 *   the INIT reply and reads the request flags libfuse drops). Without it
 *   the kernel never marks the superblock SB_NOSEC and asks the daemon
 *   for security.capability before every write, a synchronous round trip
 *   (a tenth of the random-write rate). With it the kernel decides, from
 *   the caller's credentials, and flags the request: a WRITE (sent write-
 *   through, in the caller's context, for a setuid/setgid file), an OPEN
 *   with O_TRUNC, a SETATTR with a size or an owner; the daemon then kills
 *   setuid, setgid as the VFS does (group-executable, or a caller outside
 *   the file's group) and security.capability, and tells the kernel its
 *   cached mode is stale where no attributes go back in the reply. Some
 *   kills come without a flag (killpriv_setattr): a setattr of nothing
 *   is the kernel's file_remove_privs for fallocate or copy_file_range,
 *   one of only ctime is chown(f, -1, -1); there the daemon reads the
 *   caller's capabilities from /proc. The v1 FUSE_CAP_HANDLE_KILLPRIV stays
 *   off: it has no flags, and writes from the writeback cache carry no
 *   caller credentials. Without V2 the kernel decides and sends the new
 *   mode as a setattr. (libfuse 3.14 sets FUSE_CAP_HANDLE_KILLPRIV in want
 *   by default but never passes it to the kernel, nor
 *   FUSE_PARALLEL_DIROPS: libfuse issues #884 and #861, fixed in 3.16. We
 *   ask for the latter as if it did.)
 * - Never direct_io: it would make shared mmap fail with ENODEV. Files are
 *   opened with keep_cache, since cached pages never go stale.
 * - Reads reply with an iovec pointing into the image mapping
 *   (fuse_reply_iov): no intermediate copy. The kernel now caches the
 *   data, so the image's copy is redundant: mfs_read_cached drops it
 *   behind sequential readers.
 */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>      /* RENAME_NOREPLACE, RENAME_EXCHANGE */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "fuse_ops.h"
#include "log.h"
#include "mmapfs/mmapfs.h"

/* Entry/attribute validity, seconds: the daemon is the only writer. */
#define TIMEOUT 86400.0
/* Largest write the kernel may send: 1 MiB (256 pages). */
#define MAX_WRITE (1u << 20)
/* iovec slots kept on the stack for a read: enough for 1 MiB. */
#define READ_IOV_STACK ((MAX_WRITE >> 12) + 2)

static inline struct mfs_fuse *ctx_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* A core result (-errno) as a reply's positive errno. */
static int errno_of(int rc)
{
	if (rc == -EUCLEAN)
		return EIO;
	if (rc >= 0 || rc < -4095)
		return EIO;
	return -rc;
}

static void reply_rc(fuse_req_t req, int rc)
{
	fuse_reply_err(req, rc == 0 ? 0 : errno_of(rc));
}

/*
 * The caller's credentials. cap_fsetid is approximated by uid 0 (the
 * request does not carry the caller's capabilities; with
 * handle_killpriv_v2 the kernel's flags, or caller_capable where there is
 * none, decide instead); in_group is left true,
 * because with default_permissions the kernel's setattr_prepare() has
 * already dropped S_ISGID from a chmod by a caller outside the file's
 * group, and the VFS strips it from new files (mode_strip_sgid).
 */
static struct mfs_cred cred_of(fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct mfs_cred cred = {
		.uid = c->uid,
		.gid = c->gid,
		.cap_fsetid = c->uid == 0,
		.in_group = true,
	};
	return cred;
}

/* Is the caller in group gid (its fsgid or a supplementary group)? When
 * that cannot be told: no, which drops setgid (the safe side). */
static bool caller_in_group(fuse_req_t req, uint32_t gid)
{
	gid_t stack[32], *list = stack;
	int n, i, size = 32;
	bool in = false;

	if (fuse_req_ctx(req)->gid == gid)
		return true;
	n = fuse_req_getgroups(req, size, stack);
	if (n > size) {
		size = n;
		list = calloc((size_t)size, sizeof(*list));
		n = list ? fuse_req_getgroups(req, size, list) : -ENOMEM;
	}
	for (i = 0; i < n && i < size; i++)
		if (list[i] == gid)
			in = true;
	if (list != stack)
		free(list);
	return in;
}

/*
 * Does the caller have capability cap (CAP_FSETID, CAP_FOWNER) as the
 * kernel's capable() means it, in the initial user namespace? The request
 * does not say, so read the calling thread's CapEff from /proc (it waits in
 * its system call while the request is served, so its credentials hold
 * still). A caller in another user namespace (uid_map not the identity
 * map) has no capability there. When /proc cannot tell (pid 0: a pid
 * namespace the daemon does not see), fall back to uid 0. Costs two small
 * reads: asked only where the answer changes the result.
 */
static bool caller_capable(fuse_req_t req, int cap)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	char path[64], line[256];
	unsigned long long eff;
	unsigned a, b, n;
	bool res = c->uid == 0;
	FILE *f;

	if (c->pid <= 0)
		return res;
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)c->pid);
	f = fopen(path, "re");
	if (!f)
		return res;
	if (fscanf(f, "%u %u %u", &a, &b, &n) != 3 || a != 0 || b != 0 ||
	    n != UINT32_MAX || fscanf(f, "%u", &a) == 1) {
		fclose(f);
		return false;
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)c->pid);
	f = fopen(path, "re");
	if (!f)
		return res;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			res = (eff >> cap) & 1;
			break;
		}
	fclose(f);
	return res;
}

/*
 * handle_killpriv_v2: the kernel flagged this request, because the caller
 * lacks CAP_FSETID (or it is a chown). The core is to kill privileges;
 * setgid of a file its group may not execute goes only if the caller is
 * not in the file's group (setattr_should_drop_sgid), which needs the
 * caller's groups: looked up only for such a file. Returns whether the
 * file has setuid or setgid, i.e. whether the mode the kernel caches may
 * be about to go stale.
 */
static bool kill_cred(fuse_req_t req, fuse_ino_t ino, struct mfs_cred *cred)
{
	struct mfs_attr a;

	cred->cap_fsetid = false;
	cred->in_group = true;
	if (mfs_getattr(ctx_of(req)->fs, ino, &a) != 0)
		return false; /* the core's call fails the same way */
	if ((a.mode & S_ISGID) && !(a.mode & S_IXGRP))
		cred->in_group = caller_in_group(req, a.gid);
	return a.mode & (S_ISUID | S_ISGID);
}

/* The kernel keeps a file's mode for a day and learns nothing from a write
 * or open reply: after one of those killed setuid/setgid, have it fetch
 * the attributes again (its cached size and times stay its own). */
static void mode_changed(fuse_req_t req, fuse_ino_t ino)
{
	struct mfs_fuse *d = ctx_of(req);

	fuse_lowlevel_notify_inval_inode(d->se, ino, -1, 0);
}

/* After a change: under -o sync, commit before the reply goes out. */
static int changed(struct mfs_fuse *d)
{
	return d->sync ? mfs_fs_sync(d->fs) : 0;
}

static void stat_of(const struct mfs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = 4096;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

static void entry_of(const struct mfs_attr *a, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	e->generation = a->generation;
	stat_of(a, &e->attr);
	e->attr_timeout = TIMEOUT;
	e->entry_timeout = TIMEOUT;
}

/* Reply with an entry the core counted a lookup for; if the kernel never
 * gets it, give the count back. */
static void reply_entry(fuse_req_t req, const struct mfs_attr *a)
{
	struct fuse_entry_param e;

	entry_of(a, &e);
	if (fuse_reply_entry(req, &e) != 0)
		mfs_forget(ctx_of(req)->fs, a->ino, 1);
}

/* Reply to a request that created an entry (rc from the core). */
static void reply_new_entry(fuse_req_t req, int rc, const struct mfs_attr *a)
{
	struct mfs_fuse *d = ctx_of(req);

	if (rc == 0) {
		rc = changed(d);
		if (rc) {
			mfs_forget(d->fs, a->ino, 1);
			reply_rc(req, rc);
			return;
		}
		reply_entry(req, a);
		return;
	}
	reply_rc(req, rc);
}

/* Reply to a request that changed something but returns no data. */
static void reply_change(fuse_req_t req, int rc)
{
	if (rc == 0)
		rc = changed(ctx_of(req));
	reply_rc(req, rc);
}

/*
 * Open flags as the core sees them. With the writeback cache the kernel
 * reads partial pages of files opened write-only, and positions O_APPEND
 * writes itself (at its own idea of the size, which is right: nobody else
 * writes), so the core opens read-write and never appends.
 */
static int core_open_flags(const struct mfs_fuse *d, int flags)
{
	if (d->writeback) {
		if ((flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		flags &= ~O_APPEND;
	}
	return flags;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct mfs_fuse *d = userdata;
	const unsigned want = FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_READDIRPLUS |
		FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_PARALLEL_DIROPS |
		FUSE_CAP_EXPORT_SUPPORT | FUSE_CAP_ATOMIC_O_TRUNC |
		FUSE_CAP_ASYNC_READ | FUSE_CAP_CACHE_SYMLINKS;
	unsigned limit;

	conn->want |= want & conn->capable;
	/* See the file header. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	/*
	 * READDIRPLUS_AUTO: the kernel starts a directory listing with
	 * readdirplus and switches to plain readdir when the program does
	 * not stat what it lists (ls vs. ls -l, find). Plain readdir is
	 * cheaper for huge directories: no attributes, no lookup counts, no
	 * kernel inode per entry.
	 *
	 * No AUTO_INVAL_DATA: cached pages are never stale (only writer),
	 * and a timestamp mismatch must not throw them away.
	 */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* libfuse 3.14 sized its buffer for 1 MiB when the kernel offers
	 * FUSE_MAX_PAGES, less otherwise, and set max_write to fit: only
	 * ever lower it (libfuse derives max_pages from it), also after
	 * -o max_write=N. */
	limit = conn->max_write < MAX_WRITE ? conn->max_write : MAX_WRITE;
	conn->max_write = limit;
	if (d->conn_opts)
		fuse_apply_conn_info_opts(d->conn_opts, conn);
	if (conn->max_write > limit || conn->max_write == 0)
		conn->max_write = limit;
	conn->want &= conn->capable;
	d->writeback = conn->want & FUSE_CAP_WRITEBACK_CACHE;
	/* See op_open and op_opendir. Kernels that do not take ENOSYS
	 * for an answer (before FUSE 7.23 and 7.29) get real opens. */
	d->no_open = conn->capable & FUSE_CAP_NO_OPEN_SUPPORT;
	d->no_opendir = conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT;
	if (d->no_open)
		conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/* See the file header and fuse_io.c. Splice reads would bypass the
	 * hook that sees the kill flags. */
	d->killpriv_v2 = d->io_hooked && mfs_fuse_io_offered_killpriv_v2();
	if (d->killpriv_v2)
		conn->want &= ~FUSE_CAP_SPLICE_READ;
	mfs_log(MFS_LOG_DEBUG, "init: protocol %u.%u, want 0x%x, max_write %u, "
		"handle_killpriv_v2 %s", conn->proto_major, conn->proto_minor,
		conn->want, conn->max_write, d->killpriv_v2 ? "on" : "off");
	if (mfs_space_start(d) != 0)
		mfs_log(MFS_LOG_WARNING, "cannot start the space gate: a "
			"writer that never syncs is not stopped when the "
			"filesystem is full (fsync and close still report "
			"what was not stored)");
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_attr a;
	int rc;

	rc = mfs_lookup(ctx_of(req)->fs, parent, name, &a);
	if (rc == -ENOENT) {
		/* A negative entry the kernel may keep: only we create. */
		struct fuse_entry_param e = { .ino = 0,
					      .entry_timeout = TIMEOUT };
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	reply_entry(req, &a);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	mfs_space_forget(ctx_of(req), ino);
	mfs_forget(ctx_of(req)->fs, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct mfs_fs *fs = ctx_of(req)->fs;
	size_t i;

	for (i = 0; i < count; i++) {
		mfs_space_forget(ctx_of(req), forgets[i].ino);
		mfs_forget(fs, forgets[i].ino, forgets[i].nlookup);
	}
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct mfs_fuse *d = ctx_of(req);
	struct mfs_attr a;
	struct stat st;
	int rc;

	/* With a handle, this is the kernel's question before a cached
	 * write(2) to an inode fuse_space.c armed (see there). */
	if (fi && mfs_space_refuse(d, ino)) {
		reply_rc(req, -ENOSPC);
		return;
	}
	rc = mfs_getattr(d->fs, ino, &a);
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	stat_of(&a, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
	if (!fi)
		mfs_space_stat(d, ino); /* req is gone with the reply */
}

/*
 * handle_killpriv_v2: what a setattr is to kill, from the kernel's flag and
 * the caller. cred and set are op_setattr's, in the core's new values.
 *
 * - FATTR_KILL_SUIDGID (libfuse 3.14 passes it on as FUSE_SET_ATTR_KILL_
 *   SUID, the same bit 11) with a size: a truncate by a caller without
 *   CAP_FSETID. Kill.
 * - The flag with an owner: chown of a non-directory, set for every
 *   caller. On ext4 setuid goes, and setgid if the group may execute or
 *   the caller is neither in the file's (old) group nor has CAP_FSETID
 *   (setattr_should_drop_sgid); if that changed the mode, setattr_
 *   prepare() also wants the caller in the new group (or CAP_FSETID) to
 *   keep setgid, and the caller to own the file or have CAP_FOWNER, else
 *   EPERM. fuse_setattr() drops that mode change, so it is done here:
 *   the core's chown rule with in_group saying both.
 * - Only ctime (writeback cache): chown(f, -1, -1), whose ATTR_KILL_SUID/
 *   SGID fuse_setattr() drops without a flag: ext4 kills as for any
 *   chown, so it is made one, to the same owner.
 * - Nothing at all: the kernel's file_remove_privs() (fallocate,
 *   copy_file_range, a write-through write before its WRITE), whose kill
 *   bits fuse_setattr() drops too: kill if the caller lacks CAP_FSETID
 *   (one with it came only for security.capability, which the kernel
 *   removed with a REMOVEXATTR first). Without the writeback cache
 *   chown(f, -1, -1) looks the same (docs/design.md).
 *
 * The caller's capabilities and groups are looked up only for a file
 * with setuid or setgid, where they change the result. Returns 0 or
 * -errno.
 */
static int killpriv_setattr(fuse_req_t req, fuse_ino_t ino, int to_set,
			    struct mfs_cred *cred, unsigned *set,
			    struct mfs_attr *in)
{
	bool flag = to_set & FUSE_SET_ATTR_KILL_SUID;
	bool chown = flag && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID));
	uint32_t mode, gid;
	struct mfs_attr a;

	cred->cap_fsetid = true;
	cred->in_group = true;
	if (flag && (to_set & FUSE_SET_ATTR_SIZE)) {
		kill_cred(req, ino, cred);
		*set |= MFS_SET_KILL_PRIV;
		return 0;
	}
	if (to_set == FUSE_SET_ATTR_CTIME)
		chown = true; /* chown(f, -1, -1) */
	else if (!chown && to_set != 0)
		return 0;
	if (mfs_getattr(ctx_of(req)->fs, ino, &a) != 0 || S_ISDIR(a.mode) ||
	    !(a.mode & (S_ISUID | S_ISGID)))
		return 0; /* nothing to decide (or the core fails the same) */
	cred->cap_fsetid = caller_capable(req, CAP_FSETID);
	if ((a.mode & S_ISGID) && !(a.mode & S_IXGRP) && !cred->cap_fsetid)
		cred->in_group = caller_in_group(req, a.gid);
	if (!chown) {
		if (!cred->cap_fsetid)
			*set |= MFS_SET_KILL_PRIV;
		return 0;
	}
	/* chown: the mode ext4 would set, and whether it may */
	mode = a.mode & ~(uint32_t)S_ISUID;
	if ((mode & S_IXGRP) || !cred->in_group)
		mode &= ~(uint32_t)S_ISGID;
	if (mode == a.mode)
		return 0;
	gid = (*set & MFS_SET_GID) ? in->gid : a.gid;
	if ((mode & S_ISGID) && gid != a.gid && !cred->cap_fsetid)
		cred->in_group = caller_in_group(req, gid);
	if (fuse_req_ctx(req)->uid != a.uid &&
	    !caller_capable(req, CAP_FOWNER))
		return -EPERM;
	if (!(*set & (MFS_SET_UID | MFS_SET_GID))) {
		in->uid = a.uid;
		*set |= MFS_SET_UID;
	}
	return 0;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *st,
		       int to_set, struct fuse_file_info *fi)
{
	struct mfs_fuse *d = ctx_of(req);
	struct mfs_cred cred = cred_of(req);
	struct mfs_attr in, out;
	struct stat res;
	unsigned set = 0;
	int rc;

	memset(&in, 0, sizeof(in));
	if (to_set & FUSE_SET_ATTR_MODE) {
		set |= MFS_SET_MODE;
		in.mode = st->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		set |= MFS_SET_UID;
		in.uid = st->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		set |= MFS_SET_GID;
		in.gid = st->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		set |= MFS_SET_SIZE;
		in.size = (uint64_t)st->st_size;
		/* The size is the program's now, holes included. */
		mfs_space_forget(d, ino);
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		set |= MFS_SET_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		set |= MFS_SET_ATIME;
		in.atime = st->st_atim;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		set |= MFS_SET_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		set |= MFS_SET_MTIME;
		in.mtime = st->st_mtim;
	}
	if (to_set & FUSE_SET_ATTR_CTIME) {
		set |= MFS_SET_CTIME;
		in.ctime = st->st_ctim;
	}
	if (d->killpriv_v2) {
		rc = killpriv_setattr(req, ino, to_set, &cred, &set, &in);
		if (rc) {
			reply_rc(req, rc);
			return;
		}
	}
	rc = mfs_setattr(d->fs, &cred, ino, &in, set, &out);
	if (rc == 0)
		rc = changed(d);
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	stat_of(&out, &res);
	fuse_reply_attr(req, &res, TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[MFS_SYMLINK_MAX + 1];
	size_t len = 0;
	int rc;

	rc = mfs_readlink(ctx_of(req)->fs, ino, buf, MFS_SYMLINK_MAX, &len);
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	if (len > MFS_SYMLINK_MAX)
		len = MFS_SYMLINK_MAX;
	buf[len] = '\0';
	fuse_reply_readlink(req, buf);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct mfs_cred cred = cred_of(req);
	struct mfs_attr a;
	int rc;

	rc = mfs_mknod(ctx_of(req)->fs, &cred, parent, name, mode, rdev, &a);
	reply_new_entry(req, rc, &a);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct mfs_cred cred = cred_of(req);
	struct mfs_attr a;
	int rc;

	rc = mfs_mkdir(ctx_of(req)->fs, &cred, parent, name, mode, &a);
	reply_new_entry(req, rc, &a);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	struct mfs_cred cred = cred_of(req);
	struct mfs_attr a;
	int rc;

	rc = mfs_symlink(ctx_of(req)->fs, &cred, parent, name, link, &a);
	reply_new_entry(req, rc, &a);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct mfs_attr a;
	int rc;

	rc = mfs_link(ctx_of(req)->fs, ino, newparent, newname, &a);
	reply_new_entry(req, rc, &a);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	reply_change(req, mfs_unlink(ctx_of(req)->fs, parent, name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	reply_change(req, mfs_rmdir(ctx_of(req)->fs, parent, name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	unsigned mflags = 0;

	if (flags & RENAME_NOREPLACE)
		mflags |= MFS_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		mflags |= MFS_RENAME_EXCHANGE;
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		/* RENAME_WHITEOUT: overlayfs only; ext4 has it, we do not. */
		fuse_reply_err(req, EINVAL);
		return;
	}
	reply_change(req, mfs_rename(ctx_of(req)->fs, parent, name, newparent,
				     newname, mflags));
}

/*
 * open and release. Nothing here needs a file handle (fh is always 0), the
 * kernel checks permissions (default_permissions), and a file that is open
 * is also looked up (an open file pins its dentry and inode, so the kernel
 * sends no FORGET before the last close): the lookup count alone keeps an
 * unlinked file alive. So OPEN is answered with ENOSYS, which the kernel
 * remembers (fc->no_open): from then on open(2) costs no round trip, the
 * file is opened with keep_cache, and no RELEASE is sent. O_TRUNC then
 * comes as a SETATTR of the size, which is why init does not ask for
 * atomic_o_trunc. New files come as MKNOD (see op_create), so the core's
 * open count stays 0.
 */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_fuse *d = ctx_of(req);
	struct mfs_cred cred = cred_of(req);
	bool stale = false;
	int rc;

	if (d->no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (d->killpriv_v2) {
		/* O_TRUNC by a caller without CAP_FSETID: flagged. (With
		 * no_open it comes as a SETATTR with FATTR_KILL_SUIDGID.) */
		cred.cap_fsetid = true;
		if ((fi->flags & O_TRUNC) &&
		    mfs_fuse_io_kill(MFS_RAW_OPEN, ino))
			stale = kill_cred(req, ino, &cred);
	}
	rc = mfs_open(d->fs, &cred, ino, core_open_flags(d, fi->flags));
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	if (stale)
		mode_changed(req, ino);
	if (fi->flags & O_TRUNC) {
		rc = changed(d);
		if (rc) {
			mfs_release(d->fs, ino);
			reply_rc(req, rc);
			return;
		}
	}
	fi->fh = 0;
	fi->keep_cache = 1;
	fi->direct_io = 0;
	if (fuse_reply_open(req, fi) != 0)
		mfs_release(d->fs, ino);
}

/* The kernel will not hold what create made: give back its lookup (and
 * open) count. */
static void uncreate(struct mfs_fuse *d, uint64_t ino, bool opened)
{
	if (opened)
		mfs_release(d->fs, ino);
	mfs_forget(d->fs, ino, 1);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct mfs_fuse *d = ctx_of(req);
	struct mfs_cred cred = cred_of(req);
	struct fuse_entry_param e;
	struct mfs_attr a;
	bool opened = false;
	int rc;

	if (mfs_fuse_io_tmpfile(parent)) {
		/* open(O_TMPFILE): FUSE_TMPFILE, which fuse_io.c handed
		 * libfuse as a CREATE (the same request and reply). An
		 * unlinked file, counted as looked up; a RELEASE, if the
		 * kernel sends one, finds no open count and does nothing. */
		rc = mfs_tmpfile(d->fs, &cred, parent, mode, &a);
	} else if (d->no_open) {
		/*
		 * Without OPEN, CREATE buys nothing: ENOSYS (the kernel's
		 * no_create) makes open(O_CREAT) of a new name a MKNOD, and
		 * the open that follows costs no round trip, as above. The
		 * RELEASE that kernels such as 6.18 still send, despite
		 * no_open, for every file made by CREATE goes too.
		 */
		fuse_reply_err(req, ENOSYS);
		return;
	} else {
		rc = mfs_create(d->fs, &cred, parent, name, mode,
				core_open_flags(d, fi->flags), &a);
		opened = true;
	}
	if (rc == 0 && (rc = changed(d)) != 0)
		uncreate(d, a.ino, opened);
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	entry_of(&a, &e);
	fi->fh = 0;
	fi->keep_cache = 1;
	fi->direct_io = 0;
	if (fuse_reply_create(req, &e, fi) != 0)
		uncreate(d, a.ino, opened);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct mfs_fs *fs = ctx_of(req)->fs;   /* the reply frees req */
	struct iovec stack_iov[READ_IOV_STACK];
	struct iovec *iov = stack_iov;
	unsigned iovmax = (unsigned)(size >> 12) + 2;
	unsigned cnt = 0;
	size_t bytes = 0;
	int rc;

	if (iovmax > READ_IOV_STACK) {
		iov = calloc(iovmax, sizeof(*iov));
		if (!iov) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	rc = mfs_read(fs, ino, (uint64_t)off, size, iov, iovmax,
		      &cnt, &bytes);
	if (rc)
		reply_rc(req, rc);
	else if (fuse_reply_iov(req, iov, (int)cnt) == 0 && bytes > 0)
		mfs_read_cached(fs, ino, (uint64_t)off, bytes);
	if (iov != stack_iov)
		free(iov);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct mfs_fuse *d = ctx_of(req);
	struct mfs_cred cred = cred_of(req);
	unsigned flags = 0;
	size_t written = 0, want = size;
	uint64_t left = 0, limit;
	bool stale = false;
	int rc;

	/* Without the writeback cache the core must append itself; with
	 * it, the kernel already put the offset at the end. */
	if (!d->writeback && !fi->writepage && (fi->flags & O_APPEND))
		flags |= MFS_WRITE_APPEND;
	if (d->killpriv_v2) {
		/* Flagged: a caller without CAP_FSETID, writing through (not
		 * from the page cache) in its own context. */
		cred.cap_fsetid = true;
		if (mfs_fuse_io_kill(MFS_RAW_WRITE, ino)) {
			stale = kill_cred(req, ino, &cred);
			flags |= MFS_WRITE_KILL_PRIV;
		}
	}
	if (fi->writepage) {
		left = mfs_space_left(d->fs);
		if (mfs_space_tight(d, left))
			flags |= MFS_WRITE_NO_GAP;
		limit = mfs_space_limit(d, ino);
		if ((uint64_t)off + size > limit)
			want = (uint64_t)off < limit ? limit - (uint64_t)off : 0;
	}
	rc = mfs_write(d->fs, &cred, ino, (uint64_t)off, buf, want, flags,
		       &written);
	if (written > 0 && stale)
		mode_changed(req, ino);
	/* An error after data went in (the inode could not be updated) is
	 * an error all the same: the data is not reachable. */
	if (written > 0 && rc == 0)
		rc = changed(d);
	/*
	 * From writeback the kernel takes a short count for written and
	 * the pages as clean: what was not stored must be an error, which
	 * it keeps for fsync, msync and close (EFBIG at the size limit,
	 * else what fits was stored: ENOSPC). Written through (the
	 * caller's own write(2)), a short count is what the caller sees.
	 */
	if (fi->writepage && rc == 0 && written < size)
		rc = (uint64_t)off + written >= MFS_FILE_SIZE_MAX ? -EFBIG :
		     -ENOSPC;
	if (fi->writepage && rc)
		mfs_space_dropped(d, ino, (uint64_t)off + written);
	if (rc) {
		reply_rc(req, rc);
	} else if (fuse_reply_write(req, written) == 0) {
		mfs_write_behind(d->fs, ino, (uint64_t)off, written);
	}
	if (fi->writepage)
		mfs_space_wrote(d, ino, left, mfs_space_left(d->fs), rc != 0);
}

/*
 * close(2) commits nothing on ext4 either, and the kernel writes the file's
 * dirty pages back (and reports their errors) before it would send FLUSH,
 * so there is nothing to do. ENOSYS tells the kernel so once for all
 * (fc->no_flush): every later close saves a round trip.
 */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, ENOSYS);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	reply_rc(req, mfs_release(ctx_of(req)->fs, ino));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	reply_rc(req, mfs_fsync(ctx_of(req)->fs, ino, datasync != 0));
}

/*
 * Directories need no handle either (readdir offsets are name hashes), so
 * OPENDIR is answered with ENOSYS (the kernel's no_opendir): opendir(3)
 * and closedir(3) then cost no round trip, and the kernel caches listings
 * (FOPEN_CACHE_DIR), dropping them when the directory changes; nothing
 * changes one behind its back.
 */
static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	int rc;

	if (ctx_of(req)->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	rc = mfs_opendir(ctx_of(req)->fs, ino);
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

/* One readdir(plus) reply being filled by the core's mfs_readdir. */
struct dirbuf {
	fuse_req_t req;
	bool plus;
	char *buf;
	size_t size, len;
	/* Nodes the core counted a lookup for (plus), given back if the
	 * reply cannot be delivered. */
	uint64_t *taken;
	size_t ntaken, cap;
};

static bool is_dot_or_dotdot(const char *name, size_t len)
{
	return (len == 1 && name[0] == '.') ||
	       (len == 2 && name[0] == '.' && name[1] == '.');
}

static int dir_fill(void *ctx, const char *name, size_t namelen,
		    const struct mfs_attr *attr, uint64_t next_off)
{
	struct dirbuf *db = ctx;
	char nm[MFS_NAME_LEN + 1];
	size_t need;

	if (namelen > MFS_NAME_LEN)
		namelen = MFS_NAME_LEN; /* the core checked; never happens */
	memcpy(nm, name, namelen);
	nm[namelen] = '\0';
	if (!db->plus) {
		struct stat st;

		memset(&st, 0, sizeof(st));
		st.st_ino = attr->ino;
		st.st_mode = attr->mode & S_IFMT;
		need = fuse_add_direntry(db->req, db->buf + db->len,
					 db->size - db->len, nm, &st,
					 (off_t)next_off);
	} else {
		struct fuse_entry_param e;
		bool dot = is_dot_or_dotdot(nm, namelen);

		if (!dot && db->ntaken == db->cap) {
			size_t ncap = db->cap ? db->cap * 2 : 64;
			uint64_t *t = realloc(db->taken, ncap * sizeof(*t));

			if (!t)
				return 1; /* not taken: offered again */
			db->taken = t;
			db->cap = ncap;
		}
		entry_of(attr, &e);
		if (dot) {
			/* No lookup count for "." and "..": the kernel
			 * ignores their entry (node id 0), uses the ino. */
			e.ino = 0;
			e.generation = 0;
			e.attr_timeout = 0;
			e.entry_timeout = 0;
		}
		need = fuse_add_direntry_plus(db->req, db->buf + db->len,
					      db->size - db->len, nm, &e,
					      (off_t)next_off);
		if (need <= db->size - db->len && !dot)
			db->taken[db->ntaken++] = attr->ino;
	}
	if (need > db->size - db->len)
		return 1;
	db->len += need;
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, bool plus)
{
	struct mfs_fuse *d = ctx_of(req);
	struct dirbuf db = { .req = req, .plus = plus, .size = size };
	size_t i;
	int rc;

	db.buf = malloc(size ? size : 1);
	if (!db.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = mfs_readdir(d->fs, ino, (uint64_t)off, plus, dir_fill, &db);
	if (rc && db.len == 0) {
		reply_rc(req, rc);
	} else if (fuse_reply_buf(req, db.buf, db.len) != 0) {
		/* What was filled before an error is still a valid answer;
		 * an undelivered one takes no lookup counts. */
		for (i = 0; i < db.ntaken; i++)
			mfs_forget(d->fs, db.taken[i], 1);
	}
	free(db.taken);
	free(db.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	reply_rc(req, mfs_fsync(ctx_of(req)->fs, ino, datasync != 0));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct mfs_statfs s;
	struct statvfs sv;
	uint64_t headroom;
	int rc;

	rc = mfs_statfs(ctx_of(req)->fs, &s);
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = s.bsize;
	sv.f_frsize = s.bsize;
	sv.f_blocks = s.blocks;
	sv.f_bfree = s.bfree;
	/* What the page cache may still hold is not available to write. */
	headroom = mfs_space_headroom(ctx_of(req)) / s.bsize;
	sv.f_bavail = s.bavail > headroom ? s.bavail - headroom : 0;
	sv.f_files = s.files;
	sv.f_ffree = s.ffree;
	sv.f_favail = s.ffree;
	sv.f_namemax = s.namemax;
	fuse_reply_statfs(req, &sv);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	reply_change(req, mfs_setxattr(ctx_of(req)->fs, ino, name, value,
				       size, flags));
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct mfs_fs *fs = ctx_of(req)->fs;
	size_t len = 0;
	char *buf;
	int rc;

	if (size == 0) {
		rc = mfs_getxattr(fs, ino, name, NULL, 0, &len);
		if (rc)
			reply_rc(req, rc);
		else
			fuse_reply_xattr(req, len);
		return;
	}
	if (size > MFS_XATTR_SIZE_MAX)
		size = MFS_XATTR_SIZE_MAX;
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = mfs_getxattr(fs, ino, name, buf, size, &len);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mfs_fs *fs = ctx_of(req)->fs;
	size_t len = 0;
	char *buf;
	int rc;

	if (size == 0) {
		rc = mfs_listxattr(fs, ino, NULL, 0, &len);
		if (rc)
			reply_rc(req, rc);
		else
			fuse_reply_xattr(req, len);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = mfs_listxattr(fs, ino, buf, size, &len);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	reply_change(req, mfs_removexattr(ctx_of(req)->fs, ino, name));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			 off_t offset, off_t length, struct fuse_file_info *fi)
{
	if (offset < 0 || length <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	reply_change(req, mfs_fallocate(ctx_of(req)->fs, ino, mode,
					(uint64_t)offset, (uint64_t)length));
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	uint64_t res = 0;
	int rc;

	if (off < 0) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	rc = mfs_lseek(ctx_of(req)->fs, ino, (uint64_t)off, whence, &res);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_lseek(req, (off_t)res);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in,
			       off_t off_in, struct fuse_file_info *fi_in,
			       fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len,
			       int flags)
{
	struct mfs_fuse *d = ctx_of(req);
	size_t copied = 0;
	int rc;

	if (flags != 0 || off_in < 0 || off_out < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = mfs_copy_file_range(d->fs, ino_in, (uint64_t)off_in, ino_out,
				 (uint64_t)off_out, len, &copied);
	if (copied > 0) {
		int src = changed(d);

		rc = src;
	}
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	fuse_reply_write(req, copied);
}

/* No ioctls (FS_IOC_GETFLAGS and the like): test tools probe for ENOTTY. */
static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd,
		     void *arg, struct fuse_file_info *fi, unsigned flags,
		     const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	fuse_reply_err(req, ENOTTY);
}

const struct fuse_lowlevel_ops mfs_fuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.copy_file_range = op_copy_file_range,
	.ioctl = op_ioctl,
};
