/* SPDX-License-Identifier: MIT */
/* siphash.h — SipHash-2-4, keyed hash for directory names and xattrs. */
#ifndef MFS_SIPHASH_H
#define MFS_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of len bytes with the 128-bit key (k[0] = first 8 key bytes
 * as LE u64, k[1] = the next 8). Matches the reference test vectors. */
uint64_t mfs_siphash(const uint64_t k[2], const void *buf, size_t len);

#endif
