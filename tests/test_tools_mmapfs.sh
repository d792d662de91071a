#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_tools_mmapfs.sh MMAPFS MKFS FSCK MFSX MFSSTRESS — the exerciser and
# the stress tool on a real mmapfs mount, then a clean fsck.
#
# mfsx: 4 seeds x 50,000 operations (200,000 in all) with mapped reads and
# writes, fallocate, copy_file_range and close/reopen, every operation
# required (--require-all: an unsupported one is a failure). mfsstress:
# 4 processes x 20,000 operations in a shared tree. Then unmount and
# fsck.mmapfs -fn must find nothing. MMAPFS_TOOLS_OPS scales mfsx (the
# sanitizer build runs a quarter, as everything there is several times
# slower; the plain build runs the full 200,000).
#
# Runs in a private mount namespace; the daemon is killed and the mount
# removed at exit whatever happens (mount_lib.sh).
set -u
. "$(dirname "$0")/mount_lib.sh"

MMAPFS=$(realpath "$1")
MKFS=$(realpath "$2")
FSCK=$(realpath "$3")
MFSX=$(realpath "$4")
MFSSTRESS=$(realpath "$5")
OPS=${MMAPFS_TOOLS_OPS:-50000}

mnt_enter_ns "$@"
mnt_setup mmapfs-tools.XXXXXX
MNT=$T/mnt
MNT_POINTS+=("$MNT")
PID=""
test_stop() { [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null; }

die() {
	echo "FAIL: $*"
	exit 1
}

mount_fs() {
	mnt_daemon "$MNT" "$T/daemon.log" "$MMAPFS" -f "$T/img" "$MNT"
	local rc=$?
	PID=$MNT_PID
	[ "$rc" -eq 0 ] || { cat "$T/daemon.log"; die "mmapfs did not mount"; }
}

umount_fs() {
	fusermount3 -u "$MNT" || die "unmount failed"
	wait "$PID" || die "mmapfs exited with status $?"
	PID=""
}

mkdir "$MNT" || exit 1
"$MKFS" -q -s 1G "$T/img" || die "mkfs"
mount_fs

for seed in 1 2 3 4; do
	echo "== mfsx seed $seed, $OPS ops"
	"$MFSX" -q -S "$seed" -N "$OPS" -l 2097152 -o 131072 -c 2000 \
		--require-all "$MNT/fsx.$seed" || die "mfsx seed $seed"
done

echo "== mfsstress 4 x 20000"
mkdir "$MNT/stress" || die "mkdir"
"$MFSSTRESS" -p 4 -n 20000 -S 7 -d "$MNT/stress" --require-all ||
	die "mfsstress"

umount_fs
echo "== fsck.mmapfs -fn"
"$FSCK" -fn "$T/img" || die "fsck found problems (exit $?)"
echo "PASS"
