#include <errno.h>
#include "file.h"

/* TEMPORARY: replaced by file.c and xattr.c when those branches merge.
 * Every entry point answers -EOPNOTSUPP so nothing pretends to work. */
int mfs_file_read(struct mfs_vol *v, const struct mfs_inode *in, uint64_t off, size_t len, struct iovec *iov, unsigned iovmax, unsigned *iovcnt, size_t *bytes){return -EOPNOTSUPP;}
int mfs_file_write(struct mfs_vol *v, struct mfs_inode *in, uint64_t off, const void *buf, size_t len, size_t *written){*written=0;return -EOPNOTSUPP;}
int mfs_file_truncate(struct mfs_vol *v, struct mfs_inode *in, uint64_t size){return -EOPNOTSUPP;}
int mfs_file_fallocate(struct mfs_vol *v, struct mfs_inode *in, int mode, uint64_t off, uint64_t len){return -EOPNOTSUPP;}
int mfs_file_seek(struct mfs_vol *v, const struct mfs_inode *in, uint64_t off, int whence, uint64_t *result){return -EOPNOTSUPP;}
int mfs_file_copy(struct mfs_vol *v, const struct mfs_inode *src, uint64_t soff, struct mfs_inode *dst, uint64_t doff, size_t len, size_t *copied){return -EOPNOTSUPP;}
int mfs_file_free_all(struct mfs_vol *v, struct mfs_inode *in){return 0;}
