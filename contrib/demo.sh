#!/bin/bash
# SPDX-License-Identifier: MIT
#
# demo.sh — the README "Run" command: build mmapfs in build/, format a
# demo image (filled from contrib/ with mkfs -d), check it, mount it at
# /tmp/mmapfs-demo, and print how to use and unmount it. Installs packages
# first when run as root. MMAPFS_DEMO_IMAGE and MMAPFS_DEMO_MNT override
# the image and the mount point.
set -euo pipefail

cd "$(dirname "$0")/.."

step() {
	printf '\n==> %s\n' "$*"
}

find_prog() {
	local p
	for p in "build/$1" "build/src/$1"; do
		if [ -x "$p" ]; then
			echo "$p"
			return 0
		fi
	done
	echo "demo.sh: $1 was not built (see the ninja output above)" >&2
	return 1
}

step "packages"
contrib/install-deps.sh

step "build (build/)"
if [ ! -d build ]; then
	meson setup build
fi
ninja -C build

img=${MMAPFS_DEMO_IMAGE:-build/demo.img}
mnt=${MMAPFS_DEMO_MNT:-/tmp/mmapfs-demo}
mkfs=$(find_prog mkfs.mmapfs)
fsck=$(find_prog fsck.mmapfs)
daemon=$(find_prog mmapfs)

if grep -qF " $mnt " /proc/mounts; then
	step "unmount the previous demo at $mnt"
	fusermount3 -u "$mnt" || umount "$mnt"
	# The daemon commits and closes the image after the unmount returns;
	# mkfs -F, unlike mmapfs and fsck.mmapfs, does not wait for it.
	for _ in $(seq 300); do
		flock -n -x "$img" true 2>/dev/null && break
		sleep 0.1
	done
fi

step "format a 1 GiB demo image (sparse), filled from contrib/: $img"
"$mkfs" -F -L demo -s 1G -d contrib "$img"
ls -ls "$img"

step "check it: $fsck -f -n $img"
"$fsck" -f -n "$img"

step "mount it: $daemon $img $mnt"
mkdir -p "$mnt"
"$daemon" "$img" "$mnt"
df -h "$mnt"
ls -l "$mnt"

cat <<MSG

==> mmapfs is mounted at $mnt (image: $(realpath "$img")).
    Use it like any directory:   cp -r /usr/include $mnt/ ; ls $mnt
    Unmount it (commits, marks the image clean):
                                 fusermount3 -u $mnt     (or: umount $mnt)
    Check the image afterwards:  $fsck -f -n $img
    Mount it again:              $daemon $img $mnt
    Tests: contrib/setup-and-test.sh
MSG
