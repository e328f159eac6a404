import ModelCore
import Foundation

/// Rotary position embeddings in Hugging Face's "rotate half" layout: dimension i of a head is
/// paired with dimension i + d/2 and the pair is rotated by position · invFreq[i].
struct RotaryEmbedding: Sendable {
    let headDim: Int
    /// The inverse frequencies, after any scaling (llama3).
    let inverseFrequencies: [Float]

    init(headDim: Int, rope: ModelConfig.RoPE) {
        self.headDim = headDim
        let half = headDim / 2
        // As transformers computes them: 1 / theta^(2i/d) in f32.
        var inv = (0..<half).map { i in Float(1 / pow(rope.theta, Double(2 * i) / Double(headDim))) }
        if case .llama3(let factor, let low, let high, let original)? = rope.scaling {
            inv = Self.llama3(inv, factor: factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: original)
        }
        inverseFrequencies = inv
    }

    /// Llama 3.1 scaling: long wavelengths (beyond original/low) are slowed by `factor`, short
    /// ones (below original/high) are kept, and the band between is interpolated smoothly.
    static func llama3(_ inv: [Float], factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int) -> [Float] {
        let old = Double(originalMaxPositions)
        let lowWavelen = old / lowFreqFactor, highWavelen = old / highFreqFactor
        return inv.map { f in
            let freq = Double(f)
            let wavelen = 2 * Double.pi / freq
            if wavelen < highWavelen { return f }
            if wavelen > lowWavelen { return Float(freq / factor) }
            let smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor)
            return Float((1 - smooth) * freq / factor + smooth * freq)
        }
    }

    /// The cos and sin of each pair's angle at `position` (`half` values each).
    func angles(position: Int, cos c: UnsafeMutablePointer<Float>, sin s: UnsafeMutablePointer<Float>) {
        for i in 0..<inverseFrequencies.count {
            let a = Float(position) * inverseFrequencies[i]  // f32 product, as transformers does
            c[i] = Float(Foundation.cos(Double(a)))
            s[i] = Float(Foundation.sin(Double(a)))
        }
    }

    /// Rotates `heads` consecutive heads of one token in place.
    func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, cos c: UnsafePointer<Float>, sin s: UnsafePointer<Float>) {
        let half = headDim / 2
        for h in 0..<heads {
            let v = x + h * headDim
            for i in 0..<half {
                let a = v[i], b = v[i + half]
                v[i] = a * c[i] - b * s[i]
                v[i + half] = b * c[i] + a * s[i]
            }
        }
    }
}
