/* SPDX-License-Identifier: MIT */
/*
 * test_fsck.c — fsck.mmapfs end to end, on real images.
 *
 * A base image is built once through the core API (directories, files,
 * hard links, a symlink of two chunks, a fifo, a device, files with data
 * and a directory of 150 files, so the FS tree has internal nodes), then
 * copied for each test. Each damage test makes exactly one kind of damage
 * — through the btree/txn API with a normal commit, so that the trees,
 * the free space and the checksums stay right and only the intended fault
 * is there, or by patching bytes and recomputing the checksums (node crc
 * over bytes [4, 4096), superblock crc over [12, 512)) — and then:
 *
 *   fsck -fn   reports it, exits 4, leaves the image byte-identical;
 *   fsck -fy   repairs it, exits 1;
 *   fsck -fn, fsck -fy   exit 0;
 *   the image opens with mfs_fs_open, and a walk of the namespace agrees
 *   with every link count, '..', and the inode count; fsck -fn exits 0
 *   after that open and close too.
 *
 * The program under test is the built fsck.mmapfs (MMAPFS_FSCK, set by
 * meson), run as a child process, so exit codes and output are tested as
 * a user sees them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mfs_skip.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "btree.h"
#include "check.h"
#include "check_int.h"
#include "crc32c.h"
#include "dir.h"
#include "endian.h"
#include "image.h"
#include "inode.h"
#include "log.h"
#include "mmapfs/mmapfs.h"
#include "siphash.h"
#include "newfs.h"
#include "txn.h"
#include "xattr.h"

#define NBLOCKS 1024u            /* 4 MiB images */
#define MANY 150                 /* files in /many */
#define DI(f) offsetof(struct mfs_disk_inode, f)

static const char *fsck_path;
static char tmpdir[256];
static char base_img[300];      /* the template */
static char img[300];           /* the image of the running test */
static char out[65536];         /* output of the last fsck run */

/* Inode numbers in the base image. */
static struct {
	uint64_t a, b, c, many, f1, f2, f3, s, big, p, dev, lf;
} ino;

static const struct mfs_cred root_cred = { 0, 0, true, true };

/* ------------------------------------------------------------------ */
/* Running fsck                                                        */
/* ------------------------------------------------------------------ */

static void show_out(void);

/* Run prog with args (NULL-terminated), stdout and stderr into out[].
 * path_prefix, if not NULL, is put in front of PATH. Returns the exit
 * status. */
static int run_prog(const char *prog, const char *const *args,
		    const char *path_prefix)
{
	char outfile[320];
	const char *argv[16];
	int fd, status;
	ssize_t n;
	pid_t pid;
	size_t i;

	snprintf(outfile, sizeof(outfile), "%s/out.txt", tmpdir);
	argv[0] = prog;
	for (i = 0; args[i]; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int o = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int nul = open("/dev/null", O_RDONLY);

		if (o < 0 || nul < 0)
			_exit(127);
		dup2(nul, 0);
		dup2(o, 1);
		dup2(o, 2);
		if (path_prefix) {
			char path[4096];

			snprintf(path, sizeof(path), "%s:%s", path_prefix,
				 getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
			setenv("PATH", path, 1);
		}
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	fd = open(outfile, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, out, sizeof(out) - 1);
	close(fd);
	out[n > 0 ? n : 0] = 0;
	if (getenv("MMAPFS_TEST_VERBOSE")) {
		fprintf(stderr, "$ %s", prog);
		for (i = 0; args[i]; i++)
			fprintf(stderr, " %s", args[i]);
		fprintf(stderr, "  -> exit %d\n%s", WEXITSTATUS(status), out);
	}
	if (!WIFEXITED(status) || strstr(out, "Sanitizer") ||
	    strstr(out, "runtime error")) {
		fprintf(stderr, "%s died or a sanitizer complained\n", prog);
		show_out();
		fail();
	}
	return WEXITSTATUS(status);
}

static int fsck(const char *opts)
{
	const char *args[4] = { opts, img, NULL, NULL };

	return run_prog(fsck_path, args, NULL);
}

/* Check the last output; show it on a mismatch. */
static void show_out(void)
{
	fprintf(stderr, "---- output ----\n%s---- end ----\n", out);
}

static void expect_out(const char *pattern)
{
	if (!strstr(out, pattern)) {
		fprintf(stderr, "expected \"%s\" in the output\n", pattern);
		show_out();
		fail();
	}
}

static void expect_no_out(const char *pattern)
{
	if (strstr(out, pattern)) {
		fprintf(stderr, "did not expect \"%s\" in the output\n", pattern);
		show_out();
		fail();
	}
}

static void expect_rc(int rc, int want, const char *what)
{
	if (rc != want) {
		fprintf(stderr, "%s: exit %d, expected %d\n", what, rc, want);
		show_out();
		fail();
	}
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void copy_file(const char *from, const char *to)
{
	size_t len;
	uint8_t *buf = slurp(from, &len);
	int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	free(buf);
}

static void pread_at(uint64_t off, void *buf, size_t len)
{
	int fd = open(img, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void pwrite_at(uint64_t off, const void *buf, size_t len)
{
	int fd = open(img, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

/* ------------------------------------------------------------------ */
/* Raw damage: bytes, then checksums                                   */
/* ------------------------------------------------------------------ */

static void node_fix_crc(uint64_t block)
{
	uint8_t n[MFS_BLOCK_SIZE];

	pread_at(block * MFS_BLOCK_SIZE, n, sizeof(n));
	mfs_put_le32(n, mfs_crc32c(0, n + 4, MFS_BLOCK_SIZE - 4));
	pwrite_at(block * MFS_BLOCK_SIZE, n, sizeof(n));
}

static void sb_read(unsigned slot, uint8_t *sb)
{
	pread_at((uint64_t)slot * MFS_BLOCK_SIZE, sb, MFS_SB_SIZE);
}

static void sb_write(unsigned slot, uint8_t *sb, bool fix_crc)
{
	if (fix_crc)
		mfs_put_le32(sb + offsetof(struct mfs_disk_super, sb_crc),
			     mfs_crc32c(0, sb + MFS_SB_CRC_START,
					MFS_SB_SIZE - MFS_SB_CRC_START));
	pwrite_at((uint64_t)slot * MFS_BLOCK_SIZE, sb, MFS_SB_SIZE);
}

/* The slot an open would use: valid, highest generation, slot 0 on a tie. */
static unsigned sb_current(struct mfs_super *out_sb)
{
	struct mfs_super sb[2];
	uint8_t raw[MFS_SB_SIZE];
	int rc[2];

	for (unsigned i = 0; i < 2; i++) {
		sb_read(i, raw);
		rc[i] = mfs_super_decode(raw, NBLOCKS, i, &sb[i]);
	}
	assert_true(rc[0] == 0 || rc[1] == 0);
	if (rc[1] == 0 && (rc[0] != 0 || sb[1].generation > sb[0].generation)) {
		if (out_sb)
			*out_sb = sb[1];
		return 1;
	}
	if (out_sb)
		*out_sb = sb[0];
	return 0;
}

/* Where the value of an item lies in the image file. */
static uint64_t item_offset(unsigned tree, struct mfs_key k, size_t *len)
{
	struct mfs_vol *v;
	const void *val;
	size_t l;
	uint64_t off;

	assert_int_equal(mfs_vol_open(img, MFS_VOL_RDONLY | MFS_VOL_NOLOCK, &v), 0);
	assert_int_equal(mfs_btree_lookup(v, tree, &k, &val, &l), 0);
	off = (uint64_t)((const uint8_t *)val - v->img->base);
	mfs_vol_close(v);
	if (len)
		*len = l;
	return off;
}

/* ------------------------------------------------------------------ */
/* API damage: a volume, changed, committed                            */
/* ------------------------------------------------------------------ */

static struct mfs_vol *vopen(void)
{
	struct mfs_vol *v;

	assert_int_equal(mfs_vol_open(img, 0, &v), 0);
	return v;
}

static void vclose(struct mfs_vol *v)
{
	v->dirty = true;
	assert_int_equal(mfs_txn_commit(v), 0);
	assert_int_equal(mfs_vol_close(v), 0);
}

static void set_inode_u32(struct mfs_vol *v, uint64_t i, size_t off,
			  uint32_t val)
{
	struct mfs_key k = mfs_key_make(i, MFS_ITEM_INODE, 0);
	void *p;
	size_t len;

	assert_int_equal(mfs_btree_lookup_mut(v, MFS_TREE_FS, &k, &p, &len), 0);
	mfs_put_le32((uint8_t *)p + off, val);
	v->dirty = true;
}

static void set_inode_u64(struct mfs_vol *v, uint64_t i, size_t off,
			  uint64_t val)
{
	struct mfs_key k = mfs_key_make(i, MFS_ITEM_INODE, 0);
	void *p;
	size_t len;

	assert_int_equal(mfs_btree_lookup_mut(v, MFS_TREE_FS, &k, &p, &len), 0);
	mfs_put_le64((uint8_t *)p + off, val);
	v->dirty = true;
}

static uint64_t get_inode_u64(struct mfs_vol *v, uint64_t i, size_t off)
{
	struct mfs_key k = mfs_key_make(i, MFS_ITEM_INODE, 0);
	const void *p;
	size_t len;

	assert_int_equal(mfs_btree_lookup(v, MFS_TREE_FS, &k, &p, &len), 0);
	return mfs_get_le64((const uint8_t *)p + off);
}

static uint32_t get_inode_u32(struct mfs_vol *v, uint64_t i, size_t off)
{
	struct mfs_key k = mfs_key_make(i, MFS_ITEM_INODE, 0);
	const void *p;
	size_t len;

	assert_int_equal(mfs_btree_lookup(v, MFS_TREE_FS, &k, &p, &len), 0);
	return mfs_get_le32((const uint8_t *)p + off);
}

/* A raw entry value: ino, type, name. */
static size_t dirent_val(uint8_t *buf, uint64_t i, uint8_t type,
			 const char *name)
{
	size_t n = strlen(name);

	mfs_put_le64(buf, i);
	buf[8] = type;
	buf[9] = (uint8_t)n;
	memcpy(buf + MFS_DIRENT_HDR, name, n);
	return MFS_DIRENT_HDR + n;
}

static void put_extent(struct mfs_vol *v, uint64_t i, uint64_t fblk,
		       uint64_t block, uint64_t count)
{
	uint8_t val[sizeof(struct mfs_disk_extent)] = { 0 };
	struct mfs_key k = mfs_key_make(i, MFS_ITEM_EXTENT, fblk);

	mfs_put_le64(val, block);
	mfs_put_le64(val + 8, count);
	assert_int_equal(mfs_btree_put(v, MFS_TREE_FS, &k, val, sizeof(val)), 0);
}

/* The first extent of inode i at or after file block fblk. */
static void get_extent(struct mfs_vol *v, uint64_t i, uint64_t fblk,
		       uint64_t *block, uint64_t *count)
{
	struct mfs_key k = mfs_key_make(i, MFS_ITEM_EXTENT, fblk);
	const void *val;
	size_t len;

	assert_int_equal(mfs_btree_lookup(v, MFS_TREE_FS, &k, &val, &len), 0);
	*block = mfs_get_le64(val);
	*count = mfs_get_le64((const uint8_t *)val + 8);
}

/* ------------------------------------------------------------------ */
/* The base image                                                      */
/* ------------------------------------------------------------------ */

static uint64_t mk(struct mfs_fs *fs, uint64_t parent, const char *name,
		   uint32_t mode, uint64_t rdev)
{
	struct mfs_attr a;

	if (S_ISDIR(mode))
		assert_int_equal(mfs_mkdir(fs, &root_cred, parent, name, mode, &a), 0);
	else
		assert_int_equal(mfs_mknod(fs, &root_cred, parent, name, mode,
					   rdev, &a), 0);
	return a.ino;
}

static void fill_pattern(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

/* Give inode i nblocks of data: through mfs_write when the file layer is
 * there, else (while file.c is a stub) as extents made here. */
static void put_data(uint64_t i, unsigned nblocks, unsigned seed)
{
	struct mfs_fs *fs;
	uint8_t *buf = malloc((size_t)nblocks * MFS_BLOCK_SIZE);
	size_t written = 0;
	int rc;

	assert_non_null(buf);
	fill_pattern(buf, (size_t)nblocks * MFS_BLOCK_SIZE, seed);
	assert_int_equal(mfs_fs_open(img, 0, &fs), 0);
	rc = mfs_write(fs, &root_cred, i, 0, buf, (size_t)nblocks * MFS_BLOCK_SIZE,
		       0, &written);
	assert_int_equal(mfs_fs_close(fs), 0);
	if (rc == -EOPNOTSUPP) {
		struct mfs_vol *v = vopen();
		struct mfs_inode in;
		uint64_t s, l;

		assert_int_equal(mfs_alloc_alloc(v->alloc, 100, nblocks, nblocks,
						 &s, &l), 0);
		memcpy(mfs_image_block(v->img, s), buf,
		       (size_t)nblocks * MFS_BLOCK_SIZE);
		put_extent(v, i, 0, s, l);
		assert_int_equal(mfs_inode_read(v, i, &in), 0);
		in.size = (uint64_t)nblocks * MFS_BLOCK_SIZE;
		in.blocks = (uint64_t)nblocks * 8;
		assert_int_equal(mfs_inode_write(v, &in), 0);
		vclose(v);
	} else {
		assert_int_equal(rc, 0);
		assert_int_equal(written, (size_t)nblocks * MFS_BLOCK_SIZE);
	}
	free(buf);
}

static void make_base(void)
{
	struct mfs_format_opts fo = { .size = (uint64_t)NBLOCKS * MFS_BLOCK_SIZE,
				      .force = true };
	struct mfs_fs *fs;
	struct mfs_attr a;
	char target[1500];

	snprintf(img, sizeof(img), "%s", base_img);
	assert_int_equal(mfs_format(img, &fo), 0);
	assert_int_equal(mfs_fs_open(img, 0, &fs), 0);
	ino.a = mk(fs, MFS_ROOT, "a", S_IFDIR | 0755, 0);
	ino.b = mk(fs, ino.a, "b", S_IFDIR | 0755, 0);
	ino.c = mk(fs, ino.b, "c", S_IFDIR | 0755, 0);
	ino.many = mk(fs, MFS_ROOT, "many", S_IFDIR | 0755, 0);
	ino.f1 = mk(fs, MFS_ROOT, "f1", S_IFREG | 0644, 0);
	ino.f2 = mk(fs, ino.a, "f2", S_IFREG | 0644, 0);
	assert_int_equal(mfs_link(fs, ino.f2, MFS_ROOT, "hl", &a), 0);
	ino.f3 = mk(fs, MFS_ROOT, "f3", S_IFREG | 0600, 0);
	assert_int_equal(mfs_symlink(fs, &root_cred, MFS_ROOT, "s", "a/f2", &a), 0);
	ino.s = a.ino;
	memset(target, 'x', sizeof(target) - 1);
	target[sizeof(target) - 1] = 0;
	assert_int_equal(mfs_symlink(fs, &root_cred, MFS_ROOT, "big", target, &a), 0);
	ino.big = a.ino;
	ino.p = mk(fs, MFS_ROOT, "p", S_IFIFO | 0644, 0);
	ino.dev = mk(fs, ino.a, "null", S_IFCHR | 0666, makedev(1, 3));
	for (int i = 0; i < MANY; i++) {
		char name[32];

		snprintf(name, sizeof(name), "file-with-a-longer-name-%03d", i);
		mk(fs, ino.many, name, S_IFREG | 0644, 0);
	}
	assert_int_equal(mfs_lookup(fs, MFS_ROOT, "lost+found", &a), 0);
	ino.lf = a.ino;
	assert_int_equal(mfs_fs_close(fs), 0);
	put_data(ino.f1, 8, 1);
	put_data(ino.f2, 3, 2);
	put_data(ino.f3, 2, 3);
}

/* ------------------------------------------------------------------ */
/* The consistency walk                                                */
/* ------------------------------------------------------------------ */

struct node {
	uint64_t ino, parent;
	uint32_t links, subdirs;
	bool dir;
};

struct ents {
	struct {
		char name[256];
		uint64_t ino;
		uint32_t type;
	} e[512];
	size_t n;
};

static int collect_ent(void *ctx, const char *name, size_t len,
		       const struct mfs_attr *attr, uint64_t next_off)
{
	struct ents *es = ctx;

	if ((len == 1 && name[0] == '.') || (len == 2 && !memcmp(name, "..", 2)))
		return 0;
	assert_true(es->n < 512);
	memcpy(es->e[es->n].name, name, len);
	es->e[es->n].name[len] = 0;
	es->e[es->n].ino = attr->ino;
	es->e[es->n].type = attr->mode & S_IFMT;
	es->n++;
	return 0;
}

static struct node *node_of(struct node *nodes, size_t *n, uint64_t i)
{
	for (size_t k = 0; k < *n; k++)
		if (nodes[k].ino == i)
			return &nodes[k];
	nodes[*n].ino = i;
	nodes[*n].links = 0;
	nodes[*n].subdirs = 0;
	nodes[*n].parent = 0;
	nodes[*n].dir = false;
	return &nodes[(*n)++];
}

/* Open the image through the core API (read-write: orphans reclaimed, a
 * commit) and walk the whole namespace: every entry's inode exists with
 * the entry's type, directories are reached once and their '..' is the
 * directory holding them, link counts match the entries, symlinks read
 * back, and the inode count matches what is reachable. */
static void consistency_walk(void)
{
	static struct node nodes[1024];
	static struct ents es;
	size_t n = 0, head = 0;
	struct mfs_fs *fs;
	struct mfs_statfs st;
	struct mfs_attr a;
	uint64_t queue[1024];
	size_t qt = 0;

	assert_int_equal(mfs_fs_open(img, 0, &fs), 0);
	node_of(nodes, &n, MFS_ROOT)->dir = true;
	queue[qt++] = MFS_ROOT;
	while (head < qt) {
		uint64_t d = queue[head++];

		es.n = 0;
		assert_int_equal(mfs_readdir(fs, d, 0, false, collect_ent, &es), 0);
		for (size_t k = 0; k < es.n; k++) {
			struct node *x;

			assert_int_equal(mfs_getattr(fs, es.e[k].ino, &a), 0);
			assert_int_equal(a.mode & S_IFMT, es.e[k].type);
			assert_true(n < 1024);
			x = node_of(nodes, &n, es.e[k].ino);
			x->links++;
			if (S_ISDIR(a.mode)) {
				struct mfs_attr up;

				assert_false(x->dir); /* reached once */
				x->dir = true;
				x->parent = d;
				node_of(nodes, &n, d)->subdirs++;
				assert_int_equal(mfs_lookup(fs, x->ino, "..", &up), 0);
				assert_int_equal(up.ino, d);
				mfs_forget(fs, up.ino, 1);
				queue[qt++] = x->ino;
			} else if (S_ISLNK(a.mode)) {
				char buf[4096];
				size_t len;

				assert_int_equal(mfs_readlink(fs, x->ino, buf,
							      sizeof(buf), &len), 0);
				assert_int_equal(len, a.size);
				assert_true(len > 0);
			}
		}
	}
	for (size_t k = 0; k < n; k++) {
		assert_int_equal(mfs_getattr(fs, nodes[k].ino, &a), 0);
		if (nodes[k].dir)
			assert_int_equal(a.nlink, 2 + nodes[k].subdirs);
		else
			assert_int_equal(a.nlink, nodes[k].links);
	}
	assert_int_equal(mfs_statfs(fs, &st), 0);
	assert_int_equal(st.files - st.ffree, n);
	assert_int_equal(mfs_fs_close(fs), 0);
	/* TODO(daemon): mount the repaired image with the mmapfs daemon and
	 * walk it through the kernel, once the daemon is in main. */
}

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */
/* ------------------------------------------------------------------ */

static int group_setup(void **state)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_fsck.XXXXXX",
		 base ? base : "/tmp");
	if (!mkdtemp(tmpdir))
		return -1;
	fsck_path = getenv("MMAPFS_FSCK");
	if (!fsck_path) {
		static char p[512];

		snprintf(p, sizeof(p), "%s/src/fsck.mmapfs",
			 getenv("MMAPFS_BUILD_ROOT") ? getenv("MMAPFS_BUILD_ROOT")
						     : "build");
		fsck_path = p;
	}
	snprintf(base_img, sizeof(base_img), "%s/base.img", tmpdir);
	make_base();
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[512];

	if (getenv("MMAPFS_TEST_KEEP")) {
		fprintf(stderr, "kept %s\n", tmpdir);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int setup(void **state)
{
	snprintf(img, sizeof(img), "%s/test.img", tmpdir);
	copy_file(base_img, img);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The damage tests                                                    */
/* ------------------------------------------------------------------ */

/*
 * The common sequence after a damage: -n reports `pattern` and changes
 * nothing; -y (or -p with preen) repairs; checks run clean afterwards;
 * the core API agrees.
 */
static void check_repair2(const char *pattern, const char *pattern2,
			  bool preen)
{
	size_t l0, l1;
	uint8_t *before = slurp(img, &l0), *after;

	expect_rc(fsck("-fn"), 4, "fsck -fn on the damaged image");
	expect_out(pattern);
	if (pattern2)
		expect_out(pattern2);
	expect_out("Pass 5: Checking free space");
	expect_out("WARNING: Filesystem still has errors");
	after = slurp(img, &l1);
	assert_int_equal(l0, l1);
	assert_memory_equal(before, after, l0);
	free(before);
	free(after);

	if (preen) {
		expect_rc(fsck("-fp"), 1, "fsck -fp");
		expect_no_out("Pass 1");
		expect_out("test.img: ");
	} else {
		expect_rc(fsck("-fy"), 1, "fsck -fy");
		expect_out("FILE SYSTEM WAS MODIFIED");
	}
	expect_out(pattern);
	if (pattern2)
		expect_out(pattern2);
	expect_no_out("after repair");
	expect_rc(fsck("-fn"), 0, "fsck -fn after the repair");
	expect_rc(fsck("-fy"), 0, "fsck -fy after the repair");
	expect_rc(fsck("-n"), 0, "fsck -n after the repair");
	expect_out("clean");
	consistency_walk();
	expect_rc(fsck("-fn"), 0, "fsck -fn after mfs_fs_open");
}

static void check_repair(const char *pattern, bool preen)
{
	check_repair2(pattern, NULL, preen);
}

static uint64_t lookup(const char *path_dir_name, uint64_t dir)
{
	struct mfs_fs *fs;
	struct mfs_attr a;
	int rc;

	assert_int_equal(mfs_fs_open(img, MFS_FS_RDONLY, &fs), 0);
	rc = mfs_lookup(fs, dir, path_dir_name, &a);
	mfs_fs_close(fs);
	return rc ? 0 : a.ino;
}

static void test_base_clean(void **state)
{
	expect_rc(fsck("-fn"), 0, "fsck -fn on the base image");
	expect_out("Pass 1: Checking trees and blocks");
	expect_out("Pass 2: Checking directory structure");
	expect_out("Pass 3: Checking directory connectivity");
	expect_out("Pass 4: Checking reference counts");
	expect_out("Pass 5: Checking free space");
	expect_out("test.img: 163 files, ");
	expect_rc(fsck("-n"), 0, "fsck -n on the base image");
	expect_out("test.img: clean, 163 files, ");
	consistency_walk();
}

static void test_nlink_high(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[80];

	set_inode_u32(v, ino.f1, DI(di_nlink), 5);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu ref count is 5, should be 1",
		 (unsigned long long)ino.f1);
	check_repair(pat, false);
}

static void test_nlink_low(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[80];

	set_inode_u32(v, ino.f2, DI(di_nlink), 1);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu ref count is 1, should be 2",
		 (unsigned long long)ino.f2);
	check_repair(pat, false);
}

static void test_nlink_preen(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[100];

	set_inode_u32(v, ino.f1, DI(di_nlink), 3);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu ref count is 3, should be 1",
		 (unsigned long long)ino.f1);
	check_repair(pat, true);
}

static void test_dir_nlink(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[80];

	set_inode_u32(v, ino.a, DI(di_nlink), 7);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu ref count is 7, should be 3",
		 (unsigned long long)ino.a);
	check_repair(pat, false);
}

static void test_dangling_dirent(void **state)
{
	struct mfs_vol *v = vopen();

	assert_int_equal(mfs_dir_add(v, MFS_ROOT, "ghost", 5, 9999, DT_REG), 0);
	vclose(v);
	check_repair("Entry 'ghost' in directory 1 refers to inode 9999, which "
		     "does not exist", false);
	assert_int_equal(lookup("ghost", MFS_ROOT), 0);
}

static void test_unreachable_inode(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[100], name[32];

	assert_int_equal(mfs_dir_remove(v, MFS_ROOT, "f3", 2), 0);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu (regular file, nlink 1) has no "
		 "directory entry", (unsigned long long)ino.f3);
	check_repair(pat, false);
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)ino.f3);
	assert_int_equal(lookup(name, ino.lf), ino.f3);
}

static void test_wrong_dotdot(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[100];

	set_inode_u64(v, ino.b, DI(di_parent), MFS_ROOT);
	vclose(v);
	snprintf(pat, sizeof(pat), "Directory %llu has '..' = 1, should be %llu",
		 (unsigned long long)ino.b, (unsigned long long)ino.a);
	check_repair(pat, false);
}

static void test_dir_hardlink(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[100];

	assert_int_equal(mfs_dir_add(v, MFS_ROOT, "b2", 2, ino.b, DT_DIR), 0);
	vclose(v);
	snprintf(pat, sizeof(pat), "Directory %llu has more than one entry; entry "
		 "'b2' in directory 1", (unsigned long long)ino.b);
	check_repair(pat, false);
	assert_int_equal(lookup("b2", MFS_ROOT), 0);
	assert_int_equal(lookup("b", ino.a), ino.b);
}

static void test_hash_mismatch(void **state)
{
	struct mfs_vol *v = vopen();
	uint64_t h = mfs_dir_hash(v, "f1", 2);
	struct mfs_key k = mfs_key_make(MFS_ROOT, MFS_ITEM_DIRENT, h);
	struct mfs_key k2 = mfs_key_make(MFS_ROOT, MFS_ITEM_DIRENT, h + 1);
	uint8_t val[64];
	size_t len = dirent_val(val, ino.f1, DT_REG, "f1");

	assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &k), 0);
	assert_int_equal(mfs_btree_insert(v, MFS_TREE_FS, &k2, val, len), 0);
	vclose(v);
	check_repair("Entry 'f1' in directory 1 is stored under hash", false);
	assert_int_equal(lookup("f1", MFS_ROOT), ino.f1);
}

static void test_bad_name(void **state)
{
	struct mfs_vol *v = vopen();
	struct mfs_key k = mfs_key_make(MFS_ROOT, MFS_ITEM_DIRENT,
					mfs_dir_hash(v, "f/3", 3));
	uint8_t val[64];
	size_t len = dirent_val(val, ino.f3, DT_REG, "f/3");
	char name[32];

	assert_int_equal(mfs_dir_remove(v, MFS_ROOT, "f3", 2), 0);
	assert_int_equal(mfs_btree_insert(v, MFS_TREE_FS, &k, val, len), 0);
	vclose(v);
	check_repair("Entry 'f/3' in directory 1: the name contains '/'", false);
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)ino.f3);
	assert_int_equal(lookup(name, ino.lf), ino.f3);
}

static void test_dup_name(void **state)
{
	struct mfs_vol *v = vopen();
	uint64_t h = mfs_dir_hash(v, "f1", 2);
	struct mfs_key k = mfs_key_make(MFS_ROOT, MFS_ITEM_DIRENT, h);
	uint8_t val[64];
	size_t len = dirent_val(val, ino.f1, DT_REG, "f1");

	len += dirent_val(val + len, ino.f3, DT_REG, "f1");
	assert_int_equal(mfs_btree_update(v, MFS_TREE_FS, &k, val, len), 0);
	vclose(v);
	check_repair("Directory 1 has a second entry named 'f1'", false);
	assert_int_equal(lookup("f1", MFS_ROOT), ino.f1);
}

/* A second entry of the same name stored under another hash (one to be
 * moved): still found as a duplicate, and the one in place is kept. */
static void test_dup_name_moved(void **state)
{
	struct mfs_vol *v = vopen();
	uint64_t h = mfs_dir_hash(v, "f1", 2);
	/* far from h: other entries sort between the two */
	struct mfs_key k = mfs_key_make(MFS_ROOT, MFS_ITEM_DIRENT,
					h ^ (1ull << 63));
	uint8_t val[64];
	size_t len = dirent_val(val, ino.f3, DT_REG, "f1");

	assert_int_equal(mfs_btree_insert(v, MFS_TREE_FS, &k, val, len), 0);
	vclose(v);
	check_repair2("is stored under hash", "Directory 1 has a second entry "
		      "named 'f1' (inode", false);
	assert_int_equal(lookup("f1", MFS_ROOT), ino.f1);
}

static void test_dent_type(void **state)
{
	struct mfs_vol *v = vopen();

	assert_int_equal(mfs_dir_set(v, MFS_ROOT, "p", 1, ino.p, DT_REG), 0);
	vclose(v);
	check_repair("Entry 'p' in directory 1 has file type 8", false);
}

static void test_leaked_block(void **state)
{
	struct mfs_vol *v = vopen();
	uint64_t s, l;

	assert_int_equal(mfs_alloc_alloc(v->alloc, 900, 3, 3, &s, &l), 0);
	vclose(v);
	check_repair("blocks neither in use nor free (leaked)", false);
}

static void test_free_and_used(void **state)
{
	struct mfs_vol *v = vopen();
	uint64_t b, n;

	get_extent(v, ino.f1, 0, &b, &n);
	/* Pinned, so the commit cannot hand it out again. */
	assert_int_equal(mfs_alloc_free(v->alloc, b + 1, 2, v->gen), 0);
	vclose(v);
	check_repair("2 blocks in use but listed as free", false);
}

static void test_extent_overlap(void **state)
{
	struct mfs_vol *v = vopen();
	uint64_t b1, n1, b3, n3;
	uint8_t d1[2 * MFS_BLOCK_SIZE], d3[2 * MFS_BLOCK_SIZE];
	char pat[100];

	get_extent(v, ino.f1, 0, &b1, &n1);
	put_extent(v, ino.f3, 10, b1 + 2, 2);
	set_inode_u64(v, ino.f3, DI(di_blocks),
		      get_inode_u64(v, ino.f3, DI(di_blocks)) + 16);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu: blocks %llu-%llu (file block 10) "
		 "are also used", (unsigned long long)ino.f3,
		 (unsigned long long)(b1 + 2), (unsigned long long)(b1 + 3));
	check_repair(pat, false);
	/* f3 has its own copy now, f1 keeps its blocks. */
	v = vopen();
	get_extent(v, ino.f3, 10, &b3, &n3);
	get_extent(v, ino.f1, 0, &b1, &n1);
	assert_int_equal(n1, 8);
	assert_true(b3 + n3 <= b1 || b3 >= b1 + n1);
	memcpy(d1, mfs_image_block(v->img, b1 + 2), sizeof(d1));
	memcpy(d3, mfs_image_block(v->img, b3), n3 * MFS_BLOCK_SIZE);
	assert_int_equal(n3, 2);
	assert_memory_equal(d1, d3, sizeof(d1));
	mfs_vol_close(v);
}

static void test_extent_self_overlap(void **state)
{
	struct mfs_vol *v = vopen();
	uint64_t s, l;
	char pat[100];

	/* f1 maps file blocks 0-7; another extent at 5 with its own blocks. */
	assert_int_equal(mfs_alloc_alloc(v->alloc, 900, 4, 4, &s, &l), 0);
	put_extent(v, ino.f1, 5, s, 4);
	set_inode_u64(v, ino.f1, DI(di_blocks),
		      get_inode_u64(v, ino.f1, DI(di_blocks)) + 32);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu: extent at file block 5 overlaps "
		 "the one before it", (unsigned long long)ino.f1);
	check_repair(pat, false);
}

static void test_extent_past_end(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[120];

	put_extent(v, ino.f3, 20, NBLOCKS - 1, 4);
	set_inode_u64(v, ino.f3, DI(di_blocks),
		      get_inode_u64(v, ino.f3, DI(di_blocks)) + 32);
	vclose(v);
	snprintf(pat, sizeof(pat), "Item (%llu, EXTENT, 20) maps blocks %u-%u, "
		 "outside the image", (unsigned long long)ino.f3, NBLOCKS - 1,
		 NBLOCKS + 2);
	check_repair(pat, false);
}

static void test_di_blocks(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[100];

	set_inode_u64(v, ino.f1, DI(di_blocks), 3);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu: di_blocks is 3, should be 64",
		 (unsigned long long)ino.f1);
	check_repair(pat, false);
}

static void test_dir_size(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[100];

	set_inode_u64(v, ino.c, DI(di_size), 12345);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu: size is 12345, should be 4096",
		 (unsigned long long)ino.c);
	check_repair(pat, false);
}

static void test_orphan_linked(void **state)
{
	struct mfs_vol *v = vopen();
	struct mfs_key k = mfs_key_make(MFS_ORPHAN_OBJID, MFS_ITEM_ORPHAN, ino.f1);
	char pat[100];

	assert_int_equal(mfs_btree_insert(v, MFS_TREE_FS, &k, NULL, 0), 0);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu is on the orphan list but has 1 "
		 "links", (unsigned long long)ino.f1);
	check_repair(pat, false);
}

static void test_orphan_missing(void **state)
{
	struct mfs_vol *v = vopen();
	struct mfs_key k = mfs_key_make(MFS_ORPHAN_OBJID, MFS_ITEM_ORPHAN, 7777);

	assert_int_equal(mfs_btree_insert(v, MFS_TREE_FS, &k, NULL, 0), 0);
	vclose(v);
	check_repair("The orphan list names inode 7777, which does not exist",
		     false);
}

static void test_nlink0_unlisted(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[120], name[32];

	assert_int_equal(mfs_dir_remove(v, MFS_ROOT, "f3", 2), 0);
	set_inode_u32(v, ino.f3, DI(di_nlink), 0);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu (regular file, nlink 0) has no "
		 "directory entry and is not on the orphan list",
		 (unsigned long long)ino.f3);
	check_repair(pat, false);
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)ino.f3);
	assert_int_equal(lookup(name, ino.lf), ino.f3);
}

static void test_nlink0_linked(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[100];

	set_inode_u32(v, ino.f1, DI(di_nlink), 0);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu ref count is 0, should be 1",
		 (unsigned long long)ino.f1);
	check_repair(pat, false);
}

/* A proper orphan is no error: -n leaves it for the next mount, -y
 * reclaims it. */
static void test_legit_orphan(void **state)
{
	struct mfs_vol *v = vopen();
	struct mfs_key k = mfs_key_make(MFS_ORPHAN_OBJID, MFS_ITEM_ORPHAN, ino.f3);
	struct mfs_inode in;

	assert_int_equal(mfs_dir_remove(v, MFS_ROOT, "f3", 2), 0);
	set_inode_u32(v, ino.f3, DI(di_nlink), 0);
	assert_int_equal(mfs_btree_insert(v, MFS_TREE_FS, &k, NULL, 0), 0);
	vclose(v);
	expect_rc(fsck("-fn"), 0, "fsck -fn with an orphan");
	expect_out("reclaimed at the next read-write open");
	expect_rc(fsck("-fy"), 1, "fsck -fy with an orphan");
	expect_out("Orphaned inode");
	expect_out(": reclaimed");
	expect_rc(fsck("-fn"), 0, "fsck -fn after reclaiming");
	v = vopen();
	assert_int_equal(mfs_inode_read(v, ino.f3, &in), -ENOENT);
	mfs_vol_close(v);
	consistency_walk();
}

static void test_symlink_damaged(void **state)
{
	struct mfs_vol *v = vopen();
	struct mfs_key k = mfs_key_make(ino.big, MFS_ITEM_INLINE, 0);
	char pat[100];

	assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &k), 0);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu: symbolic link with a damaged or "
		 "missing target", (unsigned long long)ino.big);
	check_repair(pat, false);
	assert_int_equal(lookup("big", MFS_ROOT), 0);
}

/* ---- Extended attributes: f1 gets user.small (1 chunk) and user.big
 * (3000 bytes: chunk 0 with 968 value bytes, then 984, 984 and 64). ---- */

#define XA_BIG 3000

static struct mfs_key xa_key(struct mfs_vol *v, const char *name,
			     unsigned chunk)
{
	uint64_t h = mfs_siphash(v->sb.hash_seed, name, strlen(name)) >> 8;

	return mfs_key_make(ino.f1, MFS_ITEM_XATTR,
			    (h << MFS_XATTR_CHUNK_BITS) | chunk);
}

static struct mfs_vol *vopen_xattrs(void)
{
	struct mfs_vol *v = vopen();
	uint8_t big[XA_BIG];

	fill_pattern(big, sizeof(big), 7);
	assert_int_equal(mfs_xattr_set(v, ino.f1, "user.small", "0123456789",
				       10, 0), 0);
	assert_int_equal(mfs_xattr_set(v, ino.f1, "user.big", big, sizeof(big),
				       0), 0);
	return v;
}

/* Replace an item's value by len bytes of val. */
static void put_item(struct mfs_vol *v, struct mfs_key k, const void *val,
		     size_t len)
{
	assert_int_equal(mfs_btree_put(v, MFS_TREE_FS, &k, val, len), 0);
}

/* After the repair: name has the value it had, or is gone (-ENODATA). */
static void expect_xattr(const char *name, int want)
{
	struct mfs_vol *v;
	uint8_t buf[XA_BIG], big[XA_BIG];
	size_t len = 0;

	assert_int_equal(mfs_vol_open(img, MFS_VOL_RDONLY, &v), 0);
	assert_int_equal(mfs_xattr_get(v, ino.f1, name, buf, sizeof(buf),
				       &len), want);
	if (want == 0 && strcmp(name, "user.big") == 0) {
		fill_pattern(big, sizeof(big), 7);
		assert_int_equal(len, XA_BIG);
		assert_memory_equal(buf, big, XA_BIG);
	} else if (want == 0) {
		assert_int_equal(len, 10);
		assert_memory_equal(buf, "0123456789", 10);
	}
	mfs_vol_close(v);
}

static void test_xattr_clean(void **state)
{
	vclose(vopen_xattrs());
	expect_rc(fsck("-fn"), 0, "fsck -fn with extended attributes");
	expect_xattr("user.small", 0);
	expect_xattr("user.big", 0);
}

static void test_xattr_bad_header(void **state)
{
	struct mfs_vol *v = vopen_xattrs();
	struct mfs_key k = xa_key(v, "user.small", 0);
	const void *val;
	uint8_t buf[64];
	size_t len;

	assert_int_equal(mfs_btree_lookup(v, MFS_TREE_FS, &k, &val, &len), 0);
	memcpy(buf, val, len);
	buf[5] = 1;                     /* xa_flags must be 0 */
	put_item(v, k, buf, len);
	vclose(v);
	check_repair("is a damaged extended attribute header", false);
	expect_xattr("user.small", -ENODATA);
	expect_xattr("user.big", 0);
}

/* Chunk 0 stored under the hash of another name (rule 3). */
static void test_xattr_bad_hash(void **state)
{
	struct mfs_vol *v = vopen_xattrs();
	struct mfs_key k = xa_key(v, "user.small", 0);
	const void *val;
	uint8_t buf[64];
	size_t len;

	assert_int_equal(mfs_btree_lookup(v, MFS_TREE_FS, &k, &val, &len), 0);
	memcpy(buf, val, len);
	assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &k), 0);
	put_item(v, xa_key(v, "user.other", 0), buf, len);
	vclose(v);
	check_repair("is a damaged extended attribute header", false);
	expect_xattr("user.small", -ENODATA);
	expect_xattr("user.big", 0);
}

static void test_xattr_last_chunk_missing(void **state)
{
	struct mfs_vol *v = vopen_xattrs();
	struct mfs_key k = xa_key(v, "user.big", 3);

	assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &k), 0);
	vclose(v);
	check_repair("is part of an incomplete extended attribute (3 of 4 "
		     "chunks)", false);
	expect_xattr("user.big", -ENODATA);
	expect_xattr("user.small", 0);
}

static void test_xattr_middle_chunk_missing(void **state)
{
	struct mfs_vol *v = vopen_xattrs();
	struct mfs_key k = xa_key(v, "user.big", 1);

	assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &k), 0);
	vclose(v);
	check_repair2("belongs to an extended attribute with misplaced chunks",
		      "is a chunk of a damaged extended attribute", false);
	expect_xattr("user.big", -ENODATA);
	expect_xattr("user.small", 0);
}

static void test_xattr_first_chunk_missing(void **state)
{
	struct mfs_vol *v = vopen_xattrs();
	struct mfs_key k = xa_key(v, "user.big", 0);

	assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &k), 0);
	vclose(v);
	check_repair("is a chunk of an extended attribute without its first "
		     "chunk", false);
	expect_xattr("user.big", -ENODATA);
	expect_xattr("user.small", 0);
}

static void test_xattr_chunk_size(void **state)
{
	struct mfs_vol *v = vopen_xattrs();
	uint8_t buf[100] = { 0 };

	put_item(v, xa_key(v, "user.big", 2), buf, sizeof(buf));
	vclose(v);
	check_repair2("is an extended attribute chunk of 100 bytes, should be "
		      "984", "belongs to an extended attribute with a chunk of "
		      "the wrong size", false);
	expect_xattr("user.big", -ENODATA);
	expect_xattr("user.small", 0);
}

static void test_unknown_item(void **state)
{
	struct mfs_vol *v = vopen();
	struct mfs_key k = mfs_key_make(ino.f1, 9, 0);
	char pat[100];

	assert_int_equal(mfs_btree_insert(v, MFS_TREE_FS, &k, "junk", 4), 0);
	vclose(v);
	snprintf(pat, sizeof(pat), "Item (%llu, ?, 0) has unknown type 9",
		 (unsigned long long)ino.f1);
	check_repair(pat, false);
}

static void test_bad_nsec(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[100];

	set_inode_u32(v, ino.f2, DI(di_mtime_ns), 1500000000u);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu: mtime nanoseconds is at least",
		 (unsigned long long)ino.f2);
	check_repair(pat, false);
}

static void test_bad_rdev(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[100];

	set_inode_u64(v, ino.p, DI(di_rdev), 0x0801);
	vclose(v);
	snprintf(pat, sizeof(pat), "Inode %llu: di_rdev (of a non-device) is 2049",
		 (unsigned long long)ino.p);
	check_repair(pat, false);
}

static void test_bad_mode(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[100];

	/* Type bits 0170000 name no file type: the inode goes, its entry
	 * with it, and its data blocks return to free space. */
	set_inode_u32(v, ino.f3, DI(di_mode), 0170644);
	vclose(v);
	snprintf(pat, sizeof(pat), "Item (%llu, INODE, 0) is an inode of unknown "
		 "type", (unsigned long long)ino.f3);
	check_repair2(pat, "Entry 'f3' in directory 1 refers to inode", false);
	assert_int_equal(lookup("f3", MFS_ROOT), 0);
}

static void test_extent_on_dir(void **state)
{
	struct mfs_vol *v = vopen();
	uint64_t s, l;
	char pat[100];

	assert_int_equal(mfs_alloc_alloc(v->alloc, 900, 1, 1, &s, &l), 0);
	put_extent(v, ino.c, 0, s, 1);
	vclose(v);
	snprintf(pat, sizeof(pat), "Item (%llu, EXTENT, 0) is an extent of inode "
		 "%llu, which is not a regular file", (unsigned long long)ino.c,
		 (unsigned long long)ino.c);
	check_repair(pat, false);
}

static void test_item_no_inode(void **state)
{
	struct mfs_vol *v = vopen();

	assert_int_equal(mfs_dir_add(v, 5000, "x", 1, ino.f1, DT_REG), 0);
	vclose(v);
	check_repair("Item (5000, DIRENT, ", false);
}

static void test_dir_loop(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[100];

	/* /a moves into /a/b/c: a, b, c form a loop nothing reaches. The
	 * link counts and '..' are adjusted, so the loop is the only fault. */
	assert_int_equal(mfs_dir_remove(v, MFS_ROOT, "a", 1), 0);
	assert_int_equal(mfs_dir_add(v, ino.c, "loop", 4, ino.a, DT_DIR), 0);
	set_inode_u64(v, ino.a, DI(di_parent), ino.c);
	set_inode_u32(v, ino.c, DI(di_nlink), 3);
	set_inode_u32(v, MFS_ROOT, DI(di_nlink),
		      get_inode_u32(v, MFS_ROOT, DI(di_nlink)) - 1);
	vclose(v);
	snprintf(pat, sizeof(pat), "in a loop of directories not reachable from "
		 "the root");
	check_repair(pat, false);
}

static void test_detached_dir(void **state)
{
	struct mfs_vol *v = vopen();
	char pat[100], name[32];

	assert_int_equal(mfs_dir_remove(v, ino.a, "b", 1), 0);
	set_inode_u32(v, ino.a, DI(di_nlink), 2);
	vclose(v);
	snprintf(pat, sizeof(pat), "Directory %llu is not connected to the tree",
		 (unsigned long long)ino.b);
	check_repair(pat, false);
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)ino.b);
	assert_int_equal(lookup(name, ino.lf), ino.b);
	assert_int_equal(lookup("c", ino.b), ino.c);
}

static void test_no_lost_found(void **state)
{
	struct mfs_vol *v = vopen();
	struct mfs_inode in;

	/* Remove lost+found and detach f3: fsck must create lost+found. */
	assert_int_equal(mfs_dir_remove(v, MFS_ROOT, "lost+found", 10), 0);
	assert_int_equal(mfs_inode_read(v, ino.lf, &in), 0);
	assert_int_equal(mfs_inode_remove(v, &in), 0);
	set_inode_u32(v, MFS_ROOT, DI(di_nlink),
		      get_inode_u32(v, MFS_ROOT, DI(di_nlink)) - 1);
	assert_int_equal(mfs_dir_remove(v, MFS_ROOT, "f3", 2), 0);
	vclose(v);
	check_repair("/lost+found not found", false);
	assert_true(lookup("lost+found", MFS_ROOT) != 0);
}

static void test_root_missing(void **state)
{
	struct mfs_vol *v = vopen();
	struct mfs_key k = mfs_key_make(MFS_ROOT, MFS_ITEM_INODE, 0);

	assert_int_equal(mfs_btree_delete(v, MFS_TREE_FS, &k), 0);
	v->inode_count--;
	vclose(v);
	check_repair("The root directory (inode 1) is missing", false);
}

static void test_leaf_checksum(void **state)
{
	size_t len;
	uint64_t off = item_offset(MFS_TREE_FS,
				   mfs_key_make(ino.many + 40, MFS_ITEM_INODE, 0),
				   &len);
	uint8_t b;

	/* One flipped bit in an inode of /many's files. */
	pread_at(off + DI(di_uid), &b, 1);
	b ^= 0x10;
	pwrite_at(off + DI(di_uid), &b, 1);
	check_repair2("FS tree: node ", "has a bad checksum", false);
}

/* The FS tree's root itself: everything is lost but what fsck makes (a
 * root directory and lost+found). */
static void test_fs_root_checksum(void **state)
{
	struct mfs_super sb;
	uint64_t off;
	uint8_t b;

	sb_current(&sb);
	off = sb.roots[MFS_TREE_FS].block * MFS_BLOCK_SIZE + MFS_NODE_HDR + 3;
	pread_at(off, &b, 1);
	b ^= 0x80;
	pwrite_at(off, &b, 1);
	check_repair2("the items in [*, *) under it are lost",
		      "The root directory (inode 1) is missing", false);
	expect_out("test.img: 2 files, ");
	assert_true(lookup("lost+found", MFS_ROOT) != 0);
}

static void test_free_leaf_checksum(void **state)
{
	struct mfs_super sb;
	uint64_t off;
	uint8_t b;

	sb_current(&sb);
	off = sb.roots[MFS_TREE_FREE].block * MFS_BLOCK_SIZE + 100;
	pread_at(off, &b, 1);
	b ^= 1;
	pwrite_at(off, &b, 1);
	check_repair2("FREE tree: node ", "has a bad checksum", false);
}

static void test_child_past_end(void **state)
{
	struct mfs_super sb;
	uint8_t n[MFS_BLOCK_SIZE];
	uint64_t root;

	sb_current(&sb);
	root = sb.roots[MFS_TREE_FS].block;
	assert_true(sb.roots[MFS_TREE_FS].level >= 1);
	pread_at(root * MFS_BLOCK_SIZE, n, sizeof(n));
	assert_true(mfs_get_le16(n + offsetof(struct mfs_disk_node, nd_nritems)) >= 3);
	mfs_put_le64(n + MFS_NODE_HDR + 2 * sizeof(struct mfs_disk_ptr) +
		     offsetof(struct mfs_disk_ptr, kp_block), NBLOCKS + 100);
	pwrite_at(root * MFS_BLOCK_SIZE, n, sizeof(n));
	node_fix_crc(root);
	check_repair2("is outside the image", "are lost", false);
}

static void sb_patch_u64(size_t field, int64_t delta)
{
	unsigned cur = sb_current(NULL);
	uint8_t sb[MFS_SB_SIZE];

	sb_read(cur, sb);
	mfs_put_le64(sb + field, mfs_get_le64(sb + field) + (uint64_t)delta);
	sb_write(cur, sb, true);
}

static void test_sb_inode_count(void **state)
{
	sb_patch_u64(offsetof(struct mfs_disk_super, sb_inode_count), 5);
	check_repair("Inode count wrong (168, counted=163)", false);
}

static void test_sb_free_blocks(void **state)
{
	sb_patch_u64(offsetof(struct mfs_disk_super, sb_free_blocks), -3);
	check_repair("Free blocks count wrong", false);
}

static void test_sb_next_ino(void **state)
{
	struct mfs_super sb;

	sb_current(&sb);
	sb_patch_u64(offsetof(struct mfs_disk_super, sb_next_ino),
		     -(int64_t)(sb.next_ino - 5));
	check_repair("Next inode number 5 is not above the highest inode", false);
}

/* A slot written whole (right checksum) with a field no writer makes is
 * not what a crash leaves: a problem, rewritten by the repair. */
static void test_old_slot_fields(void **state)
{
	unsigned other = 1u - sb_current(NULL);
	uint8_t sb[MFS_SB_SIZE];
	char pat[100];

	sb_read(other, sb);
	mfs_put_le32(sb + offsetof(struct mfs_disk_super, sb_block_size), 512);
	sb_write(other, sb, true);
	snprintf(pat, sizeof(pat), "Superblock slot %u has impossible fields",
		 other);
	check_repair(pat, false);
}

/* Two commits cannot have the same generation: a slot that claims the
 * generation in use for another state is a problem. */
static void test_old_slot_same_gen(void **state)
{
	struct mfs_super cur;
	unsigned other = 1u - sb_current(&cur);
	uint8_t sb[MFS_SB_SIZE];
	char pat[100];

	sb_read(other, sb);
	mfs_put_le64(sb + offsetof(struct mfs_disk_super, sb_generation),
		     cur.generation);
	sb_write(other, sb, true);
	snprintf(pat, sizeof(pat), "Superblock slot %u has an impossible "
		 "generation", other);
	check_repair(pat, false);
}

/*
 * What a crash can leave in the slot not in use is not a problem: the
 * slot in use holds a whole commit and the next commit rewrites the other
 * one. fsck prints a note and exits 0 in every mode; on an image marked
 * clean nothing is written, even by -y. pattern: the note.
 */
static void expect_slot_note(const char *pattern)
{
	static const char *const modes[] = { "-n", "-fn", "-y", "-fy", "-p",
					      "-fp" };
	size_t l0, l1;
	uint8_t *before = slurp(img, &l0), *after;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		expect_rc(fsck(modes[i]), 0, modes[i]);
		expect_out(pattern);
		expect_out("the next commit rewrites it");
		expect_no_out("Rewrite");
		expect_no_out("REWRITTEN");
		expect_no_out("NOT FIXED");
		expect_no_out("WARNING");
		expect_no_out("MODIFIED");
		/* Checked in full although marked clean, as any unusual
		 * slot is. */
		expect_no_out(": clean,");
		after = slurp(img, &l1);
		assert_int_equal(l0, l1);
		assert_memory_equal(before, after, l0);
		free(after);
	}
	free(before);
	/* The next commit rewrites the slot. */
	consistency_walk();
	expect_rc(fsck("-fn"), 0, "fsck -fn after mfs_fs_open");
	expect_no_out("Note");
}

/* A superblock write cut short by power loss: the new sector's first
 * bytes, the old one's after them. */
static void test_old_slot_torn(void **state)
{
	struct mfs_super cur;
	unsigned other = 1u - sb_current(&cur);
	uint8_t sb[MFS_SB_SIZE], nsb[MFS_SB_SIZE];
	char pat[100];

	/* The commit after the one in use, as it would have written it. */
	sb_read(cur.generation ? 1u - other : 0, nsb);
	mfs_put_le64(nsb + offsetof(struct mfs_disk_super, sb_generation),
		     cur.generation + 1);
	mfs_put_le32(nsb + offsetof(struct mfs_disk_super, sb_slot), other);
	mfs_put_le64(nsb + offsetof(struct mfs_disk_super, sb_free_blocks),
		     cur.free_blocks - 7);
	mfs_put_le32(nsb + offsetof(struct mfs_disk_super, sb_crc),
		     mfs_crc32c(0, nsb + MFS_SB_CRC_START,
				MFS_SB_SIZE - MFS_SB_CRC_START));
	sb_read(other, sb);
	memcpy(sb, nsb, 40); /* magic, crc, version, slot, ... generation */
	sb_write(other, sb, false);
	assert_int_equal(sb_current(NULL), 1u - other);
	snprintf(pat, sizeof(pat), "Note: superblock slot %u has a bad checksum "
		 "(slot %u, generation %llu, is in use)", other, 1u - other,
		 (unsigned long long)cur.generation);
	expect_slot_note(pat);
}

static void test_old_slot_crc(void **state)
{
	unsigned other = 1u - sb_current(NULL);
	uint8_t sb[MFS_SB_SIZE];
	char pat[100];

	sb_read(other, sb);
	sb[offsetof(struct mfs_disk_super, sb_label)] ^= 0x20;
	sb_write(other, sb, false);
	snprintf(pat, sizeof(pat), "Note: superblock slot %u has a bad checksum",
		 other);
	expect_slot_note(pat);
}

/* A torn sector read back as zeros. */
static void test_old_slot_zeroed(void **state)
{
	unsigned other = 1u - sb_current(NULL);
	uint8_t sb[MFS_SB_SIZE] = { 0 };
	char pat[100];

	sb_write(other, sb, false);
	snprintf(pat, sizeof(pat), "Note: superblock slot %u has no mmapfs "
		 "magic", other);
	expect_slot_note(pat);
}

/* A superblock write the disk lost: the other slot is valid but older
 * than the commit before the one in use. */
static void test_old_slot_stale(void **state)
{
	struct mfs_super cur;
	unsigned other = 1u - sb_current(&cur);
	uint8_t sb[MFS_SB_SIZE];
	char pat[160];

	assert_true(cur.generation >= 4);
	sb_read(other, sb);
	mfs_put_le64(sb + offsetof(struct mfs_disk_super, sb_generation),
		     cur.generation - 3);
	/* Its roots no newer than it (what it points at is not checked: it
	 * is not in use, and may have been reused). */
	for (unsigned t = 0; t < MFS_TREE_COUNT; t++) {
		uint8_t *rt = sb + offsetof(struct mfs_disk_super, sb_roots) +
			      t * sizeof(struct mfs_disk_root) +
			      offsetof(struct mfs_disk_root, rt_generation);

		if (mfs_get_le64(rt) > cur.generation - 3)
			mfs_put_le64(rt, cur.generation - 3);
	}
	sb_write(other, sb, true);
	snprintf(pat, sizeof(pat), "Note: superblock slot %u is older than the "
		 "commit before the one in use (generation %llu; slot %u, "
		 "generation %llu, is in use)", other,
		 (unsigned long long)cur.generation - 3, 1u - other,
		 (unsigned long long)cur.generation);
	expect_slot_note(pat);
}

/* A crash image: marked in use, the other slot torn. -n finds nothing;
 * -y marks it clean, and that commit rewrites the slot. */
static void test_old_slot_torn_dirty(void **state)
{
	struct mfs_fs *fs;
	unsigned other;
	uint8_t sb[MFS_SB_SIZE];
	size_t l0, l1;
	uint8_t *before, *after;

	assert_int_equal(mfs_fs_open(img, 0, &fs), 0);
	mfs_fs_close_dirty(fs);
	other = 1u - sb_current(NULL);
	sb_read(other, sb);
	sb[200] ^= 0x10;
	sb_write(other, sb, false);
	before = slurp(img, &l0);
	expect_rc(fsck("-n"), 0, "fsck -n, crash image");
	expect_out("Pass 1");
	expect_out("Note: superblock slot ");
	expect_no_out("WARNING");
	after = slurp(img, &l1);
	assert_memory_equal(before, after, l0);
	free(before);
	free(after);
	expect_rc(fsck("-y"), 0, "fsck -y, crash image");
	expect_out("Note: superblock slot ");
	expect_no_out("MODIFIED");
	/* Marked clean by a commit to the torn slot, now in use. */
	assert_int_equal(sb_current(NULL), other);
	expect_rc(fsck("-fn"), 0, "fsck -fn after -y");
	expect_no_out("Note");
	expect_rc(fsck("-n"), 0, "fsck -n after -y");
	expect_out("clean");
}

/* A slot from another filesystem: found even without -f on a clean image. */
static void test_old_slot_foreign(void **state)
{
	unsigned other = 1u - sb_current(NULL);
	uint8_t sb[MFS_SB_SIZE];
	char pat[100];

	sb_read(other, sb);
	sb[offsetof(struct mfs_disk_super, sb_uuid)] ^= 0x55;
	sb_write(other, sb, true);
	expect_rc(fsck("-n"), 4, "fsck -n, clean image, foreign slot");
	snprintf(pat, sizeof(pat), "Superblock slot %u does not belong with the "
		 "slot in use", other);
	expect_out(pat);
	check_repair(pat, false);
}

/* ------------------------------------------------------------------ */
/* The command line                                                    */
/* ------------------------------------------------------------------ */

static void test_mkfs_clean(void **state)
{
	struct mfs_format_opts fo = { .size = 64ULL << 20, .force = true };

	assert_int_equal(mfs_format(img, &fo), 0);
	expect_rc(fsck("-n"), 0, "fsck -n");
	expect_out("test.img: clean, 2 files, ");
	expect_rc(fsck("-fn"), 0, "fsck -fn");
	expect_rc(fsck("-fy"), 0, "fsck -fy");
	expect_rc(fsck("-fp"), 0, "fsck -fp");
	expect_no_out("Pass");
	expect_out("test.img: 2 files, 4/16384 blocks");
}

static void test_dirty_state(void **state)
{
	struct mfs_fs *fs;

	/* A crash leaves the image marked in use: checked without -f. */
	assert_int_equal(mfs_fs_open(img, 0, &fs), 0);
	mfs_fs_close_dirty(fs);
	expect_rc(fsck("-n"), 0, "fsck -n on a dirty image");
	expect_out("Pass 1");
	expect_rc(fsck("-p"), 0, "fsck -p on a dirty image");
	expect_rc(fsck("-n"), 0, "fsck -n after marking clean");
	expect_out("clean");
}

static void test_locked(void **state)
{
	struct mfs_fs *fs;
	size_t l0, l1;
	uint8_t *before = slurp(img, &l0), *after;

	assert_int_equal(mfs_fs_open(img, 0, &fs), 0);
	after = slurp(img, &l1);
	free(before);
	before = after;
	/* No FUSE mount of it here: fsck waits for the lock as for a daemon
	 * closing the image after umount, 30 s unless told otherwise. */
	setenv("MMAPFS_LOCK_WAIT_MS", "100", 1);
	expect_rc(fsck("-n"), 8, "fsck -n on a mounted image");
	expect_out("fsck.mmapfs: ");
	expect_out("test.img is in use (mounted?)");
	expect_rc(fsck("-fy"), 8, "fsck -fy on a mounted image");
	unsetenv("MMAPFS_LOCK_WAIT_MS");
	after = slurp(img, &l1);
	assert_memory_equal(before, after, l0);
	free(before);
	free(after);
	assert_int_equal(mfs_fs_close(fs), 0);
	expect_rc(fsck("-fn"), 0, "fsck -fn after the unmount");
}

static void test_usage(void **state)
{
	const char *none[] = { NULL };
	const char *two[] = { "-n", "-y", img, NULL };
	const char *bad[] = { "-x", img, NULL };
	const char *extra[] = { "-n", img, img, NULL };
	const char *cbad[] = { "-C", "x", img, NULL };
	const char *cclosed[] = { "-C", "999", img, NULL };
	const char *cnone[] = { "-C", NULL };
	const char *help[] = { "-h", NULL };
	const char *ver[] = { "-V", NULL };
	const char *inter[] = { img, NULL };

	expect_rc(run_prog(fsck_path, none, NULL), 16, "no image");
	expect_out("Try 'fsck.mmapfs -h'");
	expect_rc(run_prog(fsck_path, two, NULL), 16, "-n -y");
	expect_out("only one of -n, -y and -p");
	expect_rc(run_prog(fsck_path, bad, NULL), 16, "-x");
	expect_out("unknown option -x");
	expect_rc(run_prog(fsck_path, extra, NULL), 16, "two images");
	expect_rc(run_prog(fsck_path, cbad, NULL), 16, "-C x");
	expect_rc(run_prog(fsck_path, cclosed, NULL), 16, "-C 999");
	expect_rc(run_prog(fsck_path, cnone, NULL), 16, "-C");
	expect_rc(run_prog(fsck_path, help, NULL), 0, "-h");
	expect_out("Usage: fsck.mmapfs");
	expect_rc(run_prog(fsck_path, ver, NULL), 0, "-V");
	/* Standard input is not a terminal here. */
	expect_rc(run_prog(fsck_path, inter, NULL), 8, "no mode, no terminal");
	expect_out("need a terminal");
}

static void test_not_mmapfs(void **state)
{
	static uint8_t zero[NBLOCKS * 4];
	int fd = open(img, O_WRONLY | O_TRUNC);
	char missing[320];
	const char *args[] = { "-n", missing, NULL };

	assert_true(fd >= 0);
	for (int i = 0; i < 1024; i++)
		assert_int_equal(write(fd, zero, sizeof(zero)), (ssize_t)sizeof(zero));
	close(fd);
	expect_rc(fsck("-n"), 8, "fsck -n on zeros");
	expect_out("not an mmapfs image");
	snprintf(missing, sizeof(missing), "%s/nope.img", tmpdir);
	expect_rc(run_prog(fsck_path, args, NULL), 8, "a missing image");
	expect_out("No such file or directory");
}

static void test_both_slots_bad(void **state)
{
	uint8_t sb[MFS_SB_SIZE];
	size_t l0, l1;
	uint8_t *before, *after;

	for (unsigned i = 0; i < 2; i++) {
		sb_read(i, sb);
		sb[offsetof(struct mfs_disk_super, sb_generation)] ^= 1;
		sb_write(i, sb, false);
	}
	before = slurp(img, &l0);
	expect_rc(fsck("-n"), 8, "fsck -n without a valid superblock");
	expect_out("no valid superblock");
	expect_rc(fsck("-fy"), 8, "fsck -fy without a valid superblock");
	expect_out("no valid superblock");
	expect_out("there are no backup superblocks to search");
	after = slurp(img, &l1);
	assert_memory_equal(before, after, l0);
	free(before);
	free(after);
}

static void test_unknown_feature(void **state)
{
	sb_patch_u64(offsetof(struct mfs_disk_super, sb_feature_ro_compat), 4);
	expect_rc(fsck("-fn"), 8, "fsck -fn, unknown ro_compat feature");
	expect_out("has features this version does not know (ro_compat 0x4)");
	expect_rc(fsck("-fy"), 8, "fsck -fy, unknown ro_compat feature");
}

static unsigned sink_calls;

static void my_sink(int level, const char *msg)
{
	(void)level;
	(void)msg;
	sink_calls++;
}

/* mfs_check puts the caller's log sink back, whether the check ran or
 * could not start. */
static void test_log_sink_kept(void **state)
{
	struct mfs_check_opts o = { .flags = MFS_CHECK_FORCE };
	struct mfs_check_result r;
	char missing[320];
	FILE *devnull = fopen("/dev/null", "w");

	assert_non_null(devnull);
	o.out = devnull;
	mfs_log_set_sink(my_sink);
	assert_int_equal(mfs_check(img, &o, &r), 0);
	assert_int_equal(r.problems, 0);
	assert_ptr_equal(mfs_log_get_sink(), my_sink);
	sink_calls = 0;
	mfs_log(MFS_LOG_ERR, "to the caller's sink");
	assert_int_equal(sink_calls, 1);

	snprintf(missing, sizeof(missing), "%s/nope.img", tmpdir);
	assert_int_equal(mfs_check(missing, &o, &r), -ENOENT);
	assert_ptr_equal(mfs_log_get_sink(), my_sink);

	o.flags |= MFS_CHECK_REPAIR;
	assert_int_equal(mfs_check(img, &o, &r), 0);
	assert_ptr_equal(mfs_log_get_sink(), my_sink);
	mfs_log_set_sink(NULL);
	fclose(devnull);
}

static void test_progress(void **state)
{
	const char *args[] = { "-fn", "-C", "0", img, NULL };
	char line[64];

	expect_rc(run_prog(fsck_path, args, NULL), 0, "fsck -C 0");
	for (unsigned pass = 1; pass <= 5; pass++) {
		snprintf(line, sizeof(line), "\n%u 0 ", pass);
		expect_out(line);
	}
	/* Each pass ends at done == total. */
	expect_out("\n5 1 1 ");
}

static void test_verbose(void **state)
{
	const char *args[] = { "-fnv", img, NULL };

	expect_rc(run_prog(fsck_path, args, NULL), 0, "fsck -fnv");
	expect_out("regular files");
	expect_out("directories");
}

static void test_fsck8(void **state)
{
	const char *fsck8 = access("/usr/sbin/fsck", X_OK) == 0 ? "/usr/sbin/fsck"
			  : access("/sbin/fsck", X_OK) == 0 ? "/sbin/fsck" : NULL;
	const char *args_n[] = { "-t", "mmapfs", "-n", img, NULL };
	const char *args_y[] = { "-t", "mmapfs", "-y", img, NULL };
	char dir[512];
	struct mfs_vol *v;

	if (!fsck8)
		MFS_SKIP("fsck(8) is not installed\n");
	snprintf(dir, sizeof(dir), "%s", fsck_path);
	*strrchr(dir, '/') = 0;
	expect_rc(run_prog(fsck8, args_n, dir), 0, "fsck -t mmapfs -n");
	expect_out("clean");
	v = vopen();
	set_inode_u32(v, ino.f1, DI(di_nlink), 4);
	vclose(v);
	args_n[2] = "-fn";
	expect_rc(run_prog(fsck8, args_n, dir), 4, "fsck -t mmapfs -fn, damaged");
	expect_out("ref count is 4, should be 1");
	args_y[2] = "-fy";
	expect_rc(run_prog(fsck8, args_y, dir), 1, "fsck -t mmapfs -fy, damaged");
	expect_rc(run_prog(fsck8, args_n, dir), 0, "fsck -t mmapfs -fn, repaired");
}

/* ck_ino finds exactly what a linear scan finds, for inode numbers dense,
 * with gaps, in clusters and with far outliers (its first guess assumes
 * them dense). */
static void test_ck_ino_search(void **state)
{
	static const uint64_t far[] = { 5, 6, 7, 1000, 1001, 1002, 1u << 20,
					(1ull << 40) + 3, UINT64_MAX - 1 };
	struct ck c;
	size_t n, i, pat, k;
	uint64_t q;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.ino = calloc(4096, sizeof(*c.ino));
	assert_non_null(c.ino);
	for (pat = 0; pat < 5; pat++) {
		for (n = 0; n < 4096; n++) {
			uint64_t v;

			switch (pat) {
			case 0: v = n + 1; break;                  /* dense */
			case 1: v = 1 + n * 3 + (n % 7 == 0); break; /* gaps */
			case 2: v = n < 4000 ? n + 1 : 1000000 + n; break;
			case 3: v = n < 96 ? 50 + n * n : 1u << 30 | n; break;
			default:
				if (n >= sizeof(far) / sizeof(far[0]))
					goto done;
				v = far[n];
			}
			c.ino[n].ino = v;
		}
done:
		c.nino = n;
		for (i = 0; i < 3 * n + 8; i++) {
			/* every record, its neighbours, and beyond both ends */
			q = i < n ? c.ino[i].ino : i < 2 * n ? c.ino[i - n].ino + 1
			  : i < 3 * n ? c.ino[i - 2 * n].ino - 1
			  : (uint64_t[]){ 0, 1, 2, UINT64_MAX, UINT64_MAX - 2,
					   1u << 30, 999999, 1u << 31 }[i - 3 * n];
			for (k = 0; k < n && c.ino[k].ino != q; k++)
				;
			assert_ptr_equal(ck_ino(&c, q), k < n ? &c.ino[k] : NULL);
		}
	}
	c.nino = 0;
	assert_null(ck_ino(&c, 1));
	free(c.ino);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup(f, setup)
		cmocka_unit_test(test_ck_ino_search),
		T(test_base_clean),
		T(test_nlink_high),
		T(test_nlink_low),
		T(test_nlink_preen),
		T(test_dir_nlink),
		T(test_dangling_dirent),
		T(test_unreachable_inode),
		T(test_wrong_dotdot),
		T(test_dir_hardlink),
		T(test_hash_mismatch),
		T(test_bad_name),
		T(test_dup_name),
		T(test_dup_name_moved),
		T(test_dent_type),
		T(test_leaked_block),
		T(test_free_and_used),
		T(test_extent_overlap),
		T(test_extent_self_overlap),
		T(test_extent_past_end),
		T(test_di_blocks),
		T(test_dir_size),
		T(test_orphan_linked),
		T(test_orphan_missing),
		T(test_nlink0_unlisted),
		T(test_nlink0_linked),
		T(test_legit_orphan),
		T(test_symlink_damaged),
		T(test_unknown_item),
		T(test_xattr_clean),
		T(test_xattr_bad_header),
		T(test_xattr_bad_hash),
		T(test_xattr_last_chunk_missing),
		T(test_xattr_middle_chunk_missing),
		T(test_xattr_first_chunk_missing),
		T(test_xattr_chunk_size),
		T(test_bad_nsec),
		T(test_bad_rdev),
		T(test_bad_mode),
		T(test_extent_on_dir),
		T(test_item_no_inode),
		T(test_dir_loop),
		T(test_detached_dir),
		T(test_no_lost_found),
		T(test_root_missing),
		T(test_leaf_checksum),
		T(test_fs_root_checksum),
		T(test_free_leaf_checksum),
		T(test_child_past_end),
		T(test_sb_inode_count),
		T(test_sb_free_blocks),
		T(test_sb_next_ino),
		T(test_old_slot_fields),
		T(test_old_slot_same_gen),
		T(test_old_slot_torn),
		T(test_old_slot_crc),
		T(test_old_slot_zeroed),
		T(test_old_slot_stale),
		T(test_old_slot_torn_dirty),
		T(test_old_slot_foreign),
		T(test_mkfs_clean),
		T(test_dirty_state),
		T(test_locked),
		T(test_usage),
		T(test_not_mmapfs),
		T(test_both_slots_bad),
		T(test_unknown_feature),
		T(test_log_sink_kept),
		T(test_progress),
		T(test_verbose),
		T(test_fsck8),
#undef T
	};

	return mfs_test_exit(cmocka_run_group_tests(tests, group_setup,
						    group_teardown));
}
