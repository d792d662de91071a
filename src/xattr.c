/* SPDX-License-Identifier: MIT */
/*
 * xattr.c — extended attributes as XATTR items of the FS tree.
 *
 * Layer 6. Calls btree (items), alloc (the free-space check before a
 * change of several items), siphash and log. Knows nothing of inodes: the
 * fs layer checks that the inode exists, updates its ctime and holds the
 * lock.
 *
 * One attribute is 1..67 items (docs/format.md §8.6):
 *
 *   (ino, XATTR, h << 7 | 0)   header, name, first value bytes
 *   (ino, XATTR, h << 7 | 1)   next MFS_MAX_VALUE value bytes
 *   ...                        every chunk full but the last
 *
 * with h = SipHash-2-4(sb_hash_seed, name) >> 8. The number of chunks and
 * the length of each follow from the value length and the name length
 * alone, so a reader checks every item against the header.
 *
 * Two names with the same 56-bit h cannot both exist: setting the second
 * gives -ENOSPC. Every lookup compares the stored name, so another name's
 * value is never returned.
 *
 * Atomicity: a set or remove changes several items. Before the first
 * change, enough free blocks for the worst case of every item change must
 * be available; so the B+tree's own free-space check cannot fail half-way
 * and leave an attribute whose chunks disagree with its header. (Any other
 * failure half-way sets the volume's sticky error; only an abort clears
 * it.)
 */
#include "xattr.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <sys/xattr.h>

#include "alloc.h"
#include "btree.h"
#include "endian.h"
#include "log.h"
#include "siphash.h"

#define CHUNK_MASK ((uint64_t)MFS_XATTR_CHUNKS - 1)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The namespaces Linux filesystems store: a prefix with a non-empty rest,
 * or an exact name (POSIX ACLs, kept as the opaque blobs the kernel hands
 * over). */
static const struct {
	const char *name;
	bool prefix;
} namespaces[] = {
	{ "user.", true },
	{ "trusted.", true },
	{ "security.", true },
	{ "system.posix_acl_access", false },
	{ "system.posix_acl_default", false },
};

/* A decoded, checked chunk 0. name points into the mapping: valid until
 * the next change to the tree. */
struct xhead {
	uint64_t h;
	uint32_t total;          /* value length */
	unsigned name_len;
	const uint8_t *name;
	const uint8_t *first;    /* value bytes in chunk 0 */
	size_t first_len;
	unsigned nchunks;
};

/* Check a name: 0 and its length, -ERANGE (empty, or longer than 255
 * bytes, as Linux reports), or -EOPNOTSUPP (not a namespace we store). */
static int check_name(const char *name, size_t *len)
{
	size_t nl = strnlen(name, MFS_NAME_MAX + 1);

	if (nl == 0 || nl > MFS_NAME_MAX)
		return -ERANGE;
	for (size_t i = 0; i < ARRAY_SIZE(namespaces); i++) {
		size_t pl = strlen(namespaces[i].name);
		bool len_ok = namespaces[i].prefix ? nl > pl : nl == pl;

		if (len_ok && memcmp(name, namespaces[i].name, pl) == 0) {
			*len = nl;
			return 0;
		}
	}
	return -EOPNOTSUPP;
}

static uint64_t name_hash(const struct mfs_vol *v, const void *name,
			  size_t len)
{
	return mfs_siphash(v->sb.hash_seed, name, len) >> 8;
}

static struct mfs_key xkey(uint64_t ino, uint64_t h, unsigned chunk)
{
	return mfs_key_make(ino, MFS_ITEM_XATTR,
			    (h << MFS_XATTR_CHUNK_BITS) | chunk);
}

size_t mfs_xattr_first_len(uint32_t total, size_t name_len)
{
	size_t cap = MFS_XATTR_CHUNK0_VALUE - name_len;

	return total < cap ? total : cap;
}

unsigned mfs_xattr_chunks(uint32_t total, size_t name_len)
{
	size_t rest = total - mfs_xattr_first_len(total, name_len);

	return 1u + (unsigned)((rest + MFS_MAX_VALUE - 1) / MFS_MAX_VALUE);
}

/* Offset in the value and length of continuation chunk c >= 1. */
static void chunk_span(uint32_t total, size_t name_len, unsigned c,
		       size_t *off, size_t *len)
{
	size_t o = mfs_xattr_first_len(total, name_len) + (size_t)(c - 1) * MFS_MAX_VALUE;

	*off = o;
	*len = total - o < MFS_MAX_VALUE ? total - o : MFS_MAX_VALUE;
}

/* Decode and check chunk 0 of (ino, h) from its item value. */
static int parse_head(struct mfs_vol *v, uint64_t ino, uint64_t h,
		      const uint8_t *val, size_t len, struct xhead *x)
{
	unsigned flags;

	if (len < MFS_XATTR_HDR)
		return MFS_CORRUPT(v, "xattr (%" PRIu64 ", %#" PRIx64
				   "): chunk 0 of %zu bytes", ino, h, len);
	x->h = h;
	x->total = mfs_get_le32(MFS_FIELD_PTR(val, struct mfs_disk_xattr,
					      xa_value_len));
	x->name_len = val[offsetof(struct mfs_disk_xattr, xa_name_len)];
	flags = val[offsetof(struct mfs_disk_xattr, xa_flags)];
	if (x->total > MFS_XATTR_VALUE_MAX || x->name_len == 0 || flags != 0)
		return MFS_CORRUPT(v, "xattr (%" PRIu64 ", %#" PRIx64
				   "): bad header (length %" PRIu32
				   ", name length %u, flags %#x)", ino, h,
				   x->total, x->name_len, flags);
	x->first_len = mfs_xattr_first_len(x->total, x->name_len);
	if (len != MFS_XATTR_HDR + x->name_len + x->first_len)
		return MFS_CORRUPT(v, "xattr (%" PRIu64 ", %#" PRIx64
				   "): chunk 0 of %zu bytes, header says %zu",
				   ino, h, len,
				   MFS_XATTR_HDR + x->name_len + x->first_len);
	x->name = val + MFS_XATTR_HDR;
	if (memchr(x->name, '\0', x->name_len))
		return MFS_CORRUPT(v, "xattr (%" PRIu64 ", %#" PRIx64
				   "): NUL in name", ino, h);
	x->first = x->name + x->name_len;
	x->nchunks = mfs_xattr_chunks(x->total, x->name_len);
	return 0;
}

enum found { ABSENT, MATCH, OTHER };

/* Look up the attribute name (hash h) of ino: *f is ABSENT, MATCH (x is
 * its checked header) or OTHER (another name with the same hash). */
static int find(struct mfs_vol *v, uint64_t ino, uint64_t h, const char *name,
		size_t name_len, struct xhead *x, enum found *f)
{
	struct mfs_key k = xkey(ino, h, 0);
	const void *val;
	size_t len;
	int rc;

	rc = mfs_btree_lookup(v, MFS_TREE_FS, &k, &val, &len);
	if (rc == -ENOENT) {
		*f = ABSENT;
		return 0;
	}
	if (rc)
		return rc;
	rc = parse_head(v, ino, h, val, len, x);
	if (rc)
		return rc;
	*f = x->name_len == name_len && memcmp(x->name, name, name_len) == 0
		     ? MATCH : OTHER;
	return 0;
}

/*
 * Fail with -ENOSPC, before anything changes, unless nops item changes
 * cannot run out of blocks half-way. One change allocates at most a copy
 * and a split per level plus a new root (the B+tree's own check); the tree
 * may grow by a level during a set of up to 128 items, so count one more.
 * A single change needs no check here: the B+tree refuses it whole, and
 * removing a small attribute on a nearly full volume should not fail
 * sooner than that.
 */
static int reserve(struct mfs_vol *v, unsigned nops)
{
	uint64_t level = v->roots[MFS_TREE_FS].level;
	uint64_t per_op = 2 * (level + 2) + 1;

	if (nops > 1 &&
	    mfs_alloc_avail_blocks(v->alloc) < (uint64_t)nops * per_op)
		return -ENOSPC;
	return 0;
}

/* Changes are refused whole on a read-only volume or after an error,
 * before the free-space check could report something else. */
static int writable(const struct mfs_vol *v)
{
	if (v->readonly)
		return -EROFS;
	return v->error;
}

/* Delete the items of hash h of ino from chunk `from` on. */
static int delete_chunks(struct mfs_vol *v, uint64_t ino, uint64_t h,
			 unsigned from)
{
	struct mfs_key start = xkey(ino, h, from);
	struct mfs_key end = xkey(ino, h, MFS_XATTR_CHUNKS - 1);
	struct mfs_key keys[MFS_XATTR_CHUNKS], k;
	struct mfs_cursor c;
	unsigned n = 0;
	int rc;

	mfs_cursor_init(&c, v, MFS_TREE_FS, &start, &end);
	while ((rc = mfs_cursor_next(&c, &k, NULL, NULL)) > 0)
		keys[n++] = k;
	if (rc)
		return rc;
	for (unsigned i = 0; i < n; i++) {
		rc = mfs_btree_delete(v, MFS_TREE_FS, &keys[i]);
		if (rc)
			return rc;
	}
	return 0;
}

int mfs_xattr_set(struct mfs_vol *v, uint64_t ino, const char *name,
		  const void *value, size_t size, int flags)
{
	uint8_t buf[MFS_MAX_VALUE];
	struct xhead old;
	enum found f;
	size_t nl, first;
	unsigned nnew, nold, nops;
	struct mfs_key k;
	uint64_t h;
	int rc;

	rc = check_name(name, &nl);
	if (rc)
		return rc;
	if (size > MFS_XATTR_VALUE_MAX)
		return -E2BIG;
	if ((flags & ~(XATTR_CREATE | XATTR_REPLACE)) || (size && !value))
		return -EINVAL;
	rc = writable(v);
	if (rc)
		return rc;
	h = name_hash(v, name, nl);
	rc = find(v, ino, h, name, nl, &old, &f);
	if (rc)
		return rc;
	if (f == MATCH && (flags & XATTR_CREATE))
		return -EEXIST;
	if (f != MATCH && (flags & XATTR_REPLACE))
		return -ENODATA;
	if (f == OTHER) {
		mfs_log(MFS_LOG_WARNING, "xattr %s of inode %" PRIu64 ": hash "
			"collision with %.*s; not stored", name, ino,
			(int)old.name_len, (const char *)old.name);
		return -ENOSPC;
	}

	nnew = mfs_xattr_chunks((uint32_t)size, nl);
	nold = f == MATCH ? old.nchunks : 0;
	nops = nnew + (nold > nnew ? nold - nnew : 0);
	rc = reserve(v, nops);
	if (rc)
		return rc;

	/* old.* point into the mapping: not used past this point. */
	memset(buf, 0, MFS_XATTR_HDR);
	mfs_put_le32(MFS_FIELD_WPTR(buf, struct mfs_disk_xattr, xa_value_len),
		     (uint32_t)size);
	buf[offsetof(struct mfs_disk_xattr, xa_name_len)] = (uint8_t)nl;
	memcpy(buf + MFS_XATTR_HDR, name, nl);
	first = mfs_xattr_first_len((uint32_t)size, nl);
	if (first)
		memcpy(buf + MFS_XATTR_HDR + nl, value, first);
	k = xkey(ino, h, 0);
	rc = mfs_btree_put(v, MFS_TREE_FS, &k, buf, MFS_XATTR_HDR + nl + first);
	if (rc)
		return rc;
	for (unsigned c = 1; c < nnew; c++) {
		size_t off, len;

		chunk_span((uint32_t)size, nl, c, &off, &len);
		k = xkey(ino, h, c);
		rc = mfs_btree_put(v, MFS_TREE_FS, &k,
				   (const uint8_t *)value + off, len);
		if (rc)
			return rc;
	}
	if (nold > nnew)
		return delete_chunks(v, ino, h, nnew);
	return 0;
}

int mfs_xattr_get(struct mfs_vol *v, uint64_t ino, const char *name,
		  void *buf, size_t size, size_t *len)
{
	struct mfs_key start, end, k;
	struct mfs_cursor cur;
	struct xhead x;
	enum found f;
	size_t nl;
	const void *val;
	size_t vlen;
	int rc;

	rc = check_name(name, &nl);
	if (rc)
		return rc;
	rc = find(v, ino, name_hash(v, name, nl), name, nl, &x, &f);
	if (rc)
		return rc;
	if (f != MATCH)
		return -ENODATA;
	*len = x.total;
	if (size == 0)
		return 0;
	if (size < x.total)
		return -ERANGE;
	memcpy(buf, x.first, x.first_len);
	if (x.nchunks == 1)
		return 0;

	start = xkey(ino, x.h, 1);
	end = xkey(ino, x.h, x.nchunks - 1);
	mfs_cursor_init(&cur, v, MFS_TREE_FS, &start, &end);
	for (unsigned c = 1; c < x.nchunks; c++) {
		size_t off, want;

		chunk_span(x.total, x.name_len, c, &off, &want);
		rc = mfs_cursor_next(&cur, &k, &val, &vlen);
		if (rc < 0)
			return rc;
		if (rc == 0 || k.offset != start.offset + c - 1 || vlen != want)
			return MFS_CORRUPT(v, "xattr (%" PRIu64 ", %#" PRIx64
					   "): chunk %u of %u missing or not "
					   "%zu bytes", ino, x.h, c, x.nchunks,
					   want);
		memcpy((uint8_t *)buf + off, val, vlen);
	}
	return 0;
}

/*
 * Names are the chunk-0 items in key order. Every item is checked on the
 * way: each chunk 0 against its key's hash, each continuation chunk
 * against the header before it, so an image whose items disagree is
 * reported here even if nobody asks for that value.
 */
int mfs_xattr_list(struct mfs_vol *v, uint64_t ino, char *buf, size_t size,
		   size_t *len)
{
	struct mfs_key start = mfs_key_make(ino, MFS_ITEM_XATTR, 0);
	struct mfs_key end = mfs_key_make(ino, MFS_ITEM_XATTR, UINT64_MAX);
	struct mfs_cursor cur;
	struct mfs_key k;
	struct xhead x = { 0 };
	bool in_attr = false;
	unsigned next = 0;       /* chunk expected next in the current attr */
	const void *val;
	size_t vlen, need = 0;
	int rc;

	mfs_cursor_init(&cur, v, MFS_TREE_FS, &start, &end);
	while ((rc = mfs_cursor_next(&cur, &k, &val, &vlen)) > 0) {
		uint64_t h = k.offset >> MFS_XATTR_CHUNK_BITS;
		unsigned c = (unsigned)(k.offset & CHUNK_MASK);
		size_t off, want;

		if (c == 0) {
			if (in_attr && next != x.nchunks)
				goto missing;
			rc = parse_head(v, ino, h, val, vlen, &x);
			if (rc)
				return rc;
			if (name_hash(v, x.name, x.name_len) != h)
				return MFS_CORRUPT(v, "xattr (%" PRIu64 ", %#"
						   PRIx64 "): name %.*s has "
						   "another hash", ino, h,
						   (int)x.name_len,
						   (const char *)x.name);
			if (size && need + x.name_len + 1 <= size) {
				memcpy(buf + need, x.name, x.name_len);
				buf[need + x.name_len] = '\0';
			}
			need += x.name_len + 1u;
			in_attr = true;
			next = 1;
			continue;
		}
		if (!in_attr || h != x.h || c != next || c >= x.nchunks)
			return MFS_CORRUPT(v, "xattr (%" PRIu64 ", %#" PRIx64
					   "): stray chunk %u", ino, h, c);
		chunk_span(x.total, x.name_len, c, &off, &want);
		if (vlen != want)
			return MFS_CORRUPT(v, "xattr (%" PRIu64 ", %#" PRIx64
					   "): chunk %u of %zu bytes, not %zu",
					   ino, h, c, vlen, want);
		next++;
	}
	if (rc)
		return rc;
	if (in_attr && next != x.nchunks)
		goto missing;
	*len = need;
	if (size && size < need)
		return -ERANGE;
	return 0;
missing:
	return MFS_CORRUPT(v, "xattr (%" PRIu64 ", %#" PRIx64 "): %u of %u "
			   "chunks", ino, x.h, next, x.nchunks);
}

int mfs_xattr_remove(struct mfs_vol *v, uint64_t ino, const char *name)
{
	struct xhead x;
	enum found f;
	size_t nl;
	uint64_t h;
	int rc;

	rc = check_name(name, &nl);
	if (rc)
		return rc;
	rc = writable(v);
	if (rc)
		return rc;
	h = name_hash(v, name, nl);
	rc = find(v, ino, h, name, nl, &x, &f);
	if (rc)
		return rc;
	if (f != MATCH)
		return -ENODATA;
	rc = reserve(v, x.nchunks);
	if (rc)
		return rc;
	return delete_chunks(v, ino, h, 0);
}

/*
 * One attribute (hash) at a time, each after its own free-space check: if
 * space runs out, the attributes left are whole. Items are not decoded, so
 * this also removes damaged attributes. Each round deletes every item of
 * the first hash left, so the next round starts from the beginning again.
 */
int mfs_xattr_remove_all(struct mfs_vol *v, uint64_t ino)
{
	const struct mfs_key start = mfs_key_make(ino, MFS_ITEM_XATTR, 0);
	const struct mfs_key end = mfs_key_make(ino, MFS_ITEM_XATTR,
						UINT64_MAX);
	int rc = writable(v);

	if (rc)
		return rc;
	for (;;) {
		struct mfs_key keys[MFS_XATTR_CHUNKS], k, gend;
		struct mfs_cursor c;
		unsigned n = 0;
		uint64_t h;

		mfs_cursor_init(&c, v, MFS_TREE_FS, &start, &end);
		rc = mfs_cursor_next(&c, &k, NULL, NULL);
		if (rc <= 0)
			return rc;
		h = k.offset >> MFS_XATTR_CHUNK_BITS;
		gend = xkey(ino, h, MFS_XATTR_CHUNKS - 1);
		mfs_cursor_init(&c, v, MFS_TREE_FS, &k, &gend);
		while ((rc = mfs_cursor_next(&c, &k, NULL, NULL)) > 0)
			keys[n++] = k;
		if (rc)
			return rc;
		rc = reserve(v, n);
		if (rc)
			return rc;
		for (unsigned i = 0; i < n; i++) {
			rc = mfs_btree_delete(v, MFS_TREE_FS, &keys[i]);
			if (rc)
				return rc;
		}
	}
}
