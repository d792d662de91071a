#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_mount_user.sh MMAPFS MKFS FSCK — mmapfs used by an ordinary user.
#
# The people mmapfs is for often have no root: a CI job, a sandbox. This
# runs mkfs.mmapfs, mmapfs and fsck.mmapfs as the user "nobody": the
# daemon mounts through the setuid fusermount3 (libfuse does that when it
# is not root), files get the user's ownership, root is kept out of the
# mount (no allow_other), fusermount3 -u and SIGTERM unmount it, and the
# image is clean afterwards.
#
# Runs in a private mount namespace (unshare -m). /dev/fuse must be usable
# by the user; where it is not (mode 0600 on some machines), a node with
# mode 0666 is bind-mounted over it inside the namespace only. The
# programs are copied into the test directory, so the build tree need not
# be readable by the user. Every mount made here is removed at exit, and
# the daemon killed, whatever happens (mount_lib.sh).
set -u
. "$(dirname "$0")/mount_lib.sh"

mnt_enter_ns "$@"

USER_NAME=nobody
mnt_setup mount_user.XXXXXX
chmod 0755 "$T"
MNT_POINTS+=("$T/u/mnt" "$T/rootdir")
FAILS=0
CASE=setup
DPID=
test_stop() { [ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null; }

fail() {
	echo "FAIL: $CASE: $*"
	FAILS=$((FAILS + 1))
}

mounted() { awk -v d="$1" '$2 == d { f = 1 } END { exit !f }' /proc/mounts; }

# as_user CMD...: run CMD as the user, with a plain environment.
as_user() {
	setpriv --reuid="$USER_NAME" --regid="$(id -g "$USER_NAME")" --clear-groups \
		env -i PATH="$T/bin:/usr/bin:/bin" HOME="$T/u" "$@"
}

# wait_for COND ARG: up to 10 s.
wait_for() {
	local i
	for i in $(seq 100); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

mkdir "$T/bin" "$T/u" "$T/u/mnt"
export PATH="$T/bin:$PATH"
cp "$1" "$T/bin/mmapfs" && cp "$2" "$T/bin/mkfs.mmapfs" && cp "$3" "$T/bin/fsck.mmapfs" ||
	{ echo "test_mount_user: cannot copy the programs"; exit 1; }
chmod 0755 "$T/bin"/*
chown -R "$USER_NAME" "$T/u"

if ! as_user test -r /dev/fuse -a -w /dev/fuse; then
	# Inside this namespace only: a /dev/fuse the user may open.
	MNT_POINTS+=("$T/dev")
	mkdir "$T/dev" && mount -t tmpfs -o mode=0755 none "$T/dev" &&
		mknod -m 0666 "$T/dev/fuse" c 10 229 &&
		mount --bind "$T/dev/fuse" /dev/fuse && MNT_POINTS+=(/dev/fuse) || {
		echo "test_mount_user: cannot make /dev/fuse usable by $USER_NAME"
		exit 1
	}
fi

IMG=$T/u/disk.img
MNT=$T/u/mnt
UID_N=$(id -u "$USER_NAME")

CASE="mkfs as the user"
as_user mkfs.mmapfs -q -s 256M "$IMG" || fail "mkfs.mmapfs failed"
[ "$(stat -c %u "$IMG")" = "$UID_N" ] || fail "image not owned by the user"

CASE="mount as the user (fusermount3)"
if as_user mmapfs "$IMG" "$MNT" 2>"$T/err"; then
	mounted "$MNT" || fail "no mount after a zero exit"
	grep -q "fuse.mmapfs" <(awk -v d="$MNT" '$2 == d { print $3 }' /proc/mounts) ||
		fail "the mount is not fuse.mmapfs"
	# user_id= in the options: mounted on the user's behalf, not root's
	awk -v d="$MNT" '$2 == d { print $4 }' /proc/mounts | grep -q "user_id=$UID_N" ||
		fail "mount options lack user_id=$UID_N"
	DPID=$(pgrep -u "$USER_NAME" -f "mmapfs $IMG" | head -1)
	[ -n "$DPID" ] || fail "no daemon running as the user"
else
	fail "mmapfs exited $?: $(cat "$T/err")"
fi

if mounted "$MNT"; then
	CASE="files as the user"
	as_user sh -c "mkdir '$MNT/d' && echo hello > '$MNT/d/f' && ln -s f '$MNT/d/l' &&
		dd if=/dev/urandom of='$MNT/big' bs=64k count=64 status=none conv=fsync &&
		sync '$MNT/big'" || fail "writing on the mount failed"
	[ "$(as_user cat "$MNT/d/l")" = hello ] || fail "read back through the symlink"
	[ "$(as_user stat -c %u:%s "$MNT/d/f")" = "$UID_N:6" ] ||
		fail "owner/size: $(as_user stat -c %u:%s "$MNT/d/f")"
	SUM=$(as_user sha256sum "$MNT/big" | cut -d' ' -f1)
	# the user may not give files away (chown is root's)
	as_user chown 0 "$MNT/d/f" 2>/dev/null && fail "the user could chown to root"
	as_user chmod 0600 "$MNT/d/f" || fail "chmod of one's own file failed"

	CASE="root is kept out (no allow_other)"
	if stat "$MNT/d" >/dev/null 2>"$T/err"; then
		fail "root could enter the user's mount"
	else
		grep -q "Permission denied" "$T/err" || fail "root: $(cat "$T/err")"
	fi

	CASE="fusermount3 -u as the user"
	as_user fusermount3 -u "$MNT" || fail "fusermount3 -u failed"
	wait_for eval '! kill -0 '"$DPID"' 2>/dev/null' || fail "daemon still running"
	mounted "$MNT" && fail "still mounted"
	DPID=
	as_user fsck.mmapfs -n "$IMG" >"$T/fsck" 2>&1 || fail "fsck -n: $(tail -2 "$T/fsck")"
	grep -q clean "$T/fsck" || fail "image not marked clean: $(tail -2 "$T/fsck")"

	CASE="remount, data intact, SIGTERM unmounts"
	if as_user mmapfs "$IMG" "$MNT" 2>"$T/err"; then
		[ "$(as_user sha256sum "$MNT/big" | cut -d' ' -f1)" = "$SUM" ] ||
			fail "data changed across the remount"
		[ "$(as_user stat -c %a "$MNT/d/f")" = 600 ] || fail "mode lost"
		DPID=$(pgrep -u "$USER_NAME" -f "mmapfs $IMG" | head -1)
		kill -TERM "$DPID"
		wait_for eval '! kill -0 '"$DPID"' 2>/dev/null' || fail "daemon ignores SIGTERM"
		mounted "$MNT" && fail "still mounted after SIGTERM"
		DPID=
		as_user fsck.mmapfs -fn "$IMG" >"$T/fsck" 2>&1 || fail "fsck -fn: $(tail -2 "$T/fsck")"
	else
		fail "remount failed: $(cat "$T/err")"
	fi
fi

CASE="root makes an image for the user: -E root_owner=UID:GID"
mkfs.mmapfs -q -s 64M -E "root_owner=$UID_N:$(id -g "$USER_NAME")" "$T/u/given.img" &&
	chown "$USER_NAME" "$T/u/given.img" || fail "mkfs.mmapfs -E root_owner failed"
if as_user mmapfs "$T/u/given.img" "$MNT" 2>"$T/err"; then
	[ "$(as_user stat -c %u "$MNT")" = "$UID_N" ] || fail "root directory not the user's"
	as_user touch "$MNT/mine" || fail "the user cannot create files in /"
	# Without root the daemon cannot lower the mount's dirty limit:
	# write(2) must still end with ENOSPC, and what was not stored is an
	# error of the fsync (conv=fsync), never a silent loss.
	CASE="a full filesystem as the user"
	# Not zeros: a hole nobody made would read as zeros.
	head -c 1048576 /dev/zero | tr '\0' Z > "$T/u/Z"
	as_user sh -c "while cat '$T/u/Z'; do :; done | timeout 120 dd of='$MNT/fill' \
		bs=1M iflag=fullblock conv=fsync" 2>"$T/dd.err"
	rc=$?
	[ "$rc" = 124 ] && fail "dd still writing after 120 s"
	[ "$rc" = 0 ] && fail "dd did not fail on a full filesystem"
	grep -q "No space left on device" "$T/dd.err" ||
		fail "dd failed, but not with ENOSPC: $(cat "$T/dd.err")"
	as_user fusermount3 -u "$MNT" || fail "fusermount3 -u failed"
	wait_for eval '! mounted "$MNT"' || fail "still mounted"
	if as_user mmapfs "$T/u/given.img" "$MNT" 2>"$T/err"; then
		size=$(as_user stat -c %s "$MNT/fill")
		head -c "$size" /dev/zero | tr '\0' Z | as_user cmp - "$MNT/fill" ||
			fail "stored data is not what dd wrote (a hole?)"
		[ "$size" -le $((64 << 20)) ] || fail "$size bytes stored in 64 MiB"
		echo "full as the user: ENOSPC, $size bytes stored of 64 MiB"
		as_user fusermount3 -u "$MNT" || fail "fusermount3 -u failed"
		wait_for eval '! mounted "$MNT"' || fail "still mounted"
		fsck.mmapfs -fn "$T/u/given.img" >"$T/fsck" 2>&1 ||
			fail "fsck -fn: $(tail -2 "$T/fsck")"
	else
		fail "remount failed: $(cat "$T/err")"
	fi
else
	fail "mount failed: $(cat "$T/err")"
fi

CASE="the user may not mount over a directory of root's"
mkdir "$T/rootdir"
if as_user mmapfs "$IMG" "$T/rootdir" 2>"$T/err"; then
	fail "mounted over root's directory"
	fusermount3 -u -z "$T/rootdir"
else
	[ "$(wc -l <"$T/err")" -ge 1 ] && grep -q "^mmapfs: " "$T/err" ||
		fail "no 'mmapfs: ' message: $(cat "$T/err")"
fi

if [ "$FAILS" -gt 0 ]; then
	echo "test_mount_user: $FAILS failure(s)"
	exit 1
fi
echo "test_mount_user: all cases passed"
