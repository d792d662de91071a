/* SPDX-License-Identifier: MIT */
/*
 * crc32c_impl.h — the two implementations behind mfs_crc32c(), exposed for
 * the tests that check they agree. Nothing but crc32c.c and its tests
 * should include this; everyone else calls mfs_crc32c().
 *
 * Both take and return the CRC in the same convention as mfs_crc32c()
 * (start with 0; the pre- and post-inversion happen inside).
 */
#ifndef MFS_CRC32C_IMPL_H
#define MFS_CRC32C_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Portable table-driven (slicing-by-8) implementation. Always available. */
uint32_t mfs_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* True if this CPU has the SSE4.2 crc32 instruction (and this build has
 * the code for it). */
bool mfs_crc32c_have_hw(void);

/* SSE4.2 implementation. Only call it if mfs_crc32c_have_hw() is true. */
uint32_t mfs_crc32c_hw(uint32_t crc, const void *buf, size_t len);

#endif
