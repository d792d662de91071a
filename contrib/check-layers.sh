#!/bin/bash
# SPDX-License-Identifier: MIT
#
# check-layers.sh — layer discipline: only the FUSE glue (src/fuse_*.c) and
# the daemon's program files (src/main.c, src/mount_opts.c, and the fuzz
# harness of the latter's parser, tests/fuzz/fuzz_args.c) may include a
# libfuse header. Everything else — the core library, mkfs, fsck, the
# other tests — must build without it.
# Prints every offending file and exits 1 if there is one.
#
# Usage: contrib/check-layers.sh [REPO_ROOT]
set -euo pipefail

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

dirs=()
for d in src include tests contrib; do
	[ -d "$d" ] && dirs+=("$d")
done

bad=0
while IFS= read -r f; do
	case "$f" in
	src/fuse_*.c | src/main.c | src/mount_opts.c | tests/fuzz/fuzz_args.c) ;;
	*)
		echo "layer violation: $f includes a libfuse header" \
			"(only src/fuse_*.c, src/main.c, src/mount_opts.c may)" >&2
		grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](fuse3/)?fuse[^>"]*\.h[>"]' "$f" >&2
		bad=1
		;;
	esac
done < <(grep -rlE --include='*.c' --include='*.h' \
	'^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](fuse3/)?fuse[^>"]*\.h[>"]' \
	"${dirs[@]}" | sort || true)

if [ "$bad" -ne 0 ]; then
	exit 1
fi
echo "check-layers: ok (libfuse headers only in src/fuse_*.c, src/main.c, src/mount_opts.c)"
