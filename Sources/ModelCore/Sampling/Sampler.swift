import Foundation

/// How to pick the next token from logits, as the OpenAI and transformers APIs spell it.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 (or less) means greedy: always the most likely token.
    public var temperature: Float
    /// Keep only the k most likely tokens; 0 keeps all.
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all.
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    public static let greedy = SamplingParameters()
}

/// Picks tokens from logits: greedy, or temperature → top-k → top-p → a draw from a seeded
/// generator. Guarantees: greedy returns the lowest id among equal maxima; the same seed and
/// the same logits give the same tokens.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var generator: SeededGenerator

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        generator = SeededGenerator(seed: parameters.seed)
    }

    public mutating func sample(_ logits: [Float]) -> Int {
        logits.withUnsafeBufferPointer { sample($0) }
    }

    public mutating func sample(_ logits: UnsafeBufferPointer<Float>) -> Int {
        precondition(!logits.isEmpty)
        if parameters.temperature <= 0 || parameters.topK == 1 { return Self.argmax(logits) }

        // Candidates, most likely first (ties by id, so the order is deterministic).
        var ids = Array(0..<logits.count)
        let byLogit: (Int, Int) -> Bool = { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if parameters.topK > 0 && parameters.topK < ids.count {
            ids = Array(ids.sorted(by: byLogit).prefix(parameters.topK))
        } else {
            ids.sort(by: byLogit)
        }
        // Softmax of logits / temperature over the candidates, in Double for the cumulative sum.
        let t = Double(parameters.temperature)
        let top = Double(logits[ids[0]]) / t
        var probs = ids.map { exp(Double(logits[$0]) / t - top) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }

        var keep = probs.count
        if parameters.topP < 1 {
            var cumulative = 0.0
            for (i, p) in probs.enumerated() {
                cumulative += p
                if cumulative >= Double(parameters.topP) { keep = i + 1; break }
            }
        }
        let mass = probs[0..<keep].reduce(0, +)
        let u = generator.nextUnit() * mass
        var cumulative = 0.0
        for i in 0..<keep {
            cumulative += probs[i]
            if u < cumulative { return ids[i] }
        }
        return ids[keep - 1]
    }

    /// The index of the largest logit, the lowest on ties. Two passes over a vocabulary's row
    /// (it stays in L2): the maximum 16 lanes at a time, then the first index holding it — a
    /// step of 16 sequences samples 16 rows of ~50k logits, and the scalar compare-and-branch
    /// loop cost ~1 ns a logit. A row with a NaN, where lane maxima and `>` disagree, takes the
    /// scalar loop (its answer as before).
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        let n = logits.count, base = logits.baseAddress!
        let wide = n / 16 * 16
        if wide >= 64, !base[0].isNaN {  // the scalar rule keeps a NaN at 0: leave that to it
            var lanes = UnsafeRawPointer(base).loadUnaligned(as: SIMD16<Float>.self)
            var i = 16
            while i < wide {
                lanes = pointwiseMax(lanes, UnsafeRawPointer(base + i).loadUnaligned(as: SIMD16<Float>.self))
                i += 16
            }
            var top = lanes.max()
            for j in wide..<n { top = max(top, base[j]) }
            if let first = logits.firstIndex(of: top) { return first }
        }
        var best = 0
        for i in 1..<n where logits[i] > logits[best] { best = i }
        return best
    }

    public static func argmax(_ logits: [Float]) -> Int {
        logits.withUnsafeBufferPointer { argmax($0) }
    }
}
