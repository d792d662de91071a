#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_detect.sh inject MFSX
# test_detect.sh badread MFSX MFSSTRESS BADREAD_SO
#
# The tools must catch a misbehaving filesystem, not only pass on a good one.
#   inject:  mfsx --inject-bug=N corrupts one byte it read; mfsx must exit 1
#            and report exactly that byte, at several points of a run (so
#            reads, mapped reads and the final check are all hit).
#   badread: an LD_PRELOAD shim fakes the bad filesystem from outside: a
#            flipped byte in a pread, fallocate "not supported", an unlinkat
#            failing with an errno that makes no sense. Not for sanitizer
#            builds (the ASan runtime must come first).
set -u
MODE=$1
MFSX=$(realpath "$2")
. "$(dirname "$0")/lib.sh"
tools_dir_setup

FAILS=0
CASES=0
OUT=$(mktemp "${TMPDIR:-/tmp}/detect-out.XXXXXX")
trap '_tools_cleanup; rm -f "$OUT"' EXIT

fail() {
	echo "FAIL: $CASE: $*"
	sed 's/^/  | /' "$OUT" | head -80
	FAILS=$((FAILS + 1))
}

# run EXPECTED_EXIT CMD...: output to $OUT; checks the exit status.
run() {
	local want=$1 rc
	shift
	CASES=$((CASES + 1))
	echo "+ $CASE"
	"$@" >"$OUT" 2>&1
	rc=$?
	if [ "$rc" != "$want" ]; then
		fail "exit $rc, expected $want"
		return 1
	fi
}

# must_say REGEX: the output has a line matching REGEX.
must_say() {
	grep -Eq -- "$1" "$OUT" || fail "output lacks /$1/"
}

# hex offset after PREFIX in the output (first match)
offset_after() {
	sed -n "s/.*$1 \(0x[0-9a-f]*\).*/\1/p" "$OUT" | head -1
}

case $MODE in
inject)
	ops_hit=""
	for n in 1 700 5000 12345 19990 20000; do
		CASE="mfsx --inject-bug=$n"
		run 1 "$MFSX" -q -S 11 -N 20000 --inject-bug=$n "$T/inject" || continue
		must_say "BAD DATA"
		must_say "\[bug injected\]"
		must_say "seed 11; command line:"
		planted=$(offset_after "corrupted byte at file offset")
		found=$(offset_after "first differing byte at file offset")
		if [ -z "$planted" ] || [ "$planted" != "$found" ]; then
			fail "planted the bad byte at '$planted', report names '$found'"
		fi
		ops_hit="$ops_hit $(sed -n 's/.*--inject-bug: corrupted byte at .* of op [0-9]* \([A-Z_]*\).*/\1/p' "$OUT")"
	done
	echo "injected into:$ops_hit"
	for op in READ MAPREAD FINAL_CHECK; do
		case " $ops_hit " in
		*" $op "*) ;;
		*) CASE="coverage"; fail "no injection landed in a $op (the op mix changed? pick other N)";;
		esac
	done

	CASE="mfsx -R --inject-bug=3000 (pread only)"
	run 1 "$MFSX" -q -R -S 12 -N 5000 --inject-bug=3000 "$T/inject" && must_say "READ BAD DATA"

	# Control: the same run, the bug planted past its end, passes.
	CASE="mfsx --inject-bug past the last op (control)"
	run 0 "$MFSX" -q -S 11 -N 20000 --inject-bug=30000 "$T/inject" &&
		must_say "nothing injected" && must_say "20000 ops passed"
	;;
badread)
	STRESS=$(realpath "$3")
	SHIM=$(realpath "$4")

	CASE="mfsx, pread flips a byte"
	if run 1 env LD_PRELOAD="$SHIM" BADREAD_PREAD_AFTER=500 \
		"$MFSX" -q -S 21 -N 20000 "$T/badread"; then
		must_say "BAD DATA"
		planted=$(offset_after "badread: flipped byte at file offset")
		found=$(offset_after "first differing byte at file offset")
		if [ -z "$planted" ] || [ "$planted" != "$found" ]; then
			fail "shim flipped the byte at '$planted', report names '$found'"
		fi
	fi

	for err in EOPNOTSUPP EINVAL; do
		CASE="mfsx, fallocate fails with $err (not supported)"
		run 0 env LD_PRELOAD="$SHIM" BADREAD_FALLOCATE=$err \
			"$MFSX" -S 22 -N 5000 "$T/nofalloc" || continue
		for op in FALLOC FALLOC_KEEP_SIZE PUNCH_HOLE ZERO_RANGE; do
			must_say "disabling $op: not supported"
		done
		must_say "not supported: FALLOC,FALLOC_KEEP_SIZE,PUNCH_HOLE,ZERO_RANGE"
	done

	CASE="mfsstress, unlinkat fails with EBUSY"
	run 1 env LD_PRELOAD="$SHIM" BADREAD_UNLINKAT_AFTER=100 \
		"$STRESS" -p 2 -n 3000 -S 23 -d "$T" &&
		must_say "unexpected errno EBUSY" && must_say "FAILED"

	CASE="mfsstress, pread flips a byte"
	run 1 env LD_PRELOAD="$SHIM" BADREAD_PREAD_AFTER=20 \
		"$STRESS" -p 2 -n 3000 -S 24 -d "$T" &&
		must_say "is neither zeros nor a block we wrote" && must_say "FAILED"

	CASE="mfsstress, shim loaded but idle (control)"
	run 0 env LD_PRELOAD="$SHIM" "$STRESS" -p 2 -n 3000 -S 24 -d "$T"
	;;
*)
	echo "usage: $0 inject MFSX | badread MFSX MFSSTRESS BADREAD_SO" >&2
	exit 2
	;;
esac

echo "$CASES cases, $FAILS failed"
[ $FAILS = 0 ]
