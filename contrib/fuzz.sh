#!/bin/bash
# SPDX-License-Identifier: MIT
#
# fuzz.sh — build the fuzz harnesses (tests/fuzz/) with libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer, and run them.
#
#   contrib/fuzz.sh [-t SECONDS | -n RUNS] [-s SEED] [-j JOBS] [-d DIR]
#                   [-b BUILDDIR] [HARNESS...]
#
#   -t SECONDS   how long each harness runs (default 60)
#   -n RUNS      run each harness for RUNS executions instead of a time
#   -s SEED      libFuzzer's random seed (default: a new one each run; runs
#                are not bit-for-bit repeatable even so: the template's
#                timestamps, and so its checksums, differ per run)
#   -j JOBS      harnesses run at once (default: the number of CPUs)
#   -d DIR       persistent corpora and findings (default
#                /var/tmp/mmapfs-fuzz): DIR/corpus/HARNESS grows run after
#                run; DIR/crashes holds what crashed; DIR/runs.log one line
#                per harness run (the campaign's executions add up there)
#   -b BUILDDIR  the build directory (default build-fuzz; configured with
#                clang when it does not exist)
#   HARNESS      fuzz_check, fuzz_walk_crc, ... (default: all of them)
#
# Every run starts from the persistent corpus and the checked-in one
# (tests/fuzz/corpus/, read-only here). Prints
# executions and executions per second per harness and in total. Exit
# status 1 if any harness crashed, leaked, timed out or broke a promise:
# each finding is in DIR/crashes with the whole image it made (*.img, for
# tests/fuzz/corpus/image/: `meson test` runs it from then on) and the
# command that reproduces it.
set -euo pipefail

cd "$(dirname "$0")/.."
SRC=$PWD
secs=60
runs=
seed=
jobs=$(nproc)
dir=/var/tmp/mmapfs-fuzz
build=build-fuzz

usage() {
	sed -n '/^#   contrib/,/^#   HARNESS/p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}
while getopts 't:n:s:j:d:b:h' o; do
	case $o in
	t) secs=$OPTARG ;;
	n) runs=$OPTARG ;;
	s) seed=$OPTARG ;;
	j) jobs=$OPTARG ;;
	d) dir=$OPTARG ;;
	b) build=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
case $secs$jobs$runs$seed in
*[!0-9]*) echo "fuzz.sh: -t, -n, -s and -j take whole numbers" >&2; exit 2 ;;
esac
# How long: a time, or a number of executions (and then no time limit).
bound=(-max_total_time="$secs")
[ -z "$runs" ] || bound=(-runs="$runs")
[ -z "$seed" ] || bound+=(-seed="$seed")

all=(fuzz_check fuzz_check_crc fuzz_walk fuzz_walk_crc fuzz_change
     fuzz_change_crc fuzz_repair fuzz_repair_crc fuzz_ops fuzz_ops_crc
     fuzz_args fuzz_probe)
harnesses=("${@:-${all[@]}}")
for h in "${harnesses[@]}"; do
	case " ${all[*]} " in
	*" $h "*) ;;
	*) echo "fuzz.sh: no harness '$h' (there are: ${all[*]})" >&2; exit 2 ;;
	esac
done

if [ ! -f "$build/build.ninja" ]; then
	if ! command -v clang >/dev/null; then
		echo "fuzz.sh: clang is not installed: contrib/install-deps.sh installs it" >&2
		exit 1
	fi
	CC=clang meson setup "$build" -Dfuzz=true --buildtype=debugoptimized \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fno-sanitize-recover=undefined >/dev/null
fi
targets=()
for h in "${harnesses[@]}"; do targets+=("tests/fuzz/$h"); done
ninja -C "$build" "${targets[@]}" >/dev/null

mkdir -p "$dir/crashes"
rm -f "$dir/failed" # left by a run that was killed
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# One harness: grow its corpus for $secs seconds. Writes DIR/HARNESS.log.
run_one() {
	local h=$1 family=${1%_crc} bin=$build/tests/fuzz/$1
	local corpus=$dir/corpus/$family seeds log=$dir/$h.log extra=()
	local bound
	read -r -a bound <<<"$BOUND"

	case $family in
	fuzz_args) seeds=$SRC/tests/fuzz/corpus/args ;;
	fuzz_probe) seeds=$SRC/tests/fuzz/corpus/probe extra=(-max_len=131072) ;;
	*) seeds=$SRC/tests/fuzz/corpus/image extra=(-max_len=4096) ;;
	esac
	mkdir -p "$corpus"
	"$bin" "${bound[@]}" -timeout=20 -rss_limit_mb=4096 \
		-close_fd_mask=3 -print_final_stats=1 "${extra[@]}" \
		-artifact_prefix="$dir/crashes/$h-" \
		"$corpus" "$seeds" >"$log" 2>&1
}
export -f run_one
export build dir SRC
# Arrays do not cross into the xargs shells: pass the bound as words.
export BOUND="${bound[*]}"

started=$(date +%s)
before=$(find "$dir/crashes" -type f -name "fuzz_*" ! -name "*.img" | sort)
status=0
printf '%s\n' "${harnesses[@]}" |
	xargs -P "$jobs" -I{} bash -c 'run_one {} || echo "{}" >> "$dir/failed"' || true

total=0
printf '%-18s %12s %8s %10s\n' harness executions seconds exec/s
for h in "${harnesses[@]}"; do
	log=$dir/$h.log
	runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 \2/p' "$log" | tail -1)
	if [ -z "$runs" ]; then
		# A crash ends the run early: count what the last status said.
		n=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -1)
		runs="${n:-0} 0"
	fi
	read -r n s <<<"$runs"
	rate=$([ "$s" -gt 0 ] && echo $((n / s)) || echo -)
	printf '%-18s %12s %8s %10s\n' "$h" "$n" "$s" "$rate"
	total=$((total + n))
	printf '%s %s %s %s\n' "$(date -u +%FT%TZ)" "$h" "$n" "$s" >> "$dir/runs.log"
done
printf '%-18s %12s %8s\n' total "$total" $(($(date +%s) - started))
campaign=$(awk '{ n += $3 } END { print n + 0 }' "$dir/runs.log")
echo "fuzz.sh: $campaign executions in $dir/runs.log over all runs"

after=$(find "$dir/crashes" -type f -name "fuzz_*" ! -name "*.img" | sort)
new=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
if [ -f "$dir/failed" ] || [ -n "$new" ]; then
	status=1
	rm -f "$dir/failed"
	echo "fuzz.sh: FINDINGS:" >&2
	for f in $new; do
		h=$(basename "$f")
		h=${h%%-*}
		case $h in
		fuzz_args|fuzz_probe) ;;
		*) MFS_FUZZ_SAVE=$f.img "$build/tests/fuzz/$h" "$f" >/dev/null 2>&1 || true ;;
		esac
		echo "  $f" >&2
		echo "    reproduce: $build/tests/fuzz/$h $f" >&2
		[ -f "$f.img" ] && echo "    whole image: $f.img" >&2
		grep -m3 -E 'ERROR: |runtime error|fuzz: |SUMMARY' "$dir/$h.log" | sed 's/^/    /' >&2 || true
	done
	for h in "${harnesses[@]}"; do
		if grep -q -E '^==[0-9]+==ERROR|runtime error|fuzz: ' "$dir/$h.log"; then
			echo "  $h: see $dir/$h.log" >&2
		fi
	done
fi
exit $status
