#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_mfsx.sh MFSX — mfsx must pass on a correct filesystem (tmpfs, or
# $MMAPFS_TOOLS_DIR): three seeds x 20,000 operations with mapped reads and
# writes, then variants: aligned operations, fsync after every write, close
# and reopen with cache drops, a file smaller than a page and a few.
set -u
MFSX=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
tools_dir_setup
# MMAPFS_TOOLS_REQUIRE_ALL=1: an unsupported operation fails the test (mmapfs must have them all).
REQ=()
[ "${MMAPFS_TOOLS_REQUIRE_ALL:-0}" = 1 ] && REQ=(--require-all)

FAILS=0
run() {
	echo "+ mfsx $*"
	"$MFSX" "${REQ[@]}" "$@"
	local rc=$?
	if [ $rc != 0 ]; then
		echo "FAIL (exit $rc): mfsx $*"
		FAILS=$((FAILS + 1))
	fi
}

for seed in 1 2 3; do
	run -q -S "$seed" -N 20000 -c 500 "$T/seed$seed"
done
run -q -S 4 -N 10000 -a 4096 -o 16k "$T/aligned"
run -q -S 5 -N 5000 -y "$T/fsync"
run -q -S 6 -N 5000 -c 1000 -D "$T/dropcaches"
run -q -S 7 -N 20000 -l 3000 -o 1000 "$T/tiny"
run -q -S 8 -N 5000 -l 4m -o 1m "$T/large"
run -q -S 9 -N 5000 -R -W "$T/nomap"

[ $FAILS = 0 ] || { echo "$FAILS mfsx runs failed"; exit 1; }
echo "all mfsx runs passed"
