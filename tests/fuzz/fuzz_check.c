/* SPDX-License-Identifier: MIT */
/*
 * fuzz_check.c — harness (a): the full read-only check (fsck.mmapfs -f -n)
 * of a hostile image. Whatever the bytes, mfs_check returns (0 with a
 * result, or -errno), without a crash, a hang, a leak or an out-of-bounds
 * access, and writes nothing (the image is opened read-only).
 */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "fuzz.h"

static void progress(void *arg, unsigned pass, uint64_t done, uint64_t total)
{
	(void)arg;
	if (pass < 1 || pass > 5 || done > total)
		fz_fail("progress: pass %u, %llu of %llu", pass,
			(unsigned long long)done, (unsigned long long)total);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *img = fz_image(data, size);
	struct mfs_check_opts o = { .flags = MFS_CHECK_FORCE, .name = "image",
				    .progress = progress };
	struct mfs_check_result res;
	int rc;

	if (!img)
		fz_fail("cannot write the image");
	o.out = fz_devnull();
	rc = mfs_check(img, &o, &res);
	fz_check_rc("mfs_check", rc);
	if (!rc && res.modified)
		fz_fail("a read-only check wrote to the image");
	if (!rc && res.fixed)
		fz_fail("a read-only check repaired %llu problems",
			(unsigned long long)res.fixed);
	return 0;
}
