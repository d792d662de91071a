/* SPDX-License-Identifier: MIT */
/*
 * mfs_damage.c — build a small populated image, or make one kind of damage
 * to it; for the daemon's damaged-image test (test_damaged_mount.sh).
 *
 *   mfs_damage base IMAGE    build the base image (16 MiB): /a/b/c, /a/f2
 *                            (hard-linked as /hl), /many (400 files, so the
 *                            FS tree has internal nodes), /data/big,
 *                            /data/small, /data/sub/deep, /x/file with
 *                            xattrs, symlinks /s and /longlink (two chunks)
 *   mfs_damage KIND IMAGE    make damage KIND to a copy of the base image;
 *                            prints the top-level name whose subtree holds
 *                            the damage ("-": none in particular)
 *   mfs_damage list          print the kinds, one a line: KIND EXPECT
 *                            (what the daemon must do; see kinds[])
 *
 * Each kind damages one thing, as test_fsck.c and test_corrupt.c do: raw
 * bytes patched with the checksums fixed up (so that only the intended
 * fault is there), a checksum broken on purpose, or items changed through
 * the btree API and committed normally. Exit status 0, or 1 with a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "btree.h"
#include "crc32c.h"
#include "dir.h"
#include "endian.h"
#include "image.h"
#include "mmapfs/mmapfs.h"
#include "newfs.h"
#include "txn.h"
#include "vol.h"

#define IMG_SIZE (16u << 20)
#define MANY 400
#define DI(f) offsetof(struct mfs_disk_inode, f)
#define NODE(f) offsetof(struct mfs_disk_node, f)
#define PTR(f) offsetof(struct mfs_disk_ptr, f)
#define ITEM(f) offsetof(struct mfs_disk_item, f)

static const char *img;
static const struct mfs_cred root_cred = { 0, 0, true, true };

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mfs_damage: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

#define CHECK(expr)                                                          \
	do {                                                                 \
		int rc_ = (expr);                                            \
		if (rc_)                                                     \
			die("%s:%d: %s = %d", __FILE__, __LINE__, #expr, rc_); \
	} while (0)

/* ------------------------------------------------------------------ */
/* The base image                                                      */
/* ------------------------------------------------------------------ */

static uint64_t mk(struct mfs_fs *fs, uint64_t parent, const char *name,
		   uint32_t mode)
{
	struct mfs_attr a;

	if (S_ISDIR(mode))
		CHECK(mfs_mkdir(fs, &root_cred, parent, name, mode, &a));
	else
		CHECK(mfs_mknod(fs, &root_cred, parent, name, mode, 0, &a));
	return a.ino;
}

static void put_data(struct mfs_fs *fs, uint64_t ino, size_t len, unsigned seed)
{
	uint8_t *buf = malloc(len);
	size_t written = 0;

	if (!buf)
		die("out of memory");
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 31 + seed);
	CHECK(mfs_write(fs, &root_cred, ino, 0, buf, len, 0, &written));
	if (written != len)
		die("short write");
	free(buf);
}

static void make_base(void)
{
	/* A fixed name-hash key: which leaf holds what, and so what a
	 * damaged node takes with it, is the same on every run. */
	static const uint64_t seed[2] = { 0x6d6d617066732d64ULL,
					  0x616d616765642121ULL };
	struct mfs_format_opts fo = { .size = IMG_SIZE, .force = true,
				      .hash_seed = seed };
	struct mfs_fs *fs;
	struct mfs_attr at;
	uint64_t a, b, f2, many, data, sub, x, f;
	char target[1500], name[64], big[3000];

	CHECK(mfs_format(img, &fo));
	CHECK(mfs_fs_open(img, 0, &fs));
	a = mk(fs, MFS_ROOT, "a", S_IFDIR | 0755);
	b = mk(fs, a, "b", S_IFDIR | 0755);
	mk(fs, b, "c", S_IFDIR | 0755);
	f2 = mk(fs, a, "f2", S_IFREG | 0644);
	put_data(fs, f2, 3 * 4096 + 100, 2);
	CHECK(mfs_link(fs, f2, MFS_ROOT, "hl", &at));
	many = mk(fs, MFS_ROOT, "many", S_IFDIR | 0755);
	for (int i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "file-with-a-longer-name-%03d", i);
		f = mk(fs, many, name, S_IFREG | 0644);
		if (i % 10 == 0)
			put_data(fs, f, 4096 + (size_t)i, (unsigned)i);
	}
	data = mk(fs, MFS_ROOT, "data", S_IFDIR | 0755);
	put_data(fs, mk(fs, data, "big", S_IFREG | 0644), 256 * 4096, 7);
	put_data(fs, mk(fs, data, "small", S_IFREG | 0644), 2 * 4096, 8);
	sub = mk(fs, data, "sub", S_IFDIR | 0755);
	put_data(fs, mk(fs, sub, "deep", S_IFREG | 0644), 5000, 9);
	x = mk(fs, MFS_ROOT, "x", S_IFDIR | 0755);
	f = mk(fs, x, "file", S_IFREG | 0644);
	put_data(fs, f, 100, 10);
	CHECK(mfs_setxattr(fs, f, "user.small", "value", 5, 0));
	memset(big, 'v', sizeof(big));
	CHECK(mfs_setxattr(fs, f, "user.big", big, sizeof(big), 0));
	CHECK(mfs_setxattr(fs, x, "user.dir", "d", 1, 0));
	CHECK(mfs_symlink(fs, &root_cred, MFS_ROOT, "s", "a/f2", &at));
	memset(target, 'x', sizeof(target) - 1);
	target[sizeof(target) - 1] = 0;
	CHECK(mfs_symlink(fs, &root_cred, MFS_ROOT, "longlink", target, &at));
	CHECK(mfs_fs_close(fs));
}

/* ------------------------------------------------------------------ */
/* Finding things                                                      */
/* ------------------------------------------------------------------ */

/* The inode at path (relative to the root, '/'-separated). */
static uint64_t ino_of(const char *path)
{
	struct mfs_fs *fs;
	struct mfs_attr a;
	uint64_t ino = MFS_ROOT;
	char buf[256], *save = NULL, *part;

	snprintf(buf, sizeof(buf), "%s", path);
	CHECK(mfs_fs_open(img, MFS_FS_RDONLY, &fs));
	for (part = strtok_r(buf, "/", &save); part;
	     part = strtok_r(NULL, "/", &save)) {
		CHECK(mfs_lookup(fs, ino, part, &a));
		ino = a.ino;
	}
	CHECK(mfs_fs_close(fs));
	return ino;
}

static struct mfs_key key(uint64_t obj, unsigned type, uint64_t off)
{
	return mfs_key_make(obj, (uint8_t)type, off);
}

/* Where the value of an FS tree item lies in the image file. */
static uint64_t value_off(struct mfs_key k, size_t *len)
{
	struct mfs_vol *v;
	const void *val;
	size_t l;
	uint64_t off;

	CHECK(mfs_vol_open(img, MFS_VOL_RDONLY | MFS_VOL_NOLOCK, &v));
	CHECK(mfs_btree_lookup(v, MFS_TREE_FS, &k, &val, &l));
	off = (uint64_t)((const uint8_t *)val - v->img->base);
	mfs_vol_close(v);
	if (len)
		*len = l;
	return off;
}

/* The key of the DIRENT item holding name in dir. */
static struct mfs_key dirent_key(uint64_t dir, const char *name)
{
	struct mfs_vol *v;
	uint64_t h;

	CHECK(mfs_vol_open(img, MFS_VOL_RDONLY | MFS_VOL_NOLOCK, &v));
	h = mfs_dir_hash(v, name, strlen(name));
	mfs_vol_close(v);
	return key(dir, MFS_ITEM_DIRENT, h);
}

/* The image, mapped for raw patching. */
static uint8_t *base;
static size_t base_len;

static void map_image(void)
{
	struct stat st;
	int fd = open(img, O_RDWR);

	if (fd < 0 || fstat(fd, &st))
		die("%s: %s", img, strerror(errno));
	base_len = (size_t)st.st_size;
	base = mmap(NULL, base_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	close(fd);
}

static void unmap_image(void)
{
	if (msync(base, base_len, MS_SYNC) || munmap(base, base_len))
		die("msync: %s", strerror(errno));
}

static uint8_t *blk(uint64_t b)
{
	if ((b + 1) * MFS_BLOCK_SIZE > base_len)
		die("block %llu outside the image", (unsigned long long)b);
	return base + b * MFS_BLOCK_SIZE;
}

static void node_fix(uint64_t b)
{
	uint8_t *n = blk(b);

	mfs_put_le32(n, mfs_crc32c(0, n + 4, MFS_BLOCK_SIZE - 4));
}

/* The superblock in use (the valid one with the highest generation). */
static struct mfs_super sb_cur(void)
{
	struct mfs_super sb[2];
	int rc[2];

	for (unsigned i = 0; i < 2; i++)
		rc[i] = mfs_super_decode(blk(i), base_len / MFS_BLOCK_SIZE, i,
					 &sb[i]);
	if (rc[0] && rc[1])
		die("no valid superblock");
	if (!rc[1] && (rc[0] || sb[1].generation > sb[0].generation))
		return sb[1];
	return sb[0];
}

/* The path from the FS root to the leaf that holds k: blocks[0] is the
 * root; idx[i] is the pointer taken in blocks[i]. Returns the depth (the
 * leaf is blocks[depth - 1]). */
static unsigned path_to(struct mfs_key k, uint64_t *blocks, unsigned *idx)
{
	struct mfs_super sb = sb_cur();
	uint64_t b = sb.roots[MFS_TREE_FS].block;
	unsigned depth = 0;

	for (;;) {
		const uint8_t *n = blk(b);
		unsigned level = n[NODE(nd_level)];
		unsigned nr = mfs_get_le16(n + NODE(nd_nritems)), i, pick = 0;

		blocks[depth] = b;
		if (level == 0)
			return depth + 1;
		for (i = 0; i < nr; i++) {
			const uint8_t *p = n + MFS_NODE_HDR + i * sizeof(struct mfs_disk_ptr);
			struct mfs_key pk = key(mfs_get_le64(p + PTR(kp_objectid)),
						p[PTR(kp_type)],
						mfs_get_le64(p + PTR(kp_offset)));

			if (i == 0 || mfs_key_cmp(&pk, &k) <= 0)
				pick = i;
		}
		idx[depth++] = pick;
		b = mfs_get_le64(n + MFS_NODE_HDR + pick * sizeof(struct mfs_disk_ptr) +
				 PTR(kp_block));
	}
}

/* ------------------------------------------------------------------ */
/* Through the API: changed, committed                                 */
/* ------------------------------------------------------------------ */

static struct mfs_vol *vopen(void)
{
	struct mfs_vol *v;

	CHECK(mfs_vol_open(img, 0, &v));
	return v;
}

static void vclose(struct mfs_vol *v)
{
	v->dirty = true;
	CHECK(mfs_txn_commit(v));
	CHECK(mfs_vol_close(v));
}

/* ------------------------------------------------------------------ */
/* The kinds                                                           */
/* ------------------------------------------------------------------ */

static const char *many_name = "file-with-a-longer-name-200";

/* A leaf of the FS tree (the one holding entries of /many) with a byte of
 * an item flipped: its checksum fails. */
static const char *d_leaf_crc(void)
{
	uint64_t off = value_off(dirent_key(ino_of("many"), many_name), NULL);

	map_image();
	base[off + 12] ^= 0x40;
	unmap_image();
	return "many";
}

/* The pointer to that leaf in its parent: past the end of the image. */
static const char *d_ptr_past_end(void)
{
	uint64_t blocks[8];
	unsigned idx[8], depth;

	map_image();
	depth = path_to(dirent_key(ino_of("many"), many_name), blocks, idx);
	if (depth < 2)
		die("the FS tree is a single leaf");
	mfs_put_le64(blk(blocks[depth - 2]) + MFS_NODE_HDR +
		     idx[depth - 2] * sizeof(struct mfs_disk_ptr) + PTR(kp_block),
		     base_len / MFS_BLOCK_SIZE + 50);
	node_fix(blocks[depth - 2]);
	unmap_image();
	return "many";
}

/* ... pointing at the parent itself (generation matched): a loop that only
 * the level check stops. */
static const char *d_ptr_loop(void)
{
	uint64_t blocks[8], parent;
	unsigned idx[8], depth;
	uint8_t *p;

	map_image();
	depth = path_to(dirent_key(ino_of("many"), many_name), blocks, idx);
	if (depth < 2)
		die("the FS tree is a single leaf");
	parent = blocks[depth - 2];
	p = blk(parent) + MFS_NODE_HDR + idx[depth - 2] * sizeof(struct mfs_disk_ptr);
	mfs_put_le64(p + PTR(kp_block), parent);
	mfs_put_le64(p + PTR(kp_generation),
		     mfs_get_le64(blk(parent) + NODE(nd_generation)));
	node_fix(parent);
	unmap_image();
	return "many";
}

/* An item header of that leaf whose value lies past the end of the block
 * (checksum right). */
static const char *d_item_bounds(void)
{
	uint64_t blocks[8];
	unsigned idx[8], depth;
	uint8_t *leaf, *it;

	map_image();
	depth = path_to(dirent_key(ino_of("many"), many_name), blocks, idx);
	leaf = blk(blocks[depth - 1]);
	it = leaf + MFS_NODE_HDR + 2 * sizeof(struct mfs_disk_item);
	mfs_put_le16(it + ITEM(it_voff), MFS_BLOCK_SIZE - 8);
	mfs_put_le16(it + ITEM(it_size), 200);
	node_fix(blocks[depth - 1]);
	unmap_image();
	return "many";
}

/* The FS tree's root node with a bad checksum: nothing is reachable. */
static const char *d_fs_root_crc(void)
{
	struct mfs_super sb;

	map_image();
	sb = sb_cur();
	blk(sb.roots[MFS_TREE_FS].block)[MFS_NODE_HDR + 5] ^= 1;
	unmap_image();
	return "-";
}

/* The FREE tree's root with a bad checksum. */
static const char *d_free_crc(void)
{
	struct mfs_super sb;

	map_image();
	sb = sb_cur();
	blk(sb.roots[MFS_TREE_FREE].block)[MFS_BLOCK_SIZE - 3] ^= 1;
	unmap_image();
	return "-";
}

/* Patch an extent of path (at file block 0) and fix the leaf. */
static void patch_extent(const char *path, uint64_t block, uint64_t count)
{
	size_t len;
	uint64_t off = value_off(key(ino_of(path), MFS_ITEM_EXTENT, 0), &len);

	map_image();
	mfs_put_le64(base + off, block);
	if (count)
		mfs_put_le64(base + off + 8, count);
	node_fix(off / MFS_BLOCK_SIZE);
	unmap_image();
}

static void get_extent(const char *path, uint64_t *block, uint64_t *count)
{
	uint64_t off = value_off(key(ino_of(path), MFS_ITEM_EXTENT, 0), NULL);

	map_image();
	*block = mfs_get_le64(base + off);
	*count = mfs_get_le64(base + off + 8);
	unmap_image();
}

/* An extent past the end of the image. */
static const char *d_extent_past_end(void)
{
	patch_extent("data/big", IMG_SIZE / MFS_BLOCK_SIZE + 100, 0);
	return "data";
}

/* An extent whose block + count wraps around. */
static const char *d_extent_wrap(void)
{
	patch_extent("data/big", 300, UINT64_MAX - 100);
	return "data";
}

/* A file's extent on the FS tree's root node. */
static const char *d_extent_on_node(void)
{
	struct mfs_super sb;

	map_image();
	sb = sb_cur();
	unmap_image();
	patch_extent("data/small", sb.roots[MFS_TREE_FS].block, 1);
	return "data";
}

/* Two files sharing blocks. */
static const char *d_extent_shared(void)
{
	uint64_t b, c;

	get_extent("data/big", &b, &c);
	patch_extent("data/small", b + 10, 2);
	return "data";
}

/* Blocks of a file also listed as free (the FREE tree and the counters
 * agree with each other, not with the FS tree). */
static const char *d_free_in_use(void)
{
	struct mfs_vol *v;
	uint64_t b, c;

	get_extent("data/big", &b, &c);
	v = vopen();
	CHECK(mfs_alloc_free(v->alloc, b, c, 0));
	vclose(v);
	return "data";
}

/* The name length byte of the entry "b" in /a. */
static void patch_namelen(uint8_t nl)
{
	size_t len;
	uint64_t off = value_off(dirent_key(ino_of("a"), "b"), &len);

	map_image();
	base[off + 9] = nl;
	node_fix(off / MFS_BLOCK_SIZE);
	unmap_image();
}

static const char *d_dirent_namelen0(void)
{
	patch_namelen(0);
	return "a";
}

static const char *d_dirent_namelen_long(void)
{
	patch_namelen(250);
	return "a";
}

/* Add an entry (raw value) to dir through the btree API. */
static void add_dirent(uint64_t dir, const char *name, uint64_t ino,
		       uint8_t type)
{
	struct mfs_vol *v = vopen();
	struct mfs_key k;
	uint8_t val[MFS_DIRENT_HDR + 64];
	size_t n = strlen(name);

	k = key(dir, MFS_ITEM_DIRENT, mfs_dir_hash(v, name, n));
	mfs_put_le64(val, ino);
	val[8] = type;
	val[9] = (uint8_t)n;
	memcpy(val + MFS_DIRENT_HDR, name, n);
	CHECK(mfs_btree_put(v, MFS_TREE_FS, &k, val, MFS_DIRENT_HDR + n));
	vclose(v);
}

/* /a/b/c/loop names /a: a directory cycle. */
static const char *d_dir_cycle(void)
{
	add_dirent(ino_of("a/b/c"), "loop", ino_of("a"), 4 /* DT_DIR */);
	return "a";
}

/* An entry naming an inode that does not exist. */
static const char *d_dirent_missing(void)
{
	add_dirent(ino_of("a"), "ghost", 999999, 8 /* DT_REG */);
	return "a";
}

/* Set a field of path's inode (raw, leaf fixed). */
static void patch_inode(const char *path, size_t field, unsigned width,
			uint64_t val)
{
	uint64_t off = value_off(key(ino_of(path), MFS_ITEM_INODE, 0), NULL);

	map_image();
	if (width == 4)
		mfs_put_le32(base + off + field, (uint32_t)val);
	else
		mfs_put_le64(base + off + field, val);
	node_fix(off / MFS_BLOCK_SIZE);
	unmap_image();
}

/* A file type that does not exist. */
static const char *d_bad_mode(void)
{
	patch_inode("a/f2", DI(di_mode), 4, 0644);
	return "a";
}

/* A file with two links whose inode says it has none. */
static const char *d_nlink_zero(void)
{
	patch_inode("a/f2", DI(di_nlink), 4, 0);
	return "a";
}

/* A directory whose link count is 0. */
static const char *d_dir_nlink_zero(void)
{
	patch_inode("a/b", DI(di_nlink), 4, 0);
	return "a";
}

/* A size far past the file's blocks (legal for a sparse file, but not
 * with di_blocks saying otherwise) and a huge one. */
static const char *d_huge_size(void)
{
	patch_inode("data/small", DI(di_size), 8, UINT64_MAX - 4095);
	return "data";
}

/* An inode item of the wrong size. */
static const char *d_inode_short(void)
{
	uint64_t ino = ino_of("a/f2");
	struct mfs_key k = key(ino, MFS_ITEM_INODE, 0);
	uint64_t off = value_off(k, NULL), b = off / MFS_BLOCK_SIZE;
	uint8_t *leaf;
	unsigned nr;

	map_image();
	leaf = blk(b);
	nr = mfs_get_le16(leaf + NODE(nd_nritems));
	for (unsigned i = 0; i < nr; i++) {
		uint8_t *it = leaf + MFS_NODE_HDR + i * sizeof(struct mfs_disk_item);

		if (mfs_get_le64(it + ITEM(it_objectid)) == ino &&
		    it[ITEM(it_type)] == MFS_ITEM_INODE)
			mfs_put_le16(it + ITEM(it_size), 64);
	}
	node_fix(b);
	unmap_image();
	return "a";
}

/* An orphan entry naming a file that is still linked: the mount's orphan
 * reclaim removes it under its entry. */
static const char *d_orphan_linked(void)
{
	struct mfs_vol *v;
	struct mfs_key k = key(MFS_ORPHAN_OBJID, MFS_ITEM_ORPHAN,
			       ino_of("data/small"));

	v = vopen();
	CHECK(mfs_btree_put(v, MFS_TREE_FS, &k, NULL, 0));
	vclose(v);
	return "data";
}

/* The second chunk of a symlink's target missing. */
static const char *d_symlink_chunk(void)
{
	struct mfs_vol *v;
	struct mfs_key k = key(ino_of("longlink"), MFS_ITEM_INLINE, 1);

	v = vopen();
	CHECK(mfs_btree_delete(v, MFS_TREE_FS, &k));
	vclose(v);
	return "longlink";
}

/* Chunk 0 of an xattr with a value length larger than any. */
static const char *d_xattr_bad(void)
{
	uint64_t ino = ino_of("x/file");
	struct mfs_vol *v;
	struct mfs_key lo = key(ino, MFS_ITEM_XATTR, 0),
		       hi = key(ino, MFS_ITEM_XATTR, UINT64_MAX), k;
	struct mfs_cursor cur;
	const void *val;
	size_t len;
	uint64_t off = 0;

	CHECK(mfs_vol_open(img, MFS_VOL_RDONLY | MFS_VOL_NOLOCK, &v));
	mfs_cursor_init(&cur, v, MFS_TREE_FS, &lo, &hi);
	while (mfs_cursor_next(&cur, &k, &val, &len) > 0) {
		/* chunk 0 of some attribute */
		if ((k.offset & (MFS_XATTR_CHUNKS - 1)) == 0) {
			off = (uint64_t)((const uint8_t *)val - v->img->base);
			break;
		}
	}
	mfs_vol_close(v);
	if (!off)
		die("no xattr found");
	map_image();
	mfs_put_le32(base + off, 10u << 20);
	base[off + 4] = 200; /* name length past the item */
	node_fix(off / MFS_BLOCK_SIZE);
	unmap_image();
	return "x";
}

/* Garbage in both superblock slots. */
static const char *d_sb_garbage(void)
{
	map_image();
	for (unsigned s = 0; s < 2; s++)
		for (unsigned i = 0; i < MFS_SB_SIZE; i++)
			blk(s)[i] = (uint8_t)(0xa5 ^ (i * 7));
	unmap_image();
	return "-";
}

/* The newest slot written whole but torn from its trees: roots pointing
 * at each other's tree (checksums right). */
static const char *d_sb_roots_swapped(void)
{
	struct mfs_super sb;
	unsigned s;

	map_image();
	sb = sb_cur();
	for (s = 0; s < 2; s++) {
		struct mfs_super t;

		if (!mfs_super_decode(blk(s), base_len / MFS_BLOCK_SIZE, s, &t) &&
		    t.generation == sb.generation)
			break;
	}
	{
		struct mfs_root r = sb.roots[0];

		sb.roots[0] = sb.roots[1];
		sb.roots[1] = r;
	}
	mfs_super_encode(&sb, s, blk(s));
	unmap_image();
	return "-";
}

static void truncate_to(off_t size)
{
	if (truncate(img, size))
		die("truncate: %s", strerror(errno));
}

static const char *d_truncated_half(void)
{
	truncate_to(IMG_SIZE / 2);
	return "-";
}

static const char *d_truncated_tiny(void)
{
	truncate_to(3 * MFS_BLOCK_SIZE + 100);
	return "-";
}

/* What the daemon must do with each kind (mmapfs(8), "When the image is
 * damaged"; test_damaged_mount.sh holds it to this):
 *   refused  refuse to mount, one line, exit status 1;
 *   eio      mount; the workload meets the damage: EIO, a "corruption:"
 *            line, read-only from then on (EROFS), exit status 1;
 *   logged   mount; the damage is found (a "corruption:" line, EROFS,
 *            exit 1) where no reader sees it: writing or freeing blocks;
 *   none     mount and serve it as it is: nothing the daemon can tell
 *            from one lookup (a directory cycle: the kernel's ELOOP), or
 *            what the daemon repairs itself (a stray orphan entry). */
static const struct {
	const char *name;
	const char *(*fn)(void);
	const char *expect;
} kinds[] = {
	{ "leaf-crc", d_leaf_crc, "eio" },
	{ "ptr-past-end", d_ptr_past_end, "eio" },
	{ "ptr-loop", d_ptr_loop, "eio" },
	{ "item-bounds", d_item_bounds, "eio" },
	{ "fs-root-crc", d_fs_root_crc, "refused" },
	{ "free-crc", d_free_crc, "refused" },
	{ "extent-past-end", d_extent_past_end, "eio" },
	{ "extent-wrap", d_extent_wrap, "eio" },
	{ "extent-on-node", d_extent_on_node, "logged" },
	{ "extent-shared", d_extent_shared, "logged" },
	{ "free-in-use", d_free_in_use, "logged" },
	{ "dirent-namelen0", d_dirent_namelen0, "eio" },
	{ "dirent-namelen-long", d_dirent_namelen_long, "eio" },
	{ "dir-cycle", d_dir_cycle, "none" },
	{ "dirent-missing", d_dirent_missing, "eio" },
	{ "bad-mode", d_bad_mode, "eio" },
	{ "nlink-zero", d_nlink_zero, "eio" },
	{ "dir-nlink-zero", d_dir_nlink_zero, "eio" },
	{ "huge-size", d_huge_size, "eio" },
	{ "inode-short", d_inode_short, "eio" },
	{ "orphan-linked", d_orphan_linked, "none" },
	{ "symlink-chunk", d_symlink_chunk, "eio" },
	{ "xattr-bad", d_xattr_bad, "eio" },
	{ "sb-garbage", d_sb_garbage, "refused" },
	{ "sb-roots-swapped", d_sb_roots_swapped, "refused" },
	{ "truncated-half", d_truncated_half, "refused" },
	{ "truncated-tiny", d_truncated_tiny, "refused" },
};

int main(int argc, char **argv)
{
	size_t i;

	if (argc == 2 && !strcmp(argv[1], "list")) {
		for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
			printf("%s %s\n", kinds[i].name, kinds[i].expect);
		return 0;
	}
	if (argc != 3)
		die("usage: mfs_damage base|KIND IMAGE | mfs_damage list");
	img = argv[2];
	if (!strcmp(argv[1], "base")) {
		make_base();
		return 0;
	}
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(argv[1], kinds[i].name)) {
			printf("%s\n", kinds[i].fn());
			return 0;
		}
	die("unknown kind '%s' (mfs_damage list)", argv[1]);
}
