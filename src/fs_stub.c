/* SPDX-License-Identifier: MIT */
/* TEMP: the core API (mmapfs.h) as stubs returning -ENOSYS, so the daemon
 * builds before src/fs.c lands. Dropped when main is merged. */
#include <errno.h>

#include "mmapfs/mmapfs.h"

int mfs_fs_open(const char *image, unsigned flags, struct mfs_fs **out) { return -ENOSYS; }
int mfs_fs_close(struct mfs_fs *fs) { return 0; }
void mfs_fs_close_dirty(struct mfs_fs *fs) { }
int mfs_fs_sync(struct mfs_fs *fs) { return -ENOSYS; }
int mfs_fs_abort(struct mfs_fs *fs) { return -ENOSYS; }
int mfs_fs_error(struct mfs_fs *fs) { return 0; }
bool mfs_fs_readonly(struct mfs_fs *fs) { return false; }
int mfs_lookup(struct mfs_fs *fs, uint64_t parent, const char *name, struct mfs_attr *attr) { return -ENOSYS; }
void mfs_forget(struct mfs_fs *fs, uint64_t ino, uint64_t nlookup) { }
int mfs_getattr(struct mfs_fs *fs, uint64_t ino, struct mfs_attr *attr) { return -ENOSYS; }
int mfs_setattr(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t ino, const struct mfs_attr *in, unsigned to_set, struct mfs_attr *out) { return -ENOSYS; }
int mfs_mknod(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev, struct mfs_attr *attr) { return -ENOSYS; }
int mfs_mkdir(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t parent, const char *name, uint32_t mode, struct mfs_attr *attr) { return -ENOSYS; }
int mfs_symlink(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t parent, const char *name, const char *target, struct mfs_attr *attr) { return -ENOSYS; }
int mfs_link(struct mfs_fs *fs, uint64_t ino, uint64_t newparent, const char *newname, struct mfs_attr *attr) { return -ENOSYS; }
int mfs_unlink(struct mfs_fs *fs, uint64_t parent, const char *name) { return -ENOSYS; }
int mfs_rmdir(struct mfs_fs *fs, uint64_t parent, const char *name) { return -ENOSYS; }
int mfs_rename(struct mfs_fs *fs, uint64_t parent, const char *name, uint64_t newparent, const char *newname, unsigned flags) { return -ENOSYS; }
int mfs_readlink(struct mfs_fs *fs, uint64_t ino, char *buf, size_t size, size_t *len) { return -ENOSYS; }
int mfs_open(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t ino, int flags) { return -ENOSYS; }
int mfs_create(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t parent, const char *name, uint32_t mode, int flags, struct mfs_attr *attr) { return -ENOSYS; }
int mfs_release(struct mfs_fs *fs, uint64_t ino) { return -ENOSYS; }
int mfs_read(struct mfs_fs *fs, uint64_t ino, uint64_t off, size_t len, struct iovec *iov, unsigned iovmax, unsigned *iovcnt, size_t *bytes) { return -ENOSYS; }
int mfs_write(struct mfs_fs *fs, const struct mfs_cred *cred, uint64_t ino, uint64_t off, const void *buf, size_t len, unsigned flags, size_t *written) { return -ENOSYS; }
int mfs_fsync(struct mfs_fs *fs, uint64_t ino, bool datasync) { return -ENOSYS; }
int mfs_fallocate(struct mfs_fs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len) { return -ENOSYS; }
int mfs_lseek(struct mfs_fs *fs, uint64_t ino, uint64_t off, int whence, uint64_t *result) { return -ENOSYS; }
int mfs_copy_file_range(struct mfs_fs *fs, uint64_t ino_in, uint64_t off_in, uint64_t ino_out, uint64_t off_out, size_t len, size_t *copied) { return -ENOSYS; }
int mfs_opendir(struct mfs_fs *fs, uint64_t ino) { return -ENOSYS; }
int mfs_readdir(struct mfs_fs *fs, uint64_t ino, uint64_t off, bool plus, mfs_fill_t fill, void *ctx) { return -ENOSYS; }
int mfs_statfs(struct mfs_fs *fs, struct mfs_statfs *st) { return -ENOSYS; }
int mfs_setxattr(struct mfs_fs *fs, uint64_t ino, const char *name, const void *value, size_t size, int flags) { return -ENOSYS; }
int mfs_getxattr(struct mfs_fs *fs, uint64_t ino, const char *name, void *buf, size_t size, size_t *len) { return -ENOSYS; }
int mfs_listxattr(struct mfs_fs *fs, uint64_t ino, char *buf, size_t size, size_t *len) { return -ENOSYS; }
int mfs_removexattr(struct mfs_fs *fs, uint64_t ino, const char *name) { return -ENOSYS; }
