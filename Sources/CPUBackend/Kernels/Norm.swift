import ModelCore
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
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let g = loadX8(gate, i), u = loadX8(up, i)
                let silu = g / (1 + exp8(-g))
                UnsafeMutableRawPointer(gate).storeBytes(of: silu * u, toByteOffset: i &* 4, as: SIMD8<Float>.self)
                i += 8
            }
            while i < range.upperBound {
                let g = gate[i]
                gate[i] = g / (1 + expf(-g)) * up[i]
                i += 1
            }
        }
    }

    /// e^x for eight floats, within ~2 ulp of `expf` over [-87, 88] (inputs outside are clamped):
    /// x = k·ln2 + r with |r| ≤ ln2/2 (ln2 split in two for an exact reduction), e^r by a degree-6
    /// polynomial (Cephes' expf coefficients), 2^k built in the exponent bits.
    @inline(__always)
    static func exp8(_ v: SIMD8<Float>) -> SIMD8<Float> {
        // (Not `clamped(lowerBound:upperBound:)`: it compiles to a call per vector here.)
        var x = v.replacing(with: SIMD8(repeating: 88.3), where: v .> 88.3)
        x.replace(with: SIMD8(repeating: -87.3), where: x .< -87.3)
        // Round x·log2(e) to an integer with the 1.5·2^23 trick: the integer lands in the low
        // mantissa bits (a float-to-int conversion of a SIMD vector would be checked lane by lane).
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let shifted = x * 1.442_695_04 + magic
        let k = shifted - magic
        var r = x - k * 0.693_359_375
        r = r + k * 2.121_944_4e-4
        var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_6e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_1e-1
        let r2 = r * r
        let er = p * r2 + r + 1
        // 2^k: k + 127 in the exponent field (k ∈ [-126, 128) after the clamp; 2^128 overflows
        // to inf as expf does).
        let bits = (unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self) &+ 127) &<< 23
        return er * unsafeBitCast(bits, to: SIMD8<Float>.self)
    }

    /// Softmax over `count` values in place (max-subtracted, so large logits do not overflow),
    /// eight at a time with `exp8`.
    static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        let raw = UnsafeMutableRawPointer(x)
        let n8 = count & ~7
        var mv = SIMD8<Float>(repeating: -.infinity)
        var i = 0
        while i < n8 { mv = mv.replacing(with: loadX8(x, i), where: loadX8(x, i) .> mv); i &+= 8 }
        var m = mv.max()
        while i < count { m = max(m, x[i]); i &+= 1 }
        let mb = SIMD8<Float>(repeating: m)
        var sv = SIMD8<Float>()
        i = 0
        while i < n8 {
            let e = exp8(loadX8(x, i) - mb)
            raw.storeBytes(of: e, toByteOffset: i &* 4, as: SIMD8<Float>.self)
            sv += e
            i &+= 8
        }
        var sum = sv.sum()
        while i < count { let e = expf(x[i] - m); x[i] = e; sum += e; i &+= 1 }
        let inv = 1 / sum
        for i in 0..<count { x[i] *= inv }
    }
}
