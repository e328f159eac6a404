// The CPU kernels that need instructions wider than the build's baseline (AVX2/FMA): AVX-512
// and AVX512-BF16, each compiled for its own ISA with per-function target attributes (ggml's
// approach), so one binary runs on an AVX2-only machine and uses AVX-512 where the CPU has it.
// Only the innermost loops live here; blocking, threading and dispatch are Swift's
// (Sources/CPUBackend/Kernels/CPUKernels.swift and Matmul.swift). Call a function only when
// `wfs_cpu_features()` has its bit.
#ifndef WEIGHTFS_CKERNELS_H
#define WEIGHTFS_CKERNELS_H
#include <stddef.h>
#include <stdint.h>

/// AVX2 + FMA + F16C with the OS saving ymm state (x86-64-v3).
#define WFS_CPU_AVX2 1
/// AVX-512 F/BW/VL/DQ with the OS saving zmm state.
#define WFS_CPU_AVX512 2
/// AVX512-BF16 (vdpbf16ps, vcvtne2ps2bf16) on top of WFS_CPU_AVX512.
#define WFS_CPU_AVX512BF16 4
/// AMX-TILE and AMX-BF16 on top of WFS_CPU_AVX512BF16, with the OS's permission to use the tile
/// data (asked for by `wfs_cpu_features`, once per process: Linux's ARCH_REQ_XCOMP_PERM).
#define WFS_CPU_AMX 8

/// The WFS_CPU_* bits this CPU and OS support (cpuid and xgetbv; for AMX the kernel's
/// permission, requested here); 0 off x86-64.
int wfs_cpu_features(void);

/// Rows of a weight panel per call of the panel kernels below.
#define WFS_PANEL_ROWS 12

/// AVX-512, f32: `out[t * outStride + j] = Σ_k w[j * wStride + k] · xt[(t / 16) * n * 16 + k * 16 + t % 16]`
/// for the 12 rows j of the panel at `w` (f32, row stride `wStride` elements; only the first
/// `rows` ≤ 12 are stored: a short panel is padded by the caller) and the tokens
/// t < `tokens` of `tiles` tiles of 16 tokens, k-major (tile i at `xt + i * n * 16`, zero past
/// the last token). `next`/`nextBytes`: memory to prefetch while computing (the next panel), or NULL/0.
void wfs_avx512_f32_panel(const float *w, size_t wStride, size_t rows, size_t n, const float *xt, size_t tiles,
                          float *out, size_t outStride, size_t tokens, const void *next, size_t nextBytes);

/// AVX512-BF16: the same product for a panel of bf16 weights (row stride `wStride` elements, n
/// even) against activations packed by `wfs_avx512bf16_pack_tile`: each pair of k a 32-bit lane
/// of two bf16, tile i at `xp + i * (n / 2) * 16`. Products by vdpbf16ps, sums in f32.
void wfs_avx512bf16_panel(const uint16_t *w, size_t wStride, size_t rows, size_t n, const uint32_t *xp, size_t tiles,
                          float *out, size_t outStride, size_t tokens, const void *next, size_t nextBytes);

/// AMX-BF16: the same product as `wfs_avx512bf16_panel` (same packed activations) for a panel
/// of up to 24 rows (two tiles of 12: `rows` ≤ 12 reads the first 12 only, more reads all 24),
/// in tile multiplies (tdpbf16ps, 12 rows × 16 tokens × 32 k each). n must be a multiple of 32.
void wfs_amx_bf16_panel(const uint16_t *w, size_t wStride, size_t rows, size_t n, const uint32_t *xp, size_t tiles,
                        float *out, size_t outStride, size_t tokens, const void *next, size_t nextBytes);

/// Tile `tile` of 16 tokens of x (`tokens` rows of n f32, n even) as bf16 pairs, k-pair-major:
/// `xp[tile * (n/2) * 16 + p * 16 + lane] = bf16(x[tile*16+lane, 2p]) | bf16(x[.., 2p+1]) << 16`
/// (round to nearest even), zero past the last token.
void wfs_avx512bf16_pack_tile(const float *x, size_t tokens, size_t n, size_t tile, uint32_t *xp);

/// `out[i] = x[i]` rounded to bf16 (as `wfs_bf16_round`) and widened back to f32, for `count`
/// floats: the activations of a product that computes in bf16 pairs but not through the packed
/// tiles (decode, fewer than 8 tokens). Needs WFS_CPU_AVX512BF16.
void wfs_avx512bf16_round_f32(const float *x, size_t count, float *out);

/// The core's peak for a kernel set, for `weightfs-bench kernels`: `iterations` rounds of
/// independent fused multiply-adds (set WFS_CPU_AVX2: 8-wide; WFS_CPU_AVX512: 16-wide;
/// WFS_CPU_AVX512BF16: vdpbf16ps; WFS_CPU_AMX: tdpbf16ps on full 16×16 tiles) kept in registers. Returns the floating-point operations done
/// (a multiply-add is two; one vdpbf16ps lane two of each); 0 if the set is not one of those.
double wfs_peak_flops(int set, size_t iterations);

/// `out[t * outStride + j] = tmp[j * 16 + t]` for rows j < `rows` (≤ 12) and tokens t < `tokens`
/// (≤ 16): a panel's results, row-major as the kernels hold them, into the token-major output
/// (AVX2 8×8 transposes when the panel is whole). Needs WFS_CPU_AVX2.
void wfs_put_transposed12(const float *tmp, size_t rows, float *out, size_t outStride, size_t tokens);

/// f32 → bf16, round to nearest even (NaN stays NaN): the reference of the packing above.
uint16_t wfs_bf16_round(float f);

#endif
