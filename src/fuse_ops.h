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
};

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

#endif
