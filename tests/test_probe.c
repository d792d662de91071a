/* SPDX-License-Identifier: MIT */
/*
 * test_probe.c — size parsing and signature detection (src/probe.c).
 *
 * Signatures are tested twice: on synthetic buffers (each magic at its
 * offset, and near misses), and on images made by the real tools
 * (e2fsprogs, dosfstools, util-linux, xfsprogs, btrfs-progs; exfatprogs
 * and squashfs-tools when present). A missing tool skips its test with a
 * message; CI installs them all.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mfs_skip.h"

#include "endian.h"
#include "mmapfs/format.h"
#include "probe.h"
#include "newfs.h"
#include "txn.h"

/* ---------------------------------------------------------------- *
 * mfs_parse_size
 * ---------------------------------------------------------------- */

static void test_parse_size_ok(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} cases[] = {
		{ "1", 1 },
		{ "65536", 65536 },
		{ "64K", 64ull << 10 },
		{ "64k", 64ull << 10 },
		{ "64KiB", 64ull << 10 },
		{ "64kib", 64ull << 10 },
		{ "64KB", 64ull << 10 },
		{ "64kb", 64ull << 10 },
		{ "64M", 64ull << 20 },
		{ "10G", 10ull << 30 },
		{ "10GiB", 10ull << 30 },
		{ "1T", 1ull << 40 },
		{ "2P", 2ull << 50 },
		{ "15E", 15ull << 60 },
		{ "4096B", 4096 },
		{ "4096b", 4096 },
		{ "007", 7 },
		{ "18446744073709551615", UINT64_MAX },
		{ "16777215T", 16777215ull << 40 },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 0;

		print_message("parse '%s'\n", cases[i].s);
		assert_int_equal(mfs_parse_size(cases[i].s, &v), 0);
		assert_true(v == cases[i].v);
	}
}

static void test_parse_size_bad(void **state)
{
	static const struct {
		const char *s;
		int err;
	} cases[] = {
		{ "", -EINVAL },
		{ "0", -EINVAL },
		{ "0K", -EINVAL },
		{ "000", -EINVAL },
		{ "-1", -EINVAL },
		{ "-64M", -EINVAL },
		{ "+64M", -EINVAL },
		{ " 64M", -EINVAL },
		{ "64M ", -EINVAL },
		{ "64 M", -EINVAL },
		{ "K", -EINVAL },
		{ "M64", -EINVAL },
		{ "64X", -EINVAL },
		{ "64MM", -EINVAL },
		{ "64Mi", -EINVAL },
		{ "64iB", -EINVAL },
		{ "64MiBx", -EINVAL },
		{ "64BB", -EINVAL },
		{ "1.5G", -EINVAL },
		{ "0x1000", -EINVAL },
		{ "1e9", -EINVAL },
		{ "18446744073709551616", -ERANGE },
		{ "99999999999999999999999", -ERANGE },
		{ "16E", -ERANGE },
		{ "16777216T", -ERANGE },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;

		print_message("parse '%s'\n", cases[i].s);
		assert_int_equal(mfs_parse_size(cases[i].s, &v), cases[i].err);
		assert_true(v == 12345); /* untouched on error */
	}
	assert_int_equal(mfs_parse_size(NULL, NULL), -EINVAL);
}

/* ---------------------------------------------------------------- *
 * mfs_probe_buffer on synthetic buffers
 * ---------------------------------------------------------------- */

#define BUFLEN MFS_PROBE_BYTES
static uint8_t buf[BUFLEN];

static int clear_buf(void **state)
{
	(void)state;
	memset(buf, 0, sizeof(buf));
	return 0;
}

static void put(size_t off, const void *s, size_t n)
{
	memcpy(buf + off, s, n);
}

/* Probe buf[0, len) and check the answer (NULL: no match). */
static void expect_len(size_t len, const char *want)
{
	char name[32] = "untouched";
	int rc = mfs_probe_buffer(buf, len, name, sizeof(name));

	if (!want) {
		assert_int_equal(rc, 0);
		return;
	}
	assert_int_equal(rc, 1);
	assert_string_equal(name, want);
}

static void expect(const char *want)
{
	expect_len(BUFLEN, want);
}

static void test_sig_none(void **state)
{
	(void)state;
	expect(NULL);
	expect_len(0, NULL);
	memset(buf, 0xa5, sizeof(buf));
	expect(NULL);
}

static void test_sig_mmapfs(void **state)
{
	uint8_t m[8];
	(void)state;

	mfs_put_le64(m, MFS_SB_MAGIC);
	assert_memory_equal(m, "MMAPFS01", 8);
	put(0, m, 8);
	expect("mmapfs");
	expect_len(7, NULL); /* magic cut short */
	clear_buf(NULL);
	/* Slot 0 damaged, slot 1 intact: still ours. */
	put(MFS_BLOCK_SIZE, m, 8);
	expect("mmapfs");
	expect_len(MFS_BLOCK_SIZE + 7, NULL);
	clear_buf(NULL);
	put(MFS_BLOCK_SIZE + 8, m, 8); /* wrong offset */
	expect(NULL);
}

static void put_ext(uint32_t compat, uint32_t incompat, uint32_t ro_compat)
{
	uint8_t b[4];

	mfs_put_le16(b, 0xef53);
	put(1024 + 56, b, 2);
	mfs_put_le32(b, compat);
	put(1024 + 92, b, 4);
	mfs_put_le32(b, incompat);
	put(1024 + 96, b, 4);
	mfs_put_le32(b, ro_compat);
	put(1024 + 100, b, 4);
}

static void test_sig_ext(void **state)
{
	(void)state;
	put_ext(0, 0x2, 0x1);             /* filetype, sparse_super */
	expect("ext2");
	put_ext(0x4, 0x2, 0x1);           /* + has_journal */
	expect("ext3");
	put_ext(0x4, 0x2 | 0x40, 0x1);    /* + extents */
	expect("ext4");
	put_ext(0x4, 0x2 | 0x80, 0x1);    /* + 64bit */
	expect("ext4");
	put_ext(0x4, 0x2 | 0x200, 0x1);   /* + flex_bg */
	expect("ext4");
	put_ext(0x0, 0x2, 0x1 | 0x400);   /* metadata_csum, no journal */
	expect("ext4");
	put_ext(0x0, 0x8, 0);             /* external journal device */
	expect("jbd");
	expect_len(1024 + 57, NULL);      /* magic cut short */
	buf[1024 + 56] = 0x52;            /* wrong magic */
	expect(NULL);
}

static void test_sig_simple(void **state)
{
	static const struct {
		size_t off;
		const char *sig;
		size_t n;
		const char *name;
	} cases[] = {
		{ 0, "XFSB", 4, "xfs" },
		{ 65536 + 64, "_BHRfS_M", 8, "btrfs" },
		{ 0, "hsqs", 4, "squashfs" },
		{ 0, "LUKS\xba\xbe", 6, "crypto_LUKS" },
		{ 32769, "CD001", 5, "iso9660" },
		{ 3, "NTFS    ", 8, "ntfs" },
		{ 3, "EXFAT   ", 8, "exfat" },
		{ 512, "EFI PART", 8, "gpt" },
		{ 4096 - 10, "SWAPSPACE2", 10, "swap" },
		{ 4096 - 10, "SWAP-SPACE", 10, "swap" },
		{ 16384 - 10, "SWAPSPACE2", 10, "swap" },
		{ 65536 - 10, "SWAPSPACE2", 10, "swap" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("%s at %zu\n", cases[i].name, cases[i].off);
		clear_buf(NULL);
		put(cases[i].off, cases[i].sig, cases[i].n);
		expect(cases[i].name);
		/* The signature must lie wholly inside the bytes read. */
		expect_len(cases[i].off + cases[i].n - 1, NULL);
		expect_len(cases[i].off + cases[i].n, cases[i].name);
		/* One byte off is not a match. */
		clear_buf(NULL);
		put(cases[i].off + 1, cases[i].sig, cases[i].n);
		expect(NULL);
	}
}

static void test_sig_fat(void **state)
{
	(void)state;
	put(54, "FAT12   ", 8);
	expect(NULL); /* no boot signature */
	put(510, "\x55\xaa", 2);
	expect("vfat");
	clear_buf(NULL);
	put(510, "\x55\xaa", 2);
	put(54, "FAT16   ", 8);
	expect("vfat");
	clear_buf(NULL);
	put(510, "\x55\xaa", 2);
	put(82, "FAT32   ", 8);
	expect("vfat");
	clear_buf(NULL);
	put(510, "\x55\xaa", 2);
	put(54, "FAT32   ", 8); /* FAT32 lives at 82, not 54 */
	expect(NULL);
}

static void test_sig_dos(void **state)
{
	(void)state;
	put(510, "\x55\xaa", 2);
	expect(NULL);             /* boot signature, no partitions */
	buf[446 + 16] = 0x80;     /* second entry: bootable, */
	buf[446 + 16 + 4] = 0x83; /* type Linux */
	expect("dos");
	buf[446] = 0x42;          /* a status byte no table has: boot code */
	expect(NULL);
	buf[446] = 0;
	buf[510] = 0;
	expect(NULL);
}

/* Where two signatures are present, the file system wins over the
 * partition table its boot sector also looks like. */
static void test_sig_precedence(void **state)
{
	(void)state;
	put(510, "\x55\xaa", 2);
	buf[446 + 4] = 0x0c;
	put(82, "FAT32   ", 8);
	expect("vfat");
	/* A hybrid ISO: a partition table and an ISO 9660 volume. */
	clear_buf(NULL);
	put(510, "\x55\xaa", 2);
	buf[446 + 4] = 0x17;
	expect("dos");
	put(32769, "CD001", 5);
	expect("iso9660");
}

static void test_describe(void **state)
{
	char b[64];
	(void)state;

	assert_string_equal(mfs_probe_describe("ext4", b, sizeof(b)), "an ext4 file system");
	assert_string_equal(mfs_probe_describe("mmapfs", b, sizeof(b)), "an mmapfs file system");
	assert_string_equal(mfs_probe_describe("btrfs", b, sizeof(b)), "a btrfs file system");
	assert_string_equal(mfs_probe_describe("swap", b, sizeof(b)), "swap space");
	assert_string_equal(mfs_probe_describe("dos", b, sizeof(b)), "a dos partition table");
	assert_string_equal(mfs_probe_describe("zfs", b, sizeof(b)), "a zfs signature");
	/* Truncation keeps the terminator. */
	assert_string_equal(mfs_probe_describe("ext4", b, 5), "an e");
}

static void test_name_truncated(void **state)
{
	char name[4] = "xxx";
	(void)state;

	put(0, "LUKS\xba\xbe", 6);
	assert_int_equal(mfs_probe_buffer(buf, BUFLEN, name, sizeof(name)), 1);
	assert_string_equal(name, "cry");
	assert_int_equal(mfs_probe_buffer(buf, BUFLEN, NULL, 0), 1);
}

/* ---------------------------------------------------------------- *
 * mfs_probe_signature on files, from real tools
 * ---------------------------------------------------------------- */

static int make_tmpdir(void **state)
{
	static char dir[4096];
	const char *base = getenv("TMPDIR");
	(void)state;

	snprintf(dir, sizeof(dir), "%s/test_probe.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	return setenv("TEST_PROBE_DIR", dir, 1);
}

static int remove_tmpdir(void **state)
{
	(void)state;
	return system("rm -rf -- \"$TEST_PROBE_DIR\"") == 0 ? 0 : -1;
}

static const char *img_path(const char *name)
{
	static char path[4200];

	snprintf(path, sizeof(path), "%s/%s", getenv("TEST_PROBE_DIR"), name);
	return path;
}

/* Is the tool there? The sbin directories are searched too: the tools
 * live there and a non-login PATH may lack them. */
static int have_tool(const char *tool)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd),
		 "PATH=\"$PATH:/usr/sbin:/sbin\" command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

/* Run a shell command in the test directory, with the sbin directories on
 * PATH. Returns its exit status (-1 if it could not run). */
static int run_in_dir(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_in_dir(const char *fmt, ...)
{
	char cmd[1024];
	int n, len;
	va_list ap;

	n = snprintf(cmd, sizeof(cmd),
		     "cd \"$TEST_PROBE_DIR\" && PATH=\"$PATH:/usr/sbin:/sbin\" && ");
	va_start(ap, fmt);
	len = vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
	va_end(ap);
	assert_true(len >= 0 && (size_t)len < sizeof(cmd) - (size_t)n);
	return system(cmd);
}

/* Make image name (size bytes, sparse) and run "tool args name" on it;
 * the test fails when the tool does. Returns 0, or -1 when the tool is
 * missing (skip). */
static int make_image(const char *tool, const char *args, const char *name, uint64_t size)
{
	if (!have_tool(tool)) {
		print_message("SKIP: %s is not installed\n", tool);
		return -1;
	}
	assert_int_equal(run_in_dir("truncate -s %llu %s", (unsigned long long)size, name), 0);
	if (run_in_dir("%s %s %s >%s.log 2>&1 </dev/null", tool, args, name, name) != 0) {
		(void)run_in_dir("cat %s.log", name);
		fail_msg("%s %s failed", tool, args);
	}
	return 0;
}

static void expect_file(const char *name, const char *want)
{
	char got[32] = "";
	int fd = open(img_path(name), O_RDONLY);
	int rc;

	assert_true(fd >= 0);
	rc = mfs_probe_signature(fd, got, sizeof(got));
	close(fd);
	if (!want) {
		assert_int_equal(rc, 0);
		return;
	}
	assert_int_equal(rc, 1);
	assert_string_equal(got, want);
}

#define TOOL_TEST(fn, tool, args, size, want)                 \
	static void fn(void **state)                          \
	{                                                     \
		(void)state;                                  \
		if (make_image(tool, args, #fn ".img", size)) \
			MFS_SKIP("%s failed or is missing\n", tool); \
		expect_file(#fn ".img", want);                \
	}

TOOL_TEST(test_tool_ext2, "mkfs.ext2", "-q -F", 8ull << 20, "ext2")
TOOL_TEST(test_tool_ext3, "mkfs.ext3", "-q -F", 8ull << 20, "ext3")
TOOL_TEST(test_tool_ext4, "mkfs.ext4", "-q -F", 8ull << 20, "ext4")
TOOL_TEST(test_tool_ext4_nojournal, "mkfs.ext4", "-q -F -O ^has_journal", 8ull << 20, "ext4")
TOOL_TEST(test_tool_vfat, "mkfs.vfat", "", 8ull << 20, "vfat")
TOOL_TEST(test_tool_vfat32, "mkfs.vfat", "-F 32", 64ull << 20, "vfat")
TOOL_TEST(test_tool_swap, "mkswap", "", 1ull << 20, "swap")
TOOL_TEST(test_tool_xfs, "mkfs.xfs", "-q -f", 512ull << 20, "xfs")
TOOL_TEST(test_tool_btrfs, "mkfs.btrfs", "-q -f", 256ull << 20, "btrfs")
TOOL_TEST(test_tool_exfat, "mkfs.exfat", "", 8ull << 20, "exfat")

static void test_tool_squashfs(void **state)
{
	(void)state;

	if (!have_tool("mksquashfs")) {
		MFS_SKIP("mksquashfs is not installed\n");
	}
	assert_int_equal(run_in_dir("mkdir -p sqdir && echo hi >sqdir/f && "
				    "mksquashfs sqdir sq.img -quiet -noappend >/dev/null 2>&1"), 0);
	expect_file("sq.img", "squashfs");
}

/* Our own format, through the real mfs_format. */
static void test_file_mmapfs(void **state)
{
	struct mfs_format_opts o = { .size = 1ull << 20 };
	(void)state;

	assert_int_equal(mfs_format(img_path("own.img"), &o), 0);
	expect_file("own.img", "mmapfs");
}

static void test_file_plain(void **state)
{
	const char *path = img_path("plain.img");
	int fd;
	(void)state;

	/* Empty. */
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	close(fd);
	expect_file("plain.img", NULL);
	/* Shorter than every signature. */
	fd = open(path, O_RDWR | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello", 5), 5);
	close(fd);
	expect_file("plain.img", NULL);
	/* A short file still shows a signature that fits in it. */
	fd = open(path, O_RDWR | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "XFSB", 4), 4);
	close(fd);
	expect_file("plain.img", "xfs");
	/* Sparse and big: zeros. */
	fd = open(path, O_RDWR | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 30), 0);
	close(fd);
	expect_file("plain.img", NULL);
	/* A signature past the 128 KiB the probe reads is not seen. */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "_BHRfS_M", 8, MFS_PROBE_BYTES + 64), 8);
	close(fd);
	expect_file("plain.img", NULL);
}

static void test_file_read_error(void **state)
{
	char name[16];
	int fd;
	(void)state;

	/* pread on a directory fails with EISDIR. */
	fd = open(getenv("TEST_PROBE_DIR"), O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(mfs_probe_signature(fd, name, sizeof(name)), -EISDIR);
	close(fd);
	assert_int_equal(mfs_probe_signature(-1, name, sizeof(name)), -EBADF);
}

int main(void)
{
	const struct CMUnitTest parse[] = {
		cmocka_unit_test(test_parse_size_ok),
		cmocka_unit_test(test_parse_size_bad),
	};
	const struct CMUnitTest sigs[] = {
		cmocka_unit_test_setup(test_sig_none, clear_buf),
		cmocka_unit_test_setup(test_sig_mmapfs, clear_buf),
		cmocka_unit_test_setup(test_sig_ext, clear_buf),
		cmocka_unit_test_setup(test_sig_simple, clear_buf),
		cmocka_unit_test_setup(test_sig_fat, clear_buf),
		cmocka_unit_test_setup(test_sig_dos, clear_buf),
		cmocka_unit_test_setup(test_sig_precedence, clear_buf),
		cmocka_unit_test_setup(test_name_truncated, clear_buf),
		cmocka_unit_test(test_describe),
	};
	const struct CMUnitTest files[] = {
		cmocka_unit_test(test_file_plain),
		cmocka_unit_test(test_file_read_error),
		cmocka_unit_test(test_file_mmapfs),
		cmocka_unit_test(test_tool_ext2),
		cmocka_unit_test(test_tool_ext3),
		cmocka_unit_test(test_tool_ext4),
		cmocka_unit_test(test_tool_ext4_nojournal),
		cmocka_unit_test(test_tool_vfat),
		cmocka_unit_test(test_tool_vfat32),
		cmocka_unit_test(test_tool_swap),
		cmocka_unit_test(test_tool_xfs),
		cmocka_unit_test(test_tool_btrfs),
		cmocka_unit_test(test_tool_exfat),
		cmocka_unit_test(test_tool_squashfs),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("parse_size", parse, NULL, NULL);
	failed += cmocka_run_group_tests_name("signatures", sigs, NULL, NULL);
	failed += cmocka_run_group_tests_name("files", files, make_tmpdir, remove_tmpdir);
	return mfs_test_exit(failed);
}
