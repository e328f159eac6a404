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
/* Three independent streams hide the crc32 instruction's 3-cycle latency; they are joined with combine. */
__attribute__((target("sse4.2")))
static uint32_t hw_run(uint32_t crc, const unsigned char *p, size_t len) {
    uint64_t c = crc;
    while (len && ((uintptr_t)p & 7)) { c = _mm_crc32_u8((uint32_t)c, *p++); len--; }
    while (len >= 8) { uint64_t w; memcpy(&w, p, 8); c = _mm_crc32_u64(c, w); p += 8; len -= 8; }
    while (len--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}

__attribute__((target("sse4.2")))
static uint32_t hw_extend(uint32_t crc, const unsigned char *p, size_t len) {
    const size_t block = 8192;
    while (len >= 3 * block) {
        /* raw register values: the first third continues crc, the others start fresh */
        uint64_t a = crc ^ 0xFFFFFFFFu, b = 0xFFFFFFFFu, c = 0xFFFFFFFFu;
        const unsigned char *pb = p + block, *pc = p + 2 * block;
        for (size_t i = 0; i < block; i += 8) {
            uint64_t wa, wb, wc;
            memcpy(&wa, p + i, 8); memcpy(&wb, pb + i, 8); memcpy(&wc, pc + i, 8);
            a = _mm_crc32_u64(a, wa); b = _mm_crc32_u64(b, wb); c = _mm_crc32_u64(c, wc);
        }
        uint32_t ca = (uint32_t)a ^ 0xFFFFFFFFu, cb = (uint32_t)b ^ 0xFFFFFFFFu, cc = (uint32_t)c ^ 0xFFFFFFFFu;
        crc = wfs_crc32c_combine(wfs_crc32c_combine(ca, cb, block), cc, block);
        p += 3 * block; len -= 3 * block;
    }
    return hw_run(crc ^ 0xFFFFFFFFu, p, len) ^ 0xFFFFFFFFu;
}
#endif

static uint32_t x2n_table[64];
static uint32_t multmodp(uint32_t a, uint32_t b);

static void init_all(void) {
    init_tables();
    uint32_t p = 1u << 30;  /* x^1 */
    x2n_table[0] = p;
    for (int k = 1; k < 64; k++) x2n_table[k] = p = multmodp(p, p);
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
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

/* x^(8n) mod P, from x2n_table[k] = x^(2^k) mod P. */
static uint32_t x8nmodp(uint64_t n) {
    init_once();
    uint32_t xp = 1u << 31;  /* x^0 */
    int k = 3;
    while (n) {
        if (n & 1) xp = multmodp(x2n_table[k & 63], xp);
        n >>= 1; k++;
    }
    return xp;
}

uint32_t wfs_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
    return multmodp(x8nmodp(len_b), crc_a) ^ crc_b;
}
