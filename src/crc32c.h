/* SPDX-License-Identifier: MIT */
/* crc32c.h — CRC-32C (Castagnoli), as used by iSCSI, ext4 and btrfs. */
#ifndef MFS_CRC32C_H
#define MFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of len bytes, continuing from crc (start with 0). Standard
 * parameters: reflected, initial ~0, final xor ~0, so that
 * mfs_crc32c(0, "123456789", 9) == 0xe3069283. Uses SSE4.2 when the CPU
 * has it, a table otherwise; both give the same result. */
uint32_t mfs_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
