#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_crash_daemon.sh MMAPFS MKFS FSCK — kill -9 the daemon under load.
#
# Each round: mount, run three concurrent writers that create, rewrite,
# rename and fsync files (a file's name and checksum are logged outside
# the mount only after its fsync returned), kill -9 the daemon at a random
# moment, unmount the dead mount, check the image with fsck.mmapfs -fn
# (it must be clean), mount again and verify that every logged file has
# exactly its logged contents. MMAPFS_CRASH_ROUNDS rounds (default 20).
#
# Runs in a private mount namespace; daemons are killed and mounts removed
# at exit whatever happens (mount_lib.sh).
set -u
. "$(dirname "$0")/mount_lib.sh"

MMAPFS=$(realpath "$1")
MKFS=$(realpath "$2")
FSCK=$(realpath "$3")
ROUNDS=${MMAPFS_CRASH_ROUNDS:-20}

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

# writer ID ROUND: files w<ID>.<n> in the mount; each fsync'd version is
# logged as "name sha256" in $T/log.<ID> after dd conv=fsync succeeded.
writer() {
	local id=$1 round=$2 n=0 name src sum
	mkdir -p "$MNT/d$id" 2>/dev/null
	while :; do
		n=$((n + 1))
		name="d$id/r$round.$((n % 7))"
		src="$T/src.$id"
		head -c $(( (RANDOM % 64 + 1) * 4096 + RANDOM )) /dev/urandom > "$src"
		dd if="$src" of="$MNT/$name.tmp" bs=64k conv=fsync status=none \
			2>/dev/null || return 0
		# rename + fsync of the directory make the new name durable. Any
		# other writer's fsync commits too, so a version may become
		# durable before its own fsync returns: log it as pending (P)
		# before the rename and as done (D) after the fsync.
		sum=$(sha256sum < "$src" | cut -d' ' -f1)
		echo "P $name $sum" >> "$T/log.$id"
		mv "$MNT/$name.tmp" "$MNT/$name" 2>/dev/null || return 0
		python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' \
			"$MNT/d$id" 2>/dev/null || return 0
		echo "D $name $sum" >> "$T/log.$id"
	done
}

mkdir "$MNT" || exit 1
"$MKFS" -q -s 512M "$T/img" || die "mkfs"
for ROUND in $(seq "$ROUNDS"); do
	mount_fs
	WRITERS=()
	for id in 1 2 3; do
		writer "$id" "$ROUND" &
		WRITERS+=($!)
	done
	sleep "$((RANDOM % 3)).$((RANDOM % 9 + 1))"
	kill -KILL "$PID"
	wait "$PID" 2>/dev/null
	PID=""
	for w in "${WRITERS[@]}"; do
		wait "$w" 2>/dev/null
	done
	WRITERS=()
	fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	"$FSCK" -fn "$T/img" > "$T/fsck.out" 2>&1
	rc=$?
	[ "$rc" = 0 ] || { cat "$T/fsck.out"; die "fsck -fn exit $rc after kill -9"; }
	mount_fs
	# Each name that had a version fsync'd (D) must hold that version or
	# one renamed over it later (P after the last D), byte for byte.
	for log in "$T"/log.*; do
		[ -e "$log" ] || continue
		awk '$1 == "D" { ok[$2] = " " $3 " " } $1 == "P" { ok[$2] = ok[$2] $3 " " }
		     $1 == "D" { done[$2] = 1 }
		     END { for (n in done) print n, ok[n] }' "$log"
	done | while read -r name sums; do
		got=$(sha256sum < "$MNT/$name" 2>/dev/null | cut -d' ' -f1)
		case " $sums " in
		*" $got "*) [ -n "$got" ] || { echo "FAIL: round $ROUND: $name missing"; exit 1; } ;;
		*) echo "FAIL: round $ROUND: $name: fsync'd contents lost"; exit 1 ;;
		esac
	done || die "verification"
	checked=$(cat "$T"/log.* 2>/dev/null | grep -c '^D')
	fusermount3 -u "$MNT" || die "unmount"
	wait "$PID" || die "mmapfs exited with status $? at unmount"
	PID=""
	echo "round $ROUND: killed under load, fsck clean, $checked fsync'd versions logged, all present"
done
"$FSCK" -fn "$T/img" > /dev/null || die "final fsck"
echo "PASS: $ROUNDS rounds"
