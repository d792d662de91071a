#!/bin/bash
# SPDX-License-Identifier: MIT
#
# demo.sh — the README "Run" command: build mmapfs in build/ and show what
# it can do today. Installs packages first when run as root.
#
# It only uses programs that exist in this tree; for each one that has
# not been written yet it says so rather than pretending.
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
	return 1
}

step "packages"
contrib/install-deps.sh

step "build (build/)"
if [ ! -d build ]; then
	meson setup build
fi
ninja -C build

img=build/demo.img
mkfs=$(find_prog mkfs.mmapfs || true)
fsck=$(find_prog fsck.mmapfs || true)
daemon=$(find_prog mmapfs || true)

if [ -n "$mkfs" ]; then
	step "format a 64 MiB demo image: $mkfs -F -L demo -s 64M $img"
	"$mkfs" -F -L demo -s 64M "$img"
	ls -ls "$img"
else
	step "mkfs.mmapfs: not built yet (no demo image made)"
fi

if [ -n "$fsck" ] && [ -f "$img" ]; then
	step "check it: $fsck -n $img"
	"$fsck" -n "$img"
else
	step "fsck.mmapfs: not available yet"
fi

if [ -n "$daemon" ] && [ -f "$img" ]; then
	step "the daemon is built; to mount the demo image:"
	echo "    mkdir -p /tmp/mmapfs-demo && $daemon $img /tmp/mmapfs-demo"
	echo "    ... use it ...; fusermount3 -u /tmp/mmapfs-demo"
else
	step "mmapfs (the FUSE daemon): not available yet; nothing can be mounted"
fi

step "done. Tests: contrib/setup-and-test.sh"
