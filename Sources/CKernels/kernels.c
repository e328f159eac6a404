// AVX-512 and AVX512-BF16 panel kernels (see include/ckernels.h). Each function carries its ISA
// as a target attribute; nothing here runs unless wfs_cpu_features() says the CPU has it.
#include "ckernels.h"
#include <string.h>

uint16_t wfs_bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // NaN stays NaN (quiet)
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000);      // denormals to zero, as vcvtne2ps2bf16
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WFS_ARCH_REQ_XCOMP_PERM 0x1023
#define WFS_XFEATURE_XTILEDATA 18

static unsigned long long wfs_xgetbv0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

int wfs_cpu_features(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return 0;
    unsigned long long xcr0 = wfs_xgetbv0();
    int ymm = (xcr0 & 0x6) == 0x6;     // SSE and AVX state
    int zmm = (xcr0 & 0xe6) == 0xe6;   // and opmask, ZMM_Hi256, Hi16_ZMM
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    int features = 0;
    if (ymm && avx2 && fma && f16c) features |= WFS_CPU_AVX2;
    if ((features & WFS_CPU_AVX2) && zmm && avx512f && avx512dq && avx512bw && avx512vl) features |= WFS_CPU_AVX512;
    int amxBF16 = (d >> 22) & 1, amxTile = (d >> 24) & 1;
    __cpuid_count(7, 1, a, b, c, d);
    if ((features & WFS_CPU_AVX512) && ((a >> 5) & 1)) features |= WFS_CPU_AVX512BF16;
    // Tile state saved by the OS (XCR0 bits 17 and 18), and this process allowed to use it.
    if ((features & WFS_CPU_AVX512BF16) && amxBF16 && amxTile && (xcr0 & (3ull << 17)) == (3ull << 17)
        && syscall(SYS_arch_prctl, WFS_ARCH_REQ_XCOMP_PERM, WFS_XFEATURE_XTILEDATA) == 0)
        features |= WFS_CPU_AMX;
    return features;
}

#define WFS_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))
#define WFS_AVX512BF16 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,avx512bf16")))
#define R WFS_PANEL_ROWS

// Eight rows of eight floats transposed in registers (the classic unpack/shuffle/permute).
__attribute__((target("avx2,fma"))) static inline void wfs_transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20); r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20); r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31); r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31); r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

__attribute__((target("avx2,fma"))) void wfs_put_transposed12(const float *tmp, size_t rows, float *out, size_t outStride, size_t tokens) {
    if (rows != R) {  // a short panel (the last rows of a product): element by element
        for (size_t t = 0; t < tokens; t++)
            for (size_t j = 0; j < rows; j++) out[t * outStride + j] = tmp[j * 16 + t];
        return;
    }
    for (size_t half = 0; half < 2 && half * 8 < tokens; half++) {
        size_t count = tokens - half * 8 < 8 ? tokens - half * 8 : 8;
        __m256 a[8], b[8];
        for (int j = 0; j < 8; j++) a[j] = _mm256_loadu_ps(tmp + j * 16 + half * 8);
        for (int j = 0; j < 4; j++) b[j] = _mm256_loadu_ps(tmp + (8 + j) * 16 + half * 8);
        for (int j = 4; j < 8; j++) b[j] = _mm256_setzero_ps();
        wfs_transpose8(a);
        wfs_transpose8(b);
        for (size_t t = 0; t < count; t++) {
            float *o = out + (half * 8 + t) * outStride;
            _mm256_storeu_ps(o, a[t]);
            _mm_storeu_ps(o + 8, _mm256_castps256_ps128(b[t]));
        }
    }
}

// The 16 tokens of accumulators c[j] (row j < rows) into out, token-major; `tokens` ≤ 16.
WFS_AVX512 static inline void wfs_put16(const __m512 *c, size_t rows, float *out, size_t outStride, size_t tokens) {
    float tmp[R * 16] __attribute__((aligned(64)));
    for (int j = 0; j < R; j++) _mm512_store_ps(tmp + j * 16, c[j]);
    wfs_put_transposed12(tmp, rows, out, outStride, tokens);
}

// A share of the next panel's cache lines: call i of `calls`.
static inline void wfs_prefetch_share(const void *next, size_t nextBytes, size_t i, size_t calls) {
    if (!next || calls == 0) return;
    size_t lines = (nextBytes + 63) / 64;
    for (size_t l = lines * i / calls; l < lines * (i + 1) / calls; l++) __builtin_prefetch((const char *)next + l * 64, 0, 3);
}

// 12 rows × 32 tokens: 24 accumulators, per k two activation loads and twelve broadcasts.
WFS_AVX512 static void wfs_f32_12x32(const float *w, size_t ws, size_t rows, size_t n, const float *xa, const float *xb,
                                     float *out, size_t outStride, size_t tokens) {
    __m512 ca[R], cb[R];
    for (int j = 0; j < R; j++) { ca[j] = _mm512_setzero_ps(); cb[j] = _mm512_setzero_ps(); }
    for (size_t k = 0; k < n; k++) {
        __m512 a = _mm512_loadu_ps(xa + k * 16), b = _mm512_loadu_ps(xb + k * 16);
#pragma clang loop unroll(full)
        for (int j = 0; j < R; j++) {
            __m512 s = _mm512_set1_ps(w[j * ws + k]);
            ca[j] = _mm512_fmadd_ps(s, a, ca[j]);
            cb[j] = _mm512_fmadd_ps(s, b, cb[j]);
        }
    }
    wfs_put16(ca, rows, out, outStride, tokens < 16 ? tokens : 16);
    if (tokens > 16) wfs_put16(cb, rows, out + 16 * outStride, outStride, tokens - 16);
}

// 12 rows × 16 tokens (a last odd tile).
WFS_AVX512 static void wfs_f32_12x16(const float *w, size_t ws, size_t rows, size_t n, const float *xa,
                                     float *out, size_t outStride, size_t tokens) {
    __m512 ca[R];
    for (int j = 0; j < R; j++) ca[j] = _mm512_setzero_ps();
    for (size_t k = 0; k < n; k++) {
        __m512 a = _mm512_loadu_ps(xa + k * 16);
#pragma clang loop unroll(full)
        for (int j = 0; j < R; j++) ca[j] = _mm512_fmadd_ps(_mm512_set1_ps(w[j * ws + k]), a, ca[j]);
    }
    wfs_put16(ca, rows, out, outStride, tokens);
}

// A panel's tile-pair loop: KERNEL32 on token tiles t and t + 1 of X (TILE elements apart),
// KERNEL16 on a last odd tile; each call prefetches its share of the next panel. Expanded inside
// each set's panel function, so it compiles for that set's ISA.
#define WFS_PANEL_TILES(KERNEL32, KERNEL16, X, TILE)                                                          \
    size_t calls = (tiles + 1) / 2, i = 0, tile = 0;                                                         \
    for (; tile + 2 <= tiles; tile += 2, i++) {                                                              \
        wfs_prefetch_share(next, nextBytes, i, calls);                                                       \
        size_t first = tile * 16, left = tokens - first;                                                     \
        KERNEL32(w, wStride, rows, n, (X) + tile * (TILE), (X) + (tile + 1) * (TILE), out + first * outStride, \
                 outStride, left < 32 ? left : 32);                                                          \
    }                                                                                                        \
    if (tile < tiles) {                                                                                      \
        wfs_prefetch_share(next, nextBytes, i, calls);                                                       \
        size_t first = tile * 16, left = tokens - first;                                                     \
        KERNEL16(w, wStride, rows, n, (X) + tile * (TILE), out + first * outStride, outStride,               \
                 left < 16 ? left : 16);                                                                     \
    }

WFS_AVX512 void wfs_avx512_f32_panel(const float *w, size_t wStride, size_t rows, size_t n, const float *xt, size_t tiles,
                                     float *out, size_t outStride, size_t tokens, const void *next, size_t nextBytes) {
    WFS_PANEL_TILES(wfs_f32_12x32, wfs_f32_12x16, xt, n * 16)
}

// The 32-bit pair of bf16 weights (k = 2p, 2p + 1) of a row, broadcast to all 16 lanes.
WFS_AVX512BF16 static inline __m512bh wfs_pair(const uint16_t *row, size_t p) {
    int32_t v;
    memcpy(&v, row + 2 * p, 4);
    return (__m512bh)_mm512_set1_epi32(v);
}

WFS_AVX512BF16 static void wfs_bf16_12x32(const uint16_t *w, size_t ws, size_t rows, size_t n, const uint32_t *xa, const uint32_t *xb,
                                          float *out, size_t outStride, size_t tokens) {
    __m512 ca[R], cb[R];
    for (int j = 0; j < R; j++) { ca[j] = _mm512_setzero_ps(); cb[j] = _mm512_setzero_ps(); }
    size_t pairs = n / 2;
    for (size_t p = 0; p < pairs; p++) {
        __m512bh a = (__m512bh)_mm512_loadu_si512(xa + p * 16), b = (__m512bh)_mm512_loadu_si512(xb + p * 16);
#pragma clang loop unroll(full)
        for (int j = 0; j < R; j++) {
            __m512bh s = wfs_pair(w + j * ws, p);
            ca[j] = _mm512_dpbf16_ps(ca[j], s, a);
            cb[j] = _mm512_dpbf16_ps(cb[j], s, b);
        }
    }
    wfs_put16(ca, rows, out, outStride, tokens < 16 ? tokens : 16);
    if (tokens > 16) wfs_put16(cb, rows, out + 16 * outStride, outStride, tokens - 16);
}

WFS_AVX512BF16 static void wfs_bf16_12x16(const uint16_t *w, size_t ws, size_t rows, size_t n, const uint32_t *xa,
                                          float *out, size_t outStride, size_t tokens) {
    __m512 ca[R];
    for (int j = 0; j < R; j++) ca[j] = _mm512_setzero_ps();
    size_t pairs = n / 2;
    for (size_t p = 0; p < pairs; p++) {
        __m512bh a = (__m512bh)_mm512_loadu_si512(xa + p * 16);
#pragma clang loop unroll(full)
        for (int j = 0; j < R; j++) ca[j] = _mm512_dpbf16_ps(ca[j], wfs_pair(w + j * ws, p), a);
    }
    wfs_put16(ca, rows, out, outStride, tokens);
}

WFS_AVX512BF16 void wfs_avx512bf16_panel(const uint16_t *w, size_t wStride, size_t rows, size_t n, const uint32_t *xp, size_t tiles,
                                         float *out, size_t outStride, size_t tokens, const void *next, size_t nextBytes) {
    WFS_PANEL_TILES(wfs_bf16_12x32, wfs_bf16_12x16, xp, n / 2 * 16)
}

#define WFS_AMX __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,avx512bf16,amx-tile,amx-bf16")))

// The tile configuration (palette 1): 64 bytes as the CPU reads them.
struct wfs_tile_config {
    uint8_t palette, startRow, reserved[14];
    uint16_t bytesPerRow[16];
    uint8_t rows[16];
};

// tmm0..3: C, rows 0-11 and 12-23 × token tiles a and b (12 rows × 16 f32 each); tmm4, tmm5: A,
// weight rows 0-11 and 12-23 × 32 bf16; tmm6, tmm7: B of token tiles a and b, 16 k-pairs × 16
// tokens. Each A and each B loaded serves two tile multiplies. Per thread: loaded on every call.
WFS_AMX static void wfs_amx_configure(void) {
    struct wfs_tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) { c.rows[t] = t < 6 ? R : 16; c.bytesPerRow[t] = 64; }
    _tile_loadconfig(&c);
}

// C tile (12 rows × 16 tokens, row-major in tmp) into out, token-major.
#define wfs_put_tile wfs_put_transposed12

WFS_AMX void wfs_amx_bf16_panel(const uint16_t *w, size_t wStride, size_t rows, size_t n, const uint32_t *xp, size_t tiles,
                                float *out, size_t outStride, size_t tokens, const void *next, size_t nextBytes) {
    wfs_amx_configure();
    float tmp[R * 16] __attribute__((aligned(64)));
    const uint16_t *w1 = w + R * wStride;  // rows 12-23, read only when rows > 12
    size_t rows0 = rows < R ? rows : R, rows1 = rows > R ? rows - R : 0;
    size_t tileWords = n / 2 * 16, calls = (tiles + 1) / 2, i = 0, tile = 0;
    for (; tile < tiles; tile += 2, i++) {
        wfs_prefetch_share(next, nextBytes, i, calls);
        const uint32_t *xa = xp + tile * tileWords, *xb = xa + tileWords;
        size_t first = tile * 16, left = tokens - first;
        size_t ta = left < 16 ? left : 16, tb = left > 16 ? (left - 16 < 16 ? left - 16 : 16) : 0;
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        if (tb && rows1) {
            for (size_t k = 0; k < n; k += 32) {
                _tile_loadd(4, w + k, wStride * 2);
                _tile_loadd(6, xa + (k / 2) * 16, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_loadd(7, xb + (k / 2) * 16, 64);
                _tile_dpbf16ps(1, 4, 7);
                _tile_loadd(5, w1 + k, wStride * 2);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
        } else if (tb) {
            for (size_t k = 0; k < n; k += 32) {
                _tile_loadd(4, w + k, wStride * 2);
                _tile_loadd(6, xa + (k / 2) * 16, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_loadd(7, xb + (k / 2) * 16, 64);
                _tile_dpbf16ps(1, 4, 7);
            }
        } else if (rows1) {
            for (size_t k = 0; k < n; k += 32) {
                _tile_loadd(4, w + k, wStride * 2);
                _tile_loadd(6, xa + (k / 2) * 16, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_loadd(5, w1 + k, wStride * 2);
                _tile_dpbf16ps(2, 5, 6);
            }
        } else {
            for (size_t k = 0; k < n; k += 32) {
                _tile_loadd(4, w + k, wStride * 2);
                _tile_loadd(6, xa + (k / 2) * 16, 64);
                _tile_dpbf16ps(0, 4, 6);
            }
        }
        float *o = out + first * outStride;
        _tile_stored(0, tmp, 64); wfs_put_tile(tmp, rows0, o, outStride, ta);
        if (tb) { _tile_stored(1, tmp, 64); wfs_put_tile(tmp, rows0, o + 16 * outStride, outStride, tb); }
        if (rows1) {
            _tile_stored(2, tmp, 64); wfs_put_tile(tmp, rows1, o + R, outStride, ta);
            if (tb) { _tile_stored(3, tmp, 64); wfs_put_tile(tmp, rows1, o + R + 16 * outStride, outStride, tb); }
        }
    }
    _tile_release();
}

WFS_AMX static double wfs_peak_amx(size_t iterations) {
    struct wfs_tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 6; t++) { c.rows[t] = 16; c.bytesPerRow[t] = 64; }
    _tile_loadconfig(&c);
    uint16_t ones[16 * 32] __attribute__((aligned(64)));
    for (int i = 0; i < 16 * 32; i++) ones[i] = 0x3f80;  // 1.0 in bf16
    _tile_loadd(4, ones, 64);
    _tile_loadd(5, ones, 64);
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    for (size_t i = 0; i < iterations; i++) {
        _tile_dpbf16ps(0, 4, 5);
        _tile_dpbf16ps(1, 4, 5);
        _tile_dpbf16ps(2, 4, 5);
        _tile_dpbf16ps(3, 4, 5);
    }
    float sink[16 * 16] __attribute__((aligned(64)));
    _tile_stored(0, sink, 64);
    volatile float keep = sink[0];
    (void)keep;
    _tile_release();
    return (double)iterations * 4 * 16 * 16 * 32 * 2;
}

WFS_AVX512BF16 void wfs_avx512bf16_pack_tile(const float *x, size_t tokens, size_t n, size_t tile, uint32_t *xp) {
    size_t pairs = n / 2;
    uint32_t *dst = xp + tile * pairs * 16;
    size_t lanes = tokens > tile * 16 ? tokens - tile * 16 : 0;
    if (lanes > 16) lanes = 16;
    const __m512i index = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240);
    for (size_t lane = 0; lane < lanes; lane++) {
        const float *src = x + (tile * 16 + lane) * n;
        size_t k = 0;
        for (; k + 32 <= n; k += 32) {
            __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k));
            _mm512_i32scatter_epi32(dst + (k / 2) * 16 + lane, index, (__m512i)b, 4);
        }
        for (; k + 2 <= n; k += 2)
            dst[(k / 2) * 16 + lane] = (uint32_t)wfs_bf16_round(src[k]) | ((uint32_t)wfs_bf16_round(src[k + 1]) << 16);
    }
    if (lanes < 16)
        for (size_t p = 0; p < pairs; p++)
            for (size_t lane = lanes; lane < 16; lane++) dst[p * 16 + lane] = 0;
}

WFS_AVX512BF16 void wfs_avx512bf16_round_f32(const float *x, size_t count, float *out) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256i b = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
        _mm512_storeu_si512(out + i, _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
    }
    for (; i < count; i++) {
        uint32_t u = (uint32_t)wfs_bf16_round(x[i]) << 16;
        memcpy(out + i, &u, 4);
    }
}

// Independent chains: more than the FMA latency × ports, so the units never wait.
#define WFS_PEAK_BODY(T, ZERO, SET1, OP, CHAINS, FLOPS_PER_OP)                                \
    T c[CHAINS];                                                                          \
    for (int j = 0; j < CHAINS; j++) c[j] = ZERO;                                         \
    T a = SET1, b = SET1;                                                                 \
    for (size_t i = 0; i < iterations; i++) {                                             \
        _Pragma("clang loop unroll(full)") for (int j = 0; j < CHAINS; j++) {             \
            c[j] = OP;                                                                    \
            __asm__ volatile("" : "+v"(c[j])); /* every chain stays live */               \
        }                                                                                 \
    }                                                                                     \
    return (double)iterations * CHAINS * (FLOPS_PER_OP);

__attribute__((target("avx2,fma"))) static double wfs_peak_avx2(size_t iterations) {
    WFS_PEAK_BODY(__m256, _mm256_setzero_ps(), _mm256_set1_ps(1e-7f), _mm256_fmadd_ps(a, b, c[j]), 12, 16)
}
WFS_AVX512 static double wfs_peak_avx512(size_t iterations) {
    WFS_PEAK_BODY(__m512, _mm512_setzero_ps(), _mm512_set1_ps(1e-7f), _mm512_fmadd_ps(a, b, c[j]), 24, 32)
}
WFS_AVX512BF16 static double wfs_peak_avx512bf16(size_t iterations) {
    WFS_PEAK_BODY(__m512, _mm512_setzero_ps(), _mm512_set1_ps(1e-7f),
                  _mm512_dpbf16_ps(c[j], (__m512bh)_mm512_castps_si512(a), (__m512bh)_mm512_castps_si512(b)), 24, 64)
}

double wfs_peak_flops(int set, size_t iterations) {
    switch (set) {
    case WFS_CPU_AVX2: return wfs_peak_avx2(iterations);
    case WFS_CPU_AVX512: return wfs_peak_avx512(iterations);
    case WFS_CPU_AVX512BF16: return wfs_peak_avx512bf16(iterations);
    case WFS_CPU_AMX: return wfs_peak_amx(iterations);
    default: return 0;
    }
}

#else
int wfs_cpu_features(void) { return 0; }
void wfs_put_transposed12(const float *tmp, size_t rows, float *out, size_t outStride, size_t tokens) {
    for (size_t t = 0; t < tokens; t++)
        for (size_t j = 0; j < rows; j++) out[t * outStride + j] = tmp[j * 16 + t];
}
double wfs_peak_flops(int set, size_t iterations) { (void)set; (void)iterations; return 0; }
void wfs_avx512_f32_panel(const float *w, size_t wStride, size_t rows, size_t n, const float *xt, size_t tiles,
                          float *out, size_t outStride, size_t tokens, const void *next, size_t nextBytes) {
    (void)w; (void)wStride; (void)n; (void)xt; (void)tiles; (void)out; (void)outStride; (void)tokens; (void)next; (void)nextBytes;
    __builtin_trap();
}
void wfs_avx512bf16_panel(const uint16_t *w, size_t wStride, size_t rows, size_t n, const uint32_t *xp, size_t tiles,
                          float *out, size_t outStride, size_t tokens, const void *next, size_t nextBytes) {
    (void)w; (void)wStride; (void)n; (void)xp; (void)tiles; (void)out; (void)outStride; (void)tokens; (void)next; (void)nextBytes;
    __builtin_trap();
}
void wfs_amx_bf16_panel(const uint16_t *w, size_t wStride, size_t rows, size_t n, const uint32_t *xp, size_t tiles,
                        float *out, size_t outStride, size_t tokens, const void *next, size_t nextBytes) {
    (void)w; (void)wStride; (void)rows; (void)n; (void)xp; (void)tiles; (void)out; (void)outStride; (void)tokens; (void)next; (void)nextBytes;
    __builtin_trap();
}
void wfs_avx512bf16_pack_tile(const float *x, size_t tokens, size_t n, size_t tile, uint32_t *xp) {
    (void)x; (void)tokens; (void)n; (void)tile; (void)xp;
    __builtin_trap();
}
#endif
