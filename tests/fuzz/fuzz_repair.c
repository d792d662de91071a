/* SPDX-License-Identifier: MIT */
/*
 * fuzz_repair.c — harness (d): repair a hostile image (fsck.mmapfs -f -y),
 * then hold the repair to its word. When the repair ran and reported
 * every problem fixed, a second full check must find nothing (repair
 * converges in one run, as e2fsck's does) and the image must open and
 * close read-write as a mount would. An image the checker cannot open
 * (no valid superblock, an unknown feature) is refused, which is fine.
 */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *img = fz_image(data, size);
	struct mfs_check_opts o = { .flags = MFS_CHECK_FORCE | MFS_CHECK_REPAIR,
				    .name = "image" };
	struct mfs_check_result res, again;
	struct mfs_fs *fs;
	int rc;

	if (!img)
		fz_fail("cannot write the image");
	o.out = fz_devnull();
	rc = mfs_check(img, &o, &res);
	fz_check_rc("mfs_check -y", rc);
	if (rc || res.repair_failed || res.unfixed)
		return 0;
	if (res.fixed != res.problems)
		fz_fail("repair: %llu problems, %llu fixed, %llu left",
			(unsigned long long)res.problems,
			(unsigned long long)res.fixed,
			(unsigned long long)res.unfixed);
	o.flags = MFS_CHECK_FORCE;
	rc = mfs_check(img, &o, &again);
	if (rc)
		fz_fail("the repaired image cannot be checked: %d (%s)", rc,
			again.error);
	if (again.problems)
		fz_fail("repair does not converge: %llu problems fixed, then "
			"%llu found", (unsigned long long)res.problems,
			(unsigned long long)again.problems);
	rc = mfs_fs_probe(img);
	if (rc)
		fz_fail("a mount would refuse the repaired image: %d", rc);
	rc = mfs_fs_open(img, MFS_FS_NOLOCK, &fs);
	if (rc)
		fz_fail("the repaired image does not open: %d", rc);
	rc = mfs_fs_close(fs);
	if (rc)
		fz_fail("the repaired image does not close: %d", rc);
	return 0;
}
