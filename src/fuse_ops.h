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

struct mfs_fs;
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
};

/* The operations table, for fuse_session_new(); the session's user data
 * must be a struct mfs_fuse. */
extern const struct fuse_lowlevel_ops mfs_fuse_ops;

#endif
