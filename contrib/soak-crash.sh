#!/bin/bash
# SPDX-License-Identifier: MIT
#
# soak-crash.sh — run the filesystem power-loss simulation (tests/test_crash_fs)
# with new seeds and many crash images per seed until the time is up, and say
# whether any crash image was wrong. A failure prints the seed and the command
# that reproduces it.
set -u

usage() {
	cat <<EOF2
usage: contrib/soak-crash.sh [options]

Runs build/tests/test_crash_fs again and again, each time with a new seed
(MMAPFS_SEED) and IMAGES crash images (MMAPFS_CRASH_IMAGES), J runs at a
time, until DURATION is over. Exits 0 if every run passed, 1 if one failed
(its log is printed and kept), 2 on a wrong command line.

  -t DURATION  run for DURATION: 90, 90s, 30m, 12h (default 10m)
  -n IMAGES    crash images per seed (default 3000)
  -j J         runs at a time (default: number of CPUs)
  -S SEED      first seed (default: from the clock; printed); run i uses SEED+i
  -a           all the cases (the scripted ones too, with the same seed), not
               only the random simulation
  -B BUILDDIR  where the test is built (default: build/ of this checkout)
  -L LOGDIR    keep all logs here (default: a temporary directory)
  -h           this text
EOF2
}

die() {
	echo "soak-crash.sh: $*" >&2
	exit 2
}

parse_duration() {
	case $1 in
	*[!0-9smhd]* | "" | [smhd]*) return 1 ;;
	*s) echo $((${1%s})) ;;
	*m) echo $((${1%m} * 60)) ;;
	*h) echo $((${1%h} * 3600)) ;;
	*d) echo $((${1%d} * 86400)) ;;
	*) echo $(($1)) ;;
	esac
}

DURATION=600 IMAGES=3000 J=$(nproc 2>/dev/null || echo 2) SEED="" ALL="" BUILD="" LOGDIR=""
while getopts "t:n:j:S:aB:L:h" o; do
	case $o in
	t) DURATION=$(parse_duration "$OPTARG") || die "-t: bad duration '$OPTARG'" ;;
	n) IMAGES=$OPTARG ;;
	j) J=$OPTARG ;;
	S) SEED=$OPTARG ;;
	a) ALL=1 ;;
	B) BUILD=$OPTARG ;;
	L) LOGDIR=$OPTARG ;;
	h) usage; exit 0 ;;
	*) echo "try 'contrib/soak-crash.sh -h'" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# = 0 ] || die "no arguments expected (try -h)"
for v in "$IMAGES" "$J" ${SEED:+"$SEED"}; do
	case $v in *[!0-9]* | "") die "not a number: '$v'" ;; esac
done
[ "$J" -gt 0 ] || die "-j: at least 1"
[ "$IMAGES" -gt 0 ] || die "-n: at least 1"

top=$(cd "$(dirname "$0")/.." && pwd)
[ -n "$BUILD" ] || BUILD=$top/build
BIN=$BUILD/tests/test_crash_fs
[ -x "$BIN" ] || die "$BIN not found (build first: meson setup build && ninja -C build, or -B)"

[ -n "$SEED" ] || SEED=$(( ($(date +%s) ^ $$) % 1000000000 + 1000 ))
if [ -n "$LOGDIR" ]; then
	mkdir -p "$LOGDIR" || die "cannot create $LOGDIR"
	KEEPLOGS=1
else
	LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/soak-crash.XXXXXX") || die "cannot create a log directory"
	KEEPLOGS=0
fi
FILTER="test_crash_random*"
[ -z "$ALL" ] || FILTER="*"

echo "soak-crash: $BIN, $IMAGES crash images per seed, $J at a time, ${DURATION}s, seeds from $SEED"
echo "soak-crash: logs in $LOGDIR"

declare -A PIDS=()   # pid -> seed
# shellcheck disable=SC2317  # called by the trap
stop_runs() {
	local pid
	echo "soak-crash: interrupted; logs in $LOGDIR"
	for pid in "${!PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	exit 130
}
trap stop_runs INT TERM

end=$(( $(date +%s) + DURATION ))
next=$SEED runs=0 FAILED=0
start_one() {
	local s=$next
	next=$((next + 1))
	MMAPFS_SEED=$s MMAPFS_CRASH_IMAGES=$IMAGES MMAPFS_TEST_FILTER=$FILTER \
		"$BIN" >"$LOGDIR/seed-$s.log" 2>&1 &
	PIDS[$!]=$s
}
# Wait for one run to end; record its result.
reap_one() {
	local pid s rc
	wait -n -p pid
	rc=$?
	s=${PIDS[$pid]}
	unset "PIDS[$pid]"
	runs=$((runs + 1))
	if [ $rc = 0 ]; then
		[ $KEEPLOGS = 1 ] || rm -f "$LOGDIR/seed-$s.log"
	else
		FAILED=$((FAILED + 1))
		echo "soak-crash: seed $s FAILED (exit $rc); log $LOGDIR/seed-$s.log:"
		grep -v '^  random seed' "$LOGDIR/seed-$s.log" | sed 's/^/    /' | head -60
		echo "soak-crash: reproduce with: MMAPFS_SEED=$s MMAPFS_CRASH_IMAGES=$IMAGES" \
			"${FILTER:+MMAPFS_TEST_FILTER=\"$FILTER\" }$BIN"
	fi
}

while [ "$(date +%s)" -lt "$end" ] && [ $FAILED = 0 ]; do
	while [ ${#PIDS[@]} -lt "$J" ]; do
		start_one
	done
	reap_one
done
while [ ${#PIDS[@]} -gt 0 ]; do
	reap_one
done

if [ $FAILED = 0 ]; then
	[ $KEEPLOGS = 1 ] || rm -rf "$LOGDIR"
	echo "soak-crash: all $runs runs passed (seeds $SEED..$((next - 1)), at least $((runs * IMAGES)) crash images)"
	exit 0
fi
echo "soak-crash: $FAILED of $runs runs failed; logs in $LOGDIR"
exit 1
