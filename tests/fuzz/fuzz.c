/* SPDX-License-Identifier: MIT */
/*
 * fuzz.c — the template image and the patches an input makes to its
 * metadata (contract in fuzz.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "endian.h"
#include "fuzz.h"
#include "log.h"
#include "mmapfs/format.h"
#include "newfs.h"
#include "txn.h"

#define TEMPLATE_SIZE (1u << 20)
#define DIR_ENTRIES 150

bool fz_input_is_image;

const struct mfs_cred fz_cred = { .uid = 0, .gid = 0, .cap_fsetid = true,
				  .in_group = true };

/* One piece of the overlay: bytes [off, off + len) of the image. */
struct piece {
	uint32_t off, len;
	bool node;         /* a tree node (else a superblock slot) */
};

static struct {
	bool ready, failed;
	uint8_t *tmpl;         /* the template image */
	uint8_t *work;         /* the image being built */
	struct piece *pieces;
	size_t npieces;
	int fd;                /* the memfd */
	uint8_t *map;          /* ... mapped, TEMPLATE_SIZE bytes */
	char path[64];
} T = { .fd = -1 };

void fz_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("fuzz: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

FILE *fz_devnull(void)
{
	static FILE *f;

	if (!f && !(f = fopen("/dev/null", "w")))
		fz_fail("cannot open /dev/null");
	return f;
}

void fz_check_rc(const char *what, int rc)
{
	if (rc > 0 || rc < -4095)
		fz_fail("%s returned %d: neither 0 nor -errno", what, rc);
}

/* ------------------------------------------------------------------ *
 * Building the template through the core API.
 * ------------------------------------------------------------------ */
static int mk(struct mfs_fs *fs, uint64_t parent, const char *name,
	      uint32_t mode, uint64_t *ino)
{
	struct mfs_attr a;
	int rc;

	if (S_ISDIR(mode))
		rc = mfs_mkdir(fs, &fz_cred, parent, name, mode, &a);
	else
		rc = mfs_create(fs, &fz_cred, parent, name, mode, O_RDWR, &a);
	if (rc)
		return rc;
	if (!S_ISDIR(mode))
		mfs_release(fs, a.ino);
	*ino = a.ino;
	return 0;
}

static int put(struct mfs_fs *fs, uint64_t ino, uint64_t off, size_t len,
	       unsigned seed)
{
	static uint8_t buf[16384];
	size_t n;
	int rc;

	for (size_t i = 0; i < len && i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 31 + seed);
	rc = mfs_write(fs, &fz_cred, ino, off, buf, len, 0, &n);
	if (!rc && n != len)
		rc = -ENOSPC;
	return rc;
}

static int populate(struct mfs_fs *fs)
{
	char name[32], target[3000];
	uint64_t dir, sub, deep, x, frag, other, sparse, gone;
	struct mfs_attr a;
	uint8_t big[2000];
	int rc = 0;

	rc = mk(fs, MFS_ROOT, "dir", S_IFDIR | 0755, &dir);
	for (unsigned i = 0; !rc && i < DIR_ENTRIES; i++) {
		uint64_t f;

		snprintf(name, sizeof(name), "f%03u", i);
		rc = mk(fs, dir, name, S_IFREG | 0644, &f);
		if (!rc && i % 10 == 0)
			rc = put(fs, f, 0, 100 + i, i);
		if (!rc)
			mfs_forget(fs, f, 1);
	}
	if (!rc)
		rc = mk(fs, MFS_ROOT, "sub", S_IFDIR | 0700, &sub);
	if (!rc)
		rc = mk(fs, sub, "deep", S_IFDIR | 0755, &deep);
	if (!rc)
		rc = mk(fs, MFS_ROOT, "x", S_IFREG | 0600, &x);
	if (!rc)
		rc = put(fs, x, 0, 5000, 1);
	if (!rc)
		rc = mfs_setxattr(fs, x, "user.small", "value", 5, 0);
	memset(big, 'b', sizeof(big));
	if (!rc)
		rc = mfs_setxattr(fs, x, "user.big", big, sizeof(big), 0);
	if (!rc)
		rc = mfs_link(fs, x, sub, "hl", &a);
	/* Interleaved writes: two files of eight one-block extents each. */
	if (!rc)
		rc = mk(fs, MFS_ROOT, "frag", S_IFREG | 0644, &frag);
	if (!rc)
		rc = mk(fs, MFS_ROOT, "other", S_IFREG | 0644, &other);
	for (unsigned i = 0; !rc && i < 8; i++) {
		rc = put(fs, frag, (uint64_t)i * 2 * MFS_BLOCK_SIZE,
			 MFS_BLOCK_SIZE, i);
		if (!rc)
			rc = mfs_fs_sync(fs);
		if (!rc)
			rc = put(fs, other, (uint64_t)i * MFS_BLOCK_SIZE,
				 MFS_BLOCK_SIZE, i + 100);
	}
	if (!rc)
		rc = mfs_fallocate(fs, other, 1 /* FALLOC_FL_KEEP_SIZE */,
				   0, 12 * MFS_BLOCK_SIZE);
	if (!rc)
		rc = mk(fs, deep, "sparse", S_IFREG | 0644, &sparse);
	if (!rc)
		rc = put(fs, sparse, 0, 100, 7);
	if (!rc)
		rc = put(fs, sparse, 20 * MFS_BLOCK_SIZE + 10, 3000, 8);
	if (!rc)
		rc = mfs_symlink(fs, &fz_cred, MFS_ROOT, "s", "x", &a);
	memset(target, 'L', sizeof(target) - 1);
	target[sizeof(target) - 1] = 0;
	if (!rc)
		rc = mfs_symlink(fs, &fz_cred, sub, "longlink", target, &a);
	if (!rc)
		rc = mfs_mknod(fs, &fz_cred, MFS_ROOT, "fifo", S_IFIFO | 0644, 0,
			       &a);
	/* Unlinked while open: on the orphan list of the committed state. */
	if (!rc)
		rc = mk(fs, MFS_ROOT, "gone", S_IFREG | 0644, &gone);
	if (!rc)
		rc = mfs_open(fs, &fz_cred, gone, O_RDWR);
	if (!rc)
		rc = put(fs, gone, 0, 6000, 9);
	if (!rc)
		rc = mfs_unlink(fs, MFS_ROOT, "gone");
	if (!rc)
		rc = mfs_fs_sync(fs);
	return rc;
}

static int build_template(void)
{
	static const uint8_t uuid[MFS_UUID_SIZE] = {
		0x6d, 0x6d, 0x61, 0x70, 0x66, 0x73, 0x2d, 0x66,
		0x75, 0x7a, 0x7a, 0x2d, 0x74, 0x6d, 0x70, 0x6c };
	static const uint64_t seed[2] = { 0x0123456789abcdefULL,
					  0xfedcba9876543210ULL };
	struct mfs_format_opts o = { .size = TEMPLATE_SIZE, .force = true,
				     .uuid = uuid, .hash_seed = seed,
				     .time = 1700000000 };
	char path[4096];
	const char *tmp = getenv("TMPDIR");
	struct mfs_fs *fs = NULL;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/mmapfs-fuzz-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	close(fd);
	rc = mfs_format(path, &o);
	if (!rc)
		rc = mfs_fs_open(path, MFS_FS_NOLOCK, &fs);
	if (!rc) {
		rc = populate(fs);
		/* What a crash leaves: the orphan stays on the list. */
		mfs_fs_close_dirty(fs);
	}
	if (!rc) {
		fd = open(path, O_RDONLY);
		if (fd < 0 || pread(fd, T.tmpl, TEMPLATE_SIZE, 0) != TEMPLATE_SIZE)
			rc = -EIO;
		if (fd >= 0)
			close(fd);
	}
	unlink(path);
	return rc;
}

/* The overlay's pieces: both superblock slots, then every block that holds
 * a node with a valid checksum. */
static int find_pieces(void)
{
	size_t blocks = TEMPLATE_SIZE / MFS_BLOCK_SIZE;

	T.pieces = calloc(blocks, sizeof(*T.pieces));
	if (!T.pieces)
		return -ENOMEM;
	for (unsigned s = 0; s < MFS_SB_SLOTS; s++)
		T.pieces[T.npieces++] = (struct piece){ s * MFS_BLOCK_SIZE,
							MFS_SB_SIZE, false };
	for (size_t b = MFS_FIRST_DATA_BLOCK; b < blocks; b++) {
		const uint8_t *n = T.tmpl + b * MFS_BLOCK_SIZE;

		if (mfs_get_le32(n + 4) != MFS_NODE_MAGIC ||
		    mfs_get_le32(n) != mfs_crc32c(0, n + 4, MFS_BLOCK_SIZE - 4))
			continue;
		T.pieces[T.npieces++] = (struct piece){
			(uint32_t)(b * MFS_BLOCK_SIZE), MFS_BLOCK_SIZE, true };
	}
	return 0;
}

static void fix_crc(const struct piece *p)
{
	uint8_t *b = T.work + p->off;

	if (p->node)
		mfs_put_le32(b, mfs_crc32c(0, b + 4, MFS_BLOCK_SIZE - 4));
	else
		mfs_put_le32(b + 8, mfs_crc32c(0, b + MFS_SB_CRC_START,
					       MFS_SB_SIZE - MFS_SB_CRC_START));
}

static void drop_message(int level, const char *msg)
{
	(void)level;
	(void)msg;
}

static void setup(void)
{
	int rc;

	T.ready = true;
	/* The core's messages about damage are expected by the thousand:
	 * formatted (a hostile name or number must print safely), then
	 * dropped. */
	mfs_log_set_progname("fuzz");
	mfs_log_set_level(MFS_LOG_DEBUG);
	mfs_log_set_sink(drop_message);
	T.tmpl = malloc(TEMPLATE_SIZE);
	T.work = malloc(TEMPLATE_SIZE);
	rc = T.tmpl && T.work ? build_template() : -ENOMEM;
	if (!rc)
		rc = find_pieces();
	if (!rc) {
		T.fd = memfd_create("mmapfs-fuzz", MFD_CLOEXEC);
		if (T.fd < 0 || ftruncate(T.fd, TEMPLATE_SIZE) != 0)
			rc = -errno;
	}
	if (!rc) {
		T.map = mmap(NULL, TEMPLATE_SIZE, PROT_READ | PROT_WRITE,
			     MAP_SHARED, T.fd, 0);
		if (T.map == MAP_FAILED)
			rc = -errno;
	}
	if (rc) {
		fprintf(stderr, "fuzz: cannot build the template image: %s\n",
			strerror(-rc));
		T.failed = true;
		return;
	}
	snprintf(T.path, sizeof(T.path), "/proc/self/fd/%d", T.fd);
}

static int store(const uint8_t *img, size_t size)
{
	const char *save = getenv("MFS_FUZZ_SAVE");
	struct stat st;

	if (fstat(T.fd, &st) != 0)
		return -errno;
	if (size != TEMPLATE_SIZE || (size_t)st.st_size != size) {
		if (ftruncate(T.fd, 0) != 0 || ftruncate(T.fd, (off_t)size) != 0 ||
		    pwrite(T.fd, img, size, 0) != (ssize_t)size)
			return -errno;
	} else {
		for (size_t off = 0; off < size; off += MFS_BLOCK_SIZE)
			if (memcmp(T.map + off, img + off, MFS_BLOCK_SIZE))
				memcpy(T.map + off, img + off, MFS_BLOCK_SIZE);
	}
	if (save) {
		FILE *f = fopen(save, "wb");

		if (!f || fwrite(img, 1, size, f) != size || fclose(f) != 0)
			fz_fail("cannot save the image to %s", save);
	}
	return 0;
}

const char *fz_image(const uint8_t *data, size_t size)
{
	bool touched[TEMPLATE_SIZE / MFS_BLOCK_SIZE] = { false };
	size_t at = 0;

	if (!T.ready)
		setup();
	if (T.failed)
		fz_fail("no template image");
	if (fz_input_is_image)
		return store(data, size) ? NULL : T.path;
	memcpy(T.work, T.tmpl, TEMPLATE_SIZE);
	while (size - at >= 4) {
		const struct piece *p = &T.pieces[data[at] % T.npieces];
		size_t off = mfs_get_le16(data + at + 1) % p->len;
		size_t len = data[at + 3];

		at += 4;
		if (len > size - at)
			len = size - at;
		if (len > p->len - off)
			memcpy(T.work + p->off + off, data + at, p->len - off);
		else
			memcpy(T.work + p->off + off, data + at, len);
		at += len;
		touched[p - T.pieces] = true;
	}
#ifdef FZ_FIX_CRC
	for (size_t i = 0; i < T.npieces; i++)
		if (touched[i])
			fix_crc(&T.pieces[i]);
#else
	(void)fix_crc;
	(void)touched;
#endif
	return store(T.work, TEMPLATE_SIZE) ? NULL : T.path;
}
