/* SPDX-License-Identifier: MIT */
/*
 * fsck.c — fsck.mmapfs: check and repair an mmapfs image.
 *
 * Layer: program. Parses the command line and hands over to mfs_check()
 * (check.h), which does the work. Behaves like e2fsck where that makes
 * sense: -n (check only, open read-only), -y (repair everything), -p / -a
 * (repair automatically, terse), -f (check even a clean image), -C FD
 * (progress lines "pass done total name" on FD, as fsck(8) expects), -v;
 * and fsck(8)'s exit codes, so that `fsck -t mmapfs IMAGE` works.
 *
 * Exit status (a sum, as fsck(8) defines it): 0 no errors; 1 errors
 * corrected; 4 errors left uncorrected; 8 operational error; 16 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"

#ifndef MMAPFS_VERSION
#define MMAPFS_VERSION "unknown"
#endif

#define PROG "fsck.mmapfs"

#define EXIT_OK 0
#define EXIT_CORRECTED 1
#define EXIT_UNCORRECTED 4
#define EXIT_OPERATIONAL 8
#define EXIT_USAGE 16

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " [-n | -y | -p] [-f] [-C FD] [-v] IMAGE\n"
		"Check an mmapfs image and repair it.\n"
		"\n"
		"  -n      check only: open the image read-only, change nothing\n"
		"  -y      repair every problem found\n"
		"  -p, -a  repair automatically (every repair is safe), print little\n"
		"  -f      check even if the image is marked clean\n"
		"  -C FD   write progress lines \"pass done total IMAGE\" to FD\n"
		"          (0: standard output)\n"
		"  -v      verbose: details and statistics\n"
		"  -V      print the version and exit\n"
		"  -h      print this help and exit\n"
		"\n"
		"Without -n, -y or -p the image is checked read-only and, on a\n"
		"terminal, you are asked whether to repair what was found.\n"
		"\n"
		"Exit status: 0 no errors, 1 errors corrected, 4 errors left\n"
		"uncorrected, 8 operational error, 16 usage error.\n");
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry '" PROG " -h' for more information.\n");
	return EXIT_USAGE;
}

struct progress {
	int fd;
	const char *name;
};

static void progress(void *arg, unsigned pass, uint64_t done, uint64_t total)
{
	struct progress *p = arg;

	if (p->fd == 0) {
		printf("%u %llu %llu %s\n", pass, (unsigned long long)done,
		       (unsigned long long)total, p->name);
		fflush(stdout);
	} else {
		dprintf(p->fd, "%u %llu %llu %s\n", pass, (unsigned long long)done,
			(unsigned long long)total, p->name);
	}
}

/* Why the check could not run, in one line (or two for a hint). */
static void open_failed(const char *name, int rc, const char *why)
{
	if (rc == -EBUSY) {
		fprintf(stderr, PROG ": %s is in use (mounted?)\n", name);
		return;
	}
	if (why[0])
		fprintf(stderr, PROG ": %s\n", why);
	else
		fprintf(stderr, PROG ": %s: %s\n", name, strerror(-rc));
	if (rc == -EUCLEAN)
		fprintf(stderr, PROG ": %s: cannot check it without a valid "
			"superblock; there are no backup superblocks to search\n",
			name);
}

static bool ask(const char *question)
{
	char line[64];

	printf("%s [y/N] ", question);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	return line[0] == 'y' || line[0] == 'Y';
}

static void summary(const char *name, const struct mfs_check_result *r,
		    bool preen)
{
	if (!preen && r->modified)
		printf("\n%s: ***** FILE SYSTEM WAS MODIFIED *****\n", name);
	if (!preen && r->unfixed)
		printf("\n%s: ********** WARNING: Filesystem still has errors "
		       "**********\n\n", name);
	printf("%s: %llu files, %llu/%llu blocks\n", name,
	       (unsigned long long)r->files, (unsigned long long)r->blocks_used,
	       (unsigned long long)r->blocks_total);
}

static int exit_code(const struct mfs_check_result *r)
{
	int code = EXIT_OK;

	if (r->fixed || r->modified)
		code |= EXIT_CORRECTED;
	if (r->unfixed)
		code |= EXIT_UNCORRECTED;
	if (r->repair_failed)
		code |= EXIT_OPERATIONAL;
	return code;
}

/* The command line into *o, *prog and *mode ('n', 'y', 'p' or 0). Returns
 * -1 to go on, or the exit status (after -V and -h: 0; a wrong command
 * line: EXIT_USAGE, one line on stderr). Reads nothing but argv (and
 * whether -C's descriptor is open). */
static int parse_args(int argc, char **argv, struct mfs_check_opts *o,
		      struct progress *prog, char *mode)
{
	int opt;

	opterr = 0;
	while ((opt = getopt(argc, argv, ":nypafC:vVh")) != -1) {
		char m = 0;

		switch (opt) {
		case 'n': m = 'n'; break;
		case 'y': m = 'y'; break;
		case 'p': case 'a': m = 'p'; break;
		case 'f': o->flags |= MFS_CHECK_FORCE; break;
		case 'v': o->flags |= MFS_CHECK_VERBOSE; break;
		case 'C': {
			char *end;
			long fd;

			errno = 0;
			fd = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || fd < 0 || fd > 65535)
				return usage_error("-C: '%s' is not a file descriptor",
						   optarg);
			if (fd != 0 && fcntl((int)fd, F_GETFD) < 0)
				return usage_error("-C: file descriptor %s is not open",
						   optarg);
			prog->fd = (int)fd;
			break;
		}
		case 'V':
			printf(PROG " %s (mmapfs)\n", MMAPFS_VERSION);
			return EXIT_OK;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case ':':
			return usage_error("option -%s needs an argument",
					   (char[]){ (char)optopt, 0 });
		default:
			return usage_error("unknown option -%s",
					   (char[]){ (char)optopt, 0 });
		}
		if (m) {
			if (*mode && *mode != m)
				return usage_error("%s", "only one of -n, -y and -p "
						   "may be given");
			*mode = m;
		}
	}
	if (optind >= argc)
		return usage_error("%s", "no image given");
	if (optind + 1 < argc)
		return usage_error("unexpected argument '%s' (one image at a time)",
				   argv[optind + 1]);

	o->name = argv[optind];
	return -1;
}

int main(int argc, char **argv)
{
	struct mfs_check_opts o = { 0 };
	struct mfs_check_result r;
	struct progress prog = { -1, NULL };
	char mode = 0;
	int rc;

	mfs_log_set_progname(PROG);
	rc = parse_args(argc, argv, &o, &prog, &mode);
	if (rc >= 0)
		return rc;
	o.out = stdout;
	if (prog.fd >= 0) {
		prog.name = o.name;
		o.progress = progress;
		o.progress_arg = &prog;
	}
	if (mode == 'y' || mode == 'p')
		o.flags |= MFS_CHECK_REPAIR;
	if (mode == 'p')
		o.flags |= MFS_CHECK_PREEN;
	if (!mode && !(isatty(0) && isatty(1))) {
		fprintf(stderr, PROG ": need a terminal for interactive repairs; "
			"use -n, -y or -p\n");
		return EXIT_OPERATIONAL;
	}

	rc = mfs_check(o.name, &o, &r);
	if (rc) {
		open_failed(o.name, rc, r.error);
		return EXIT_OPERATIONAL;
	}
	if (r.skipped_clean) {
		printf("%s: clean, %llu files, %llu/%llu blocks\n", o.name,
		       (unsigned long long)r.files,
		       (unsigned long long)r.blocks_used,
		       (unsigned long long)r.blocks_total);
		return EXIT_OK;
	}
	if (!mode && r.unfixed && !r.repair_failed) {
		char q[96];

		snprintf(q, sizeof(q), "\nRepair what was found (%llu problem%s)?",
			 (unsigned long long)r.unfixed, r.unfixed == 1 ? "" : "s");
		if (ask(q)) {
			o.flags |= MFS_CHECK_REPAIR | MFS_CHECK_FORCE;
			rc = mfs_check(o.name, &o, &r);
			if (rc) {
				open_failed(o.name, rc, r.error);
				return EXIT_OPERATIONAL;
			}
		}
	}
	summary(o.name, &r, mode == 'p');
	return exit_code(&r);
}
