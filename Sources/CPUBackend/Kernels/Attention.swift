import ModelCore
import Foundation

/// Causal grouped-query attention of new tokens over their sequences' cached keys and values,
/// read through each sequence's block table.
enum Attention {
    /// For each token t (at `positions[t]`, of sequence `rowSequence[t]`) and query head h:
    /// `out[t, h] = Σ_j softmax_j(q[t, h] · k[j, g] / √d) v[j, g]` over cached positions
    /// j ≤ positions[t] (and within `window` of it), where g = h / (heads / kvHeads) is the
    /// head's key/value group and position j lives in block `tables[seq][j / blockSize]`. The
    /// memory must already hold the new tokens' keys and values.
    static func run(q: UnsafePointer<Float>, positions: [Int], rowSequence: [Int], tables: [[Int]], heads: Int,
                    kv: KVMemory, layer: Int, window: Int?, out: UnsafeMutablePointer<Float>, threads: Int) {
        let d = kv.headDim, group = heads / kv.kvHeadCount, bs = kv.blockSize
        let scale = 1 / Float(d).squareRoot()
        let tokens = positions.count
        let qp = SendablePointer(q), op = SendableMutablePointer(out)
        let kp = SendablePointer(kv.keys), vp = SendablePointer(kv.values)
        let longest = (positions.max() ?? 0) + 1
        Parallel.forRanges(tokens * heads, threads: threads, costPerItem: longest * d * 2) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: longest)
            defer { scores.deallocate() }
            for item in range {
                // Tokens taken from both ends in turn (0, n-1, 1, n-2, …): a causal token's cost
                // grows with its position, so contiguous ranges of items then cost about the same.
                let k = item / heads, h = item % heads, g = h / group
                let t = k % 2 == 0 ? k / 2 : tokens - 1 - k / 2
                let pos = positions[t]
                let first = window.map { max(0, pos - $0 + 1) } ?? 0
                let table = tables[rowSequence[t]]
                let qv = qp.p + (t * heads + h) * d
                let span = pos - first + 1
                let o = op.p + (t * heads + h) * d
                // Positions first...pos as runs that are contiguous within one block.
                func runs(_ body: (_ offset: Int, _ start: Int, _ count: Int) -> Void) {
                    var j = first
                    while j <= pos {
                        let slot = j % bs, count = min(bs - slot, pos - j + 1)
                        body(j - first, kv.offset(layer: layer, block: table[j / bs], head: g) + slot * d, count)
                        j += count
                    }
                }
                runs { offset, start, count in
                    if d % 64 == 0 {
                        scores64(qv, kp.p + start, span: count, d: d, scale: scale, into: scores + offset)
                    } else {
                        for j in 0..<count { scores[offset + j] = dot(qv, kp.p + start + j * d, d) * scale }
                    }
                }
                Activation.softmax(scores, count: span)
                if d % 64 != 0 { o.initialize(repeating: 0, count: d) }
                runs { offset, start, count in
                    if d % 64 == 0 {
                        weightedSum64(scores + offset, vp.p + start, span: count, d: d, into: o, accumulate: offset > 0)
                    } else {
                        for j in 0..<count { axpy(scores[offset + j], vp.p + start + j * d, o, d) }
                    }
                }
            }
        }
    }

    /// `scores[j] = scale · q · k[j]` for `span` keys of length d (a multiple of 64), four keys at
    /// a time with two accumulators each: eight independent chains of fused multiply-adds where
    /// a key at a time was one chain waiting on its own latency.
    @inline(never)  // compiled on its own: inlined into the caller, LLVM mangles its vector code
    static func scores64(_ q: UnsafePointer<Float>, _ keys: UnsafePointer<Float>, span: Int, d: Int, scale: Float,
                         into scores: UnsafeMutablePointer<Float>) {
        var j = 0
        while j + 4 <= span {
            let k0 = keys + j &* d, k1 = k0 + d, k2 = k1 + d, k3 = k2 + d
            var a0 = SIMD8<Float>(), b0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b1 = SIMD8<Float>()
            var a2 = SIMD8<Float>(), b2 = SIMD8<Float>(), a3 = SIMD8<Float>(), b3 = SIMD8<Float>()
            var c = 0
            while c < d {
                let qa = loadX8(q, c), qb = loadX8(q, c &+ 8)
                a0.addProduct(qa, loadX8(k0, c)); b0.addProduct(qb, loadX8(k0, c &+ 8))
                a1.addProduct(qa, loadX8(k1, c)); b1.addProduct(qb, loadX8(k1, c &+ 8))
                a2.addProduct(qa, loadX8(k2, c)); b2.addProduct(qb, loadX8(k2, c &+ 8))
                a3.addProduct(qa, loadX8(k3, c)); b3.addProduct(qb, loadX8(k3, c &+ 8))
                c &+= 16
            }
            scores[j] = (a0 + b0).sum() * scale
            scores[j &+ 1] = (a1 + b1).sum() * scale
            scores[j &+ 2] = (a2 + b2).sum() * scale
            scores[j &+ 3] = (a3 + b3).sum() * scale
            j &+= 4
        }
        while j < span { scores[j] = dot(q, keys + j &* d, d) * scale; j &+= 1 }
    }

    /// `out = Σ_j p[j] · v[j]` (or `out +=` it, with `accumulate`) for `span` value rows of
    /// length d (a multiple of 64): 64 outputs at a time held in eight registers over all the
    /// rows, where an axpy per row loaded and stored them every time.
    @inline(never)  // compiled on its own: inlined into the caller, LLVM mangles its vector code
    static func weightedSum64(_ p: UnsafePointer<Float>, _ values: UnsafePointer<Float>, span: Int, d: Int,
                              into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let o = UnsafeMutableRawPointer(out)
        var c = 0
        while c < d {
            var o0 = SIMD8<Float>(), o1 = SIMD8<Float>(), o2 = SIMD8<Float>(), o3 = SIMD8<Float>()
            var o4 = SIMD8<Float>(), o5 = SIMD8<Float>(), o6 = SIMD8<Float>(), o7 = SIMD8<Float>()
            if accumulate {
                let prior = UnsafePointer(out + c)
                o0 = loadX8(prior, 0); o1 = loadX8(prior, 8); o2 = loadX8(prior, 16); o3 = loadX8(prior, 24)
                o4 = loadX8(prior, 32); o5 = loadX8(prior, 40); o6 = loadX8(prior, 48); o7 = loadX8(prior, 56)
            }
            var v = values + c
            for j in 0..<span {
                let pj = SIMD8<Float>(repeating: p[j])
                o0.addProduct(pj, loadX8(v, 0)); o1.addProduct(pj, loadX8(v, 8))
                o2.addProduct(pj, loadX8(v, 16)); o3.addProduct(pj, loadX8(v, 24))
                o4.addProduct(pj, loadX8(v, 32)); o5.addProduct(pj, loadX8(v, 40))
                o6.addProduct(pj, loadX8(v, 48)); o7.addProduct(pj, loadX8(v, 56))
                v += d
            }
            let base = c &* 4
            o.storeBytes(of: o0, toByteOffset: base, as: SIMD8<Float>.self)
            o.storeBytes(of: o1, toByteOffset: base &+ 32, as: SIMD8<Float>.self)
            o.storeBytes(of: o2, toByteOffset: base &+ 64, as: SIMD8<Float>.self)
            o.storeBytes(of: o3, toByteOffset: base &+ 96, as: SIMD8<Float>.self)
            o.storeBytes(of: o4, toByteOffset: base &+ 128, as: SIMD8<Float>.self)
            o.storeBytes(of: o5, toByteOffset: base &+ 160, as: SIMD8<Float>.self)
            o.storeBytes(of: o6, toByteOffset: base &+ 192, as: SIMD8<Float>.self)
            o.storeBytes(of: o7, toByteOffset: base &+ 224, as: SIMD8<Float>.self)
            c &+= 64
        }
    }

    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= n { acc.addProduct(loadX8(a, i), loadX8(b, i)); i += 8 }
        var s = acc.sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// y += a · x
    @inline(__always)
    static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        let av = SIMD8<Float>(repeating: a)
        while i + 8 <= n {
            var v = loadX8(UnsafePointer(y), i)
            v.addProduct(av, loadX8(x, i))
            UnsafeMutableRawPointer(y).storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { y[i] += a * x[i]; i += 1 }
    }
}
