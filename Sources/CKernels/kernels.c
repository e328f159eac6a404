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

// The 16 tokens of accumulators c[j] (row j < rows) into out, token-major; `tokens` ≤ 16.
WFS_AVX512 static inline void wfs_put16(const __m512 *c, size_t rows, float *out, size_t outStride, size_t tokens) {
    float tmp[R * 16] __attribute__((aligned(64)));
    for (int j = 0; j < R; j++) _mm512_store_ps(tmp + j * 16, c[j]);
    for (size_t t = 0; t < tokens; t++) {
        float *o = out + t * outStride;
        for (size_t j = 0; j < rows; j++) o[j] = tmp[j * 16 + t];
    }
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

WFS_AVX512 void wfs_avx512_f32_panel(const float *w, size_t wStride, size_t rows, size_t n, const float *xt, size_t tiles,
                                     float *out, size_t outStride, size_t tokens, const void *next, size_t nextBytes) {
    size_t calls = (tiles + 1) / 2, i = 0, tile = 0;
    for (; tile + 2 <= tiles; tile += 2, i++) {
        wfs_prefetch_share(next, nextBytes, i, calls);
        size_t first = tile * 16, left = tokens - first;
        wfs_f32_12x32(w, wStride, rows, n, xt + tile * n * 16, xt + (tile + 1) * n * 16, out + first * outStride, outStride,
                      left < 32 ? left : 32);
    }
    if (tile < tiles) {
        wfs_prefetch_share(next, nextBytes, i, calls);
        size_t first = tile * 16, left = tokens - first;
        wfs_f32_12x16(w, wStride, rows, n, xt + tile * n * 16, out + first * outStride, outStride, left < 16 ? left : 16);
    }
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
    size_t tileWords = n / 2 * 16, calls = (tiles + 1) / 2, i = 0, tile = 0;
    for (; tile + 2 <= tiles; tile += 2, i++) {
        wfs_prefetch_share(next, nextBytes, i, calls);
        size_t first = tile * 16, left = tokens - first;
        wfs_bf16_12x32(w, wStride, rows, n, xp + tile * tileWords, xp + (tile + 1) * tileWords, out + first * outStride, outStride,
                       left < 32 ? left : 32);
    }
    if (tile < tiles) {
        wfs_prefetch_share(next, nextBytes, i, calls);
        size_t first = tile * 16, left = tokens - first;
        wfs_bf16_12x16(w, wStride, rows, n, xp + tile * tileWords, out + first * outStride, outStride, left < 16 ? left : 16);
    }
}

#define WFS_AMX __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,avx512bf16,amx-tile,amx-bf16")))

// The tile configuration (palette 1): 64 bytes as the CPU reads them.
struct wfs_tile_config {
    uint8_t palette, startRow, reserved[14];
    uint16_t bytesPerRow[16];
    uint8_t rows[16];
};

// tmm0, tmm1: C of two token tiles (12 rows × 16 f32); tmm2: A, 12 weight rows × 32 bf16;
// tmm3, tmm4: B of two token tiles, 16 k-pairs × 16 tokens. Per thread: loaded on every call.
WFS_AMX static void wfs_amx_configure(void) {
    struct wfs_tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 5; t++) { c.rows[t] = t < 3 ? R : 16; c.bytesPerRow[t] = 64; }
    _tile_loadconfig(&c);
}

// C tile (12 rows × 16 tokens, row-major in tmp) into out, token-major.
static inline void wfs_put_tile(const float *tmp, size_t rows, float *out, size_t outStride, size_t tokens) {
    for (size_t t = 0; t < tokens; t++) {
        float *o = out + t * outStride;
        for (size_t j = 0; j < rows; j++) o[j] = tmp[j * 16 + t];
    }
}

WFS_AMX void wfs_amx_bf16_panel(const uint16_t *w, size_t wStride, size_t rows, size_t n, const uint32_t *xp, size_t tiles,
                                float *out, size_t outStride, size_t tokens, const void *next, size_t nextBytes) {
    wfs_amx_configure();
    float tmp[2][R * 16] __attribute__((aligned(64)));
    size_t tileWords = n / 2 * 16, calls = (tiles + 1) / 2, i = 0, tile = 0;
    for (; tile < tiles; tile += 2, i++) {
        wfs_prefetch_share(next, nextBytes, i, calls);
        const uint32_t *xa = xp + tile * tileWords;
        size_t first = tile * 16, left = tokens - first;
        _tile_zero(0);
        if (tile + 1 < tiles) {
            const uint32_t *xb = xa + tileWords;
            _tile_zero(1);
            for (size_t k = 0; k < n; k += 32) {
                _tile_loadd(2, w + k, wStride * 2);
                _tile_loadd(3, xa + (k / 2) * 16, 64);
                _tile_loadd(4, xb + (k / 2) * 16, 64);
                _tile_dpbf16ps(0, 2, 3);
                _tile_dpbf16ps(1, 2, 4);
            }
            _tile_stored(0, tmp[0], 64);
            _tile_stored(1, tmp[1], 64);
            wfs_put_tile(tmp[0], rows, out + first * outStride, outStride, 16);
            wfs_put_tile(tmp[1], rows, out + (first + 16) * outStride, outStride, left - 16 < 16 ? left - 16 : 16);
        } else {
            for (size_t k = 0; k < n; k += 32) {
                _tile_loadd(2, w + k, wStride * 2);
                _tile_loadd(3, xa + (k / 2) * 16, 64);
                _tile_dpbf16ps(0, 2, 3);
            }
            _tile_stored(0, tmp[0], 64);
            wfs_put_tile(tmp[0], rows, out + first * outStride, outStride, left < 16 ? left : 16);
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
