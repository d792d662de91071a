/* SPDX-License-Identifier: MIT */
/*
 * main.c — mmapfs, the FUSE daemon: mount an mmapfs image.
 *
 * Layer: program. Parses the command line (mount_opts.c), opens the image
 * with the core (mfs_fs_open), mounts it through libfuse with the glue in
 * fuse_ops.c, runs the session loop and a commit timer, and closes the
 * image cleanly (commit, mark clean) on unmount, SIGTERM, SIGINT or SIGHUP.
 *
 *   mmapfs [-f] [-d] [-s] [-o OPTION[,OPTION...]] IMAGE MOUNTPOINT
 *
 * Works through mount(8): `mount -t fuse.mmapfs IMAGE DIR` and fstab lines
 * run mount.fuse3, which runs `mmapfs IMAGE DIR -o OPTIONS`.
 *
 * Rule: every startup error — a bad option, a missing mount point, an image
 * that does not exist, is not mmapfs, is damaged or is already mounted — is
 * found before the mount and before detaching, and is one line on stderr,
 * "mmapfs: WHAT: WHY", with a non-zero exit status. The mount point is
 * checked before the image is opened, so a wrong argument writes nothing.
 *
 * Exit status: 0 unmounted cleanly; 1 could not mount, or the image could
 * not be closed cleanly; 2 the command line is wrong.
 *
 * Threads: the session loop (one thread unless -o threads=N); a commit
 * timer (mfs_fs_sync every commit= seconds); a signal thread that turns
 * SIGTERM/SIGINT/SIGHUP into an unmount. All are started after
 * fuse_daemonize(), whose fork() would lose them. SIGBUS (the image file
 * was truncated under us, or its disk failed) is fatal: one log line, exit
 * status 1.
 */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "fuse_ops.h"
#include "image.h"
#include "log.h"
#include "mmapfs/mmapfs.h"
#include "mount_opts.h"

#ifndef MMAPFS_VERSION
#define MMAPFS_VERSION "unknown"
#endif

#define EXIT_FAIL 1
#define EXIT_USAGE 2

extern char **environ;

/* ---- logging ---------------------------------------------------------- */

static const int syslog_prio[] = {
	[MFS_LOG_ERR] = LOG_ERR, [MFS_LOG_WARNING] = LOG_WARNING,
	[MFS_LOG_NOTICE] = LOG_NOTICE, [MFS_LOG_INFO] = LOG_INFO,
	[MFS_LOG_DEBUG] = LOG_DEBUG,
};

static void syslog_sink(int level, const char *msg)
{
	int prio = level >= MFS_LOG_ERR && level <= MFS_LOG_DEBUG
		? syslog_prio[level] : LOG_ERR;

	syslog(prio, "%s", msg);
}

static void fuse_syslog(enum fuse_log_level level, const char *fmt,
			va_list ap)
{
	vsyslog((int)level, fmt, ap);
}

/* While the session is set up, libfuse's first error is kept, so that a
 * failure is reported as one line of ours. */
static char fuse_first_err[512];

static void fuse_hold(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char msg[sizeof(fuse_first_err)];
	size_t n;

	if (level > FUSE_LOG_ERR) {
		vfprintf(stderr, fmt, ap);
		return;
	}
	if (fuse_first_err[0])
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	snprintf(fuse_first_err, sizeof(fuse_first_err), "%s",
		 strncmp(msg, "fuse: ", 6) == 0 ? msg + 6 : msg);
}

/*
 * While the image is opened, the core's messages are held back: on
 * failure the first error becomes the one line we print; on success they
 * are passed on to the real sink.
 */
#define HELD_MAX 8
static struct { int level; char msg[512]; } held[HELD_MAX];
static unsigned held_count;

static void hold_sink(int level, const char *msg)
{
	if (held_count == HELD_MAX)
		return;
	held[held_count].level = level;
	snprintf(held[held_count].msg, sizeof(held[0].msg), "%s", msg);
	held_count++;
}

static const char *held_error(void)
{
	unsigned i;

	for (i = 0; i < held_count; i++)
		if (held[i].level <= MFS_LOG_ERR)
			return held[i].msg;
	return NULL;
}

static void release_held(void)
{
	unsigned i;

	for (i = 0; i < held_count; i++)
		mfs_log(held[i].level, "%s", held[i].msg);
	held_count = 0;
}

/* ---- SIGBUS ----------------------------------------------------------- */

/*
 * A SIGBUS in the daemon means an access to the image mapping past the end
 * of the file: someone truncated the image (the flock is only advisory) or
 * the host disk failed. Nothing can be trusted after that; the handler
 * writes one line to stderr and, once detached, to syslog over a socket
 * opened in advance (syslog(3) is not async-signal-safe), then exits.
 */
static int sigbus_log_fd = -1;
static const char *sigbus_image = "";

static size_t put_str(char *p, size_t at, size_t cap, const char *s)
{
	while (*s && at < cap)
		p[at++] = *s++;
	return at;
}

static size_t put_hex(char *p, size_t at, size_t cap, uintptr_t v)
{
	char tmp[2 + 2 * sizeof(v)];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	at = put_str(p, at, cap, "0x");
	while (n > 0 && at < cap)
		p[at++] = tmp[--n];
	return at;
}

static size_t put_dec(char *p, size_t at, size_t cap, unsigned long v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n > 0 && at < cap)
		p[at++] = tmp[--n];
	return at;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	char msg[PATH_MAX + 256];
	const size_t cap = sizeof(msg) - 1;
	size_t n, line;

	/* <LOG_DAEMON | LOG_CRIT>mmapfs[PID]: IMAGE: ... */
	n = put_str(msg, 0, cap, "<26>mmapfs[");
	n = put_dec(msg, n, cap, (unsigned long)getpid());
	n = put_str(msg, n, cap, "]: ");
	line = n;
	n = put_str(msg, n, cap, sigbus_image);
	n = put_str(msg, n, cap, ": SIGBUS at ");
	n = put_hex(msg, n, cap, (uintptr_t)si->si_addr);
	n = put_str(msg, n, cap, " reading the image mapping: the image file "
		    "was truncated by another process or its disk failed; "
		    "exiting");
	if (sigbus_log_fd >= 0)
		(void)!send(sigbus_log_fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	msg[n++] = '\n';
	(void)!write(STDERR_FILENO, "mmapfs: ", 8);
	(void)!write(STDERR_FILENO, msg + line, n - line);
	_exit(EXIT_FAIL);
}

static void install_sigbus(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

/* A datagram socket to syslogd for the SIGBUS handler; -1 if none. */
static int open_syslog_socket(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", _PATH_LOG);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- the commit timer ------------------------------------------------- */

struct timer {
	struct mfs_fs *fs;
	unsigned seconds;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	pthread_t thread;
	bool running;
};

static void *timer_main(void *arg)
{
	struct timer *t = arg;
	struct timespec at;
	bool reported = false;
	int rc;

	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_sec += t->seconds;
		while (!t->stop &&
		       pthread_cond_timedwait(&t->cond, &t->lock, &at) == 0)
			;
		if (t->stop)
			break;
		pthread_mutex_unlock(&t->lock);
		rc = mfs_fs_sync(t->fs);
		if (rc && !reported) {
			mfs_log(MFS_LOG_ERR, "periodic commit failed: %s",
				strerror(-rc));
			reported = true;
		}
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static int timer_start(struct timer *t, struct mfs_fs *fs, unsigned seconds)
{
	pthread_condattr_t ca;
	int rc;

	t->fs = fs;
	t->seconds = seconds;
	t->stop = false;
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&t->thread, NULL, timer_main, t);
	t->running = rc == 0;
	return -rc;
}

static void timer_stop(struct timer *t)
{
	if (!t->running)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	t->running = false;
}

/* ---- stopping on a signal --------------------------------------------- */

/*
 * SIGTERM, SIGINT and SIGHUP are blocked in every thread and taken by one
 * thread with sigwait(). It unmounts the way umount(8) would, while the
 * session loop still runs: the kernel first writes back every dirty page
 * and the loop then ends by itself (the connection goes away). If that is
 * refused (the mount is busy), it makes the kernel write back what it
 * holds (syncfs), then ends the loop; the mount is then detached lazily.
 */
struct stopper {
	struct fuse_session *se;
	const char *mountpoint;
	pthread_t main_thread;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool loop_done;
	sigset_t set;
};

static void on_wake(int sig)
{
	/* Only interrupts the main thread's wait in the session loop. */
}

/* Unmount without MNT_DETACH: the kernel syncs first. 0 or -1. */
static int graceful_unmount(const char *mnt)
{
	char *const argv[] = { "fusermount3", "-u", "-q", "--", (char *)mnt,
			       NULL };
	int status;
	pid_t pid;

	if (geteuid() == 0)
		return umount2(mnt, UMOUNT_NOFOLLOW);
	if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ))
		return -1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void *stopper_main(void *arg)
{
	struct stopper *s = arg;
	struct timespec at;
	int sig, fd;

	for (;;) {
		if (sigwait(&s->set, &sig) != 0)
			continue;
		if (sig == SIGUSR2)     /* from main: the loop is over */
			return NULL;
		break;
	}
	mfs_log(MFS_LOG_NOTICE, "%s: unmounting on %s", s->mountpoint,
		strsignal(sig));
	if (graceful_unmount(s->mountpoint) == 0)
		return NULL;
	mfs_log(MFS_LOG_WARNING, "%s: busy (%s); syncing and detaching it",
		s->mountpoint, strerror(errno));
	fd = open(s->mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
	fuse_session_exit(s->se);
	/* The loop sleeps in read(2) or sem_wait(3): interrupt it until it
	 * notices, since a signal sent just before it sleeps is lost. */
	pthread_mutex_lock(&s->lock);
	while (!s->loop_done) {
		pthread_kill(s->main_thread, SIGUSR1);
		clock_gettime(CLOCK_REALTIME, &at);
		at.tv_nsec += 100 * 1000 * 1000;
		if (at.tv_nsec >= 1000000000L) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &at);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Block the stop signals in this thread (and every thread it creates from
 * now on) and start the stopper. */
static int stopper_start(struct stopper *s, struct fuse_session *se,
			 const char *mountpoint)
{
	struct sigaction sa;
	int rc;

	s->se = se;
	s->mountpoint = mountpoint;
	s->main_thread = pthread_self();
	s->loop_done = false;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_wake;        /* no SA_RESTART: interrupt */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	sigemptyset(&s->set);
	sigaddset(&s->set, SIGTERM);
	sigaddset(&s->set, SIGINT);
	sigaddset(&s->set, SIGHUP);
	sigaddset(&s->set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &s->set, NULL);
	rc = pthread_create(&s->thread, NULL, stopper_main, s);
	s->running = rc == 0;
	return -rc;
}

static void stopper_stop(struct stopper *s)
{
	if (!s->running)
		return;
	pthread_mutex_lock(&s->lock);
	s->loop_done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_kill(s->thread, SIGUSR2);
	pthread_join(s->thread, NULL);
	s->running = false;
}

/* ---- startup ---------------------------------------------------------- */

/* The core's reason why the image cannot be opened, as one line. */
static void print_open_error(const char *image, int rc)
{
	const char *why = held_error();
	size_t il = strlen(image);

	/* Damage: say which image, and what to run (the core's message
	 * names neither when it comes from deep in a tree). */
	if (why && rc == -EUCLEAN)
		fprintf(stderr, "mmapfs: %s%s%s; %s %s\n",
			strncmp(why, image, il) == 0 ? "" : image,
			strncmp(why, image, il) == 0 ? "" : ": ", why,
			/* Damage in a tree fsck repairs; a superblock it may
			 * not (there are no backups to search). */
			strstr(why, "corruption:") ?
			"repair it with: fsck.mmapfs -f -y" :
			"fsck.mmapfs -f -n says more:", image);
	else if (why)
		fprintf(stderr, "mmapfs: %s\n", why);
	else if (rc == -EINVAL)
		fprintf(stderr, "mmapfs: %s: not an mmapfs image\n", image);
	else if (rc == -EUCLEAN)
		fprintf(stderr, "mmapfs: %s: file system is damaged; repair "
			"it with: fsck.mmapfs -f -y %s\n", image, image);
	else
		fprintf(stderr, "mmapfs: %s: %s\n", image, strerror(-rc));
}

/* Add "-o name=value" with value escaped for libfuse's option parser. */
static int add_opt_escaped(struct fuse_args *args, const char *name,
			   const char *value)
{
	char *s = NULL, *o;
	int rc;

	if (asprintf(&s, "%s=%s", name, value) < 0)
		return -1;
	o = NULL;
	rc = fuse_opt_add_opt_escaped(&o, s);
	free(s);
	if (rc)
		return -1;
	rc = fuse_opt_add_arg(args, "-o") || fuse_opt_add_arg(args, o);
	free(o);
	return rc ? -1 : 0;
}

/* ---- the mount's share of dirty pages ---------------------------------- */

/*
 * The kernel gives every FUSE mount's bdi max_ratio=1 and strict_limit: the
 * mount may hold 1% of the dirty threshold, because an unprivileged daemon
 * must not be able to pin memory in dirty pages only it can clean. Writers
 * are then throttled in balance_dirty_pages long before a kernel
 * filesystem's would be, although every dirty page here is cleaned by one
 * memcpy into the image. When the daemon may (root), it gives its own bdi
 * a larger share (-o bdi_max_ratio, default 50%).
 *
 * Why not 100% as a kernel filesystem has: to clean the mount's pages the
 * daemon dirties pages of the image, and is throttled for those as any
 * writer of the image's device. With the mount's pages alone filling the
 * global limit it would be throttled hard on their account, and they only
 * get cleaner as fast as it goes. At 50% they stay below the point where
 * throttling starts ((limit + background limit) / 2 = 75% of the limit),
 * so the daemon's own writes are throttled only by what the image's
 * device has dirty. With CAP_SYS_RESOURCE the daemon also marks itself an
 * I/O flusher (PR_SET_IO_FLUSHER, as loop and nbd servers do): it is then
 * throttled only by its own device's dirty pages whatever the ratio.
 */

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

/* The device number "MAJ:MIN" of the last mount on mnt, from
 * /proc/self/mountinfo (a stat of the mount point would ask the daemon,
 * whose loop has not started). Returns 0 or -1. */
static int mount_dev(const char *mnt, char *dev, size_t len)
{
	char line[PATH_MAX + 1024], mp[PATH_MAX + 1], d[64];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %*s %63s %*s %4096s", d, mp) != 2)
			continue;
		mfs_image_unescape_mountinfo(mp);
		if (strcmp(mp, mnt) == 0) {
			snprintf(dev, len, "%s", d);
			found = true;
		}
	}
	fclose(f);
	return found ? 0 : -1;
}

static void set_bdi(const char *mnt, unsigned ratio)
{
	char dev[64], path[128], old[32] = "?";
	bool flusher;
	int fd;
	ssize_t n;

	if (ratio == 0)
		return;
	if (mount_dev(mnt, dev, sizeof(dev)) != 0) {
		mfs_log(MFS_LOG_WARNING, "%s: not in /proc/self/mountinfo; "
			"the mount keeps the kernel's dirty page limit", mnt);
		return;
	}
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/max_ratio", dev);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		n = pread(fd, old, sizeof(old) - 1, 0);
		old[n > 0 ? n : 0] = '\0';
		old[strcspn(old, "\n")] = '\0';
	}
	if (fd < 0 || dprintf(fd, "%u\n", ratio) < 0) {
		mfs_log(errno == EACCES || errno == EPERM || errno == EROFS
			? MFS_LOG_INFO : MFS_LOG_WARNING,
			"%s: cannot set max_ratio of bdi %s: %s; the mount "
			"keeps the kernel's dirty page limit (%s%%)", mnt, dev,
			strerror(errno), old);
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	/* Best effort (needs CAP_SYS_RESOURCE), see above. */
	flusher = prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) == 0;
	mfs_log(MFS_LOG_INFO, "bdi %s: max_ratio %s -> %u (the mount's share "
		"of the dirty page cache)%s", dev, old, ratio,
		flusher ? "; I/O flusher" : "");
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct mfs_mount_opts o;
	struct mfs_fuse d = { 0 };
	struct timer timer = { 0 };
	struct stopper stopper = { 0 };
	struct fuse_session *se = NULL;
	struct fuse_loop_config *cfg;
	char *mnt_abs = NULL, *img_abs = NULL;
	struct stat st;
	int status = EXIT_FAIL;
	int rc;

	mfs_log_set_progname("mmapfs");

	status = mfs_mount_parse(&args, &o, &d.conn_opts);
	if (status >= 0)
		goto out_free_args;
	status = EXIT_FAIL;
	if (o.debug)
		mfs_log_set_level(MFS_LOG_DEBUG);

	/* The mount point first: a wrong one must not touch the image. */
	mnt_abs = realpath(o.mountpoint, NULL);
	if (!mnt_abs || stat(mnt_abs, &st) != 0) {
		fprintf(stderr, "mmapfs: %s: cannot mount here: %s\n",
			o.mountpoint, strerror(errno));
		goto out_free_args;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "mmapfs: %s: cannot mount here: %s\n",
			o.mountpoint, strerror(ENOTDIR));
		goto out_free_args;
	}
	img_abs = realpath(o.image, NULL);
	sigbus_image = img_abs ? img_abs : o.image;
	install_sigbus();

	mfs_log_set_sink(hold_sink);
	/* Deferred: nothing is written to the image until the kernel has
	 * accepted the mount (a refused option must leave it untouched). */
	rc = mfs_fs_open(o.image, MFS_FS_WAIT | (o.ro ? MFS_FS_RDONLY :
			 MFS_FS_DEFER | (o.discard ? MFS_FS_DISCARD : 0)), &d.fs);
	mfs_log_set_sink(NULL);
	if (rc) {
		print_open_error(o.image, rc);
		held_count = 0;
		goto out_free_args;
	}
	release_held();
	/* Test hook (tests/test_crash_daemon.sh): simulated power cuts. */
	if (!o.ro && getenv("MMAPFS_TEST_DURABLE_COPY") &&
	    mfs_fs_copy_on_sync(d.fs, getenv("MMAPFS_TEST_DURABLE_COPY"))) {
		fprintf(stderr, "mmapfs: out of memory\n");
		goto out_close;
	}
	d.sync = o.sync;
	d.uring_want = !o.no_uring;

	if (fuse_opt_add_arg(&args, "-odefault_permissions") ||
	    (!o.have_subtype && fuse_opt_add_arg(&args, "-osubtype=mmapfs")) ||
	    (!o.have_fsname &&
	     add_opt_escaped(&args, "fsname", img_abs ? img_abs : o.image)) ||
	    (o.debug && fuse_opt_add_arg(&args, "-d"))) {
		fprintf(stderr, "mmapfs: out of memory\n");
		goto out_close;
	}
	fuse_set_log_func(fuse_hold);
	se = fuse_session_new(&args, &mfs_fuse_ops, sizeof(mfs_fuse_ops), &d);
	if (!se) {
		fprintf(stderr, "mmapfs: %s: cannot start the FUSE session: "
			"%s\n", o.image, fuse_first_err[0] ? fuse_first_err
						   : "unknown error");
		goto out_close;
	}
	if (fuse_session_mount(se, mnt_abs) != 0) {
		fprintf(stderr, "mmapfs: %s: cannot mount: %s\n",
			o.mountpoint, fuse_first_err[0] ? fuse_first_err
							: "unknown error");
		goto out_destroy;
	}
	fuse_set_log_func(NULL);
	/* handle_killpriv_v2 needs the raw requests (fuse_io.c); without
	 * the hooks the daemon works as it always did. */
	d.se = se;
	if (mfs_fuse_hook_io(se, &d) != 0)
		mfs_log(MFS_LOG_WARNING, "cannot hook the FUSE device: "
			"handle_killpriv_v2 stays off");
	rc = mfs_fs_start(d.fs);
	if (rc) {
		fprintf(stderr, "mmapfs: %s: cannot start: %s\n", o.image,
			strerror(-rc));
		goto out_unmount;
	}
	/* Test hook (tests/test_damaged_mount.sh): a disk that fails the
	 * next N syncs, once the image is marked in use. */
	if (getenv("MMAPFS_TEST_FAIL_SYNCS"))
		mfs_fs_fail_syncs(d.fs, (unsigned)atoi(getenv("MMAPFS_TEST_FAIL_SYNCS")));
	if (fuse_daemonize(o.foreground) != 0) {
		fprintf(stderr, "mmapfs: cannot detach from the terminal\n");
		goto out_unmount;
	}
	if (!o.foreground) {
		openlog("mmapfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		mfs_log_set_sink(syslog_sink);
		fuse_set_log_func(fuse_syslog);
		sigbus_log_fd = open_syslog_socket();
	}
	mfs_log(MFS_LOG_INFO, "%s: mounted %s on %s", sigbus_image,
		o.ro ? "read-only" : "read-write", mnt_abs);
	/* Before any thread starts: they inherit the I/O flusher flag. */
	if (!o.ro) {
		set_bdi(mnt_abs, o.bdi_ratio);
		/* For fuse_space.c, started by init. */
		if (mount_dev(mnt_abs, d.bdi_dev, sizeof(d.bdi_dev)) != 0)
			d.bdi_dev[0] = '\0';
		d.space_want = true;
	}

	if (stopper_start(&stopper, se, mnt_abs) != 0) {
		mfs_log(MFS_LOG_ERR, "cannot start the signal thread");
		goto out_unmount;
	}
	if (!o.ro && o.commit > 0 && timer_start(&timer, d.fs, o.commit) != 0) {
		mfs_log(MFS_LOG_ERR, "cannot start the commit thread");
		goto out_stop;
	}

	/*
	 * One thread by default. Requests are short (the image is mapped,
	 * changes take the core's lock exclusively), so threads add little
	 * parallelism, and on a machine with few CPUs they cost much: the
	 * kernel hands each request to the worker that has waited longest,
	 * so consecutive requests wake different threads, often on another
	 * CPU. On 2 CPUs one thread was faster for metadata and no slower
	 * for data (docs/performance.md, "Measurements behind the design").
	 */
	d.ring_spin_us = o.spin_us;
	if (o.threads <= 1) {
		/* Several spinning threads would burn a CPU each. */
		d.spin_us = o.spin_us;
		rc = fuse_session_loop(se);
	} else {
		cfg = fuse_loop_cfg_create();
		if (!cfg) {
			mfs_log(MFS_LOG_ERR, "out of memory");
			goto out_stop;
		}
		fuse_loop_cfg_set_clone_fd(cfg, 0);
		fuse_loop_cfg_set_max_threads(cfg, o.threads);
		rc = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	status = 0;
	/* -EINTR: the loop was woken to see that it should stop. */
	if (rc < 0 && rc != -EINTR) {
		mfs_log(MFS_LOG_ERR, "session loop failed: %s", strerror(-rc));
		status = EXIT_FAIL;
	}

out_stop:
	timer_stop(&timer);
	mfs_space_quiesce(&d);
	stopper_stop(&stopper);
out_unmount:
	fuse_session_unmount(se);
	/* After the unmount, before the session's descriptor is gone for
	 * good: closing the rings drops their hold on /dev/fuse, which ends
	 * a lazily detached connection too. */
	mfs_uring_stop(&d);
	/* No thread serves requests now: the gate can go. */
	mfs_space_stop(&d);
out_destroy:
	fuse_session_destroy(se);
out_close:
	rc = mfs_fs_close(d.fs);
	if (rc) {
		mfs_log(MFS_LOG_ERR, "%s: could not close the image cleanly: "
			"%s", sigbus_image, strerror(-rc));
		status = EXIT_FAIL;
	} else if (status == 0) {
		mfs_log(MFS_LOG_INFO, "%s: unmounted cleanly", sigbus_image);
	}
	signal(SIGBUS, SIG_DFL);
out_free_args:
	mfs_mount_opts_free(&o);
	free(img_abs);
	free(mnt_abs);
	fuse_opt_free_args(&args);
	free(d.conn_opts);
	return status;
}
