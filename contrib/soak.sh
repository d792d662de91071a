#!/bin/bash
# SPDX-License-Identifier: MIT
#
# soak.sh — run mfsx and mfsstress together on a directory (an mmapfs mount,
# or any filesystem) for a while, and say whether anything went wrong.
set -u

usage() {
	cat <<EOF
usage: contrib/soak.sh [options] DIR

Runs J mfsx instances (each on its own file, its own seed, mapped I/O on,
closing and reopening the file now and then) and one mfsstress with NPROC
workers, all at once in DIR/soak.XXXXXX, until the time is up or each has
run its operations. Exits 0 if every run passed, 1 if any failed; the logs
of failed runs are printed and kept.

  -t DURATION  run for DURATION: 90, 90s, 30m, 12h (default 10m)
  -n OPS       run OPS operations per mfsx and per mfsstress worker instead
  -j J         mfsx instances (default 4)
  -p NPROC     mfsstress workers (default 4; 0: no mfsstress)
  -S SEED      first seed (default: from the clock; printed)
  -D           mfsx drops caches at each close/reopen (root: drop_caches)
  -s           mfsstress: the filesystem may fill (allow ENOSPC)
  -X 'ARGS'    extra mfsx arguments, e.g. -X '-l 4m -o 1m' or -X '-R -W'
  -Y 'ARGS'    extra mfsstress arguments, e.g. -Y '--names=16'
  -B BUILDDIR  where the tools are built (default: build/ of this checkout;
               else mfsx and mfsstress from PATH)
  -L LOGDIR    keep all logs here (default: a temporary directory)
  -h           this text
EOF
}

die() {
	echo "soak.sh: $*" >&2
	exit 2
}

# seconds from 90, 90s, 30m, 12h, 2d
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

DURATION=600 OPS="" J=4 NPROC=4 SEED="" DROP="" ENOSPC=""
XARGS="" YARGS="" BUILD="" LOGDIR=""
while getopts "t:n:j:p:S:DsX:Y:B:L:h" o; do
	case $o in
	t) DURATION=$(parse_duration "$OPTARG") || die "-t: bad duration '$OPTARG'" ;;
	n) OPS=$OPTARG ;;
	j) J=$OPTARG ;;
	p) NPROC=$OPTARG ;;
	S) SEED=$OPTARG ;;
	D) DROP=-D ;;
	s) ENOSPC=-s ;;
	X) XARGS=$OPTARG ;;
	Y) YARGS=$OPTARG ;;
	B) BUILD=$OPTARG ;;
	L) LOGDIR=$OPTARG ;;
	h) usage; exit 0 ;;
	*) echo "try 'contrib/soak.sh -h'" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# = 1 ] || die "one DIR expected (try -h)"
DIR=$1
[ -d "$DIR" ] || die "$DIR: not a directory"
for v in "$J" "$NPROC" ${OPS:+"$OPS"} ${SEED:+"$SEED"}; do
	case $v in *[!0-9]* | "") die "not a number: '$v'" ;; esac
done
[ "$J" -gt 0 ] || [ "$NPROC" -gt 0 ] || die "nothing to run (-j 0 -p 0)"

# The tools: the build directory of this checkout, else PATH.
top=$(cd "$(dirname "$0")/.." && pwd)
[ -n "$BUILD" ] || BUILD=$top/build
if [ -x "$BUILD/tests/tools/mfsx" ] && [ -x "$BUILD/tests/tools/mfsstress" ]; then
	MFSX=$BUILD/tests/tools/mfsx
	STRESS=$BUILD/tests/tools/mfsstress
else
	MFSX=$(command -v mfsx) || die "no mfsx in $BUILD/tests/tools or PATH (build first, or -B)"
	STRESS=$(command -v mfsstress) || die "no mfsstress in $BUILD/tests/tools or PATH"
fi

[ -n "$SEED" ] || SEED=$(( ($(date +%s) ^ $$) % 1000000 + 1 ))
WORK=$(mktemp -d "$DIR/soak.XXXXXX") || die "cannot create a directory in $DIR"
if [ -n "$LOGDIR" ]; then
	mkdir -p "$LOGDIR" || die "cannot create $LOGDIR"
	KEEPLOGS=1
else
	LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/soak-logs.XXXXXX") || die "cannot create a log directory"
	KEEPLOGS=0
fi

if [ -n "$OPS" ]; then
	limit="$OPS ops each"
	mfsx_limit=(-N "$OPS")
	stress_limit=(-n "$OPS")
else
	limit="${DURATION}s"
	mfsx_limit=(-N 0 --duration="$DURATION")
	stress_limit=(-t "$DURATION")
fi
echo "soak: $WORK: $J x mfsx, mfsstress with $NPROC workers, $limit, seeds from $SEED"
echo "soak: logs in $LOGDIR"

declare -A PIDS
# shellcheck disable=SC2086  # XARGS/YARGS are meant to split into arguments
for ((i = 0; i < J; i++)); do
	s=$((SEED + i))
	"$MFSX" -q -S "$s" -c 100 $DROP "${mfsx_limit[@]}" $XARGS "$WORK/mfsx.$i" \
		>"$LOGDIR/mfsx.$i.log" 2>&1 &
	PIDS[mfsx.$i]=$!
done
if [ "$NPROC" -gt 0 ]; then
	# shellcheck disable=SC2086
	"$STRESS" -p "$NPROC" -S "$SEED" $ENOSPC "${stress_limit[@]}" $YARGS -d "$WORK" \
		>"$LOGDIR/mfsstress.log" 2>&1 &
	PIDS[mfsstress]=$!
fi

# Ctrl-C: stop our runs (by pid) and leave things for inspection.
stop_runs() {
	local pid
	echo "soak: interrupted; files kept in $WORK, logs in $LOGDIR"
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	exit 130
}
trap stop_runs INT TERM

FAILED=0
for name in $(printf '%s\n' "${!PIDS[@]}" | sort); do
	wait "${PIDS[$name]}"
	rc=$?
	if [ $rc = 0 ]; then
		echo "soak: $name: ok: $(tail -1 "$LOGDIR/$name.log")"
	else
		echo "soak: $name: FAILED (exit $rc), log $LOGDIR/$name.log:"
		sed 's/^/    /' "$LOGDIR/$name.log" | head -100
		FAILED=$((FAILED + 1))
	fi
done

if [ $FAILED = 0 ]; then
	rm -rf "$WORK"
	[ $KEEPLOGS = 1 ] || rm -rf "$LOGDIR"
	echo "soak: all runs passed"
	exit 0
fi
echo "soak: $FAILED run(s) failed; files kept in $WORK, logs in $LOGDIR"
exit 1
