#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_uring.sh MMAPFS MKFS FSCK — FUSE over io_uring (src/fuse_uring.c).
#
# The kernel offers the rings only when the fuse module's enable_uring
# parameter is Y; this test sets it for its own mounts and puts the old
# value back at exit (the mount suite runs one test at a time). On a kernel
# without the parameter (before 6.14) there is nothing to test: exit 77.
#
# 1. With enable_uring=Y: the daemon says it serves over the rings; a
#    workload pinned to each CPU in turn (writes and reads of 1 MiB, which
#    fill the payload buffers, creates, renames, links, symlinks, xattrs,
#    a shared writable mmap, unlinks) gives the right results; at unmount
#    the daemon reports requests served by every CPU's queue, exits 0, and
#    fsck finds the image clean.
# 2. -o no_uring with enable_uring=Y: no rings, the same workload works.
#    With -o threads=2 (session loop threads, which do not poll) the
#    queue threads still poll their rings for -o spin's time.
# 3. kill -9 of the daemon while a program uses the rings: the program
#    gets an error, nothing hangs, the dead mount can be unmounted, and
#    the image passes fsck.
# 4. SIGTERM while a program keeps a file open and reads it: the mount is
#    busy, so the daemon detaches it lazily (libfuse closes its /dev/fuse
#    descriptor while the rings still serve); it must exit 0 within 10 s
#    with no ring errors logged, and the image must pass fsck.
set -u
. "$(dirname "$0")/mount_lib.sh"

MMAPFS=$(realpath "$1")
MKFS=$(realpath "$2")
FSCK=$(realpath "$3")
PARAM=/sys/module/fuse/parameters/enable_uring

if [ ! -e "$PARAM" ]; then
	modprobe fuse 2>/dev/null
	if [ ! -e "$PARAM" ]; then
		echo "SKIP: this kernel has no FUSE over io_uring ($PARAM)"
		exit 77
	fi
fi

mnt_enter_ns "$@"
mnt_setup mmapfs-uring.XXXXXX
MNT=$T/mnt
MNT_POINTS+=("$MNT")
PID=""
OLD=$(cat "$PARAM")
test_stop() {
	[ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
	echo "$OLD" > "$PARAM"
}

fail() {
	echo "FAIL: $*"
	[ -s "$T/daemon.log" ] && sed 's/^/  daemon: /' "$T/daemon.log" | tail -20
	exit 1
}

mount_fs() {
	mnt_daemon "$MNT" "$T/daemon.log" "$MMAPFS" -f "$@" "$T/img" "$MNT"
	local rc=$?
	PID=$MNT_PID
	[ "$rc" -eq 0 ] || fail "mmapfs did not mount"
}

# Unmount and wait for the daemon: it must exit 0.
unmount_fs() {
	local rc
	umount "$MNT" || fail "umount"
	wait "$PID"
	rc=$?
	PID=""
	[ "$rc" -eq 0 ] || fail "daemon exit status $rc"
	"$FSCK" -fn "$T/img" > "$T/fsck.log" 2>&1 ||
		{ cat "$T/fsck.log"; fail "fsck after unmount"; }
}

# workload CPU: everything a session does, from one CPU.
workload() {
	local cpu=$1 d="$MNT/cpu$1" sum
	taskset -c "$cpu" bash -c '
		set -e
		d=$1; t=$2
		mkdir "$d"
		head -c 8388608 /dev/urandom > "$t/src.$3"
		dd if="$t/src.$3" of="$d/big" bs=1M conv=fsync status=none
		for i in $(seq 200); do echo "$i" > "$d/f$i"; done
		for i in $(seq 100); do mv "$d/f$i" "$d/g$i"; done
		ln "$d/g1" "$d/hard"
		ln -s g2 "$d/sym"
		setfattr -n user.k -v value "$d/g3"
		python3 -c "
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 65536)
m = mmap.mmap(fd, 65536)
m[4096:4101] = b\"hello\"
m.flush()
m.close()
os.close(fd)
" "$d/mapped"
	' workload "$d" "$T" "$cpu" || fail "workload on CPU $cpu"
	# read back through the page cache's misses: READs over the ring
	echo 3 > /proc/sys/vm/drop_caches
	sum=$(taskset -c "$cpu" sha256sum < "$d/big" | cut -d' ' -f1)
	[ "$sum" = "$(sha256sum < "$T/src.$cpu" | cut -d' ' -f1)" ] ||
		fail "CPU $cpu: big file reads back different"
	[ "$(ls "$d" | wc -l)" -eq 204 ] || fail "CPU $cpu: $(ls "$d" | wc -l) names, want 204"
	[ "$(cat "$d/g50")$(cat "$d/f150")" = 50150 ] || fail "CPU $cpu: g50, f150 hold $(cat "$d/g50" "$d/f150")"
	[ "$(readlink "$d/sym")" = g2 ] || fail "CPU $cpu: symlink"
	[ "$(stat -c %h "$d/g1")" -eq 2 ] || fail "CPU $cpu: link count"
	[ "$(getfattr --only-values -n user.k "$d/g3")" = value ] ||
		fail "CPU $cpu: xattr"
	[ "$(dd if="$d/mapped" bs=1 skip=4096 count=5 status=none)" = hello ] ||
		fail "CPU $cpu: shared mmap write"
	taskset -c "$cpu" rm -r "$d" || fail "CPU $cpu: rm -r"
}

CPUS=$(nproc)
[ "$CPUS" -gt 8 ] && CPUS=8

mkdir "$MNT" || exit 1
"$MKFS" -q -s 1G "$T/img" || fail "mkfs"

echo "1. enable_uring=Y: $CPUS CPUs"
echo Y > "$PARAM" || fail "cannot set $PARAM"
mount_fs
stat "$MNT" > /dev/null || fail "stat of the mount"   # after INIT
grep -q "serving requests over io_uring" "$T/daemon.log" ||
	fail "the daemon does not serve over io_uring"
# one queue per possible CPU, as the kernel counts them
possible=$(tr ',' '\n' < /sys/devices/system/cpu/possible |
	awk -F- '{ n += (NF == 2 ? $2 - $1 + 1 : 1) } END { print n }')
grep -q "io_uring: $possible queues" "$T/daemon.log" ||
	fail "want $possible queues (/sys/devices/system/cpu/possible)"
grep -q "polling 50 us after each reply" "$T/daemon.log" ||
	fail "the queue threads do not poll 50 us (-o spin's default)"
for ((c = 0; c < CPUS; c++)); do
	workload "$c"
done
unmount_fs
line=$(grep "io_uring served" "$T/daemon.log") ||
	fail "no io_uring summary at unmount"
echo "   $line"
for ((c = 0; c < CPUS; c++)); do
	n=$(echo "$line" | sed -n "s/.*queue $c: \([0-9]*\).*/\1/p")
	[ -n "$n" ] && [ "$n" -ge 100 ] ||
		fail "queue $c served ${n:-no} requests, want >= 100"
done

echo "2. -o no_uring"
mount_fs -o no_uring
stat "$MNT" > /dev/null || fail "stat of the mount"
! grep -q "io_uring" "$T/daemon.log" || fail "-o no_uring used io_uring"
workload 0
unmount_fs

echo "2b. -o threads=2: the queue threads poll all the same"
mount_fs -o threads=2,spin=30
stat "$MNT" > /dev/null || fail "stat of the mount"
grep -q "polling 30 us after each reply" "$T/daemon.log" ||
	fail "-o threads=2,spin=30: the queue threads do not poll 30 us"
workload 0
unmount_fs

echo "3. kill -9 under load"
mount_fs
( while :; do echo x > "$MNT/k$RANDOM" 2>/dev/null || exit 0; done ) &
LOOP=$!
sleep 1
kill -KILL "$PID"
wait "$PID" 2>/dev/null
PID=""
for _ in $(seq 100); do
	kill -0 "$LOOP" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$LOOP" 2>/dev/null; then
	kill -KILL "$LOOP"
	fail "a program on the dead mount still runs after 10 s"
fi
wait "$LOOP"
timeout 10 stat "$MNT" >/dev/null 2>&1 && fail "the dead mount still answers"
umount "$MNT" 2>/dev/null || umount -l "$MNT" || fail "cannot unmount the dead mount"
"$FSCK" -fn "$T/img" > "$T/fsck.log" 2>&1 ||
	{ cat "$T/fsck.log"; fail "fsck after kill -9"; }

echo "4. SIGTERM with a busy mount"
mount_fs
echo data > "$MNT/held"
( exec 3< "$MNT/held"
  while cat "$MNT/held" > /dev/null 2>&1; do :; done
  exec 3<&- ) &
HOLDER=$!
sleep 1
kill -TERM "$PID"
for _ in $(seq 100); do
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$PID" 2>/dev/null; then
	kill -KILL "$HOLDER" 2>/dev/null
	fail "the daemon still runs 10 s after SIGTERM"
fi
wait "$PID"
rc=$?
PID=""
kill -KILL "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
[ "$rc" -eq 0 ] || fail "daemon exit status $rc after SIGTERM"
! grep -q "io_uring: queue" "$T/daemon.log" || fail "ring errors logged"
mnt_mounted "$MNT" && { umount "$MNT" 2>/dev/null || umount -l "$MNT"; }
"$FSCK" -fn "$T/img" > "$T/fsck.log" 2>&1 ||
	{ cat "$T/fsck.log"; fail "fsck after SIGTERM"; }

echo "PASS"
