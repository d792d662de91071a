/* SPDX-License-Identifier: MIT */
/*
 * inode.c — inode items; see inode.h.
 *
 * Layer 6. Calls btree, file (to free data), xattr (to drop attributes).
 */
#include "inode.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include "btree.h"
#include "endian.h"
#include "file.h"
#include "xattr.h"

#define DI(f) offsetof(struct mfs_disk_inode, f)

static struct mfs_key inode_key(uint64_t ino)
{
	return mfs_key_make(ino, MFS_ITEM_INODE, 0);
}

void mfs_inode_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static void get_time(const uint8_t *p, size_t sec, size_t nsec,
		     struct timespec *ts)
{
	uint32_t ns = mfs_get_le32(p + nsec);

	ts->tv_sec = (time_t)mfs_get_le64(p + sec);
	ts->tv_nsec = ns < 1000000000u ? (long)ns : 0;
}

static void put_time(uint8_t *p, size_t sec, size_t nsec,
		     const struct timespec *ts)
{
	mfs_put_le64(p + sec, (uint64_t)ts->tv_sec);
	mfs_put_le32(p + nsec, (uint32_t)ts->tv_nsec);
}

static void decode(const uint8_t *p, uint64_t ino, struct mfs_inode *in)
{
	in->ino = ino;
	in->mode = mfs_get_le32(p + DI(di_mode));
	in->uid = mfs_get_le32(p + DI(di_uid));
	in->gid = mfs_get_le32(p + DI(di_gid));
	in->nlink = mfs_get_le32(p + DI(di_nlink));
	in->size = mfs_get_le64(p + DI(di_size));
	in->blocks = mfs_get_le64(p + DI(di_blocks));
	in->generation = mfs_get_le64(p + DI(di_generation));
	in->rdev = mfs_get_le64(p + DI(di_rdev));
	in->flags = mfs_get_le64(p + DI(di_flags));
	in->parent = mfs_get_le64(p + DI(di_parent));
	get_time(p, DI(di_atime), DI(di_atime_ns), &in->atime);
	get_time(p, DI(di_mtime), DI(di_mtime_ns), &in->mtime);
	get_time(p, DI(di_ctime), DI(di_ctime_ns), &in->ctime);
	get_time(p, DI(di_btime), DI(di_btime_ns), &in->btime);
}

static void encode(const struct mfs_inode *in, uint8_t *p)
{
	memset(p, 0, sizeof(struct mfs_disk_inode));
	mfs_put_le32(p + DI(di_mode), in->mode);
	mfs_put_le32(p + DI(di_uid), in->uid);
	mfs_put_le32(p + DI(di_gid), in->gid);
	mfs_put_le32(p + DI(di_nlink), in->nlink);
	mfs_put_le64(p + DI(di_size), in->size);
	mfs_put_le64(p + DI(di_blocks), in->blocks);
	mfs_put_le64(p + DI(di_generation), in->generation);
	mfs_put_le64(p + DI(di_rdev), in->rdev);
	mfs_put_le64(p + DI(di_flags), in->flags);
	mfs_put_le64(p + DI(di_parent), in->parent);
	put_time(p, DI(di_atime), DI(di_atime_ns), &in->atime);
	put_time(p, DI(di_mtime), DI(di_mtime_ns), &in->mtime);
	put_time(p, DI(di_ctime), DI(di_ctime_ns), &in->ctime);
	put_time(p, DI(di_btime), DI(di_btime_ns), &in->btime);
}

/* A file type the filesystem knows, and fields that cannot be wrong. */
static bool sane(const struct mfs_inode *in)
{
	switch (in->mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFIFO:
	case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		break;
	default:
		return false;
	}
	if (S_ISDIR(in->mode) && (in->parent == 0 || in->parent > MFS_MAX_INO))
		return false;
	return in->size <= (1ULL << 62);
}

int mfs_inode_read(struct mfs_vol *v, uint64_t ino, struct mfs_inode *in)
{
	struct mfs_key k = inode_key(ino);
	const void *val;
	size_t len;
	int rc;

	if (ino == 0 || ino > MFS_MAX_INO)
		return -ENOENT;
	rc = mfs_btree_lookup(v, MFS_TREE_FS, &k, &val, &len);
	if (rc)
		return rc;
	if (len != sizeof(struct mfs_disk_inode))
		return MFS_CORRUPT(v, "inode %llu: item of %zu bytes",
				   (unsigned long long)ino, len);
	decode(val, ino, in);
	if (!sane(in))
		return MFS_CORRUPT(v, "inode %llu: bad mode or fields",
				   (unsigned long long)ino);
	return 0;
}

int mfs_inode_write(struct mfs_vol *v, const struct mfs_inode *in)
{
	struct mfs_key k = inode_key(in->ino);
	void *val;
	size_t len;
	int rc;

	rc = mfs_btree_lookup_mut(v, MFS_TREE_FS, &k, &val, &len);
	if (rc)
		return rc;
	if (len != sizeof(struct mfs_disk_inode))
		return MFS_CORRUPT(v, "inode %llu: item of %zu bytes",
				   (unsigned long long)in->ino, len);
	encode(in, val);
	return 0;
}

int mfs_inode_create(struct mfs_vol *v, struct mfs_inode *in)
{
	uint8_t buf[sizeof(struct mfs_disk_inode)];
	int tries, rc = -ENOSPC;

	/* next_ino only grows; an occupied number (a damaged counter) is
	 * skipped rather than reused. */
	for (tries = 0; tries < 64; tries++) {
		struct mfs_key k;

		if (v->next_ino < MFS_FIRST_INO || v->next_ino >= MFS_MAX_INO)
			return -ENOSPC;
		in->ino = v->next_ino++;
		in->generation = v->gen;
		encode(in, buf);
		k = inode_key(in->ino);
		rc = mfs_btree_insert(v, MFS_TREE_FS, &k, buf, sizeof(buf));
		if (rc != -EEXIST)
			break;
	}
	if (rc)
		return rc;
	v->inode_count++;
	v->dirty = true;
	return 0;
}

int mfs_inode_insert(struct mfs_vol *v, const struct mfs_inode *in)
{
	uint8_t buf[sizeof(struct mfs_disk_inode)];
	struct mfs_key k = inode_key(in->ino);
	int rc;

	encode(in, buf);
	rc = mfs_btree_insert(v, MFS_TREE_FS, &k, buf, sizeof(buf));
	if (rc)
		return rc;
	v->inode_count++;
	v->dirty = true;
	return 0;
}

/* Delete every item of type `type` of the inode. */
static int delete_items(struct mfs_vol *v, uint64_t ino, uint8_t type)
{
	struct mfs_key lo = mfs_key_make(ino, type, 0);
	struct mfs_key hi = mfs_key_make(ino, type, UINT64_MAX);
	struct mfs_cursor c;
	struct mfs_key k;
	int rc;

	for (;;) {
		mfs_cursor_init(&c, v, MFS_TREE_FS, &lo, &hi);
		rc = mfs_cursor_next(&c, &k, NULL, NULL);
		if (rc <= 0)
			return rc;
		rc = mfs_btree_delete(v, MFS_TREE_FS, &k);
		if (rc)
			return rc;
		lo = k;
	}
}

int mfs_inode_remove(struct mfs_vol *v, struct mfs_inode *in)
{
	struct mfs_key k;
	int rc;

	if (S_ISREG(in->mode)) {
		rc = mfs_file_free_all(v, in);
		if (rc)
			return rc;
	}
	rc = delete_items(v, in->ino, MFS_ITEM_INLINE);
	if (!rc)
		rc = mfs_xattr_remove_all(v, in->ino);
	if (rc)
		return rc;
	k = inode_key(in->ino);
	rc = mfs_btree_delete(v, MFS_TREE_FS, &k);
	if (rc)
		return rc;
	k = mfs_key_make(MFS_ORPHAN_OBJID, MFS_ITEM_ORPHAN, in->ino);
	rc = mfs_btree_delete(v, MFS_TREE_FS, &k);
	if (rc && rc != -ENOENT)
		return rc;
	if (v->inode_count)
		v->inode_count--;
	v->dirty = true;
	return 0;
}
