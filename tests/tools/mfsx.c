// SPDX-License-Identifier: MIT
/*
 * mfsx — a random single-file operation tester in the spirit of xfstests'
 * fsx, written for mmapfs (and usable on any Linux filesystem).
 *
 * One file is driven through a seeded random sequence of reads, writes,
 * mapped reads and writes, truncates, fallocate modes, copy_file_range,
 * fsync and close/reopen. A shadow copy of the file lives in memory; every
 * read is compared with it, and so is the file size after every operation.
 * On the first difference the tool prints the range, the expected and found
 * bytes and the log of the last operations, and exits 1. An operation the
 * filesystem does not support (EOPNOTSUPP, ENOSYS, ENOTTY, or EINVAL before
 * it has ever succeeded) is disabled with one message; a wrong result never
 * is.
 *
 * Exit status: 0 all operations checked out, 1 the filesystem misbehaved
 * (wrong data, wrong size, an unexpected error), 2 usage or setup error.
 *
 * Test hook: --inject-bug=N corrupts one byte of the read buffer of the
 * first read-type operation numbered N or later, so that a test can prove
 * the checker notices. tests/tools/badread.c does the same from outside.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG "mfsx"

/* Exit statuses. */
#define EXIT_BAD_FS 1
#define EXIT_USAGE 2

enum op {
	OP_READ,
	OP_WRITE,
	OP_MAPREAD,
	OP_MAPWRITE,
	OP_TRUNCATE,
	OP_FALLOC,
	OP_FALLOC_KEEP,
	OP_PUNCH,
	OP_ZERO,
	OP_COPY,
	OP_FSYNC,
	OP_NRANDOM,		/* ops above are drawn at random */
	OP_CLOSEOPEN = OP_NRANDOM,
	OP_FINAL,
	OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	[OP_READ] = "READ",
	[OP_WRITE] = "WRITE",
	[OP_MAPREAD] = "MAPREAD",
	[OP_MAPWRITE] = "MAPWRITE",
	[OP_TRUNCATE] = "TRUNCATE",
	[OP_FALLOC] = "FALLOC",
	[OP_FALLOC_KEEP] = "FALLOC_KEEP_SIZE",
	[OP_PUNCH] = "PUNCH_HOLE",
	[OP_ZERO] = "ZERO_RANGE",
	[OP_COPY] = "COPY_RANGE",
	[OP_FSYNC] = "FSYNC",
	[OP_CLOSEOPEN] = "CLOSEOPEN",
	[OP_FINAL] = "FINAL_CHECK",
};

/* Relative frequency of each randomly drawn operation. */
static const unsigned op_weight[OP_NRANDOM] = {
	[OP_READ] = 4, [OP_WRITE] = 4, [OP_MAPREAD] = 3, [OP_MAPWRITE] = 3,
	[OP_TRUNCATE] = 2, [OP_FALLOC] = 1, [OP_FALLOC_KEEP] = 1,
	[OP_PUNCH] = 1, [OP_ZERO] = 1, [OP_COPY] = 2, [OP_FSYNC] = 1,
};

/* Log entry flags. */
#define LF_SKIPPED 0x1		/* nothing to do (e.g. read of an empty file) */
#define LF_KEEP 0x2		/* ZERO_RANGE with FALLOC_FL_KEEP_SIZE */
#define LF_SELF 0x4		/* COPY_RANGE within the file (else from source) */
#define LF_DROP 0x8		/* CLOSEOPEN dropped caches */
#define LF_FSYNC 0x10		/* -y: fsync followed */
#define LF_INJECT 0x20		/* --inject-bug corrupted this read */

struct logent {
	uint64_t opnum;
	int op;
	unsigned flags;
	uint64_t off, len, src;	/* src: COPY_RANGE source offset */
	uint64_t size_before, size_after;
};

#define LOG_RING 4096		/* entries kept; --log-size says how many print */

struct mfsx {
	/* options */
	const char *path;
	uint64_t seed, numops, maxfilelen, maxoplen;
	uint64_t readalign, writealign, truncalign;
	uint64_t closeprob, progress, inject_at, duration;
	unsigned logprint;
	bool disabled[OP_NRANDOM];
	bool fsync_after_write, drop_caches, quiet, debug, require_all;

	/* state */
	int fd, srcfd;
	char *srcpath;
	uint64_t rng, opnum, size, srcsize;
	uint8_t *good, *srcgood, *buf, *data;
	uint32_t *owner;	/* op number that last set each byte */
	bool succeeded[OP_NRANDOM];
	bool unsupported[OP_NRANDOM];	/* disabled because the filesystem said so */
	bool injected, drop_warned;
	long pagesize;
	struct logent log[LOG_RING];
	uint64_t nlog;
	uint64_t count[OP_COUNT];
	uint64_t bytes_read, bytes_written;
	int argc;
	char **argv;
};

static struct mfsx *g_mfsx;	/* only for the fatal signal handler */

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

/* ---- random numbers: splitmix64, so a seed means the same run everywhere */

static uint64_t rnd64(struct mfsx *m)
{
	uint64_t z = (m->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rnd_below(struct mfsx *m, uint64_t n)
{
	return n ? rnd64(m) % n : 0;
}

static void rnd_fill(struct mfsx *m, uint8_t *p, size_t len)
{
	while (len >= 8) {
		uint64_t v = rnd64(m);

		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = rnd64(m);

		memcpy(p, &v, len);
	}
}

/* ---- the operation log */

static struct logent *log_op(struct mfsx *m, int op)
{
	struct logent *e = &m->log[m->nlog++ % LOG_RING];

	memset(e, 0, sizeof(*e));
	e->opnum = m->opnum;
	e->op = op;
	e->size_before = m->size;
	e->size_after = m->size;
	return e;
}

/* The most recent log entry of operation number @opnum, if still kept. */
static const struct logent *log_find(const struct mfsx *m, uint64_t opnum)
{
	uint64_t n = m->nlog < LOG_RING ? m->nlog : LOG_RING;

	for (uint64_t i = 0; i < n; i++) {
		const struct logent *e = &m->log[(m->nlog - 1 - i) % LOG_RING];

		if (e->opnum == opnum)
			return e;
		if (e->opnum < opnum)
			break;
	}
	return NULL;
}

static void format_entry(const struct logent *e, char *s, size_t n)
{
	int k = snprintf(s, n, "%8" PRIu64 " %-16s", e->opnum, op_names[e->op]);

	if (e->flags & LF_SKIPPED) {
		snprintf(s + k, n - k, " skipped");
		return;
	}
	switch (e->op) {
	case OP_FSYNC:
	case OP_FINAL:
		k += snprintf(s + k, n - k, " %28s", "");
		break;
	case OP_CLOSEOPEN:
		k += snprintf(s + k, n - k, " %-28s", e->flags & LF_DROP ? "drop caches" : "");
		break;
	case OP_TRUNCATE:
		k += snprintf(s + k, n - k, " to 0x%-8" PRIx64 " %15s", e->size_after,
			      e->size_after > e->size_before ? "(up)" :
			      e->size_after < e->size_before ? "(down)" : "(same)");
		break;
	default:
		k += snprintf(s + k, n - k, " 0x%08" PRIx64 " len 0x%-8" PRIx64 "  ",
			      e->off, e->len);
		break;
	}
	k += snprintf(s + k, n - k, " size 0x%" PRIx64 " -> 0x%" PRIx64,
		      e->size_before, e->size_after);
	if (e->op == OP_COPY)
		k += snprintf(s + k, n - k, " from %s 0x%" PRIx64,
			      e->flags & LF_SELF ? "self" : "source", e->src);
	if (e->flags & LF_KEEP)
		k += snprintf(s + k, n - k, " keep_size");
	if (e->flags & LF_FSYNC)
		k += snprintf(s + k, n - k, " +fsync");
	if (e->flags & LF_INJECT)
		snprintf(s + k, n - k, " [bug injected]");
}

static void print_log(const struct mfsx *m)
{
	uint64_t n = m->nlog < LOG_RING ? m->nlog : LOG_RING;
	char line[256];

	if (n > m->logprint)
		n = m->logprint;
	fprintf(stderr, "last %" PRIu64 " operations (oldest first):\n", n);
	for (uint64_t i = n; i > 0; i--) {
		format_entry(&m->log[(m->nlog - i) % LOG_RING], line, sizeof(line));
		fprintf(stderr, "  %s\n", line);
	}
}

/* Save the expected contents next to the file, as fsx does, for diffing. */
static void save_good(const struct mfsx *m)
{
	size_t n = strlen(m->path) + sizeof(".mfsxgood");
	char *p = malloc(n);
	int fd;

	if (!p)
		return;
	snprintf(p, n, "%s.mfsxgood", m->path);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		uint64_t done = 0;

		while (done < m->size) {
			ssize_t r = write(fd, m->good + done, m->size - done);

			if (r <= 0)
				break;
			done += r;
		}
		close(fd);
		fprintf(stderr, "expected contents saved in %s\n", p);
	}
	free(p);
}

static void print_repro(const struct mfsx *m)
{
	fprintf(stderr, "seed %" PRIu64 "; command line:", m->seed);
	for (int i = 0; i < m->argc; i++)
		fprintf(stderr, " %s", m->argv[i]);
	fprintf(stderr, "\n");
}

/* The filesystem misbehaved: show the log and how to reproduce, exit 1. */
static void fail(struct mfsx *m, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fail(struct mfsx *m, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, PROG ": op %" PRIu64 ": ", m->opnum);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	print_log(m);
	print_repro(m);
	save_good(m);
	exit(EXIT_BAD_FS);
}

static void fatal_signal(int sig)
{
	struct mfsx *m = g_mfsx;

	signal(sig, SIG_DFL);
	if (m) {
		fprintf(stderr, PROG ": op %" PRIu64 ": killed by %s (during %s)\n",
			m->opnum, strsignal(sig),
			m->nlog ? op_names[m->log[(m->nlog - 1) % LOG_RING].op] : "setup");
		print_log(m);
		print_repro(m);
	}
	_exit(EXIT_BAD_FS);
}

/* ---- checking */

static void hexrow(const char *label, uint64_t base, const uint8_t *p,
		   uint64_t from, uint64_t to)
{
	fprintf(stderr, "  %-9s", label);
	for (uint64_t o = base; o < base + 16; o++) {
		if (o >= from && o < to)
			fprintf(stderr, " %02x", p[o - from]);
		else
			fprintf(stderr, "   ");
	}
	fprintf(stderr, "\n");
}

/*
 * Compare @len bytes read at file offset @off (@found) with the shadow.
 * On a difference: report the range, the first differing byte with the op
 * that last set it, a window of expected vs found bytes, the log; exit 1.
 */
static void check_buffer(struct mfsx *m, const char *what, uint64_t off,
			 const uint8_t *found, uint64_t len)
{
	const uint8_t *exp = m->good + off;
	uint64_t first = UINT64_MAX, last = 0, nbad = 0;
	bool found_zero = true;

	if (memcmp(exp, found, len) == 0)
		return;
	for (uint64_t i = 0; i < len; i++) {
		if (exp[i] != found[i]) {
			if (first == UINT64_MAX)
				first = i;
			last = i;
			nbad++;
			if (found[i])
				found_zero = false;
		}
	}

	fflush(stdout);
	fprintf(stderr, PROG ": op %" PRIu64 ": %s BAD DATA: read of 0x%" PRIx64
		" bytes at offset 0x%" PRIx64 " (file size 0x%" PRIx64 ")\n",
		m->opnum, what, len, off, m->size);
	fprintf(stderr, PROG ": %" PRIu64 " bytes differ in range 0x%" PRIx64
		"..0x%" PRIx64 "; first differing byte at file offset 0x%" PRIx64 "\n",
		nbad, off + first, off + last, off + first);
	{
		uint32_t who = m->owner[off + first];
		const struct logent *e = who ? log_find(m, who) : NULL;

		fprintf(stderr, PROG ": at 0x%" PRIx64 ": expected 0x%02x, found 0x%02x; ",
			off + first, exp[first], found[first]);
		if (!who)
			fprintf(stderr, "the expected byte was never written (initial zero)\n");
		else
			fprintf(stderr, "the expected byte was last set by op %" PRIu32 " %s\n",
				who, e ? op_names[e->op] : "(no longer in the log)");
	}
	if (found_zero)
		fprintf(stderr, PROG ": every differing byte reads as zero"
			" (lost write, or a hole where data should be?)\n");

	/* Window: 16-byte rows from the first difference to the last, four at most. */
	uint64_t row = (off + first) & ~15ULL;

	for (int r = 0; r < 4 && row <= off + last; r++, row += 16) {
		char label[32];

		snprintf(label, sizeof(label), "0x%08" PRIx64, row);
		fprintf(stderr, "  %s\n", label);
		hexrow("expected", row, exp, off, off + len);
		hexrow("found", row, found, off, off + len);
		fprintf(stderr, "  %-9s", "");
		for (uint64_t o = row; o < row + 16; o++) {
			bool bad = o >= off && o < off + len && exp[o - off] != found[o - off];

			fprintf(stderr, "%s", bad ? " ^^" : "   ");
		}
		fprintf(stderr, "\n");
	}
	print_log(m);
	print_repro(m);
	save_good(m);
	exit(EXIT_BAD_FS);
}

static void check_size(struct mfsx *m)
{
	struct stat st;

	if (fstat(m->fd, &st) < 0)
		fail(m, "fstat: %s", strerror(errno));
	if ((uint64_t)st.st_size != m->size)
		fail(m, "SIZE MISMATCH: fstat says 0x%" PRIx64 ", expected 0x%" PRIx64,
		     (uint64_t)st.st_size, m->size);
	off_t end = lseek(m->fd, 0, SEEK_END);

	if (end < 0 || (uint64_t)end != m->size)
		fail(m, "SIZE MISMATCH: lseek(SEEK_END) says 0x%" PRIx64 " (%s), expected 0x%" PRIx64,
		     (uint64_t)end, end < 0 ? strerror(errno) : "ok", m->size);
}

/* ---- shadow updates */

static void shadow_set(struct mfsx *m, uint64_t off, const uint8_t *src, uint64_t len)
{
	memmove(m->good + off, src, len);
	for (uint64_t i = 0; i < len; i++)
		m->owner[off + i] = (uint32_t)m->opnum;
}

static void shadow_zero(struct mfsx *m, uint64_t off, uint64_t len)
{
	memset(m->good + off, 0, len);
	for (uint64_t i = 0; i < len; i++)
		m->owner[off + i] = (uint32_t)m->opnum;
}

/* The file grows to @newsize: the gap reads as zeros (the shadow past EOF is zero). */
static void shadow_extend(struct mfsx *m, uint64_t newsize)
{
	if (newsize > m->size) {
		shadow_zero(m, m->size, newsize - m->size);
		m->size = newsize;
	}
}

static void shadow_truncate(struct mfsx *m, uint64_t newsize)
{
	if (newsize < m->size)
		shadow_zero(m, newsize, m->size - newsize);
	else
		shadow_extend(m, newsize);
	m->size = newsize;
}

/* ---- unsupported operations */

static bool is_unsupported(const struct mfsx *m, int op, int err)
{
	if (err == EOPNOTSUPP || err == ENOSYS || err == ENOTTY)
		return true;
	/* EINVAL is "unsupported" only if the op has never worked. */
	if (err == EINVAL && !m->succeeded[op])
		return true;
	/* Old kernels refuse copy_file_range across superblocks with EXDEV. */
	if (op == OP_COPY && err == EXDEV)
		return true;
	return false;
}

static void disable_op(struct mfsx *m, int op, int err, struct logent *e)
{
	if (m->require_all)
		fail(m, "%s: not supported (%s), and --require-all is given", op_names[op],
		     strerror(err));
	m->disabled[op] = true;
	m->unsupported[op] = true;
	e->flags |= LF_SKIPPED;
	if (!m->quiet)
		printf(PROG ": disabling %s: not supported (%s)\n", op_names[op],
		       strerror(err));
}

/* ---- I/O helpers: complete transfers or an errno */

static int pread_full(int fd, uint8_t *p, uint64_t len, uint64_t off, uint64_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t r = pread(fd, p + *got, len - *got, off + *got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (r == 0)
			break;
		*got += r;
	}
	return 0;
}

static int pwrite_full(int fd, const uint8_t *p, uint64_t len, uint64_t off)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t r = pwrite(fd, p + done, len - done, off + done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (r == 0)
			return EIO;
		done += r;
	}
	return 0;
}

static void maybe_inject(struct mfsx *m, struct logent *e, uint8_t *p, uint64_t off,
			 uint64_t len)
{
	if (m->inject_at && !m->injected && m->opnum >= m->inject_at && len) {
		p[len / 2] ^= 0xff;
		m->injected = true;
		e->flags |= LF_INJECT;
		fprintf(stderr, PROG ": --inject-bug: corrupted byte at file offset 0x%"
			PRIx64 " of op %" PRIu64 " %s\n", off + len / 2, m->opnum,
			op_names[e->op]);
	}
}

static uint64_t align_down(uint64_t v, uint64_t a)
{
	return a > 1 ? v - v % a : v;
}

/* A random [off, off+len) for a read: inside the file, len >= 1. */
static bool pick_read_range(struct mfsx *m, uint64_t *off, uint64_t *len)
{
	if (m->size == 0)
		return false;
	*off = align_down(rnd_below(m, m->size), m->readalign);
	*len = 1 + rnd_below(m, m->maxoplen);
	if (*off + *len > m->size)
		*len = m->size - *off;
	return true;
}

/* A random [off, off+len) for a write: inside maxfilelen, len >= 1. */
static void pick_write_range(struct mfsx *m, uint64_t *off, uint64_t *len)
{
	*off = align_down(rnd_below(m, m->maxfilelen), m->writealign);
	*len = 1 + rnd_below(m, m->maxoplen);
	if (*off + *len > m->maxfilelen)
		*len = m->maxfilelen - *off;
}

/* ---- the operations */

static void do_read(struct mfsx *m, struct logent *e)
{
	uint64_t off, len, got;
	int err;

	if (!pick_read_range(m, &off, &len)) {
		e->flags |= LF_SKIPPED;
		return;
	}
	e->off = off;
	e->len = len;
	err = pread_full(m->fd, m->buf, len, off, &got);
	if (err)
		fail(m, "READ: pread(0x%" PRIx64 ", 0x%" PRIx64 "): %s", off, len, strerror(err));
	if (got != len)
		fail(m, "READ: short read: 0x%" PRIx64 " of 0x%" PRIx64 " bytes at 0x%" PRIx64
		     " (file size 0x%" PRIx64 ")", got, len, off, m->size);
	maybe_inject(m, e, m->buf, off, len);
	check_buffer(m, "READ", off, m->buf, len);
	m->bytes_read += len;
}

static void do_mapread(struct mfsx *m, struct logent *e)
{
	uint64_t off, len, pg, maplen;
	uint8_t *p;

	if (!pick_read_range(m, &off, &len)) {
		e->flags |= LF_SKIPPED;
		return;
	}
	e->off = off;
	e->len = len;
	pg = off & ~((uint64_t)m->pagesize - 1);
	maplen = off + len - pg;
	p = mmap(NULL, maplen, PROT_READ, MAP_SHARED, m->fd, pg);
	if (p == MAP_FAILED)
		fail(m, "MAPREAD: mmap(0x%" PRIx64 ", 0x%" PRIx64 "): %s%s", pg, maplen,
		     strerror(errno), errno == ENODEV ? " (use -R -W to skip mapped operations)" : "");
	memcpy(m->buf, p + (off - pg), len);

	/*
	 * A mapping that reaches the page holding EOF maps it whole; past EOF
	 * that page must read as zero (the POSIX mmap rule fsx checks too).
	 * Keep a copy for the report.
	 */
	uint64_t tail = 0;
	uint8_t tailbuf[65536];

	if (m->size % m->pagesize && off + len > (m->size & ~((uint64_t)m->pagesize - 1))) {
		uint64_t end = (m->size | (m->pagesize - 1)) + 1;

		tail = end - m->size;
		if (tail > sizeof(tailbuf))
			tail = sizeof(tailbuf);
		memcpy(tailbuf, p + (m->size - pg), tail);
	}
	if (munmap(p, maplen) < 0)
		fail(m, "MAPREAD: munmap: %s", strerror(errno));
	maybe_inject(m, e, m->buf, off, len);
	check_buffer(m, "MAPREAD", off, m->buf, len);
	for (uint64_t i = 0; i < tail; i++)
		if (tailbuf[i])
			fail(m, "MAPREAD: nonzero byte 0x%02x past EOF at file offset 0x%" PRIx64
			     " (EOF 0x%" PRIx64 ", page end 0x%" PRIx64 ")", tailbuf[i],
			     m->size + i, m->size, m->size + tail);
	m->bytes_read += len;
}

static void do_write(struct mfsx *m, struct logent *e)
{
	uint64_t off, len;
	int err;

	pick_write_range(m, &off, &len);
	e->off = off;
	e->len = len;
	rnd_fill(m, m->data, len);
	err = pwrite_full(m->fd, m->data, len, off);
	if (err)
		fail(m, "WRITE: pwrite(0x%" PRIx64 ", 0x%" PRIx64 "): %s", off, len, strerror(err));
	shadow_extend(m, off + len);
	shadow_set(m, off, m->data, len);
	m->bytes_written += len;
}

static void do_mapwrite(struct mfsx *m, struct logent *e)
{
	uint64_t off, len, pg, maplen;
	uint8_t *p;

	pick_write_range(m, &off, &len);
	e->off = off;
	e->len = len;
	rnd_fill(m, m->data, len);
	if (off + len > m->size) {
		/* A mapping cannot extend a file: grow it first, as fsx does. */
		if (ftruncate(m->fd, off + len) < 0)
			fail(m, "MAPWRITE: ftruncate(0x%" PRIx64 "): %s", off + len, strerror(errno));
		shadow_extend(m, off + len);
	}
	pg = off & ~((uint64_t)m->pagesize - 1);
	maplen = off + len - pg;
	p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, pg);
	if (p == MAP_FAILED)
		fail(m, "MAPWRITE: mmap(0x%" PRIx64 ", 0x%" PRIx64 "): %s%s", pg, maplen,
		     strerror(errno), errno == ENODEV ? " (use -R -W to skip mapped operations)" : "");
	memcpy(p + (off - pg), m->data, len);
	if (msync(p, maplen, MS_SYNC) < 0)
		fail(m, "MAPWRITE: msync: %s", strerror(errno));
	if (munmap(p, maplen) < 0)
		fail(m, "MAPWRITE: munmap: %s", strerror(errno));
	shadow_set(m, off, m->data, len);
	m->bytes_written += len;
}

static void do_truncate(struct mfsx *m, struct logent *e)
{
	uint64_t newsize = align_down(rnd_below(m, m->maxfilelen + 1), m->truncalign);

	e->off = newsize;
	if (ftruncate(m->fd, newsize) < 0)
		fail(m, "TRUNCATE: ftruncate(0x%" PRIx64 "): %s", newsize, strerror(errno));
	shadow_truncate(m, newsize);
}

static void do_fallocate(struct mfsx *m, struct logent *e, int op)
{
	uint64_t off, len;
	int mode;

	switch (op) {
	case OP_PUNCH:
		/* Like fsx: punching past EOF tests nothing. */
		if (!pick_read_range(m, &off, &len)) {
			e->flags |= LF_SKIPPED;
			return;
		}
		mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		break;
	case OP_ZERO:
		pick_write_range(m, &off, &len);
		mode = FALLOC_FL_ZERO_RANGE;
		if (rnd_below(m, 2)) {
			mode |= FALLOC_FL_KEEP_SIZE;
			e->flags |= LF_KEEP;
		}
		break;
	case OP_FALLOC_KEEP:
		pick_write_range(m, &off, &len);
		mode = FALLOC_FL_KEEP_SIZE;
		break;
	default:
		pick_write_range(m, &off, &len);
		mode = 0;
		break;
	}
	e->off = off;
	e->len = len;
	if (fallocate(m->fd, mode, off, len) < 0) {
		int err = errno;

		if (is_unsupported(m, op, err)) {
			disable_op(m, op, err, e);
			return;
		}
		fail(m, "%s: fallocate(mode 0x%x, 0x%" PRIx64 ", 0x%" PRIx64 "): %s",
		     op_names[op], mode, off, len, strerror(err));
	}
	m->succeeded[op] = true;
	if (op == OP_PUNCH || op == OP_ZERO) {
		/* Bytes past EOF are zero in the shadow already. */
		shadow_zero(m, off, len);
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE))
		shadow_extend(m, off + len);
}

static int copy_full(int infd, uint64_t src, int outfd, uint64_t dst, uint64_t len)
{
	uint64_t done = 0;

	while (done < len) {
		loff_t in = src + done, out = dst + done;
		ssize_t r = copy_file_range(infd, &in, outfd, &out, len - done, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (r == 0)
			return -1;	/* source ended early */
		done += r;
	}
	return 0;
}

static void do_copy(struct mfsx *m, struct logent *e)
{
	bool self = m->srcfd < 0 || rnd_below(m, 2);
	const uint8_t *srcgood = self ? m->good : m->srcgood;
	uint64_t srcsize = self ? m->size : m->srcsize;
	uint64_t src, dst, len;
	int err;

	if (srcsize == 0) {
		e->flags |= LF_SKIPPED;
		return;
	}
	src = align_down(rnd_below(m, srcsize), m->readalign);
	len = 1 + rnd_below(m, m->maxoplen);
	if (src + len > srcsize)
		len = srcsize - src;
	dst = align_down(rnd_below(m, m->maxfilelen - len + 1), m->writealign);
	if (self && src < dst + len && dst < src + len) {
		/* Overlapping ranges in one file are EINVAL by contract: move dst. */
		dst = src + len <= m->maxfilelen - len ? src + len : 0;
		dst = align_down(dst, m->writealign);
		if (dst < src + len && src < dst + len) {
			e->flags |= LF_SKIPPED;
			return;
		}
	}
	e->off = dst;
	e->len = len;
	e->src = src;
	if (self)
		e->flags |= LF_SELF;
	err = copy_full(self ? m->fd : m->srcfd, src, m->fd, dst, len);
	if (err > 0 && is_unsupported(m, OP_COPY, err)) {
		disable_op(m, OP_COPY, err, e);
		return;
	}
	if (err > 0)
		fail(m, "COPY_RANGE: copy_file_range(%s 0x%" PRIx64 " -> 0x%" PRIx64 ", 0x%"
		     PRIx64 "): %s", self ? "self" : "source", src, dst, len, strerror(err));
	if (err < 0)
		fail(m, "COPY_RANGE: copy_file_range returned 0 before the end of the"
		     " 0x%" PRIx64 "-byte source range at 0x%" PRIx64 " (source size 0x%" PRIx64 ")",
		     len, src, srcsize);
	m->succeeded[OP_COPY] = true;
	shadow_extend(m, dst + len);
	shadow_set(m, dst, srcgood + src, len);
	m->bytes_written += len;
}

static void do_fsync(struct mfsx *m, const char *why)
{
	if (fsync(m->fd) < 0)
		fail(m, "%s: fsync: %s", why, strerror(errno));
}

static void drop_caches(struct mfsx *m)
{
	if (geteuid() == 0) {
		int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

		if (fd >= 0 && write(fd, "3\n", 2) == 2) {
			close(fd);
			return;
		}
		if (fd >= 0)
			close(fd);
		if (!m->drop_warned && !m->quiet)
			printf(PROG ": cannot write /proc/sys/vm/drop_caches (%s);"
			       " using POSIX_FADV_DONTNEED\n", strerror(errno));
		m->drop_warned = true;
	}
	posix_fadvise(m->fd, 0, 0, POSIX_FADV_DONTNEED);
}

static int open_file(const struct mfsx *m, int flags)
{
	int fd = open(m->path, O_RDWR | flags, 0644);

	return fd;
}

static void do_closeopen(struct mfsx *m, struct logent *e)
{
	if (m->drop_caches) {
		e->flags |= LF_DROP;
		do_fsync(m, "CLOSEOPEN");
		/* fadvise needs the fd, the global drop does not: do both before close. */
		drop_caches(m);
	}
	if (close(m->fd) < 0)
		fail(m, "CLOSEOPEN: close: %s", strerror(errno));
	m->fd = open_file(m, 0);
	if (m->fd < 0)
		fail(m, "CLOSEOPEN: reopen %s: %s", m->path, strerror(errno));
}

/* Read the whole file back and compare it with the shadow. */
static void do_final(struct mfsx *m, struct logent *e)
{
	uint64_t off = 0, got;

	e->off = 0;
	e->len = m->size;
	while (off < m->size) {
		uint64_t len = m->size - off < m->maxoplen ? m->size - off : m->maxoplen;
		int err = pread_full(m->fd, m->buf, len, off, &got);

		if (err)
			fail(m, "FINAL_CHECK: pread(0x%" PRIx64 "): %s", off, strerror(err));
		if (got != len)
			fail(m, "FINAL_CHECK: short read at 0x%" PRIx64, off);
		maybe_inject(m, e, m->buf, off, len);
		check_buffer(m, "FINAL_CHECK", off, m->buf, len);
		off += len;
	}
	/* Nothing past EOF either. */
	if (pread(m->fd, m->buf, 1, m->size) != 0)
		fail(m, "FINAL_CHECK: data past EOF 0x%" PRIx64, m->size);
	check_size(m);
}

static bool is_write_op(int op)
{
	return op != OP_READ && op != OP_MAPREAD && op != OP_FSYNC;
}

static int pick_op(struct mfsx *m)
{
	unsigned total = 0, r;
	int op;

	for (op = 0; op < OP_NRANDOM; op++)
		if (!m->disabled[op])
			total += op_weight[op];
	if (!total)
		return -1;
	r = rnd_below(m, total);
	for (op = 0; op < OP_NRANDOM; op++) {
		if (m->disabled[op])
			continue;
		if (r < op_weight[op])
			break;
		r -= op_weight[op];
	}
	return op;
}

static void debug_entry(const struct mfsx *m, const struct logent *e)
{
	char line[256];

	if (!m->debug)
		return;
	format_entry(e, line, sizeof(line));
	printf("%s\n", line);
}

static void run_op(struct mfsx *m, int op)
{
	struct logent *e = log_op(m, op);

	switch (op) {
	case OP_READ: do_read(m, e); break;
	case OP_WRITE: do_write(m, e); break;
	case OP_MAPREAD: do_mapread(m, e); break;
	case OP_MAPWRITE: do_mapwrite(m, e); break;
	case OP_TRUNCATE: do_truncate(m, e); break;
	case OP_FALLOC:
	case OP_FALLOC_KEEP:
	case OP_PUNCH:
	case OP_ZERO: do_fallocate(m, e, op); break;
	case OP_COPY: do_copy(m, e); break;
	case OP_FSYNC: do_fsync(m, "FSYNC"); break;
	case OP_CLOSEOPEN: do_closeopen(m, e); break;
	case OP_FINAL: do_final(m, e); break;
	}
	if (m->fsync_after_write && op < OP_NRANDOM && is_write_op(op) &&
	    !(e->flags & LF_SKIPPED)) {
		do_fsync(m, "-y fsync");
		e->flags |= LF_FSYNC;
	}
	e->size_after = m->size;
	m->count[op]++;
	debug_entry(m, e);
	check_size(m);
}

/* ---- setup */

static uint64_t parse_num(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		die_usage("%s: invalid number '%s'", opt, s);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		die_usage("%s: invalid number '%s'", opt, s);
	return v;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " [options] FILE\n"
"Random file operations on FILE, checked against an in-memory copy (like fsx).\n"
"\n"
"  -S SEED     random seed (default 1; 0 picks one from the clock)\n"
"  -N NUMOPS   operations to run (default 10000; 0 = no limit)\n"
"  -l LEN      maximum file length (default 256k)\n"
"  -o LEN      maximum length of one operation (default 64k)\n"
"  -r ALIGN    align read offsets to ALIGN (default 1)\n"
"  -w ALIGN    align write offsets to ALIGN (default 1)\n"
"  -t ALIGN    align truncate sizes to ALIGN (default 1)\n"
"  -a ALIGN    all three alignments at once\n"
"  -R          no mapped reads          -W   no mapped writes\n"
"  -F          no fallocate at all      -H   no punch hole\n"
"  -z          no zero range            -T   no truncate\n"
"  -C, -E      no copy_file_range (-E is fsx's letter for it)\n"
"  -y          fsync after every modifying operation\n"
"  -c P        close and reopen the file after ~1 in P operations\n"
"  -D, --drop-caches  at close/reopen: fsync, then drop caches (root:\n"
"              /proc/sys/vm/drop_caches; else POSIX_FADV_DONTNEED)\n"
"  -p N        progress line every N operations\n"
"  -d, --debug print every operation\n"
"  -q, --quiet only failures and the summary line\n"
"  --duration=SECONDS  stop after SECONDS (with -N 0: run only by time)\n"
"  --log-size=N        operations shown in a failure report (default 40)\n"
"  --require-all       an operation the filesystem does not support is a\n"
"                      failure (default: disable it and say so)\n"
"  -h, --help  this text\n"
"\n"
"Exit status: 0 success, 1 the filesystem misbehaved, 2 usage/setup error.\n"
"Sizes take k/m/g suffixes. Unsupported operations are disabled with a message.\n");
}

static void parse_args(struct mfsx *m, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"seed", required_argument, NULL, 'S'},
		{"numops", required_argument, NULL, 'N'},
		{"drop-caches", no_argument, NULL, 'D'},
		{"debug", no_argument, NULL, 'd'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"duration", required_argument, NULL, 1001},
		{"log-size", required_argument, NULL, 1002},
		{"inject-bug", required_argument, NULL, 1003},
		{"require-all", no_argument, NULL, 1004},
		{NULL, 0, NULL, 0},
	};
	int c;

	m->seed = 1;
	m->numops = 10000;
	m->maxfilelen = 256 << 10;
	m->maxoplen = 64 << 10;
	m->readalign = m->writealign = m->truncalign = 1;
	m->logprint = 40;
	while ((c = getopt_long(argc, argv, "S:N:l:o:r:w:t:a:RWFHzTCEyc:Dqp:dh",
				longopts, NULL)) != -1) {
		switch (c) {
		case 'S': m->seed = parse_num("-S", optarg); break;
		case 'N': m->numops = parse_num("-N", optarg); break;
		case 'l': m->maxfilelen = parse_num("-l", optarg); break;
		case 'o': m->maxoplen = parse_num("-o", optarg); break;
		case 'r': m->readalign = parse_num("-r", optarg); break;
		case 'w': m->writealign = parse_num("-w", optarg); break;
		case 't': m->truncalign = parse_num("-t", optarg); break;
		case 'a':
			m->readalign = m->writealign = m->truncalign = parse_num("-a", optarg);
			break;
		case 'R': m->disabled[OP_MAPREAD] = true; break;
		case 'W': m->disabled[OP_MAPWRITE] = true; break;
		case 'F':
			m->disabled[OP_FALLOC] = m->disabled[OP_FALLOC_KEEP] = true;
			m->disabled[OP_PUNCH] = m->disabled[OP_ZERO] = true;
			break;
		case 'H': m->disabled[OP_PUNCH] = true; break;
		case 'z': m->disabled[OP_ZERO] = true; break;
		case 'T': m->disabled[OP_TRUNCATE] = true; break;
		case 'C':
		case 'E': m->disabled[OP_COPY] = true; break;	/* -E: fsx's letter */
		case 'y': m->fsync_after_write = true; break;
		case 'c': m->closeprob = parse_num("-c", optarg); break;
		case 'D': m->drop_caches = true; break;
		case 'q': m->quiet = true; break;
		case 'p': m->progress = parse_num("-p", optarg); break;
		case 'd': m->debug = true; break;
		case 'h': usage(stdout); exit(0);
		case 1001: m->duration = parse_num("--duration", optarg); break;
		case 1002: m->logprint = parse_num("--log-size", optarg); break;
		case 1003: m->inject_at = parse_num("--inject-bug", optarg); break;
		case 1004: m->require_all = true; break;
		default:
			fprintf(stderr, "try '" PROG " -h'\n");
			exit(EXIT_USAGE);
		}
	}
	if (optind == argc)
		die_usage("missing FILE (try '" PROG " -h')");
	if (optind + 1 < argc)
		die_usage("one FILE only; unexpected '%s'", argv[optind + 1]);
	m->path = argv[optind];
	if (m->maxfilelen == 0 || m->maxfilelen > (1ULL << 30))
		die_usage("-l: maximum file length must be 1..1g");
	if (m->maxoplen == 0 || m->maxoplen > m->maxfilelen)
		die_usage("-o: maximum operation length must be 1..maxfilelen (0x%" PRIx64 ")",
			  m->maxfilelen);
	if (!m->readalign || !m->writealign || !m->truncalign)
		die_usage("alignments must be at least 1");
	if (m->writealign >= m->maxfilelen || m->readalign >= m->maxfilelen)
		die_usage("alignment must be smaller than the maximum file length");
	if (m->logprint > LOG_RING)
		m->logprint = LOG_RING;
	if (m->numops > UINT32_MAX)
		die_usage("-N: at most %u operations per run", UINT32_MAX);
	if (m->numops == 0)
		m->numops = UINT32_MAX;	/* "no limit": the owner map holds 32-bit op numbers */
	if (m->seed == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		m->seed = ((uint64_t)ts.tv_sec * 1000003 + ts.tv_nsec) ^ getpid();
		if (m->seed == 0)
			m->seed = 1;
	}
	m->argc = argc;
	m->argv = argv;
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n, sz);

	if (!p)
		die_usage("out of memory (%zu bytes)", n * sz);
	return p;
}

/* The copy_file_range source: a second file beside FILE, random contents. */
static void setup_source(struct mfsx *m)
{
	size_t n = strlen(m->path) + sizeof(".mfsxsrc");

	m->srcfd = -1;
	if (m->disabled[OP_COPY])
		return;
	m->srcpath = xcalloc(n, 1);
	snprintf(m->srcpath, n, "%s.mfsxsrc", m->path);
	m->srcfd = open(m->srcpath, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (m->srcfd < 0)
		die_usage("cannot create copy source %s: %s", m->srcpath, strerror(errno));
	m->srcsize = m->maxfilelen;
	m->srcgood = xcalloc(m->srcsize, 1);
	rnd_fill(m, m->srcgood, m->srcsize);
	if (pwrite_full(m->srcfd, m->srcgood, m->srcsize, 0))
		die_usage("cannot write copy source %s: %s", m->srcpath, strerror(errno));
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static struct mfsx mx;
	struct mfsx *m = &mx;
	double start;

	parse_args(m, argc, argv);
	m->rng = m->seed;
	m->pagesize = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);

	m->good = xcalloc(m->maxfilelen, 1);
	m->owner = xcalloc(m->maxfilelen, sizeof(*m->owner));
	m->buf = xcalloc(m->maxfilelen, 1);
	m->data = xcalloc(m->maxoplen, 1);

	m->fd = open_file(m, O_CREAT | O_TRUNC);
	if (m->fd < 0)
		die_usage("cannot open %s: %s", m->path, strerror(errno));
	setup_source(m);

	g_mfsx = m;
	signal(SIGBUS, fatal_signal);
	signal(SIGSEGV, fatal_signal);

	if (!m->quiet)
		printf(PROG ": %s: seed %" PRIu64 ", %s%" PRIu64 " ops, maxfilelen 0x%" PRIx64
		       ", maxoplen 0x%" PRIx64 "\n", m->path, m->seed,
		       m->duration ? "up to " : "", m->numops, m->maxfilelen, m->maxoplen);

	start = now();
	for (m->opnum = 1; m->opnum <= m->numops; m->opnum++) {
		int op = pick_op(m);

		if (op < 0)
			die_usage("every operation is disabled");
		run_op(m, op);
		if (m->closeprob && rnd_below(m, m->closeprob) == 0)
			run_op(m, OP_CLOSEOPEN);
		if (m->progress && m->opnum % m->progress == 0)
			printf(PROG ": op %" PRIu64 ", size 0x%" PRIx64 ", %.1f s\n",
			       m->opnum, m->size, now() - start);
		if (m->duration && (m->opnum & 63) == 0 && now() - start >= m->duration) {
			m->opnum++;
			break;
		}
	}
	m->opnum--;
	run_op(m, OP_FINAL);

	if (m->inject_at && !m->injected)
		fprintf(stderr, PROG ": warning: --inject-bug=%" PRIu64 ": no read at or after"
			" that op, nothing injected\n", m->inject_at);

	char unsup[256] = "";
	size_t k = 0;

	for (int op = 0; op < OP_NRANDOM; op++)
		if (m->unsupported[op] && k < sizeof(unsup))
			k += snprintf(unsup + k, sizeof(unsup) - k, "%s%s",
				      k ? "," : "", op_names[op]);
	printf(PROG ": %" PRIu64 " ops passed, seed %" PRIu64 ", final size 0x%" PRIx64
	       ", %.1f MiB read, %.1f MiB written, %.2f s%s%s\n", m->opnum, m->seed, m->size,
	       m->bytes_read / 1048576.0, m->bytes_written / 1048576.0, now() - start,
	       k ? "; not supported: " : "", unsup);
	if (!m->quiet) {
		printf(PROG ": counts:");
		for (int op = 0; op < OP_FINAL; op++)
			if (m->count[op])
				printf(" %s %" PRIu64, op_names[op], m->count[op]);
		printf("\n");
	}

	if (close(m->fd) < 0) {
		fprintf(stderr, PROG ": close %s: %s\n", m->path, strerror(errno));
		return EXIT_BAD_FS;
	}
	if (m->srcfd >= 0) {
		close(m->srcfd);
		unlink(m->srcpath);
	}
	free(m->srcpath);
	free(m->srcgood);
	free(m->good);
	free(m->owner);
	free(m->buf);
	free(m->data);
	return 0;
}
