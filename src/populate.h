/* SPDX-License-Identifier: MIT */
/*
 * populate.h — copy a host directory tree into the root of a filesystem.
 *
 * A client of the core API (mmapfs.h). Used by mkfs.mmapfs -d.
 */
#ifndef MFS_POPULATE_H
#define MFS_POPULATE_H

#include <stdint.h>

#include "mmapfs/mmapfs.h"

/* Copy everything below host directory dir into the root of fs: files
 * (holes kept), directories, symlinks, devices, FIFOs, sockets, hard links,
 * owners, modes, times and xattrs. A lost+found in dir is merged into the
 * existing one. Logs the first failure ("PATH: what: why") and returns its
 * -errno; *files and *bytes (may be NULL) count what was copied. */
int mfs_populate(struct mfs_fs *fs, const char *dir, uint64_t *files,
		 uint64_t *bytes);

#endif
