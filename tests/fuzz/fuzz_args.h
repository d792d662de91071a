/* SPDX-License-Identifier: MIT */
/*
 * fuzz_args.h — the programs' command-line parsers, as fuzz_args calls
 * them. Each returns what the program's parser returns: -1 to go on, or
 * the exit status it would exit with.
 */
#ifndef MFS_FUZZ_ARGS_H
#define MFS_FUZZ_ARGS_H

int fz_mkfs_parse(int argc, char **argv);
int fz_fsck_parse(int argc, char **argv);

#endif
