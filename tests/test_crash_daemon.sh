#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_crash_daemon.sh MMAPFS MKFS FSCK — kill -9 the daemon under load,
# or cut the power (MMAPFS_CRASH_POWER=1, below).
#
# Each round: mount, run three concurrent writers that create, rewrite,
# rename and fsync files (a file's name and checksum are logged outside
# the mount only after its fsync returned), kill -9 the daemon at a random
# moment, unmount the dead mount, check the image with fsck.mmapfs -fn
# (it must be clean), mount again and verify that every logged file has
# exactly its logged contents. MMAPFS_CRASH_ROUNDS rounds (default 20).
# A writer's failure before the kill (other than ENOSPC on the nearly full
# image of MMAPFS_CRASH_FULL=1) fails the test, and so does a round in
# which no version was fsync'd.
#
# Runs in a private mount namespace; daemons are killed and mounts removed
# at exit whatever happens (mount_lib.sh).
set -u
. "$(dirname "$0")/mount_lib.sh"

MMAPFS=$(realpath "$1")
MKFS=$(realpath "$2")
FSCK=$(realpath "$3")
ROUNDS=${MMAPFS_CRASH_ROUNDS:-20}
# MMAPFS_CRASH_FULL=1: a 48 MiB image filled up to the last 2 MiB, so the
# writers meet ENOSPC (and make room) while they are killed.
FULL=${MMAPFS_CRASH_FULL:-0}
SIZE=512M
[ "$FULL" = 1 ] && SIZE=48M
# MMAPFS_CRASH_POWER=1: a power cut instead of kill -9. The daemon copies
# the image after every sync (MMAPFS_TEST_DURABLE_COPY: what the disk
# holds); after the kill the next round starts from that copy, as if the
# machine had lost everything not yet synced.
POWER=${MMAPFS_CRASH_POWER:-0}

mnt_enter_ns "$@"
mnt_setup mmapfs-crash.XXXXXX
MNT=$T/mnt
MNT_POINTS+=("$MNT")
PID=""
WRITERS=()
test_stop() {
	local w
	for w in "${WRITERS[@]}"; do
		kill -KILL "$w" 2>/dev/null
	done
	[ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
}

die() {
	echo "FAIL: round ${ROUND:-0}: $*"
	[ -s "$T/daemon.log" ] && sed 's/^/  daemon: /' "$T/daemon.log" | tail -20
	exit 1
}

mount_fs() {
	mnt_daemon "$MNT" "$T/daemon.log" "$MMAPFS" -f "$T/img" "$MNT"
	local rc=$?
	PID=$MNT_PID
	[ "$rc" -eq 0 ] || die "mmapfs did not mount"
}

# failed WHAT ERRFILE: a step of a writer failed. After the kill (the main
# loop makes $T/killed first) anything may fail: the writer's end. Before
# it only ENOSPC on the nearly full image is an answer (return 2: try
# again), except for a third argument "strict" (a commit must not run
# out). Anything else is recorded in $T/fail and ends the writer.
failed() {
	[ -e "$T/killed" ] && return 0
	if [ "$FULL" = 1 ] && [ -z "${3:-}" ] &&
		grep -q "No space left on device" "$2"; then
		return 2
	fi
	{ echo "$1:"; cat "$2"; } >> "$T/fail"
	return 1
}

# writer ID ROUND: files w<ID>.<n> in the mount; each fsync'd version is
# logged as "name sha256" in $T/log.<ID> after dd conv=fsync succeeded.
writer() {
	local id=$1 round=$2 n=0 name src sum err=$T/err.$id rc old
	mkdir -p "$MNT/d$id" 2>"$err" || { failed "mkdir d$id" "$err"; return; }
	while :; do
		n=$((n + 1))
		name="d$id/r$round.$((n % 7))"
		src="$T/src.$id"
		head -c $(( (RANDOM % 64 + 1) * 4096 + RANDOM )) /dev/urandom > "$src"
		if ! dd if="$src" of="$MNT/$name.tmp" bs=64k conv=fsync \
			status=none 2>"$err"; then
			failed "dd $name.tmp" "$err"
			rc=$?
			[ "$rc" = 2 ] || return
			# Full: make room with an older version, try again.
			old="d$id/r$round.$(((n + 3) % 7))"
			echo "X $old" >> "$T/log.$id"
			rm -f "$MNT/$name.tmp" "$MNT/$old" 2>"$err" ||
				{ failed "rm" "$err"; return; }
			continue
		fi
		# rename + fsync of the directory make the new name durable. Any
		# other writer's fsync commits too, so a version may become
		# durable before its own fsync returns: log it as pending (P)
		# before the rename and as done (D) after the fsync.
		sum=$(sha256sum < "$src" | cut -d' ' -f1)
		echo "P $name $sum" >> "$T/log.$id"
		mv "$MNT/$name.tmp" "$MNT/$name" 2>"$err" ||
			{ failed "mv $name" "$err" strict; return; }
		python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' \
			"$MNT/d$id" 2>"$err" ||
			{ failed "fsync d$id" "$err" strict; return; }
		echo "D $name $sum" >> "$T/log.$id"
	done
}

mkdir "$MNT" || exit 1
"$MKFS" -q -s "$SIZE" "$T/img" || die "mkfs"
if [ "$FULL" = 1 ]; then
	# Leave about 2 MiB: the writers' 21 files of up to 300 KiB and
	# their temporaries do not all fit, so dd and fsync meet ENOSPC.
	# Preallocation takes the space to the end (df's figure keeps the
	# page cache's headroom back); then give 2 MiB back.
	mount_fs
	mkdir "$MNT/ballast" || die "ballast"
	i=0
	while fallocate -l 1M "$MNT/ballast/$i" 2>/dev/null; do
		i=$((i + 1))
	done
	[ "$i" -gt 10 ] || die "ballast: only $i MiB"
	rm "$MNT/ballast/$((i - 1))" "$MNT/ballast/$((i - 2))" ||
		die "ballast"
	fusermount3 -u "$MNT" || die "unmount"
	wait "$PID" || die "mmapfs exited with status $? at unmount"
fi
total=0
full_hits=0
for ROUND in $(seq "$ROUNDS"); do
	if [ "$POWER" = 1 ]; then
		MMAPFS_TEST_DURABLE_COPY=$T/durable mount_fs
	else
		mount_fs
	fi
	WRITERS=()
	rm -f "$T/killed"
	for id in 1 2 3; do
		writer "$id" "$ROUND" &
		WRITERS+=($!)
	done
	# (A power-cut round copies the image at every sync: give it longer.)
	sleep "$((RANDOM % 3 + POWER * 2)).$((RANDOM % 5 + 5))"
	: > "$T/killed"
	kill -KILL "$PID"
	wait "$PID" 2>/dev/null
	PID=""
	for w in "${WRITERS[@]}"; do
		wait "$w" 2>/dev/null
	done
	WRITERS=()
	[ -s "$T/fail" ] && { cat "$T/fail"; die "a writer failed before the kill"; }
	fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	if [ "$POWER" = 1 ]; then
		# The power went: the disk holds what the last sync made
		# durable, nothing written after it.
		[ -s "$T/durable" ] || die "no durable copy"
		mv "$T/durable" "$T/img" || die "mv"
	fi
	"$FSCK" -fn "$T/img" > "$T/fsck.out" 2>&1
	rc=$?
	[ "$rc" = 0 ] || { cat "$T/fsck.out"; die "fsck -fn exit $rc after the crash"; }
	mount_fs
	# Each name that had a version fsync'd (D) must hold that version or
	# one renamed over it later (P after the last D), byte for byte.
	for log in "$T"/log.*; do
		[ -e "$log" ] || continue
		# X: the writer removes the name to make room (logged before
		# the rm): from then on it may be missing, until the next D.
		awk '$1 == "D" { ok[$2] = " " $3 " "; gone[$2] = 0 }
		     $1 == "P" { ok[$2] = ok[$2] $3 " " }
		     $1 == "X" { gone[$2] = 1 }
		     $1 == "D" { done[$2] = 1 }
		     END { for (n in done) print n, gone[n], ok[n] }' "$log"
	done | while read -r name gone sums; do
		if [ ! -e "$MNT/$name" ] && [ "$gone" = 1 ]; then
			continue
		fi
		got=$(sha256sum < "$MNT/$name" 2>/dev/null | cut -d' ' -f1)
		case " $sums " in
		*" $got "*) [ -n "$got" ] || { echo "FAIL: round $ROUND: $name missing"; exit 1; } ;;
		*) echo "FAIL: round $ROUND: $name: fsync'd contents lost"; exit 1 ;;
		esac
	done || die "verification"
	checked=$(cat "$T"/log.* 2>/dev/null | grep -c '^D')
	# A daemon that failed every write would leave nothing to check.
	[ "$checked" -gt "$total" ] || die "no version was fsync'd this round"
	total=$checked
	if [ "$FULL" = 1 ]; then
		full_hits=$((full_hits + $(cat "$T"/log.* 2>/dev/null | grep -c '^X')))
		# Verified: start the next round with the space back.
		rm -rf "$MNT"/d[0-9]* || die "cleanup"
		rm -f "$T"/log.*
		total=0
	fi
	fusermount3 -u "$MNT" || die "unmount"
	wait "$PID" || die "mmapfs exited with status $? at unmount"
	PID=""
	echo "round $ROUND: $([ "$POWER" = 1 ] && echo "power cut" || echo "killed") under load, fsck clean, $checked fsync'd versions logged, all present"
done
"$FSCK" -fn "$T/img" > /dev/null || die "final fsck"
if [ "$FULL" = 1 ]; then
	# The point of the nearly full image: writers did meet ENOSPC.
	[ "$full_hits" -gt 0 ] || die "no writer ever met ENOSPC"
	echo "writers met ENOSPC (and made room) $full_hits times"
fi
echo "PASS: $ROUNDS rounds"
