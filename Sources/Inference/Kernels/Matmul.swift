/// `out[t, r] = Σ_i W[r, i] · x[t, i] (+ bias[r])` for a weight W of shape [rows, n] in place
/// (f32, f16 or bf16) and `tokens` activation rows x of length n (row-major, f32).
///
/// Output rows are split over threads. One token (decode) runs 4 weight rows at a time against
/// the same x, so each x load feeds four dot products; several tokens (prefill) run 2 rows × 4
/// tokens, so each weight element is widened once and used four times: a matmul, not a loop
/// of matvecs. Accumulation is f32 with fused multiply-adds.
enum Matmul {
    static func run(_ w: WeightTensor, _ x: UnsafePointer<Float>, tokens: Int, out: UnsafeMutablePointer<Float>,
                    bias: UnsafePointer<Float>? = nil, threads: Int) {
        precondition(w.shape.count == 2)
        switch w.dtype {
        case .f32: run(F32Load.self, w, x, tokens: tokens, out: out, bias: bias, threads: threads)
        case .bf16: run(BF16Load.self, w, x, tokens: tokens, out: out, bias: bias, threads: threads)
        case .f16: run(F16Load.self, w, x, tokens: tokens, out: out, bias: bias, threads: threads)
        }
    }

    @inline(__always)
    static func run<L: WeightLoad>(_: L.Type, _ w: WeightTensor, _ x: UnsafePointer<Float>, tokens: Int,
                                   out: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?, threads: Int) {
        let rows = w.shape[0], n = w.shape[1]
        let stride = n * w.dtype.byteSize
        let wBase = SendablePointer(w.base.assumingMemoryBound(to: UInt8.self))
        let xp = SendablePointer(x), op = SendableMutablePointer(out)
        let bp = bias.map { SendablePointer($0) }
        Parallel.forRanges(rows, threads: threads, granularity: 4, costPerItem: n * tokens) { range in
            let wb = UnsafeRawPointer(wBase.p), x = xp.p, out = op.p
            if tokens == 1 {
                rowsTimesOneToken(L.self, wb, stride: stride, rows: range, x: x, n: n, out: out)
            } else {
                // Tokens in blocks whose activations stay in L2 while the weight rows stream by.
                let block = max(4, min(tokens, (96 * 1024) / max(1, n * 4) / 4 * 4))
                var t0 = 0
                while t0 < tokens {
                    let tn = min(block, tokens - t0)
                    tokensBlock(L.self, wb, stride: stride, rows: range, x: x + t0 * n, tokens: tn, n: n,
                                out: out + t0 * rows, outStride: rows)
                    t0 += tn
                }
            }
            if let b = bp?.p {
                for t in 0..<tokens { for r in range { out[t * rows + r] += b[r] } }
            }
        }
    }

    /// Decode: 4 rows × 1 token per step, two accumulators per row to hide FMA latency.
    @inline(__always)
    static func rowsTimesOneToken<L: WeightLoad>(_: L.Type, _ w: UnsafeRawPointer, stride: Int, rows: Range<Int>,
                                                 x: UnsafePointer<Float>, n: Int, out: UnsafeMutablePointer<Float>) {
        let n16 = n & ~15, n8 = n & ~7
        var r = rows.lowerBound
        while r + 4 <= rows.upperBound {
            let w0 = w + r * stride, w1 = w0 + stride, w2 = w1 + stride, w3 = w2 + stride
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
            var i = 0
            while i < n16 {
                let xa = loadX8(x, i), xb = loadX8(x, i + 8)
                a0.addProduct(L.load8(w0, i), xa); b0.addProduct(L.load8(w0, i + 8), xb)
                a1.addProduct(L.load8(w1, i), xa); b1.addProduct(L.load8(w1, i + 8), xb)
                a2.addProduct(L.load8(w2, i), xa); b2.addProduct(L.load8(w2, i + 8), xb)
                a3.addProduct(L.load8(w3, i), xa); b3.addProduct(L.load8(w3, i + 8), xb)
                i += 16
            }
            if i < n8 {
                let xa = loadX8(x, i)
                a0.addProduct(L.load8(w0, i), xa); a1.addProduct(L.load8(w1, i), xa)
                a2.addProduct(L.load8(w2, i), xa); a3.addProduct(L.load8(w3, i), xa)
                i += 8
            }
            var s0 = (a0 + b0).sum(), s1 = (a1 + b1).sum(), s2 = (a2 + b2).sum(), s3 = (a3 + b3).sum()
            while i < n {
                let xi = x[i]
                s0 += L.load1(w0, i) * xi; s1 += L.load1(w1, i) * xi
                s2 += L.load1(w2, i) * xi; s3 += L.load1(w3, i) * xi
                i += 1
            }
            out[r] = s0; out[r + 1] = s1; out[r + 2] = s2; out[r + 3] = s3
            r += 4
        }
        while r < rows.upperBound {
            out[r] = dot(L.self, w + r * stride, x, n)
            r += 1
        }
    }

    /// Prefill: 2 rows × 4 tokens per step (8 accumulators); leftovers fall back to `dot`.
    @inline(__always)
    static func tokensBlock<L: WeightLoad>(_: L.Type, _ w: UnsafeRawPointer, stride: Int, rows: Range<Int>,
                                           x: UnsafePointer<Float>, tokens: Int, n: Int,
                                           out: UnsafeMutablePointer<Float>, outStride: Int) {
        let n8 = n & ~7
        var r = rows.lowerBound
        while r + 2 <= rows.upperBound {
            let w0 = w + r * stride, w1 = w0 + stride
            var t = 0
            while t + 4 <= tokens {
                let x0 = x + t * n, x1 = x0 + n, x2 = x1 + n, x3 = x2 + n
                var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>()
                var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>()
                var i = 0
                while i < n8 {
                    let v0 = L.load8(w0, i), v1 = L.load8(w1, i)
                    let y0 = loadX8(x0, i), y1 = loadX8(x1, i), y2 = loadX8(x2, i), y3 = loadX8(x3, i)
                    a00.addProduct(v0, y0); a01.addProduct(v0, y1); a02.addProduct(v0, y2); a03.addProduct(v0, y3)
                    a10.addProduct(v1, y0); a11.addProduct(v1, y1); a12.addProduct(v1, y2); a13.addProduct(v1, y3)
                    i += 8
                }
                var s00 = a00.sum(), s01 = a01.sum(), s02 = a02.sum(), s03 = a03.sum()
                var s10 = a10.sum(), s11 = a11.sum(), s12 = a12.sum(), s13 = a13.sum()
                while i < n {
                    let v0 = L.load1(w0, i), v1 = L.load1(w1, i)
                    s00 += v0 * x0[i]; s01 += v0 * x1[i]; s02 += v0 * x2[i]; s03 += v0 * x3[i]
                    s10 += v1 * x0[i]; s11 += v1 * x1[i]; s12 += v1 * x2[i]; s13 += v1 * x3[i]
                    i += 1
                }
                let o = out + t * outStride + r
                o[0] = s00; o[outStride] = s01; o[2 * outStride] = s02; o[3 * outStride] = s03
                o[1] = s10; o[outStride + 1] = s11; o[2 * outStride + 1] = s12; o[3 * outStride + 1] = s13
                t += 4
            }
            while t < tokens {
                out[t * outStride + r] = dot(L.self, w0, x + t * n, n)
                out[t * outStride + r + 1] = dot(L.self, w1, x + t * n, n)
                t += 1
            }
            r += 2
        }
        if r < rows.upperBound {
            for t in 0..<tokens { out[t * outStride + r] = dot(L.self, w + r * stride, x + t * n, n) }
        }
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
