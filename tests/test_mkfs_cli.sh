#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_mkfs_cli.sh MKFS [FSCK] — the mkfs.mmapfs command line, end to end.
#
# Every refusal must exit with the documented status (1: cannot be done,
# 2: command line wrong), print exactly one line on stderr starting with
# "mkfs.mmapfs: ", and leave the target exactly as it was (sha256 before
# and after; a target that did not exist must still not exist).
#
# Needs root for the read-only mount case (falls back to a mode-0555
# directory when not root). Uses mkfs.ext4 (e2fsprogs) when installed, and a
# synthetic ext4 superblock always.
set -u

MKFS=$(realpath "$1")
FSCK=${2:+$(realpath "$2")}
export PATH="$PATH:/usr/sbin:/sbin"
T=$(mktemp -d "${TMPDIR:-/tmp}/mkfs_cli.XXXXXX") || exit 1
MOUNTS=()
FAILS=0
CASES=0
SKIPPED=0

cleanup() {
	local m
	for m in "${MOUNTS[@]}"; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	chmod -R u+rwx "$T" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $CASE: $*"
	echo "  stdout: $(head -c 2000 "$T/out")"
	echo "  stderr: $(head -c 2000 "$T/err")"
	FAILS=$((FAILS + 1))
}

# State of a path: its sha256, or "absent".
state() {
	if [ -e "$1" ]; then sha256sum <"$1" | cut -d' ' -f1; else echo absent; fi
}

# Hex dump of LEN bytes at OFF.
bytes() {
	od -An -tx1 -v -j "$2" -N "$3" "$1" | tr -d ' \n'
}

# refuse NAME STATUS PATTERN TARGET -- ARGS...: mkfs ARGS must exit with
# STATUS, say one line "mkfs.mmapfs: ..." containing PATTERN, and leave
# TARGET unchanged.
refuse() {
	CASE=$1
	local want=$2 pattern=$3 target=$4 before after rc
	shift 5
	CASES=$((CASES + 1))
	before=$(state "$target")
	"$MKFS" "$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	after=$(state "$target")
	[ "$rc" = "$want" ] || fail "exit status $rc, want $want"
	[ "$(wc -l <"$T/err")" = 1 ] || fail "stderr is not exactly one line"
	[ "$(head -c 13 "$T/err")" = "mkfs.mmapfs: " ] || fail "stderr does not start with 'mkfs.mmapfs: '"
	grep -qF -- "$pattern" "$T/err" || fail "stderr lacks '$pattern'"
	[ "$before" = "$after" ] || fail "target $target changed ($before -> $after)"
}

# succeed NAME ARGS...: mkfs ARGS must exit 0 with nothing on stderr.
succeed() {
	CASE=$1
	shift
	CASES=$((CASES + 1))
	"$MKFS" "$@" >"$T/out" 2>"$T/err" </dev/null
	local rc=$?
	[ "$rc" = 0 ] || fail "exit status $rc, want 0"
	[ ! -s "$T/err" ] || fail "stderr not empty"
}

# Does IMAGE carry the mmapfs magic in superblock slot 0 or 1?
is_mmapfs() {
	[ "$(bytes "$1" 0 8)" = 4d4d415046533031 ] || [ "$(bytes "$1" 4096 8)" = 4d4d415046533031 ]
}

# junk FILE SIZE: SIZE random bytes that carry no signature.
junk() {
	local off
	head -c "$2" /dev/urandom >"$1"
	# Zero where signatures live, so that chance cannot make one.
	for off in 0 510 1080 4096; do
		[ "$off" -lt "$2" ] &&
			dd if=/dev/zero of="$1" bs=1 count=16 seek=$off conv=notrunc status=none
	done
	truncate -s "$2" "$1"
}

NEW=$T/new.img
EXIST=$T/exist.img
junk "$EXIST" $((1024 * 1024))

# ---- command line errors: exit 2, nothing written ----
refuse "bad size" 2 "size '12Q': not a valid size" "$NEW" -- -s 12Q "$NEW"
refuse "bad size, existing" 2 "not a valid size" "$EXIST" -- -s abc "$EXIST"
refuse "negative size" 2 "not a valid size" "$NEW" -- -s -64M "$NEW"
refuse "zero size" 2 "not a valid size" "$EXIST" -- -s 0 "$EXIST"
refuse "size too small" 2 "too small (the minimum is 256 KiB)" "$NEW" -- -s 100K "$NEW"
refuse "size too small, rounded" 2 "too small" "$EXIST" -- -s 262143 "$EXIST"
refuse "size too large" 2 "too large (the maximum is 64 TiB)" "$NEW" -- -s 65T "$NEW"
refuse "size overflow" 2 "too large" "$EXIST" -- -s 99999999999999999999999 "$EXIST"
refuse "positional size bad" 2 "not a valid size" "$NEW" -- "$NEW" 1X
refuse "size twice" 2 "size given twice" "$NEW" -- -s 1M "$NEW" 1M
refuse "label too long" 2 "label: too long (65 bytes; at most 64)" "$EXIST" -- \
	-L "$(printf 'x%.0s' {1..65})" "$EXIST"
refuse "bad uuid" 2 "UUID 'nonsense': not a valid UUID" "$NEW" -- -s 1M -U nonsense "$NEW"
refuse "short uuid" 2 "not a valid UUID" "$EXIST" -- -U 0f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5 "$EXIST"
refuse "uuid bad digit" 2 "not a valid UUID" "$EXIST" -- -U 0f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5g "$EXIST"
refuse "uuid bad dash" 2 "not a valid UUID" "$EXIST" -- -U 0f1e2d3c04b5a-4978-8a9b-0c1d2e3f4a5b "$EXIST"
refuse "unknown -E option" 2 "-E bogus: unknown extended option" "$NEW" -- -s 1M -E bogus "$NEW"
refuse "root_owner without gid" 2 "-E root_owner=5: not UID:GID" "$EXIST" -- -E root_owner=5 "$EXIST"
refuse "root_owner not numbers" 2 "not UID:GID" "$EXIST" -- -E root_owner=a:b "$EXIST"
refuse "root_owner too large" 2 "not UID:GID" "$NEW" -- -s 1M -E root_owner=4294967295:0 "$NEW"
refuse "unknown long option" 2 "--bogus: unknown option" "$EXIST" -- --bogus "$EXIST"
refuse "unknown short option" 2 "-Z: unknown option" "$EXIST" -- -Z "$EXIST"
refuse "argument to flag" 2 "--force=yes" "$EXIST" -- --force=yes "$EXIST"
refuse "missing option argument" 2 "option requires an argument" "$EXIST" -- "$EXIST" -s
refuse "no image" 2 "no image file given" "$NEW" -- -s 1M
refuse "too many operands" 2 "too many arguments" "$NEW" -- "$NEW" 1M extra

# ---- targets that cannot be used: exit 1, nothing written ----
refuse "missing directory" 1 "directory $T/nodir does not exist" "$T/nodir" -- -s 1M "$T/nodir/x.img"
refuse "parent not a directory" 1 "x.img: Not a directory" "$EXIST" -- -s 1M "$EXIST/x.img"
refuse "no size, no file" 1 "no size given and the file does not exist (use -s SIZE)" "$NEW" -- "$NEW"
mkdir "$T/dir"
refuse "directory target" 1 "$T/dir: is a directory" "$T/dir" -- -F -s 1M "$T/dir"
refuse "character device" 1 "/dev/null: not a regular file" /dev/null -- -F -s 1M /dev/null
junk "$T/small.img" 4096
refuse "existing file too small" 1 "the file is too small" "$T/small.img" -- "$T/small.img"

# Read-only: a tmpfs remounted read-only (root), else a mode-0555 directory.
RO=$T/ro
mkdir "$RO"
if mount -t tmpfs -o size=4m tmpfs "$RO" 2>/dev/null; then
	MOUNTS+=("$RO")
	junk "$RO/old.img" $((1024 * 1024))
	mount -o remount,ro "$RO" || { echo "FAIL: remount ro"; FAILS=$((FAILS + 1)); }
	refuse "read-only fs, existing" 1 "Read-only file system" "$RO/old.img" -- "$RO/old.img"
	refuse "read-only fs, new" 1 "Read-only file system" "$RO/new.img" -- -s 1M "$RO/new.img"
elif [ "$(id -u)" != 0 ]; then
	junk "$RO/old.img" $((1024 * 1024))
	chmod 0444 "$RO/old.img"
	chmod 0555 "$RO"
	refuse "read-only file" 1 "Permission denied" "$RO/old.img" -- "$RO/old.img"
	refuse "read-only dir, new" 1 "Permission denied" "$RO/new.img" -- -s 1M "$RO/new.img"
else
	echo "SKIP: read-only cases: cannot mount a tmpfs"
	SKIPPED=$((SKIPPED + 1))
fi

# ---- foreign and own signatures ----
# Synthetic ext4: magic 0xef53 at 1080, incompat extents (0x40) at 1120.
SYN=$T/syn-ext4.img
junk "$SYN" $((1024 * 1024))
printf '\x53\xef' | dd of="$SYN" bs=1 seek=1080 conv=notrunc status=none
printf '\x40\x00\x00\x00' | dd of="$SYN" bs=1 seek=1120 conv=notrunc status=none
refuse "synthetic ext4 without -F" 1 "$SYN contains an ext4 file system; use -F to overwrite" \
	"$SYN" -- "$SYN"

if command -v mkfs.ext4 >/dev/null; then
	EXT=$T/ext4.img
	mkfs.ext4 -q -F "$EXT" 8M >/dev/null 2>&1 || { echo "FAIL: mkfs.ext4"; FAILS=$((FAILS + 1)); }
	refuse "ext4 without -F" 1 "$EXT contains an ext4 file system; use -F to overwrite" \
		"$EXT" -- "$EXT"
	refuse "ext4 with -s, without -F" 1 "contains an ext4 file system" "$EXT" -- -s 4M "$EXT"
	succeed "ext4 with -F" -F "$EXT"
	is_mmapfs "$EXT" || fail "no mmapfs superblock after -F"
	[ "$(stat -c %s "$EXT")" = $((8 * 1024 * 1024)) ] || fail "size not kept from the file"
else
	echo "SKIP: real ext4 cases: mkfs.ext4 (e2fsprogs) is not installed"
	SKIPPED=$((SKIPPED + 1))
fi
if command -v mkswap >/dev/null; then
	truncate -s 1M "$T/swap.img"
	mkswap "$T/swap.img" >/dev/null 2>&1 || { echo "FAIL: mkswap"; FAILS=$((FAILS + 1)); }
	refuse "swap without -F" 1 "contains swap space; use -F to overwrite" "$T/swap.img" -- "$T/swap.img"
fi

OWN=$T/own.img
succeed "new image" -s 1M "$OWN"
refuse "mmapfs without -F" 1 "$OWN contains an mmapfs file system; use -F to overwrite" \
	"$OWN" -- "$OWN"
succeed "mmapfs with -F" -F -q "$OWN"
[ ! -s "$T/out" ] || fail "-q printed something"

# A mounted image is locked; -F does not override that.
if command -v flock >/dev/null; then
	CASE="in use"
	before=$(state "$OWN")
	flock -x "$OWN" "$MKFS" -F "$OWN" >"$T/out" 2>"$T/err"
	rc=$?
	[ "$rc" = 1 ] || fail "exit status $rc, want 1"
	[ "$(cat "$T/err")" = "mkfs.mmapfs: $OWN is in use (mounted?)" ] || fail "wrong message"
	[ "$(state "$OWN")" = "$before" ] || fail "target changed"
	CASES=$((CASES + 1))
fi

# ---- successes ----
succeed "new, positional size" "$T/pos.img" 2M
[ "$(stat -c %s "$T/pos.img")" = 2097152 ] || fail "size $(stat -c %s "$T/pos.img"), want 2097152"
is_mmapfs "$T/pos.img" || fail "no mmapfs superblock"
grep -q "done" "$T/out" || fail "no summary on stdout"

succeed "size rounded down" -q -s 1000000 "$T/round.img"
[ "$(stat -c %s "$T/round.img")" = 999424 ] || fail "size $(stat -c %s "$T/round.img"), want 999424"

junk "$T/plain.img" $((3 * 1024 * 1024 + 100))
succeed "existing file without signature, size from file" "$T/plain.img"
[ "$(stat -c %s "$T/plain.img")" = $((3 * 1024 * 1024)) ] || fail "size not taken from the file"
is_mmapfs "$T/plain.img" || fail "no mmapfs superblock"

UUID=0f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5b
LABEL=$(printf 'y%.0s' {1..64})
succeed "uuid and 64-byte label" -s 1M -U "${UUID^^}" -L "$LABEL" --prealloc "$T/id.img"
grep -qF "UUID:       $UUID" "$T/out" || fail "UUID not in the summary"
grep -qF "label:      $LABEL" "$T/out" || fail "label not in the summary"
HEXUUID=${UUID//-/}
[ "$(bytes "$T/id.img" 224 16)" = "$HEXUUID" ] || [ "$(bytes "$T/id.img" $((4096 + 224)) 16)" = "$HEXUUID" ] ||
	fail "UUID not in the superblock"
[ "$(stat -c %b "$T/id.img")" -ge 2048 ] || fail "--prealloc left the image sparse"

succeed "long options" --size=1M --label=x --uuid=random --quiet "$T/long.img"
[ -s "$T/out" ] && fail "--quiet printed something"
succeed "version" -V
grep -q "^mkfs.mmapfs " "$T/out" || fail "no version line"
succeed "help" --help
grep -q "^Usage: mkfs.mmapfs" "$T/out" || fail "no usage text"

# A 1 TiB image is sparse and quick: well under 10 MiB of host disk.
succeed "1 TiB sparse image" -q -s 1T "$T/big.img"
[ "$(stat -c %s "$T/big.img")" = $((1 << 40)) ] || fail "1 TiB image has the wrong size"
used=$(( $(stat -c %b "$T/big.img") * $(stat -c %B "$T/big.img") ))
[ "$used" -lt $((10 << 20)) ] || fail "1 TiB image uses $used bytes of host disk"
if [ -n "$FSCK" ]; then
	"$FSCK" -fn "$T/big.img" > "$T/out" 2>&1 || fail "fsck of the 1 TiB image: $(cat "$T/out")"
fi

# -d: a tree copied in; a missing or non-directory -d is a usage error that
# writes nothing.
mkdir -p "$T/tree/sub" && echo hello > "$T/tree/sub/f" && ln -s sub/f "$T/tree/l"
succeed "populate from a directory" -q -s 16M -d "$T/tree" "$T/pop.img"
if [ -n "$FSCK" ]; then
	"$FSCK" -fn "$T/pop.img" > "$T/out" 2>&1 || fail "fsck after -d: $(cat "$T/out")"
	grep -q " 5 files" "$T/out" || fail "fsck after -d: expected 5 files (root, lost+found, sub, f, l): $(cat "$T/out")"
fi
refuse "-d missing directory" 2 "No such file or directory" "$T/pop2.img" -- \
	-s 16M -d "$T/none" "$T/pop2.img"
refuse "-d on a file" 2 "not a directory" "$T/pop2.img" -- \
	-s 16M -d "$T/tree/sub/f" "$T/pop2.img"

echo "$CASES cases, $FAILS failures, $SKIPPED groups skipped"
[ "$FAILS" = 0 ] || exit 1
# A skipped group reaches meson as a SKIP (exit 77), not as a pass.
[ "$SKIPPED" = 0 ] || exit 77
