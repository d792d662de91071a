/* SPDX-License-Identifier: MIT */
/*
 * args_mkfs.c — mkfs.mmapfs's command-line parser, for fuzz_args: the
 * program's own source with its main() renamed, so that the harness calls
 * the very parse_args the program runs (static there).
 */
#include "fuzz_args.h"

int mkfs_program_main(int argc, char **argv);
#define main mkfs_program_main
#include "../../src/mkfs.c"
#undef main

int fz_mkfs_parse(int argc, char **argv)
{
	struct mkfs_args a;

	memset(&a, 0, sizeof(a));
	return parse_args(argc, argv, &a);
}
