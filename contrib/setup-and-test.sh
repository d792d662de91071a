#!/bin/bash
# SPDX-License-Identifier: MIT
#
# setup-and-test.sh — the one test command (README "Test", and .ci/run).
#
# On Debian 12 as root: installs the packages the project needs, checks
# layer discipline, builds with warnings as errors in build-ci/ and runs
# every test, then builds again with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-asan/ and runs every test again, then
# runs each fuzz harness (tests/fuzz/) for a bounded time with libFuzzer.
# Both build directories are recreated from scratch. Exits non-zero on the
# first failure, after printing the failing tests' logs.
#
# Environment: MMAPFS_SKIP_DEPS=1 skips the package step (for non-root use
# on a machine that already has everything); MMAPFS_FUZZ_SECONDS (default
# 45) is how long each fuzz harness runs.
set -euo pipefail

cd "$(dirname "$0")/.."

step() {
	printf '\n==> %s\n' "$*"
}

if [ "${MMAPFS_SKIP_DEPS:-0}" != 1 ]; then
	step "installing packages"
	contrib/install-deps.sh
fi

step "layer discipline"
contrib/check-layers.sh

build_and_test() {
	local dir=$1
	shift
	rm -rf "$dir"
	step "configure $dir: $*"
	meson setup "$dir" -Dwerror=true "$@"
	step "build $dir"
	ninja -C "$dir"
	step "test $dir"
	meson test -C "$dir" --print-errorlogs
}

# FUSE over io_uring (src/fuse_uring.c) serves requests only when the
# fuse module's enable_uring parameter is Y (Linux 6.14 and later; off by
# default). build-ci's tests run with it on, so every mount test goes
# through the rings where the kernel has them; build-asan's with it off,
# through /dev/fuse. The old value is put back at exit.
modprobe fuse 2>/dev/null || true
URING_PARAM=/sys/module/fuse/parameters/enable_uring
set_uring() {
	if [ -w "$URING_PARAM" ]; then
		echo "$1" > "$URING_PARAM"
		step "fuse enable_uring=$(cat "$URING_PARAM")"
	fi
}
if [ -w "$URING_PARAM" ]; then
	uring_old=$(cat "$URING_PARAM")
	trap 'echo "$uring_old" > "$URING_PARAM"' EXIT
fi

set_uring Y
build_and_test build-ci
set_uring N

# A release build optimises harder and finds more maybe-uninitialized
# paths than debugoptimized: it must compile clean too (not re-tested).
step "configure + build build-release (-O3, warnings as errors)"
rm -rf build-release
meson setup build-release -Dwerror=true --buildtype=release
ninja -C build-release

export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
build_and_test build-asan -Db_sanitize=address,undefined

# Coverage-guided fuzzing of everything that reads an image and of the
# command lines (tests/fuzz/), with ASan and UBSan: a bounded run of each
# harness, from the checked-in corpus. A crash, a leak, a hang or a broken
# promise fails here; contrib/fuzz.sh says how to reproduce it.
step "fuzz: every harness for ${MMAPFS_FUZZ_SECONDS:-45} s (contrib/fuzz.sh)"
rm -rf build-fuzz
contrib/fuzz.sh -t "${MMAPFS_FUZZ_SECONDS:-45}" -b build-fuzz -d "$(mktemp -d)"

step "all tests passed (build-ci and build-asan; build-release compiles clean; fuzzing found nothing)"
