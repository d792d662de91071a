/* SPDX-License-Identifier: MIT */
/*
 * crc32c.c — CRC-32C (Castagnoli, reflected polynomial 0x82f63b78); see
 * crc32c.h.
 *
 * Layer: utility, below everything; calls nothing but libc and pthreads.
 *
 * Two implementations that must give identical results (tests/
 * test_checksums.c checks them against each other and against the iSCSI
 * vectors): the SSE4.2 crc32 instruction on x86-64 CPUs that have it, and a
 * portable slicing-by-8 table walk. The choice is made once, on first use.
 */
#include "crc32c.h"
#include "crc32c_impl.h"

#include <pthread.h>
#include <string.h>

#include "endian.h"

#define CRC32C_POLY 0x82f63b78u /* reflected 0x1edc6f41 */

/*
 * tab[0][b] is the CRC of the single byte b; tab[k][b] advances tab[k-1][b]
 * by one more zero byte. So eight input bytes can be folded in with eight
 * independent look-ups (slicing-by-8).
 */
static uint32_t crc_tab[8][256];
static uint32_t (*crc_impl)(uint32_t, const void *, size_t);
static bool crc_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
static uint32_t crc_hw_raw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	/* Bring p to 8-byte alignment so the 64-bit loads do not split cache
	 * lines; memcpy keeps the loads themselves free of alignment UB. */
	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
		p += 8;
		len -= 8;
	}
	while (len > 0) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	return (uint32_t)c;
}

static bool cpu_has_sse42(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2");
}
#else
static uint32_t crc_hw_raw(uint32_t crc, const uint8_t *p, size_t len)
{
	(void)p;
	(void)len;
	return crc; /* never called: cpu_has_sse42() is false */
}

static bool cpu_has_sse42(void)
{
	return false;
}
#endif

static uint32_t crc_sw_raw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	while (len >= 8) {
		/* Little-endian loads: the reflected CRC consumes the lowest
		 * byte first, whatever the host's byte order. */
		uint32_t lo = mfs_get_le32(p) ^ crc;
		uint32_t hi = mfs_get_le32(p + 4);

		crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
		      crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^
		      crc_tab[3][hi & 0xff] ^ crc_tab[2][(hi >> 8) & 0xff] ^
		      crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len > 0) {
		crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	return crc;
}

static void crc_init(void)
{
	for (unsigned b = 0; b < 256; b++) {
		uint32_t c = b;

		for (int i = 0; i < 8; i++)
			c = (c >> 1) ^ ((c & 1) ? CRC32C_POLY : 0);
		crc_tab[0][b] = c;
	}
	for (unsigned b = 0; b < 256; b++)
		for (unsigned k = 1; k < 8; k++)
			crc_tab[k][b] = crc_tab[0][crc_tab[k - 1][b] & 0xff] ^
					(crc_tab[k - 1][b] >> 8);

	crc_hw = cpu_has_sse42();
	crc_impl = crc_hw ? mfs_crc32c_hw : mfs_crc32c_sw;
}

uint32_t mfs_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
	return ~crc_sw_raw(~crc, buf, len);
}

uint32_t mfs_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	return ~crc_hw_raw(~crc, buf, len);
}

bool mfs_crc32c_have_hw(void)
{
	pthread_once(&crc_once, crc_init);
	return crc_hw;
}

uint32_t mfs_crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
	return crc_impl(crc, buf, len);
}
