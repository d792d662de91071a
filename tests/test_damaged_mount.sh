#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_damaged_mount.sh MMAPFS MKFS FSCK DAMAGE — the daemon on damaged
# images.
#
# DAMAGE (tests/mfs_damage.c) builds a populated base image and makes one
# kind of damage to a copy of it: bad checksums, bad block pointers, a
# pointer loop, item bounds, out-of-range and shared extents, blocks both
# used and free, bad entry name lengths, a directory cycle, bad modes and
# link counts, a stray orphan entry, a missing symlink chunk, a bad xattr,
# garbage superblocks, a truncated image (see `mfs_damage list`). For each
# kind the daemon is started in the foreground on the damaged copy, and must
# do what mmapfs(8) says and mfs_damage's table expects of that kind:
#   - refused: a non-zero exit (not a signal), exactly one line on stderr,
#     "mmapfs: ...", nothing mounted; when the line says "corruption", it
#     names the repair command, fsck.mmapfs -y repairs the image and it
#     then mounts;
#   - eio: it mounts, and a workload — find + stat of everything, every
#     file read, ls -laR, getfattr -R, readlink, a new file written and
#     fsync'd, rm -rf of the damaged subtree — meets the damage: EIO, a
#     one-line "mmapfs: corruption: ..." in the log, and from then on the
#     file system is read-only (a new file: EROFS); at unmount the daemon
#     exits with 1 ("could not close the image cleanly");
#   - logged: the same, except that no reader sees EIO (the damage is found
#     writing or freeing blocks);
#   - none: it mounts, serves the image, logs no corruption, exits 0.
# Every step of the workload gets only normal results, EIO or EROFS (each
# under `timeout`: a hang fails); the daemon must still answer after it.
# Never a core dump, a sanitizer report or a signal. Then fsck.mmapfs -fn
# must run on what the daemon left (exit 0, 4 or 8; no signal).
#
# Then the read-only fallback after a failed commit (mmapfs(8),
# "Durability"), with the daemon's MMAPFS_TEST_FAIL_SYNCS hook as a disk
# that fails: fsync gets EIO, a second fsync does not claim success, later
# changes get EROFS, the log says so in one line, the daemon exits 1 at
# unmount, and the image is as of the last commit and clean.
#
# MMAPFS_DAMAGE_KINDS="kind ..." runs only those kinds.
#
# Runs in a private mount namespace; every daemon started here is killed
# and every mount removed at exit, whatever happens (mount_lib.sh).
set -u
. "$(dirname "$0")/mount_lib.sh"

MMAPFS=$(realpath "$1")
MKFS=$(realpath "$2")
FSCK=$(realpath "$3")
DAMAGE=$(realpath "$4")

mnt_enter_ns "$@"
mnt_setup mmapfs-damaged.XXXXXX
MNT=$T/mnt
MNT_POINTS+=("$MNT")
PID=""
test_stop() { [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null; }
FAILS=0
KIND=setup

fail() {
	echo "FAIL: $KIND: $*"
	FAILS=$((FAILS + 1))
}

mounted() { grep -qF " $MNT " /proc/mounts; }

# A daemon's exit status: not a signal, no sanitizer report, no core.
check_exit() {
	local rc=$1 what=$2
	if [ "$rc" -ge 128 ]; then
		fail "$what: daemon killed by signal $((rc - 128))"
	fi
	if grep -q "Sanitizer\|runtime error\|core dumped" "$T/log"; then
		fail "$what: sanitizer report or core dump"
	fi
}

# wait_exit: up to 60 s for the daemon to exit; its status in RC.
wait_exit() {
	local i
	for i in $(seq 600); do
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$PID" 2>/dev/null; then
		fail "daemon did not exit"
		kill -KILL "$PID"
	fi
	wait "$PID"
	RC=$?
	PID=""
}

# step NAME CMD...: run CMD (stdout dropped, stderr kept) under a timeout;
# every line of stderr must be an EIO, or a consequence of one named in
# $ALLOW (a regex).
step() {
	local name=$1 rc bad
	shift
	timeout -k 5 60 "$@" >/dev/null 2>"$T/step.err"
	rc=$?
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		fail "$name: hung (killed after 60 s)"
		return
	fi
	if [ -s "$T/step.err" ]; then
		grep -q "Input/output error" "$T/step.err" && EIO=1
		# Once the daemon has found corruption the volume takes no more
		# changes (mmapfs(8)): EROFS, like ext4's errors=remount-ro.
		local erofs='^$'
		grep -q "^mmapfs: corruption: " "$T/log" && erofs="Read-only file system"
		bad=$(grep -v "Input/output error" "$T/step.err" | grep -v "$erofs" |
			grep -Ev "${ALLOW:-^\$}" | head -3)
		[ -n "$bad" ] && fail "$name: unexpected error: $bad"
	fi
	# Nothing but EIO may fail a step (a failing command must have said
	# why, on stderr).
	if [ "$rc" != 0 ] && [ ! -s "$T/step.err" ]; then
		fail "$name: exit status $rc without a message"
	fi
}

# start_daemon: mmapfs -f on $T/img, stderr in $T/log, PID set; waits
# until it mounted or exited (up to 10 s).
start_daemon() {
	mnt_daemon "$MNT" "$T/log" "$MMAPFS" -f "$T/img" "$MNT"
	PID=$MNT_PID
}

mkdir "$MNT" || exit 1
"$DAMAGE" base "$T/base.img" || { echo "FAIL: cannot build the base image"; exit 1; }
"$FSCK" -fn "$T/base.img" >"$T/fsck.out" 2>&1 ||
	{ cat "$T/fsck.out"; echo "FAIL: the base image is not clean"; exit 1; }

KIND_TABLE=$("$DAMAGE" list) || { echo "FAIL: mfs_damage list"; exit 1; }
KINDS=${MMAPFS_DAMAGE_KINDS:-$(echo "$KIND_TABLE" | cut -d' ' -f1)}
NKINDS=0
NREFUSED=0
NMOUNTED=0
NREPAIRED=0
for KIND in $KINDS; do
	NKINDS=$((NKINDS + 1))
	cp --sparse=always "$T/base.img" "$T/img"
	EXPECT=$(echo "$KIND_TABLE" | awk -v k="$KIND" '$1 == k { print $2 }')
	[ -n "$EXPECT" ] || { fail "not in mfs_damage's table"; continue; }
	SUB=$("$DAMAGE" "$KIND" "$T/img") || { fail "mfs_damage failed"; continue; }
	EIO=0
	: >"$T/log"
	start_daemon
	if ! mounted; then
		# Refused: one line, a non-zero status, no signal.
		wait_exit
		rc=$RC
		check_exit "$rc" "refusal"
		[ "$rc" != 0 ] || fail "refused with exit status 0"
		[ "$(wc -l <"$T/log")" = 1 ] ||
			fail "refusal is not one line: $(head -c 1000 "$T/log")"
		grep -q "^mmapfs: " "$T/log" || fail "refusal does not start with 'mmapfs: '"
		echo "$KIND: refused, status $rc: $(head -c 200 "$T/log")"
		[ "$rc" = 1 ] || fail "refused with exit status $rc, not 1"
		[ "$EXPECT" = refused ] || fail "refused, but it must mount ($EXPECT)"
		NREFUSED=$((NREFUSED + 1))
		# The repair path a user follows: the refusal names the
		# command, and fsck.mmapfs -y (no -f: the image may say it is
		# clean) repairs what the mount refused; the mount then works.
		if grep -q "corruption:" "$T/log"; then
			grep -qF "repair it with: fsck.mmapfs -f -y $T/img" "$T/log" ||
				fail "the refusal does not name the repair command"
			"$FSCK" -y "$T/img" >"$T/fsck.out" 2>&1
			frc=$?
			[ "$frc" = 1 ] ||
				fail "fsck.mmapfs -y exit $frc, not 1 (repaired): $(tail -3 "$T/fsck.out")"
			start_daemon
			if mounted; then
				ls -la "$MNT" >/dev/null || fail "ls after the repair"
				umount "$MNT"
				wait_exit
				[ "$RC" = 0 ] || fail "daemon exit $RC after the repair"
				"$FSCK" -fn "$T/img" >"$T/fsck.out" 2>&1 ||
					fail "not clean after the repair: $(tail -3 "$T/fsck.out")"
				echo "$KIND: fsck.mmapfs -y repaired it; mounted, clean"
				NREPAIRED=$((NREPAIRED + 1))
			else
				wait_exit
				fail "still refused after fsck.mmapfs -y: $(head -c 300 "$T/log")"
			fi
		fi
		continue
	fi
	NMOUNTED=$((NMOUNTED + 1))
	[ "$EXPECT" != refused ] || fail "mounted, but it must be refused"

	# A directory cycle: the kernel refuses a second name for a directory
	# inode it has cached (ELOOP); find may see the loop itself.
	ALLOW="^\$"
	[ "$KIND" = dir-cycle ] &&
		ALLOW="Too many levels of symbolic links|File system loop detected"
	step "find + stat" find "$MNT" -xdev -exec stat {} +
	step "read every file" find "$MNT" -xdev -type f -exec cat {} +
	step "readlink" find "$MNT" -xdev -type l -exec readlink -v {} +
	step "ls -laR" ls -laR "$MNT"
	step "getfattr" getfattr -R -h --absolute-names -d -m - "$MNT"
	step "write + fsync" dd if=/dev/urandom of="$MNT/new-file" bs=64k count=4 \
		conv=fsync status=none
	# rm -rf: a directory whose entries could not be removed (EIO) is
	# not empty.
	ALLOW="Directory not empty|${ALLOW}"
	if [ "$SUB" != "-" ]; then
		step "rm -rf $SUB" rm -rf "$MNT/$SUB"
	fi
	ALLOW=""

	# The daemon still answers.
	kill -0 "$PID" 2>/dev/null || fail "daemon died during the workload"
	# Answers, if only with EIO: the damage may be in the leaf that holds
	# the root directory's inode (where depends on mkfs's random hash
	# seed), and after the workload changed the root the kernel asks for
	# its attributes again.
	timeout 10 stat "$MNT" >/dev/null 2>"$T/stat.err"
	rc=$?
	if [ "$rc" = 124 ] || { [ "$rc" != 0 ] &&
		! grep -q "Input/output error" "$T/stat.err"; }; then
		fail "the mount does not answer (stat: status $rc: $(head -c 200 "$T/stat.err"))"
	fi
	timeout 10 ls "$MNT" >/dev/null 2>"$T/ls.err" ||
		grep -q "Input/output error" "$T/ls.err" || fail "readdir of the root fails"

	# What the kind must have done by now.
	corrupt=0
	grep -q "^mmapfs: corruption: " "$T/log" && corrupt=1
	case $EXPECT in
	eio|logged)
		[ "$corrupt" = 1 ] || fail "no corruption line in the log ($EXPECT)"
		[ "$EXPECT" = logged ] || [ "$EIO" = 1 ] ||
			fail "the workload met no EIO"
		# Read-only from the first damage found: a new name is EROFS.
		if timeout 10 touch "$MNT/after-damage" 2>"$T/touch.err"; then
			fail "a change after the damage was found succeeded (not read-only)"
		else
			grep -q "Read-only file system" "$T/touch.err" ||
				fail "a change after the damage: $(cat "$T/touch.err"), not EROFS"
		fi
		;;
	none)
		[ "$corrupt" = 0 ] ||
			fail "corruption logged: $(grep -m1 corruption "$T/log")"
		;;
	esac

	timeout 60 fusermount3 -u "$MNT" 2>"$T/umount.err" ||
		fail "unmount failed: $(cat "$T/umount.err")"
	wait_exit
	rc=$RC
	mounted && { fail "still mounted"; fusermount3 -u -z "$MNT"; }
	check_exit "$rc" "unmount"
	case $EXPECT:$rc in
	eio:1|logged:1|none:0) ;;
	*) fail "daemon exit status $rc after unmount ($EXPECT)" ;;
	esac
	if [ "$EIO" = 1 ] || [ "$rc" = 1 ]; then
		grep -q "^mmapfs: corruption: " "$T/log" ||
			fail "EIO, but no corruption message in the log: $(head -c 1000 "$T/log")"
	fi
	# Every line of the log is one message of ours.
	bad=$(grep -v "^mmapfs: " "$T/log" | head -3)
	[ -z "$bad" ] || fail "log lines not from mmapfs: $bad"

	"$FSCK" -fn "$T/img" >"$T/fsck.out" 2>&1
	frc=$?
	case $frc in
	0|4|8) ;;
	*) fail "fsck.mmapfs -fn exit $frc: $(tail -5 "$T/fsck.out")" ;;
	esac
	grep -q "Sanitizer\|runtime error" "$T/fsck.out" && fail "fsck: sanitizer report"
	echo "$KIND: mounted; $( [ "$EIO" = 1 ] && echo "EIO seen" || echo "no EIO"); daemon exit $rc; fsck -fn exit $frc"
done

# ---- a disk that fails a commit's sync -----------------------------
KIND=sync-failure
"$MKFS" -q -F "$T/img" 16M || fail "mkfs"
: >"$T/log"
MMAPFS_TEST_FAIL_SYNCS=1 mnt_daemon "$MNT" "$T/log" "$MMAPFS" -f -o commit=0 "$T/img" "$MNT"
PID=$MNT_PID
if mounted; then
	python3 - "$MNT" <<'PYEOF' || fail "fsync after a failed commit"
import errno, os, sys
fd = os.open(sys.argv[1] + "/file", os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"x" * 10000)
for attempt in (1, 2):
    try:
        os.fsync(fd)
        sys.exit("fsync %d succeeded although the commit's sync failed"
                 % attempt)
    except OSError as e:
        # The first is the failed commit (EIO); a retry must not claim
        # the data durable (EIO or EROFS: the volume is read-only now).
        want = (errno.EIO,) if attempt == 1 else (errno.EIO, errno.EROFS)
        if e.errno not in want:
            sys.exit("fsync %d: %s" % (attempt, e))
os.close(fd)
PYEOF
	if timeout 10 mkdir "$MNT/later" 2>"$T/mkdir.err"; then
		fail "a change after the failed commit succeeded (not read-only)"
	else
		grep -q "Read-only file system" "$T/mkdir.err" ||
			fail "a change after the failed commit: $(cat "$T/mkdir.err"), not EROFS"
	fi
	[ "$(grep -c "read-only" "$T/log")" = 1 ] ||
		fail "not one log line saying read-only: $(head -c 600 "$T/log")"
	timeout 60 fusermount3 -u "$MNT" || fail "unmount"
	wait_exit
	[ "$RC" = 1 ] || fail "daemon exit $RC after a failed commit, not 1"
	check_exit "$RC" "sync failure"
	"$FSCK" -fn "$T/img" >"$T/fsck.out" 2>&1 ||
		fail "image not clean after the failed commit: $(tail -3 "$T/fsck.out")"
	# The image is as of the last commit: nothing written after it.
	start_daemon
	if mounted; then
		[ -z "$(ls -A "$MNT" | grep -v lost+found)" ] ||
			fail "files from after the failed commit: $(ls "$MNT")"
		umount "$MNT"
		wait_exit
	else
		wait_exit
		fail "does not mount after the failed commit: $(head -c 300 "$T/log")"
	fi
	echo "sync-failure: fsync EIO, then EROFS; one log line; exit 1; the last commit kept"
else
	wait_exit
	fail "did not mount: $(head -c 300 "$T/log")"
fi

echo "$NKINDS damage kinds: $NREFUSED refused ($NREPAIRED repaired by fsck.mmapfs -y), $NMOUNTED mounted; $FAILS failures"
[ "$NREPAIRED" -ge 2 ] || [ -n "${MMAPFS_DAMAGE_KINDS:-}" ] ||
	fail "fewer than 2 refused kinds were repaired"
[ "$NKINDS" -ge 10 ] || [ -n "${MMAPFS_DAMAGE_KINDS:-}" ] || fail "fewer than 10 kinds"
[ "$FAILS" = 0 ]
