import Foundation

enum RMSNorm {
    /// `out[t] = x[t] / sqrt(mean(x[t]²) + eps) ⊙ weight` for `tokens` rows of length n.
    /// (out may be x.)
    static func run(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float, n: Int, tokens: Int,
                    out: UnsafeMutablePointer<Float>) {
        for t in 0..<tokens {
            let xt = x + t * n, ot = out + t * n
            var acc = SIMD8<Float>()
            var i = 0
            while i + 8 <= n { let v = loadX8(xt, i); acc.addProduct(v, v); i += 8 }
            var ss = acc.sum()
            while i < n { ss += xt[i] * xt[i]; i += 1 }
            let scale = 1 / (ss / Float(n) + eps).squareRoot()
            for j in 0..<n { ot[j] = weight[j] * (xt[j] * scale) }
        }
    }
}

enum Activation {
    /// SwiGLU's gate: `gate[i] = silu(gate[i]) · up[i]`, silu(x) = x / (1 + e^-x).
    /// Split over `threads` for prefills (an `expf` per element is a visible share of one); a
    /// decode step's few thousand stay on the calling thread.
    static func siluMultiply(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int, threads: Int = 1) {
        let gp = SendableMutablePointer(gate), upp = SendablePointer(up)
        Parallel.forRanges(count, threads: threads, granularity: 64, costPerItem: 4) { range in
            let gate = gp.p, up = upp.p
            for i in range {
                let g = gate[i]
                gate[i] = g / (1 + expf(-g)) * up[i]
            }
        }
    }

    /// Softmax over `count` values in place (max-subtracted, so large logits do not overflow).
    static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var m = -Float.infinity
        for i in 0..<count { m = max(m, x[i]) }
        var sum: Float = 0
        for i in 0..<count { let e = expf(x[i] - m); x[i] = e; sum += e }
        let inv = 1 / sum
        for i in 0..<count { x[i] *= inv }
    }
}
