import ModelCore
import Foundation

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
    public static func matmul(dtype: WeightDType, rows: Int, n: Int, tokens: Int, threads: Int, reps: Int, mode: Mode) -> Double {
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
                Matmul.run(tensors[0], inputs[0], tokens: tokens, out: outputs[0], threads: threads)
            case .independent:
                let group = DispatchGroup()
                for c in 0..<copies {
                    let w = tensors[c], x = SendablePointer(inputs[c]), o = SendableMutablePointer(outputs[c])
                    group.enter()
                    let thread = Thread {
                        Matmul.run(w, x.p, tokens: tokens, out: o.p, threads: 1)
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
}
