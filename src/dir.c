/* SPDX-License-Identifier: MIT */
/*
 * dir.c — directory entries; see dir.h.
 *
 * Layer 6. Calls btree and siphash.
 *
 * A DIRENT item's value is one or more entries back to back (several only
 * when names collide in the 63-bit seeded hash, which with a secret seed
 * does not happen in practice): le64 ino, u8 type, u8 name length, name.
 * Every entry read from the image is checked before use.
 */
#include "dir.h"

#include <errno.h>
#include <string.h>

#include "btree.h"
#include "endian.h"
#include "siphash.h"

uint64_t mfs_dir_hash(const struct mfs_vol *v, const char *name, size_t len)
{
	uint64_t h = mfs_siphash(v->sb.hash_seed, name, len) >> 1;

	return h < 3 ? 3 : h;
}

/* Walk the entries of one item value; on a malformed value, -EUCLEAN.
 * For each entry, cb(ctx, offset of entry, name, len, ino, type); a
 * non-zero return stops the walk and is returned. */
typedef int (*ent_cb)(void *ctx, size_t at, const char *name, size_t len,
		      uint64_t ino, uint8_t type);

static int walk(struct mfs_vol *v, uint64_t dir, const uint8_t *val,
		size_t vlen, ent_cb cb, void *ctx)
{
	size_t at = 0;

	if (vlen == 0)
		return MFS_CORRUPT(v, "directory %llu: empty entry item",
				   (unsigned long long)dir);
	while (at < vlen) {
		uint64_t ino;
		size_t nl;
		int rc;

		if (vlen - at < MFS_DIRENT_HDR)
			return MFS_CORRUPT(v, "directory %llu: truncated entry",
					   (unsigned long long)dir);
		ino = mfs_get_le64(val + at);
		nl = val[at + 9];
		if (nl == 0 || vlen - at - MFS_DIRENT_HDR < nl ||
		    ino == 0 || ino > MFS_MAX_INO ||
		    memchr(val + at + MFS_DIRENT_HDR, '/', nl) ||
		    memchr(val + at + MFS_DIRENT_HDR, 0, nl))
			return MFS_CORRUPT(v, "directory %llu: malformed entry",
					   (unsigned long long)dir);
		rc = cb(ctx, at, (const char *)val + at + MFS_DIRENT_HDR, nl,
			ino, val[at + 8]);
		if (rc)
			return rc;
		at += MFS_DIRENT_HDR + nl;
	}
	return 0;
}

struct find {
	const char *name;
	size_t len;
	size_t at;        /* where the match starts */
	uint64_t ino;
	uint8_t type;
};

static int find_cb(void *ctx, size_t at, const char *name, size_t len,
		   uint64_t ino, uint8_t type)
{
	struct find *f = ctx;

	if (len != f->len || memcmp(name, f->name, len) != 0)
		return 0;
	f->at = at;
	f->ino = ino;
	f->type = type;
	return 1;
}

/* Find name: 0 with f filled and the item's value (a copy in buf, *vlen),
 * -ENOENT (buf still holds the item if there is one, else *vlen = 0). */
static int find(struct mfs_vol *v, uint64_t dir, struct find *f,
		uint8_t *buf, size_t *vlen)
{
	struct mfs_key k = mfs_key_make(dir, MFS_ITEM_DIRENT,
					mfs_dir_hash(v, f->name, f->len));
	const void *val;
	size_t len;
	int rc;

	*vlen = 0;
	rc = mfs_btree_lookup(v, MFS_TREE_FS, &k, &val, &len);
	if (rc)
		return rc;
	memcpy(buf, val, len);
	*vlen = len;
	rc = walk(v, dir, buf, len, find_cb, f);
	if (rc < 0)
		return rc;
	return rc == 1 ? 0 : -ENOENT;
}

int mfs_dir_lookup(struct mfs_vol *v, uint64_t dir, const char *name,
		   size_t len, uint64_t *ino, uint8_t *type)
{
	uint8_t buf[MFS_MAX_VALUE];
	struct find f = { .name = name, .len = len };
	size_t vlen;
	int rc;

	rc = find(v, dir, &f, buf, &vlen);
	if (rc)
		return rc;
	*ino = f.ino;
	if (type)
		*type = f.type;
	return 0;
}

int mfs_dir_add(struct mfs_vol *v, uint64_t dir, const char *name, size_t len,
		uint64_t ino, uint8_t type)
{
	uint8_t buf[MFS_MAX_VALUE + MFS_DIRENT_HDR + MFS_NAME_MAX];
	struct find f = { .name = name, .len = len };
	struct mfs_key k;
	size_t vlen;
	int rc;

	if (len == 0 || len > MFS_NAME_MAX)
		return -EINVAL;
	rc = find(v, dir, &f, buf, &vlen);
	if (rc == 0)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	if (vlen + MFS_DIRENT_HDR + len > MFS_MAX_VALUE)
		return -ENOSPC; /* too many colliding names in one item */
	mfs_put_le64(buf + vlen, ino);
	buf[vlen + 8] = type;
	buf[vlen + 9] = (uint8_t)len;
	memcpy(buf + vlen + MFS_DIRENT_HDR, name, len);
	k = mfs_key_make(dir, MFS_ITEM_DIRENT, mfs_dir_hash(v, name, len));
	return mfs_btree_put(v, MFS_TREE_FS, &k, buf,
			     vlen + MFS_DIRENT_HDR + len);
}

int mfs_dir_set(struct mfs_vol *v, uint64_t dir, const char *name, size_t len,
		uint64_t ino, uint8_t type)
{
	uint8_t buf[MFS_MAX_VALUE];
	struct find f = { .name = name, .len = len };
	struct mfs_key k;
	size_t vlen;
	int rc;

	rc = find(v, dir, &f, buf, &vlen);
	if (rc)
		return rc;
	mfs_put_le64(buf + f.at, ino);
	buf[f.at + 8] = type;
	k = mfs_key_make(dir, MFS_ITEM_DIRENT, mfs_dir_hash(v, name, len));
	return mfs_btree_update(v, MFS_TREE_FS, &k, buf, vlen);
}

int mfs_dir_remove(struct mfs_vol *v, uint64_t dir, const char *name,
		   size_t len)
{
	uint8_t buf[MFS_MAX_VALUE];
	struct find f = { .name = name, .len = len };
	struct mfs_key k;
	size_t vlen, elen = MFS_DIRENT_HDR + len;
	int rc;

	rc = find(v, dir, &f, buf, &vlen);
	if (rc)
		return rc;
	k = mfs_key_make(dir, MFS_ITEM_DIRENT, mfs_dir_hash(v, name, len));
	if (vlen == elen)
		return mfs_btree_delete(v, MFS_TREE_FS, &k);
	memmove(buf + f.at, buf + f.at + elen, vlen - f.at - elen);
	return mfs_btree_update(v, MFS_TREE_FS, &k, buf, vlen - elen);
}

int mfs_dir_is_empty(struct mfs_vol *v, uint64_t dir)
{
	struct mfs_key lo = mfs_key_make(dir, MFS_ITEM_DIRENT, 0);
	struct mfs_key hi = mfs_key_make(dir, MFS_ITEM_DIRENT, UINT64_MAX);
	struct mfs_cursor c;
	int rc;

	mfs_cursor_init(&c, v, MFS_TREE_FS, &lo, &hi);
	rc = mfs_cursor_next(&c, NULL, NULL, NULL);
	if (rc < 0)
		return rc;
	return rc == 0;
}

struct iter {
	mfs_dir_cb cb;
	void *ctx;
	uint64_t hash;
};

static int iter_cb(void *ctx, size_t at, const char *name, size_t len,
		   uint64_t ino, uint8_t type)
{
	struct iter *it = ctx;

	return it->cb(it->ctx, name, len, ino, type, it->hash);
}

int mfs_dir_iterate(struct mfs_vol *v, uint64_t dir, uint64_t start,
		    mfs_dir_cb cb, void *ctx)
{
	struct mfs_key lo = mfs_key_make(dir, MFS_ITEM_DIRENT, start);
	struct mfs_key hi = mfs_key_make(dir, MFS_ITEM_DIRENT, UINT64_MAX);
	struct mfs_cursor c;
	struct mfs_key k;
	const void *val;
	size_t len;
	int rc;

	mfs_cursor_init(&c, v, MFS_TREE_FS, &lo, &hi);
	while ((rc = mfs_cursor_next(&c, &k, &val, &len)) > 0) {
		/* Copy: the callback may change the tree (readdirplus
		 * lookups do not, but be safe). */
		uint8_t buf[MFS_MAX_VALUE];
		struct iter it = { .cb = cb, .ctx = ctx, .hash = k.offset };

		memcpy(buf, val, len);
		rc = walk(v, dir, buf, len, iter_cb, &it);
		if (rc)
			return rc;
	}
	return rc;
}
