/* SPDX-License-Identifier: MIT */
/*
 * fuse_ops.h — the FUSE glue (layer 8), as the daemon's main sees it.
 *
 * fuse_ops.c turns each libfuse low-level request into one call of the core
 * API (mmapfs.h) and one reply. This header names no libfuse type beyond a
 * forward declaration, so it may be included anywhere; only src/fuse_*.c
 * and src/main.c include libfuse headers (contrib/check-layers.sh).
 */
#ifndef MFS_FUSE_OPS_H
#define MFS_FUSE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mfs_fs;
struct fuse_session;
struct fuse_lowlevel_ops;
struct fuse_conn_info_opts;

/* The session's user data: what every request handler needs. */
struct mfs_fuse {
	struct mfs_fs *fs;
	/* -o sync: commit before replying to every request that changed
	 * something, as ext4 -o sync makes every change durable at once. */
	bool sync;
	/* Connection options given on the command line (-o max_write=N,
	 * -o no_writeback_cache, ...), applied in init after our defaults;
	 * NULL if none. */
	struct fuse_conn_info_opts *conn_opts;
	/* Set by init: the kernel caches writes (FUSE_CAP_WRITEBACK_CACHE). */
	bool writeback;
	/* Set by init: OPEN and OPENDIR are answered with ENOSYS, so the
	 * kernel opens without asking (see fuse_ops.c, op_open). */
	bool no_open, no_opendir;
	/* fuse_io.c's hooks are on the session's descriptor (se is set). */
	bool io_hooked;
	struct fuse_session *se;
	/* Set by init: FUSE_HANDLE_KILLPRIV_V2 is on, the daemon clears
	 * setuid/setgid where the kernel's requests say so (fuse_io.c). */
	bool killpriv_v2;
	/* -o spin=US: fuse_io.c polls this long for the next request
	 * before sleeping (single-threaded loop only; 0: never). */
	unsigned spin_us;
	/* -o spin=US for the io_uring queue threads, whatever the number of
	 * session threads: each CPU's thread polls only its own ring. */
	unsigned ring_spin_us;
	/* Serve requests over io_uring when the kernel offers it (not
	 * -o no_uring); uring is set once the rings are up (fuse_uring.c). */
	bool uring_want;
	struct mfs_uring *uring;
	/* Set by main: the mount's bdi ("MAJ:MIN", empty if unknown), and
	 * whether the mount is writable (then init starts fuse_space.c). */
	char bdi_dev[32];
	bool space_want;
	struct mfs_space *space;
};

/*
 * fuse_space.c: space under the writeback cache (see its header).
 * start: in init, once the writeback cache is known; 0 or -errno (then
 * there is no gate, and WRITEs that do not fit still fail). quiesce: when
 * the session loop ends (no more notifications); stop: once no thread
 * serves requests any more (the rings too), before the session goes.
 * refuse: should a GETATTR of ino with a file handle (the kernel's
 * question before a cached write(2)) fail with ENOSPC? stat: after a
 * GETATTR without one, which the gate's invalidation may need again. headroom:
 * bytes statfs keeps back for the page cache. wrote: after a writeback
 * WRITE, with the space left before and after it and whether it failed.
 */
int mfs_space_start(struct mfs_fuse *d);
void mfs_space_quiesce(struct mfs_fuse *d);
void mfs_space_stop(struct mfs_fuse *d);
bool mfs_space_refuse(struct mfs_fuse *d, uint64_t ino);
void mfs_space_stat(struct mfs_fuse *d, uint64_t ino);
uint64_t mfs_space_headroom(const struct mfs_fuse *d);
void mfs_space_wrote(struct mfs_fuse *d, uint64_t ino, uint64_t before,
		     uint64_t after, bool failed);
/* Holes nobody made: where writeback WRITEs to ino must stop (UINT64_MAX:
 * nowhere), after data from `from` on was dropped; forget: the kernel's
 * size is no longer its own (a setattr of the size, a forget). */
uint64_t mfs_space_limit(struct mfs_fuse *d, uint64_t ino);
/* Is so little left that the page cache's data may not all fit? Then
 * writeback WRITEs beyond a file's end preallocate the gap first
 * (MFS_WRITE_NO_GAP), since its pages come in any order. */
bool mfs_space_tight(struct mfs_fuse *d, uint64_t left);
void mfs_space_dropped(struct mfs_fuse *d, uint64_t ino, uint64_t from);
void mfs_space_forget(struct mfs_fuse *d, uint64_t ino);

/* The operations table, for fuse_session_new(); the session's user data
 * must be a struct mfs_fuse. */
extern const struct fuse_lowlevel_ops mfs_fuse_ops;

/* fuse_io.c. Install the request hooks on a mounted session whose user
 * data is d: 0 or -errno (then nothing changed). */
int mfs_fuse_hook_io(struct fuse_session *se, struct mfs_fuse *d);
/* In init: did the kernel offer FUSE_HANDLE_KILLPRIV_V2? */
bool mfs_fuse_io_offered_killpriv_v2(void);
/* In a handler: did the kernel flag this thread's current request (a
 * WRITE or OPEN of nodeid) for killing setuid/setgid? */
enum mfs_raw_op { MFS_RAW_WRITE, MFS_RAW_OPEN };
bool mfs_fuse_io_kill(enum mfs_raw_op op, uint64_t nodeid);

/* fuse_io.c, for fuse_uring.c: note a request this thread is about to
 * hand to libfuse, as the read hook does for /dev/fuse (which may rewrite
 * its opcode: FUSE_TMPFILE). */
void mfs_fuse_io_note(void *buf, size_t len);
/* In create: is this thread's request really FUSE_TMPFILE in directory
 * parent (fuse_io.c rewrote it as a CREATE, which libfuse knows)? */
bool mfs_fuse_io_tmpfile(uint64_t parent);

/*
 * fuse_uring.c: FUSE over io_uring. FUSE_OVER_IO_URING is bit 41 of the
 * INIT flags, i.e. this bit of flags2 (protocol 7.42; newer than Debian
 * 12's linux/fuse.h).
 */
#define OVER_IO_URING_FLAGS2 (1u << (41 - 32))
struct iovec;
/* While the INIT reply is held: start one thread and ring per CPU whose
 * payload buffers hold payload bytes. 0 (d->uring is set) or -errno. */
int mfs_uring_prepare(struct mfs_fuse *d, size_t payload);
/* After the INIT reply was written (init_sent) or failed: let the rings
 * register with the kernel, or take them down. */
void mfs_uring_go(struct mfs_fuse *d, bool init_sent);
/* In writev: if this is the reply to the ring request this thread serves,
 * store it in the ring entry, set *res and return true. */
bool mfs_uring_reply(const struct iovec *iov, int count, long *res);
/* After unmount: stop and join the ring threads. */
void mfs_uring_stop(struct mfs_fuse *d);

#endif
