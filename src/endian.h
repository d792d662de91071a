/* SPDX-License-Identifier: MIT */
/*
 * endian.h — alignment-safe little-endian accessors for on-disk fields.
 *
 * Layer: format helpers. Every read or write of an on-disk integer goes
 * through these, so the code is correct on any host byte order and never
 * performs a misaligned access.
 */
#ifndef MFS_ENDIAN_H
#define MFS_ENDIAN_H

#include <stdint.h>
#include <string.h>

static inline uint16_t mfs_get_le16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] | (b[1] << 8));
}

static inline uint32_t mfs_get_le32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
	       ((uint32_t)b[3] << 24);
}

static inline uint64_t mfs_get_le64(const void *p)
{
	const uint8_t *b = p;
	return (uint64_t)mfs_get_le32(b) | ((uint64_t)mfs_get_le32(b + 4) << 32);
}

static inline void mfs_put_le16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static inline void mfs_put_le32(void *p, uint32_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}

static inline void mfs_put_le64(void *p, uint64_t v)
{
	mfs_put_le32(p, (uint32_t)v);
	mfs_put_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

/* Field access helpers: MFS_GET64(ptr_to_struct, field). The pointer may be
 * unaligned (it usually points into the mapping). */
#define MFS_FIELD_PTR(p, type, field) ((const uint8_t *)(p) + offsetof(type, field))
#define MFS_FIELD_WPTR(p, type, field) ((uint8_t *)(p) + offsetof(type, field))

#endif
