/* SPDX-License-Identifier: MIT */
/*
 * fuzz_probe.c — harness (f): mkfs's signature probe (mfs_probe_buffer),
 * which reads the first 128 KiB of whatever file mkfs is pointed at, on
 * any bytes. A match names one of the documented types, terminated, and
 * describes itself in words; nothing is read outside the buffer (the
 * input is copied to a buffer of exactly its length, so ASan sees any
 * overrun).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const known[] = {
		"mmapfs", "ext2", "ext3", "ext4", "jbd", "xfs", "btrfs", "vfat",
		"exfat", "ntfs", "swap", "squashfs", "crypto_LUKS", "iso9660",
		"gpt", "dos", NULL };
	char name[32], small[3], words[128];
	uint8_t *buf;
	int rc;

	if (size > MFS_PROBE_BYTES)
		size = MFS_PROBE_BYTES;
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	rc = mfs_probe_buffer(buf, size, name, sizeof(name));
	if (rc != 0 && rc != 1)
		fz_fail("mfs_probe_buffer returned %d", rc);
	if (rc == 1) {
		const char *const *k;

		if (!memchr(name, 0, sizeof(name)))
			fz_fail("probe: the name is not terminated");
		for (k = known; *k && strcmp(*k, name); k++)
			;
		if (!*k)
			fz_fail("probe: '%s' is not a documented type", name);
		mfs_probe_describe(name, words, sizeof(words));
		if (!memchr(words, 0, sizeof(words)) || !words[0])
			fz_fail("probe: no words for '%s'", name);
		/* A short name buffer truncates, terminated. */
		if (mfs_probe_buffer(buf, size, small, sizeof(small)) != 1 ||
		    small[sizeof(small) - 1] != 0)
			fz_fail("probe: a 3-byte name buffer is not terminated");
	}
	free(buf);
	return 0;
}
