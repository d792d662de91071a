/* SPDX-License-Identifier: MIT */
/*
 * probe.c — size arguments and signature detection; see probe.h.
 *
 * Layer: program helpers (mkfs, fsck, the daemon's option parsing). Calls
 * only libc and the format header.
 *
 * The signature table follows util-linux libblkid: the same offsets, the
 * same type names, so that what mkfs.mmapfs refuses to overwrite is what
 * `blkid` would report.
 */
#include "probe.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "endian.h"
#include "mmapfs/format.h"

int mfs_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGTPE";
	const char *p = s;
	uint64_t v = 0;
	unsigned shift = 0;
	const char *u;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (*p && (u = strchr(units, toupper((unsigned char)*p)))) {
		shift = 10u * (unsigned)(u - units + 1);
		p++;
		if (tolower((unsigned char)p[0]) == 'i' && tolower((unsigned char)p[1]) == 'b')
			p += 2;
		else if (tolower((unsigned char)*p) == 'b')
			p++;
	} else if (tolower((unsigned char)*p) == 'b') {
		p++;
	}
	if (*p)
		return -EINVAL;
	if (v == 0)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

/* Does buf[off, off+n) exist and equal sig? */
static bool has(const uint8_t *buf, size_t len, size_t off, const char *sig, size_t n)
{
	return off <= len && n <= len - off && memcmp(buf + off, sig, n) == 0;
}

static uint16_t le16_at(const uint8_t *buf, size_t len, size_t off)
{
	return off + 2 <= len ? mfs_get_le16(buf + off) : 0;
}

static uint32_t le32_at(const uint8_t *buf, size_t len, size_t off)
{
	return off + 4 <= len ? mfs_get_le32(buf + off) : 0;
}

/* ext2/3/4: the superblock is at byte 1024. Which name is decided the way
 * blkid does: features ext3 lacks make it ext4, a journal makes it ext3. */
#define EXT_SB 1024u
#define EXT_MAGIC_OFF (EXT_SB + 56u)
#define EXT_COMPAT_OFF (EXT_SB + 92u)
#define EXT_INCOMPAT_OFF (EXT_SB + 96u)
#define EXT_RO_COMPAT_OFF (EXT_SB + 100u)
#define EXT_MAGIC 0xef53u
#define EXT3_COMPAT_HAS_JOURNAL 0x4u
#define EXT3_INCOMPAT_JOURNAL_DEV 0x8u
/* extents, 64bit, flex_bg, mmp, ... everything after ext3's set */
#define EXT4_INCOMPAT_ONLY (0x40u | 0x80u | 0x100u | 0x200u | 0x400u | 0x1000u | \
			    0x2000u | 0x4000u | 0x8000u | 0x10000u | 0x20000u)
/* huge_file, gdt_csum, dir_nlink, extra_isize, metadata_csum, ... */
#define EXT4_RO_COMPAT_ONLY (0x8u | 0x10u | 0x20u | 0x40u | 0x400u)

static const char *probe_ext(const uint8_t *buf, size_t len)
{
	uint32_t compat, incompat, ro_compat;

	if (le16_at(buf, len, EXT_MAGIC_OFF) != EXT_MAGIC)
		return NULL;
	compat = le32_at(buf, len, EXT_COMPAT_OFF);
	incompat = le32_at(buf, len, EXT_INCOMPAT_OFF);
	ro_compat = le32_at(buf, len, EXT_RO_COMPAT_OFF);
	if (incompat & EXT3_INCOMPAT_JOURNAL_DEV)
		return "jbd";
	if ((incompat & EXT4_INCOMPAT_ONLY) || (ro_compat & EXT4_RO_COMPAT_ONLY))
		return "ext4";
	if (compat & EXT3_COMPAT_HAS_JOURNAL)
		return "ext3";
	return "ext2";
}

/* A DOS (MBR) partition table: the boot signature, and four entries whose
 * status bytes are 0x00 or 0x80 with at least one used. Checked after the
 * FAT/NTFS boot sectors, which carry the same boot signature. */
static bool probe_dos(const uint8_t *buf, size_t len)
{
	bool used = false;

	if (!has(buf, len, 510, "\x55\xaa", 2))
		return false;
	for (size_t i = 0; i < 4; i++) {
		const uint8_t *pe = buf + 446 + 16 * i;

		if (pe[0] != 0x00 && pe[0] != 0x80)
			return false;
		if (pe[4] != 0)
			used = true;
	}
	return used;
}

int mfs_probe_buffer(const void *vbuf, size_t len, char *name, size_t namelen)
{
	static const size_t swap_pages[] = { 4096, 8192, 16384, 65536 };
	const uint8_t *buf = vbuf;
	const char *found = NULL;
	uint8_t magic[8];

	mfs_put_le64(magic, MFS_SB_MAGIC);
	if (has(buf, len, 0, (const char *)magic, 8) ||
	    has(buf, len, MFS_BLOCK_SIZE, (const char *)magic, 8))
		found = "mmapfs";
	else if (has(buf, len, 0, "LUKS\xba\xbe", 6))
		found = "crypto_LUKS";
	else if (has(buf, len, 0, "XFSB", 4))
		found = "xfs";
	else if (has(buf, len, 0, "hsqs", 4))
		found = "squashfs";
	else if (has(buf, len, 65536 + 64, "_BHRfS_M", 8))
		found = "btrfs";
	else if ((found = probe_ext(buf, len)))
		;
	else if (has(buf, len, 3, "EXFAT   ", 8))
		found = "exfat";
	else if (has(buf, len, 3, "NTFS    ", 8))
		found = "ntfs";
	else if (has(buf, len, 510, "\x55\xaa", 2) &&
		 (has(buf, len, 54, "FAT12", 5) || has(buf, len, 54, "FAT16", 5) ||
		  has(buf, len, 82, "FAT32", 5)))
		found = "vfat";
	else if (has(buf, len, 32769, "CD001", 5))
		found = "iso9660";
	else if (has(buf, len, 512, "EFI PART", 8))
		found = "gpt";
	else if (probe_dos(buf, len))
		found = "dos";
	for (size_t i = 0; !found && i < sizeof(swap_pages) / sizeof(swap_pages[0]); i++) {
		size_t off = swap_pages[i] - 10;

		if (has(buf, len, off, "SWAPSPACE2", 10) || has(buf, len, off, "SWAP-SPACE", 10))
			found = "swap";
	}
	if (!found)
		return 0;
	if (namelen)
		snprintf(name, namelen, "%s", found);
	return 1;
}

int mfs_probe_signature(int fd, char *name, size_t namelen)
{
	uint8_t *buf = malloc(MFS_PROBE_BYTES);
	size_t got = 0;
	int ret;

	if (!buf)
		return -ENOMEM;
	while (got < MFS_PROBE_BYTES) {
		ssize_t n = pread(fd, buf + got, MFS_PROBE_BYTES - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out_free;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	ret = mfs_probe_buffer(buf, got, name, namelen);
out_free:
	free(buf);
	return ret;
}

char *mfs_probe_describe(const char *name, char *buf, size_t buflen)
{
	static const struct {
		const char *name;
		const char *phrase;
	} phrases[] = {
		{ "mmapfs", "an mmapfs file system" },
		{ "ext2", "an ext2 file system" },
		{ "ext3", "an ext3 file system" },
		{ "ext4", "an ext4 file system" },
		{ "xfs", "an xfs file system" },
		{ "btrfs", "a btrfs file system" },
		{ "vfat", "a vfat file system" },
		{ "exfat", "an exfat file system" },
		{ "ntfs", "an ntfs file system" },
		{ "squashfs", "a squashfs file system" },
		{ "iso9660", "an iso9660 file system" },
		{ "jbd", "an ext3/ext4 external journal" },
		{ "swap", "swap space" },
		{ "crypto_LUKS", "a LUKS encrypted volume" },
		{ "gpt", "a gpt partition table" },
		{ "dos", "a dos partition table" },
	};

	for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++) {
		if (strcmp(name, phrases[i].name) == 0) {
			snprintf(buf, buflen, "%s", phrases[i].phrase);
			return buf;
		}
	}
	snprintf(buf, buflen, "a %s signature", name);
	return buf;
}
