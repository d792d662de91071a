#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_mfsstress.sh MFSSTRESS — mfsstress must pass on a correct filesystem
# (tmpfs, or $MMAPFS_TOOLS_DIR): 4 workers x 5,000 operations, then 8
# workers in a small name space (more collisions), then a short timed run.
set -u
STRESS=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
tools_dir_setup
# MMAPFS_TOOLS_REQUIRE_ALL=1: an unsupported operation fails the test (mmapfs must have them all).
REQ=()
[ "${MMAPFS_TOOLS_REQUIRE_ALL:-0}" = 1 ] && REQ=(--require-all)

FAILS=0
run() {
	echo "+ mfsstress $*"
	"$STRESS" "${REQ[@]}" "$@"
	local rc=$?
	if [ $rc != 0 ]; then
		echo "FAIL (exit $rc): mfsstress $*"
		FAILS=$((FAILS + 1))
	fi
}

run -p 4 -n 5000 -S 1 -d "$T"
run -p 8 -n 3000 -S 2 --names=8 --depth=2 -d "$T"
run -p 3 -t 2 -S 3 -d "$T"

left=$(find "$T" -mindepth 1 -maxdepth 1 -name 'mfsstress.*' | wc -l)
if [ "$left" != 0 ] && [ $FAILS = 0 ]; then
	echo "FAIL: a passing run left its tree behind"
	FAILS=$((FAILS + 1))
fi
[ $FAILS = 0 ] || { echo "$FAILS mfsstress runs failed"; exit 1; }
echo "all mfsstress runs passed"
