/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ops.c — harness (g): a sequence of core calls chosen by the input
 * on an image the input damages: fsx's idea, on a hostile image.
 *
 * Input: u8 n, then n * 4 bytes of patches to the template (fuzz.h), then
 * operations, each an opcode byte and the bytes it reads (missing bytes
 * read as 0): create, write, truncate, unlink, rename (plain, noreplace,
 * exchange), mkdir, rmdir, fallocate (every mode), setxattr, removexattr,
 * copy_file_range, link, symlink, read, readdir, lseek, fsync, sync,
 * abort, and close + reopen. Names come from a small set that includes
 * the template's own files, in three directories, so the operations meet
 * what the damage touched. Every call returns 0 or -errno; at most 64
 * operations; at the end the image is closed (an error is fine) and, if
 * it opens again, closed again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define MAX_OPS 64

struct in {
	const uint8_t *p;
	size_t n, at;
};

static unsigned u8(struct in *in)
{
	return in->at < in->n ? in->p[in->at++] : 0;
}

static unsigned u16(struct in *in)
{
	unsigned lo = u8(in);

	return lo | u8(in) << 8;
}

static const char *const names[] = {
	"x", "frag", "other", "f000", "f001", "f010", "sparse", "deep",
	"new", "n2", "hl", "s", "longlink", "gone", "fifo", "lost+found",
};

static struct mfs_fs *fs;
static uint8_t buf[20000];
static char list[4096];

/* The directories operations happen in: root, /dir, /sub, /sub/deep. */
static uint64_t dir_of(unsigned b)
{
	static const char *const path[][2] = {
		{ NULL, NULL }, { "dir", NULL }, { "sub", NULL }, { "sub", "deep" } };
	uint64_t ino = MFS_ROOT;
	struct mfs_attr a;

	for (unsigned i = 0; i < 2 && path[b % 4][i]; i++) {
		if (mfs_lookup(fs, ino, path[b % 4][i], &a))
			return MFS_ROOT;
		mfs_forget(fs, a.ino, 1);
		ino = a.ino;
	}
	return ino;
}

/* The inode of a name in a directory, or 0. */
static uint64_t ino_of(uint64_t dir, const char *name, struct mfs_attr *a)
{
	int rc = mfs_lookup(fs, dir, name, a);

	fz_check_rc("mfs_lookup", rc);
	if (rc)
		return 0;
	mfs_forget(fs, a->ino, 1);
	return a->ino;
}

static int filler(void *ctx, const char *name, size_t len,
		  const struct mfs_attr *attr, uint64_t next_off)
{
	(void)ctx;
	(void)name;
	(void)len;
	(void)attr;
	(void)next_off;
	return 0;
}

static void one_op(struct in *in, const char *img)
{
	unsigned op = u8(in) % 20;
	uint64_t dir = dir_of(u8(in));
	const char *name = names[u8(in) % 16];
	struct mfs_attr a, b;
	uint64_t ino, ino2, pos;
	struct iovec iov[8];
	unsigned cnt;
	size_t n;
	int rc = 0;

	switch (op) {
	case 0:
		rc = mfs_create(fs, &fz_cred, dir, name, 0644, O_RDWR, &a);
		if (!rc) {
			fz_check_rc("mfs_release", mfs_release(fs, a.ino));
			mfs_forget(fs, a.ino, 1);
		}
		break;
	case 1: case 2: case 7: case 10: case 13: case 16: case 19:
		ino = ino_of(dir, name, &a);
		if (!ino || !S_ISREG(a.mode))
			break;
		rc = mfs_open(fs, &fz_cred, ino, O_RDWR);
		fz_check_rc("mfs_open", rc);
		if (rc)
			break;
		pos = (uint64_t)u16(in) * 512;
		n = u16(in) % sizeof(buf);
		if (op == 1) {
			rc = mfs_write(fs, &fz_cred, ino, pos, buf, n,
				       u8(in) & 1 ? MFS_WRITE_APPEND : 0, &n);
		} else if (op == 2) {
			struct mfs_attr sz = { .size = pos + n };

			rc = mfs_setattr(fs, &fz_cred, ino, &sz, MFS_SET_SIZE, &b);
		} else if (op == 7) {
			static const int modes[] = { 0, 1, 3, 0x10, 0x11 };

			rc = mfs_fallocate(fs, ino, modes[u8(in) % 5], pos, n + 1);
		} else if (op == 10) {
			ino2 = ino_of(dir_of(u8(in)), names[u8(in) % 16], &b);
			if (ino2 && S_ISREG(b.mode))
				rc = mfs_copy_file_range(fs, ino, pos, ino2,
							 (uint64_t)u16(in) * 512,
							 n, &n);
		} else if (op == 13) {
			rc = mfs_read(fs, ino, pos, n, iov, 8, &cnt, &n);
			for (unsigned i = 0; !rc && i < cnt; i++) {
				volatile const uint8_t *p = iov[i].iov_base;

				if (iov[i].iov_len)
					(void)(p[0] + p[iov[i].iov_len - 1]);
			}
		} else if (op == 16) {
			rc = mfs_fsync(fs, ino, u8(in) & 1);
		} else {
			rc = mfs_lseek(fs, ino, pos, u8(in) & 1 ? 4 : 3, &pos);
		}
		fz_check_rc("file op", rc);
		rc = mfs_release(fs, ino);
		break;
	case 3:
		rc = mfs_unlink(fs, dir, name);
		break;
	case 4:
		rc = mfs_rename(fs, dir, name, dir_of(u8(in)),
				names[u8(in) % 16], u8(in) % 3);
		break;
	case 5:
		rc = mfs_mkdir(fs, &fz_cred, dir, name, 0755, &a);
		if (!rc)
			mfs_forget(fs, a.ino, 1);
		break;
	case 6:
		rc = mfs_rmdir(fs, dir, name);
		break;
	case 8:
		ino = ino_of(dir, name, &a);
		snprintf(list, sizeof(list), "user.k%u", u8(in) % 4);
		if (ino)
			rc = mfs_setxattr(fs, ino, list, buf, u16(in) % 5000,
					  0);
		break;
	case 9:
		ino = ino_of(dir, name, &a);
		snprintf(list, sizeof(list), "user.k%u", u8(in) % 4);
		if (ino)
			rc = mfs_removexattr(fs, ino, list);
		break;
	case 11:
		ino = ino_of(dir, name, &a);
		if (ino) {
			rc = mfs_link(fs, ino, dir_of(u8(in)),
				      names[u8(in) % 16], &b);
			if (!rc)
				mfs_forget(fs, b.ino, 1);
		}
		break;
	case 12:
		n = u16(in) % 4000 + 1;
		memset(list, 't', n);
		list[n] = 0;
		rc = mfs_symlink(fs, &fz_cred, dir, name, list, &a);
		if (!rc)
			mfs_forget(fs, a.ino, 1);
		break;
	case 14:
		rc = mfs_readdir(fs, dir, u8(in) & 1 ? 0 : u16(in), false,
				 filler, NULL);
		break;
	case 15:
		rc = mfs_fs_sync(fs);
		break;
	case 17:
		rc = mfs_fs_abort(fs);
		break;
	case 18:
		fz_check_rc("mfs_fs_close", mfs_fs_close(fs));
		fs = NULL;
		rc = mfs_fs_open(img, MFS_FS_NOLOCK, &fs);
		if (rc)
			fs = NULL;
		break;
	}
	fz_check_rc("operation", rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t patch = size ? (size_t)data[0] * 4 : 0;
	struct in in;
	const char *img;
	int rc;

	if (size && patch > size - 1)
		patch = size - 1;
	img = fz_image(size ? data + 1 : data, patch);
	if (!img)
		fz_fail("cannot write the image");
	in = (struct in){ data, size, size ? 1 + patch : 0 };
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 13 + 5);
	rc = mfs_fs_open(img, MFS_FS_NOLOCK, &fs);
	fz_check_rc("mfs_fs_open", rc);
	if (rc)
		return 0;
	for (unsigned i = 0; fs && i < MAX_OPS && in.at < in.n; i++)
		one_op(&in, img);
	if (fs)
		fz_check_rc("mfs_fs_close", mfs_fs_close(fs));
	fs = NULL;
	if (!mfs_fs_open(img, MFS_FS_NOLOCK, &fs))
		fz_check_rc("mfs_fs_close again", mfs_fs_close(fs));
	fs = NULL;
	return 0;
}
