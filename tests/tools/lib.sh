# shellcheck shell=bash
# SPDX-License-Identifier: MIT
#
# lib.sh — sourced by the tool tests: a scratch directory to run in.
#
# tools_dir_setup sets $T to a fresh empty directory and removes it (and
# unmounts what it mounted) at exit:
#   - under $MMAPFS_TOOLS_DIR when set (point it at a mounted mmapfs, or any
#     filesystem under test);
#   - else on a private tmpfs mounted for the test when root can mount;
#   - else under /dev/shm (tmpfs on Debian).

_tools_mounted=""
_tools_top=""

_tools_cleanup() {
	if [ -n "$_tools_mounted" ]; then
		umount "$_tools_mounted" 2>/dev/null || umount -l "$_tools_mounted" 2>/dev/null
	fi
	[ -n "$_tools_top" ] && rm -rf "$_tools_top"
}

tools_dir_setup() {
	trap _tools_cleanup EXIT
	if [ -n "${MMAPFS_TOOLS_DIR:-}" ]; then
		_tools_top=$(mktemp -d "$MMAPFS_TOOLS_DIR/tools.XXXXXX") || exit 1
		T=$_tools_top
		echo "scratch: $T (MMAPFS_TOOLS_DIR)"
		return
	fi
	if [ -d /dev/shm ] && [ -w /dev/shm ]; then
		_tools_top=$(mktemp -d /dev/shm/mmapfs-tools.XXXXXX) || exit 1
	else
		_tools_top=$(mktemp -d "${TMPDIR:-/tmp}/mmapfs-tools.XXXXXX") || exit 1
	fi
	T=$_tools_top
	if [ "$(id -u)" = 0 ] && mkdir "$T/mnt" &&
	   mount -t tmpfs -o size=512m,mode=0755 mmapfs-tools "$T/mnt" 2>/dev/null; then
		_tools_mounted=$T/mnt
		T=$T/mnt
		echo "scratch: $T (private tmpfs)"
	else
		echo "scratch: $T"
	fi
}
