/* SPDX-License-Identifier: MIT */
/*
 * mfs_skip.h — a CMocka skip that meson sees.
 *
 * meson counts a program that exits 0 as passed, and CMocka's skip() only
 * marks the one test: a suite whose precondition is missing (tmpfs under
 * the image, no root, a tool not installed) passed silently. MFS_SKIP
 * says why, counts the skip and skips; mfs_test_exit() turns the run's
 * result into the exit status: 1 if anything failed, else 77 (meson's
 * SKIP) if anything was skipped, else 0. Include after <cmocka.h>, in one
 * test program (one translation unit).
 */
#ifndef MFS_SKIP_H
#define MFS_SKIP_H

static unsigned mfs_skipped;

#define MFS_SKIP(...) do { \
	print_message("SKIP: " __VA_ARGS__); \
	mfs_skipped++; \
	skip(); \
} while (0)

static inline int mfs_test_exit(int failed)
{
	if (failed)
		return 1;
	if (mfs_skipped) {
		print_message("%u test(s) skipped: exit 77 (meson: SKIP)\n",
			      mfs_skipped);
		return 77;
	}
	return 0;
}

#endif
