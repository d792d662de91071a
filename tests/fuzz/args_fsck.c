/* SPDX-License-Identifier: MIT */
/*
 * args_fsck.c — fsck.mmapfs's command-line parser, for fuzz_args (the
 * program's own source with its main() renamed, as args_mkfs.c does).
 */
#include "fuzz_args.h"

int fsck_program_main(int argc, char **argv);
#define main fsck_program_main
#include "../../src/fsck.c"
#undef main

int fz_fsck_parse(int argc, char **argv)
{
	struct mfs_check_opts o = { 0 };
	struct progress prog = { -1, NULL };
	char mode = 0;

	return parse_args(argc, argv, &o, &prog, &mode);
}
