/* SPDX-License-Identifier: MIT */
/*
 * test_mount.c — the whole filesystem through the kernel, on a real mount.
 *
 * The group setup makes a fresh image with mkfs.mmapfs and starts
 * `mmapfs -f IMAGE DIR` as a child; every test then drives the mount with
 * ordinary system calls (so the kernel's FUSE client, the glue in
 * src/fuse_ops.c and the core are all under test) and checks results and
 * errno values against what ext4 does. Each test works in its own
 * directory. Some tests unmount and mount again to check what reached the
 * image.
 *
 * Never leaves a mount behind: the daemon gets SIGTERM if this process dies
 * (PR_SET_PDEATHSIG), which makes it unmount; the teardown unmounts, falls
 * back to a lazy unmount, and fails if a mount of our directory is still in
 * /proc/self/mountinfo.
 *
 * Needs root (mount, setuid to check setuid clearing), /dev/fuse and
 * fusermount3. The programs come from the environment: MMAPFS (the daemon),
 * MKFS (mkfs.mmapfs) and FSCK (fsck.mmapfs, optional: run with -fn after
 * every unmount), as tests/meson.build sets them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define KiB 1024ULL
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

static struct {
	char dir[64];
	char img[96];
	char mnt[96];
	char log[96];
	const char *mmapfs, *mkfs, *fsck;
	pid_t pid;              /* the daemon, 0 when not mounted */
} M;

/* ---- helpers ---------------------------------------------------------- */

/* Path under the mount: P("a/b") -> "<mnt>/a/b", in a rotating buffer. */
static const char *P(const char *fmt, ...)
{
	static char bufs[8][PATH_MAX];
	static unsigned next;
	char *b = bufs[next++ % 8];
	char rel[PATH_MAX - 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(b, PATH_MAX, "%s/%s", M.mnt, rel);
	return b;
}

/* Is a mount at M.mnt in /proc/self/mountinfo? Returns its fstype via
 * type (may be NULL). */
static bool is_mounted(char *type, size_t tlen)
{
	char line[4096], mp[PATH_MAX], fst[256];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *dash;

		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		if (strcmp(mp, M.mnt) != 0)
			continue;
		dash = strstr(line, " - ");
		if (dash && sscanf(dash + 3, "%255s", fst) == 1 && type)
			snprintf(type, tlen, "%s", fst);
		found = true;
	}
	fclose(f);
	return found;
}

static void dump_log(void)
{
	char buf[4096];
	ssize_t n;
	int fd = open(M.log, O_RDONLY);

	if (fd < 0)
		return;
	fprintf(stderr, "---- daemon log ----\n");
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	fprintf(stderr, "--------------------\n");
	close(fd);
}

/* Start the daemon in the foreground with extra -o options (or NULL) and
 * one more command-line flag (or NULL, e.g. "-s"), and wait until the
 * mount is there. Returns 0 or -1. */
static int start_daemon_flag(const char *opts, const char *flag)
{
	char type[256] = "";
	pid_t pid;
	int i, status;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(M.log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		/* allow_other: some tests act as another user */
		if (flag)
			execl(M.mmapfs, "mmapfs", "-f", flag, "-o",
			      opts ? opts : "allow_other", M.img, M.mnt,
			      (char *)NULL);
		else
			execl(M.mmapfs, "mmapfs", "-f", "-o",
			      opts ? opts : "allow_other", M.img, M.mnt,
			      (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 1000; i++) {
		if (is_mounted(type, sizeof(type)) &&
		    strcmp(type, "fuse.mmapfs") == 0) {
			struct stat st;

			M.pid = pid;
			/* The mount shows before the daemon has answered
			 * FUSE_INIT; a stat waits for that, and so for what
			 * the daemon logs in init (test_write_no_getxattr
			 * looked too early once under ASan). */
			if (stat(M.mnt, &st) != 0)
				fprintf(stderr, "stat %s: %s\n", M.mnt,
					strerror(errno));
			return 0;
		}
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "mmapfs exited with status 0x%x\n",
				status);
			dump_log();
			return -1;
		}
		usleep(10000);
	}
	fprintf(stderr, "mmapfs did not mount within 10 s\n");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	dump_log();
	return -1;
}

static int start_daemon(const char *opts)
{
	return start_daemon_flag(opts, NULL);
}

/* Close every descriptor of ours on the mount (same st_dev): a test that
 * failed half way leaves some open, and they would keep the next unmount
 * busy. */
static void close_mount_fds(void)
{
	struct stat mst, st;
	DIR *d;
	struct dirent *de;

	if (stat(M.mnt, &mst) != 0)
		return;
	d = opendir("/proc/self/fd");
	if (!d)
		return;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (fd < 3 || fd == dirfd(d))
			continue;
		if (fstat(fd, &st) == 0 && st.st_dev == mst.st_dev)
			close(fd);
	}
	closedir(d);
}

/* Unmount (as umount(8) does) and reap the daemon. Returns its exit
 * status, or -1 if it had to be forced. */
static int stop_daemon(void)
{
	int i, status = 0;
	bool forced = false;

	if (!M.pid)
		return 0;
	close_mount_fds();
	/* Generous waits: under a sanitizer on a loaded machine the final
	 * commit and the release of the image can take many seconds. */
	for (i = 0; i < 300 && umount2(M.mnt, 0) != 0; i++) {
		if (errno != EBUSY)
			break;
		usleep(100000);
	}
	if (is_mounted(NULL, 0)) {
		forced = true;
		kill(M.pid, SIGTERM);
	}
	for (i = 0; i < 6000; i++) {
		if (waitpid(M.pid, &status, WNOHANG) == M.pid)
			break;
		usleep(10000);
	}
	if (i == 6000) {
		forced = true;
		kill(M.pid, SIGKILL);
		waitpid(M.pid, &status, 0);
	}
	M.pid = 0;
	if (is_mounted(NULL, 0)) {
		forced = true;
		umount2(M.mnt, MNT_DETACH);
	}
	if (forced || !WIFEXITED(status)) {
		dump_log();
		return -1;
	}
	return WEXITSTATUS(status);
}

/* fsck.mmapfs -fn on the unmounted image: 0 if clean (or no FSCK given). */
static int fsck_image(void)
{
	char cmd[512];
	int rc;

	if (!M.fsck)
		return 0;
	snprintf(cmd, sizeof(cmd), "'%s' -fn '%s' >>'%s' 2>&1", M.fsck, M.img,
		 M.log);
	rc = system(cmd);
	if (rc != 0) {
		fprintf(stderr, "fsck.mmapfs -fn: status 0x%x\n", rc);
		dump_log();
	}
	return rc;
}

/* Unmount and mount again: what survives is what reached the image,
 * and the image as left by the unmount is consistent. */
static void remount(void)
{
	assert_int_equal(stop_daemon(), 0);
	assert_int_equal(fsck_image(), 0);
	assert_int_equal(start_daemon(NULL), 0);
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Read the whole file (at most cap bytes); returns its length. */
static size_t read_file(const char *path, void *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	size_t got = 0;
	ssize_t n;

	assert_true(fd >= 0);
	while (got < cap && (n = read(fd, (char *)buf + got, cap - got)) > 0)
		got += (size_t)n;
	assert_int_equal(close(fd), 0);
	return got;
}

static void fill_pattern(void *buf, size_t len, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

/* Expect call to fail with errno e. */
#define assert_errno(call, e) do {					\
		errno = 0;						\
		assert_int_equal((call), -1);				\
		assert_int_equal(errno, (e));				\
	} while (0)

static int count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n++;
	closedir(d);
	return n;
}

/* ---- group setup / teardown ------------------------------------------- */

static int rm_one(const char *p, const struct stat *st, int type,
		  struct FTW *f)
{
	return remove(p) == 0 ? 0 : -1;
}

static int group_setup(void **state)
{
	char cmd[512];

	M.mmapfs = getenv("MMAPFS");
	M.mkfs = getenv("MKFS");
	M.fsck = getenv("FSCK");   /* optional */
	if (!M.mmapfs || !M.mkfs) {
		fprintf(stderr, "MMAPFS and MKFS must name the programs\n");
		return -1;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "test_mount needs root\n");
		return -1;
	}
	strcpy(M.dir, "/tmp/mfs-test-mount-XXXXXX");
	/* 0755: tests acting as another user must reach the mount */
	if (!mkdtemp(M.dir) || chmod(M.dir, 0755) != 0)
		return -1;
	snprintf(M.img, sizeof(M.img), "%s/disk.img", M.dir);
	snprintf(M.mnt, sizeof(M.mnt), "%s/mnt", M.dir);
	snprintf(M.log, sizeof(M.log), "%s/daemon.log", M.dir);
	if (mkdir(M.mnt, 0755) != 0)
		return -1;
	/* 16 GiB sparse: room for the > 4 GiB sparse file and the rest. */
	snprintf(cmd, sizeof(cmd), "'%s' -q -s 16G '%s'", M.mkfs, M.img);
	if (system(cmd) != 0)
		return -1;
	return start_daemon(NULL);
}

static int group_teardown(void **state)
{
	int rc = stop_daemon();
	bool left = is_mounted(NULL, 0);

	if (rc == 0 && !left)
		rc = fsck_image();
	if (left) {
		fprintf(stderr, "a mount was left at %s\n", M.mnt);
		umount2(M.mnt, MNT_DETACH);
	}
	nftw(M.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc == 0 && !left ? 0 : -1;
}

/* ---- tests ------------------------------------------------------------ */

static void test_statfs(void **state)
{
	struct statvfs sv;

	assert_int_equal(statvfs(M.mnt, &sv), 0);
	assert_int_equal(sv.f_bsize, 4096);
	assert_int_equal(sv.f_frsize, 4096);
	assert_int_equal(sv.f_namemax, 255);
	/* 16 GiB image: 4 Mi blocks, nearly all free. */
	assert_int_equal(sv.f_blocks, 16 * GiB / 4096);
	assert_true(sv.f_bfree <= sv.f_blocks);
	assert_true(sv.f_bfree > sv.f_blocks - 1024);
	assert_true(sv.f_bavail <= sv.f_bfree);
	assert_true(sv.f_files > 0);
	assert_true(sv.f_ffree <= sv.f_files);
}

/* The mount's bdi max_ratio (the percentage in /sys), or -1. */
static int bdi_max_ratio(void)
{
	char path[128], buf[32];
	struct stat st;
	ssize_t n;
	int fd;

	if (stat(M.mnt, &st) != 0)
		return -1;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/max_ratio",
		 major(st.st_dev), minor(st.st_dev));
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return atoi(buf);
}

/* The daemon (root) gives its mount's bdi a share of the dirty page cache
 * (default 50%) instead of the kernel's 1% for FUSE; bdi_max_ratio=N sets
 * it, 0 leaves the kernel's. */
static void test_bdi_ratio(void **state)
{
	assert_int_equal(bdi_max_ratio(), 50);
	assert_int_equal(stop_daemon(), 0);
	assert_int_equal(start_daemon("allow_other,bdi_max_ratio=0"), 0);
	assert_int_equal(bdi_max_ratio(), 1);
	assert_int_equal(stop_daemon(), 0);
	assert_int_equal(start_daemon("allow_other,bdi_max_ratio=30"), 0);
	assert_int_equal(bdi_max_ratio(), 30);
	assert_int_equal(stop_daemon(), 0);
	/* read-only mounts write nothing back: the kernel's limit stays */
	assert_int_equal(start_daemon("allow_other,ro"), 0);
	assert_int_equal(bdi_max_ratio(), 1);
	assert_int_equal(stop_daemon(), 0);
	assert_int_equal(start_daemon(NULL), 0);
	assert_int_equal(bdi_max_ratio(), 50);
}

static void test_create_stat(void **state)
{
	struct stat st, st2;
	struct timespec t0;
	int fd;

	clock_gettime(CLOCK_REALTIME, &t0);
	assert_int_equal(mkdir(P("cs"), 0755), 0);
	fd = open(P("cs/f"), O_CREAT | O_EXCL | O_RDWR, 0640);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0640 & ~0);
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_size, 0);
	assert_true(st.st_mtime >= t0.tv_sec - 1);
	assert_int_equal(close(fd), 0);
	assert_int_equal(stat(P("cs/f"), &st2), 0);
	assert_int_equal(st.st_ino, st2.st_ino);
	/* a new directory: nlink 2, parent's nlink + 1 */
	assert_int_equal(stat(P("cs"), &st), 0);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(mkdir(P("cs/sub"), 0700), 0);
	assert_int_equal(stat(P("cs"), &st), 0);
	assert_int_equal(st.st_nlink, 3);
	assert_int_equal(stat(P("cs/sub"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_nlink, 2);
	/* mknod: fifo and a character device */
	assert_int_equal(mkfifo(P("cs/fifo"), 0600), 0);
	assert_int_equal(lstat(P("cs/fifo"), &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(mknod(P("cs/null"), S_IFCHR | 0666, makedev(1, 3)), 0);
	assert_int_equal(lstat(P("cs/null"), &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(major(st.st_rdev), 1);
	assert_int_equal(minor(st.st_rdev), 3);
	assert_int_equal(count_entries(P("cs")), 6);
}

static void test_namespace_errors(void **state)
{
	char name[300];
	struct stat st;
	int fd;

	assert_int_equal(mkdir(P("ne"), 0755), 0);
	assert_int_equal(mkdir(P("ne/d"), 0755), 0);
	write_file(P("ne/f"), "x", 1);
	write_file(P("ne/d/inner"), "y", 1);

	/* ENOENT */
	assert_errno(stat(P("ne/missing"), &st), ENOENT);
	assert_errno(open(P("ne/missing"), O_RDONLY), ENOENT);
	assert_errno(unlink(P("ne/missing")), ENOENT);
	assert_errno(rmdir(P("ne/missing")), ENOENT);
	assert_errno(rename(P("ne/missing"), P("ne/x")), ENOENT);
	assert_errno(mkdir(P("ne/missing/sub"), 0755), ENOENT);
	/* EEXIST */
	assert_errno(mkdir(P("ne/d"), 0755), EEXIST);
	assert_errno(mkdir(P("ne/f"), 0755), EEXIST);
	assert_errno(open(P("ne/f"), O_CREAT | O_EXCL | O_RDWR, 0644), EEXIST);
	assert_errno(link(P("ne/f"), P("ne/d")), EEXIST);
	assert_errno(symlink("t", P("ne/f")), EEXIST);
	assert_errno(mknod(P("ne/f"), S_IFIFO | 0644, 0), EEXIST);
	/* ENOTEMPTY */
	assert_errno(rmdir(P("ne/d")), ENOTEMPTY);
	/* EISDIR */
	assert_errno(open(P("ne/d"), O_WRONLY), EISDIR);
	assert_errno(open(P("ne/d"), O_RDWR), EISDIR);
	assert_errno(unlink(P("ne/d")), EISDIR);
	/* ENOTDIR */
	assert_errno(rmdir(P("ne/f")), ENOTDIR);
	assert_errno(mkdir(P("ne/f/sub"), 0755), ENOTDIR);
	assert_errno(stat(P("ne/f/x"), &st), ENOTDIR);
	assert_errno(open(P("ne/f"), O_RDONLY | O_DIRECTORY), ENOTDIR);
	/* ENAMETOOLONG: 256 bytes fail everywhere, 255 work */
	memset(name, 'n', 256);
	name[256] = '\0';
	assert_errno(open(P("ne/%s", name), O_CREAT | O_RDWR, 0644),
		     ENAMETOOLONG);
	assert_errno(mkdir(P("ne/%s", name), 0755), ENAMETOOLONG);
	assert_errno(stat(P("ne/%s", name), &st), ENAMETOOLONG);
	assert_errno(symlink("t", P("ne/%s", name)), ENAMETOOLONG);
	assert_errno(link(P("ne/f"), P("ne/%s", name)), ENAMETOOLONG);
	assert_errno(rename(P("ne/f"), P("ne/%s", name)), ENAMETOOLONG);
	name[255] = '\0';
	fd = open(P("ne/%s", name), O_CREAT | O_RDWR, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(stat(P("ne/%s", name), &st), 0);
	assert_int_equal(unlink(P("ne/%s", name)), 0);
	/* EPERM: hard link to a directory */
	assert_errno(link(P("ne/d"), P("ne/dlink")), EPERM);
	/* EINVAL: rename a directory into its own subtree; rmdir "." */
	assert_errno(rename(P("ne/d"), P("ne/d/inner2")), EINVAL);
	assert_errno(rmdir(P("ne/d/.")), EINVAL);
	/* rename type mismatches */
	assert_int_equal(mkdir(P("ne/e"), 0755), 0);
	assert_errno(rename(P("ne/e"), P("ne/f")), ENOTDIR);
	assert_errno(rename(P("ne/f"), P("ne/e")), EISDIR);
	assert_errno(rename(P("ne/e"), P("ne/d")), ENOTEMPTY);
}

static void test_rename(void **state)
{
	struct stat a, b, st;
	char buf[16];

	assert_int_equal(mkdir(P("rn"), 0755), 0);
	assert_int_equal(mkdir(P("rn/d1"), 0755), 0);
	assert_int_equal(mkdir(P("rn/d2"), 0755), 0);
	write_file(P("rn/d1/a"), "aaaa", 4);
	write_file(P("rn/d1/b"), "bbbb", 4);
	/* plain move between directories */
	assert_int_equal(stat(P("rn/d1/a"), &a), 0);
	assert_int_equal(rename(P("rn/d1/a"), P("rn/d2/a2")), 0);
	assert_errno(stat(P("rn/d1/a"), &st), ENOENT);
	assert_int_equal(stat(P("rn/d2/a2"), &st), 0);
	assert_int_equal(st.st_ino, a.st_ino);
	/* replace an existing file */
	assert_int_equal(stat(P("rn/d1/b"), &b), 0);
	assert_int_equal(rename(P("rn/d1/b"), P("rn/d2/a2")), 0);
	assert_int_equal(stat(P("rn/d2/a2"), &st), 0);
	assert_int_equal(st.st_ino, b.st_ino);
	assert_int_equal(read_file(P("rn/d2/a2"), buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "bbbb", 4);
	/* a directory moves: parents' link counts follow, ".." too */
	assert_int_equal(mkdir(P("rn/d1/sub"), 0755), 0);
	assert_int_equal(stat(P("rn/d1"), &st), 0);
	assert_int_equal(st.st_nlink, 3);
	assert_int_equal(rename(P("rn/d1/sub"), P("rn/d2/sub")), 0);
	assert_int_equal(stat(P("rn/d1"), &st), 0);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(stat(P("rn/d2"), &st), 0);
	assert_int_equal(st.st_nlink, 3);
	assert_int_equal(stat(P("rn/d2/sub/.."), &a), 0);
	assert_int_equal(a.st_ino, st.st_ino);
	/* a directory replaces an empty one */
	assert_int_equal(mkdir(P("rn/empty"), 0755), 0);
	assert_int_equal(rename(P("rn/d2/sub"), P("rn/empty")), 0);
	assert_int_equal(stat(P("rn/empty"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* rename onto itself (same inode) is a no-op */
	assert_int_equal(link(P("rn/d2/a2"), P("rn/d2/hl")), 0);
	assert_int_equal(rename(P("rn/d2/a2"), P("rn/d2/hl")), 0);
	assert_int_equal(stat(P("rn/d2/a2"), &st), 0);
	assert_int_equal(st.st_nlink, 2);
}

static void test_rename2(void **state)
{
	struct stat a, b, st;

	assert_int_equal(mkdir(P("r2"), 0755), 0);
	write_file(P("r2/a"), "a", 1);
	write_file(P("r2/b"), "b", 1);
	assert_int_equal(mkdir(P("r2/dir"), 0755), 0);
	assert_int_equal(stat(P("r2/a"), &a), 0);
	assert_int_equal(stat(P("r2/b"), &b), 0);
	/* NOREPLACE onto an existing name: EEXIST, nothing moves */
	assert_errno(renameat2(AT_FDCWD, P("r2/a"), AT_FDCWD, P("r2/b"),
			       RENAME_NOREPLACE), EEXIST);
	assert_int_equal(stat(P("r2/a"), &st), 0);
	assert_int_equal(st.st_ino, a.st_ino);
	/* NOREPLACE onto a free name works */
	assert_int_equal(renameat2(AT_FDCWD, P("r2/a"), AT_FDCWD, P("r2/c"),
				   RENAME_NOREPLACE), 0);
	/* EXCHANGE swaps, even a file with a directory */
	assert_int_equal(renameat2(AT_FDCWD, P("r2/c"), AT_FDCWD, P("r2/b"),
				   RENAME_EXCHANGE), 0);
	assert_int_equal(stat(P("r2/b"), &st), 0);
	assert_int_equal(st.st_ino, a.st_ino);
	assert_int_equal(stat(P("r2/c"), &st), 0);
	assert_int_equal(st.st_ino, b.st_ino);
	assert_int_equal(renameat2(AT_FDCWD, P("r2/c"), AT_FDCWD, P("r2/dir"),
				   RENAME_EXCHANGE), 0);
	assert_int_equal(stat(P("r2/c"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(stat(P("r2/dir"), &st), 0);
	assert_int_equal(st.st_ino, b.st_ino);
	/* EXCHANGE with a missing target: ENOENT; both flags: EINVAL */
	assert_errno(renameat2(AT_FDCWD, P("r2/b"), AT_FDCWD, P("r2/none"),
			       RENAME_EXCHANGE), ENOENT);
	assert_errno(renameat2(AT_FDCWD, P("r2/b"), AT_FDCWD, P("r2/c"),
			       RENAME_EXCHANGE | RENAME_NOREPLACE), EINVAL);
}

static void test_hardlinks(void **state)
{
	struct stat st, st2;
	char buf[64];

	assert_int_equal(mkdir(P("hl"), 0755), 0);
	assert_int_equal(mkdir(P("hl/other"), 0755), 0);
	write_file(P("hl/f"), "hard link data", 14);
	assert_int_equal(link(P("hl/f"), P("hl/other/g")), 0);
	assert_int_equal(stat(P("hl/f"), &st), 0);
	assert_int_equal(stat(P("hl/other/g"), &st2), 0);
	assert_int_equal(st.st_ino, st2.st_ino);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(unlink(P("hl/f")), 0);
	assert_int_equal(stat(P("hl/other/g"), &st2), 0);
	assert_int_equal(st2.st_nlink, 1);
	assert_int_equal(read_file(P("hl/other/g"), buf, sizeof(buf)), 14);
	assert_memory_equal(buf, "hard link data", 14);
	/* a link made and the original renamed away survive a remount */
	assert_int_equal(link(P("hl/other/g"), P("hl/again")), 0);
	remount();
	assert_int_equal(stat(P("hl/again"), &st), 0);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(st.st_ino, st2.st_ino);
	assert_int_equal(read_file(P("hl/again"), buf, sizeof(buf)), 14);
}

static void test_symlinks(void **state)
{
	char target[4097], buf[4200];
	struct stat st;
	ssize_t n;

	assert_int_equal(mkdir(P("sl"), 0755), 0);
	write_file(P("sl/real"), "real", 4);
	assert_int_equal(symlink("real", P("sl/ln")), 0);
	assert_int_equal(lstat(P("sl/ln"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(st.st_size, 4);
	n = readlink(P("sl/ln"), buf, sizeof(buf));
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "real", 4);
	assert_int_equal(stat(P("sl/ln"), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(read_file(P("sl/ln"), buf, sizeof(buf)), 4);
	/* dangling is fine; a loop is ELOOP */
	assert_int_equal(symlink("nowhere", P("sl/dangling")), 0);
	assert_errno(stat(P("sl/dangling"), &st), ENOENT);
	assert_int_equal(symlink("loop2", P("sl/loop1")), 0);
	assert_int_equal(symlink("loop1", P("sl/loop2")), 0);
	assert_errno(stat(P("sl/loop1"), &st), ELOOP);
	/* the longest target, 4095 bytes; 4096 is ENAMETOOLONG */
	memset(target, 'x', 4095);
	target[4095] = '\0';
	assert_int_equal(symlink(target, P("sl/long")), 0);
	n = readlink(P("sl/long"), buf, sizeof(buf));
	assert_int_equal(n, 4095);
	assert_memory_equal(buf, target, 4095);
	target[4095] = 'x';
	target[4096] = '\0';
	assert_errno(symlink(target, P("sl/toolong")), ENAMETOOLONG);
	/* readlink of a non-link: EINVAL */
	assert_errno(readlink(P("sl/real"), buf, sizeof(buf)), EINVAL);
	remount();
	n = readlink(P("sl/long"), buf, sizeof(buf));
	assert_int_equal(n, 4095);
	n = readlink(P("sl/ln"), buf, sizeof(buf));
	assert_int_equal(n, 4);
}

static void test_read_write(void **state)
{
	const size_t len = 3 * MiB + 123;
	uint8_t *a = malloc(len), *b = malloc(len);
	struct stat st;
	char small[32];
	int fd;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(mkdir(P("rw"), 0755), 0);
	fill_pattern(a, len, 1);
	write_file(P("rw/big"), a, len);
	assert_int_equal(stat(P("rw/big"), &st), 0);
	assert_int_equal(st.st_size, len);
	assert_true(st.st_blocks >= (blkcnt_t)(len / 512));
	memset(b, 0, len);
	assert_int_equal(read_file(P("rw/big"), b, len), len);
	assert_memory_equal(a, b, len);

	/* pwrite in the middle, across a block boundary, then pread */
	fd = open(P("rw/big"), O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "MIDDLE", 6, 4093), 6);
	memcpy(a + 4093, "MIDDLE", 6);
	assert_int_equal(pread(fd, small, 10, 4090), 10);
	assert_memory_equal(small, a + 4090, 10);
	/* a read past the end is short, at the end empty */
	assert_int_equal(pread(fd, small, 32, (off_t)len - 5), 5);
	assert_int_equal(pread(fd, small, 32, (off_t)len), 0);
	/* extend with a gap: zeros in between */
	assert_int_equal(pwrite(fd, "END", 3, (off_t)len + 10000), 3);
	assert_int_equal(pread(fd, small, 16, (off_t)len), 16);
	assert_memory_equal(small, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	/* truncate down, then up: the tail reads back as zeros */
	assert_int_equal(ftruncate(fd, 5000), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 5000);
	assert_int_equal(ftruncate(fd, 9000), 0);
	assert_int_equal(pread(fd, b, 9000, 0), 9000);
	assert_memory_equal(b, a, 5000);
	memset(a + 5000, 0, 4000);
	assert_memory_equal(b + 5000, a + 5000, 4000);
	assert_int_equal(close(fd), 0);

	/* O_APPEND writes go to the end */
	write_file(P("rw/app"), "abc", 3);
	fd = open(P("rw/app"), O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(write(fd, "def", 3), 3);
	assert_int_equal(close(fd), 0);
	assert_int_equal(read_file(P("rw/app"), small, sizeof(small)), 6);
	assert_memory_equal(small, "abcdef", 6);

	/* O_WRONLY partial-page overwrite keeps the rest of the page */
	fd = open(P("rw/app"), O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 2), 1);
	assert_int_equal(close(fd), 0);
	assert_int_equal(read_file(P("rw/app"), small, sizeof(small)), 6);
	assert_memory_equal(small, "abXdef", 6);

	/* O_TRUNC empties */
	fd = open(P("rw/app"), O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(close(fd), 0);
	assert_int_equal(stat(P("rw/app"), &st), 0);
	assert_int_equal(st.st_size, 0);

	/* all of it reached the image */
	remount();
	assert_int_equal(stat(P("rw/big"), &st), 0);
	assert_int_equal(st.st_size, 9000);
	assert_int_equal(read_file(P("rw/big"), b, len), 9000);
	assert_memory_equal(b, a, 9000);
	free(a);
	free(b);
}

static void test_xattrs(void **state)
{
	char buf[256], big[70000];
	ssize_t n;

	assert_int_equal(mkdir(P("xa"), 0755), 0);
	write_file(P("xa/f"), "x", 1);
	assert_int_equal(setxattr(P("xa/f"), "user.one", "1", 1, 0), 0);
	assert_int_equal(setxattr(P("xa/f"), "user.two", "22", 2, 0), 0);
	assert_int_equal(setxattr(P("xa/f"), "user.empty", "", 0, 0), 0);
	/* size query, then the value */
	assert_int_equal(getxattr(P("xa/f"), "user.two", NULL, 0), 2);
	n = getxattr(P("xa/f"), "user.two", buf, sizeof(buf));
	assert_int_equal(n, 2);
	assert_memory_equal(buf, "22", 2);
	assert_int_equal(getxattr(P("xa/f"), "user.empty", buf, sizeof(buf)), 0);
	assert_errno(getxattr(P("xa/f"), "user.two", buf, 1), ERANGE);
	assert_errno(getxattr(P("xa/f"), "user.none", buf, sizeof(buf)),
		     ENODATA);
	/* flags */
	assert_errno(setxattr(P("xa/f"), "user.one", "x", 1, XATTR_CREATE),
		     EEXIST);
	assert_errno(setxattr(P("xa/f"), "user.none", "x", 1, XATTR_REPLACE),
		     ENODATA);
	assert_int_equal(setxattr(P("xa/f"), "user.one", "111", 3,
				  XATTR_REPLACE), 0);
	/* list: NUL-separated names, any order */
	n = listxattr(P("xa/f"), NULL, 0);
	assert_int_equal(n, sizeof("user.one") + sizeof("user.two") +
			 sizeof("user.empty"));
	n = listxattr(P("xa/f"), buf, sizeof(buf));
	assert_int_equal(n, sizeof("user.one") + sizeof("user.two") +
			 sizeof("user.empty"));
	assert_non_null(memmem(buf, (size_t)n, "user.one", 9));
	assert_non_null(memmem(buf, (size_t)n, "user.two", 9));
	assert_errno(listxattr(P("xa/f"), buf, 3), ERANGE);
	/* remove */
	assert_int_equal(removexattr(P("xa/f"), "user.two"), 0);
	assert_errno(removexattr(P("xa/f"), "user.two"), ENODATA);
	/* a big value (64 KiB is the limit) */
	fill_pattern(big, 65536, 7);
	assert_int_equal(setxattr(P("xa/f"), "user.big", big, 65536, 0), 0);
	/* on a directory and on a symlink itself */
	assert_int_equal(setxattr(P("xa"), "user.dir", "d", 1, 0), 0);
	assert_int_equal(symlink("f", P("xa/ln")), 0);
	assert_errno(lsetxattr(P("xa/ln"), "user.l", "l", 1, 0), EPERM);
	/* unknown namespace */
	assert_errno(setxattr(P("xa/f"), "bogus.x", "x", 1, 0), EOPNOTSUPP);
	remount();
	n = getxattr(P("xa/f"), "user.one", buf, sizeof(buf));
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "111", 3);
	memset(buf, 0, sizeof(buf));
	n = getxattr(P("xa/f"), "user.big", big + 65536, 0);
	assert_int_equal(n, 65536);
	{
		char *v = malloc(65536);

		assert_non_null(v);
		assert_int_equal(getxattr(P("xa/f"), "user.big", v, 65536),
				 65536);
		assert_memory_equal(v, big, 65536);
		free(v);
	}
	assert_int_equal(getxattr(P("xa"), "user.dir", buf, sizeof(buf)), 1);
}

static void test_fallocate(void **state)
{
	char buf[8192], zero[8192];
	struct stat st;
	int fd;

	memset(zero, 0, sizeof(zero));
	assert_int_equal(mkdir(P("fa"), 0755), 0);
	fd = open(P("fa/f"), O_CREAT | O_RDWR, 0644);
	assert_true(fd >= 0);
	/* mode 0 extends the size and allocates */
	assert_int_equal(fallocate(fd, 0, 0, 1 * MiB), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 1 * MiB);
	assert_true(st.st_blocks >= (blkcnt_t)(1 * MiB / 512));
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), sizeof(buf));
	assert_memory_equal(buf, zero, sizeof(buf));
	/* KEEP_SIZE allocates past the end without changing the size */
	assert_int_equal(fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 * MiB, 1 * MiB), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 1 * MiB);
	assert_true(st.st_blocks >= (blkcnt_t)(2 * MiB / 512));
	/* PUNCH_HOLE: zeros, and the blocks go */
	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 64 * KiB), sizeof(buf));
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	{
		blkcnt_t before = st.st_blocks;

		assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE |
					   FALLOC_FL_KEEP_SIZE, 0, 512 * KiB), 0);
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal(st.st_blocks, before - 512 * KiB / 512);
	}
	assert_int_equal(pread(fd, buf, sizeof(buf), 64 * KiB), sizeof(buf));
	assert_memory_equal(buf, zero, sizeof(buf));
	/* PUNCH_HOLE without KEEP_SIZE is EOPNOTSUPP (as for ext4) */
	assert_errno(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096), EOPNOTSUPP);
	/* ZERO_RANGE */
	memset(buf, 0xcd, sizeof(buf));
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 600 * KiB), sizeof(buf));
	assert_int_equal(fallocate(fd, FALLOC_FL_ZERO_RANGE, 600 * KiB + 100,
				   5000), 0);
	assert_int_equal(pread(fd, buf, sizeof(buf), 600 * KiB), sizeof(buf));
	assert_int_equal((uint8_t)buf[99], 0xcd);
	assert_memory_equal(buf + 100, zero, 5000);
	assert_int_equal((uint8_t)buf[5100], 0xcd);
	/* ZERO_RANGE past the end extends the size (no KEEP_SIZE) */
	assert_int_equal(fallocate(fd, FALLOC_FL_ZERO_RANGE, 1 * MiB, 4096), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 1 * MiB + 4096);
	/* modes the kernel does not forward or we do not do */
	assert_errno(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 64 * KiB),
		     EOPNOTSUPP);
	assert_errno(fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, 64 * KiB),
		     EOPNOTSUPP);
	assert_int_equal(close(fd), 0);
}

static void test_seek_data_hole(void **state)
{
	char buf[4096];
	int fd;

	memset(buf, 'd', sizeof(buf));
	assert_int_equal(mkdir(P("sk"), 0755), 0);
	fd = open(P("sk/f"), O_CREAT | O_RDWR, 0644);
	assert_true(fd >= 0);
	/* data [0, 4K), hole [4K, 1M), data [1M, 1M+4K), hole to 2M */
	assert_int_equal(pwrite(fd, buf, 4096, 0), 4096);
	assert_int_equal(pwrite(fd, buf, 4096, 1 * MiB), 4096);
	assert_int_equal(ftruncate(fd, 2 * MiB), 0);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(lseek(fd, 0, SEEK_DATA), 0);
	assert_int_equal(lseek(fd, 0, SEEK_HOLE), 4096);
	assert_int_equal(lseek(fd, 4096, SEEK_DATA), 1 * MiB);
	assert_int_equal(lseek(fd, 1 * MiB + 10, SEEK_DATA), 1 * MiB + 10);
	assert_int_equal(lseek(fd, 1 * MiB, SEEK_HOLE), 1 * MiB + 4096);
	/* the virtual hole at the end of the file */
	assert_int_equal(lseek(fd, 1 * MiB + 4096, SEEK_HOLE), 1 * MiB + 4096);
	assert_errno(lseek(fd, 1 * MiB + 4096, SEEK_DATA), ENXIO);
	assert_errno(lseek(fd, 2 * MiB, SEEK_DATA), ENXIO);
	assert_errno(lseek(fd, 2 * MiB, SEEK_HOLE), ENXIO);
	/* ordinary seeks still work (the kernel's) */
	assert_int_equal(lseek(fd, 10, SEEK_SET), 10);
	assert_int_equal(lseek(fd, 0, SEEK_END), 2 * MiB);
	assert_int_equal(close(fd), 0);
}

#define BIG_DIR_N 100000

static void test_big_directory(void **state)
{
	struct stat st;
	int i, n;

	assert_int_equal(mkdir(P("bd"), 0755), 0);
	for (i = 0; i < BIG_DIR_N; i++) {
		if (mknod(P("bd/entry-%06d", i), S_IFREG | 0644, 0) != 0)
			fail_msg("mknod entry-%06d: %s", i, strerror(errno));
	}
	assert_int_equal(count_entries(P("bd")), BIG_DIR_N + 2);
	for (i = 0; i < BIG_DIR_N; i += 997) {
		assert_int_equal(stat(P("bd/entry-%06d", i), &st), 0);
		assert_true(S_ISREG(st.st_mode));
	}
	assert_errno(stat(P("bd/entry-%06d", BIG_DIR_N), &st), ENOENT);
	/* every name exactly once, after a remount (no kernel cache) */
	remount();
	{
		DIR *d = opendir(P("bd"));
		struct dirent *de;
		unsigned char *seen = calloc(BIG_DIR_N, 1);

		assert_non_null(d);
		assert_non_null(seen);
		n = 0;
		while ((de = readdir(d))) {
			int k;

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			assert_int_equal(sscanf(de->d_name, "entry-%d", &k), 1);
			assert_true(k >= 0 && k < BIG_DIR_N);
			assert_int_equal(seen[k], 0);
			seen[k] = 1;
			assert_int_equal(de->d_type, DT_REG);
			n++;
		}
		closedir(d);
		free(seen);
		assert_int_equal(n, BIG_DIR_N);
	}
	for (i = 0; i < BIG_DIR_N; i++) {
		if (unlink(P("bd/entry-%06d", i)) != 0)
			fail_msg("unlink entry-%06d: %s", i, strerror(errno));
	}
	assert_int_equal(count_entries(P("bd")), 2);
	assert_int_equal(rmdir(P("bd")), 0);
}

static void test_sparse_large(void **state)
{
	const off_t at = 5 * (off_t)GiB;
	struct stat st;
	char buf[16];
	int fd;

	assert_int_equal(mkdir(P("sp"), 0755), 0);
	fd = open(P("sp/f"), O_CREAT | O_RDWR, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "hello", 5, at), 5);
	assert_int_equal(pwrite(fd, "start", 5, 0), 5);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, at + 5);
	assert_true(st.st_blocks <= 64); /* two blocks, not 5 GiB */
	assert_int_equal(pread(fd, buf, 5, at), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(pread(fd, buf, 8, 3 * (off_t)GiB), 8);
	assert_memory_equal(buf, "\0\0\0\0\0\0\0\0", 8);
	assert_int_equal(lseek(fd, 4096, SEEK_DATA), at & ~(off_t)4095);
	assert_int_equal(close(fd), 0);
	remount();
	assert_int_equal(stat(P("sp/f"), &st), 0);
	assert_int_equal(st.st_size, at + 5);
	fd = open(P("sp/f"), O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, 5, at), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(close(fd), 0);
	assert_int_equal(unlink(P("sp/f")), 0);
}

static void test_unlinked_open(void **state)
{
	struct statvfs before, during, after;
	const size_t len = 8 * MiB;
	char *a = malloc(len), *b = malloc(len);
	struct stat st;
	int fd, i;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(mkdir(P("uo"), 0755), 0);
	fill_pattern(a, len, 3);
	assert_int_equal(statvfs(M.mnt, &before), 0);
	fd = open(P("uo/f"), O_CREAT | O_RDWR, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, a, len / 2), (ssize_t)(len / 2));
	assert_int_equal(unlink(P("uo/f")), 0);
	assert_errno(stat(P("uo/f"), &st), ENOENT);
	assert_int_equal(count_entries(P("uo")), 2);
	/* still usable: write more, fsync (commits with the orphan), read */
	assert_int_equal(write(fd, a + len / 2, len / 2), (ssize_t)(len / 2));
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_nlink, 0);
	assert_int_equal(st.st_size, len);
	assert_int_equal(pread(fd, b, len, 0), (ssize_t)len);
	assert_memory_equal(a, b, len);
	assert_int_equal(statvfs(M.mnt, &during), 0);
	assert_true(during.f_bfree <= before.f_bfree - len / 4096);
	assert_int_equal(close(fd), 0);
	/* the space comes back once the kernel forgets the inode; the
	 * forget may lag the close a little */
	for (i = 0; i < 100; i++) {
		assert_int_equal(statvfs(M.mnt, &after), 0);
		if (after.f_bfree >= before.f_bfree - 16)
			break;
		/* drop the kernel's dentries and inodes */
		{
			int dc = open("/proc/sys/vm/drop_caches", O_WRONLY);

			if (dc >= 0) {
				(void)!write(dc, "2", 1);
				close(dc);
			}
		}
		usleep(20000);
	}
	assert_true(after.f_bfree >= before.f_bfree - 16);
	free(a);
	free(b);
}

struct writer {
	int id;
	size_t len;
	int err;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	const size_t chunk = 64 * KiB;
	char *buf = malloc(w->len), *back = malloc(w->len);
	size_t off;
	int fd;

	if (!buf || !back) {
		w->err = ENOMEM;
		goto out;
	}
	fill_pattern(buf, w->len, 100 + (unsigned)w->id);
	fd = open(P("cw/file-%d", w->id), O_CREAT | O_RDWR | O_TRUNC, 0644);
	if (fd < 0) {
		w->err = errno;
		goto out;
	}
	for (off = 0; off < w->len; off += chunk) {
		if (pwrite(fd, buf + off, chunk, (off_t)off) != (ssize_t)chunk) {
			w->err = errno ? errno : EIO;
			break;
		}
		if (off % (1 * MiB) == 0 && fdatasync(fd) != 0) {
			w->err = errno;
			break;
		}
	}
	if (!w->err && (pread(fd, back, w->len, 0) != (ssize_t)w->len ||
			memcmp(buf, back, w->len) != 0))
		w->err = EILSEQ;
	close(fd);
out:
	free(buf);
	free(back);
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	enum { N = 8 };
	struct writer w[N];
	pthread_t t[N];
	char *buf, *back;
	int i;

	assert_int_equal(mkdir(P("cw"), 0755), 0);
	for (i = 0; i < N; i++) {
		w[i] = (struct writer){ .id = i, .len = 8 * MiB };
		assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]),
				 0);
	}
	for (i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		if (w[i].err)
			fail_msg("writer %d: %s", i, strerror(w[i].err));
	}
	remount();
	buf = malloc(8 * MiB);
	back = malloc(8 * MiB);
	assert_non_null(buf);
	assert_non_null(back);
	for (i = 0; i < N; i++) {
		fill_pattern(buf, 8 * MiB, 100 + (unsigned)i);
		assert_int_equal(read_file(P("cw/file-%d", i), back, 8 * MiB),
				 8 * MiB);
		assert_memory_equal(buf, back, 8 * MiB);
	}
	free(buf);
	free(back);
}

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_hits;

static void on_bus(int sig)
{
	bus_hits++;
	siglongjmp(bus_jmp, 1);
}

/* Touch *p; true if that raised SIGBUS. */
static bool touch_bus(volatile char *p)
{
	struct sigaction sa = { .sa_handler = on_bus }, old;
	bool hit;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	bus_hits = 0;
	if (sigsetjmp(bus_jmp, 1) == 0)
		(void)*p;
	hit = bus_hits > 0;
	sigaction(SIGBUS, &old, NULL);
	return hit;
}

static void test_mmap(void **state)
{
	const size_t len = 1 * MiB;
	char *a = malloc(len), *b = malloc(len);
	char *m;
	struct stat st;
	int fd;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(mkdir(P("mm"), 0755), 0);
	fill_pattern(a, len, 11);

	/* MAP_SHARED writes, msync, fsync, unmount, mount, compare */
	fd = open(P("mm/f"), O_CREAT | O_RDWR, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(m != MAP_FAILED);
	memcpy(m, a, len);
	assert_int_equal(msync(m, len, MS_SYNC), 0);
	assert_int_equal(fsync(fd), 0);
	/* read(2) sees what the mapping wrote */
	assert_int_equal(pread(fd, b, len, 0), (ssize_t)len);
	assert_memory_equal(a, b, len);
	assert_int_equal(munmap(m, len), 0);
	assert_int_equal(close(fd), 0);
	remount();
	assert_int_equal(read_file(P("mm/f"), b, len), len);
	assert_memory_equal(a, b, len);

	/* a write(2) shows in an existing mapping */
	fd = open(P("mm/f"), O_RDWR);
	assert_true(fd >= 0);
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(pwrite(fd, "WRITTEN", 7, 8192), 7);
	assert_memory_equal(m + 8192, "WRITTEN", 7);
	assert_int_equal(munmap(m, len), 0);

	/* pages past the end of the file: SIGBUS */
	assert_int_equal(ftruncate(fd, 4096), 0);
	m = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(m != MAP_FAILED);
	assert_false(touch_bus(m + 100));
	assert_true(touch_bus(m + 2 * 4096));

	/* truncating a mapped file: pages beyond the new end fault, the
	 * rest keeps its data; growing again reads zeros */
	assert_int_equal(ftruncate(fd, 4 * 4096), 0);
	memset(m + 3 * 4096, 'z', 4096);
	assert_int_equal(msync(m, 4 * 4096, MS_SYNC), 0);
	assert_int_equal(ftruncate(fd, 4096 + 10), 0);
	assert_true(touch_bus(m + 3 * 4096));
	assert_memory_equal(m, a, 4096);
	assert_int_equal(m[4096 + 10], 0); /* the tail of the last page */
	assert_int_equal(ftruncate(fd, 4 * 4096), 0);
	assert_false(touch_bus(m + 3 * 4096));
	assert_int_equal(m[3 * 4096], 0);
	assert_int_equal(munmap(m, 4 * 4096), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 4 * 4096);
	assert_int_equal(close(fd), 0);

	/* MAP_PRIVATE writes stay private */
	fd = open(P("mm/f"), O_RDONLY);
	assert_true(fd >= 0);
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	assert_true(m != MAP_FAILED);
	m[0] = 'P';
	assert_int_equal(munmap(m, 4096), 0);
	assert_int_equal(pread(fd, b, 1, 0), 1);
	assert_int_equal(b[0], a[0]);
	assert_int_equal(close(fd), 0);
	free(a);
	free(b);
}

/* Run fn in a child with uid/gid 65534 (nobody); returns its exit code. */
static int as_nobody(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(99);
		_exit(fn(arg));
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static int write_fd(void *arg)
{
	int fd = *(int *)arg;

	return pwrite(fd, "w", 1, 0) == 1 ? 0 : errno;
}

static int open_rw(void *arg)
{
	int fd = open(arg, O_RDWR);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno;
}

static int truncate_fd(void *arg)
{
	return ftruncate(*(int *)arg, 0) == 0 ? 0 : errno;
}

static void test_setuid_and_permissions(void **state)
{
	struct stat st;
	int fd;

	assert_int_equal(mkdir(P("su"), 0755), 0);
	write_file(P("su/prog"), "#!", 2);
	assert_int_equal(chmod(P("su/prog"), 06777), 0);
	assert_int_equal(stat(P("su/prog"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 06777);
	/* root (CAP_FSETID) writes: the bits stay */
	fd = open(P("su/prog"), O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "r", 1, 0), 1);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 06777);
	/* another user writes through the same open file: both go, as on
	 * ext4 (setgid because the group may execute) */
	assert_int_equal(as_nobody(write_fd, &fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0777);
	/* ... also by truncate */
	assert_int_equal(fchmod(fd, 04777), 0);
	assert_int_equal(as_nobody(truncate_fd, &fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0777);
	assert_int_equal(close(fd), 0);
	/* chown drops setuid even for root */
	assert_int_equal(chmod(P("su/prog"), 04755), 0);
	assert_int_equal(chown(P("su/prog"), 1, 1), 0);
	assert_int_equal(stat(P("su/prog"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(st.st_uid, 1);
	assert_int_equal(st.st_gid, 1);
	/* default_permissions: the kernel checks modes */
	write_file(P("su/private"), "p", 1);
	assert_int_equal(chmod(P("su/private"), 0600), 0);
	assert_int_equal(as_nobody(open_rw, (void *)P("su/private")), EACCES);
	assert_int_equal(chmod(P("su/private"), 0666), 0);
	assert_int_equal(as_nobody(open_rw, (void *)P("su/private")), 0);
	/* remount: the mode that reached the image is the cleared one */
	remount();
	assert_int_equal(stat(P("su/prog"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
}

/* ---- killing privileges, against the kernel's own filesystem --------- */

/*
 * Every way a file's setuid/setgid bits and file capabilities get killed
 * (write, append, truncate, O_TRUNC, fallocate, copy_file_range, chown,
 * chown and fchown to -1, -1, chown to the same owner, chgrp), by root
 * (CAP_FSETID), by root without CAP_FSETID, by nobody and by the file's
 * owner (not root, also in group 100), in and outside the file's group,
 * with and without group-execute and security.capability: done on the
 * mount and on a directory of the filesystem the tests run on (ext4 or
 * tmpfs: the kernel's own rules, which ext4 follows), and compared. With
 * handle_killpriv_v2 the daemon applies these rules itself from the
 * kernel's flags and the caller's capabilities; without it the kernel
 * sends the new mode.
 */
enum kp_op {
	KP_PWRITE, KP_APPEND, KP_TRUNCATE, KP_FTRUNCATE, KP_OTRUNC,
	KP_OTRUNC_WRITE, KP_FALLOC, KP_CFR, KP_CHOWN, KP_CHOWN_NONE,
	KP_FCHOWN_NONE, KP_CHOWN_SAME, KP_CHGRP, KP_NOPS
};
static const char *const kp_op_names[KP_NOPS] = {
	"pwrite", "append", "truncate", "ftruncate", "otrunc",
	"otrunc-write", "fallocate", "copy_file_range", "chown",
	"chown-none", "fchown-none", "chown-same", "chgrp",
};
enum kp_who { KP_ROOT, KP_NOBODY, KP_NOFSETID, KP_OWNER, KP_NWHO };
static const char *const kp_who_names[KP_NWHO] = {
	"root", "nobody", "root-nofsetid", "owner",
};
static const unsigned kp_modes[] = { 06777, 06767, 02767, 02777, 00777 };
static const uint32_t kp_gids[] = { 0, 65534 };
#define KP_NMODES (sizeof(kp_modes) / sizeof(kp_modes[0]))
#define KP_NGIDS (sizeof(kp_gids) / sizeof(kp_gids[0]))
/* The group KP_CHGRP moves a file to; KP_OWNER is in it. */
#define KP_NEW_GID 100

/* security.capability as setcap writes it: VFS_CAP_REVISION_2 with the
 * effective flag, permitted CAP_NET_BIND_SERVICE (little-endian). */
static const unsigned char kp_cap[20] = { 0x01, 0x00, 0x00, 0x02,
					  0x00, 0x04, 0x00, 0x00 };

struct kp_result {
	int rc;                 /* the child's errno, 0 */
	unsigned mode;
	off_t size;
	bool cap;
};

static int kp_do(enum kp_op op, const char *path, const char *src)
{
	off_t zero = 0;
	int fd = -1, sfd, rc = 0;
	struct stat st;

	switch (op) {
	case KP_TRUNCATE:
		return truncate(path, 3) == 0 ? 0 : errno;
	case KP_CHOWN:
		return chown(path, 1, (gid_t)-1) == 0 ? 0 : errno;
	case KP_CHOWN_NONE:
		return chown(path, (uid_t)-1, (gid_t)-1) == 0 ? 0 : errno;
	case KP_CHOWN_SAME:
		if (stat(path, &st) != 0)
			return errno;
		return chown(path, st.st_uid, st.st_gid) == 0 ? 0 : errno;
	case KP_CHGRP:
		return chown(path, (uid_t)-1, KP_NEW_GID) == 0 ? 0 : errno;
	case KP_FCHOWN_NONE:
		fd = open(path, O_RDONLY);
		break;
	case KP_APPEND:
		fd = open(path, O_WRONLY | O_APPEND);
		break;
	case KP_OTRUNC:
	case KP_OTRUNC_WRITE:
		fd = open(path, O_WRONLY | O_TRUNC);
		break;
	default:
		fd = open(path, O_WRONLY);
		break;
	}
	if (fd < 0)
		return errno;
	switch (op) {
	case KP_PWRITE:
		rc = pwrite(fd, "w", 1, 0) == 1 ? 0 : errno;
		break;
	case KP_APPEND:
	case KP_OTRUNC_WRITE:
		rc = write(fd, "ww", 2) == 2 ? 0 : errno;
		break;
	case KP_FTRUNCATE:
		rc = ftruncate(fd, 3) == 0 ? 0 : errno;
		break;
	case KP_FALLOC:
		rc = posix_fallocate(fd, 0, 8192);
		break;
	case KP_CFR:
		sfd = open(src, O_RDONLY);
		if (sfd < 0) {
			rc = errno;
			break;
		}
		rc = copy_file_range(sfd, &zero, fd, NULL, 2, 0) == 2 ? 0
								     : errno;
		close(sfd);
		break;
	case KP_FCHOWN_NONE:
		rc = fchown(fd, (uid_t)-1, (gid_t)-1) == 0 ? 0 : errno;
		break;
	default:
		break;
	}
	if (close(fd) != 0 && rc == 0)
		rc = errno;
	return rc;
}

/* Give up CAP_FSETID (effective and permitted), as `capsh --drop=
 * cap_fsetid` would for a root shell. */
static int kp_drop_fsetid(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct c[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &h, c) != 0)
		return -1;
	c[CAP_TO_INDEX(CAP_FSETID)].effective &= ~CAP_TO_MASK(CAP_FSETID);
	c[CAP_TO_INDEX(CAP_FSETID)].permitted &= ~CAP_TO_MASK(CAP_FSETID);
	return (int)syscall(SYS_capset, &h, c);
}

/* Run every op, op on path[op], as who, in one child (a fork per case
 * would take most of the time): nobody and the owner are uid/gid 65534,
 * the owner also in group KP_NEW_GID. rc[op]: the errno of each, or 0. */
static void kp_run(enum kp_who who, char (*path)[PATH_MAX], const char *src,
		   int *rc)
{
	const gid_t owner_groups[] = { KP_NEW_GID };
	int *res = mmap(NULL, KP_NOPS * sizeof(int), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pid;
	int status;
	unsigned op;

	assert_true(res != MAP_FAILED);
	pid = fork();
	if (pid == 0) {
		if (who == KP_NOFSETID && kp_drop_fsetid() != 0)
			_exit(98);
		if ((who == KP_NOBODY || who == KP_OWNER) &&
		    (setgroups(who == KP_OWNER, owner_groups) != 0 ||
		     setresgid(65534, 65534, 65534) != 0 ||
		     setresuid(65534, 65534, 65534) != 0))
			_exit(99);
		for (op = 0; op < KP_NOPS; op++)
			res[op] = kp_do(op, path[op], src);
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	memcpy(rc, res, KP_NOPS * sizeof(int));
	munmap(res, KP_NOPS * sizeof(int));
}

static void kp_state(const char *path, struct kp_result *r)
{
	struct stat st;
	char v[64];

	assert_int_equal(stat(path, &st), 0);
	r->mode = st.st_mode & 07777;
	r->size = st.st_size;
	r->cap = getxattr(path, "security.capability", v, sizeof(v)) > 0;
}

static void kp_prepare(const char *path, unsigned mode, uint32_t uid,
		       uint32_t gid, bool cap)
{
	write_file(path, "abcdef", 6);
	/* chown first: it would drop what chmod sets */
	assert_int_equal(chown(path, uid, gid), 0);
	assert_int_equal(chmod(path, mode), 0);
	if (cap)
		assert_int_equal(setxattr(path, "security.capability", kp_cap,
					  sizeof(kp_cap), 0), 0);
}

/* What of a case is compared: all but the differences the daemon cannot
 * see (docs/design.md, "Killing privileges"):
 * - chown(f, -1, -1) by a caller who may not change the file's mode, of a
 *   setuid/setgid file: EPERM as on ext4, but with security.capability
 *   gone: the kernel removed it (a REMOVEXATTR) before asking.
 * - Without the writeback cache chown(f, -1, -1) comes as an empty
 *   setattr, which is also what fallocate and copy_file_range send: the
 *   daemon applies their rule, which for a caller without CAP_FSETID is
 *   the same (root keeps the bits, nobody drops them without EPERM). */
static bool kp_none(enum kp_op op)
{
	return op == KP_CHOWN_NONE || op == KP_FCHOWN_NONE;
}

static bool kp_wt_blind(enum kp_who who, enum kp_op op)
{
	return kp_none(op) && (who == KP_ROOT || who == KP_NOBODY);
}

static bool kp_same(const char *what, const struct kp_result *ref,
		    const struct kp_result *got, enum kp_who who,
		    enum kp_op op, bool wt)
{
	bool cap = !(kp_none(op) && ref->rc == EPERM);
	bool rc_mode = !(wt && kp_wt_blind(who, op));

	if ((!rc_mode || (ref->rc == got->rc && ref->mode == got->mode)) &&
	    ref->size == got->size && (!cap || ref->cap == got->cap))
		return true;
	fprintf(stderr, "%s: kernel fs: rc %d mode %04o size %lld cap %d; "
		"mmapfs: rc %d mode %04o size %lld cap %d\n", what, ref->rc,
		ref->mode, (long long)ref->size, ref->cap, got->rc, got->mode,
		(long long)got->size, got->cap);
	return false;
}

#define KP_CASES (KP_NMODES * KP_NGIDS * 2 * KP_NWHO * KP_NOPS)

/* Case number n of kp_compare. */
static unsigned kp_case(unsigned m, unsigned g, bool cap, enum kp_who who,
			enum kp_op op)
{
	return (((m * KP_NGIDS + g) * 2 + cap) * KP_NWHO + who) * KP_NOPS +
	       op;
}

/* All cases under directory dir of the mount (made here) and the same
 * under the test's own directory; restart with flag/opts to check what
 * reached the image. wt: the mount has no writeback cache. Returns the
 * number of differences. */
static unsigned kp_compare(const char *dir, const char *flag,
			   const char *opts, bool wt)
{
	static struct kp_result ref[KP_CASES];
	static char rp[KP_NOPS][PATH_MAX], mp[KP_NOPS][PATH_MAX];
	char rdir[256], what[256], rsrc[PATH_MAX], msrc[PATH_MAX];
	unsigned n = 0, bad = 0, m, g, c, who, op;
	int rrc[KP_NOPS], mrc[KP_NOPS];
	struct kp_result got;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	snprintf(rdir, sizeof(rdir), "%s/ref-%s", M.dir, dir);
	assert_int_equal(mkdir(rdir, 0755), 0);
	assert_int_equal(mkdir(P("%s", dir), 0755), 0);
	snprintf(rsrc, sizeof(rsrc), "%s/src", rdir);
	snprintf(msrc, sizeof(msrc), "%s", P("%s/src", dir));
	write_file(rsrc, "xyz", 3);
	write_file(msrc, "xyz", 3);
	for (m = 0; m < KP_NMODES; m++)
	for (g = 0; g < KP_NGIDS; g++)
	for (c = 0; c < 2; c++)
	for (who = 0; who < KP_NWHO; who++) {
		uint32_t uid = who == KP_OWNER ? 65534 : 0;

		for (op = 0; op < KP_NOPS; op++) {
			n = kp_case(m, g, c, who, op);
			snprintf(rp[op], PATH_MAX, "%s/%u", rdir, n);
			snprintf(mp[op], PATH_MAX, "%s", P("%s/%u", dir, n));
			kp_prepare(rp[op], kp_modes[m], uid, kp_gids[g], c);
			kp_prepare(mp[op], kp_modes[m], uid, kp_gids[g], c);
		}
		kp_run(who, rp, rsrc, rrc);
		kp_run(who, mp, msrc, mrc);
		for (op = 0; op < KP_NOPS; op++) {
			n = kp_case(m, g, c, who, op);
			snprintf(what, sizeof(what), "%s/%04o-gid%u%s-%s-%s",
				 dir, kp_modes[m], kp_gids[g], c ? "-cap" : "",
				 kp_who_names[who], kp_op_names[op]);
			ref[n].rc = rrc[op];
			kp_state(rp[op], &ref[n]);
			got.rc = mrc[op];
			kp_state(mp[op], &got);
			if (!kp_same(what, &ref[n], &got, who, op, wt))
				bad++;
		}
	}
	n = KP_CASES;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "%s: %u cases in %.2f s\n", dir, n,
		(double)(t1.tv_sec - t0.tv_sec) +
		(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	/* What reached the image. */
	assert_int_equal(stop_daemon(), 0);
	assert_int_equal(fsck_image(), 0);
	assert_int_equal(start_daemon_flag(opts, flag), 0);
	for (n = 0; n < KP_CASES; n++) {
		snprintf(what, sizeof(what), "%s/%u after remount", dir, n);
		kp_state(P("%s/%u", dir, n), &got);
		got.rc = ref[n].rc;
		if (!kp_same(what, &ref[n], &got, n / KP_NOPS % KP_NWHO,
			     n % KP_NOPS, wt))
			bad++;
	}
	return bad;
}

/* The kernel's rules for a few cases, so that the comparison cannot pass
 * on a reference filesystem that kills nothing. n as in kp_compare. wt:
 * leave out what kp_same does not compare without the writeback cache. */
static void kp_expect(const char *dir, bool wt)
{
	static const struct {
		unsigned mode; uint32_t gid; bool cap; enum kp_who who;
		enum kp_op op; unsigned want; bool want_cap;
	} e[] = {
		/* root (CAP_FSETID) keeps the bits, not the capability */
		{ 06777, 0, true, KP_ROOT, KP_PWRITE, 06777, false },
		{ 06777, 0, false, KP_ROOT, KP_OTRUNC, 06777, false },
		{ 06777, 0, true, KP_ROOT, KP_FALLOC, 06777, false },
		/* nobody: setuid goes, setgid if group-executable */
		{ 06777, 0, true, KP_NOBODY, KP_PWRITE, 0777, false },
		{ 06777, 0, false, KP_NOBODY, KP_APPEND, 0777, false },
		{ 06767, 65534, false, KP_NOBODY, KP_PWRITE, 02767, false },
		{ 06777, 0, false, KP_NOBODY, KP_TRUNCATE, 0777, false },
		{ 06777, 0, false, KP_NOBODY, KP_FTRUNCATE, 0777, false },
		{ 06777, 0, true, KP_NOBODY, KP_OTRUNC, 0777, false },
		{ 06777, 0, false, KP_NOBODY, KP_FALLOC, 0777, false },
		{ 00777, 0, true, KP_NOBODY, KP_PWRITE, 0777, false },
		/* root without CAP_FSETID is killed for like anyone */
		{ 06777, 0, true, KP_NOFSETID, KP_FALLOC, 0777, false },
		{ 06777, 0, false, KP_NOFSETID, KP_CFR, 0777, false },
		/* chown drops them even for root, even to nothing */
		{ 06777, 0, true, KP_ROOT, KP_CHOWN, 0777, false },
		{ 06777, 0, true, KP_ROOT, KP_CHOWN_NONE, 0777, false },
		{ 06767, 0, false, KP_ROOT, KP_FCHOWN_NONE, 02767, false },
		{ 06767, 0, false, KP_ROOT, KP_CHOWN_SAME, 02767, false },
		/* ... and setgid without group-execute, for a caller outside
		 * the old group, or outside the new one if the mode changed */
		{ 06767, 0, false, KP_OWNER, KP_CHGRP, 0767, false },
		{ 02767, 0, false, KP_OWNER, KP_CHOWN_NONE, 0767, false },
		{ 02767, 65534, false, KP_OWNER, KP_CHGRP, 02767, false },
		{ 06767, 0, false, KP_NOFSETID, KP_CHGRP, 0767, false },
		{ 02767, 0, false, KP_NOFSETID, KP_CHGRP, 02767, false },
		{ 06767, 0, false, KP_NOFSETID, KP_CHOWN_SAME, 02767, false },
	};
	size_t i;

	for (i = 0; i < sizeof(e) / sizeof(e[0]); i++) {
		unsigned m = 0, g = 0, n;
		struct kp_result r;

		if (wt && kp_wt_blind(e[i].who, e[i].op))
			continue;
		while (kp_modes[m] != e[i].mode)
			m++;
		while (kp_gids[g] != e[i].gid)
			g++;
		n = kp_case(m, g, e[i].cap, e[i].who, e[i].op);
		kp_state(P("%s/%u", dir, n), &r);
		if (r.mode != e[i].want || r.cap != e[i].want_cap)
			fprintf(stderr, "%s/%u: mode %04o cap %d, want %04o "
				"cap %d\n", dir, n, r.mode, r.cap, e[i].want,
				e[i].want_cap);
		assert_int_equal(r.mode, e[i].want);
		assert_int_equal(r.cap, e[i].want_cap);
	}
}

static void test_killpriv(void **state)
{
	assert_int_equal(kp_compare("kp", NULL, NULL, false), 0);
	kp_expect("kp", false);
}

/* The same with the multi-threaded loop (the flags of each request are
 * kept per thread), and with every write going through to the daemon
 * (each write by nobody then carries the flag). */
static void test_killpriv_variants(void **state)
{
	assert_int_equal(stop_daemon(), 0);
	assert_int_equal(start_daemon("allow_other,threads=4"), 0);
	assert_int_equal(kp_compare("kp-mt", NULL, "allow_other,threads=4",
				    false), 0);
	kp_expect("kp-mt", false);
	assert_int_equal(stop_daemon(), 0);
	assert_int_equal(start_daemon("allow_other,no_writeback_cache"), 0);
	assert_int_equal(kp_compare("kp-wt", NULL,
				    "allow_other,no_writeback_cache", true), 0);
	kp_expect("kp-wt", true);
	assert_int_equal(stop_daemon(), 0);
	assert_int_equal(start_daemon(NULL), 0);
}

/* Lines of the daemon's log that contain s. */
static unsigned log_count(const char *s)
{
	char line[4096];
	unsigned n = 0;
	FILE *f = fopen(M.log, "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, s))
			n++;
	fclose(f);
	return n;
}

/*
 * With handle_killpriv_v2 the kernel marks the superblock SB_NOSEC and
 * asks for "security.capability" once per inode, not before every write
 * (which cost a synchronous round trip each). Counted in the debug log
 * (-o debug prints every request).
 */
static void test_write_no_getxattr(void **state)
{
	static char buf[4096];
	unsigned before, i;
	int fd;

	assert_int_equal(stop_daemon(), 0);
	assert_int_equal(start_daemon("allow_other,debug"), 0);
	assert_int_equal(log_count("handle_killpriv_v2 on"), 1);
	fd = open(P("nogetxattr"), O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 0), sizeof(buf));
	before = log_count("opcode: GETXATTR");
	for (i = 0; i < 10000; i++)
		assert_int_equal(pwrite(fd, buf, sizeof(buf),
					(off_t)(i % 256) * 4096), sizeof(buf));
	assert_int_equal(close(fd), 0);
	assert_int_equal(log_count("opcode: GETXATTR"), before);
	assert_int_equal(stop_daemon(), 0);
	assert_int_equal(start_daemon(NULL), 0);
}

static void test_times(void **state)
{
	struct timespec ts[2] = { { 1000000000, 123456789 },
				  { 1100000000, 987654321 } };
	struct timespec now;
	struct stat st;

	assert_int_equal(mkdir(P("tm"), 0755), 0);
	write_file(P("tm/f"), "t", 1);
	assert_int_equal(utimensat(AT_FDCWD, P("tm/f"), ts, 0), 0);
	assert_int_equal(stat(P("tm/f"), &st), 0);
	assert_int_equal(st.st_atim.tv_sec, ts[0].tv_sec);
	assert_int_equal(st.st_atim.tv_nsec, ts[0].tv_nsec);
	assert_int_equal(st.st_mtim.tv_sec, ts[1].tv_sec);
	assert_int_equal(st.st_mtim.tv_nsec, ts[1].tv_nsec);
	remount();
	assert_int_equal(stat(P("tm/f"), &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, ts[1].tv_sec);
	assert_int_equal(st.st_mtim.tv_nsec, ts[1].tv_nsec);
	/* UTIME_NOW */
	clock_gettime(CLOCK_REALTIME, &now);
	assert_int_equal(utimensat(AT_FDCWD, P("tm/f"), NULL, 0), 0);
	assert_int_equal(stat(P("tm/f"), &st), 0);
	assert_true(st.st_mtim.tv_sec >= now.tv_sec - 1);
	assert_true(st.st_atim.tv_sec >= now.tv_sec - 1);
	/* a write moves mtime and ctime */
	ts[1].tv_sec = 1000;
	assert_int_equal(utimensat(AT_FDCWD, P("tm/f"), ts, 0), 0);
	write_file(P("tm/f"), "u", 1);
	assert_int_equal(stat(P("tm/f"), &st), 0);
	assert_true(st.st_mtim.tv_sec >= now.tv_sec - 1);
	assert_true(st.st_ctim.tv_sec >= now.tv_sec - 1);
}

static void test_copy_file_range(void **state)
{
	const size_t len = 2 * MiB;
	char *a = malloc(len), *b = malloc(len);
	loff_t in = 4096, out = 0;
	int fi, fo;
	ssize_t n;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(mkdir(P("cf"), 0755), 0);
	fill_pattern(a, len, 21);
	write_file(P("cf/src"), a, len);
	fi = open(P("cf/src"), O_RDONLY);
	fo = open(P("cf/dst"), O_CREAT | O_RDWR, 0644);
	assert_true(fi >= 0 && fo >= 0);
	n = copy_file_range(fi, &in, fo, &out, len - 4096, 0);
	assert_int_equal(n, (ssize_t)(len - 4096));
	assert_int_equal(pread(fo, b, len, 0), (ssize_t)(len - 4096));
	assert_memory_equal(a + 4096, b, len - 4096);
	close(fi);
	close(fo);
	free(a);
	free(b);
}

static void test_misc(void **state)
{
	unsigned flags;
	int fd;

	assert_int_equal(mkdir(P("mi"), 0755), 0);
	fd = open(P("mi/f"), O_CREAT | O_RDWR, 0644);
	assert_true(fd >= 0);
	/* no ioctls: ENOTTY (lsattr, chattr probe this) */
	assert_errno(ioctl(fd, FS_IOC_GETFLAGS, &flags), ENOTTY);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(fdatasync(fd), 0);
	assert_int_equal(close(fd), 0);
	/* fsync of a directory */
	fd = open(P("mi"), O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(close(fd), 0);
	/* sync(2) reaches us too */
	sync();
	assert_int_equal(count_entries(P("mi")), 3);
}

/* File handles (FUSE_EXPORT_SUPPORT, as NFS export uses them) stay valid
 * after the kernel forgot the inode: for a directory and a regular file. */
static void test_file_handles(void **state)
{
	const char *names[] = { "fh/dir", "fh/dir/file" };
	struct {
		struct file_handle h;
		unsigned char buf[MAX_HANDLE_SZ];
	} fh[2];
	int i, mnt_id, mfd, fd, dc;
	char buf[8];

	assert_int_equal(mkdir(P("fh"), 0755), 0);
	assert_int_equal(mkdir(P("fh/dir"), 0755), 0);
	write_file(P("fh/dir/file"), "handle", 6);
	for (i = 0; i < 2; i++) {
		fh[i].h.handle_bytes = MAX_HANDLE_SZ;
		assert_int_equal(name_to_handle_at(AT_FDCWD, P("%s", names[i]),
						   &fh[i].h, &mnt_id, 0), 0);
	}
	/* the kernel drops its dentries and inodes (and forgets them) */
	dc = open("/proc/sys/vm/drop_caches", O_WRONLY);
	assert_true(dc >= 0);
	assert_int_equal(write(dc, "2", 1), 1);
	close(dc);
	mfd = open(M.mnt, O_RDONLY | O_DIRECTORY);
	assert_true(mfd >= 0);
	for (i = 0; i < 2; i++) {
		fd = open_by_handle_at(mfd, &fh[i].h, O_RDONLY);
		if (fd < 0)
			fail_msg("open_by_handle_at(%s): %s", names[i],
				 strerror(errno));
		close(fd);
	}
	fd = open_by_handle_at(mfd, &fh[1].h, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 6);
	assert_memory_equal(buf, "handle", 6);
	close(fd);
	/* a handle of a removed file goes stale once the kernel has
	 * forgotten the inode (forgets are sent asynchronously) */
	assert_int_equal(unlink(P("fh/dir/file")), 0);
	for (i = 0; i < 100; i++) {
		dc = open("/proc/sys/vm/drop_caches", O_WRONLY);
		assert_int_equal(write(dc, "2", 1), 1);
		close(dc);
		fd = open_by_handle_at(mfd, &fh[1].h, O_RDONLY);
		if (fd < 0)
			break;
		close(fd);
		usleep(20000);
	}
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ESTALE);
	close(mfd);
}

/* Last: everything made by the tests above is still there after one more
 * unmount and mount, and the image was left clean by each unmount. */
static void test_persistence(void **state)
{
	struct stat st;
	char buf[64];

	assert_int_equal(mkdir(P("pe"), 0755), 0);
	assert_int_equal(mkdir(P("pe/a"), 0700), 0);
	assert_int_equal(mkdir(P("pe/a/b"), 0755), 0);
	write_file(P("pe/a/b/file"), "persist", 7);
	assert_int_equal(symlink("a/b/file", P("pe/link")), 0);
	assert_int_equal(link(P("pe/a/b/file"), P("pe/hard")), 0);
	assert_int_equal(setxattr(P("pe/a"), "user.k", "v", 1, 0), 0);
	assert_int_equal(chown(P("pe/a/b"), 12, 34), 0);
	remount();
	assert_int_equal(stat(P("pe/a"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(P("pe/a/b"), &st), 0);
	assert_int_equal(st.st_uid, 12);
	assert_int_equal(st.st_gid, 34);
	assert_int_equal(read_file(P("pe/link"), buf, sizeof(buf)), 7);
	assert_memory_equal(buf, "persist", 7);
	assert_int_equal(stat(P("pe/hard"), &st), 0);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(getxattr(P("pe/a"), "user.k", buf, sizeof(buf)), 1);
	/* the tests' directories are all there */
	assert_int_equal(stat(P("ne/d/inner"), &st), 0);
	assert_int_equal(stat(P("cw/file-7"), &st), 0);
	assert_int_equal(st.st_size, 8 * MiB);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_statfs),
		cmocka_unit_test(test_bdi_ratio),
		cmocka_unit_test(test_create_stat),
		cmocka_unit_test(test_namespace_errors),
		cmocka_unit_test(test_rename),
		cmocka_unit_test(test_rename2),
		cmocka_unit_test(test_hardlinks),
		cmocka_unit_test(test_symlinks),
		cmocka_unit_test(test_read_write),
		cmocka_unit_test(test_xattrs),
		cmocka_unit_test(test_fallocate),
		cmocka_unit_test(test_seek_data_hole),
		cmocka_unit_test(test_big_directory),
		cmocka_unit_test(test_sparse_large),
		cmocka_unit_test(test_unlinked_open),
		cmocka_unit_test(test_concurrent_writers),
		cmocka_unit_test(test_mmap),
		cmocka_unit_test(test_setuid_and_permissions),
		cmocka_unit_test(test_killpriv),
		cmocka_unit_test(test_killpriv_variants),
		cmocka_unit_test(test_write_no_getxattr),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_copy_file_range),
		cmocka_unit_test(test_misc),
		cmocka_unit_test(test_file_handles),
		cmocka_unit_test(test_persistence),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
