#include "crc32c.h"
#include <string.h>
#include <pthread.h>

#define POLY 0x82F63B78u  /* reflected Castagnoli */

static uint32_t table[8][256];
static int have_sse42 = -1;

static void init_tables(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int k = 1; k < 8; k++) { c = table[0][c & 0xff] ^ (c >> 8); table[k][n] = c; }
    }
}

static uint32_t sw_extend(uint32_t crc, const unsigned char *p, size_t len) {
    while (len && ((uintptr_t)p & 7)) { crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8); len--; }
    while (len >= 8) {
        uint64_t w; memcpy(&w, p, 8);
        w ^= crc;
        crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
              table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
              table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8; len -= 8;
    }
    while (len--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <wmmintrin.h>

/* Segment lengths for the three-stream path, longest first, and for each the constant that shifts
   a CRC register over that many bytes (`shift_k`, set in init_all). */
static const size_t segments[] = {8192, 2048, 512, 128};
#define SEGMENT_KINDS 4
static uint32_t shift_k[SEGMENT_KINDS];
static int have_clmul = 0;

__attribute__((target("sse4.2")))
static uint64_t hw_run(uint64_t c, const unsigned char *p, size_t len) {
    while (len >= 8) { uint64_t w; memcpy(&w, p, 8); c = _mm_crc32_u64(c, w); p += 8; len -= 8; }
    while (len--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return c;
}

/* register · x^(8·segment) mod P: the carry-less product with x^(8·segment − 33) mod P, reduced by
   the crc32 instruction (which multiplies by x^32; the reflected product brings one more x). */
__attribute__((target("sse4.2,pclmul")))
static uint64_t shift(uint64_t reg, uint32_t k) {
    __m128i prod = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)(uint32_t)reg), _mm_cvtsi32_si128((int)k), 0);
    return _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(prod));
}

/* The crc32 instruction has a latency of three cycles and a throughput of one: three independent
   streams over three adjacent segments run three times as fast as one, and since a raw CRC register
   is linear, reg(A‖B‖C) = shift(shift(reg(A), |B|) ^ reg(B from 0), |C|) ^ reg(C from 0).
   Segments down to 128 bytes, so libcurl's ≤ 16 KiB pieces take this path too (with one 8 KiB
   segment size only, they never did: the GET path checksummed at a third of the speed). */
__attribute__((target("sse4.2,pclmul")))
static uint32_t hw_extend(uint32_t crc, const unsigned char *p, size_t len) {
    uint64_t a = crc ^ 0xFFFFFFFFu;
    while (len && ((uintptr_t)p & 7)) { a = _mm_crc32_u8((uint32_t)a, *p++); len--; }
    if (have_clmul) {
        for (int s = 0; s < SEGMENT_KINDS; s++) {
            const size_t seg = segments[s];
            while (len >= 3 * seg) {
                uint64_t b = 0, c = 0;
                const unsigned char *pb = p + seg, *pc = p + 2 * seg;
                for (size_t i = 0; i < seg; i += 8) {
                    uint64_t wa, wb, wc;
                    memcpy(&wa, p + i, 8); memcpy(&wb, pb + i, 8); memcpy(&wc, pc + i, 8);
                    a = _mm_crc32_u64(a, wa); b = _mm_crc32_u64(b, wb); c = _mm_crc32_u64(c, wc);
                }
                a = shift(shift(a, shift_k[s]) ^ b, shift_k[s]) ^ c;
                p += 3 * seg; len -= 3 * seg;
            }
        }
    }
    return (uint32_t)hw_run(a, p, len) ^ 0xFFFFFFFFu;
}
#endif

static uint32_t x2n_table[64];
static uint32_t multmodp(uint32_t a, uint32_t b);
static uint32_t xnmodp(uint64_t n);

static void init_all(void) {
    init_tables();
    uint32_t p = 1u << 30;  /* x^1 */
    x2n_table[0] = p;
    for (int k = 1; k < 64; k++) x2n_table[k] = p = multmodp(p, p);
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    have_clmul = __builtin_cpu_supports("pclmul") ? 1 : 0;
    for (int s = 0; s < SEGMENT_KINDS; s++) shift_k[s] = xnmodp(8 * (uint64_t)segments[s] - 33);
#else
    have_sse42 = 0;
#endif
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void init_once(void) { pthread_once(&once, init_all); }

int wfs_crc32c_hardware(void) { init_once(); return have_sse42; }

uint32_t wfs_crc32c_extend(uint32_t crc, const void *data, size_t len) {
    init_once();
#if defined(__x86_64__)
    if (have_sse42) return hw_extend(crc, (const unsigned char *)data, len);
#endif
    return sw_extend(crc ^ 0xFFFFFFFFu, (const unsigned char *)data, len) ^ 0xFFFFFFFFu;
}

/* GF(2) polynomial arithmetic modulo the CRC polynomial (reflected), as in zlib's crc32_combine_gen. */
static uint32_t multmodp(uint32_t a, uint32_t b) {
    uint32_t m = 1u << 31, p = 0;
    for (;;) {
        if (a & m) { p ^= b; if ((a & (m - 1)) == 0) break; }
        m >>= 1;
        b = (b & 1) ? (b >> 1) ^ POLY : b >> 1;
    }
    return p;
}

/* x^n mod P, from x2n_table[k] = x^(2^k) mod P (filled before any caller). */
static uint32_t xnmodp(uint64_t n) {
    uint32_t xp = 1u << 31;  /* x^0 */
    int k = 0;
    while (n) {
        if (n & 1) xp = multmodp(x2n_table[k & 63], xp);
        n >>= 1; k++;
    }
    return xp;
}

uint32_t wfs_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
    init_once();
    return multmodp(xnmodp(8 * len_b), crc_a) ^ crc_b;
}
