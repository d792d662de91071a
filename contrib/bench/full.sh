#!/bin/bash
# SPDX-License-Identifier: MIT
#
# full.sh [BUILD_DIR] — what a writer sees when a 64 MiB filesystem fills:
# mmapfs, kernel ext4 on a loop device and fuse2fs side by side, one run.
#
# For each: `dd if=/dev/zero bs=1M` until it fails (how it ends, and the
# bytes dd was told were written), the size stat shows while mounted, the
# size after a remount (what was stored: the overshoot is what write(2)
# accepted beyond it), and then, on a fresh filesystem, how many files of
# 100,940 bytes could be written, fsync'd and closed before the first
# error, and how many of them read back intact after a remount.
# Needs root, /dev/fuse, fuse2fs (package fuse2fs) and a loop device.
set -u
BUILD=${1:-build}
BUILD=$(realpath "$BUILD")
MMAPFS=$BUILD/src/mmapfs
MKFS=$BUILD/src/mkfs.mmapfs
W=$(mktemp -d /var/tmp/mmapfs-full.XXXXXX)
MNT=$W/mnt
mkdir -p "$MNT"
LOOP=""
cleanup() {
	mountpoint -q "$MNT" && umount "$MNT"
	[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

# mount_it KIND: a mount of $W/img on $MNT.
mount_it() {
	case $1 in
	mmapfs) "$MMAPFS" "$W/img" "$MNT" ;;
	ext4) LOOP=$(losetup -f --show "$W/img") && mount "$LOOP" "$MNT" ;;
	fuse2fs) fuse2fs -o fakeroot "$W/img" "$MNT" >/dev/null 2>&1 ;;
	esac
	for _ in $(seq 100); do mountpoint -q "$MNT" && return 0; sleep 0.1; done
	return 1
}
umount_it() {
	umount "$MNT"
	[ -n "$LOOP" ] && { losetup -d "$LOOP"; LOOP=""; }
	# A FUSE daemon may still be closing the image.
	sleep 1
}
fresh() {
	rm -f "$W/img"
	case $1 in
	mmapfs) "$MKFS" -q -s 64M "$W/img" ;;
	*) truncate -s 64M "$W/img" && mkfs.ext4 -q -F "$W/img" ;;
	esac
	mount_it "$1"
}

printf '| filesystem | dd ends | dd wrote | size while mounted | stored (after remount) | fsync'"'"'d files | intact after remount |\n'
printf '|---|---|---|---|---|---|---|\n'
for kind in mmapfs ext4 fuse2fs; do
	fresh "$kind" || { echo "| $kind | cannot mount |"; continue; }
	out=$(timeout 60 dd if=/dev/zero of="$MNT/fill" bs=1M 2>&1)
	rc=$?
	how=$(printf '%s\n' "$out" | grep -o 'No space left on device' | head -1)
	[ "$rc" = 124 ] && how="still writing after 60 s"
	wrote=$(printf '%s\n' "$out" | awk '/bytes/ { print $1 }' | tail -1)
	size=$(stat -c %s "$MNT/fill")
	umount_it
	mount_it "$kind"
	stored=$(stat -c %s "$MNT/fill")
	umount_it
	fresh "$kind"
	files=$(python3 - "$MNT" <<'EOF'
import hashlib, os, sys
mnt = sys.argv[1]
n = 0
while n < 100000:
    data = os.urandom(100940)
    try:
        fd = os.open("%s/f%05d" % (mnt, n), os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            if os.write(fd, data) != len(data):
                break
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        break
    open("%s/../sum.%05d" % (mnt, n), "w").write(hashlib.sha256(data).hexdigest())
    n += 1
print(n)
EOF
)
	umount_it
	mount_it "$kind"
	intact=$(python3 - "$MNT" "$files" <<'EOF'
import hashlib, sys
mnt, n = sys.argv[1], int(sys.argv[2])
ok = 0
for i in range(n):
    try:
        got = hashlib.sha256(open("%s/f%05d" % (mnt, i), "rb").read()).hexdigest()
    except OSError:
        continue
    ok += got == open("%s/../sum.%05d" % (mnt, i)).read()
print(ok)
EOF
)
	rm -f "$W"/sum.*
	umount_it
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$kind" "${how:-exit $rc}" \
		"$wrote" "$size" "$stored" "$files" "$intact"
done
