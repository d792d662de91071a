/* SPDX-License-Identifier: MIT */
/*
 * fuzz_walk.c — harness (b): open a hostile image read-only, as a mount
 * does, and read everything through the core API: every directory
 * (readdir, and readdirplus), every entry (lookup, getattr), every file's
 * data (read, lseek SEEK_DATA/SEEK_HOLE), every symlink (readlink), every
 * xattr (listxattr, getxattr), statfs. Each call returns 0 or -errno; the
 * walk is bounded (depth, entries, bytes) since a hostile directory may
 * contain itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define MAX_DEPTH 12
#define MAX_ENTRIES 4000
#define MAX_READ (4u << 20)

struct walk {
	struct mfs_fs *fs;
	unsigned entries;
};

struct names {
	char (*name)[256];
	size_t n, cap;
	uint64_t last_off;
};

static int collect(void *ctx, const char *name, size_t len,
		   const struct mfs_attr *attr, uint64_t next_off)
{
	struct names *l = ctx;

	(void)attr;
	if (len == 0 || len > 255)
		fz_fail("readdir gave a name of %zu bytes", len);
	if (memchr(name, '/', len) || memchr(name, 0, len))
		fz_fail("readdir gave a name with '/' or NUL");
	l->last_off = next_off;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		void *p = realloc(l->name, cap * sizeof(*l->name));

		if (!p)
			return 1;
		l->name = p;
		l->cap = cap;
	}
	memcpy(l->name[l->n], name, len);
	l->name[l->n][len] = 0;
	l->n++;
	return l->n >= MAX_ENTRIES;
}

/* readdirplus: each entry given (but "." and "..") counts a lookup once
 * the filler returns 0; the walk gives them back afterwards. */
struct plus {
	uint64_t ino[MAX_ENTRIES];
	size_t n;
};

static int plus_fill(void *ctx, const char *name, size_t len,
		     const struct mfs_attr *attr, uint64_t next_off)
{
	struct plus *p = ctx;

	(void)len;
	(void)next_off;
	if (p->n == MAX_ENTRIES)
		return 1;
	if (strcmp(name, ".") && strcmp(name, ".."))
		p->ino[p->n++] = attr->ino;
	return 0;
}

static void read_file(struct walk *w, const struct mfs_attr *a)
{
	struct iovec iov[16];
	uint64_t off = 0, pos, end;
	unsigned cnt;
	size_t n;
	int rc;

	rc = mfs_open(w->fs, &fz_cred, a->ino, O_RDONLY);
	fz_check_rc("mfs_open", rc);
	if (rc)
		return;
	while (off < a->size && off < MAX_READ) {
		rc = mfs_read(w->fs, a->ino, off, 256 << 10, iov, 16, &cnt, &n);
		fz_check_rc("mfs_read", rc);
		if (rc || n == 0)
			break;
		if (cnt > 16)
			fz_fail("mfs_read: %u iovecs in 16", cnt);
		for (unsigned i = 0; i < cnt; i++) {
			volatile const uint8_t *p = iov[i].iov_base;

			/* Touch the first and last byte: inside the map. */
			if (iov[i].iov_len)
				(void)(p[0] + p[iov[i].iov_len - 1]);
		}
		off += n;
	}
	for (pos = 0, end = 0; end < 64 && pos < a->size; end++) {
		uint64_t hole;

		rc = mfs_lseek(w->fs, a->ino, pos, SEEK_DATA, &pos);
		fz_check_rc("mfs_lseek DATA", rc);
		if (rc)
			break;
		rc = mfs_lseek(w->fs, a->ino, pos, SEEK_HOLE, &hole);
		fz_check_rc("mfs_lseek HOLE", rc);
		if (rc || hole <= pos)
			break;
		pos = hole;
	}
	fz_check_rc("mfs_release", mfs_release(w->fs, a->ino));
}

static void xattrs(struct walk *w, uint64_t ino)
{
	static char list[65536], val[65536];
	size_t len, vlen;
	int rc;

	rc = mfs_listxattr(w->fs, ino, NULL, 0, &len);
	fz_check_rc("mfs_listxattr", rc);
	rc = mfs_listxattr(w->fs, ino, list, sizeof(list), &len);
	fz_check_rc("mfs_listxattr", rc);
	if (rc)
		return;
	if (len > sizeof(list))
		fz_fail("listxattr: %zu bytes in a %zu-byte buffer", len,
			sizeof(list));
	for (size_t at = 0; at < len;) {
		const char *name = list + at;
		size_t nl = strnlen(name, len - at);

		if (nl == len - at)
			fz_fail("listxattr: the last name has no NUL");
		rc = mfs_getxattr(w->fs, ino, name, val, sizeof(val), &vlen);
		fz_check_rc("mfs_getxattr", rc);
		if (!rc && vlen > sizeof(val))
			fz_fail("getxattr: %zu bytes in a %zu-byte buffer",
				vlen, sizeof(val));
		at += nl + 1;
	}
}

static void walk_dir(struct walk *w, uint64_t dir, unsigned depth)
{
	struct names l = { 0 };
	static struct plus plus;
	int rc;

	rc = mfs_opendir(w->fs, dir);
	fz_check_rc("mfs_opendir", rc);
	if (rc)
		return;
	plus.n = 0;
	rc = mfs_readdir(w->fs, dir, 0, true, plus_fill, &plus);
	fz_check_rc("mfs_readdir plus", rc);
	for (size_t i = 0; i < plus.n; i++)
		mfs_forget(w->fs, plus.ino[i], 1);
	rc = mfs_readdir(w->fs, dir, 0, false, collect, &l);
	fz_check_rc("mfs_readdir", rc);
	/* Resume from the last offset given, as getdents does. */
	if (!rc && l.n) {
		struct names again = { 0 };

		rc = mfs_readdir(w->fs, dir, l.last_off, false, collect, &again);
		fz_check_rc("mfs_readdir at an offset", rc);
		free(again.name);
	}
	for (size_t i = 0; i < l.n && w->entries < MAX_ENTRIES; i++) {
		const char *name = l.name[i];
		struct mfs_attr a, b;
		char buf[MFS_SYMLINK_MAX + 1];
		size_t len;

		w->entries++;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		rc = mfs_lookup(w->fs, dir, name, &a);
		fz_check_rc("mfs_lookup", rc);
		if (rc)
			continue;
		rc = mfs_getattr(w->fs, a.ino, &b);
		fz_check_rc("mfs_getattr", rc);
		if (!rc && (b.ino != a.ino || b.mode != a.mode))
			fz_fail("getattr of %llu disagrees with lookup",
				(unsigned long long)a.ino);
		xattrs(w, a.ino);
		if (S_ISDIR(a.mode) && depth < MAX_DEPTH)
			walk_dir(w, a.ino, depth + 1);
		else if (S_ISREG(a.mode))
			read_file(w, &a);
		else if (S_ISLNK(a.mode)) {
			rc = mfs_readlink(w->fs, a.ino, buf, sizeof(buf), &len);
			fz_check_rc("mfs_readlink", rc);
			if (!rc && len > MFS_SYMLINK_MAX)
				fz_fail("readlink: %zu bytes", len);
		}
		mfs_forget(w->fs, a.ino, 1);
	}
	free(l.name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *img = fz_image(data, size);
	struct walk w = { 0 };
	struct mfs_statfs st;
	struct mfs_attr root;
	int rc;

	if (!img)
		fz_fail("cannot write the image");
	rc = mfs_fs_open(img, MFS_FS_RDONLY | MFS_FS_NOLOCK, &w.fs);
	fz_check_rc("mfs_fs_open", rc);
	if (rc)
		return 0;
	fz_check_rc("mfs_statfs", mfs_statfs(w.fs, &st));
	rc = mfs_getattr(w.fs, MFS_ROOT, &root);
	fz_check_rc("mfs_getattr root", rc);
	xattrs(&w, MFS_ROOT);
	walk_dir(&w, MFS_ROOT, 0);
	fz_check_rc("mfs_fs_close", mfs_fs_close(w.fs));
	return 0;
}
