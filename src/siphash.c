/* SPDX-License-Identifier: MIT */
/*
 * siphash.c — SipHash-2-4 (Aumasson and Bernstein, 2012); see siphash.h.
 *
 * Layer: utility, below everything; calls nothing but endian.h.
 *
 * The message is read as little-endian 64-bit words, whatever the host's
 * byte order, so hashes stored on disk (directory entry keys) are the same
 * on every machine.
 */
#include "siphash.h"

#include "endian.h"

static inline uint64_t rotl64(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

struct sip_state {
	uint64_t v0, v1, v2, v3;
};

static inline void sip_round(struct sip_state *s)
{
	s->v0 += s->v1;
	s->v1 = rotl64(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = rotl64(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = rotl64(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = rotl64(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = rotl64(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = rotl64(s->v2, 32);
}

/* One message word: two compression rounds (the "2" of 2-4). */
static inline void sip_absorb(struct sip_state *s, uint64_t m)
{
	s->v3 ^= m;
	sip_round(s);
	sip_round(s);
	s->v0 ^= m;
}

uint64_t mfs_siphash(const uint64_t k[2], const void *buf, size_t len)
{
	const uint8_t *p = buf;
	struct sip_state s = {
		.v0 = k[0] ^ 0x736f6d6570736575ULL, /* "somepseu" */
		.v1 = k[1] ^ 0x646f72616e646f6dULL, /* "dorandom" */
		.v2 = k[0] ^ 0x6c7967656e657261ULL, /* "lygenera" */
		.v3 = k[1] ^ 0x7465646279746573ULL, /* "tedbytes" */
	};
	size_t left = len;
	uint64_t last;

	for (; left >= 8; left -= 8, p += 8)
		sip_absorb(&s, mfs_get_le64(p));

	/* Final word: the remaining 0..7 bytes, little-endian, with the
	 * message length modulo 256 in the top byte. */
	last = (uint64_t)(len & 0xff) << 56;
	for (size_t i = 0; i < left; i++)
		last |= (uint64_t)p[i] << (8 * i);
	sip_absorb(&s, last);

	/* Finalisation: four rounds (the "4" of 2-4). */
	s.v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		sip_round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}
