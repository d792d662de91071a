/* SPDX-License-Identifier: MIT */
/*
 * fuse_space.c — the FUSE glue's space policy under the writeback cache
 * (layer 8): what the kernel's page cache may hold when the filesystem runs
 * out of space, and how write(2) learns that it has.
 *
 * Calls the core (mfs_space_left) and libfuse's notifications; main.c hands
 * it the mount's bdi. See docs/design.md, "Space under the writeback cache".
 *
 * The problem. With the writeback cache, write(2) copies into the mount's
 * page cache and returns; the daemon sees the data later, as WRITE requests
 * from the kernel's writeback, and the kernel counts a short or failed
 * WRITE there as written (a failed one sets the mapping's error, which
 * fsync and close report). Nothing the daemon does with a WRITE can fail
 * the write(2) that dirtied the pages.
 *
 * What the kernel offers. Before each write(2) to a regular file the kernel
 * refreshes the size and mode it caches (fuse_update_attributes) if either
 * was invalidated: a GETATTR that carries a file handle
 * (FUSE_GETATTR_FH), whose error write(2) returns. stat(2) carries no
 * handle, and reads at the end of a file and lseek ask only for the size,
 * which the kernel trusts itself in writeback-cache mode; but attributes
 * past their timeout are asked for with a handle there too, and so is a
 * truncate of a setuid file without handle_killpriv_v2. So only inodes
 * armed here are ever refused:
 *
 * 1. Headroom. headroom bytes of the space left are kept for data already
 *    in the page cache: the mount's dirty pages are at most the bdi's
 *    max_bytes (strict_limit: writers are throttled there). Where the
 *    daemon may write max_bytes (root), it lowers it as space runs short,
 *    to half of what is left beyond the headroom, never below DIRTY_MIN,
 *    and the headroom is twice that floor (the kernel keeps a ratio of a
 *    threshold that moves with free memory) plus IN_FLIGHT; elsewhere the
 *    kernel's limit stands (capped at an eighth of the volume, so a small
 *    image stays usable: there a writer that never syncs can lose up to
 *    the rest of that limit, reported by fsync and close), plus IN_FLIGHT.
 * 2. Arming. A writeback WRITE that takes space when less than headroom +
 *    the dirty limit is left, or that fails, invalidates its inode's
 *    attributes (a notification, from a thread of its own: the kernel may
 *    wait in it for an inode being evicted, whose writeback waits for us).
 * 3. The gate. A GETATTR with a file handle of an armed inode, i.e. its
 *    next write(2), fails with ENOSPC while at most headroom bytes are
 *    left; any other answer disarms it until its next WRITE that takes
 *    space. A stat of an armed inode refreshes what was invalidated, so
 *    it is invalidated again after the answer. write(2) then fails as on
 *    ext4, before anything more is cached. An inode only ever overwritten
 *    in place is never armed, so overwrites go on as on ext4. statfs
 *    subtracts the headroom, so df's "available" is what write(2) still
 *    takes.
 * 4. No holes nobody made: near full a writeback WRITE beyond a file's end
 *    preallocates the gap first (MFS_WRITE_NO_GAP), and after a WRITE of a
 *    file failed its later WRITEs stop where the data was first dropped
 *    (mfs_space_limit), since pages come in any order.
 *
 * What can still get past: data already cached when the gate closes that
 * does not fit (bounded by the dirty limit, which 1 keeps below the space
 * left where max_bytes can be set), one write(2) call that started before
 * (a 1 GiB write(2) is one call), shared mmap writes (page faults ask the
 * daemon nothing), and writes from files that were never written back
 * while the filesystem was near full (or fell out of the TRACKED table).
 * Their WRITEs fail with ENOSPC: fsync, msync and close report it, and the
 * committed size never covers them.
 */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "fuse_ops.h"
#include "log.h"
#include "mmapfs/mmapfs.h"

/* Smallest dirty allowance we set (root): small enough that the last few
 * MiB of a volume fill at a reasonable speed, large enough that writers
 * are not throttled page by page. */
#define DIRTY_MIN (2ull << 20)
/* Kept for write(2) calls under way when the gate closes: each passed it
 * before and goes on to its end, throttled but not stopped. Four calls of
 * 1 MiB, plus what balance_dirty_pages lets writers dirty beyond the
 * limit before it looks (every few dozen pages per task). At most a
 * sixteenth of the volume. */
#define IN_FLIGHT (5ull << 20)
/* Inodes armed or with data dropped, remembered at once. One more is
 * remembered in place of the oldest, which then writes unchecked (what it
 * cannot store is still an error at fsync and close). */
#define TRACKED 256
/* Inodes waiting for their notification. A full queue drops the rest:
 * their next WRITE arms them again. */
#define QUEUE_LEN 256

struct mfs_space {
	struct mfs_fuse *d;
	int bytes_fd;             /* the bdi's max_bytes; -1 if none */
	int ratio_fd;             /* its max_ratio, to restore; -1 if none */
	char ratio[16];           /* max_ratio as mounted */
	bool settable;            /* we may write them (root) */
	bool lowered;             /* max_bytes is ours, not the mount's */
	uint64_t dirty_normal;    /* the bdi's limit as mounted, bytes */
	uint64_t dirty_max;       /* the limit now, bytes (as counted) */
	uint64_t dirty_real;      /* the kernel's, where it is not ours */
	uint64_t fitted;          /* the target fit_dirty_max last checked */
	uint64_t headroom;        /* bytes kept for data in the page cache */
	pthread_mutex_t lock;     /* the limit, the queue, the drops */
	/* Inodes armed (their attributes invalidated, the next write(2)
	 * asks), and where writeback data of an inode was first dropped:
	 * nothing at or beyond it is stored until the kernel forgets the
	 * inode or sets its size (mfs_space_limit; UINT64_MAX: nothing
	 * dropped). ino 0: a free slot. */
	struct track { uint64_t ino, from; bool armed; } track[TRACKED];
	unsigned next_track;      /* the slot to reuse when all are taken */
	_Atomic unsigned tracked; /* slots in use: 0 spares stat the lock */
	pthread_cond_t wake;
	uint64_t queue[QUEUE_LEN];
	unsigned head, count;
	bool stop;
	pthread_t thread;
	bool running;
};

static uint64_t read_u64(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtoull(buf, NULL, 10);
}

static bool write_str(int fd, const char *what, const char *val)
{
	if (pwrite(fd, val, strlen(val), 0) >= 0)
		return true;
	mfs_log(MFS_LOG_WARNING, "cannot set the mount's dirty page %s to "
		"%s: %s; a writer may now fill the page cache with more than "
		"the file system can store (fsync and close report it)", what,
		val, strerror(errno));
	return false;
}

/*
 * With max_bytes settable: keep the dirty limit at half of what is left
 * beyond the headroom, at least DIRTY_MIN, and the mount's own limit where
 * that is lower (then its max_ratio is written back as it was). The kernel
 * stores a ratio of the global dirty threshold, which moves with free
 * memory: the limit is read back each time, and rewritten when it is off
 * by more than a quarter. Caller holds s->lock.
 */
static void fit_dirty_max(struct mfs_space *s, uint64_t left)
{
	uint64_t want = left > s->headroom ? (left - s->headroom) / 2 : 0;
	char buf[32];

	if (want < DIRTY_MIN)
		want = DIRTY_MIN;
	if (want >= s->dirty_normal) {
		if (!s->lowered)
			return;
		if (write_str(s->ratio_fd, "ratio", s->ratio)) {
			s->lowered = false;
			s->dirty_max = s->dirty_normal;
		} else {
			s->settable = false; /* stays low: the safe side */
		}
		return;
	}
	/* Read back only when the target moved by an eighth since: a
	 * sysfs read per WRITE would cost small writes a tenth. */
	if (s->lowered && want <= s->fitted + s->fitted / 8 &&
	    want >= s->fitted - s->fitted / 8)
		return;
	s->fitted = want;
	s->dirty_max = read_u64(s->bytes_fd);
	if (s->lowered && s->dirty_max <= want + want / 4 &&
	    s->dirty_max >= want - want / 4)
		return;
	snprintf(buf, sizeof(buf), "%" PRIu64 "\n", want);
	if (!write_str(s->bytes_fd, "limit", buf)) {
		s->settable = false;
		return;
	}
	s->lowered = true;
	s->dirty_max = read_u64(s->bytes_fd);
}

static void mfs_space_free(struct mfs_space *s)
{
	/* Usually the bdi is gone by now (ENODEV): nothing to say then. */
	if (s->lowered && s->ratio_fd >= 0 &&
	    pwrite(s->ratio_fd, s->ratio, strlen(s->ratio), 0) < 0 &&
	    errno != ENODEV)
		mfs_log(MFS_LOG_DEBUG, "cannot put back the mount's dirty "
			"page ratio: %s", strerror(errno));
	if (s->bytes_fd >= 0)
		close(s->bytes_fd);
	if (s->ratio_fd >= 0)
		close(s->ratio_fd);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->wake);
	free(s);
}

static void *notifier(void *arg)
{
	struct mfs_space *s = arg;
	uint64_t ino;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->stop && s->count == 0)
			pthread_cond_wait(&s->wake, &s->lock);
		if (s->stop)
			break;
		ino = s->queue[s->head];
		s->head = (s->head + 1) % QUEUE_LEN;
		s->count--;
		pthread_mutex_unlock(&s->lock);
		/* -ENOENT: the kernel has forgotten it, nothing to arm. */
		fuse_lowlevel_notify_inval_inode(s->d->se, ino, -1, 0);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* The slot of ino, or NULL; with add, a new slot if it has none. Caller
 * holds s->lock. */
static struct track *track_of(struct mfs_space *s, uint64_t ino, bool add)
{
	struct track *t = NULL;
	unsigned i;

	for (i = 0; i < TRACKED; i++) {
		if (s->track[i].ino == ino)
			return &s->track[i];
		if (!t && s->track[i].ino == 0)
			t = &s->track[i];
	}
	if (!add)
		return NULL;
	if (!t) {
		t = &s->track[s->next_track];
		s->next_track = (s->next_track + 1) % TRACKED;
	} else {
		atomic_fetch_add(&s->tracked, 1);
	}
	t->ino = ino;
	t->from = UINT64_MAX;
	t->armed = false;
	return t;
}

/* Queue ino for an attribute invalidation and remember it armed. Caller
 * holds s->lock. */
static void arm(struct mfs_space *s, uint64_t ino)
{
	unsigned i;

	track_of(s, ino, true)->armed = true;

	for (i = 0; i < s->count; i++)
		if (s->queue[(s->head + i) % QUEUE_LEN] == ino)
			return;
	if (s->count == QUEUE_LEN)
		return;
	s->queue[(s->head + s->count) % QUEUE_LEN] = ino;
	s->count++;
	pthread_cond_signal(&s->wake);
}

int mfs_space_start(struct mfs_fuse *d)
{
	struct mfs_statfs st;
	struct mfs_space *s;
	char path[128];
	uint64_t cap, in_flight;
	ssize_t n;

	/* Without the writeback cache every write goes through, and fails
	 * with ENOSPC where it does not fit. */
	if (!d->writeback || !d->space_want || d->space || !d->se)
		return 0;
	if (mfs_statfs(d->fs, &st) != 0)
		st.blocks = 0;
	in_flight = st.blocks * st.bsize / 16;
	if (in_flight > IN_FLIGHT)
		in_flight = IN_FLIGHT;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->d = d;
	s->bytes_fd = s->ratio_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	if (d->bdi_dev[0]) {
		snprintf(path, sizeof(path), "/sys/class/bdi/%s/max_ratio",
			 d->bdi_dev);
		s->ratio_fd = open(path, O_RDWR | O_CLOEXEC);
		snprintf(path, sizeof(path), "/sys/class/bdi/%s/max_bytes",
			 d->bdi_dev);
		s->bytes_fd = open(path, (s->ratio_fd >= 0 ? O_RDWR :
					  O_RDONLY) | O_CLOEXEC);
		n = s->ratio_fd >= 0 ? pread(s->ratio_fd, s->ratio,
					     sizeof(s->ratio) - 1, 0) : -1;
		s->ratio[n > 0 ? n : 0] = '\0';
		s->ratio[strcspn(s->ratio, "\n")] = '\0';
		s->settable = s->bytes_fd >= 0 && n > 0;
	}
	s->dirty_normal = s->bytes_fd >= 0 ? read_u64(s->bytes_fd) : 0;
	s->dirty_max = s->dirty_normal;
	if (s->dirty_normal <= 2 * DIRTY_MIN)
		s->settable = false; /* about as low as we would set it */
	if (s->settable) {
		/* Twice the floor: the kernel's ratio moves with memory. */
		s->headroom = 2 * DIRTY_MIN + in_flight;
		pthread_mutex_lock(&s->lock);
		fit_dirty_max(s, mfs_space_left(d->fs));
		pthread_mutex_unlock(&s->lock);
	}
	if (!s->settable) {
		/* The kernel's limit stands (unknown: assume 64 MiB), counted
		 * as at most an eighth of the volume (see the header). */
		if (s->dirty_max == 0)
			s->dirty_max = 64ull << 20;
		cap = st.blocks * st.bsize / 8;
		s->dirty_real = s->dirty_max;
		if (s->dirty_max > cap)
			s->dirty_max = cap;
		s->headroom = s->dirty_max + in_flight;
	}
	if (pthread_create(&s->thread, NULL, notifier, s) != 0) {
		mfs_space_free(s);
		return -EAGAIN;
	}
	pthread_setname_np(s->thread, "mmapfs-space");
	s->running = true;
	d->space = s;
	mfs_log(MFS_LOG_INFO, "space: headroom %" PRIu64 " bytes for the "
		"page cache (dirty limit %" PRIu64 " bytes%s)", s->headroom,
		s->dirty_max, s->settable ? ", lowered as space runs short" :
		", the kernel's");
	return 0;
}

void mfs_space_quiesce(struct mfs_fuse *d)
{
	struct mfs_space *s = d->space;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

void mfs_space_stop(struct mfs_fuse *d)
{
	struct mfs_space *s = d->space;

	if (!s)
		return;
	mfs_space_quiesce(d);
	d->space = NULL;
	if (s->running) {
		struct timespec until;

		/* A notification can wait in the kernel for an inode being
		 * evicted, which waits for writeback nobody serves now: give
		 * up on the thread (and its memory) rather than hang. */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 2;
		if (pthread_timedjoin_np(s->thread, NULL, &until) != 0) {
			mfs_log(MFS_LOG_WARNING, "the space notifier does not "
				"stop; leaving it");
			return;
		}
	}
	mfs_space_free(s);
}

uint64_t mfs_space_headroom(const struct mfs_fuse *d)
{
	const struct mfs_space *s = d->space;

	return s ? s->headroom : 0;
}

bool mfs_space_refuse(struct mfs_fuse *d, uint64_t ino)
{
	struct mfs_space *s = d->space;
	uint64_t left;
	struct track *t;
	bool refuse = false;

	if (!s)
		return false;
	left = mfs_space_left(d->fs);
	pthread_mutex_lock(&s->lock);
	t = track_of(s, ino, false);
	if (t && t->armed) {
		/* Only an inode we armed: its attributes may also be asked
		 * for after a day, or by a truncate, which must not fail.
		 * The answer lets the kernel cache them again: disarmed
		 * until its next WRITE that takes space. */
		refuse = left <= s->headroom;
		t->armed = refuse;
	}
	if (s->settable)
		fit_dirty_max(s, left);
	pthread_mutex_unlock(&s->lock);
	return refuse;
}

void mfs_space_stat(struct mfs_fuse *d, uint64_t ino)
{
	struct mfs_space *s = d->space;
	struct track *t;

	if (!s || atomic_load(&s->tracked) == 0)
		return;
	pthread_mutex_lock(&s->lock);
	t = track_of(s, ino, false);
	/* A stat refreshed what we invalidated: invalidate it again. */
	if (t && t->armed)
		arm(s, ino);
	pthread_mutex_unlock(&s->lock);
}

void mfs_space_wrote(struct mfs_fuse *d, uint64_t ino, uint64_t before,
		     uint64_t after, bool failed)
{
	struct mfs_space *s = d->space;

	if (!s || (!failed && after >= before))
		return; /* nothing taken: an overwrite in place */
	pthread_mutex_lock(&s->lock);
	if (s->settable)
		fit_dirty_max(s, after);
	if (failed || after < s->headroom + s->dirty_max)
		arm(s, ino);
	pthread_mutex_unlock(&s->lock);
}

/*
 * Holes nobody made. Writeback sends a file's pages in any order, and a
 * WRITE that fails for space may be followed by one further on that fits
 * (a smaller one, or after a delete): stored, it would extend the size
 * over the dropped range, which would read as zeros nobody wrote. So the
 * first offset dropped is remembered per inode, and later WRITEs stop
 * there, until the kernel's size for the file is no longer its own guess:
 * a setattr of the size (truncate, O_TRUNC) or a forget (the next lookup
 * takes the stored size).
 */
uint64_t mfs_space_limit(struct mfs_fuse *d, uint64_t ino)
{
	struct mfs_space *s = d->space;
	uint64_t from = UINT64_MAX;
	struct track *t;

	if (!s || atomic_load(&s->tracked) == 0)
		return from;
	pthread_mutex_lock(&s->lock);
	t = track_of(s, ino, false);
	if (t)
		from = t->from;
	pthread_mutex_unlock(&s->lock);
	return from;
}

void mfs_space_dropped(struct mfs_fuse *d, uint64_t ino, uint64_t from)
{
	struct mfs_space *s = d->space;
	struct track *t;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	t = track_of(s, ino, true);
	if (from < t->from)
		t->from = from;
	pthread_mutex_unlock(&s->lock);
}

void mfs_space_forget(struct mfs_fuse *d, uint64_t ino)
{
	struct mfs_space *s = d->space;
	struct track *t;

	if (!s || atomic_load(&s->tracked) == 0)
		return;
	pthread_mutex_lock(&s->lock);
	t = track_of(s, ino, false);
	if (t) {
		t->ino = 0;
		atomic_fetch_sub(&s->tracked, 1);
	}
	pthread_mutex_unlock(&s->lock);
}

bool mfs_space_tight(struct mfs_fuse *d, uint64_t left)
{
	struct mfs_space *s = d->space;
	bool tight;

	if (!s)
		return false;
	/* The page cache may hold the kernel's whole limit, even where the
	 * headroom counts less of it. */
	pthread_mutex_lock(&s->lock);
	tight = left < s->headroom + (s->settable ? s->dirty_max :
				      s->dirty_real);
	pthread_mutex_unlock(&s->lock);
	return tight;
}
