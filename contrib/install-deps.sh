#!/bin/bash
# SPDX-License-Identifier: MIT
#
# install-deps.sh — install what building and testing mmapfs needs on
# Debian 12 (bookworm). Run as root; as another user it only checks that
# everything is already installed and says what is missing.
#
# Packages:
#   build         meson ninja-build gcc libc6-dev pkg-config
#   libraries     libfuse3-dev libcmocka-dev liburing-dev (FUSE over
#                 io_uring, src/fuse_uring.c)
#   FUSE mounts   fuse3 (fusermount3, mount.fuse3)
#   tests         e2fsprogs dosfstools xfsprogs btrfs-progs util-linux
#                 exfatprogs squashfs-tools (foreign-filesystem images for
#                 mkfs's signature checks: a missing tool is a SKIP),
#                 attr acl (getfattr/setfattr, getfacl/setfacl on a mount),
#                 python3 (test helpers), procps (pgrep, in the mount
#                 tests), mount (mount, losetup; a tmpfs for a full host)
#   fuzzing       clang libclang-rt-14-dev (libFuzzer and the sanitizers'
#                 runtimes for clang: contrib/fuzz.sh, tests/fuzz/)
set -euo pipefail

PACKAGES=(
	meson ninja-build gcc libc6-dev pkg-config
	libfuse3-dev libcmocka-dev liburing-dev
	fuse3
	e2fsprogs dosfstools xfsprogs btrfs-progs util-linux exfatprogs
	squashfs-tools
	attr acl python3 procps mount
	clang libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ "$(id -u)" -ne 0 ]; then
	if [ ${#missing[@]} -ne 0 ]; then
		echo "install-deps: missing packages: ${missing[*]}" >&2
		echo "install-deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "install-deps: all packages present (not root: nothing installed)"
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${PACKAGES[@]}"
