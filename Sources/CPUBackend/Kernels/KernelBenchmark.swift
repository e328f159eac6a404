import ModelCore
import Foundation
import CKernels

/// Timing of the kernels on synthetic weights, for `weightfs-bench kernels` (not used by the
/// runtime). Weights and activations are seeded, so two runs compute the same thing.
public enum KernelBenchmark {
    public enum Mode: String, Sendable {
        /// One product split over `threads` by the worker pool, as the forward pass runs it.
        case pool
        /// `threads` OS threads, each running its own product on its own buffers one-threaded:
        /// what the cores give when nothing is shared.
        case independent
    }

    /// Seconds per product of a [rows × n] weight with `tokens` activation rows (median of `reps`).
    public static func matmul(dtype: WeightDType, rows: Int, n: Int, tokens: Int, threads: Int, reps: Int, mode: Mode,
                              kernels: CPUKernelSet = CPUKernels.active) -> Double {
        let copies = mode == .independent ? threads : 1
        let bytes = rows * n * dtype.byteSize
        var weights: [UnsafeMutableRawPointer] = []
        var inputs: [UnsafeMutablePointer<Float>] = []
        var outputs: [UnsafeMutablePointer<Float>] = []
        var generator = SeededGenerator(seed: 1)
        func next() -> Float { Float.random(in: -1...1, using: &generator) }
        for _ in 0..<copies {
            let w = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            for i in 0..<rows * n {
                let v = next() * 0.05
                switch dtype {
                case .f32: w.storeBytes(of: v, toByteOffset: i * 4, as: Float.self)
                case .f16: w.storeBytes(of: Float16(v), toByteOffset: i * 2, as: Float16.self)
                case .bf16: w.storeBytes(of: UInt16(v.bitPattern >> 16), toByteOffset: i * 2, as: UInt16.self)
                }
            }
            weights.append(w)
            let x = UnsafeMutablePointer<Float>.allocate(capacity: tokens * n)
            for i in 0..<tokens * n { x[i] = next() }
            inputs.append(x)
            outputs.append(UnsafeMutablePointer<Float>.allocate(capacity: tokens * rows))
        }
        defer {
            for w in weights { w.deallocate() }
            for x in inputs { x.deallocate() }
            for o in outputs { o.deallocate() }
        }
        let tensors = weights.map { WeightTensor(name: "bench", dtype: dtype, shape: [rows, n], base: UnsafeRawPointer($0)) }
        var times: [Double] = []
        for _ in 0..<reps {
            let start = DispatchTime.now().uptimeNanoseconds
            switch mode {
            case .pool:
                Matmul.run(tensors[0], inputs[0], tokens: tokens, out: outputs[0], threads: threads, kernels: kernels)
            case .independent:
                let group = DispatchGroup()
                for c in 0..<copies {
                    let w = tensors[c], x = SendablePointer(inputs[c]), o = SendableMutablePointer(outputs[c])
                    group.enter()
                    let thread = Thread {
                        Matmul.run(w, x.p, tokens: tokens, out: o.p, threads: 1, kernels: kernels)
                        group.leave()
                    }
                    thread.start()
                }
                group.wait()
            }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return times.sorted()[times.count / 2]
    }

    /// Floating-point operations per second one core gives with `set`'s widest multiply-adds,
    /// measured (independent chains in registers, the best of five runs of ~0.1 s): the roof the
    /// GEMM's GFLOP/s is measured against, at the clock the core runs now.
    public static func peakFlops(_ set: CPUKernelSet) -> Double {
        let bit: Int32
        switch set {
        case .avx2: bit = WFS_CPU_AVX2
        case .avx512: bit = WFS_CPU_AVX512
        case .avx512bf16: bit = WFS_CPU_AVX512BF16
        case .amx: bit = WFS_CPU_AMX
        }
        guard CPUKernels.available.contains(set) else { return 0 }
        func timed(_ iterations: Int) -> (flops: Double, seconds: Double) {
            let start = DispatchTime.now().uptimeNanoseconds
            let flops = wfs_peak_flops(bit, iterations)
            return (flops, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let probe = timed(1_000_000)
        let iterations = max(1_000_000, Int(Double(1_000_000) * 0.1 / max(probe.seconds, 1e-6)))
        return (0..<5).map { _ in let r = timed(iterations); return r.flops / r.seconds }.max()!
    }
}

/// Every kernel set's products against a double-precision reference, on random weights and
/// activations, for shapes that take each path (one token, AVX2 panels, 16-token tiles one and
/// two at a time, rows past a multiple of the panel, odd row lengths, AMX's 32-multiples), f32, bf16 and f16 weights,
/// one and three threads. `weightfs-bench kernels --check` runs it where CI cannot (a CPU with
/// AVX-512); the tests run it on every set the CI machine has.
public enum KernelCheck {
    public struct Case: Sendable, CustomStringConvertible {
        public let kernels: CPUKernelSet
        public let dtype: WeightDType
        public let rows, n, tokens, threads: Int
        /// The largest |out − reference| over that element's error bound.
        public let worst: Double
        public var passed: Bool { worst <= 1 }
        public var description: String {
            "\(kernels.rawValue) \(dtype.rawValue) rows \(rows) n \(n) tokens \(tokens) threads \(threads): error \(worst) of the bound"
        }
    }

    public static func run(kernels: CPUKernelSet) -> [Case] {
        var cases = batchInvariance(kernels: kernels)
        for dtype in [WeightDType.f32, .bf16, .f16] {
            for (rows, n) in [(12, 32), (37, 96), (130, 258), (300, 1000), (25, 33), (100, 512)] {
                for tokens in [1, 2, 3, 5, 7, 8, 9, 16, 17, 32, 33, 100] {
                    for threads in [1, 3] {
                        cases.append(check(kernels: kernels, dtype: dtype, rows: rows, n: n, tokens: tokens, threads: threads))
                    }
                }
            }
        }
        return cases
    }

    /// A row's product alone (decode), in 4 rows (the AVX2 panels) and among 16 (the wide
    /// kernels) against each other: within twice the rounding bound, i.e. the same activations
    /// (rounded to bf16 or not) whatever the batch, so a sequence's logits in `serve` do not
    /// depend on how many others share its step. (`tokens` in a case is the batch size compared
    /// with the lone row.)
    static func batchInvariance(kernels: CPUKernelSet) -> [Case] {
        var cases: [Case] = []
        for dtype in [WeightDType.f32, .bf16, .f16] {
            let rows = 40, n = 64, batch = 16  // short rows: a bf16 rounding on one side only is ~20x the bound
            var g = SeededGenerator(seed: 99)
            let w = (0..<rows * n).map { _ in Float.random(in: -1...1, using: &g) }
            let x = (0..<batch * n).map { _ in Float.random(in: -1...1, using: &g) }
            let raw: [UInt8]
            switch dtype {
            case .f32: raw = w.withUnsafeBytes { Array($0) }
            case .bf16: raw = w.map { wfs_bf16_round($0) }.withUnsafeBytes { Array($0) }
            case .f16: raw = w.map { Float16($0) }.withUnsafeBytes { Array($0) }
            }
            func product(_ first: Int, _ count: Int) -> [Float] {
                var out = [Float](repeating: .nan, count: count * rows)
                raw.withUnsafeBytes { wb in
                    let tensor = WeightTensor(name: "batch", dtype: dtype, shape: [rows, n], base: wb.baseAddress!)
                    x.withUnsafeBufferPointer { xb in out.withUnsafeMutableBufferPointer { ob in
                        Matmul.run(tensor, xb.baseAddress! + first * n, tokens: count, out: ob.baseAddress!, threads: 2, kernels: kernels)
                    } }
                }
                return out
            }
            let all = product(0, batch), four = product(0, 4), alone = product(0, 1)
            let wAbs = w.map(abs), xAbs = x.map(abs)
            for (count, other) in [(4, four), (batch, all)] {
                var worst = 0.0
                for r in 0..<rows {
                    var magnitude = 0.0
                    for i in 0..<n { magnitude += Double(wAbs[r * n + i]) * Double(xAbs[i]) }
                    let bound = 2 * Double(n + 2) * 0x1p-24 * magnitude
                    worst = max(worst, abs(Double(other[r]) - Double(alone[r])) / bound)
                }
                cases.append(Case(kernels: kernels, dtype: dtype, rows: rows, n: n, tokens: count, threads: 2, worst: worst))
            }
        }
        return cases
    }

    /// One product against the reference. The bound is the worst case of any summation order in
    /// f32: (n + 2) · 2⁻²⁴ · Σ|w·x| per element, x as the kernel sees it (rounded to bf16 where
    /// the set computes in bf16 pairs). A wrong index or a lost tile is off by far more.
    static func check(kernels: CPUKernelSet, dtype: WeightDType, rows: Int, n: Int, tokens: Int, threads: Int) -> Case {
        var g = SeededGenerator(seed: UInt64(rows * 7919 + n * 31 + tokens))
        let w = (0..<rows * n).map { _ in Float.random(in: -1...1, using: &g) }
        let x = (0..<tokens * n).map { _ in Float.random(in: -1...1, using: &g) }
        let raw: [UInt8]
        let wSeen: [Float]  // the weights as stored
        switch dtype {
        case .f32: raw = w.withUnsafeBytes { Array($0) }; wSeen = w
        case .bf16:
            let h = w.map { wfs_bf16_round($0) }
            raw = h.withUnsafeBytes { Array($0) }; wSeen = h.map { Float(bitPattern: UInt32($0) << 16) }
        case .f16:
            let h = w.map { Float16($0) }
            raw = h.withUnsafeBytes { Array($0) }; wSeen = h.map { Float($0) }
        }
        let xSeen = Matmul.roundsActivationsToBF16(kernels: kernels, dtype: dtype, n: n)
            ? x.map { Float(bitPattern: UInt32(wfs_bf16_round($0)) << 16) } : x
        var out = [Float](repeating: .nan, count: tokens * rows)
        raw.withUnsafeBytes { wb in
            let tensor = WeightTensor(name: "check", dtype: dtype, shape: [rows, n], base: wb.baseAddress!)
            x.withUnsafeBufferPointer { xb in out.withUnsafeMutableBufferPointer { ob in
                Matmul.run(tensor, xb.baseAddress!, tokens: tokens, out: ob.baseAddress!, threads: threads, kernels: kernels)
            } }
        }
        var worst = 0.0
        for t in 0..<tokens {
            for r in 0..<rows {
                var sum = 0.0, magnitude = 0.0
                for i in 0..<n {
                    let p = Double(wSeen[r * n + i]) * Double(xSeen[t * n + i])
                    sum += p; magnitude += abs(p)
                }
                let bound = Double(n + 2) * 0x1p-24 * magnitude + 1e-30
                let got = Double(out[t * rows + r])
                worst = max(worst, got.isFinite ? abs(got - sum) / bound : .infinity)
            }
        }
        return Case(kernels: kernels, dtype: dtype, rows: rows, n: n, tokens: tokens, threads: threads, worst: worst)
    }
}
