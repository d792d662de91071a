#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_mount_cli.sh MMAPFS MKFS FSCK — the mmapfs program, end to end.
#
# mount(8) with -t fuse.mmapfs and an fstab line (a private fstab file
# given to mount -T, never /etc/fstab), both ways to unmount (umount(8),
# fusermount3 -u), refusal of a second mount, -o ro, every startup error
# (one line "mmapfs: ...", the documented exit status, image unchanged),
# SIGTERM (clean image, also with a busy mount), the commit timer, -o sync,
# and SIGBUS when the image is truncated under the daemon.
#
# mount.fuse3 runs `mmapfs IMAGE DIR -o OPTS` through /bin/sh, and mount(8)
# (setuid) clears PATH first, so the program is found only in the shell's
# default PATH (/usr/local/sbin, /usr/sbin, ...). The script therefore runs
# in a private mount namespace (unshare -m) and there bind-mounts a
# directory holding `mmapfs` -> the build's binary over /usr/local/sbin:
# nothing on the host changes, and every mount made here dies with the
# namespace at the latest.
#
# Needs root, /dev/fuse, fusermount3, mount.fuse3 (package fuse3), unshare.
# Never leaves a mount behind: every daemon started here is killed and every
# mount point unmounted at exit (umount, then lazy), and the run fails if
# /proc/mounts still shows one (mount_lib.sh).
set -u
. "$(dirname "$0")/mount_lib.sh"

MMAPFS=$(realpath "$1")
MKFS=$(realpath "$2")
FSCK=$(realpath "$3")
export PATH="$(dirname "$MMAPFS"):$PATH:/usr/sbin:/sbin"
mnt_enter_ns "$@"
mnt_setup mount_cli.XXXXXX
PIDS=()
test_stop() {
	local p
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
}
mkdir "$T/sbin" && ln -s "$MMAPFS" "$T/sbin/mmapfs" &&
	mkdir -p /usr/local/sbin && mount --bind "$T/sbin" /usr/local/sbin || {
	echo "test_mount_cli: cannot put mmapfs on the default PATH"
	exit 1
}
MNT_POINTS+=(/usr/local/sbin)
FAILS=0
CASES=0
CASE=setup

fail() {
	echo "FAIL: $CASE: $*"
	[ -s "$T/err" ] && echo "  stderr: $(head -c 2000 "$T/err")"
	FAILS=$((FAILS + 1))
}

begin() {
	CASE=$1
	CASES=$((CASES + 1))
	: >"$T/err"
}

mounted() {
	awk -v d="$1" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# wait_for COMMAND...: up to 10 s for COMMAND to succeed.
wait_for() {
	local i
	for i in $(seq 100); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

not_mounted() { ! mounted "$1"; }

# The daemon has let go of the image (its flock is free).
unlocked() { flock -n -x "$1" true 2>/dev/null; }

state() {
	if [ -e "$1" ]; then sha256sum <"$1" | cut -d' ' -f1; else echo absent; fi
}

# Mount points under $T, one per line.
our_mounts() {
	awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort
}

fstype() {
	awk -v d="$1" '$2 == d { print $3 }' /proc/mounts
}

# fsck_clean IMAGE: fsck.mmapfs -fn finds nothing wrong.
fsck_clean() {
	"$FSCK" -fn "$1" >"$T/fsck.out" 2>&1 ||
		fail "fsck.mmapfs -fn: status $? ($(tail -3 "$T/fsck.out"))"
}

new_image() {
	rm -f "$1"
	"$MKFS" -q -s 256M "$1" || { echo "mkfs failed"; exit 1; }
}

# refuse NAME STATUS PATTERN -- ARGS...: mmapfs ARGS must exit with STATUS,
# print exactly one line "mmapfs: ..." containing PATTERN, mount nothing and
# leave the image $IMG unchanged.
refuse() {
	begin "$1"
	local want=$2 pattern=$3 before after rc
	shift 4
	before=$(state "$IMG")
	mounts_before=$(our_mounts)
	timeout 20 "$MMAPFS" "$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	after=$(state "$IMG")
	[ "$rc" = "$want" ] || fail "exit status $rc, want $want"
	[ "$(wc -l <"$T/err")" = 1 ] || fail "stderr is not exactly one line"
	[ "$(head -c 8 "$T/err")" = "mmapfs: " ] || fail "stderr does not start with 'mmapfs: '"
	grep -qF -- "$pattern" "$T/err" || fail "stderr lacks '$pattern'"
	# (not while the image is mounted: its daemon commits on a timer)
	[ "$before" = "$after" ] || [ -n "${IMAGE_IN_USE:-}" ] || fail "image changed"
	[ "$(our_mounts)" = "$mounts_before" ] || fail "something got mounted: $(our_mounts)"
}

IMG=$T/disk.img
M1=$T/m1
M2=$T/m2
MNT_POINTS+=("$M1" "$M2")
mkdir "$M1" "$M2"
new_image "$IMG"

# ---- mount -t fuse.mmapfs, umount ----
begin "mount -t fuse.mmapfs"
mount -t fuse.mmapfs "$IMG" "$M1" 2>"$T/err" || fail "mount failed"
mounted "$M1" || fail "not mounted"
[ "$(fstype "$M1")" = fuse.mmapfs ] || fail "type $(fstype "$M1"), want fuse.mmapfs"
awk -v d="$M1" -v s="$IMG" '$2 == d && $1 == s { f = 1 } END { exit !f }' /proc/mounts ||
	fail "source in /proc/mounts is not the image path"
grep -F " $M1 " /proc/mounts | grep -q default_permissions || fail "no default_permissions"
echo hello >"$M1/hello" || fail "write failed"
mkdir "$M1/dir" || fail "mkdir failed"
begin "umount"
umount "$M1" 2>"$T/err" || fail "umount failed"
not_mounted "$M1" || fail "still mounted"
wait_for unlocked "$IMG" || fail "daemon still holds the image"

# ---- an fstab line, through mount -T FILE; fusermount3 -u ----
begin "fstab line"
printf '# test fstab\n%s %s fuse.mmapfs defaults,commit=2,noatime,nofail 0 0\n' \
	"$IMG" "$M1" >"$T/fstab"
mount -T "$T/fstab" "$M1" 2>"$T/err" || fail "mount -T failed"
mounted "$M1" || fail "not mounted"
[ "$(cat "$M1/hello" 2>/dev/null)" = hello ] || fail "file from the first mount missing"
[ -d "$M1/dir" ] || fail "directory from the first mount missing"
grep -F " $M1 " /proc/mounts | grep -q noatime || fail "noatime not passed on"

# ---- a second mount of the same image is refused ----
IMAGE_IN_USE=1 refuse "second mount" 1 "in use by another process" -- "$IMG" "$M2"
begin "second mount through mount(8)"
mount -t fuse.mmapfs "$IMG" "$M2" 2>"$T/err" && fail "mount succeeded"
grep -q "^mmapfs: .*in use" "$T/err" || fail "no clear message"
not_mounted "$M2" || { fail "mounted"; umount -l "$M2"; }

begin "fusermount3 -u"
fusermount3 -u "$M1" 2>"$T/err" || fail "fusermount3 -u failed"
not_mounted "$M1" || fail "still mounted"
wait_for unlocked "$IMG" || fail "daemon still holds the image"

# ---- -o ro ----
begin "-o ro"
"$MMAPFS" -o ro "$IMG" "$M1" 2>"$T/err" || fail "mount failed"
grep -F " $M1 " /proc/mounts | grep -q ' ro[ ,]' || fail "not read-only in /proc/mounts"
[ "$(cat "$M1/hello" 2>/dev/null)" = hello ] || fail "cannot read"
touch "$M1/new" 2>"$T/err" && fail "create succeeded"
grep -q "Read-only file system" "$T/err" || fail "create: not EROFS"
echo more >>"$M1/hello" 2>"$T/err" && fail "append succeeded"
grep -q "Read-only file system" "$T/err" || fail "append: not EROFS"
# a second read-only mount may share the image; a read-write one may not
begin "-o ro twice, rw refused"
"$MMAPFS" -o ro "$IMG" "$M2" 2>"$T/err" || fail "second ro mount failed"
[ "$(cat "$M2/hello" 2>/dev/null)" = hello ] || fail "cannot read"
umount "$M2" || fail "umount failed"
IMAGE_IN_USE=1 refuse "rw while ro-mounted" 1 "in use" -- "$IMG" "$M2"
umount "$M1" || fail "umount failed"
wait_for unlocked "$IMG" || fail "daemon still holds the image"

# ---- umount, then at once mount again, and check ----
# umount(8) returns while the daemon still commits and closes the image;
# the next mmapfs or fsck.mmapfs found it locked ("in use") every time,
# and now waits for it, since no mount of the image is left.
for i in 1 2 3; do
	begin "umount, then at once mount and fsck ($i)"
	"$MMAPFS" "$IMG" "$M1" 2>"$T/err" || fail "mount failed: $(cat "$T/err")"
	echo "$i" >"$M1/again" || fail "write failed"
	umount "$M1" || fail "umount failed"
	"$MMAPFS" "$IMG" "$M1" 2>"$T/err" ||
		fail "mount right after umount failed: $(cat "$T/err")"
	[ "$(cat "$M1/again" 2>/dev/null)" = "$i" ] || fail "data of the last mount missing"
	umount "$M1" || fail "umount failed"
	"$FSCK" -fn "$IMG" >"$T/fsck.out" 2>&1 ||
		fail "fsck right after umount: status $? ($(tail -2 "$T/fsck.out"))"
done

# ---- startup errors: one line, exit status, image untouched ----
echo "not a directory" >"$T/file"
head -c $((1024 * 1024)) /dev/zero >"$T/zero.img"
cp --sparse=always "$IMG" "$T/bad.img"
printf 'XXXX' | dd of="$T/bad.img" bs=1 seek=100 conv=notrunc status=none
printf 'XXXX' | dd of="$T/bad.img" bs=1 seek=$((4096 + 100)) conv=notrunc status=none

refuse "no such image" 1 "$T/none.img: No such file or directory" -- "$T/none.img" "$M1"
refuse "not an mmapfs image" 1 "not an mmapfs image" -- "$T/zero.img" "$M1"
refuse "corrupt superblocks" 1 "no valid superblock" -- "$T/bad.img" "$M1"
refuse "image is a directory" 1 "not a regular file" -- "$T" "$M1"
refuse "mount point missing" 1 "$T/nodir: cannot mount here: No such file or directory" -- "$IMG" "$T/nodir"
refuse "mount point is a file" 1 "cannot mount here: Not a directory" -- "$IMG" "$T/file"
# The image is opened before the kernel sees the mount options, but
# nothing is written until it has accepted them: a refusal by the kernel
# leaves the image byte for byte as it was.
refuse "the kernel refuses the mount" 1 "$M1: cannot mount: " -- -o context=bogus "$IMG" "$M1"
refuse "unknown -o option" 2 "-o bogus: unknown mount option" -- -o bogus "$IMG" "$M1"
refuse "unknown -o option in a list" 2 "-o frob=1: unknown mount option" -- -o ro,frob=1 "$IMG" "$M1"
refuse "unknown flag" 2 "-Z: unknown option" -- -Z "$IMG" "$M1"
refuse "bad commit interval" 2 "-o commit=soon: not a number of seconds" -- -o commit=soon "$IMG" "$M1"
refuse "negative commit interval" 2 "not a number of seconds" -- -o commit=-1 "$IMG" "$M1"
refuse "bad bdi_max_ratio" 2 "-o bdi_max_ratio=101: not a percentage" -- -o bdi_max_ratio=101 "$IMG" "$M1"
refuse "bdi_max_ratio not a number" 2 "not a percentage from 0 to 100" -- -o bdi_max_ratio=half "$IMG" "$M1"
refuse "spin too long" 2 "-o spin=10001: not a number of microseconds" -- -o spin=10001 "$IMG" "$M1"
refuse "spin not a number" 2 "-o spin=fast: not a number of microseconds" -- -o spin=fast "$IMG" "$M1"
refuse "no threads" 2 "-o threads=0: not a number of threads" -- -o threads=0 "$IMG" "$M1"
refuse "bad thread count" 2 "-o threads=many: not a number of threads" -- -o threads=many "$IMG" "$M1"
refuse "no arguments" 2 "missing IMAGE" --
refuse "no mount point" 2 "missing MOUNTPOINT" -- "$IMG"
refuse "extra argument" 2 "extra: unexpected argument" -- "$IMG" "$M1" extra
begin "bad image through mount(8)"
mount -t fuse.mmapfs "$T/zero.img" "$M1" 2>"$T/err" && fail "mount succeeded"
grep -q "^mmapfs: .*not an mmapfs image" "$T/err" || fail "no clear message"
not_mounted "$M1" || { fail "mounted"; umount -l "$M1"; }

begin "help and version"
"$MMAPFS" --help >"$T/out" 2>"$T/err" || fail "--help failed"
grep -q "^Usage: mmapfs" "$T/out" || fail "no usage text"
"$MMAPFS" -V >"$T/out" 2>"$T/err" || fail "-V failed"
grep -q "^mmapfs [0-9]" "$T/out" || fail "no version line"

# wait_exit PID: wait up to 20 s for a daemon started here to exit (then
# kill it); returns its exit status.
wait_exit() {
	local i
	for i in $(seq 200); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$1" 2>/dev/null && { echo "  (killing $1: did not exit)"; kill -KILL "$1"; }
	wait "$1"
}

# start_fg LOG ARGS...: run mmapfs -f ARGS in the background, wait for the
# mount at the last argument; sets DAEMON.
start_fg() {
	local log=$1
	shift
	"$MMAPFS" -f "$@" 2>"$log" &
	DAEMON=$!
	PIDS+=("$DAEMON")
	wait_for mounted "${!#}" || fail "not mounted (log: $(cat "$log"))"
}

# ---- SIGTERM: unmounts, exits 0, image clean ----
begin "SIGTERM"
start_fg "$T/log1" "$IMG" "$M1"
mkdir "$M1/term" && echo "written before SIGTERM" >"$M1/term/data" || fail "write failed"
echo "written, not synced" >"$M1/term/cached"
kill -TERM "$DAEMON"
wait_exit "$DAEMON"
rc=$?
[ "$rc" = 0 ] || fail "daemon exit status $rc (log: $(cat "$T/log1"))"
not_mounted "$M1" || fail "still mounted"
fsck_clean "$IMG"
begin "SIGTERM left a clean image"
start_fg "$T/log2" "$IMG" "$M1"
grep -q "not unmounted cleanly" "$T/log2" && fail "image was not clean"
[ "$(cat "$M1/term/data" 2>/dev/null)" = "written before SIGTERM" ] || fail "data lost"
[ "$(cat "$M1/term/cached" 2>/dev/null)" = "written, not synced" ] || fail "unsynced data lost"

# ---- SIGTERM while the mount is busy: sync, detach, exit 0 ----
begin "SIGTERM, busy mount"
# A file kept open, its data only in the kernel's page cache (any close(2)
# of it, even of a dup, would write it back, hence the single open by the
# subshell that execs sleep): it keeps the mount busy, and only the
# daemon's syncfs before detaching saves the data.
(echo "busy data"; exec sleep 60) >"$M1/term/busy" &
SLEEPER=$!
PIDS+=("$SLEEPER")
sleep 0.3
kill -TERM "$DAEMON"
wait_exit "$DAEMON"
rc=$?
[ "$rc" = 0 ] || fail "daemon exit status $rc (log: $(cat "$T/log2"))"
grep -q "busy" "$T/log2" || fail "no message about the busy mount"
kill "$SLEEPER" 2>/dev/null
wait "$SLEEPER" 2>/dev/null
wait_for not_mounted "$M1" || { fail "still mounted"; umount -l "$M1"; }
fsck_clean "$IMG"
start_fg "$T/log3" "$IMG" "$M1"
grep -q "not unmounted cleanly" "$T/log3" && fail "image was not clean"
[ "$(cat "$M1/term/busy" 2>/dev/null)" = "busy data" ] || fail "data lost"
umount "$M1"
wait_exit "$DAEMON"
rc=$?
[ "$rc" = 0 ] || fail "exit status after umount: $rc"

# ---- the commit timer: changes reach the image without fsync ----
# crash NAME: kill -9 the daemon, drop the dead mount.
crash() {
	kill -KILL "$DAEMON"
	wait_exit "$DAEMON"
	umount -l "$M1" 2>/dev/null || fusermount3 -u -z "$M1" 2>/dev/null
	wait_for not_mounted "$M1"
	wait_for unlocked "$IMG"
	fsck_clean "$IMG"
}
begin "commit=1"
start_fg "$T/log4" -o commit=1 "$IMG" "$M1"
mkdir "$M1/timer" || fail "mkdir failed"
sleep 2.5
crash
start_fg "$T/log5" "$IMG" "$M1"
[ -d "$M1/timer" ] || fail "change did not reach the image in 2.5 s"
umount "$M1"; wait_exit "$DAEMON"
begin "commit=0 commits only on fsync/unmount"
start_fg "$T/log6" -o commit=0 "$IMG" "$M1"
mkdir "$M1/notimer" || fail "mkdir failed"
sleep 1.5
crash
start_fg "$T/log7" "$IMG" "$M1"
[ -d "$M1/notimer" ] && fail "an uncommitted change survived a crash"
grep -q "not unmounted cleanly" "$T/log7" || fail "no unclean-unmount notice after a crash"
umount "$M1"; wait_exit "$DAEMON"
begin "commit=0: sync FILE and fsync of a directory commit everything"
start_fg "$T/log6b" -o commit=0 "$IMG" "$M1"
mkdir "$M1/bysync" || fail "mkdir failed"
head -c 100000 /dev/urandom > "$T/bysync.src"
cp "$T/bysync.src" "$M1/bysync/data" || fail "write failed"
mkdir "$M1/other" || fail "mkdir failed"
sync "$M1/bysync/data" || fail "sync FILE failed"
crash
start_fg "$T/log7b" "$IMG" "$M1"
cmp "$T/bysync.src" "$M1/bysync/data" || fail "sync FILE: data lost in a crash"
[ -d "$M1/other" ] || fail "sync FILE: another change was not committed with it"
mkdir "$M1/bydirsync" || fail "mkdir failed"
python3 -c 'import os,sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))' "$M1" ||
	fail "fsync of a directory failed"
crash
start_fg "$T/log7c" "$IMG" "$M1"
[ -d "$M1/bydirsync" ] || fail "fsync of a directory: change lost in a crash"
rm -r "$M1/bysync" "$M1/other" "$M1/bydirsync"
umount "$M1"; wait_exit "$DAEMON"
begin "O_TMPFILE: linkat names it, O_EXCL keeps it nameless, a crash reclaims it"
start_fg "$T/log6d" "$IMG" "$M1"
used0=$(( $(stat -f -c "%b - %f" "$M1") ))
python3 - "$M1" "$T/tmpfile.ready" <<'EOF' &
import ctypes, errno, os, sys, time
mnt, ready = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
def linkat(fd, path):
    if libc.linkat(fd, b"", -100, path.encode(), 0x1000) != 0:  # AT_EMPTY_PATH
        return ctypes.get_errno()
    return 0
before = sorted(os.listdir(mnt))
fd = os.open(mnt, os.O_TMPFILE | os.O_RDWR, 0o640)
os.write(fd, b"named later")
assert os.fstat(fd).st_nlink == 0, "a tmpfile has no links"
assert sorted(os.listdir(mnt)) == before, "a tmpfile has no name"
assert linkat(fd, mnt + "/tmpnamed") == 0, "linkat of an O_TMPFILE file"
assert os.fstat(fd).st_nlink == 1
os.fsync(fd)  # its data and its name: durable
ex = os.open(mnt, os.O_TMPFILE | os.O_RDWR | os.O_EXCL, 0o600)
assert linkat(ex, mnt + "/never") == errno.ENOENT, "O_EXCL: must not be linkable"
big = os.open(mnt, os.O_TMPFILE | os.O_WRONLY, 0o600)
os.write(big, os.urandom(8 << 20))
os.fsync(big)  # committed: an unlinked file on the orphan list
open(ready, "w").close()
time.sleep(60)  # holds it open until the crash
EOF
PY=$!
wait_for test -e "$T/tmpfile.ready" || fail "the O_TMPFILE program did not get ready"
used1=$(( $(stat -f -c "%b - %f" "$M1") ))
[ $((used1 - used0)) -ge 2048 ] || fail "8 MiB in an open tmpfile: $((used1 - used0)) blocks used"
crash
kill "$PY" 2>/dev/null; wait "$PY" 2>/dev/null
start_fg "$T/log7d" "$IMG" "$M1"
[ "$(cat "$M1/tmpnamed")" = "named later" ] || fail "the linked tmpfile lost its data"
used2=$(( $(stat -f -c "%b - %f" "$M1") ))
[ $((used2 - used0)) -lt 256 ] || fail "the unnamed tmpfile's 8 MiB not reclaimed: $((used2 - used0)) blocks"
rm "$M1/tmpnamed"
umount "$M1"; wait_exit "$DAEMON"
fsck_clean "$IMG"
begin "-o sync"
start_fg "$T/log8" -o sync,commit=0 "$IMG" "$M1"
mkdir "$M1/synced" || fail "mkdir failed"
crash
start_fg "$T/log9" "$IMG" "$M1"
[ -d "$M1/synced" ] || fail "-o sync: change lost in a crash"
umount "$M1"; wait_exit "$DAEMON"

begin "-o discard gives a deleted file's space back to the host"
start_fg "$T/log11" -o discard,commit=1 "$IMG" "$M1"
dd if=/dev/urandom of="$M1/big" bs=1M count=32 status=none conv=fsync || fail "write failed"
before=$(du -k "$IMG" | cut -f1)
rm "$M1/big"
# The blocks are freed when the kernel forgets the file, committed by the
# timer, and reusable (so punched) one commit later, idle or not.
shrunk() { [ $((before - $(du -k "$IMG" | cut -f1))) -ge 30000 ]; }
wait_for shrunk || fail "image went from ${before}K to $(du -k "$IMG" | cut -f1)K only"
umount "$M1"; wait_exit "$DAEMON"
fsck_clean "$IMG"
begin "nodiscard (the default) keeps the space"
start_fg "$T/log12" -o commit=1 "$IMG" "$M1"
dd if=/dev/urandom of="$M1/big" bs=1M count=32 status=none conv=fsync || fail "write failed"
before=$(du -k "$IMG" | cut -f1)
rm "$M1/big"
sleep 4
after=$(du -k "$IMG" | cut -f1)
[ $((before - after)) -lt 1024 ] || fail "image shrank from ${before}K to ${after}K without discard"
umount "$M1"; wait_exit "$DAEMON"

# ---- -d logs requests ----
begin "-d"
"$MMAPFS" -d "$IMG" "$M1" >"$T/log10" 2>&1 &
DAEMON=$!
PIDS+=("$DAEMON")
wait_for mounted "$M1" || fail "not mounted"
ls "$M1" >/dev/null
umount "$M1"
wait_exit "$DAEMON"
grep -q "LOOKUP\|GETATTR\|READDIR" "$T/log10" || fail "no request trace"

# ---- round trips: requests the kernel stops sending ----
# FLUSH, OPEN, OPENDIR and CREATE are answered with ENOSYS once, so
# closing, opening files and directories cost no round trip, new files
# come as MKNOD, and nothing is released; with OPEN gone, O_TRUNC must
# still truncate (a SETATTR instead).
begin "round trips"
"$MMAPFS" -d "$IMG" "$M1" >"$T/log12" 2>&1 &
DAEMON=$!
PIDS+=("$DAEMON")
wait_for mounted "$M1" || fail "not mounted"
mkdir "$M1/rt" || fail "mkdir failed"
for i in 1 2 3 4 5 6 7 8; do
	echo "file $i" >"$M1/rt/f$i" || fail "create failed"
	cat "$M1/rt/f$i" >/dev/null || fail "read failed"
	ls "$M1/rt" >/dev/null || fail "ls failed"
done
echo x >"$M1/rt/f1" || fail "rewrite failed"
[ "$(cat "$M1/rt/f1")" = x ] || fail "O_TRUNC did not truncate: $(cat "$M1/rt/f1")"
umount "$M1"
wait_exit "$DAEMON"
for op in FLUSH OPEN OPENDIR CREATE; do
	n=$(grep -c "opcode: $op " "$T/log12")
	[ "$n" -le 1 ] || fail "$n $op requests, want at most 1"
done
for op in RELEASE RELEASEDIR; do
	n=$(grep -c "opcode: $op " "$T/log12")
	[ "$n" = 0 ] || fail "$n $op requests, want 0"
done
start_fg "$T/log13" "$IMG" "$M1"
[ "$(cat "$M1/rt/f1")" = x ] || fail "O_TRUNC lost at remount: $(cat "$M1/rt/f1")"
[ "$(cat "$M1/rt/f8")" = "file 8" ] || fail "f8 lost at remount"

# ---- threads: one by default, more on request ----
# The loop, the commit timer and the signal thread: 3 (libfuse's
# multi-threaded loop would add workers, and keep one idle). Not counted:
# the io_uring queues' threads (one per CPU, named mmapfs-ring<N>), there
# when the kernel offers the rings (test_uring.sh), and fuse_space.c's
# notifier (mmapfs-space).
loop_threads() {
	cat /proc/"$1"/task/*/comm | grep -vcE '^mmapfs-(ring|space)'
}
begin "one thread by default"
for i in $(seq 20); do cat "$M1/rt/f$((i % 8 + 1))" >/dev/null; done
n=$(loop_threads "$DAEMON")
[ "$n" = 3 ] || fail "$n threads, want 3"
umount "$M1"; wait_exit "$DAEMON"
begin "-o threads=4"
start_fg "$T/log14" -o threads=4 "$IMG" "$M1"
WORKERS=()
for i in 1 2 3 4; do
	(for j in $(seq 20); do cat "$M1/rt/f$j" 2>/dev/null; echo y >"$M1/rt/t$i-$j"; done) &
	WORKERS+=($!)
done
wait "${WORKERS[@]}"
# libfuse's main thread, 2 to 4 workers (one kept idle), timer, signals
n=$(loop_threads "$DAEMON")
[ "$n" -ge 5 ] && [ "$n" -le 7 ] || fail "$n threads, want 5 to 7"
[ "$(cat "$M1/rt/t4-20")" = y ] || fail "files missing"
umount "$M1"; wait_exit "$DAEMON"
fsck_clean "$IMG"

# ---- SIGBUS: the image truncated under the daemon ----
begin "SIGBUS"
cp --sparse=always "$IMG" "$T/victim.img"
start_fg "$T/log11" "$T/victim.img" "$M1"
truncate -s 8K "$T/victim.img"
ls "$M1/no-such-name-$$" >/dev/null 2>&1
stat "$M1/timer/x" >/dev/null 2>&1
wait_exit "$DAEMON"
rc=$?
[ "$rc" = 1 ] || fail "daemon exit status $rc, want 1"
grep -q "^mmapfs: .*SIGBUS.*truncated" "$T/log11" || fail "no clear message (log: $(cat "$T/log11"))"
umount -l "$M1" 2>/dev/null
wait_for not_mounted "$M1" || fail "dead mount left"

begin "the image after all of it"
wait_for unlocked "$IMG" || fail "daemon still holds the image"
fsck_clean "$IMG"

echo "$CASES cases, $FAILS failures"
[ "$FAILS" = 0 ]
