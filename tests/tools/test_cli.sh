#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_cli.sh MFSX MFSSTRESS — command lines: a wrong one exits 2 with one
# "PROG: " line on stderr and creates nothing; -h exits 0 with the usage.
set -u
MFSX=$(realpath "$1")
STRESS=$(realpath "$2")
. "$(dirname "$0")/lib.sh"
tools_dir_setup
FAILS=0

check() {
	local want=$1 prog=$2 rc lines
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	lines=$(wc -l <"$T/err")
	if [ "$rc" != "$want" ]; then
		echo "FAIL: $*: exit $rc, expected $want"; cat "$T/err"; FAILS=$((FAILS + 1))
	elif [ "$want" = 2 ] && { [ "$lines" != 1 ] || ! grep -q "^$prog: " "$T/err"; }; then
		echo "FAIL: $*: expected one '$prog: ' line on stderr, got:"; cat "$T/err"
		FAILS=$((FAILS + 1))
	else
		echo "ok: $* -> $rc: $(head -1 "$T/err")"
	fi
}

check 2 mfsx "$MFSX"
check 2 mfsx "$MFSX" -l abc "$T/f"
check 2 mfsx "$MFSX" -o 0 "$T/f"
check 2 mfsx "$MFSX" -o 1m -l 64k "$T/f"
check 2 mfsx "$MFSX" "$T/f" "$T/g"
check 2 mfsx "$MFSX" "$T/no/such/dir/f"
check 0 mfsx "$MFSX" -h
grep -q "^usage: mfsx" "$T/out" || { echo "FAIL: mfsx -h prints no usage"; FAILS=$((FAILS + 1)); }
check 2 mfsstress "$STRESS"
check 2 mfsstress "$STRESS" -p 0 -d "$T"
check 2 mfsstress "$STRESS" -n 0 -d "$T"
check 2 mfsstress "$STRESS" --max-size=1000 -d "$T"
check 2 mfsstress "$STRESS" -d "$T/no/such/dir"
check 2 mfsstress "$STRESS" "$T"
check 0 mfsstress "$STRESS" -h
grep -q "^usage: mfsstress" "$T/out" || { echo "FAIL: mfsstress -h prints no usage"; FAILS=$((FAILS + 1)); }

# Nothing may have been created by the refused command lines.
if [ -n "$(find "$T" -mindepth 1 ! -name out ! -name err)" ]; then
	echo "FAIL: refused command lines left files:"; find "$T" -mindepth 1; FAILS=$((FAILS + 1))
fi
[ $FAILS = 0 ]
