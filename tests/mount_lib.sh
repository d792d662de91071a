# shellcheck shell=bash
# SPDX-License-Identifier: MIT
#
# mount_lib.sh — sourced by the shell tests that mount (test_mount_cli.sh,
# test_mount_user.sh, test_crash_daemon.sh, test_tools_mmapfs.sh,
# test_damaged_mount.sh): the private mount namespace they run in, their
# scratch directory, and the exit trap that takes down whatever they
# mounted, whether the test passes, fails, or is stopped by a signal.
#
# A test sources it from its own directory before anything else, which
# works from `meson test` (it passes the scripts by their source path) and
# by hand alike:
#     . "$(dirname "$0")/mount_lib.sh"
#
# Environment read: TMPDIR, MMAPFS_TEST_NS, MMAPFS_TEST_KEEP. Shell
# variables set: T, MNT_POINTS, MNT_PID. Names starting with mnt_ and _mnt_ are
# the library's.
#
# Functions:
#
#   mnt_enter_ns "$@"
#     Unless already inside (MMAPFS_TEST_NS is the script's name, e.g.
#     test_mount_cli), checks that unshare(1) can make a private mount
#     namespace (else "NAME: cannot make a mount namespace (unshare -m);
#     need root", exit 1: not a skip, as the mount suite needs root) and
#     re-execs `bash "$0" "$@"` in one, with MMAPFS_TEST_NS exported.
#     Returns only inside it, after lazily unmounting the copies of FUSE
#     mounts the namespace inherited (another test's live mount, held in
#     the copy, would outlive its unmount). Mounts made there are
#     invisible outside and die with the namespace, but only once its
#     last process is gone: a
#     daemon left running keeps them, hence the cleanup below. Setting
#     MMAPFS_TEST_NS yourself in a namespace you made runs the test there,
#     to look at its mounts afterwards.
#
#   mnt_setup TEMPLATE
#     Sets T to a new directory "${TMPDIR:-/tmp}/TEMPLATE" (mktemp -d;
#     exit 1 if it cannot), empties MNT_POINTS, and installs the traps:
#     EXIT runs mnt_cleanup; TERM, INT and HUP exit 1 (which runs it too).
#     Call it once, after mnt_enter_ns.
#
#   mnt_mounted DIR
#     True if DIR is a mount point in this namespace.
#
#   mnt_daemon DIR LOG CMD [ARG...]
#     Runs CMD ARG... (a daemon that mounts on DIR and stays in the
#     foreground) in the background with its stderr in LOG, sets MNT_PID
#     to its process id, and waits up to 10 s for DIR to become a mount
#     point: returns 0 once it is, 1 if the daemon exits first or the
#     time runs out. The daemon is a job of the calling shell (wait works
#     on it); stopping it is the caller's (test_stop).
#
# Variables and functions the test provides:
#
#   MNT_POINTS (array)    every directory the test mounts on, under $T or
#                         elsewhere (a bind mount over /usr/local/sbin);
#                         appended to in the order they are set up, before
#                         the mount is tried (or right after, where the
#                         directory may be a mount point of someone else's).
#   test_stop (function)  optional: kills what the test started (daemons,
#                         workers) that may still run; called first at exit.
#
# mnt_cleanup, at exit:
#   1. test_stop, if defined (killed first, a daemon that no longer
#      answers cannot hold up the unmount);
#   2. every entry of MNT_POINTS still mounted, the last first: umount,
#      else fusermount3 -u -z, else umount -l;
#   3. waits for the test's background jobs;
#   4. if anything is still mounted under $T: prints "FAIL: mounts left
#      behind:" and those /proc/mounts lines, detaches them and exits 1,
#      whatever the test's status was;
#   5. removes $T, unless MMAPFS_TEST_KEEP is set ("kept $T" then).
# The test's exit status is kept otherwise.

mnt_enter_ns() {
	local name m
	name=$(basename "$0" .sh)
	if [ "${MMAPFS_TEST_NS:-}" = "$name" ]; then
		# unshare copied every mount of the parent namespace, other
		# tests' FUSE mounts too; held here, a copy keeps that
		# filesystem, and so its daemon, alive after the other test
		# unmounts it, until this script ends (test_mount's daemons
		# lingered for a minute and were killed). Drop our copies.
		awk '$3 == "fuse" || $3 ~ /^fuse\./ { print $2 }' \
			/proc/self/mounts |
			while read -r m; do umount -l "$m" 2>/dev/null; done
		return 0
	fi
	if ! unshare --mount --propagation private true 2>/dev/null; then
		echo "$name: cannot make a mount namespace (unshare -m); need root"
		exit 1
	fi
	export MMAPFS_TEST_NS=$name
	exec unshare --mount --propagation private bash "$0" "$@"
}

mnt_setup() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/$1") || exit 1
	MNT_POINTS=()
	trap mnt_cleanup EXIT
	trap 'exit 1' TERM INT HUP
}

mnt_mounted() {
	awk -v d="$1" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo
}

mnt_daemon() {
	local dir=$1 log=$2
	shift 2
	"$@" 2>"$log" &
	MNT_PID=$!
	for _ in $(seq 100); do
		mnt_mounted "$dir" && return 0
		kill -0 "$MNT_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# Mount points under $T in this namespace, deepest first.
_mnt_under_t() {
	awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# shellcheck disable=SC2317  # called by the trap
mnt_cleanup() {
	local i m
	# stderr dropped: bash's "Killed" notice for a daemon stopped here is
	# no news.
	{
		declare -F test_stop >/dev/null && test_stop
		for ((i = ${#MNT_POINTS[@]} - 1; i >= 0; i--)); do
			m=${MNT_POINTS[i]}
			if mnt_mounted "$m"; then
				umount "$m" || fusermount3 -u -z "$m" || umount -l "$m"
			fi
		done
		wait
	} 2>/dev/null
	if [ -n "$(_mnt_under_t)" ]; then
		echo "FAIL: mounts left behind:"
		grep -F " $T/" /proc/mounts
		for m in $(_mnt_under_t); do
			umount -l "$m"
		done
		exit 1
	fi
	if [ -n "${MMAPFS_TEST_KEEP:-}" ]; then
		echo "kept $T"
		return
	fi
	rm -rf "$T"
}
