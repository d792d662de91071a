/* SPDX-License-Identifier: MIT */
/*
 * fuzz_args.c — harness (e): the command lines of the three programs and
 * the size strings mkfs takes.
 *
 * Input: one byte choosing the parser, then the arguments separated by
 * NUL bytes (at most 32; argv[0] is the program's name):
 *   0  mkfs.mmapfs's parse_args     1  fsck.mmapfs's parse_args
 *   2  mmapfs's mfs_mount_parse     3  mfs_parse_size (the whole rest)
 * Every parser returns "go on" or an exit status (0, or the program's
 * usage status: 2, fsck's 16; mkfs also 1 for a failed getrandom) and frees
 * what it allocated; mfs_parse_size returns 0, -EINVAL or -ERANGE, and a
 * size it accepts prints back to the same value. None of them may touch
 * a file: each only reads its arguments.
 */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fuse_lowlevel.h>

#include "fuzz.h"
#include "fuzz_args.h"
#include "mount_opts.h"
#include "probe.h"

#define MAX_ARGS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* -1 (go on), 0 (--help, --version) or the program's usage status. */
static void status_ok(const char *who, int rc, int usage)
{
	if (rc != -1 && rc != 0 && rc != usage && !(usage == 2 && rc == 1))
		fz_fail("%s: parse returned %d", who, rc);
}

static void parse_size(const char *s)
{
	uint64_t v, again;
	char buf[32];
	int rc = mfs_parse_size(s, &v);

	if (rc != 0 && rc != -EINVAL && rc != -ERANGE)
		fz_fail("mfs_parse_size(\"%s\") returned %d", s, rc);
	if (rc)
		return;
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	if (mfs_parse_size(buf, &again) || again != v)
		fz_fail("mfs_parse_size: \"%s\" is %" PRIu64 ", but \"%s\" is not",
			s, v, buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const prog[] = { "mkfs.mmapfs", "fsck.mmapfs",
					    "mmapfs" };
	char *copy, *argv[MAX_ARGS + 2];
	unsigned which;
	int argc = 0;

	if (size == 0)
		return 0;
	which = data[0] % 4;
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = 0;
	if (which == 3) {
		parse_size(copy);
		free(copy);
		return 0;
	}
	argv[argc++] = (char *)prog[which];
	for (size_t at = 0; at < size - 1 && argc <= MAX_ARGS;) {
		argv[argc++] = copy + at;
		at += strlen(copy + at) + 1;
	}
	argv[argc] = NULL;
	optind = 0; /* glibc: start getopt afresh */
	if (which == 0) {
		status_ok("mkfs", fz_mkfs_parse(argc, argv), 2);
	} else if (which == 1) {
		status_ok("fsck", fz_fsck_parse(argc, argv), 16);
	} else {
		struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
		struct fuse_conn_info_opts *conn = NULL;
		struct mfs_mount_opts o;

		status_ok("mmapfs", mfs_mount_parse(&args, &o, &conn), 2);
		mfs_mount_opts_free(&o);
		fuse_opt_free_args(&args);
		free(conn);
	}
	free(copy);
	return 0;
}
