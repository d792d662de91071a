/* SPDX-License-Identifier: MIT */
/*
 * populate.c — copy a host directory tree into a filesystem (mkfs -d).
 *
 * Layer: a client of the core API (mmapfs.h), like the FUSE glue; no
 * knowledge of items or blocks. Copies regular files (holes kept, via
 * SEEK_DATA/SEEK_HOLE), directories, symbolic links, device nodes, FIFOs
 * and sockets, with modes, owners, times, hard links and extended
 * attributes (the namespaces mmapfs stores).
 */
#include "populate.h"

#include <dirent.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "log.h"

#define COPY_BUF (1u << 20)

struct link_map {
	struct { dev_t dev; ino_t ino; uint64_t to; } *e;
	size_t nr, cap;
};

struct pop {
	struct mfs_fs *fs;
	struct link_map links;
	char *buf;
	uint64_t files, bytes;
};

static int fail(const char *path, const char *what, int err)
{
	mfs_log(MFS_LOG_ERR, "%s: %s: %s", path, what, strerror(err));
	return -err;
}

static uint64_t link_find(struct link_map *m, const struct stat *st)
{
	for (size_t i = 0; i < m->nr; i++)
		if (m->e[i].dev == st->st_dev && m->e[i].ino == st->st_ino)
			return m->e[i].to;
	return 0;
}

static int link_add(struct link_map *m, const struct stat *st, uint64_t to)
{
	if (m->nr == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		void *n = realloc(m->e, cap * sizeof(*m->e));

		if (!n)
			return -ENOMEM;
		m->e = n;
		m->cap = cap;
	}
	m->e[m->nr].dev = st->st_dev;
	m->e[m->nr].ino = st->st_ino;
	m->e[m->nr].to = to;
	m->nr++;
	return 0;
}

/* Owner, mode and times of the copy, set last (creating children changes a
 * directory's times). */
static int copy_attrs(struct pop *p, const char *path, uint64_t ino,
		      const struct stat *st)
{
	struct mfs_cred root = { .uid = 0, .gid = 0, .cap_fsetid = true,
				 .in_group = true };
	struct mfs_attr a;
	unsigned set = MFS_SET_UID | MFS_SET_GID | MFS_SET_ATIME | MFS_SET_MTIME;
	int rc;

	memset(&a, 0, sizeof(a));
	a.uid = st->st_uid;
	a.gid = st->st_gid;
	a.atime = st->st_atim;
	a.mtime = st->st_mtim;
	if (!S_ISLNK(st->st_mode)) {
		/* After chown, which clears setuid/setgid bits. */
		set |= MFS_SET_MODE;
		a.mode = st->st_mode;
	}
	rc = mfs_setattr(p->fs, &root, ino, &a, set, NULL);
	if (rc)
		return fail(path, "setting attributes", -rc);
	return 0;
}

static int copy_xattrs(struct pop *p, const char *path, uint64_t ino)
{
	char names[65536], *n;
	ssize_t len = llistxattr(path, names, sizeof(names));

	if (len < 0)
		return errno == ENOTSUP ? 0 : fail(path, "listing xattrs", errno);
	for (n = names; n < names + len; n += strlen(n) + 1) {
		ssize_t vlen = lgetxattr(path, n, p->buf, COPY_BUF);
		int rc;

		if (vlen < 0)
			return fail(path, n, errno);
		rc = mfs_setxattr(p->fs, ino, n, p->buf, (size_t)vlen, 0);
		if (rc == -EOPNOTSUPP) {
			mfs_log(MFS_LOG_WARNING, "%s: xattr %s not copied "
				"(namespace not supported)", path, n);
			continue;
		}
		if (rc)
			return fail(path, n, -rc);
	}
	return 0;
}

/* Copy the data of a regular file, keeping holes. */
static int copy_data(struct pop *p, const char *path, uint64_t ino,
		     const struct stat *st)
{
	struct mfs_cred root = { .cap_fsetid = true, .in_group = true };
	struct mfs_attr a = { .size = (uint64_t)st->st_size };
	off_t off = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail(path, "open", errno);
	while (off < st->st_size) {
		off_t data = lseek(fd, off, SEEK_DATA), hole;

		if (data < 0) {
			if (errno == ENXIO)
				break;
			data = off; /* no SEEK_DATA: copy everything */
		}
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = st->st_size;
		for (off = data; off < hole;) {
			size_t want = (size_t)(hole - off) < COPY_BUF ?
				      (size_t)(hole - off) : COPY_BUF;
			ssize_t got = pread(fd, p->buf, want, off);
			size_t done;

			if (got < 0) {
				rc = fail(path, "read", errno);
				goto out;
			}
			if (got == 0)
				break;
			rc = mfs_write(p->fs, &root, ino, (uint64_t)off, p->buf,
				       (size_t)got, 0, &done);
			if (!rc && done != (size_t)got)
				rc = -ENOSPC;
			if (rc) {
				rc = fail(path, "write", -rc);
				goto out;
			}
			off += got;
			p->bytes += (uint64_t)got;
		}
		off = hole;
	}
	/* A trailing hole. */
	rc = mfs_setattr(p->fs, &root, ino, &a, MFS_SET_SIZE, NULL);
	if (rc)
		rc = fail(path, "truncate", -rc);
out:
	close(fd);
	return rc;
}

static int copy_dir(struct pop *p, const char *path, uint64_t dir);

/* Copy one entry `name` of host directory `path` into `dir`. */
static int copy_entry(struct pop *p, const char *path, uint64_t dir,
		      const char *name)
{
	struct mfs_cred root = { .cap_fsetid = true, .in_group = true };
	struct mfs_attr a;
	struct stat st;
	char *full;
	uint64_t prev;
	int rc;

	if (asprintf(&full, "%s/%s", path, name) < 0)
		return -ENOMEM;
	if (lstat(full, &st) != 0) {
		rc = fail(full, "stat", errno);
		goto out;
	}
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 &&
	    (prev = link_find(&p->links, &st)) != 0) {
		rc = mfs_link(p->fs, prev, dir, name, &a);
		if (rc)
			rc = fail(full, "link", -rc);
		else
			mfs_forget(p->fs, a.ino, 1);
		goto out;
	}
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR:
		/* mkfs made lost+found already: merge into it. */
		if (dir == MFS_ROOT && !strcmp(name, "lost+found"))
			rc = mfs_lookup(p->fs, dir, name, &a);
		else
			rc = mfs_mkdir(p->fs, &root, dir, name,
				       st.st_mode & 07777, &a);
		break;
	case S_IFLNK: {
		char target[MFS_SYMLINK_MAX + 1];
		ssize_t n = readlink(full, target, sizeof(target));

		if (n < 0 || n > (ssize_t)MFS_SYMLINK_MAX) {
			rc = fail(full, "readlink", n < 0 ? errno : ENAMETOOLONG);
			goto out;
		}
		target[n] = 0;
		rc = mfs_symlink(p->fs, &root, dir, name, target, &a);
		break;
	}
	default:
		rc = mfs_mknod(p->fs, &root, dir, name, st.st_mode,
			       (uint64_t)st.st_rdev, &a);
		break;
	}
	if (rc) {
		rc = fail(full, "create", -rc);
		goto out;
	}
	mfs_forget(p->fs, a.ino, 1);
	p->files++;
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 &&
	    (rc = link_add(&p->links, &st, a.ino)))
		goto out;
	if (S_ISREG(st.st_mode))
		rc = copy_data(p, full, a.ino, &st);
	else if (S_ISDIR(st.st_mode))
		rc = copy_dir(p, full, a.ino);
	if (!rc)
		rc = copy_xattrs(p, full, a.ino);
	if (!rc)
		rc = copy_attrs(p, full, a.ino, &st);
out:
	free(full);
	return rc;
}

static int copy_dir(struct pop *p, const char *path, uint64_t dir)
{
	struct dirent *de;
	DIR *d = opendir(path);
	int rc = 0;

	if (!d)
		return fail(path, "opendir", errno);
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		rc = copy_entry(p, path, dir, de->d_name);
		if (rc)
			break;
	}
	if (!rc && errno)
		rc = fail(path, "readdir", errno);
	closedir(d);
	return rc;
}

int mfs_populate(struct mfs_fs *fs, const char *dir, uint64_t *files,
		 uint64_t *bytes)
{
	struct pop p = { .fs = fs };
	struct stat st;
	int rc;

	if (stat(dir, &st) != 0)
		return fail(dir, "stat", errno);
	if (!S_ISDIR(st.st_mode))
		return fail(dir, "cannot populate from it", ENOTDIR);
	p.buf = malloc(COPY_BUF);
	if (!p.buf)
		return -ENOMEM;
	rc = copy_dir(&p, dir, MFS_ROOT);
	if (!rc)
		rc = copy_xattrs(&p, dir, MFS_ROOT);
	if (!rc)
		rc = copy_attrs(&p, dir, MFS_ROOT, &st);
	free(p.buf);
	free(p.links.e);
	if (files)
		*files = p.files;
	if (bytes)
		*bytes = p.bytes;
	return rc;
}
