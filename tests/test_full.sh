#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_full.sh MMAPFS MKFS FSCK MFSSTRESS — a full filesystem through a real
# mount, with the writeback cache: no write is lost silently.
#
# Cases (each on a fresh image, each bounded in time):
#   dd       dd bs=1M into a 64 MiB image ends with ENOSPC (not a timeout);
#            the size stat showed while mounted is the size after a remount,
#            and what dd wrote is what df said was available (df's truth);
#   files    100,940-byte files, each written, fsync'd and closed, until the
#            first error (ENOSPC): every file that succeeded reads back byte
#            for byte after a remount;
#   writers  three concurrent writers that never sync, each of a byte of its
#            own: each stops with ENOSPC; after a remount every file is its
#            byte up to the size stat showed while mounted (no zeros nobody
#            wrote, no phantom size);
#   free     on the full filesystem: overwrites in place and reads work;
#            rename, truncate, unlink, rmdir, rm -rf succeed, and writing
#            works again afterwards;
#   mmap     shared mmap writes into a full filesystem: msync reports
#            ENOSPC, no SIGBUS; the daemon lives on;
#   host     a 1 GiB sparse image on a 48 MiB tmpfs (the host fills first):
#            ENOSPC to dd, no SIGBUS, the same size before and after a
#            remount;
#   stress   mfsstress -s (the filesystem may fill) on a 24 MiB image.
# After each case fsck.mmapfs -fn must find the image clean.
#
# Runs in a private mount namespace; mounts are removed at exit whatever
# happens (mount_lib.sh).
set -u
. "$(dirname "$0")/mount_lib.sh"

MMAPFS=$(realpath "$1")
MKFS=$(realpath "$2")
FSCK=$(realpath "$3")
MFSSTRESS=$(realpath "$4")

mnt_enter_ns "$@"
mnt_setup mmapfs-full.XXXXXX
MNT=$T/mnt
HOST=$T/host
MNT_POINTS+=("$HOST" "$MNT")
PID=""
test_stop() {
	[ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
}
mkdir "$MNT" "$HOST" || exit 1

CASE=""
die() {
	echo "FAIL: $CASE: $*"
	[ -s "$T/daemon.log" ] && sed 's/^/  daemon: /' "$T/daemon.log" | tail -20
	exit 1
}

# mount_fs IMAGE: mount it on $MNT (foreground daemon, $PID).
mount_fs() {
	mnt_daemon "$MNT" "$T/daemon.log" "$MMAPFS" -f "$1" "$MNT"
	local rc=$?
	PID=$MNT_PID
	[ "$rc" -eq 0 ] || die "mmapfs did not mount $1"
}

# umount_fs: unmount, and the daemon must exit 0.
umount_fs() {
	umount "$MNT" || die "umount"
	wait "$PID" || die "mmapfs exited with status $? at unmount"
	PID=""
}

check_fsck() {
	"$FSCK" -fn "$1" > "$T/fsck.out" 2>&1 ||
		{ cat "$T/fsck.out"; die "fsck -fn exit $?"; }
}

fresh() {
	CASE=$1
	echo "== $CASE"
	"$MKFS" -q -F -s "$2" "$3" || die "mkfs"
	mount_fs "$3"
}

IMG=$T/img

# fill_to_the_end: fallocate files, ever smaller, until not even one
# block fits: the filesystem is full to its reserve for deletes.
fill_to_the_end() {
	local sz n=0
	for sz in 8388608 1048576 131072 16384 4096; do
		while fallocate -l "$sz" "$MNT/prealloc.$n" 2>/dev/null; do
			n=$((n + 1))
		done
		rm -f "$MNT/prealloc.$n"
	done
	fallocate -l 4096 "$MNT/prealloc.last" 2> "$T/falloc.err" &&
		die "fallocate still succeeds"
	grep -q "No space left on device" "$T/falloc.err" ||
		{ cat "$T/falloc.err"; die "fallocate failed, but not with ENOSPC"; }
}

# ---- dd ----------------------------------------------------------------
# fill_dd FILE: dd bs=1M of Z bytes (not zeros: a hole nobody made reads as
# zeros) into FILE until it fails, at most 120 s; dd's stderr in dd.err.
fill_dd() {
	head -c 1048576 /dev/zero | tr '\0' Z > "$T/Z"
	while cat "$T/Z"; do :; done 2>/dev/null |
		timeout 120 dd of="$1" bs=1M iflag=fullblock 2> "$T/dd.err"
}
# is_z FILE SIZE: FILE is SIZE bytes of Z.
is_z() {
	head -c "$2" /dev/zero | tr '\0' Z | cmp - "$1"
}

fresh dd 64M "$IMG"
avail=$(( $(stat -f -c "%a * %S" "$MNT") ))
fill_dd "$MNT/fill"
rc=$?
[ "$rc" -ne 124 ] || die "dd still writing after 120 s"
[ "$rc" -ne 0 ] || die "dd did not fail on a full filesystem"
grep -q "No space left on device" "$T/dd.err" ||
	{ cat "$T/dd.err"; die "dd failed, but not with ENOSPC"; }
size=$(stat -c %s "$MNT/fill")
df_after=$(stat -f -c '%a' "$MNT")
umount_fs
mount_fs "$IMG"
again=$(stat -c %s "$MNT/fill")
[ "$size" = "$again" ] ||
	die "size $size while mounted, $again after a remount (phantom size)"
is_z "$MNT/fill" "$size" || die "contents (a hole nobody made?)"
# df's "available" is what write(2) can take before it fails; what was
# cached then still lands in the headroom kept for it (fuse_space.c),
# which the daemon logs.
headroom=$(sed -n 's/.*space: headroom \([0-9]*\) bytes.*/\1/p' "$T/daemon.log" | tail -1)
[ -n "$headroom" ] || die "the daemon did not log its headroom"
[ "$size" -ge $((avail - (1 << 20))) ] && [ "$size" -le $((avail + headroom)) ] ||
	die "df said $avail bytes available, dd stored $size"
[ "$df_after" -eq 0 ] || die "df shows $df_after blocks available when full"
echo "dd: ENOSPC after $size bytes (df said $avail available), same size after remount"
umount_fs
check_fsck "$IMG"

# ---- files -------------------------------------------------------------
fresh files 64M "$IMG"
python3 - "$MNT" "$T/files.log" <<'EOF' || die "writer"
import errno, hashlib, os, sys
mnt, log = sys.argv[1], sys.argv[2]
n = 0
with open(log, "w") as out:
    while n < 100000:
        data = os.urandom(100940)
        path = "%s/f%05d" % (mnt, n)
        try:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, "short write")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                print("file %d: %s (not ENOSPC)" % (n, e))
                sys.exit(1)
            break
        out.write("%s %s\n" % (path, hashlib.sha256(data).hexdigest()))
        n += 1
print("files: %d files written and fsync'd before ENOSPC" % n)
sys.exit(0 if n > 100 else 1)
EOF
umount_fs
mount_fs "$IMG"
python3 - "$T/files.log" <<'EOF' || die "fsync'd files lost after remount"
import hashlib, sys
bad = n = 0
for line in open(sys.argv[1]):
    path, want = line.split()
    n += 1
    try:
        got = hashlib.sha256(open(path, "rb").read()).hexdigest()
    except OSError as e:
        got = str(e)
    if got != want:
        bad += 1
        print("lost: %s" % path)
print("files: %d verified after remount, %d lost" % (n, bad))
sys.exit(1 if bad or n == 0 else 0)
EOF
umount_fs
check_fsck "$IMG"

# ---- writers -----------------------------------------------------------
fresh writers 64M "$IMG"
python3 - "$MNT" <<'EOF' > "$T/writers.out" || { cat "$T/writers.out"; die "writers"; }
import errno, os, sys, time
mnt = sys.argv[1]
pids = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        fd = os.open("%s/w%d" % (mnt, i), os.O_CREAT | os.O_WRONLY, 0o644)
        buf = bytes([0x41 + i]) * (1 << 20)
        start = time.time()
        code = 3
        while time.time() - start < 120:
            try:
                os.write(fd, buf)
            except OSError as e:
                code = 0 if e.errno == errno.ENOSPC else 4
                break
        try:
            os.close(fd)
        except OSError as e:
            # What writeback could not store: within the headroom's
            # allowance for calls under way, nothing may be dropped.
            code = 5 if e.errno == errno.ENOSPC else 6
        os._exit(code)
    pids.append(pid)
ok = True
for pid in pids:
    _, st = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(st)
    if code:
        print("writer %d: exit %d (3: never stopped, 4: not ENOSPC, "
              "5: close reported data dropped, 6: close failed)" % (pid, code))
        ok = False
for i in range(3):
    print("w%d %d" % (i, os.stat("%s/w%d" % (mnt, i)).st_size))
sys.exit(0 if ok else 1)
EOF
umount_fs
mount_fs "$IMG"
while read -r name size; do
	got=$(stat -c %s "$MNT/$name")
	[ "$got" = "$size" ] || die "$name: size $size while mounted, $got after remount"
	byte=$(printf '\\x%x' $((0x41 + ${name#w})))
	head -c "$size" /dev/zero | tr '\0' "$(printf "$byte")" |
		cmp - "$MNT/$name" || die "$name: contents not all its own byte"
done < "$T/writers.out"
echo "writers: $(tr '\n' ' ' < "$T/writers.out")- each stopped by ENOSPC, intact after remount"
umount_fs
check_fsck "$IMG"

# ---- free --------------------------------------------------------------
fresh free 64M "$IMG"
mkdir -p "$MNT/tree/sub" "$MNT/empty" || die "mkdir"
for i in $(seq 50); do
	head -c 4096 /dev/urandom > "$MNT/tree/f$i" || die "small file"
done
head -c $((4 << 20)) /dev/urandom > "$MNT/big" || die "big file"
timeout 120 dd if=/dev/zero of="$MNT/fill" bs=1M 2>/dev/null
[ "$(stat -f -c %a "$MNT")" -eq 0 ] || die "not full"
# dd stops at the page cache's headroom; preallocation goes to the end.
fill_to_the_end
# Overwrites need no space: they work on a full filesystem, as on ext4,
# and so do reads to the end of a file.
head -c $((1 << 20)) /dev/urandom > "$T/over"
dd if="$T/over" of="$MNT/big" bs=64k conv=notrunc,fsync status=none ||
	die "overwrite in place on a full filesystem"
cmp -n $((1 << 20)) "$T/over" "$MNT/big" || die "overwritten data"
cat "$MNT/big" "$MNT/fill" > /dev/null || die "reading to the end on a full filesystem"
mv "$MNT/tree/f1" "$MNT/tree/g1" || die "rename on a full filesystem"
mv "$MNT/tree/f2" "$MNT/tree/sub/f2" || die "rename across directories"
truncate -s 1M "$MNT/big" || die "truncate on a full filesystem"
rm "$MNT/tree/f3" || die "unlink on a full filesystem"
rmdir "$MNT/empty" || die "rmdir on a full filesystem"
rm -rf "$MNT/tree" || die "rm -rf on a full filesystem"
rm "$MNT/fill" || die "unlink of the big file"
dd if=/dev/zero of="$MNT/again" bs=1M count=16 conv=fsync status=none ||
	die "writing after space was freed"
echo "free: rename, truncate, unlink, rmdir, rm -rf on a full filesystem; 16 MiB written after"
umount_fs
check_fsck "$IMG"

# ---- mmap --------------------------------------------------------------
fresh mmap 64M "$IMG"
truncate -s 16M "$MNT/map" || die "truncate"
timeout 120 dd if=/dev/zero of="$MNT/fill" bs=1M 2>/dev/null
fill_to_the_end
python3 - "$MNT/map" <<'EOF' || die "mmap writes"
import errno, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 16 << 20, mmap.MAP_SHARED)
for off in range(0, 16 << 20, 4096):
    m[off] = 0x5a
try:
    m.flush()
except OSError as e:
    if e.errno != errno.ENOSPC:
        print("msync: %s (not ENOSPC)" % e)
        sys.exit(1)
    print("mmap: msync reported ENOSPC, no SIGBUS")
    sys.exit(0)
print("mmap: msync succeeded on a full filesystem")
sys.exit(1)
EOF
kill -0 "$PID" || die "the daemon died"
umount_fs
check_fsck "$IMG"

# ---- host --------------------------------------------------------------
CASE=host
echo "== $CASE"
mount -t tmpfs -o size=48M tmpfs "$HOST" || die "tmpfs"
"$MKFS" -q -s 1G "$HOST/img" || die "mkfs"
mount_fs "$HOST/img"
fill_dd "$MNT/fill"
rc=$?
[ "$rc" -ne 124 ] || die "dd still writing after 120 s"
grep -q "No space left on device" "$T/dd.err" ||
	{ cat "$T/dd.err"; die "dd did not get ENOSPC from a full host"; }
kill -0 "$PID" || die "the daemon died (SIGBUS?)"
size=$(stat -c %s "$MNT/fill")
umount_fs
mount_fs "$HOST/img"
again=$(stat -c %s "$MNT/fill")
[ "$size" = "$again" ] || die "size $size while mounted, $again after a remount"
is_z "$MNT/fill" "$size" || die "contents (a hole nobody made?)"
echo "host: ENOSPC after $size bytes on a 48 MiB host, same size after remount"
umount_fs
check_fsck "$HOST/img"
umount "$HOST" || die "umount tmpfs"

# ---- stress ------------------------------------------------------------
fresh stress 24M "$IMG"
mkdir "$MNT/s" || die "mkdir"
timeout 300 "$MFSSTRESS" -s -p 4 -n 4000 -S 3 --max-size=4194304 -d "$MNT/s" \
	> "$T/stress.out" 2>&1 || { tail -20 "$T/stress.out"; die "mfsstress -s exit $?"; }
tail -1 "$T/stress.out"
umount_fs
check_fsck "$IMG"

echo "PASS"
