import ModelCore
import CPrefetch
import CKernels

/// `out[t, r] = Σ_i W[r, i] · x[t, i] (+ bias[r])` for a weight W of shape [rows, n] in place
/// (f32, f16 or bf16) and `tokens` activation rows x of length n (row-major, f32).
///
/// Output rows are split over threads. One token (decode) streams through the rows one after
/// another (bf16 rows unpack sixteen weights with two instructions); several tokens (prefill) run panels of 4 rows, widened once, against
/// tiles of 2 tokens: a matmul, not a loop of matvecs. Accumulation is f32 with fused
/// multiply-adds.
enum Matmul {
    /// One product of a batch: weight, where its output goes (`tokens × rows`, row-major) and an
    /// optional bias.
    struct Target {
        let w: WeightTensor
        let out: UnsafeMutablePointer<Float>
        let bias: [Float]?
    }

    static func run(_ w: WeightTensor, _ x: UnsafePointer<Float>, tokens: Int, out: UnsafeMutablePointer<Float>,
                    bias: [Float]? = nil, threads: Int, kernels: CPUKernelSet = CPUKernels.active) {
        run([Target(w: w, out: out, bias: bias)], x, tokens: tokens, threads: threads, kernels: kernels)
    }

    /// Several products of the same input (q/k/v, gate/up) as one parallel job over all their
    /// rows: one hand-off to the workers instead of one per weight, and no idle tail between them.
    /// The weights must share dtype and row length.
    static func run(_ targets: [Target], _ x: UnsafePointer<Float>, tokens: Int, threads: Int,
                    kernels: CPUKernelSet = CPUKernels.active) {
        guard let first = targets.first else { return }
        for t in targets {
            precondition(t.w.shape.count == 2 && t.w.shape[1] == first.w.shape[1] && t.w.dtype == first.w.dtype,
                         "batched matmul of \(t.w.name) with \(first.w.name): shapes or dtypes differ")
        }
        switch first.w.dtype {
        case .f32: run(F32Load.self, targets, x, tokens: tokens, threads: threads, kernels: kernels)
        case .bf16: run(BF16Load.self, targets, x, tokens: tokens, threads: threads, kernels: kernels)
        case .f16: run(F16Load.self, targets, x, tokens: tokens, threads: threads, kernels: kernels)
        }
    }

    /// A target as the workers see it.
    private struct Segment: @unchecked Sendable {  // read-only views and disjoint output rows (see SendablePointer)
        let w: UnsafeRawPointer
        let rows: Int
        let start: Int  // first row in the batch's concatenation
        let out: UnsafeMutablePointer<Float>
        let bias: [Float]?
    }

    @inline(__always)
    private static func run<L: WeightLoad>(_: L.Type, _ targets: [Target], _ input: UnsafePointer<Float>, tokens: Int, threads: Int,
                                           kernels: CPUKernelSet) {
        let n = targets[0].w.shape[1]
        let stride = n * targets[0].w.dtype.byteSize
        let outer = tokens >= 8
        let wide = outer && kernels >= .avx512
        let rounds = roundsActivationsToBF16(kernels: kernels, dtype: targets[0].w.dtype, n: n)
        let pairs = rounds && wide  // packed (and rounded) as bf16 pairs below
        // Fewer than 8 rows on a set that rounds: the AVX2 paths get the same bf16-rounded
        // activations, so a sequence's logits do not depend on how many others share its step
        // (a batch of 16 and a lone decode differ in summation order only, as on AVX2).
        let roundedCopy = UnsafeMutablePointer<Float>.allocate(capacity: rounds && !pairs ? tokens * n : 0)
        defer { roundedCopy.deallocate() }
        if rounds && !pairs {
            wfs_avx512bf16_round_f32(input, tokens * n, roundedCopy)  // `rounds` implies AVX512-BF16
        }
        let x = rounds && !pairs ? UnsafePointer(roundedCopy) : input
        // Each segment starts at a multiple of 12 of the index space the workers split (a few
        // empty rows between): ranges then cut every segment at the same 4- and 6-row panel
        // boundaries whatever the thread count, so every row is computed the same way and one and
        // two threads give identical results.
        let align = 12
        var segments: [Segment] = []
        var total = 0
        for t in targets {
            segments.append(Segment(w: t.w.base, rows: t.w.shape[0], start: total, out: t.out, bias: t.bias))
            total += (t.w.shape[0] + align - 1) / align * align
        }
        // bf16 decode reads x in the even/odd order its weights unpack to (see `bf16RowsTimesOneToken`).
        // A few tokens (a batched decode of 2–7 sequences) stream each row once for all of them.
        let evenOdd = !outer && L.self == BF16Load.self && n >= 16
        let xs = UnsafeMutablePointer<Float>.allocate(capacity: evenOdd ? tokens * n : 0)
        defer { xs.deallocate() }
        if evenOdd { for t in 0..<tokens { deinterleave16(x + t * n, n: n, into: xs + t * n) } }
        let xp = SendablePointer(evenOdd ? UnsafePointer(xs) : x)
        let xRaw = SendablePointer(x)
        // Prefill: the activations transposed once for every worker (see `outerPanels`), or for
        // AVX512-BF16 packed as bf16 pairs (`widePanels`).
        let tiles = (tokens + 15) / 16
        let xtBytes = !outer ? 0 : pairs ? tiles * (n / 2) * 16 * 4 : tiles * 16 * n * 4
        let xtRaw = UnsafeMutableRawPointer.allocate(byteCount: max(xtBytes, 64), alignment: 64)
        defer { xtRaw.deallocate() }
        if pairs {
            let xpp = SendableMutablePointer(xtRaw.bindMemory(to: UInt32.self, capacity: xtBytes / 4))
            Parallel.forRanges(tiles, threads: threads, costPerItem: n * 16) { range in
                for tile in range { wfs_avx512bf16_pack_tile(xRaw.p, tokens, n, tile, xpp.p) }
            }
        } else if outer {
            transposeTiles(x, tokens: tokens, n: n, into: xtRaw.bindMemory(to: Float.self, capacity: xtBytes / 4), threads: threads)
        }
        let xtp = SendablePointer(UnsafePointer(xtRaw.assumingMemoryBound(to: Float.self)))
        let parts = segments
        Parallel.forRanges(total, threads: threads, granularity: align, costPerItem: n * tokens) { range in
            for seg in parts where seg.start < range.upperBound && range.lowerBound < seg.start + seg.rows {
                let rows = max(range.lowerBound, seg.start) - seg.start ..< min(range.upperBound, seg.start + seg.rows) - seg.start
                let out = seg.out
                if evenOdd && tokens == 1 {
                    bf16RowsTimesOneToken(seg.w, stride: stride, rows: rows, xEvenOdd: xp.p, x: xRaw.p, n: n, out: out)
                } else if evenOdd {
                    bf16RowsTimesTokens(seg.w, stride: stride, rows: rows, xEvenOdd: xp.p, x: xRaw.p, tokens: tokens, n: n,
                                        out: out, outStride: seg.rows)
                } else if tokens == 1 {
                    rowsTimesOneToken(L.self, seg.w, stride: stride, rows: rows, x: xp.p, n: n, out: out)
                } else if wide {
                    widePanels(L.self, seg.w, stride: stride, rows: rows, x: xp.p, xt: UnsafeRawPointer(xtp.p), pairs: pairs,
                               kernels: kernels, tokens: tokens, n: n, out: out, outStride: seg.rows)
                } else if outer {
                    outerPanels(L.self, seg.w, stride: stride, rows: rows, x: xp.p, xt: xtp.p, tokens: tokens, n: n, out: out, outStride: seg.rows)
                } else {
                    panels(L.self, seg.w, stride: stride, rows: rows, x: xp.p, tokens: tokens, n: n, out: out, outStride: seg.rows)
                }
                if let b = seg.bias {
                    for t in 0..<tokens { for r in rows { out[t * seg.rows + r] += b[r] } }
                }
            }
        }
    }

    /// Whether a product's activations are rounded to bf16: bf16 weights on the sets that
    /// compute in bf16 pairs (`vdpbf16ps`, AMX), as oneDNN does for a bf16 model, whatever the
    /// number of rows (see `run`); everything else keeps them f32.
    static func roundsActivationsToBF16(kernels: CPUKernelSet, dtype: WeightDType, n: Int) -> Bool {
        kernels >= .avx512bf16 && dtype == .bf16 && n % 2 == 0
    }

    /// Per block of 16: the 8 even-indexed elements, then the 8 odd ones; the tail stays in place.
    static func deinterleave16(_ x: UnsafePointer<Float>, n: Int, into out: UnsafeMutablePointer<Float>) {
        let n16 = n & ~15
        var i = 0
        while i < n16 {
            for j in 0..<8 { out[i + j] = x[i + 2 * j]; out[i + 8 + j] = x[i + 2 * j + 1] }
            i += 16
        }
        while i < n { out[i] = x[i]; i += 1 }
    }

    /// bf16 decode, one row after another (see `rowsTimesOneToken`). Sixteen bf16 weights load
    /// as eight 32-bit lanes: the low halves (even elements) widen with a shift, the high halves
    /// (odd elements) by masking off the low half: two instructions per sixteen weights, against
    /// x in even/odd order. (Widening each half to its own lane costs twice that and ran 30 %
    /// slower.)
    @inline(never)  // compiled on its own: inlined into the dispatcher, LLVM mangles its vector code
    static func bf16RowsTimesOneToken(_ w: UnsafeRawPointer, stride: Int, rows: Range<Int>,
                                      xEvenOdd xs: UnsafePointer<Float>, x: UnsafePointer<Float>, n: Int,
                                      out: UnsafeMutablePointer<Float>) {
        for r in rows { out[r] = bf16Row(w + r * stride, xs, x, n) }
    }

    /// A few tokens (2–7: a batched decode of that many sequences): each row streams from memory
    /// once and is read again from L1 for the next pair of tokens. Each token's sums run exactly
    /// as `bf16RowsTimesOneToken`'s (the same accumulators in the same order), so a sequence's
    /// logits are bit for bit those it gets alone, whatever shares its step. (Before, 2–7 tokens
    /// went through the prefill panels, widening every row to f32: a step of 2 sequences cost
    /// 1.7× one of 1, a step of 7 3.1×.)
    @inline(never)  // compiled on its own: inlined into the dispatcher, LLVM mangles its vector code
    static func bf16RowsTimesTokens(_ w: UnsafeRawPointer, stride: Int, rows: Range<Int>,
                                    xEvenOdd xs: UnsafePointer<Float>, x: UnsafePointer<Float>, tokens: Int, n: Int,
                                    out: UnsafeMutablePointer<Float>, outStride: Int) {
        for r in rows {
            let w0 = w + r * stride
            var t = 0
            while t + 2 <= tokens {
                let (s0, s1) = bf16RowTwice(w0, xs + t * n, x + t * n, xs + (t + 1) * n, x + (t + 1) * n, n)
                out[t * outStride + r] = s0
                out[(t + 1) * outStride + r] = s1
                t += 2
            }
            if t < tokens { out[t * outStride + r] = bf16Row(w0, xs + t * n, x + t * n, n) }
        }
    }

    /// One bf16 row against one token: sixteen weights load as eight 32-bit lanes, the low
    /// halves (even elements) widen with a shift, the high halves (odd elements) by masking off
    /// the low half, against x in even/odd order; four accumulators.
    @inline(__always)
    static func bf16Row(_ w0: UnsafeRawPointer, _ xs: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let n16 = n & ~15, n64 = n & ~63
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var i = 0
        while i < n64 {
            let u0 = w0.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<UInt32>.self)
            let u1 = w0.loadUnaligned(fromByteOffset: (i &+ 16) &* 2, as: SIMD8<UInt32>.self)
            let u2 = w0.loadUnaligned(fromByteOffset: (i &+ 32) &* 2, as: SIMD8<UInt32>.self)
            let u3 = w0.loadUnaligned(fromByteOffset: (i &+ 48) &* 2, as: SIMD8<UInt32>.self)
            a0.addProduct(even(u0), loadX8(xs, i)); a1.addProduct(odd(u0), loadX8(xs, i + 8))
            a2.addProduct(even(u1), loadX8(xs, i + 16)); a3.addProduct(odd(u1), loadX8(xs, i + 24))
            a0.addProduct(even(u2), loadX8(xs, i + 32)); a1.addProduct(odd(u2), loadX8(xs, i + 40))
            a2.addProduct(even(u3), loadX8(xs, i + 48)); a3.addProduct(odd(u3), loadX8(xs, i + 56))
            i += 64
        }
        while i < n16 {
            let u0 = w0.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<UInt32>.self)
            a0.addProduct(even(u0), loadX8(xs, i)); a1.addProduct(odd(u0), loadX8(xs, i + 8))
            i += 16
        }
        var s0 = ((a0 + a1) + (a2 + a3)).sum()
        while i < n { s0 += BF16Load.load1(w0, i) * x[i]; i += 1 }
        return s0
    }

    /// `bf16Row` for two tokens at once, each with its own four accumulators fed in the same
    /// order as `bf16Row` feeds them: the same sums, one pass over the weights.
    @inline(__always)
    static func bf16RowTwice(_ w0: UnsafeRawPointer, _ xs: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                             _ ys: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
        let n16 = n & ~15, n64 = n & ~63
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
        var i = 0
        while i < n64 {
            let u0 = w0.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<UInt32>.self)
            let u1 = w0.loadUnaligned(fromByteOffset: (i &+ 16) &* 2, as: SIMD8<UInt32>.self)
            let u2 = w0.loadUnaligned(fromByteOffset: (i &+ 32) &* 2, as: SIMD8<UInt32>.self)
            let u3 = w0.loadUnaligned(fromByteOffset: (i &+ 48) &* 2, as: SIMD8<UInt32>.self)
            let e0 = even(u0), o0 = odd(u0), e1 = even(u1), o1 = odd(u1)
            a0.addProduct(e0, loadX8(xs, i)); a1.addProduct(o0, loadX8(xs, i + 8))
            a2.addProduct(e1, loadX8(xs, i + 16)); a3.addProduct(o1, loadX8(xs, i + 24))
            b0.addProduct(e0, loadX8(ys, i)); b1.addProduct(o0, loadX8(ys, i + 8))
            b2.addProduct(e1, loadX8(ys, i + 16)); b3.addProduct(o1, loadX8(ys, i + 24))
            let e2 = even(u2), o2 = odd(u2), e3 = even(u3), o3 = odd(u3)
            a0.addProduct(e2, loadX8(xs, i + 32)); a1.addProduct(o2, loadX8(xs, i + 40))
            a2.addProduct(e3, loadX8(xs, i + 48)); a3.addProduct(o3, loadX8(xs, i + 56))
            b0.addProduct(e2, loadX8(ys, i + 32)); b1.addProduct(o2, loadX8(ys, i + 40))
            b2.addProduct(e3, loadX8(ys, i + 48)); b3.addProduct(o3, loadX8(ys, i + 56))
            i += 64
        }
        while i < n16 {
            let u0 = w0.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<UInt32>.self)
            let e0 = even(u0), o0 = odd(u0)
            a0.addProduct(e0, loadX8(xs, i)); a1.addProduct(o0, loadX8(xs, i + 8))
            b0.addProduct(e0, loadX8(ys, i)); b1.addProduct(o0, loadX8(ys, i + 8))
            i += 16
        }
        var s0 = ((a0 + a1) + (a2 + a3)).sum()
        var s1 = ((b0 + b1) + (b2 + b3)).sum()
        while i < n {
            let wi = BF16Load.load1(w0, i)
            s0 += wi * x[i]; s1 += wi * y[i]
            i += 1
        }
        return (s0, s1)
    }

    @inline(__always) static func even(_ u: SIMD8<UInt32>) -> SIMD8<Float> { unsafeBitCast(u &<< 16, to: SIMD8<Float>.self) }
    @inline(__always) static func odd(_ u: SIMD8<UInt32>) -> SIMD8<Float> {
        unsafeBitCast(u & SIMD8<UInt32>(repeating: 0xFFFF_0000), to: SIMD8<Float>.self)
    }

    /// Decode: one row after another, 32 elements per step into four accumulators. One
    /// sequential stream through the weights is what the hardware prefetcher follows best:
    /// measured here, 4 interleaved rows ran 10-40 % slower although each x load fed four rows.
    @inline(never)  // compiled on its own: inlined into the dispatcher, LLVM mangles its vector code
    static func rowsTimesOneToken<L: WeightLoad>(_: L.Type, _ w: UnsafeRawPointer, stride: Int, rows: Range<Int>,
                                                 x: UnsafePointer<Float>, n: Int, out: UnsafeMutablePointer<Float>) {
        let n32 = n & ~31
        for r in rows {
            let w0 = w + r * stride
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var i = 0
            while i < n32 {
                a0.addProduct(L.load8(w0, i), loadX8(x, i))
                a1.addProduct(L.load8(w0, i + 8), loadX8(x, i + 8))
                a2.addProduct(L.load8(w0, i + 16), loadX8(x, i + 16))
                a3.addProduct(L.load8(w0, i + 24), loadX8(x, i + 24))
                i += 32
            }
            while i + 8 <= n { a0.addProduct(L.load8(w0, i), loadX8(x, i)); i += 8 }
            var s0 = ((a0 + a1) + (a2 + a3)).sum()
            while i < n { s0 += L.load1(w0, i) * x[i]; i += 1 }
            out[r] = s0
        }
    }

    /// Prefill, many tokens: an outer-product kernel as BLAS libraries have it. The tokens come
    /// transposed (`transposeTiles`, once per product for all workers: 16 per tile, k-major) and
    /// go in blocks of tiles that stay in L2; the weight rows go by in panels of 6 (bf16/f16 widened once per
    /// block into an f32 scratch). Each step broadcasts one weight of each of the 6 rows against
    /// two 8-token vectors: twelve accumulators, no horizontal sums, 8 loads per 12 fused
    /// multiply-adds. Rows left over past a multiple of 6 go to `panels`.
    @inline(never)  // compiled on its own: inlined into the dispatcher, LLVM mangles its vector code
    static func outerPanels<L: WeightLoad>(_: L.Type, _ w: UnsafeRawPointer, stride: Int, rows: Range<Int>,
                                           x: UnsafePointer<Float>, xt allTiles: UnsafePointer<Float>, tokens: Int, n: Int,
                                           out: UnsafeMutablePointer<Float>, outStride: Int) {
        let mr = 6, nr = 16
        let rows6 = rows.lowerBound + rows.count / mr * mr
        let inPlace = L.self == F32Load.self
        let blockTiles = max(1, (448 * 1024) / (n * nr * 4))
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: inPlace ? 0 : mr * n)
        defer { scratch.deallocate() }
        var t0 = 0
        while t0 < tokens && rows6 > rows.lowerBound {
            let tiles = min(blockTiles, (tokens - t0 + nr - 1) / nr)
            let t1 = min(tokens, t0 + tiles * nr)
            let xt = allTiles + t0 * n  // t0 is a multiple of 16: tile t0/16 starts here
            var r = rows.lowerBound
            while r < rows6 {
                let panel: UnsafePointer<Float>
                if inPlace {
                    panel = (w + r * stride).assumingMemoryBound(to: Float.self)
                } else {
                    widen(L.self, w + r * stride, stride: stride, rows: mr, n: n, into: scratch)
                    panel = UnsafePointer(scratch)
                }
                // The next panel's weights (contiguous rows) come from memory while this one
                // computes: a share of its cache lines is prefetched before each tile. Without
                // this the widening above waited on DRAM, ~10 % of this function's time.
                let nextLines = r + mr < rows6 ? (mr * stride + 63) / 64 : 0
                let next = w + (r + mr) * stride
                for tile in 0..<tiles {
                    for line in nextLines * tile / tiles ..< nextLines * (tile + 1) / tiles { wfs_prefetch(next + line &* 64) }
                    let first = t0 + tile * nr
                    kernel6x16(panel, xt + tile * n * nr, n: n, out: out + first * outStride + r, outStride: outStride,
                               tokens: min(nr, t1 - first))
                }
                r += mr
            }
            t0 = t1
        }
        if rows6 < rows.upperBound {
            panels(L.self, w, stride: stride, rows: rows6..<rows.upperBound, x: x, tokens: tokens, n: n, out: out, outStride: outStride)
        }
    }

    /// Prefill on AVX-512 (`CKernels`): panels of 12 rows against blocks of 16-token tiles that
    /// stay in L2, 12 rows × 32 tokens a step in 24 of the 32 vector registers. f32 weights are
    /// read in place, bf16 ones too when `pairs` (AVX512-BF16: activations packed as bf16 pairs,
    /// `vdpbf16ps`; AMX: the same pairs as tiles, `tdpbf16ps`), else half-precision panels are
    /// widened once per block into an f32 scratch.
    /// A last panel of fewer than 12 rows is copied into a zero-padded scratch and computed the
    /// same way, so every row of a product sees the same arithmetic.
    @inline(never)
    static func widePanels<L: WeightLoad>(_: L.Type, _ w: UnsafeRawPointer, stride: Int, rows: Range<Int>,
                                          x: UnsafePointer<Float>, xt allTiles: UnsafeRawPointer, pairs: Bool, kernels: CPUKernelSet,
                                          tokens: Int, n: Int, out: UnsafeMutablePointer<Float>, outStride: Int) {
        let nr = 16
        let amx = pairs && kernels >= .amx && n % 32 == 0  // a tile multiply takes 32 k at a time
        // AMX takes two panels of 12 at once (a short last one alone); ranges start at multiples of 12.
        let mr = Int(WFS_PANEL_ROWS) * (amx ? 2 : 1)
        let tileBytes = pairs ? n / 2 * nr * 4 : n * nr * 4
        let blockTiles = max(2, (512 * 1024) / tileBytes / 2 * 2)
        // f32 rows for the kernel (widened, or a short panel padded), or bf16 rows (a short panel padded).
        let elementBytes = pairs ? 2 : 4
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: mr * n * elementBytes, alignment: 64)
        defer { scratch.deallocate() }
        var t0 = 0
        while t0 < tokens && !rows.isEmpty {
            let tiles = min(blockTiles, (tokens - t0 + nr - 1) / nr)
            let t1 = min(tokens, t0 + tiles * nr)
            let block = allTiles + (t0 / nr) * tileBytes
            var r = rows.lowerBound
            while r < rows.upperBound {
                let count = min(mr, rows.upperBound - r)
                let panel: UnsafeRawPointer, panelStride: Int
                // In place when the kernel reads exactly `count` rows (AMX reads 12 or 24).
                // (Copying whole AMX panels into the scratch first measured 10-40 % slower.)
                let whole = count == mr || (amx && count == mr / 2)
                if whole && (pairs || L.self == F32Load.self) {
                    panel = w + r * stride
                    panelStride = stride / elementBytes
                } else {
                    if pairs {
                        for j in 0..<count { scratch.advanced(by: j * n * 2).copyMemory(from: w + (r + j) * stride, byteCount: n * 2) }
                    } else {
                        widen(L.self, w + r * stride, stride: stride, rows: count, n: n, into: scratch.assumingMemoryBound(to: Float.self))
                    }
                    let padded = amx && count <= mr / 2 ? mr / 2 : mr
                    if count < padded { (scratch + count * n * elementBytes).initializeMemory(as: UInt8.self, repeating: 0, count: (padded - count) * n * elementBytes) }
                    panel = UnsafeRawPointer(scratch)
                    panelStride = n
                }
                let nextRows = min(mr, rows.upperBound - r - count)
                let next: UnsafeRawPointer? = nextRows > 0 ? w + (r + count) * stride : nil
                let o = out + t0 * outStride + r
                if amx {
                    wfs_amx_bf16_panel(panel.assumingMemoryBound(to: UInt16.self), panelStride, count, n,
                                       block.assumingMemoryBound(to: UInt32.self), tiles, o, outStride, t1 - t0, next, nextRows * stride)
                } else if pairs {
                    wfs_avx512bf16_panel(panel.assumingMemoryBound(to: UInt16.self), panelStride, count, n,
                                         block.assumingMemoryBound(to: UInt32.self), tiles, o, outStride, t1 - t0, next, nextRows * stride)
                } else {
                    wfs_avx512_f32_panel(panel.assumingMemoryBound(to: Float.self), panelStride, count, n,
                                         block.assumingMemoryBound(to: Float.self), tiles, o, outStride, t1 - t0, next, nextRows * stride)
                }
                r += count
            }
            t0 = t1
        }
    }

    /// `x` (tokens × n) as tiles of 16 tokens, each k-major: `xt[tile * n * 16 + k * 16 + lane]` is
    /// `x[tile * 16 + lane, k]`, zero past the last token.
    /// Tiles go to the workers (a serial transpose here was ~2 % of a prefill, all of it while
    /// the other threads waited).
    static func transposeTiles(_ x: UnsafePointer<Float>, tokens: Int, n: Int, into xt: UnsafeMutablePointer<Float>, threads: Int) {
        let nr = 16
        let xp = SendablePointer(x), xtp = SendableMutablePointer(xt)
        Parallel.forRanges((tokens + nr - 1) / nr, threads: threads, costPerItem: n * nr) { tiles in
            for tile in tiles { transposeTile(xp.p, tile: tile, tokens: tokens, n: n, into: xtp.p) }
        }
    }

    /// Eight k at a time: each token's eight values load as one vector and land in the 512 bytes
    /// (8 k × 16 lanes) that the block's sixteen tokens fill, which stay in L1. (Lane by lane over
    /// the whole row, every store went to another cache line of a tile larger than L1.)
    @inline(__always)
    private static func transposeTile(_ x: UnsafePointer<Float>, tile: Int, tokens: Int, n: Int, into xt: UnsafeMutablePointer<Float>) {
        let nr = 16
        let dst = xt + tile * n * nr
        let lanes = max(0, min(nr, tokens - tile * nr))  // tokens in this tile; the rest are zero
        let src = x + tile * nr * n
        var k = 0
        while k + 8 <= n {
            let d = dst + k &* nr
            for lane in 0..<lanes {
                let v = loadX8(src + lane &* n, k)
                d[lane] = v[0]; d[16 &+ lane] = v[1]; d[32 &+ lane] = v[2]; d[48 &+ lane] = v[3]
                d[64 &+ lane] = v[4]; d[80 &+ lane] = v[5]; d[96 &+ lane] = v[6]; d[112 &+ lane] = v[7]
            }
            for lane in lanes..<nr {
                for j in 0..<8 { d[j &* nr &+ lane] = 0 }
            }
            k += 8
        }
        while k < n {
            for lane in 0..<nr { dst[k &* nr &+ lane] = lane < lanes ? src[lane &* n &+ k] : 0 }
            k += 1
        }
    }

    /// `out[t * outStride + j] = Σ_k w[j * n + k] · xt[k * 16 + t]` for rows j < 6, tokens t < `tokens` (≤ 16).
    @inline(__always)
    static func kernel6x16(_ w: UnsafePointer<Float>, _ xt: UnsafePointer<Float>, n: Int,
                           out: UnsafeMutablePointer<Float>, outStride: Int, tokens: Int) {
        let w0 = w, w1 = w + n, w2 = w1 + n, w3 = w2 + n, w4 = w3 + n, w5 = w4 + n
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
        var c40 = SIMD8<Float>(), c41 = SIMD8<Float>(), c50 = SIMD8<Float>(), c51 = SIMD8<Float>()
        for k in 0..<n {
            let xa = loadX8(xt, k &* 16), xb = loadX8(xt, k &* 16 &+ 8)
            let b0 = SIMD8<Float>(repeating: w0[k]); c00.addProduct(b0, xa); c01.addProduct(b0, xb)
            let b1 = SIMD8<Float>(repeating: w1[k]); c10.addProduct(b1, xa); c11.addProduct(b1, xb)
            let b2 = SIMD8<Float>(repeating: w2[k]); c20.addProduct(b2, xa); c21.addProduct(b2, xb)
            let b3 = SIMD8<Float>(repeating: w3[k]); c30.addProduct(b3, xa); c31.addProduct(b3, xb)
            let b4 = SIMD8<Float>(repeating: w4[k]); c40.addProduct(b4, xa); c41.addProduct(b4, xb)
            let b5 = SIMD8<Float>(repeating: w5[k]); c50.addProduct(b5, xa); c51.addProduct(b5, xb)
        }
        @inline(__always) func put(_ j: Int, _ lo: SIMD8<Float>, _ hi: SIMD8<Float>) {
            for t in 0..<min(8, tokens) { out[t * outStride + j] = lo[t] }
            if tokens > 8 { for t in 8..<tokens { out[t * outStride + j] = hi[t - 8] } }
        }
        put(0, c00, c01); put(1, c10, c11); put(2, c20, c21); put(3, c30, c31); put(4, c40, c41); put(5, c50, c51)
    }

    /// Prefill: the rows go by in panels of 4 (half-precision panels widened once into an f32
    /// scratch that stays in L1), and each panel meets every token of a block (sized to stay in
    /// L2) in tiles of 4 rows × 2 tokens: eight accumulators, so each weight load feeds two
    /// fused multiply-adds and each activation load four.
    @inline(never)  // compiled on its own: inlined into the dispatcher, LLVM mangles its vector code
    static func panels<L: WeightLoad>(_: L.Type, _ w: UnsafeRawPointer, stride: Int, rows: Range<Int>,
                                      x: UnsafePointer<Float>, tokens: Int, n: Int,
                                      out: UnsafeMutablePointer<Float>, outStride: Int) {
        let inPlace = L.self == F32Load.self
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: inPlace ? 0 : 4 * n)
        defer { scratch.deallocate() }
        let block = max(2, min(tokens, (192 * 1024) / max(1, n * 4) / 2 * 2))
        var t0 = 0
        while t0 < tokens {
            let t1 = min(tokens, t0 + block)
            var r = rows.lowerBound
            while r < rows.upperBound {
                let count = min(4, rows.upperBound - r)
                let panel: UnsafePointer<Float>
                if inPlace {
                    panel = (w + r * stride).assumingMemoryBound(to: Float.self)
                } else {
                    widen(L.self, w + r * stride, stride: stride, rows: count, n: n, into: scratch)
                    panel = UnsafePointer(scratch)
                }
                if count == 4 {
                    var t = t0
                    while t + 2 <= t1 {
                        tile4x2(panel, x + t * n, n: n, out: out + t * outStride + r, outStride: outStride)
                        t += 2
                    }
                    while t < t1 {
                        tile4x1(panel, x + t * n, n: n, out: out + t * outStride + r)
                        t += 1
                    }
                } else {
                    for j in 0..<count {
                        for t in t0..<t1 { out[t * outStride + r + j] = dot(F32Load.self, UnsafeRawPointer(panel + j * n), x + t * n, n) }
                    }
                }
                r += 4
            }
            t0 = t1
        }
    }

    /// `rows` rows of `n` weights at `w` (byte stride `stride`) as f32, one after another.
    @inline(__always)
    static func widen<L: WeightLoad>(_: L.Type, _ w: UnsafeRawPointer, stride: Int, rows: Int, n: Int,
                                     into out: UnsafeMutablePointer<Float>) {
        let n8 = n & ~7
        for j in 0..<rows {
            let src = w + j * stride, dst = UnsafeMutableRawPointer(out + j * n)
            var i = 0
            while i < n8 { dst.storeBytes(of: L.load8(src, i), toByteOffset: i &* 4, as: SIMD8<Float>.self); i += 8 }
            while i < n { out[j * n + i] = L.load1(src, i); i += 1 }
        }
    }

    /// `out[t * outStride + j] = w[j] · x[t]` for rows j < 4 (stride n) and tokens t < 2: eight
    /// accumulators. (A 4×3 tile's twelve left LLVM's unrolled loop spilling them to the stack.)
    @inline(__always)
    static func tile4x2(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, n: Int,
                        out: UnsafeMutablePointer<Float>, outStride: Int) {
        let w0 = w, w1 = w + n, w2 = w1 + n, w3 = w2 + n
        let x0 = x, x1 = x + n
        var a00 = SIMD8<Float>(), a01 = SIMD8<Float>()
        var a10 = SIMD8<Float>(), a11 = SIMD8<Float>()
        var a20 = SIMD8<Float>(), a21 = SIMD8<Float>()
        var a30 = SIMD8<Float>(), a31 = SIMD8<Float>()
        let n8 = n & ~7
        var i = 0
        while i < n8 {
            let y0 = loadX8(x0, i), y1 = loadX8(x1, i)
            let v0 = loadX8(w0, i), v1 = loadX8(w1, i)
            a00.addProduct(v0, y0); a01.addProduct(v0, y1)
            a10.addProduct(v1, y0); a11.addProduct(v1, y1)
            let v2 = loadX8(w2, i), v3 = loadX8(w3, i)
            a20.addProduct(v2, y0); a21.addProduct(v2, y1)
            a30.addProduct(v3, y0); a31.addProduct(v3, y1)
            i += 8
        }
        // The tail (n not a multiple of 8) element by element.
        @inline(__always) func tail(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>) -> Float {
            var s: Float = 0
            for k in i..<n { s += w[k] * x[k] }
            return s
        }
        let o0 = out, o1 = out + outStride
        o0[0] = a00.sum() + tail(w0, x0); o1[0] = a01.sum() + tail(w0, x1)
        o0[1] = a10.sum() + tail(w1, x0); o1[1] = a11.sum() + tail(w1, x1)
        o0[2] = a20.sum() + tail(w2, x0); o1[2] = a21.sum() + tail(w2, x1)
        o0[3] = a30.sum() + tail(w3, x0); o1[3] = a31.sum() + tail(w3, x1)
    }

    /// One token against a panel of 4 rows (the tokens a block's 3-token tiles leave over).
    @inline(__always)
    static func tile4x1(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, n: Int, out: UnsafeMutablePointer<Float>) {
        for j in 0..<4 { out[j] = dot(F32Load.self, UnsafeRawPointer(w + j * n), x, n) }
    }

    @inline(__always)
    static func dot<L: WeightLoad>(_: L.Type, _ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a = SIMD8<Float>(), b = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            a.addProduct(L.load8(w, i), loadX8(x, i))
            b.addProduct(L.load8(w, i + 8), loadX8(x, i + 8))
            i += 16
        }
        if i + 8 <= n { a.addProduct(L.load8(w, i), loadX8(x, i)); i += 8 }
        var s = (a + b).sum()
        while i < n { s += L.load1(w, i) * x[i]; i += 1 }
        return s
    }
}
