/* SPDX-License-Identifier: MIT */
/*
 * test_checksums.c — crc32c and SipHash-2-4 against published vectors, and
 * crc32c's two implementations against each other and against a bit-at-a-
 * time reference written here from the definition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mfs_skip.h"

#include "crc32c.h"
#include "crc32c_impl.h"
#include "endian.h"
#include "siphash.h"

/* ---- helpers ---------------------------------------------------------- */

/* The definition, one bit at a time: reflected 0x1edc6f41, init and final
 * xor ~0. Slow and obviously right; the fast paths are checked against it. */
static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int i = 0; i < 8; i++)
			crc = (crc >> 1) ^ ((crc & 1) ? 0x82f63b78u : 0);
	}
	return ~crc;
}

/* Deterministic PRNG (xorshift64*), so a failure can be reproduced. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static void fill_random(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(rng() >> 56);
}

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

/* Every implementation this machine can run, the dispatcher included. */
static size_t crc_impls(crc_fn fns[3], const char *names[3])
{
	size_t n = 0;

	fns[n] = mfs_crc32c;
	names[n++] = "dispatch";
	fns[n] = mfs_crc32c_sw;
	names[n++] = "sw";
	if (mfs_crc32c_have_hw()) {
		fns[n] = mfs_crc32c_hw;
		names[n++] = "hw";
	}
	return n;
}

/* ---- crc32c ----------------------------------------------------------- */

static void check_vector(const void *buf, size_t len, uint32_t want)
{
	crc_fn fns[3];
	const char *names[3];
	size_t n = crc_impls(fns, names);

	assert_int_equal(crc_bitwise(0, buf, len), want);
	for (size_t i = 0; i < n; i++) {
		uint32_t got = fns[i](0, buf, len);

		if (got != want)
			fail_msg("%s: len %zu: got %08x want %08x", names[i],
				 len, got, want);
	}
}

static void test_crc_known_vectors(void **state)
{
	uint8_t buf[48];

	(void)state;
	check_vector("123456789", 9, 0xe3069283u);
	check_vector("", 0, 0);
	check_vector("a", 1, 0xc1d04330u);

	/* RFC 3720 (iSCSI) appendix B.4. */
	memset(buf, 0, 32);
	check_vector(buf, 32, 0x8a9136aau);
	memset(buf, 0xff, 32);
	check_vector(buf, 32, 0x62a8ab43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	check_vector(buf, 32, 0x46dd794eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	check_vector(buf, 32, 0x113fdb5cu);

	static const uint8_t iscsi_read[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
		0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	check_vector(iscsi_read, sizeof(iscsi_read), 0xd9963a56u);
}

/* The CPU this runs on should have SSE4.2 (every x86-64 machine of the
 * project does); say loudly when the hardware path is not being tested. */
static void test_crc_hw_present(void **state)
{
	(void)state;
#if defined(__x86_64__)
	if (!__builtin_cpu_supports("sse4.2")) {
		MFS_SKIP("no SSE4.2 on this CPU; hw path untested\n");
	}
	assert_true(mfs_crc32c_have_hw());
#else
	assert_false(mfs_crc32c_have_hw());
	skip();
#endif
}

/* All lengths 0..1024, each at a random misalignment, every
 * implementation against the bitwise reference. */
static void test_crc_agree_all_lengths(void **state)
{
	enum { MAXLEN = 1024, SLACK = 16 };
	uint8_t *buf = malloc(MAXLEN + SLACK);
	crc_fn fns[3];
	const char *names[3];
	size_t n = crc_impls(fns, names);

	(void)state;
	assert_non_null(buf);
	for (size_t len = 0; len <= MAXLEN; len++) {
		size_t off = (size_t)(rng() % SLACK);
		uint32_t seed = (len % 3 == 0) ? 0 : (uint32_t)rng();
		uint32_t want;

		fill_random(buf + off, len);
		want = crc_bitwise(seed, buf + off, len);
		for (size_t i = 0; i < n; i++) {
			uint32_t got = fns[i](seed, buf + off, len);

			if (got != want) {
				free(buf);
				fail_msg("%s: len %zu off %zu seed %08x: got %08x want %08x",
					 names[i], len, off, seed, got, want);
			}
		}
	}
	free(buf);
}

/* Large buffers at every one of the 8 alignments: the 64-bit inner loops. */
static void test_crc_agree_large(void **state)
{
	enum { LEN = 1 << 20 };
	uint8_t *buf = malloc(LEN + 8);
	crc_fn fns[3];
	const char *names[3];
	size_t n = crc_impls(fns, names);

	(void)state;
	assert_non_null(buf);
	fill_random(buf, LEN + 8);
	for (size_t off = 0; off < 8; off++) {
		uint32_t want = crc_bitwise(0, buf + off, LEN);

		for (size_t i = 0; i < n; i++)
			if (fns[i](0, buf + off, LEN) != want) {
				free(buf);
				fail_msg("%s: 1 MiB at offset %zu", names[i], off);
			}
	}
	free(buf);
}

/* crc(crc(0, a), b) == crc(0, a || b), for every split point. */
static void test_crc_incremental(void **state)
{
	enum { LEN = 300 };
	uint8_t buf[LEN + 1];
	crc_fn fns[3];
	const char *names[3];
	size_t n = crc_impls(fns, names);

	(void)state;
	fill_random(buf, sizeof(buf));
	for (size_t i = 0; i < n; i++) {
		uint32_t whole = fns[i](0, buf + 1, LEN);

		assert_int_equal(whole, crc_bitwise(0, buf + 1, LEN));
		for (size_t a = 0; a <= LEN; a++) {
			size_t b = a + (size_t)(rng() % (LEN - a + 1));
			uint32_t c = fns[i](0, buf + 1, a);

			c = fns[i](c, buf + 1 + a, b - a);
			c = fns[i](c, buf + 1 + b, LEN - b);
			if (c != whole)
				fail_msg("%s: split %zu/%zu differs", names[i], a, b);
		}
	}
	/* Mixing implementations mid-stream gives the same answer too. */
	if (mfs_crc32c_have_hw()) {
		uint32_t c = mfs_crc32c_hw(0, buf, 77);

		c = mfs_crc32c_sw(c, buf + 77, LEN + 1 - 77);
		assert_int_equal(c, crc_bitwise(0, buf, LEN + 1));
	}
}

/* A single flipped bit anywhere in a block changes the crc (what the node
 * checksum relies on). */
static void test_crc_detects_bitflip(void **state)
{
	uint8_t blk[4096];
	uint32_t orig;

	(void)state;
	fill_random(blk, sizeof(blk));
	orig = mfs_crc32c(0, blk, sizeof(blk));
	for (size_t bit = 0; bit < sizeof(blk) * 8; bit += 7) {
		blk[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_not_equal(mfs_crc32c(0, blk, sizeof(blk)), orig);
		blk[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(mfs_crc32c(0, blk, sizeof(blk)), orig);
}

/* ---- SipHash-2-4 ------------------------------------------------------ */

/* The reference vectors of SipHash-2-4 (64-bit output): key 00 01 .. 0f,
 * message of length i = 00 01 .. (i-1); each tag as its 8 output bytes,
 * least significant first. */
static const uint8_t sip_vectors[64][8] = {
	{ 0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72 },
	{ 0xfd, 0x67, 0xdc, 0x93, 0xc5, 0x39, 0xf8, 0x74 },
	{ 0x5a, 0x4f, 0xa9, 0xd9, 0x09, 0x80, 0x6c, 0x0d },
	{ 0x2d, 0x7e, 0xfb, 0xd7, 0x96, 0x66, 0x67, 0x85 },
	{ 0xb7, 0x87, 0x71, 0x27, 0xe0, 0x94, 0x27, 0xcf },
	{ 0x8d, 0xa6, 0x99, 0xcd, 0x64, 0x55, 0x76, 0x18 },
	{ 0xce, 0xe3, 0xfe, 0x58, 0x6e, 0x46, 0xc9, 0xcb },
	{ 0x37, 0xd1, 0x01, 0x8b, 0xf5, 0x00, 0x02, 0xab },
	{ 0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93 },
	{ 0xb0, 0xe4, 0xa9, 0x0b, 0xdf, 0x82, 0x00, 0x9e },
	{ 0xf3, 0xb9, 0xdd, 0x94, 0xc5, 0xbb, 0x5d, 0x7a },
	{ 0xa7, 0xad, 0x6b, 0x22, 0x46, 0x2f, 0xb3, 0xf4 },
	{ 0xfb, 0xe5, 0x0e, 0x86, 0xbc, 0x8f, 0x1e, 0x75 },
	{ 0x90, 0x3d, 0x84, 0xc0, 0x27, 0x56, 0xea, 0x14 },
	{ 0xee, 0xf2, 0x7a, 0x8e, 0x90, 0xca, 0x23, 0xf7 },
	{ 0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1 },
	{ 0xdb, 0x9b, 0xc2, 0x57, 0x7f, 0xcc, 0x2a, 0x3f },
	{ 0x94, 0x47, 0xbe, 0x2c, 0xf5, 0xe9, 0x9a, 0x69 },
	{ 0x9c, 0xd3, 0x8d, 0x96, 0xf0, 0xb3, 0xc1, 0x4b },
	{ 0xbd, 0x61, 0x79, 0xa7, 0x1d, 0xc9, 0x6d, 0xbb },
	{ 0x98, 0xee, 0xa2, 0x1a, 0xf2, 0x5c, 0xd6, 0xbe },
	{ 0xc7, 0x67, 0x3b, 0x2e, 0xb0, 0xcb, 0xf2, 0xd0 },
	{ 0x88, 0x3e, 0xa3, 0xe3, 0x95, 0x67, 0x53, 0x93 },
	{ 0xc8, 0xce, 0x5c, 0xcd, 0x8c, 0x03, 0x0c, 0xa8 },
	{ 0x94, 0xaf, 0x49, 0xf6, 0xc6, 0x50, 0xad, 0xb8 },
	{ 0xea, 0xb8, 0x85, 0x8a, 0xde, 0x92, 0xe1, 0xbc },
	{ 0xf3, 0x15, 0xbb, 0x5b, 0xb8, 0x35, 0xd8, 0x17 },
	{ 0xad, 0xcf, 0x6b, 0x07, 0x63, 0x61, 0x2e, 0x2f },
	{ 0xa5, 0xc9, 0x1d, 0xa7, 0xac, 0xaa, 0x4d, 0xde },
	{ 0x71, 0x65, 0x95, 0x87, 0x66, 0x50, 0xa2, 0xa6 },
	{ 0x28, 0xef, 0x49, 0x5c, 0x53, 0xa3, 0x87, 0xad },
	{ 0x42, 0xc3, 0x41, 0xd8, 0xfa, 0x92, 0xd8, 0x32 },
	{ 0xce, 0x7c, 0xf2, 0x72, 0x2f, 0x51, 0x27, 0x71 },
	{ 0xe3, 0x78, 0x59, 0xf9, 0x46, 0x23, 0xf3, 0xa7 },
	{ 0x38, 0x12, 0x05, 0xbb, 0x1a, 0xb0, 0xe0, 0x12 },
	{ 0xae, 0x97, 0xa1, 0x0f, 0xd4, 0x34, 0xe0, 0x15 },
	{ 0xb4, 0xa3, 0x15, 0x08, 0xbe, 0xff, 0x4d, 0x31 },
	{ 0x81, 0x39, 0x62, 0x29, 0xf0, 0x90, 0x79, 0x02 },
	{ 0x4d, 0x0c, 0xf4, 0x9e, 0xe5, 0xd4, 0xdc, 0xca },
	{ 0x5c, 0x73, 0x33, 0x6a, 0x76, 0xd8, 0xbf, 0x9a },
	{ 0xd0, 0xa7, 0x04, 0x53, 0x6b, 0xa9, 0x3e, 0x0e },
	{ 0x92, 0x59, 0x58, 0xfc, 0xd6, 0x42, 0x0c, 0xad },
	{ 0xa9, 0x15, 0xc2, 0x9b, 0xc8, 0x06, 0x73, 0x18 },
	{ 0x95, 0x2b, 0x79, 0xf3, 0xbc, 0x0a, 0xa6, 0xd4 },
	{ 0xf2, 0x1d, 0xf2, 0xe4, 0x1d, 0x45, 0x35, 0xf9 },
	{ 0x87, 0x57, 0x75, 0x19, 0x04, 0x8f, 0x53, 0xa9 },
	{ 0x10, 0xa5, 0x6c, 0xf5, 0xdf, 0xcd, 0x9a, 0xdb },
	{ 0xeb, 0x75, 0x09, 0x5c, 0xcd, 0x98, 0x6c, 0xd0 },
	{ 0x51, 0xa9, 0xcb, 0x9e, 0xcb, 0xa3, 0x12, 0xe6 },
	{ 0x96, 0xaf, 0xad, 0xfc, 0x2c, 0xe6, 0x66, 0xc7 },
	{ 0x72, 0xfe, 0x52, 0x97, 0x5a, 0x43, 0x64, 0xee },
	{ 0x5a, 0x16, 0x45, 0xb2, 0x76, 0xd5, 0x92, 0xa1 },
	{ 0xb2, 0x74, 0xcb, 0x8e, 0xbf, 0x87, 0x87, 0x0a },
	{ 0x6f, 0x9b, 0xb4, 0x20, 0x3d, 0xe7, 0xb3, 0x81 },
	{ 0xea, 0xec, 0xb2, 0xa3, 0x0b, 0x22, 0xa8, 0x7f },
	{ 0x99, 0x24, 0xa4, 0x3c, 0xc1, 0x31, 0x57, 0x24 },
	{ 0xbd, 0x83, 0x8d, 0x3a, 0xaf, 0xbf, 0x8d, 0xb7 },
	{ 0x0b, 0x1a, 0x2a, 0x32, 0x65, 0xd5, 0x1a, 0xea },
	{ 0x13, 0x50, 0x79, 0xa3, 0x23, 0x1c, 0xe6, 0x60 },
	{ 0x93, 0x2b, 0x28, 0x46, 0xe4, 0xd7, 0x06, 0x66 },
	{ 0xe1, 0x91, 0x5f, 0x5c, 0xb1, 0xec, 0xa4, 0x6c },
	{ 0xf3, 0x25, 0x96, 0x5c, 0xa1, 0x6d, 0x62, 0x9f },
	{ 0x57, 0x5f, 0xf2, 0x8e, 0x60, 0x38, 0x1b, 0xe5 },
	{ 0x72, 0x45, 0x06, 0xeb, 0x4c, 0x32, 0x8a, 0x95 },
};

static void ref_key(uint64_t k[2])
{
	uint8_t kb[16];

	for (int i = 0; i < 16; i++)
		kb[i] = (uint8_t)i;
	k[0] = mfs_get_le64(kb);
	k[1] = mfs_get_le64(kb + 8);
}

static void test_siphash_vectors(void **state)
{
	uint8_t msg[64];
	uint64_t k[2];

	(void)state;
	ref_key(k);
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	for (size_t len = 0; len < 64; len++) {
		uint8_t out[8];

		mfs_put_le64(out, mfs_siphash(k, msg, len));
		if (memcmp(out, sip_vectors[len], 8) != 0)
			fail_msg("siphash vector %zu: got %016llx", len,
				 (unsigned long long)mfs_get_le64(out));
	}
}

/* The same bytes at any address hash the same; the key matters. */
static void test_siphash_alignment_and_key(void **state)
{
	uint8_t buf[64 + 8];
	uint64_t k[2], k2[2];

	(void)state;
	ref_key(k);
	for (size_t off = 0; off < 8; off++) {
		for (int i = 0; i < 64; i++)
			buf[off + i] = (uint8_t)i;
		for (size_t len = 0; len < 64; len++) {
			uint8_t out[8];

			mfs_put_le64(out, mfs_siphash(k, buf + off, len));
			assert_memory_equal(out, sip_vectors[len], 8);
		}
	}
	k2[0] = k[0] ^ 1;
	k2[1] = k[1];
	assert_int_not_equal(mfs_siphash(k, "lost+found", 10),
			     mfs_siphash(k2, "lost+found", 10));
	k2[0] = k[0];
	k2[1] = k[1] ^ (1ULL << 63);
	assert_int_not_equal(mfs_siphash(k, "lost+found", 10),
			     mfs_siphash(k2, "lost+found", 10));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc_known_vectors),
		cmocka_unit_test(test_crc_hw_present),
		cmocka_unit_test(test_crc_agree_all_lengths),
		cmocka_unit_test(test_crc_agree_large),
		cmocka_unit_test(test_crc_incremental),
		cmocka_unit_test(test_crc_detects_bitflip),
		cmocka_unit_test(test_siphash_vectors),
		cmocka_unit_test(test_siphash_alignment_and_key),
	};

	return mfs_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
