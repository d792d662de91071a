/* SPDX-License-Identifier: MIT */
/*
 * mount_opts.h — the daemon's command line: mmapfs [-f] [-d] [-s]
 * [-o OPTION[,OPTION...]] IMAGE MOUNTPOINT.
 *
 * Layer: program (the daemon, with main.c). Knows libfuse's option parser
 * and nothing of the core. Kept apart from main.c so that the parser can be
 * tested and fuzzed without mounting anything (tests/fuzz/fuzz_args.c).
 */
#ifndef MFS_MOUNT_OPTS_H
#define MFS_MOUNT_OPTS_H

#include <stdbool.h>

struct fuse_args;
struct fuse_conn_info_opts;

struct mfs_mount_opts {
	char *image;            /* malloc'd */
	char *mountpoint;       /* malloc'd */
	unsigned commit;        /* seconds; 0: only on fsync and unmount */
	unsigned bdi_ratio;     /* bdi max_ratio to set; 0: the kernel's */
	unsigned threads;       /* session loop threads; 1: single-threaded */
	unsigned spin_us;       /* poll for requests this long before sleeping */
	bool foreground, debug, help, version;
	bool ro, sync, discard;
	bool no_uring;          /* -o no_uring: stay on /dev/fuse */
	bool have_fsname, have_subtype;
	bool bad;               /* an error was printed */
};

/*
 * Parse args (libfuse's copy of argv): connection options (max_write=,
 * ...) into *conn (malloc'd, or NULL), the daemon's own into *o; what is
 * left in args is for fuse_session_new. Always fills *o (free it with
 * mfs_mount_opts_free, whatever the result). Returns -1 to go on, 0 after
 * --help or --version (printed), or 2 for a wrong command line (one line
 * on stderr said why). Reads nothing but its arguments.
 */
int mfs_mount_parse(struct fuse_args *args, struct mfs_mount_opts *o,
		    struct fuse_conn_info_opts **conn);
void mfs_mount_opts_free(struct mfs_mount_opts *o);

#endif
