import Foundation

/// Causal grouped-query attention of new tokens over a sequence's cached keys and values.
enum Attention {
    /// For each token t (at `positions[t]`) and query head h:
    /// `out[t, h] = Σ_j softmax_j(q[t, h] · k[j, g] / √d) v[j, g]` over cached positions
    /// j ≤ positions[t] (and within `window` of it), where g = h / (heads / kvHeads) is the
    /// head's key/value group. The cache must already hold the new tokens' keys and values.
    static func run(q: UnsafePointer<Float>, positions: [Int], heads: Int, cache: KVCache, layer: Int,
                    window: Int?, out: UnsafeMutablePointer<Float>, threads: Int) {
        let d = cache.headDim, group = heads / cache.kvHeadCount
        let scale = 1 / Float(d).squareRoot()
        let tokens = positions.count
        let qp = SendablePointer(q), op = SendableMutablePointer(out)
        let kp = SendablePointer(cache.keys), vp = SendablePointer(cache.values)
        let offsets = (0..<cache.kvHeadCount).map { cache.offset(layer: layer, head: $0) }
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
                let qv = qp.p + (t * heads + h) * d
                let keys = kp.p + offsets[g], values = vp.p + offsets[g]
                let span = pos - first + 1
                for j in 0..<span { scores[j] = dot(qv, keys + (first + j) * d, d) * scale }
                Activation.softmax(scores, count: span)
                let o = op.p + (t * heads + h) * d
                o.initialize(repeating: 0, count: d)
                for j in 0..<span { axpy(scores[j], values + (first + j) * d, o, d) }
            }
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
