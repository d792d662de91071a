// SPDX-License-Identifier: MIT
/*
 * mfsstress — a concurrent namespace and data stress tool for mmapfs (and
 * any Linux filesystem), in the spirit of xfstests' fsstress.
 *
 * NPROC forked workers run random operations in one shared tree with a
 * small name space (NAMES names per directory, paths DEPTH deep), so that
 * they collide: create, mkdir, rename (plain, RENAME_NOREPLACE,
 * RENAME_EXCHANGE), link, unlink, rmdir, symlink, readlink, write, read,
 * mapped write, truncate, fallocate, user.* xattrs, fsync, readdir, stat.
 * Every failing call's errno must be one that makes sense for that call in
 * a tree that others are changing (table `ops` below); any other errno is
 * reported with the operation and path, and counted.
 *
 * File data is self-checking: every write, mapped write, truncate and
 * fallocate works on whole BLK-sized, BLK-aligned blocks, under an
 * exclusive flock of the file, and every block written carries its own
 * offset and a pattern derived from a tag. So at any time each block of a
 * file must be all zeros or an intact block for its offset; reads (under a
 * shared flock) check that. xattr values carry their own pattern too.
 *
 * After the workers finish, the whole tree is walked: every directory
 * lists, every entry stats with the type readdir gave, names are unique and
 * ours, directory and file link counts add up, symlinks read back, file
 * sizes are multiples of BLK and every block checks out.
 *
 * Exit status: 0 clean, 1 unexpected errno, bad data or broken invariant,
 * 2 usage or setup error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define PROG "mfsstress"

#define EXIT_BAD_FS 1
#define EXIT_USAGE 2

#define BLK 4096u		/* data block: the unit of every data operation */
#define BLK_MAGIC 0x4b4c424du	/* "MBLK" */
#define MAX_BLOCKS_PER_OP 4
#define NXATTR 8		/* user.x0 .. user.x7 */
#define MAX_REPORTS 20		/* unexpected results printed per worker */
#define MAXPROC 256
#define NKNOWN 128		/* paths a worker remembers */
#define PATHLEN 64

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

enum sop {
	S_CREATE, S_MKDIR, S_RENAME, S_LINK, S_UNLINK, S_RMDIR, S_SYMLINK,
	S_READLINK, S_WRITE, S_READ, S_MMAPWRITE, S_TRUNCATE, S_FALLOCATE,
	S_SETXATTR, S_GETXATTR, S_REMOVEXATTR, S_LISTXATTR, S_FSYNC,
	S_READDIR, S_STAT, S_COUNT
};

/*
 * What each operation may legitimately fail with while other workers change
 * the tree. Every path may lose a component (ENOENT), meet a non-directory
 * in the middle (ENOTDIR) or a symlink loop (ELOOP): symlink targets are
 * relative downward paths, so they can point at each other.
 */
#define PATH_ERRS ENOENT, ENOTDIR, ELOOP
struct opdef {
	const char *name;
	unsigned weight;
	bool modifies;		/* may need space: -s allows ENOSPC/EDQUOT */
	bool optional;		/* EOPNOTSUPP means "not supported", counted apart */
	int ok[10];		/* 0-terminated */
};

static const struct opdef ops[S_COUNT] = {
	/* O_WRONLY|O_CREAT[|O_EXCL]: a directory is EISDIR */
	[S_CREATE] = {"create", 6, true, false, {PATH_ERRS, EISDIR, EEXIST}},
	[S_MKDIR] = {"mkdir", 5, true, false, {PATH_ERRS, EEXIST}},
	/*
	 * EEXIST: NOREPLACE target exists, or a non-empty target directory;
	 * ENOTEMPTY: target directory not empty; EISDIR: target is a directory
	 * and the source is not; ENOTDIR: the reverse; EINVAL: a directory
	 * moved into its own subtree. Never EXDEV: one filesystem.
	 */
	[S_RENAME] = {"rename", 6, true, false,
		      {PATH_ERRS, EEXIST, ENOTEMPTY, EISDIR, EINVAL}},
	/* EPERM: hard link to a directory */
	[S_LINK] = {"link", 3, true, false, {PATH_ERRS, EEXIST, EPERM}},
	[S_UNLINK] = {"unlink", 5, true, false, {PATH_ERRS, EISDIR}},
	/* POSIX allows EEXIST for a non-empty directory */
	[S_RMDIR] = {"rmdir", 3, true, false, {PATH_ERRS, ENOTEMPTY, EEXIST}},
	[S_SYMLINK] = {"symlink", 3, true, false, {PATH_ERRS, EEXIST}},
	/* EINVAL: not a symlink */
	[S_READLINK] = {"readlink", 2, false, false, {PATH_ERRS, EINVAL}},
	[S_WRITE] = {"write", 8, true, false, {PATH_ERRS, EISDIR}},
	/* open O_RDONLY of a directory works; pread then fails with EISDIR */
	[S_READ] = {"read", 5, false, false, {PATH_ERRS, EISDIR}},
	[S_MMAPWRITE] = {"mmapwrite", 4, true, false, {PATH_ERRS, EISDIR}},
	[S_TRUNCATE] = {"truncate", 3, true, false, {PATH_ERRS, EISDIR}},
	[S_FALLOCATE] = {"fallocate", 3, true, true, {PATH_ERRS, EISDIR}},
	/* EEXIST: XATTR_CREATE of an existing name; ENODATA: XATTR_REPLACE of a missing one */
	[S_SETXATTR] = {"setxattr", 3, true, true, {PATH_ERRS, EEXIST, ENODATA}},
	[S_GETXATTR] = {"getxattr", 2, false, true, {PATH_ERRS, ENODATA}},
	[S_REMOVEXATTR] = {"removexattr", 1, true, true, {PATH_ERRS, ENODATA}},
	[S_LISTXATTR] = {"listxattr", 1, false, true, {PATH_ERRS}},
	[S_FSYNC] = {"fsync", 2, false, false, {PATH_ERRS}},
	[S_READDIR] = {"readdir", 3, false, false, {PATH_ERRS}},
	[S_STAT] = {"stat", 4, false, false, {PATH_ERRS}},
};

struct opstat {
	uint64_t ok, expected, unexpected, unsupported;
	uint64_t bad;		/* wrong data, names or values (the call itself may have succeeded) */
};

/* Shared between the workers and the parent (MAP_SHARED anonymous). */
struct shared {
	struct opstat st[MAXPROC][S_COUNT];
	uint64_t done[MAXPROC];
};

struct opts {
	unsigned nproc, names, depth;
	uint64_t nops, seed, seconds, maxsize;
	const char *dir;
	bool verbose, enospc_ok, keep, require_all;
};

static struct opts opt = {
	.nproc = 4, .names = 64, .depth = 3, .nops = 10000, .seed = 1,
	.maxsize = 256 << 10,
};

struct worker {
	unsigned id;
	uint64_t rng, opnum;
	unsigned reports;
	struct opstat *st;
	uint8_t *buf;		/* MAX_BLOCKS_PER_OP blocks */
	char known[NKNOWN][PATHLEN];	/* paths seen to exist lately */
	unsigned nknown, kpos;
	unsigned falloc_worked;	/* fallocate modes that have succeeded once */
};

/* ---- random numbers (splitmix64) */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rnd64(uint64_t *state)
{
	return mix64(*state += 0x9e3779b97f4a7c15ULL);
}

static uint64_t rnd(struct worker *w, uint64_t n)
{
	return n ? rnd64(&w->rng) % n : 0;
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(EXIT_USAGE);
}

static const char *errname(int err)
{
	const char *s = strerrorname_np(err);

	return s ? s : "E?";
}

/* ---- self-checking data blocks and xattr values */

struct blkhdr {
	uint32_t magic;
	uint32_t zero;
	uint64_t off;		/* the file offset this block belongs at */
	uint64_t tag;		/* worker << 40 | op number: seeds the pattern */
};

static void pattern(uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t s = seed;

	while (len) {
		uint64_t v = rnd64(&s);
		size_t n = len < 8 ? len : 8;

		memcpy(p, &v, n);
		p += n;
		len -= n;
	}
}

static void make_block(uint8_t *b, uint64_t off, uint64_t tag)
{
	struct blkhdr h = {.magic = BLK_MAGIC, .off = off, .tag = tag};

	memcpy(b, &h, sizeof(h));
	pattern(b + sizeof(h), BLK - sizeof(h), off ^ mix64(tag));
}

/* NULL if the block at file offset @off is all zeros or intact, else why not. */
static const char *check_block(const uint8_t *b, uint64_t off, char *why, size_t n)
{
	static const uint8_t zero[BLK];
	uint8_t expect[BLK];
	struct blkhdr h;

	if (memcmp(b, zero, BLK) == 0)
		return NULL;
	memcpy(&h, b, sizeof(h));
	if (h.magic != BLK_MAGIC || h.zero != 0) {
		size_t first = BLK, nz = 0;

		for (size_t i = 0; i < BLK; i++)
			if (b[i]) {
				nz++;
				if (first == BLK)
					first = i;
			}
		snprintf(why, n, "is neither zeros nor a block we wrote: no header, %zu nonzero"
			 " bytes, the first at 0x%zx (0x%02x)", nz, first, b[first]);
		return why;
	}
	if (h.off != off) {
		snprintf(why, n, "holds the block written for offset 0x%" PRIx64 " (misplaced data)", h.off);
		return why;
	}
	if ((h.tag >> 40) >= opt.nproc) {
		snprintf(why, n, "has a bad tag 0x%" PRIx64, h.tag);
		return why;
	}
	make_block(expect, off, h.tag);
	for (size_t i = sizeof(h); i < BLK; i++) {
		if (b[i] != expect[i]) {
			snprintf(why, n, "is torn or corrupt: byte 0x%zx is 0x%02x, expected 0x%02x"
				 " (writer %" PRIu64 " op %" PRIu64 ")", i, b[i], expect[i],
				 h.tag >> 40, h.tag & (((uint64_t)1 << 40) - 1));
			return why;
		}
	}
	return NULL;
}

/*
 * xattr value: 8-byte tag, then the tag's pattern; 16..96 bytes, so that
 * all NXATTR of them fit where ext4 with 1 KiB blocks keeps xattrs (one
 * block per inode): there ENOSPC would be a legitimate answer.
 */
static size_t make_xattr(uint8_t *v, struct worker *w)
{
	size_t len = 16 + rnd(w, 81);
	uint64_t tag = (uint64_t)w->id << 40 | w->opnum;

	memcpy(v, &tag, 8);
	pattern(v + 8, len - 8, mix64(tag) ^ len);
	return len;
}

static bool xattr_ok(const uint8_t *v, ssize_t len)
{
	uint8_t expect[256];
	uint64_t tag;

	if (len < 16 || len > 255)
		return false;
	memcpy(&tag, v, 8);
	pattern(expect, len - 8, mix64(tag) ^ (uint64_t)len);
	return memcmp(expect, v + 8, len - 8) == 0;
}

/* ---- names and paths */

/*
 * What the last component of a path should preferably be. The first eighth
 * of the names is where mkdir mostly puts directories and where the middle
 * of a path mostly looks; the rest is mostly files and symlinks. "Mostly":
 * one in ten picks ignores the split, and rename mixes everything anyway,
 * so every kind of collision happens — just not so rarely that most paths
 * miss.
 */
enum want { WANT_ANY, WANT_DIR, WANT_FILE };

static unsigned pick_name(struct worker *w, enum want want)
{
	unsigned ndirs = opt.names >= 8 ? opt.names / 8 : 1;

	if (want == WANT_ANY || rnd(w, 10) == 0 || ndirs == opt.names)
		return rnd(w, opt.names);
	if (want == WANT_DIR)
		return rnd(w, ndirs);
	return ndirs + rnd(w, opt.names - ndirs);
}

static void random_path(struct worker *w, char *p, size_t n, enum want want)
{
	unsigned depth = 1 + rnd(w, opt.depth);
	size_t k = 0;

	/* Favour shallow paths: deeper levels exist less often. */
	if (depth > 1 && rnd(w, 3) == 0)
		depth--;
	for (unsigned i = 0; i < depth; i++)
		k += snprintf(p + k, n - k, "%sn%02u", i ? "/" : "",
			      pick_name(w, i + 1 < depth ? WANT_DIR : want));
}

/* Remember a path that existed a moment ago; others may change it since. */
static void remember(struct worker *w, const char *p)
{
	if (strlen(p) >= PATHLEN)
		return;
	strcpy(w->known[w->kpos++ % NKNOWN], p);
	if (w->nknown < NKNOWN)
		w->nknown++;
}

/*
 * A path for an operation: with probability 1/@one_in_known one that
 * existed lately, else a random one. Without the known paths most
 * operations would miss in a name space this size.
 */
static void pick_path(struct worker *w, char *p, size_t n, enum want want, unsigned one_in_known)
{
	if (w->nknown && one_in_known && rnd(w, one_in_known) == 0)
		snprintf(p, n, "%s", w->known[rnd(w, w->nknown)]);
	else
		random_path(w, p, n, want);
}

/* A symlink target: one or two names, relative and downward, so it stays in the tree. */
static void random_target(struct worker *w, char *p, size_t n)
{
	if (rnd(w, 2))
		snprintf(p, n, "n%02u", (unsigned)rnd(w, opt.names));
	else
		snprintf(p, n, "n%02u/n%02u", (unsigned)rnd(w, opt.names),
			 (unsigned)rnd(w, opt.names));
}

static bool valid_name(const char *s)
{
	char *end;
	unsigned long v;

	if (s[0] != 'n' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
		return false;
	v = strtoul(s + 1, &end, 10);
	return *end == 0 && v < opt.names;
}

static bool valid_target(const char *s)
{
	char c[2][16];
	int n = sscanf(s, "%15[^/]/%15s", c[0], c[1]);

	if (n < 1 || strstr(s, "//") || s[strlen(s) - 1] == '/')
		return false;
	for (int i = 0; i < n; i++)
		if (!valid_name(c[i]))
			return false;
	return strchr(s, '/') ? n == 2 && !strchr(strchr(s, '/') + 1, '/') : n == 1;
}

/* ---- judging results */

static void report(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(struct worker *w, const char *fmt, ...)
{
	char line[768];
	va_list ap;
	int k;

	if (++w->reports > MAX_REPORTS) {
		if (w->reports == MAX_REPORTS + 1)
			fprintf(stderr, PROG ": worker %u: more problems; not printing them\n", w->id);
		return;
	}
	/* One write per line: the workers share stderr. */
	k = snprintf(line, sizeof(line), PROG ": worker %u op %" PRIu64 ": ", w->id, w->opnum);
	va_start(ap, fmt);
	vsnprintf(line + k, sizeof(line) - k - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	fputs(line, stderr);
}

/* Data, name or value that is wrong: always unexpected. */
static void bad(struct worker *w, int op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void bad(struct worker *w, int op, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->st[op].bad++;
	report(w, "%s", msg);
}

/*
 * Count the outcome of one operation: @err is 0 or the errno it failed
 * with; @desc says what was called ("rename(n01, n02/n03, NOREPLACE)").
 */
static void judge(struct worker *w, int op, int err, const char *desc)
{
	const struct opdef *d = &ops[op];
	bool expected = false;

	if (opt.verbose)
		printf("w%u #%" PRIu64 " %s: %s\n", w->id, w->opnum, desc,
		       err ? errname(err) : "ok");
	if (!err) {
		w->st[op].ok++;
		return;
	}
	for (int i = 0; d->ok[i]; i++)
		if (d->ok[i] == err)
			expected = true;
	if (!expected && opt.enospc_ok && d->modifies && (err == ENOSPC || err == EDQUOT))
		expected = true;
	if (expected) {
		w->st[op].expected++;
	} else if (d->optional && err == EOPNOTSUPP && !opt.require_all) {
		w->st[op].unsupported++;
	} else {
		w->st[op].unexpected++;
		report(w, "%s: unexpected errno %s (%s)", desc, errname(err), strerror(err));
	}
}

/* ---- the operations; each returns 0 or the errno of the failing step */

static int open_locked(const char *path, int flags, int lock, int *fdp)
{
	int fd = open(path, flags | O_CLOEXEC, 0644);

	if (fd < 0)
		return errno;
	if (flock(fd, lock) < 0) {
		int err = errno;

		close(fd);
		return err;
	}
	*fdp = fd;
	return 0;
}

/* A block-aligned [off, off+len) inside maxsize, 1..MAX_BLOCKS_PER_OP blocks. */
static void pick_blocks(struct worker *w, uint64_t *off, uint64_t *len)
{
	uint64_t nblk = opt.maxsize / BLK;

	*off = rnd(w, nblk) * BLK;
	*len = (1 + rnd(w, MAX_BLOCKS_PER_OP)) * BLK;
	if (*off + *len > opt.maxsize)
		*len = opt.maxsize - *off;
}

static int op_create(struct worker *w, const char *p, char *desc, size_t n)
{
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (rnd(w, 2) ? O_EXCL : 0);
	int fd;

	snprintf(desc, n, "create(%s%s)", p, flags & O_EXCL ? ", O_EXCL" : "");
	fd = open(p, flags, 0644);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int op_rename(struct worker *w, const char *a, const char *b, char *desc, size_t n)
{
	unsigned r = rnd(w, 10);
	unsigned flags = r < 6 ? 0 : r < 8 ? RENAME_NOREPLACE : RENAME_EXCHANGE;

	snprintf(desc, n, "rename(%s, %s%s)", a, b, flags == RENAME_NOREPLACE ? ", NOREPLACE" :
		 flags == RENAME_EXCHANGE ? ", EXCHANGE" : "");
	if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags) < 0)
		return errno;
	return 0;
}

static int op_write(struct worker *w, const char *p, char *desc, size_t n)
{
	int flags = O_WRONLY | (rnd(w, 2) ? O_CREAT : 0);
	uint64_t off, len, tag = (uint64_t)w->id << 40 | w->opnum;
	int fd = -1, err;
	ssize_t r;

	pick_blocks(w, &off, &len);
	snprintf(desc, n, "write(%s%s, 0x%" PRIx64 ", 0x%" PRIx64 ")", p,
		 flags & O_CREAT ? " O_CREAT" : "", off, len);
	err = open_locked(p, flags, LOCK_EX, &fd);
	if (err)
		return err;
	for (uint64_t i = 0; i < len; i += BLK)
		make_block(w->buf + i, off + i, tag);
	r = pwrite(fd, w->buf, len, off);
	err = r < 0 ? errno : 0;
	if (r >= 0 && (uint64_t)r != len && !opt.enospc_ok) {
		bad(w, S_WRITE, "%s: short write of 0x%zx bytes", desc, (size_t)r);
	} else if (!err && rnd(w, 8) == 0 && fdatasync(fd) < 0) {
		err = errno;
	}
	close(fd);
	return err;
}

static int op_read(struct worker *w, const char *p, char *desc, size_t n)
{
	uint64_t off, len;
	struct stat st;
	char why[160];
	int fd = -1, err;
	ssize_t r;

	snprintf(desc, n, "read(%s)", p);
	err = open_locked(p, O_RDONLY, LOCK_SH, &fd);
	if (err)
		return err;
	if (fstat(fd, &st) < 0) {
		err = errno;
		goto out;
	}
	pick_blocks(w, &off, &len);
	if (S_ISREG(st.st_mode)) {
		/* Read inside the file: the shared lock keeps its size still. */
		if ((uint64_t)st.st_size < BLK) {
			off = 0;
			len = st.st_size;
		} else {
			off = rnd(w, st.st_size / BLK) * BLK;
			if (off + len > (uint64_t)st.st_size)
				len = st.st_size - off;
		}
	}
	snprintf(desc, n, "read(%s, 0x%" PRIx64 ", 0x%" PRIx64 ")", p, off, len);
	r = pread(fd, w->buf, len, off);
	if (r < 0) {
		err = errno;
		goto out;
	}
	if ((uint64_t)r != len) {
		bad(w, S_READ, "%s: short read: 0x%zx bytes of a 0x%" PRIx64 "-byte file",
		    desc, (size_t)r, (uint64_t)st.st_size);
		goto out;
	}
	if (len % BLK && !opt.enospc_ok) {
		bad(w, S_READ, "%s: file size 0x%" PRIx64 " is not a multiple of 0x%x",
		    desc, (uint64_t)st.st_size, BLK);
		goto out;
	}
	for (uint64_t i = 0; i + BLK <= len && !opt.enospc_ok; i += BLK)
		if (check_block(w->buf + i, off + i, why, sizeof(why)))
			bad(w, S_READ, "%s: block at 0x%" PRIx64 " %s", desc, off + i, why);
out:
	close(fd);
	return err;
}

static sigjmp_buf sigbus_jmp;
static volatile sig_atomic_t in_mapping;

static void on_sigbus(int sig)
{
	if (in_mapping)
		siglongjmp(sigbus_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int op_mmapwrite(struct worker *w, const char *p, char *desc, size_t n)
{
	uint64_t off, len, tag = (uint64_t)w->id << 40 | w->opnum;
	struct stat st;
	int fd = -1, err;
	uint8_t *map;

	pick_blocks(w, &off, &len);
	snprintf(desc, n, "mmapwrite(%s, 0x%" PRIx64 ", 0x%" PRIx64 ")", p, off, len);
	err = open_locked(p, O_RDWR, LOCK_EX, &fd);
	if (err)
		return err;
	if (fstat(fd, &st) < 0) {
		err = errno;
		goto out;
	}
	/* A mapping cannot grow the file; under our lock nobody shrinks it. */
	if ((uint64_t)st.st_size < off + len && ftruncate(fd, off + len) < 0) {
		err = errno;
		goto out;
	}
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
	if (map == MAP_FAILED) {
		err = errno;
		goto out;
	}
	if (sigsetjmp(sigbus_jmp, 1) == 0) {
		in_mapping = 1;
		for (uint64_t i = 0; i < len; i += BLK)
			make_block(map + i, off + i, tag);
		in_mapping = 0;
		if (rnd(w, 2) && msync(map, len, rnd(w, 2) ? MS_SYNC : MS_ASYNC) < 0)
			err = errno;
	} else {
		in_mapping = 0;
		/* SIGBUS: the filesystem could not back the page. Only -s excuses it. */
		if (opt.enospc_ok)
			err = ENOSPC;
		else
			bad(w, S_MMAPWRITE, "%s: SIGBUS while writing the mapping", desc);
	}
	munmap(map, len);
out:
	close(fd);
	return err;
}

static int op_truncate(struct worker *w, const char *p, char *desc, size_t n)
{
	uint64_t size = rnd(w, opt.maxsize / BLK + 1) * BLK;
	int fd = -1, err;

	snprintf(desc, n, "truncate(%s, 0x%" PRIx64 ")", p, size);
	err = open_locked(p, O_WRONLY, LOCK_EX, &fd);
	if (err)
		return err;
	if (ftruncate(fd, size) < 0)
		err = errno;
	close(fd);
	return err;
}

static int op_fallocate(struct worker *w, const char *p, char *desc, size_t n)
{
	static const struct { int mode; const char *name; } modes[] = {
		{0, "0"},
		{FALLOC_FL_KEEP_SIZE, "KEEP_SIZE"},
		{FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "PUNCH_HOLE|KEEP_SIZE"},
		{FALLOC_FL_ZERO_RANGE, "ZERO_RANGE"},
		{FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, "ZERO_RANGE|KEEP_SIZE"},
	};
	unsigned m = rnd(w, sizeof(modes) / sizeof(modes[0]));
	uint64_t off, len;
	int fd = -1, err;

	pick_blocks(w, &off, &len);
	snprintf(desc, n, "fallocate(%s, %s, 0x%" PRIx64 ", 0x%" PRIx64 ")", p,
		 modes[m].name, off, len);
	err = open_locked(p, O_WRONLY, LOCK_EX, &fd);
	if (err)
		return err;
	if (fallocate(fd, modes[m].mode, off, len) < 0)
		err = errno;
	else
		w->falloc_worked |= 1u << m;
	/* Some filesystems (fuse2fs: ZERO_RANGE) say EINVAL for a mode they lack. */
	if (err == EINVAL && !(w->falloc_worked & (1u << m)))
		err = EOPNOTSUPP;
	close(fd);
	return err;
}

static void xattr_name(struct worker *w, char *name, size_t n)
{
	snprintf(name, n, "user.x%u", (unsigned)rnd(w, NXATTR));
}

static int op_setxattr(struct worker *w, const char *p, char *desc, size_t n)
{
	unsigned r = rnd(w, 4);
	int flags = r == 0 ? XATTR_CREATE : r == 1 ? XATTR_REPLACE : 0;
	uint8_t v[256];
	size_t len = make_xattr(v, w);
	char name[32];

	xattr_name(w, name, sizeof(name));
	snprintf(desc, n, "setxattr(%s, %s, %zu bytes%s)", p, name, len,
		 flags == XATTR_CREATE ? ", CREATE" : flags == XATTR_REPLACE ? ", REPLACE" : "");
	return setxattr(p, name, v, len, flags) < 0 ? errno : 0;
}

static int op_getxattr(struct worker *w, const char *p, char *desc, size_t n)
{
	uint8_t v[1024];
	char name[32];
	ssize_t r;

	xattr_name(w, name, sizeof(name));
	snprintf(desc, n, "getxattr(%s, %s)", p, name);
	r = getxattr(p, name, v, sizeof(v));
	if (r < 0)
		return errno;
	if (!xattr_ok(v, r))
		bad(w, S_GETXATTR, "%s: corrupt value (%zd bytes)", desc, r);
	return 0;
}

static int op_listxattr(struct worker *w, const char *p, char *desc, size_t n)
{
	char list[4096];
	ssize_t r;

	snprintf(desc, n, "listxattr(%s)", p);
	r = listxattr(p, list, sizeof(list));
	if (r < 0)
		return errno;
	for (ssize_t i = 0; i < r; i += strlen(list + i) + 1) {
		const char *s = list + i;

		/* Only ours under user.*; other namespaces (security.*) may exist. */
		if (!strncmp(s, "user.", 5) &&
		    (strncmp(s, "user.x", 6) || s[6] < '0' || s[6] >= '0' + NXATTR || s[7]))
			bad(w, S_LISTXATTR, "%s: unknown name '%s'", desc, s);
	}
	if (r > 0 && list[r - 1] != 0)
		bad(w, S_LISTXATTR, "%s: list not NUL-terminated", desc);
	return 0;
}

static int op_readdir(struct worker *w, const char *p, char *desc, size_t n)
{
	DIR *d;
	struct dirent *de;
	int err;

	snprintf(desc, n, "readdir(%s)", p);
	d = opendir(p);
	if (!d)
		return errno;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!valid_name(de->d_name))
			bad(w, S_READDIR, "%s: unknown name '%s'", desc, de->d_name);
		else if (rnd(w, 8) == 0) {
			char sub[PATHLEN + 260];

			snprintf(sub, sizeof(sub), "%s/%s", p, de->d_name);
			remember(w, sub);
		}
		errno = 0;
	}
	err = errno;
	closedir(d);
	return err;
}

static int op_stat(struct worker *w, const char *p, char *desc, size_t n)
{
	int flags = rnd(w, 2) ? AT_SYMLINK_NOFOLLOW : 0;
	struct stat st;

	snprintf(desc, n, "%s(%s)", flags ? "lstat" : "stat", p);
	if (fstatat(AT_FDCWD, p, &st, flags) < 0)
		return errno;
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
		bad(w, S_STAT, "%s: unexpected file type 0%o", desc, st.st_mode & S_IFMT);
	if (S_ISLNK(st.st_mode) && !flags)
		bad(w, S_STAT, "%s: stat (following) returned a symlink", desc);
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > opt.maxsize)
		bad(w, S_STAT, "%s: size 0x%" PRIx64 " beyond the 0x%" PRIx64 " any op makes",
		    desc, (uint64_t)st.st_size, opt.maxsize);
	return 0;
}

static int op_readlink(struct worker *w, const char *p, char *desc, size_t n)
{
	char t[PATH_MAX];
	ssize_t r;

	snprintf(desc, n, "readlink(%s)", p);
	r = readlink(p, t, sizeof(t) - 1);
	if (r < 0)
		return errno;
	t[r] = 0;
	if (!valid_target(t))
		bad(w, S_READLINK, "%s: target '%s' is not one we made", desc, t);
	return 0;
}

static int op_fsync(struct worker *w, const char *p, char *desc, size_t n)
{
	bool data = rnd(w, 2);
	int fd, err = 0;

	snprintf(desc, n, "%s(%s)", data ? "fdatasync" : "fsync", p);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if ((data ? fdatasync(fd) : fsync(fd)) < 0)
		err = errno;
	close(fd);
	return err;
}

static int pick_sop(struct worker *w)
{
	static unsigned total;
	unsigned r;
	int op;

	if (!total)
		for (op = 0; op < S_COUNT; op++)
			total += ops[op].weight;
	r = rnd(w, total);
	for (op = 0; op < S_COUNT - 1; op++) {
		if (r < ops[op].weight)
			break;
		r -= ops[op].weight;
	}
	return op;
}

static void run_one(struct worker *w)
{
	char a[64], b[64], desc[256];
	int op = pick_sop(w), err = 0;
	enum want want;

	switch (op) {
	case S_MKDIR:
		want = WANT_DIR;
		break;
	case S_CREATE: case S_SYMLINK: case S_WRITE: case S_READ: case S_MMAPWRITE:
	case S_TRUNCATE: case S_FALLOCATE: case S_LINK:
		want = WANT_FILE;
		break;
	case S_RMDIR: case S_READDIR:
		want = WANT_DIR;
		break;
	default:
		want = WANT_ANY;
		break;
	}
	/* New names for what creates, known ones mostly for the rest. */
	bool creates = op == S_CREATE || op == S_MKDIR || op == S_SYMLINK;

	pick_path(w, a, sizeof(a), want, creates ? 8 : 2);
	pick_path(w, b, sizeof(b), op == S_RENAME ? WANT_ANY : want, 4);
	switch (op) {
	case S_CREATE: err = op_create(w, a, desc, sizeof(desc)); break;
	case S_MKDIR:
		snprintf(desc, sizeof(desc), "mkdir(%s)", a);
		err = mkdir(a, 0755) < 0 ? errno : 0;
		break;
	case S_RENAME: err = op_rename(w, a, b, desc, sizeof(desc)); break;
	case S_LINK:
		snprintf(desc, sizeof(desc), "link(%s, %s)", a, b);
		err = linkat(AT_FDCWD, a, AT_FDCWD, b, 0) < 0 ? errno : 0;
		break;
	case S_UNLINK:
		snprintf(desc, sizeof(desc), "unlink(%s)", a);
		err = unlinkat(AT_FDCWD, a, 0) < 0 ? errno : 0;
		break;
	case S_RMDIR:
		snprintf(desc, sizeof(desc), "rmdir(%s)", a);
		err = unlinkat(AT_FDCWD, a, AT_REMOVEDIR) < 0 ? errno : 0;
		break;
	case S_SYMLINK:
		random_target(w, b, sizeof(b));
		snprintf(desc, sizeof(desc), "symlink(%s -> %s)", a, b);
		err = symlink(b, a) < 0 ? errno : 0;
		break;
	case S_READLINK: err = op_readlink(w, a, desc, sizeof(desc)); break;
	case S_WRITE: err = op_write(w, a, desc, sizeof(desc)); break;
	case S_READ: err = op_read(w, a, desc, sizeof(desc)); break;
	case S_MMAPWRITE: err = op_mmapwrite(w, a, desc, sizeof(desc)); break;
	case S_TRUNCATE: err = op_truncate(w, a, desc, sizeof(desc)); break;
	case S_FALLOCATE: err = op_fallocate(w, a, desc, sizeof(desc)); break;
	case S_SETXATTR: err = op_setxattr(w, a, desc, sizeof(desc)); break;
	case S_GETXATTR: err = op_getxattr(w, a, desc, sizeof(desc)); break;
	case S_REMOVEXATTR: {
		char name[32];

		xattr_name(w, name, sizeof(name));
		snprintf(desc, sizeof(desc), "removexattr(%s, %s)", a, name);
		err = removexattr(a, name) < 0 ? errno : 0;
		break;
	}
	case S_LISTXATTR: err = op_listxattr(w, a, desc, sizeof(desc)); break;
	case S_FSYNC: err = op_fsync(w, a, desc, sizeof(desc)); break;
	case S_READDIR: err = op_readdir(w, a, desc, sizeof(desc)); break;
	case S_STAT: err = op_stat(w, a, desc, sizeof(desc)); break;
	}
	judge(w, op, err, desc);
	if (!err) {
		switch (op) {
		case S_CREATE: case S_MKDIR: case S_SYMLINK: case S_WRITE: case S_STAT:
			remember(w, a);
			break;
		case S_LINK: case S_RENAME:
			remember(w, b);
			break;
		}
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double deadline;	/* CLOCK_MONOTONIC time to stop at, 0: none */

static int worker_main(struct shared *sh, unsigned id, unsigned round)
{
	struct worker w = {.id = id, .st = sh->st[id]};
	uint64_t unexpected = 0;

	w.rng = mix64(mix64(opt.seed * 1000003 + id) + round);
	w.buf = malloc(MAX_BLOCKS_PER_OP * BLK);
	if (!w.buf) {
		fprintf(stderr, PROG ": worker %u: out of memory\n", id);
		return EXIT_USAGE;
	}
	signal(SIGBUS, on_sigbus);
	for (w.opnum = 1; !opt.nops || w.opnum <= opt.nops; w.opnum++) {
		run_one(&w);
		sh->done[id] = w.opnum;
		if (deadline && now() >= deadline)
			break;
	}
	free(w.buf);
	for (int op = 0; op < S_COUNT; op++)
		unexpected += w.st[op].unexpected + w.st[op].bad;
	return unexpected ? EXIT_BAD_FS : 0;
}

/* ---- the final walk */

struct inode_rec {
	ino_t ino;
	nlink_t nlink;
	char path[96];
};

struct walk {
	uint64_t dirs, files, symlinks, xattrs, blocks, problems;
	struct inode_rec *recs;
	size_t nrec, caprec;
	uint8_t *buf;
};

static void wbad(struct walk *wk, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void wbad(struct walk *wk, const char *path, const char *fmt, ...)
{
	va_list ap;

	if (++wk->problems <= 50) {
		fprintf(stderr, PROG ": invariant: %s: ", path);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fprintf(stderr, "\n");
	}
}

static int cmp_ino(const void *a, const void *b)
{
	const struct inode_rec *x = a, *y = b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static void check_xattrs(struct walk *wk, int dirfd, const char *name, const char *path)
{
	char list[4096];
	uint8_t v[1024];
	ssize_t r;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		wbad(wk, path, "open for xattrs: %s", strerror(errno));
		return;
	}
	r = flistxattr(fd, list, sizeof(list));
	if (r < 0) {
		if (errno != EOPNOTSUPP)
			wbad(wk, path, "listxattr: %s", strerror(errno));
		close(fd);
		return;
	}
	for (ssize_t i = 0; i < r; i += strlen(list + i) + 1) {
		ssize_t len;

		if (strncmp(list + i, "user.", 5))
			continue;
		len = fgetxattr(fd, list + i, v, sizeof(v));
		if (len < 0)
			wbad(wk, path, "listed xattr %s: getxattr: %s", list + i, strerror(errno));
		else if (!xattr_ok(v, len))
			wbad(wk, path, "xattr %s: corrupt value (%zd bytes)", list + i, len);
		wk->xattrs++;
	}
	close(fd);
}

static void check_file(struct walk *wk, int dirfd, const char *name, const char *path,
		       const struct stat *st)
{
	char why[160];
	int fd;

	if (opt.enospc_ok)
		return;	/* a short write under ENOSPC may leave a torn block */
	if (st->st_size % BLK)
		wbad(wk, path, "size 0x%" PRIx64 " is not a multiple of 0x%x",
		     (uint64_t)st->st_size, BLK);
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		wbad(wk, path, "open: %s", strerror(errno));
		return;
	}
	for (uint64_t off = 0; off + BLK <= (uint64_t)st->st_size; off += BLK) {
		ssize_t r = pread(fd, wk->buf, BLK, off);

		if (r != BLK) {
			wbad(wk, path, "read at 0x%" PRIx64 ": %s", off,
			     r < 0 ? strerror(errno) : "short read");
			break;
		}
		if (check_block(wk->buf, off, why, sizeof(why)))
			wbad(wk, path, "block at 0x%" PRIx64 " %s", off, why);
		wk->blocks++;
	}
	close(fd);
}

static void add_inode(struct walk *wk, const struct stat *st, const char *path)
{
	if (wk->nrec == wk->caprec) {
		size_t cap = wk->caprec ? wk->caprec * 2 : 1024;
		struct inode_rec *r = realloc(wk->recs, cap * sizeof(*r));

		if (!r) {
			wbad(wk, path, "out of memory for the link count check");
			return;
		}
		wk->recs = r;
		wk->caprec = cap;
	}
	wk->recs[wk->nrec].ino = st->st_ino;
	wk->recs[wk->nrec].nlink = st->st_nlink;
	snprintf(wk->recs[wk->nrec].path, sizeof(wk->recs[0].path), "%s", path);
	wk->nrec++;
}

static unsigned dtype_of(mode_t m)
{
	return S_ISDIR(m) ? DT_DIR : S_ISREG(m) ? DT_REG : S_ISLNK(m) ? DT_LNK : DT_UNKNOWN;
}

struct entry {
	char *name;
	unsigned char dtype;
};

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* Check the directory @path (open as @dfd, which is consumed) and below. */
static void walk_dir(struct walk *wk, int dfd, const char *path, const struct stat *dst)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	struct entry *ents = NULL;
	size_t n = 0, cap = 0;
	uint64_t subdirs = 0;

	if (!d) {
		wbad(wk, path, "fdopendir: %s", strerror(errno));
		close(dfd);
		return;
	}
	wk->dirs++;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			ents = realloc(ents, cap * sizeof(*ents));
			if (!ents) {
				fprintf(stderr, PROG ": out of memory\n");
				exit(EXIT_USAGE);
			}
		}
		ents[n].name = strdup(de->d_name);
		ents[n].dtype = de->d_type;
		if (!ents[n].name) {
			fprintf(stderr, PROG ": out of memory\n");
			exit(EXIT_USAGE);
		}
		n++;
		errno = 0;
	}
	if (errno)
		wbad(wk, path, "readdir: %s", strerror(errno));
	if (n)
		qsort(ents, n, sizeof(*ents), cmp_entry);

	for (size_t i = 0; i < n; i++) {
		const char *name = ents[i].name;
		unsigned char dtype = ents[i].dtype;
		char sub[4096];
		struct stat st;

		snprintf(sub, sizeof(sub), "%s/%s", path, name);
		if (!valid_name(name))
			wbad(wk, sub, "name is not one of ours");
		if (i && !strcmp(name, ents[i - 1].name))
			wbad(wk, sub, "listed twice by readdir");
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			wbad(wk, sub, "listed by readdir but lstat fails: %s", strerror(errno));
			continue;
		}
		if (dtype != DT_UNKNOWN && dtype != dtype_of(st.st_mode))
			wbad(wk, sub, "readdir type %u, lstat mode 0%o", dtype, st.st_mode & S_IFMT);
		if (S_ISDIR(st.st_mode)) {
			int sfd = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			subdirs++;
			if (sfd < 0)
				wbad(wk, sub, "open directory: %s", strerror(errno));
			else
				walk_dir(wk, sfd, sub, &st);
			check_xattrs(wk, dirfd(d), name, sub);
		} else if (S_ISREG(st.st_mode)) {
			wk->files++;
			add_inode(wk, &st, sub);
			check_file(wk, dirfd(d), name, sub, &st);
			check_xattrs(wk, dirfd(d), name, sub);
		} else if (S_ISLNK(st.st_mode)) {
			char t[PATH_MAX];
			ssize_t r = readlinkat(dirfd(d), name, t, sizeof(t) - 1);

			wk->symlinks++;
			add_inode(wk, &st, sub);
			if (r < 0) {
				wbad(wk, sub, "readlink: %s", strerror(errno));
				continue;
			}
			t[r] = 0;
			if (r != st.st_size)
				wbad(wk, sub, "readlink gives %zd bytes, st_size is %" PRIu64,
				     r, (uint64_t)st.st_size);
			if (!valid_target(t))
				wbad(wk, sub, "target '%s' is not one we made", t);
		} else {
			wbad(wk, sub, "unexpected file type 0%o", st.st_mode & S_IFMT);
		}
	}
	/* ext4 and tmpfs: 2 + subdirectories; 1 means "not counted" (btrfs, big ext4 dirs). */
	if (dst->st_nlink != 1 && dst->st_nlink != 2 + subdirs)
		wbad(wk, path, "directory link count %" PRIu64 ", expected %" PRIu64
		     " (2 + %" PRIu64 " subdirectories)", (uint64_t)dst->st_nlink,
		     2 + subdirs, subdirs);
	for (size_t i = 0; i < n; i++)
		free(ents[i].name);
	free(ents);
	closedir(d);
}

/* Every file and symlink: st_nlink is the number of names found for it. */
static void check_links(struct walk *wk)
{
	if (wk->nrec)
		qsort(wk->recs, wk->nrec, sizeof(*wk->recs), cmp_ino);
	for (size_t i = 0; i < wk->nrec;) {
		size_t j = i;

		while (j < wk->nrec && wk->recs[j].ino == wk->recs[i].ino)
			j++;
		if (wk->recs[i].nlink != j - i)
			wbad(wk, wk->recs[i].path, "link count %" PRIu64 " but %zu names found",
			     (uint64_t)wk->recs[i].nlink, j - i);
		i = j;
	}
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0)
		fprintf(stderr, PROG ": cleanup: remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* ---- main */

static uint64_t parse_num(const char *o, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		die_usage("%s: invalid number '%s'", o, s);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	}
	if (*end)
		die_usage("%s: invalid number '%s'", o, s);
	return v;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " [options] -d DIR\n"
"Concurrent random namespace and data operations in DIR/" PROG ".PID.ROUND, with\n"
"every errno checked against what makes sense, then a check of the tree.\n"
"\n"
"  -d DIR      directory to work in (required; a subdirectory is made)\n"
"  -p NPROC    worker processes (default 4, at most %d)\n"
"  -n NOPS     operations per worker and round (default 10000; 0 = no limit,\n"
"              needs -t)\n"
"  -t SECONDS  run rounds until SECONDS have passed; each round checks and\n"
"              removes its tree, so the tree does not grow without bound\n"
"  -S SEED     random seed (default 1; 0 picks one from the clock)\n"
"  -s          the filesystem may fill: allow ENOSPC/EDQUOT (and SIGBUS on a\n"
"              mapped write); skips the data block checks\n"
"  -k          keep the tree afterwards (it is always kept after a failure)\n"
"  -v          print every operation and a table of results\n"
"  --names=N   names per directory (default 64)\n"
"  --depth=N   path depth (default 3)\n"
"  --max-size=BYTES  largest file offset written (default 256k)\n"
"  --require-all      an unsupported fallocate mode or xattrs is a failure\n"
"  -h, --help  this text\n"
"\n"
"Exit status: 0 clean, 1 unexpected errno or broken invariant, 2 usage error.\n",
		MAXPROC);
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"names", required_argument, NULL, 1001},
		{"depth", required_argument, NULL, 1002},
		{"max-size", required_argument, NULL, 1003},
		{"require-all", no_argument, NULL, 1004},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "p:n:d:S:t:skvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': opt.nproc = parse_num("-p", optarg); break;
		case 'n': opt.nops = parse_num("-n", optarg); break;
		case 'd': opt.dir = optarg; break;
		case 'S': opt.seed = parse_num("-S", optarg); break;
		case 't': opt.seconds = parse_num("-t", optarg); break;
		case 's': opt.enospc_ok = true; break;
		case 'k': opt.keep = true; break;
		case 'v': opt.verbose = true; break;
		case 1001: opt.names = parse_num("--names", optarg); break;
		case 1002: opt.depth = parse_num("--depth", optarg); break;
		case 1003: opt.maxsize = parse_num("--max-size", optarg); break;
		case 1004: opt.require_all = true; break;
		case 'h': usage(stdout); exit(0);
		default:
			fprintf(stderr, "try '" PROG " -h'\n");
			exit(EXIT_USAGE);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s' (the directory goes after -d)", argv[optind]);
	if (!opt.dir)
		die_usage("missing -d DIR (try '" PROG " -h')");
	if (opt.nproc < 1 || opt.nproc > MAXPROC)
		die_usage("-p: 1..%d processes", MAXPROC);
	if (opt.names < 1 || opt.names > 100)
		die_usage("--names: 1..100");
	if (opt.depth < 1 || opt.depth > 8)
		die_usage("--depth: 1..8");
	if (opt.maxsize < BLK || opt.maxsize % BLK)
		die_usage("--max-size: a multiple of %u", BLK);
	if (!opt.nops && !opt.seconds)
		die_usage("-n 0 needs a time limit (-t)");
	if (opt.seed == 0)
		opt.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

/*
 * One round: a fresh tree, the workers, the check of the tree, its removal
 * when clean. Adds the results to @total; returns 0 or EXIT_BAD_FS.
 */
static int run_round(struct shared *sh, const char *absdir, unsigned round,
		     struct opstat total[S_COUNT])
{
	char root[4096];
	pid_t pids[MAXPROC];
	int status, rootfd, rc = 0;
	uint64_t tot[5] = {0}, crashed = 0;
	struct walk wk = {0};
	struct stat rst;
	double start;

	memset(sh, 0, sizeof(*sh));
	snprintf(root, sizeof(root), "%s/" PROG ".%d.%u", absdir, (int)getpid(), round);
	if (mkdir(root, 0755) < 0)
		die_usage("cannot create %s: %s", root, strerror(errno));
	if (chdir(root) < 0)
		die_usage("cannot enter %s: %s", root, strerror(errno));

	start = now();
	for (unsigned i = 0; i < opt.nproc; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die_usage("fork: %s", strerror(errno));
		if (pids[i] == 0)
			_exit(worker_main(sh, i, round));
	}
	for (unsigned i = 0; i < opt.nproc; i++) {
		if (waitpid(pids[i], &status, 0) < 0) {
			fprintf(stderr, PROG ": waitpid: %s\n", strerror(errno));
			crashed++;
		} else if (WIFSIGNALED(status)) {
			fprintf(stderr, PROG ": worker %u killed by signal %s after %" PRIu64 " ops\n",
				i, strsignal(WTERMSIG(status)), sh->done[i]);
			crashed++;
		} else if (WEXITSTATUS(status) == EXIT_USAGE) {
			crashed++;
		}
	}
	double elapsed = now() - start;

	for (unsigned i = 0; i < opt.nproc; i++)
		for (int op = 0; op < S_COUNT; op++) {
			const struct opstat *o = &sh->st[i][op];

			tot[0] += o->ok;
			tot[1] += o->expected;
			tot[2] += o->unexpected;
			tot[3] += o->unsupported;
			tot[4] += o->bad;
			total[op].ok += o->ok;
			total[op].expected += o->expected;
			total[op].unexpected += o->unexpected;
			total[op].unsupported += o->unsupported;
			total[op].bad += o->bad;
		}

	/* The tree, now that nobody changes it. */
	wk.buf = malloc(BLK);
	rootfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!wk.buf || rootfd < 0 || fstat(rootfd, &rst) < 0)
		die_usage("cannot reopen %s: %s", root, strerror(errno));
	walk_dir(&wk, rootfd, ".", &rst);
	check_links(&wk);

	printf(PROG ": round %u: %" PRIu64 " ops in %.2f s: %" PRIu64 " ok, %" PRIu64
	       " expected errors, %" PRIu64 " unexpected, %" PRIu64 " bad; tree %" PRIu64
	       " dirs, %" PRIu64 " files, %" PRIu64 " symlinks, %" PRIu64 " xattrs, %" PRIu64
	       " invariant problems", round, tot[0] + tot[1] + tot[2] + tot[3], elapsed,
	       tot[0], tot[1], tot[2], tot[4], wk.dirs, wk.files, wk.symlinks, wk.xattrs,
	       wk.problems);
	if (tot[3]) {
		printf("; not supported:");
		for (int op = 0; op < S_COUNT; op++) {
			uint64_t u = 0;

			for (unsigned i = 0; i < opt.nproc; i++)
				u += sh->st[i][op].unsupported;
			if (u)
				printf(" %s x%" PRIu64, ops[op].name, u);
		}
	}
	printf("\n");

	if (chdir("/") < 0)
		die_usage("chdir /: %s", strerror(errno));
	if (tot[2] || tot[4] || wk.problems || crashed) {
		fprintf(stderr, PROG ": FAILED in round %u (seed %" PRIu64 "); tree kept in %s\n",
			round, opt.seed, root);
		rc = EXIT_BAD_FS;
	} else if (!opt.keep) {
		if (nftw(root, rm_entry, 64, FTW_DEPTH | FTW_PHYS) < 0)
			fprintf(stderr, PROG ": cleanup of %s: %s\n", root, strerror(errno));
	}
	free(wk.recs);
	free(wk.buf);
	return rc;
}

int main(int argc, char **argv)
{
	static struct opstat total[S_COUNT];
	struct shared *sh;
	char *absdir;
	unsigned round = 1;
	int rc;

	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	absdir = realpath(opt.dir, NULL);
	if (!absdir)
		die_usage("%s: %s", opt.dir, strerror(errno));
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die_usage("mmap: %s", strerror(errno));
	if (opt.seconds)
		printf(PROG ": %s: %u workers, for %" PRIu64 " s in rounds of %" PRIu64
		       " ops per worker, seed %" PRIu64 "\n", absdir, opt.nproc, opt.seconds,
		       opt.nops, opt.seed);
	else
		printf(PROG ": %s: %u workers, %" PRIu64 " ops each, seed %" PRIu64 "\n",
		       absdir, opt.nproc, opt.nops, opt.seed);

	deadline = opt.seconds ? now() + opt.seconds : 0;
	for (;;) {
		rc = run_round(sh, absdir, round, total);
		if (rc || !deadline || now() >= deadline)
			break;
		round++;
	}

	if (opt.verbose) {
		printf("%-12s %10s %10s %10s %10s %10s\n", "op", "ok", "expected", "UNEXPECTED",
		       "unsupported", "BAD");
		for (int op = 0; op < S_COUNT; op++)
			printf("%-12s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64
			       " %10" PRIu64 "\n", ops[op].name, total[op].ok, total[op].expected,
			       total[op].unexpected, total[op].unsupported, total[op].bad);
	}
	if (round > 1 || opt.seconds) {
		uint64_t n = 0, bad = 0;

		for (int op = 0; op < S_COUNT; op++) {
			n += total[op].ok + total[op].expected + total[op].unexpected +
			     total[op].unsupported;
			bad += total[op].unexpected + total[op].bad;
		}
		printf(PROG ": %u rounds, %" PRIu64 " ops, %" PRIu64 " problems: %s\n", round, n,
		       bad, rc ? "FAILED" : "ok");
	}
	free(absdir);
	return rc;
}
