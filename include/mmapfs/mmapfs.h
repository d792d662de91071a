/* SPDX-License-Identifier: MIT */
/*
 * mmapfs.h — the filesystem core API (layer 7).
 *
 * One function per filesystem operation, each returning 0 or a negative
 * errno, with the errno Linux ext4 gives. No FUSE types: the FUSE glue, mkfs
 * -d, fsck and the tests call this. All functions are thread-safe (a
 * reader/writer lock inside: reads share it, changes are serialised).
 *
 * Inode numbers are the FUSE node ids: the root directory is 1.
 *
 * Lookup counts (as FUSE defines them): every successful call that returns
 * an entry — mfs_lookup, mfs_create, mfs_mknod, mfs_mkdir, mfs_symlink,
 * mfs_link, and each entry mfs_readdir passes to its filler with plus set —
 * adds one to that inode's lookup count; mfs_forget takes counts back. An
 * inode whose link count reaches 0 keeps its data while its lookup count or
 * open count is non-zero (it is recorded on the on-disk orphan list
 * meanwhile) and is removed when both reach 0, or at the next open of the
 * image after a crash.
 */
#ifndef MMAPFS_MMAPFS_H
#define MMAPFS_MMAPFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

struct mfs_fs;

#define MFS_ROOT 1u
#define MFS_NAME_LEN 255u
#define MFS_SYMLINK_MAX 4095u
#define MFS_XATTR_SIZE_MAX 65536u
#define MFS_LINK_MAX 65000u
/* Largest file size: 2^50 bytes (1 PiB); EFBIG beyond. */
#define MFS_FILE_SIZE_MAX (1ULL << 50)

/* Open flags */
#define MFS_FS_RDONLY 0x1u
#define MFS_FS_NOLOCK 0x2u
/* Open read-write but write nothing until mfs_fs_start: a program that
 * fails before it (a mount the kernel refuses) leaves the image as it
 * was, byte for byte. */
#define MFS_FS_DEFER 0x4u
/* Give the host back the space of freed blocks (punch holes in the image
 * file) once no superblock slot can reference them any more. */
#define MFS_FS_DISCARD 0x8u
/* When the image is locked by a process that has no mount of it (a
 * daemon still closing it right after umount), wait for it, up to 30 s,
 * instead of failing with -EBUSY at once. */
#define MFS_FS_WAIT 0x10u

/* Open an image: mfs_vol_open, then (unless MFS_FS_DEFER) mark it in use
 * and reclaim orphans left by a crash. */
int mfs_fs_open(const char *image, unsigned flags, struct mfs_fs **out);
/* After MFS_FS_DEFER: mark the image in use and reclaim orphans; call it
 * before any other operation. No-op otherwise. 0 or -errno. */
int mfs_fs_start(struct mfs_fs *fs);
/* Reclaim orphans (nothing can reference them any more), commit, mark the
 * image clean, close. Returns the first error met, the image closed anyway. */
int mfs_fs_close(struct mfs_fs *fs);
/* Close without committing: what a crash leaves (tests). */
void mfs_fs_close_dirty(struct mfs_fs *fs);
/* Commit everything now (sync(2), syncfs, the commit timer, unmount). */
int mfs_fs_sync(struct mfs_fs *fs);
/* Throw away all changes since the last commit (tests). */
int mfs_fs_abort(struct mfs_fs *fs);
/* Non-zero (-errno) once the filesystem has turned read-only after an
 * I/O error or corruption; 0 otherwise. */
int mfs_fs_error(struct mfs_fs *fs);
/* Would a mount take this image? Reads, read-only and without the lock,
 * what the daemon reads when it opens and mounts an image (superblocks,
 * the FREE tree, the list of unlinked files, the root directory) and
 * writes nothing. 0, or the error the mount would fail with (-EUCLEAN:
 * damage, logged). For fsck, which must not call an image clean that a
 * mount refuses. */
int mfs_fs_probe(const char *image);
/* For power-loss tests of the whole stack (the daemon's
 * MMAPFS_TEST_DURABLE_COPY): from now on, after every sync of the image,
 * write what the disk holds, the image as it is at that moment, to path
 * (atomically replaced). What a power cut would leave at any moment is the
 * last such copy. Slow: a copy of the image per sync. 0 or -ENOMEM. */
int mfs_fs_copy_on_sync(struct mfs_fs *fs, const char *path);
/* For tests of the read-only fallback through the whole stack (the
 * daemon's MMAPFS_TEST_FAIL_SYNCS): the next n syncs of the image fail
 * with EIO, as a failing disk's would. */
void mfs_fs_fail_syncs(struct mfs_fs *fs, unsigned n);
bool mfs_fs_readonly(struct mfs_fs *fs);

/* Who is asking: the owner of new inodes, and whether setuid/setgid
 * bits must be dropped (a caller without CAP_FSETID, as the kernel
 * decides for ext4). */
struct mfs_cred {
	uint32_t uid;
	uint32_t gid;
	bool cap_fsetid;  /* may keep setuid/setgid on write/truncate/chown */
	bool in_group;    /* the caller is in the file's group (setattr mode) */
};

struct mfs_attr {
	uint64_t ino;
	uint64_t generation;
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint64_t rdev;
	uint64_t size;
	uint64_t blocks;          /* 512-byte units, as st_blocks */
	struct timespec atime, mtime, ctime, btime;
};

int mfs_lookup(struct mfs_fs *fs, uint64_t parent, const char *name,
	       struct mfs_attr *attr);
void mfs_forget(struct mfs_fs *fs, uint64_t ino, uint64_t nlookup);
int mfs_getattr(struct mfs_fs *fs, uint64_t ino, struct mfs_attr *attr);

/* setattr: which fields of *in to apply */
#define MFS_SET_MODE      0x001u
#define MFS_SET_UID       0x002u
#define MFS_SET_GID       0x004u
#define MFS_SET_SIZE      0x008u
#define MFS_SET_ATIME     0x010u
#define MFS_SET_MTIME     0x020u
#define MFS_SET_ATIME_NOW 0x040u
#define MFS_SET_MTIME_NOW 0x080u
#define MFS_SET_CTIME     0x100u
#define MFS_SET_KILL_PRIV 0x200u  /* kill privileges, whatever cred says */
/* Killing privileges (of a regular file) drops setuid, setgid if group-
 * executable or the caller is not in_group, and "security.capability".
 * A size change by a caller without cap_fsetid kills them, and so does
 * MFS_SET_KILL_PRIV (alone or with other fields: the kernel's word); a
 * uid/gid change (even to the same owner) drops setuid and
 * "security.capability" of anything but a directory, whoever asks, and
 * setgid if group-executable or the caller is neither in_group (the old
 * group) nor cap_fsetid. */
int mfs_setattr(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t ino,
		const struct mfs_attr *in, unsigned to_set, struct mfs_attr *out);

/* Namespace. mode carries the file type (S_IFREG, S_IFIFO, S_IFSOCK,
 * S_IFCHR, S_IFBLK for mknod; ignored type bits for mkdir). */
int mfs_mknod(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t parent,
	      const char *name, uint32_t mode, uint64_t rdev,
	      struct mfs_attr *attr);
int mfs_mkdir(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t parent,
	      const char *name, uint32_t mode, struct mfs_attr *attr);
int mfs_symlink(struct mfs_fs *fs, const struct mfs_cred *cred,
		uint64_t parent, const char *name, const char *target,
		struct mfs_attr *attr);
int mfs_link(struct mfs_fs *fs, uint64_t ino, uint64_t newparent,
	     const char *newname, struct mfs_attr *attr);
int mfs_unlink(struct mfs_fs *fs, uint64_t parent, const char *name);
int mfs_rmdir(struct mfs_fs *fs, uint64_t parent, const char *name);
#define MFS_RENAME_NOREPLACE 0x1u  /* = RENAME_NOREPLACE */
#define MFS_RENAME_EXCHANGE  0x2u  /* = RENAME_EXCHANGE */
int mfs_rename(struct mfs_fs *fs, uint64_t parent, const char *name,
	       uint64_t newparent, const char *newname, unsigned flags);
/* Copies the target (not NUL-terminated) into buf, at most size bytes;
 * *len is the full length. */
int mfs_readlink(struct mfs_fs *fs, uint64_t ino, char *buf, size_t size,
		 size_t *len);

/* Files. open flags are open(2)'s (O_ACCMODE, O_TRUNC, O_APPEND...); an
 * O_TRUNC open by a caller without cap_fsetid kills privileges as a
 * truncate does.
 * mfs_open/mfs_create add one to the open count, mfs_release takes it. */
int mfs_open(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t ino,
	     int flags);
/* open(O_TMPFILE) in directory parent: a new regular file with no links
 * (on the orphan list, so a crash reclaims it), with one lookup counted.
 * mfs_link may name it once (linkat AT_EMPTY_PATH), unlike any other file
 * without links. */
int mfs_tmpfile(struct mfs_fs *fs, const struct mfs_cred *cred,
		uint64_t parent, uint32_t mode, struct mfs_attr *attr);
int mfs_create(struct mfs_fs *fs, const struct mfs_cred *cred,
	       uint64_t parent, const char *name, uint32_t mode, int flags,
	       struct mfs_attr *attr);
int mfs_release(struct mfs_fs *fs, uint64_t ino);

/*
 * Read up to len bytes at off. Fills iov[0..*iovcnt) with pointers into the
 * image mapping (file data) or to a shared zero buffer (holes, unwritten
 * extents), *bytes in total (short only at end of file). iovmax must be at
 * least (len >> 12) + 2. The pointers stay valid (the mapping never moves),
 * but the data may change under a concurrent write or truncate of the same
 * range, as with any page cache.
 */
int mfs_read(struct mfs_fs *fs, uint64_t ino, uint64_t off, size_t len,
	     struct iovec *iov, unsigned iovmax, unsigned *iovcnt,
	     size_t *bytes);
/*
 * The data of an mfs_read of [off, off+len) of ino now lives in a cache of
 * the caller's (the FUSE glue: the mount's page cache), so the image's copy
 * is redundant. Behind a sequential reader it is dropped from memory (the
 * clean pages; dirty ones stay until written back): lagging 16 MiB behind
 * the stream, and all of it when the read reaches the end of the file.
 * Other reads keep it. Costs a read from the image file if the caller's
 * copy is evicted and read again. Best effort, no result.
 */
/*
 * The caller wrote [off, off+len) of ino with mfs_write and keeps the data
 * in a cache of its own (the mount's page cache). Behind a sequential
 * writer the image's copy is written back early (from 2 MiB behind) and
 * dropped from memory (16 MiB behind), so a long write neither fills the
 * memory with a second copy nor leaves all of the writeback to the next
 * commit. Not durable (commits are). Best effort, no result.
 */
void mfs_write_behind(struct mfs_fs *fs, uint64_t ino, uint64_t off,
		      size_t len);
void mfs_read_cached(struct mfs_fs *fs, uint64_t ino, uint64_t off,
		     size_t len);
/* drop setuid/setgid as for a size change, and "security.capability",
 * unless cred->cap_fsetid */
#define MFS_WRITE_KILL_PRIV 0x1u
#define MFS_WRITE_APPEND    0x2u  /* write at the end of the file */
/* Beyond the end: preallocate the gap from the end first, or fail with
 * -ENOSPC writing nothing (for writeback near full, whose pages come in
 * any order: a gap whose own data then did not fit would read as zeros) */
#define MFS_WRITE_NO_GAP    0x4u
/* Write len bytes at off; *written may be short only on ENOSPC/EFBIG
 * after some bytes went in. */
int mfs_write(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t ino,
	      uint64_t off, const void *buf, size_t len, unsigned flags,
	      size_t *written);
/* fsync and fsyncdir: commit (concurrent callers share one commit); with
 * nothing changed, only file data is synced. */
int mfs_fsync(struct mfs_fs *fs, uint64_t ino, bool datasync);
/* mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|KEEP_SIZE,
 * FALLOC_FL_ZERO_RANGE (|KEEP_SIZE); anything else -EOPNOTSUPP. */
int mfs_fallocate(struct mfs_fs *fs, uint64_t ino, int mode, uint64_t off,
		  uint64_t len);
/* whence: SEEK_DATA or SEEK_HOLE (others -EINVAL); -ENXIO past the end. */
int mfs_lseek(struct mfs_fs *fs, uint64_t ino, uint64_t off, int whence,
	      uint64_t *result);
int mfs_copy_file_range(struct mfs_fs *fs, uint64_t ino_in, uint64_t off_in,
			uint64_t ino_out, uint64_t off_out, size_t len,
			size_t *copied);

/*
 * Directories. Offsets: 0 = start, 1 after ".", 2 after "..", and the hash
 * of an entry's name after that entry, so an offset stays valid while
 * entries are added and removed. fill returns 0 if it took the entry, 1 if
 * its buffer is full (the entry is offered again next time). With plus,
 * attr is complete and each taken entry (not "." or "..") adds a lookup.
 * Without plus only attr->ino and the type bits of attr->mode are set.
 */
typedef int (*mfs_fill_t)(void *ctx, const char *name, size_t namelen,
			  const struct mfs_attr *attr, uint64_t next_off);
int mfs_opendir(struct mfs_fs *fs, uint64_t ino);
int mfs_readdir(struct mfs_fs *fs, uint64_t ino, uint64_t off, bool plus,
		mfs_fill_t fill, void *ctx);

struct mfs_statfs {
	uint32_t bsize;
	uint32_t namemax;
	uint64_t blocks, bfree, bavail;
	uint64_t files, ffree;
};
int mfs_statfs(struct mfs_fs *fs, struct mfs_statfs *st);
/* Bytes that new file data can still take: free blocks beyond the
 * reserve for deletes, and no more than the host filesystem can still
 * back (a sparse image on a small host). 0 on a read-only filesystem. The
 * host's figure is refreshed every 20 ms. statfs's bavail is the same. */
uint64_t mfs_space_left(struct mfs_fs *fs);

/* Extended attributes: user., trusted., security., system.posix_acl_*.
 * flags: XATTR_CREATE, XATTR_REPLACE. getxattr with size 0 reports the
 * length only; -ERANGE if size is too small; -ENODATA if absent; -E2BIG
 * over 64 KiB; -EOPNOTSUPP for other namespaces. listxattr gives
 * NUL-terminated names. */
int mfs_setxattr(struct mfs_fs *fs, uint64_t ino, const char *name,
		 const void *value, size_t size, int flags);
int mfs_getxattr(struct mfs_fs *fs, uint64_t ino, const char *name,
		 void *buf, size_t size, size_t *len);
int mfs_listxattr(struct mfs_fs *fs, uint64_t ino, char *buf, size_t size,
		  size_t *len);
int mfs_removexattr(struct mfs_fs *fs, uint64_t ino, const char *name);

#endif
