/* SPDX-License-Identifier: MIT */
/*
 * mount_opts.c — the daemon's command line (contract in mount_opts.h).
 *
 * Layer: program. Every option the daemon takes is in opt_spec; options
 * libfuse itself takes are listed in libfuse_opts and passed on; anything
 * else is refused here, with the option named, so that the error is ours
 * and clear.
 */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fuse_lowlevel.h>

#include "mount_opts.h"

#ifndef MMAPFS_VERSION
#define MMAPFS_VERSION "unknown"
#endif

#define EXIT_USAGE 2

#define COMMIT_DEFAULT 5u
/* A year: longer intervals are surely typos. */
#define COMMIT_MAX (366u * 86400u)
/* The mount's share of the dirty page cache, percent (see set_bdi). */
#define BDI_RATIO_DEFAULT 50u
/* Polling for the next request before sleeping, microseconds (see
 * fuse_io.c): long enough to bridge a program's turnaround between two
 * system calls, short enough to cost nothing when it stops. */
#define SPIN_DEFAULT 50u
#define SPIN_MAX 10000u


enum {
	KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG, KEY_SINGLE,
	KEY_COMMIT, KEY_RO, KEY_RW, KEY_SYNC, KEY_ASYNC, KEY_FSNAME,
	KEY_SUBTYPE, KEY_DROP, KEY_BDI_RATIO, KEY_DISCARD, KEY_NODISCARD,
	KEY_THREADS, KEY_SPIN, KEY_URING, KEY_NO_URING,
};

static const struct fuse_opt opt_spec[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	FUSE_OPT_KEY("commit=", KEY_COMMIT),
	FUSE_OPT_KEY("bdi_max_ratio=", KEY_BDI_RATIO),
	FUSE_OPT_KEY("threads=", KEY_THREADS),
	FUSE_OPT_KEY("spin=", KEY_SPIN),
	FUSE_OPT_KEY("uring", KEY_URING),
	FUSE_OPT_KEY("no_uring", KEY_NO_URING),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("-r", KEY_RO),
	FUSE_OPT_KEY("rw", KEY_RW),
	FUSE_OPT_KEY("-w", KEY_RW),
	FUSE_OPT_KEY("sync", KEY_SYNC),
	FUSE_OPT_KEY("async", KEY_ASYNC),
	FUSE_OPT_KEY("discard", KEY_DISCARD),
	FUSE_OPT_KEY("nodiscard", KEY_NODISCARD),
	FUSE_OPT_KEY("fsname=", KEY_FSNAME),
	FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
	/* Always on; accepted for fstab lines that say it. */
	FUSE_OPT_KEY("default_permissions", KEY_DROP),
	/* fstab and mount(8) words that mean nothing to the daemon. */
	FUSE_OPT_KEY("defaults", KEY_DROP),
	FUSE_OPT_KEY("auto", KEY_DROP),
	FUSE_OPT_KEY("noauto", KEY_DROP),
	FUSE_OPT_KEY("nofail", KEY_DROP),
	FUSE_OPT_KEY("_netdev", KEY_DROP),
	FUSE_OPT_KEY("user", KEY_DROP),
	FUSE_OPT_KEY("nouser", KEY_DROP),
	FUSE_OPT_KEY("users", KEY_DROP),
	FUSE_OPT_KEY("owner", KEY_DROP),
	FUSE_OPT_KEY("group", KEY_DROP),
	FUSE_OPT_KEY("comment=", KEY_DROP),
	/* libfuse 2's; FUSE 3 always mounts over non-empty directories. */
	FUSE_OPT_KEY("nonempty", KEY_DROP),
	FUSE_OPT_END
};

/* Options libfuse itself takes (lib/mount.c, fuse_session_new), passed on
 * unchanged. "name=" matches any value. Anything else is refused here, so
 * that the error is ours and clear. */
static const char *const libfuse_opts[] = {
	"allow_other", "allow_root", "auto_unmount", "max_read=",
	"context=", "fscontext=", "defcontext=", "rootcontext=",
	"suid", "nosuid", "dev", "nodev", "exec", "noexec", "dirsync",
	"atime", "noatime", "diratime", "nodiratime", "lazytime",
	"nolazytime", "relatime", "norelatime", "strictatime",
	"nostrictatime", NULL
};

static bool is_libfuse_opt(const char *arg)
{
	const char *const *o;

	for (o = libfuse_opts; *o; o++) {
		size_t n = strlen(*o);

		if ((*o)[n - 1] == '=' ? strncmp(arg, *o, n) == 0
				       : strcmp(arg, *o) == 0)
			return true;
	}
	return false;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: mmapfs [OPTIONS] IMAGE MOUNTPOINT\n"
"Mount the mmapfs file system in the image file IMAGE on MOUNTPOINT.\n"
"\n"
"  -f                 stay in the foreground, log to stderr\n"
"  -d                 debug: log every FUSE request (implies -f)\n"
"  -s                 serve requests in one thread (the default; same as\n"
"                     -o threads=1)\n"
"  -o OPTION[,...]    mount options:\n"
"       ro, rw          mount read-only / read-write (default)\n"
"       commit=SECONDS  commit changes every SECONDS (default %u; 0: only\n"
"                       on fsync, sync and unmount)\n"
"       sync            commit every change before it returns\n"
"       discard         give the space of deleted data back to the host\n"
"                       (punch holes in IMAGE); nodiscard (default) keeps it\n"
"       bdi_max_ratio=N the mount's share of the dirty page cache, percent\n"
"                       (default %u; 0: leave the kernel's 1%% for FUSE)\n"
"       threads=N       serve requests with up to N threads (default 1)\n"
"       spin=US         with one thread, poll for the next request for US\n"
"                       microseconds before sleeping (default %u; 0: never)\n"
"       uring, no_uring serve requests over io_uring, one queue per CPU,\n"
"                       when the kernel offers it (default: uring; the\n"
"                       kernel offers it when the fuse module's parameter\n"
"                       enable_uring is Y) / only through /dev/fuse\n"
"       allow_other     let other users access the mount\n"
"       fsname=NAME     source shown in /proc/mounts (default: IMAGE)\n"
"       and libfuse's: allow_root, auto_unmount, max_read=N, max_write=N,\n"
"       nosuid/suid, nodev/dev, noexec/exec, noatime, ..., subtype=NAME\n"
"       (default_permissions is always on)\n"
"  -V, --version      print the version and exit\n"
"  -h, --help         print this help and exit\n"
"\n"
"Also: mount -t fuse.mmapfs IMAGE MOUNTPOINT [-o OPTIONS], or an fstab line\n"
"  IMAGE MOUNTPOINT fuse.mmapfs OPTIONS 0 0\n"
"Unmount with umount MOUNTPOINT or fusermount3 -u MOUNTPOINT.\n"
"\n"
"Exit status: 0 success, 1 failure, 2 command line error.\n",
		COMMIT_DEFAULT, BDI_RATIO_DEFAULT, SPIN_DEFAULT);
}

/* A decimal number from 0 to max. Returns 0 or -1. */
static int parse_uint(const char *val, unsigned long max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*val < '0' || *val > '9')
		return -1;
	errno = 0;
	v = strtoul(val, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_commit(const char *val, unsigned *out)
{
	return parse_uint(val, COMMIT_MAX, out);
}

/* Session loop threads: more only pay off with many CPUs (see main()). */
#define THREADS_MAX 256u

static int parse_threads(const char *val, unsigned *out)
{
	if (parse_uint(val, THREADS_MAX, out) || *out < 1)
		return -1;
	return 0;
}

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct mfs_mount_opts *o = data;

	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		/* arg does not outlive the call */
		if (!o->image) {
			o->image = strdup(arg);
			return o->image ? 0 : -1;
		} else if (!o->mountpoint) {
			o->mountpoint = strdup(arg);
			return o->mountpoint ? 0 : -1;
		} else {
			fprintf(stderr, "mmapfs: %s: unexpected argument "
				"(try 'mmapfs --help')\n", arg);
			o->bad = true;
			return -1;
		}
		return 0;
	case KEY_HELP:
		o->help = true;
		return 0;
	case KEY_VERSION:
		o->version = true;
		return 0;
	case KEY_FOREGROUND:
		o->foreground = true;
		return 0;
	case KEY_DEBUG:
		o->debug = o->foreground = true;
		return 0;
	case KEY_SINGLE:
		o->threads = 1;
		return 0;
	case KEY_THREADS:
		if (parse_threads(arg + strlen("threads="), &o->threads)) {
			fprintf(stderr, "mmapfs: -o %s: not a number of "
				"threads from 1 to %u\n", arg, THREADS_MAX);
			o->bad = true;
			return -1;
		}
		return 0;
	case KEY_SPIN:
		if (parse_uint(arg + strlen("spin="), SPIN_MAX, &o->spin_us)) {
			fprintf(stderr, "mmapfs: -o %s: not a number of "
				"microseconds from 0 to %u\n", arg, SPIN_MAX);
			o->bad = true;
			return -1;
		}
		return 0;
	case KEY_URING:
		o->no_uring = false;
		return 0;
	case KEY_NO_URING:
		o->no_uring = true;
		return 0;
	case KEY_COMMIT:
		if (parse_commit(arg + strlen("commit="), &o->commit)) {
			fprintf(stderr, "mmapfs: -o %s: not a number of "
				"seconds from 0 to %u\n", arg, COMMIT_MAX);
			o->bad = true;
			return -1;
		}
		return 0;
	case KEY_BDI_RATIO:
		if (parse_uint(arg + strlen("bdi_max_ratio="), 100,
			       &o->bdi_ratio)) {
			fprintf(stderr, "mmapfs: -o %s: not a percentage from "
				"0 to 100\n", arg);
			o->bad = true;
			return -1;
		}
		return 0;
	case KEY_RO:
		o->ro = true;
		return fuse_opt_add_arg(outargs, "-oro") ? -1 : 0;
	case KEY_RW:
		o->ro = false;
		return fuse_opt_add_arg(outargs, "-orw") ? -1 : 0;
	case KEY_SYNC:
		/* Ours (commit per change) and the kernel's (MS_SYNCHRONOUS:
		 * each write(2) is followed by an fsync). */
		o->sync = true;
		return 1;
	case KEY_ASYNC:
		o->sync = false;
		return 1;
	case KEY_DISCARD:
		o->discard = true;
		return 0;
	case KEY_NODISCARD:
		o->discard = false;
		return 0;
	case KEY_FSNAME:
		o->have_fsname = true;
		return 1;
	case KEY_SUBTYPE:
		o->have_subtype = true;
		return 1;
	case KEY_DROP:
		return 0;
	case FUSE_OPT_KEY_OPT:
		if (arg[0] != '-' && is_libfuse_opt(arg))
			return 1;
		if (strncmp(arg, "x-", 2) == 0) /* fstab hints (x-systemd.*) */
			return 0;
		if (arg[0] == '-')
			fprintf(stderr, "mmapfs: %s: unknown option "
				"(try 'mmapfs --help')\n", arg);
		else
			fprintf(stderr, "mmapfs: -o %s: unknown mount option "
				"(try 'mmapfs --help')\n", arg);
		o->bad = true;
		return -1;
	}
	return 1;
}

int mfs_mount_parse(struct fuse_args *args, struct mfs_mount_opts *o,
		    struct fuse_conn_info_opts **conn)
{
	*o = (struct mfs_mount_opts){ .commit = COMMIT_DEFAULT,
				      .bdi_ratio = BDI_RATIO_DEFAULT,
				      .threads = 1, .spin_us = SPIN_DEFAULT };
	/* Connection options (max_write=, no_writeback_cache, ...) first:
	 * libfuse applies them in init; the rest are ours or mount options. */
	*conn = fuse_parse_conn_info_opts(args);
	if (!*conn) {
		fprintf(stderr, "mmapfs: invalid connection option "
			"(try 'mmapfs --help')\n");
		return EXIT_USAGE;
	}
	if (fuse_opt_parse(args, o, opt_spec, opt_proc) != 0) {
		if (!o->bad)
			fprintf(stderr, "mmapfs: invalid command line "
				"(try 'mmapfs --help')\n");
		return EXIT_USAGE;
	}
	if (o->help) {
		usage(stdout);
		return 0;
	}
	if (o->version) {
		printf("mmapfs %s (libfuse %s)\n", MMAPFS_VERSION,
		       fuse_pkgversion());
		return 0;
	}
	if (!o->image || !o->mountpoint) {
		fprintf(stderr, "mmapfs: missing %s (usage: mmapfs [OPTIONS] "
			"IMAGE MOUNTPOINT)\n", o->image ? "MOUNTPOINT" : "IMAGE");
		return EXIT_USAGE;
	}
	return -1;
}

void mfs_mount_opts_free(struct mfs_mount_opts *o)
{
	free(o->image);
	free(o->mountpoint);
	o->image = o->mountpoint = NULL;
}
