/* SPDX-License-Identifier: MIT */
/*
 * format_stub.c — TEMPORARY stand-in for mfs_format() (txn.h) so that the
 * mkfs front end and its tests can be built before txn.c exists. Delete on
 * merge; txn.c provides the real mfs_format().
 *
 * It keeps the parts of the contract the front end relies on: -EEXIST for
 * an existing file without force, the lock taken before the file changes
 * (-EBUSY, file untouched), a sparse file of opts->size bytes (fallocated
 * with prealloc), and a block 0 that starts with the superblock magic and
 * carries block count, UUID and label at their format.h offsets.
 */
#include "txn.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "endian.h"
#include "mmapfs/format.h"

int mfs_format(const char *path, const struct mfs_format_opts *opts)
{
	uint8_t sb[MFS_SB_SIZE];
	int flags = O_RDWR | O_CREAT | O_CLOEXEC | (opts->force ? 0 : O_EXCL);
	int fd, ret = 0;
	size_t n;

	if (opts->size < 64ull * MFS_BLOCK_SIZE || opts->size % MFS_BLOCK_SIZE)
		return -EINVAL;
	fd = open(path, flags, 0644);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto out_close;
	}
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)opts->size) < 0) {
		ret = -errno;
		goto out_close;
	}
	if (opts->prealloc) {
		ret = -posix_fallocate(fd, 0, (off_t)opts->size);
		if (ret)
			goto out_close;
	}
	memset(sb, 0, sizeof(sb));
	mfs_put_le64(sb + offsetof(struct mfs_disk_super, sb_magic), MFS_SB_MAGIC);
	mfs_put_le32(sb + offsetof(struct mfs_disk_super, sb_version), MFS_VERSION);
	mfs_put_le32(sb + offsetof(struct mfs_disk_super, sb_block_size), MFS_BLOCK_SIZE);
	mfs_put_le64(sb + offsetof(struct mfs_disk_super, sb_block_count),
		     opts->size / MFS_BLOCK_SIZE);
	if (opts->uuid)
		memcpy(sb + offsetof(struct mfs_disk_super, sb_uuid), opts->uuid, MFS_UUID_SIZE);
	if (opts->label) {
		n = strnlen(opts->label, MFS_LABEL_MAX);
		memcpy(sb + offsetof(struct mfs_disk_super, sb_label), opts->label, n);
	}
	if (pwrite(fd, sb, sizeof(sb), 0) != (ssize_t)sizeof(sb) || fdatasync(fd) < 0)
		ret = -errno;
out_close:
	close(fd);
	return ret;
}
