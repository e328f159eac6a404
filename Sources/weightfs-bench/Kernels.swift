import Foundation
import CPUBackend
import ModelCore

/// `weightfs-bench kernels`: one product of a [rows × n] weight with `tokens` activations, timed
/// (median of `--reps`), one JSON line. `--mode independent` runs `--threads` one-threaded
/// products side by side on separate buffers: with `pool` beside it, it tells what sharing one
/// product between threads costs over what the cores give on their own.
func runKernels(_ args: [String]) {
    guard let dtype = WeightDType(rawValue: argument("--dtype", default: "bf16")),
          let mode = KernelBenchmark.Mode(rawValue: argument("--mode", default: "pool")) else {
        FileHandle.standardError.write(Data("weightfs-bench kernels: --dtype is f32, f16 or bf16; --mode is pool or independent\n".utf8))
        exit(2)
    }
    let rows = Int(argument("--rows", default: "1536"))!
    let n = Int(argument("--n", default: "576"))!
    let tokens = Int(argument("--tokens", default: "128"))!
    let threads = Int(argument("--threads", default: "1"))!
    let reps = Int(argument("--reps", default: "21"))!
    let seconds = KernelBenchmark.matmul(dtype: dtype, rows: rows, n: n, tokens: tokens, threads: threads, reps: reps, mode: mode)
    let products = mode == .independent ? threads : 1
    let gflops = 2.0 * Double(rows * n * tokens * products) / seconds / 1e9
    print("{\"dtype\": \"\(dtype.rawValue)\", \"rows\": \(rows), \"n\": \(n), \"tokens\": \(tokens), \"threads\": \(threads), \"mode\": \"\(mode.rawValue)\", \"seconds\": \(seconds), \"gflops\": \(gflops)}")
}
