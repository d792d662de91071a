/* SPDX-License-Identifier: MIT */
/*
 * fuzz_change.c — harness (c): open a hostile image read-write and run a
 * fixed mix of changes through the core API (create, write over existing
 * data and past the end, truncate, rename and exchange, unlink, rmdir,
 * link, symlink, setxattr and removexattr, fallocate in every mode,
 * copy_file_range), commit, close, reopen and close again. Every call
 * returns 0 or -errno: a damaged structure met on the way is EIO (or the
 * volume turning read-only), never a crash, a hang, a leak or a write
 * outside the image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define FL_KEEP_SIZE 0x01
#define FL_PUNCH_HOLE 0x02
#define FL_ZERO_RANGE 0x10

static uint8_t buf[3 * 4096 + 100];

/* The inode of path (components under the root), or 0. */
static uint64_t find(struct mfs_fs *fs, const char *path)
{
	char part[256];
	uint64_t ino = MFS_ROOT;
	struct mfs_attr a;

	while (*path) {
		size_t n = strcspn(path, "/");
		int rc;

		if (n == 0 || n >= sizeof(part))
			return 0;
		memcpy(part, path, n);
		part[n] = 0;
		path += n + (path[n] == '/');
		rc = mfs_lookup(fs, ino, part, &a);
		fz_check_rc("mfs_lookup", rc);
		if (rc)
			return 0;
		/* The walk keeps no references: a lookup count is given back
		 * at once (the inode stays cached while the fs is open). */
		mfs_forget(fs, a.ino, 1);
		ino = a.ino;
	}
	return ino;
}

static void wr(struct mfs_fs *fs, uint64_t ino, uint64_t off, size_t len,
	       unsigned flags)
{
	size_t n;
	int rc;

	if (!ino)
		return;
	rc = mfs_open(fs, &fz_cred, ino, O_RDWR);
	fz_check_rc("mfs_open", rc);
	if (rc)
		return;
	rc = mfs_write(fs, &fz_cred, ino, off, buf, len, flags, &n);
	fz_check_rc("mfs_write", rc);
	if (!rc && n > len)
		fz_fail("mfs_write wrote %zu of %zu bytes", n, len);
	fz_check_rc("mfs_fsync", mfs_fsync(fs, ino, true));
	fz_check_rc("mfs_release", mfs_release(fs, ino));
}

static void truncate_to(struct mfs_fs *fs, uint64_t ino, uint64_t size)
{
	struct mfs_attr in = { .size = size }, out;

	if (ino)
		fz_check_rc("mfs_setattr size",
			    mfs_setattr(fs, &fz_cred, ino, &in, MFS_SET_SIZE,
					&out));
}

static void changes(struct mfs_fs *fs)
{
	uint64_t dir = find(fs, "dir"), x = find(fs, "x");
	uint64_t frag = find(fs, "frag"), other = find(fs, "other");
	uint64_t sparse = find(fs, "sub/deep/sparse"), sub = find(fs, "sub");
	struct mfs_attr a, in = { 0 };
	size_t n;
	int rc;

	/* Overwrites in place: the data the hostile extents point at. */
	wr(fs, frag, 4096 + 100, 2 * 4096, 0);
	wr(fs, x, 0, 100, 0);
	wr(fs, sparse, 10 * 4096, 5000, 0);
	wr(fs, other, 0, 10, MFS_WRITE_APPEND);
	truncate_to(fs, frag, 3 * 4096 + 17);
	truncate_to(fs, other, 100 * 4096);
	truncate_to(fs, sparse, 0);
	if (other) {
		fz_check_rc("mfs_fallocate", mfs_fallocate(fs, other, 0, 0, 8192));
		fz_check_rc("mfs_fallocate keep",
			    mfs_fallocate(fs, other, FL_KEEP_SIZE, 0, 1 << 20));
		fz_check_rc("mfs_fallocate punch",
			    mfs_fallocate(fs, other, FL_PUNCH_HOLE | FL_KEEP_SIZE,
					  4096, 3 * 4096));
		fz_check_rc("mfs_fallocate zero",
			    mfs_fallocate(fs, other, FL_ZERO_RANGE, 100, 9000));
	}
	if (frag && other)
		fz_check_rc("mfs_copy_file_range",
			    mfs_copy_file_range(fs, frag, 0, other, 4096,
						5 * 4096, &n));

	/* Names. */
	if (dir) {
		rc = mfs_create(fs, &fz_cred, dir, "new", 0644, O_RDWR, &a);
		fz_check_rc("mfs_create", rc);
		if (!rc) {
			size_t w;

			rc = mfs_write(fs, &fz_cred, a.ino, 0, buf, sizeof(buf),
				       0, &w);
			fz_check_rc("mfs_write new", rc);
			fz_check_rc("mfs_release",
				    mfs_release(fs, a.ino));
			mfs_forget(fs, a.ino, 1);
		}
		fz_check_rc("mfs_unlink", mfs_unlink(fs, dir, "f001"));
		fz_check_rc("mfs_unlink", mfs_unlink(fs, dir, "f010"));
		fz_check_rc("mfs_rename",
			    mfs_rename(fs, dir, "f002", MFS_ROOT, "moved", 0));
		fz_check_rc("mfs_rename over",
			    mfs_rename(fs, dir, "f003", dir, "f004", 0));
		fz_check_rc("mfs_rename exchange",
			    mfs_rename(fs, MFS_ROOT, "x", dir, "f005",
				       MFS_RENAME_EXCHANGE));
		rc = mfs_mkdir(fs, &fz_cred, dir, "newdir", 0755, &a);
		fz_check_rc("mfs_mkdir", rc);
		if (!rc)
			mfs_forget(fs, a.ino, 1);
		fz_check_rc("mfs_rename dir",
			    mfs_rename(fs, MFS_ROOT, "sub", dir, "sub2", 0));
	}
	if (x) {
		rc = mfs_link(fs, x, MFS_ROOT, "x-link", &a);
		fz_check_rc("mfs_link", rc);
		if (!rc)
			mfs_forget(fs, a.ino, 1);
		fz_check_rc("mfs_setxattr",
			    mfs_setxattr(fs, x, "user.new", buf, 3000, 0));
		fz_check_rc("mfs_setxattr replace",
			    mfs_setxattr(fs, x, "user.small", "v2", 2, 0));
		fz_check_rc("mfs_removexattr",
			    mfs_removexattr(fs, x, "user.big"));
		in.mode = 04755;
		fz_check_rc("mfs_setattr mode",
			    mfs_setattr(fs, &fz_cred, x, &in, MFS_SET_MODE, &a));
	}
	rc = mfs_symlink(fs, &fz_cred, MFS_ROOT, "newlink",
			 "a/target/that/is/long/enough", &a);
	fz_check_rc("mfs_symlink", rc);
	if (!rc)
		mfs_forget(fs, a.ino, 1);
	fz_check_rc("mfs_unlink", mfs_unlink(fs, MFS_ROOT, "s"));
	fz_check_rc("mfs_rmdir", mfs_rmdir(fs, MFS_ROOT, "sub"));
	if (sub) {
		fz_check_rc("mfs_rmdir", mfs_rmdir(fs, sub, "deep"));
		fz_check_rc("mfs_unlink", mfs_unlink(fs, sub, "longlink"));
	}
	fz_check_rc("mfs_unlink", mfs_unlink(fs, MFS_ROOT, "fifo"));
	fz_check_rc("mfs_fs_sync", mfs_fs_sync(fs));
	/* Changes after the commit, left to the close. */
	if (dir)
		fz_check_rc("mfs_unlink", mfs_unlink(fs, dir, "f020"));
	wr(fs, frag, 0, 4096, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *img = fz_image(data, size);
	struct mfs_fs *fs;
	int rc;

	if (!img)
		fz_fail("cannot write the image");
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7);
	rc = mfs_fs_open(img, MFS_FS_NOLOCK, &fs);
	fz_check_rc("mfs_fs_open", rc);
	if (rc)
		return 0;
	changes(fs);
	fz_check_rc("mfs_fs_close", mfs_fs_close(fs));
	/* What the close committed opens again. */
	rc = mfs_fs_open(img, MFS_FS_NOLOCK, &fs);
	fz_check_rc("mfs_fs_open again", rc);
	if (!rc) {
		(void)find(fs, "dir/new");
		fz_check_rc("mfs_fs_close again", mfs_fs_close(fs));
	}
	return 0;
}
