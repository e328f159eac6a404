import Foundation
import Testing

import TestSupport
import Tokenizers
import CKernels
@testable import CPUBackend
@testable import ModelCore

@Suite struct KernelTests {
    /// Random values that are exact in bf16 and f16, so all three dtypes describe the same matrix.
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var g = SeededGenerator(seed: seed)
        return (0..<count).map { _ in Float(Int(g.next() % 257) - 128) / 64 }
    }

    static func bytes(_ v: [Float], _ dtype: WeightDType) -> [UInt8] {
        switch dtype {
        case .f32: return v.withUnsafeBytes { Array($0) }
        case .bf16: return v.map { UInt16($0.bitPattern >> 16) }.withUnsafeBytes { Array($0) }
        case .f16: return v.map { Float16($0) }.withUnsafeBytes { Array($0) }
        }
    }

    /// On every kernel set this CPU runs (AVX-512's 12-row panels and 16-token tiles, one and
    /// two at a time, with rows past a multiple of 12; AVX512-BF16's pairs, for even n only).
    @Test(arguments: [WeightDType.f32, .bf16, .f16], [1, 2, 5, 9, 17, 32, 40])
    func matmulMatchesTheNaiveProduct(dtype: WeightDType, tokens: Int) {
        for kernels in CPUKernels.available {
            matmulMatchesTheNaiveProduct(dtype: dtype, tokens: tokens, kernels: kernels)
        }
    }

    func matmulMatchesTheNaiveProduct(dtype: WeightDType, tokens: Int, kernels: CPUKernelSet) {
        for (rows, n) in [(1, 1), (7, 13), (9, 64), (33, 100), (130, 257), (26, 96)] {
            let w = Self.values(rows * n, seed: 1), x = Self.values(tokens * n, seed: 2), bias = Self.values(rows, seed: 3)
            // Exact arithmetic on small integers over 64: any summation order gives the same float.
            var expected = [Float](repeating: 0, count: tokens * rows)
            for t in 0..<tokens { for r in 0..<rows {
                var s: Float = bias[r]
                for i in 0..<n { s += w[r * n + i] * x[t * n + i] }
                expected[t * rows + r] = s
            } }
            let raw = Self.bytes(w, dtype)
            for threads in [1, 2] {
                var out = [Float](repeating: .nan, count: tokens * rows)
                raw.withUnsafeBytes { wb in
                    let tensor = WeightTensor(name: "w", dtype: dtype, shape: [rows, n], base: wb.baseAddress!)
                    x.withUnsafeBufferPointer { xb in out.withUnsafeMutableBufferPointer { ob in
                        Matmul.run(tensor, xb.baseAddress!, tokens: tokens, out: ob.baseAddress!, bias: bias, threads: threads, kernels: kernels)
                    } }
                }
                #expect(out == expected, "\(kernels) \(dtype) rows \(rows) n \(n) tokens \(tokens) threads \(threads)")
            }
        }
    }

    /// Random (inexact) values against a double-precision reference within the worst-case
    /// rounding bound of any summation order, on every set this CPU runs (`weightfs-bench
    /// kernels --check` runs the same where CI cannot).
    @Test func everyKernelSetStaysWithinTheRoundingBound() {
        for kernels in CPUKernels.available {
            let cases = KernelCheck.run(kernels: kernels)
            #expect(cases.count == 432 + 6)  // and the batch-invariance cases
            let failed = cases.filter { !$0.passed }
            #expect(failed.isEmpty, "\(failed)")
        }
        // The bound catches a wrong product: one weight off by its own size is far outside it.
        #expect(!KernelCheck.Case(kernels: .avx2, dtype: .f32, rows: 1, n: 1, tokens: 1, threads: 1, worst: 1.5).passed)
    }

    /// The AVX-512 and AMX kernels' results pass through this transpose; it runs on AVX2, so
    /// it is checked here against its definition whatever the CPU.
    @Test func panelResultsLandTokenMajor() {
        let tmp = (0..<12 * 16).map { Float($0) }
        for rows in [12, 7, 1] {
            for tokens in [16, 9, 8, 3, 1] {
                let stride = 20
                var out = [Float](repeating: -1, count: 16 * stride)
                tmp.withUnsafeBufferPointer { t in out.withUnsafeMutableBufferPointer { o in
                    wfs_put_transposed12(t.baseAddress!, rows, o.baseAddress!, stride, tokens)
                } }
                var expected = [Float](repeating: -1, count: 16 * stride)
                for t in 0..<tokens { for j in 0..<rows { expected[t * stride + j] = tmp[j * 16 + t] } }
                #expect(out == expected, "rows \(rows) tokens \(tokens)")
            }
        }
    }

    /// A batched decode of 2–7 sequences (bf16 weights) streams each row once for all of them
    /// and gives every sequence bit for bit what it gets alone, on every kernel set here; rows
    /// with a tail past the last 64 and past the last 16 elements too.
    @Test(arguments: CPUKernels.available)
    func aFewTokensGetExactlyTheirLoneResults(kernels: CPUKernelSet) {
        for (rows, n) in [(37, 96), (13, 1000), (8, 576)] {
            var g = SeededGenerator(seed: UInt64(rows * n))
            let w = (0..<rows * n).map { _ in wfs_bf16_round(Float.random(in: -1...1, using: &g)) }
            let x = (0..<7 * n).map { _ in Float.random(in: -1...1, using: &g) }
            func product(_ first: Int, _ count: Int) -> [Float] {
                var out = [Float](repeating: .nan, count: count * rows)
                w.withUnsafeBytes { wb in
                    let tensor = WeightTensor(name: "few", dtype: .bf16, shape: [rows, n], base: wb.baseAddress!)
                    x.withUnsafeBufferPointer { xb in out.withUnsafeMutableBufferPointer { ob in
                        Matmul.run(tensor, xb.baseAddress! + first * n, tokens: count, out: ob.baseAddress!, threads: 2, kernels: kernels)
                    } }
                }
                return out
            }
            let alone = (0..<7).map { product($0, 1) }
            for count in 2...7 {
                let together = product(0, count)
                for t in 0..<count {
                    #expect(Array(together[(t * rows)..<((t + 1) * rows)]) == alone[t], "rows \(rows) n \(n): token \(t) of \(count)")
                }
            }
        }
    }

    /// The vector rounding of decode's activations gives the scalar reference's bits for every
    /// kind of float (ties both ways, denormals, infinities, NaN) and any tail length.
    @Test(.enabled(if: CPUKernels.available.contains(.avx512bf16), "the CPU has no AVX512-BF16"))
    func vectorBF16RoundingMatchesTheScalarReference() {
        var x: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, -.leastNormalMagnitude,
                          .greatestFiniteMagnitude, 3.14159, -2.71828, 1e-30, 6.5e4]
        x += [0x3F80_8000, 0x3F81_8000, 0x3F80_8001, 0x3F80_7FFF, 0x7F7F_FFFF].map { Float(bitPattern: $0) }  // ties, near ties, overflow to ∞
        var rng = SystemRandomNumberGenerator()
        x += (0..<77).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng)) }
        for count in [0, 1, 15, 16, 17, x.count] {
            var out = [Float](repeating: 7, count: count)
            x.withUnsafeBufferPointer { xs in out.withUnsafeMutableBufferPointer { o in
                wfs_avx512bf16_round_f32(xs.baseAddress!, count, o.baseAddress!)
            } }
            for i in 0..<count {
                let expected = UInt32(wfs_bf16_round(x[i])) << 16
                #expect(out[i].bitPattern == expected, "element \(i) of \(count): \(x[i].bitPattern) rounded to \(out[i].bitPattern), expected \(expected)")
            }
        }
    }

    @Test func theWidestSetRunsUnlessOneIsForced() throws {
        let all = CPUKernelSet.allCases
        #expect(CPUKernels.sets(features: 0) == [.avx2])
        #expect(CPUKernels.sets(features: Int(WFS_CPU_AVX2 | WFS_CPU_AVX512)) == [.avx2, .avx512])
        #expect(CPUKernels.sets(features: Int(WFS_CPU_AVX2 | WFS_CPU_AVX512 | WFS_CPU_AVX512BF16)) == [.avx2, .avx512, .avx512bf16])
        #expect(CPUKernels.sets(features: Int(WFS_CPU_AVX2 | WFS_CPU_AVX512 | WFS_CPU_AVX512BF16 | WFS_CPU_AMX)) == all)
        #expect(try CPUKernels.choose(forced: nil, available: all) == .amx)
        #expect(try CPUKernels.choose(forced: nil, available: [.avx2, .avx512, .avx512bf16]) == .avx512bf16)
        #expect(try CPUKernels.choose(forced: "", available: [.avx2]) == .avx2)
        #expect(try CPUKernels.choose(forced: "AVX512", available: all) == .avx512)
        #expect(try CPUKernels.choose(forced: "avx2", available: all) == .avx2)
        let lacking = #expect(throws: CPUKernelError.self) { try CPUKernels.choose(forced: "avx512bf16", available: [.avx2, .avx512]) }
        #expect(lacking?.description == "WEIGHTFS_CPU_KERNELS=avx512bf16: this CPU lacks AVX512-BF16 (with AVX-512 F, BW, VL and DQ); it runs avx2, avx512. Unset it or pick one of those")
        let unknown = #expect(throws: CPUKernelError.self) { try CPUKernels.choose(forced: "avx1024", source: "--kernels", available: [.avx2]) }
        #expect(unknown?.description.hasPrefix("--kernels=avx1024 is not a kernel set: use one of avx2, avx512, avx512bf16, amx") == true)
        // This process: the baseline is always there, and the active set is one the CPU runs.
        #expect(CPUKernels.available.first == .avx2)
        #expect(CPUKernels.available.contains(CPUKernels.active))
    }

    @Test func llama3ScalingKeepsHighFrequenciesAndSlowsLowOnes() {
        let rope = ModelConfig.RoPE(theta: 10000, scaling: .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64))
        let plain = RotaryEmbedding(headDim: 16, rope: .init(theta: 10000, scaling: nil)).inverseFrequencies
        let scaled = RotaryEmbedding(headDim: 16, rope: rope).inverseFrequencies
        #expect(scaled[0] == plain[0])  // wavelength 2π < 16: kept
        #expect(abs(scaled[7] - plain[7] / 8) < 1e-9)  // wavelength ≈ 2π·3162 > 64: divided by the factor
        #expect(scaled[2] < plain[2] && scaled[2] > plain[2] / 8)  // wavelength ≈ 2π·10 ≈ 63: in between
    }

    /// Causal grouped-query attention against a naive double-precision reference, for head sizes
    /// that take the blocked path (64, 128) and one that does not (48), with prefills whose key
    /// counts are not multiples of four, and a sliding window; keys and values in blocks of 5
    /// positions scattered over the KV memory in no order.
    @Test(arguments: [48, 64, 128])
    func attentionMatchesTheNaiveReference(headDim d: Int) throws {
        let heads = 6, kvHeads = 2, layers = 2, layer = 1
        let json = """
            {"architectures": ["LlamaForCausalLM"], "hidden_size": \(heads * d), "intermediate_size": 8,
             "num_hidden_layers": \(layers), "num_attention_heads": \(heads), "num_key_value_heads": \(kvHeads),
             "head_dim": \(d), "vocab_size": 4, "rms_norm_eps": 1e-5, "max_position_embeddings": 64}
            """
        let config = try ModelConfig.parse(Array(json.utf8))
        for (start, tokens, window) in [(0, 13, nil), (5, 1, nil), (0, 19, 6)] as [(Int, Int, Int?)] {
            let bs = 5, table = [6, 2, 7, 0, 5, 1, 3, 4]
            let kv = KVMemory(config: config, blockCount: 9, blockSize: bs)
            let count = start + tokens
            let k = Self.values(kvHeads * count * d, seed: 7).map { $0 / 4 }, v = Self.values(kvHeads * count * d, seed: 8)
            for g in 0..<kvHeads {
                for j in 0..<count {
                    let base = kv.offset(layer: layer, block: table[j / bs], head: g) + (j % bs) * d
                    for i in 0..<d { kv.keys[base + i] = k[(g * count + j) * d + i]; kv.values[base + i] = v[(g * count + j) * d + i] }
                }
            }
            let q = Self.values(tokens * heads * d, seed: 9).map { $0 / 4 }
            let positions = Array(start..<count)
            for threads in [1, 2] {
                var out = [Float](repeating: .nan, count: tokens * heads * d)
                q.withUnsafeBufferPointer { qb in out.withUnsafeMutableBufferPointer { ob in
                    Attention.run(q: qb.baseAddress!, positions: positions, rowSequence: Array(repeating: 0, count: tokens), tables: [table],
                                  heads: heads, kv: kv, layer: layer, window: window, out: ob.baseAddress!, threads: threads)
                } }
                var worst = 0.0
                for t in 0..<tokens { for h in 0..<heads {
                    let g = h / (heads / kvHeads), pos = positions[t]
                    let first = window.map { max(0, pos - $0 + 1) } ?? 0
                    var scores: [Double] = []
                    for j in first...pos {
                        var s = 0.0
                        for i in 0..<d { s += Double(q[(t * heads + h) * d + i]) * Double(k[(g * count + j) * d + i]) }
                        scores.append(s / Double(d).squareRoot())
                    }
                    let m = scores.max()!
                    let e = scores.map { Foundation.exp($0 - m) }, sum = e.reduce(0, +)
                    for i in 0..<d {
                        var o = 0.0
                        for (jj, j) in (first...pos).enumerated() { o += e[jj] / sum * Double(v[(g * count + j) * d + i]) }
                        worst = max(worst, abs(o - Double(out[(t * heads + h) * d + i])))
                    }
                } }
                #expect(worst < 1e-5, "head_dim \(d) start \(start) tokens \(tokens) window \(String(describing: window)) threads \(threads): \(worst)")
            }
        }
    }

    @Test func softmaxMatchesTheScalarDefinitionOverLongRows() {
        // Long enough for the vector path, with a tail, and values far apart.
        let x = Self.values(37, seed: 4).map { $0 * 10 }
        var got = x
        got.withUnsafeMutableBufferPointer { Activation.softmax($0.baseAddress!, count: 37) }
        let m = x.max()!, e = x.map { Foundation.exp(Double($0 - m)) }, sum = e.reduce(0, +)
        for i in 0..<37 { #expect(abs(Double(got[i]) - e[i] / sum) < 1e-6, "element \(i)") }
    }

    @Test func softmaxAndSiLU() {
        var v: [Float] = [1000, 1000, -Float.infinity]
        v.withUnsafeMutableBufferPointer { Activation.softmax($0.baseAddress!, count: 3) }
        #expect(v == [0.5, 0.5, 0])
        var g: [Float] = [0, 2], u: [Float] = [3, 1]
        g.withUnsafeMutableBufferPointer { gp in u.withUnsafeBufferPointer { Activation.siluMultiply(gp.baseAddress!, $0.baseAddress!, count: 2) } }
        #expect(g[0] == 0 && abs(g[1] - 2 / (1 + exp(-2))) < 1e-6)
    }

    @Test func vectorExpMatchesExpfAndSiLUMatchesEveryLane() {
        // exp8 against expf over its whole range: within 4 ulp, and the clamped ends as expf has them.
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let got = Activation.exp8(SIMD8<Float>((0..<8).map { x + Float($0) * 0.0123 }))
            for lane in 0..<8 {
                let want = expf(x + Float(lane) * 0.0123)
                worst = max(worst, abs(got[lane] - want) / want.ulp)
            }
            x += 0.37
        }
        #expect(worst <= 4, "exp8 is \(worst) ulp from expf")
        let ends = Activation.exp8(SIMD8<Float>(-1000, -100, -87.3, 0, 1, 88.3, 100, .infinity))
        #expect(ends[0] < 1e-37 && ends[1] < 1e-37 && ends[3] == 1 && abs(ends[4] - Float(M_E)) <= Float(M_E).ulp * 2)
        #expect(ends[5] > 1e38 && ends[6] > 1e38 && ends[7] > 1e38)
        // SiLU over 8-wide lanes and the scalar tail agree with the formula on every element.
        var gate = (0..<37).map { Float($0 - 18) * 0.9 }, up = (0..<37).map { Float($0) * 0.1 + 0.5 }
        let want = zip(gate, up).map { g, u in g / (1 + expf(-g)) * u }
        gate.withUnsafeMutableBufferPointer { gp in up.withUnsafeBufferPointer { Activation.siluMultiply(gp.baseAddress!, $0.baseAddress!, count: 37) } }
        for i in 0..<37 { #expect(abs(gate[i] - want[i]) <= 1e-6 * max(1, abs(want[i])), "element \(i)") }
    }
}

@Suite struct SamplerTests {
    let logits: [Float] = [1, 3, 3, 0.5, 2.9]

    @Test func greedyTakesTheLowestIDAmongTies() {
        var s = Sampler(.greedy)
        #expect(s.sample(logits) == 1)
        var k1 = Sampler(.init(temperature: 1, topK: 1, seed: 5))
        #expect(k1.sample(logits) == 1)
    }

    @Test func greedyOverAVocabularyRowMatchesTheScalarRule() {
        // Rows of a vocabulary's length (and lengths around the 16-lane width), the maximum at
        // every kind of place: first, last, the tail past the lanes, tied across lanes.
        func scalar(_ v: [Float]) -> Int {
            var best = 0
            for i in 1..<v.count where v[i] > v[best] { best = i }
            return best
        }
        var g = SeededGenerator(seed: 3)
        for n in [1, 15, 16, 17, 63, 64, 65, 100, 49_152, 49_159] {
            var row = (0..<n).map { _ in Float(g.nextUnit()) * 20 - 10 }
            #expect(Sampler.argmax(row) == scalar(row), "n \(n)")
            for at in Set([0, n - 1, n / 2, max(0, n - 3)]) {
                var r = row
                r[at] = 11
                #expect(Sampler.argmax(r) == at, "n \(n), maximum at \(at)")
                if n > 40 {
                    r[at / 3] = 11  // a tie earlier in the row wins
                    #expect(Sampler.argmax(r) == min(at, at / 3), "n \(n), tie at \(at / 3) and \(at)")
                }
            }
            if n > 2 {
                row[1] = .nan
                #expect(Sampler.argmax(row) == scalar(row), "n \(n) with a NaN")
                row[0] = .nan
                #expect(Sampler.argmax(row) == scalar(row), "n \(n) with a NaN first")
            }
        }
    }

    @Test func sameSeedSameTokensOtherSeedOtherTokens() {
        let p = SamplingParameters(temperature: 1.5, seed: 42)
        var a = Sampler(p), b = Sampler(p), c = Sampler(.init(temperature: 1.5, seed: 43))
        let ta = (0..<200).map { _ in a.sample(logits) }
        #expect(ta == (0..<200).map { _ in b.sample(logits) })
        #expect(ta != (0..<200).map { _ in c.sample(logits) })
        #expect(Set(ta) == Set(0..<5))
    }

    @Test func topKAndTopPRestrictTheCandidates() {
        var k = Sampler(.init(temperature: 1, topK: 3, seed: 1))
        #expect(Set((0..<300).map { _ in k.sample(logits) }) == [1, 2, 4])
        // p(1) = p(2) ≈ 0.33: 0.5 needs both tied tokens and nothing else.
        var p = Sampler(.init(temperature: 1, topP: 0.5, seed: 1))
        #expect(Set((0..<300).map { _ in p.sample(logits) }) == [1, 2])
    }

    @Test func frequenciesFollowTheSoftmax() {
        var s = Sampler(.init(temperature: 1, seed: 7))
        var counts = [Int](repeating: 0, count: 5)
        let n = 20000
        for _ in 0..<n { counts[s.sample(logits)] += 1 }
        let z = logits.map { exp(Double($0)) }.reduce(0, +)
        for i in 0..<5 {
            #expect(abs(Double(counts[i]) / Double(n) - exp(Double(logits[i])) / z) < 0.015)
        }
    }
}
