import Foundation
import CPUBackend
import ModelCore

/// `weightfs-bench kernels`: one product of a [rows × n] weight with `tokens` activations, timed
/// (median of `--reps`), one JSON line. `--mode independent` runs `--threads` one-threaded
/// products side by side on separate buffers: with `pool` beside it, it tells what sharing one
/// product between threads costs over what the cores give on their own. `--kernels` picks the
/// CPU kernel set (default: the widest this CPU runs, or WEIGHTFS_CPU_KERNELS).
///
/// `--check`: every kernel set this CPU runs against the double-precision reference
/// (`KernelCheck`); exits 1 naming each case past its error bound.
/// `--table`: per kernel set, the prefill GEMM's GFLOP/s (1 thread and `--threads`) beside the
/// core's measured peak for that set; JSON lines on stdout, a table on stderr.
func runKernels(_ args: [String]) {
    func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("weightfs-bench kernels: \(message)\n".utf8))
        exit(2)
    }
    let kernels: CPUKernelSet
    do {
        kernels = args.contains("--kernels") ? try CPUKernels.choose(forced: argument("--kernels", default: ""), source: "--kernels")
                                             : try CPUKernels.selection.get()
    } catch { fail("\(error)") }
    if args.contains("--check") { runKernelCheck() }
    if args.contains("--table") { runKernelTable(threads: Int(argument("--threads", default: "\(ProcessInfo.processInfo.activeProcessorCount)"))!) }
    guard let dtype = WeightDType(rawValue: argument("--dtype", default: "bf16")),
          let mode = KernelBenchmark.Mode(rawValue: argument("--mode", default: "pool")) else {
        fail("--dtype is f32, f16 or bf16; --mode is pool or independent")
    }
    let rows = Int(argument("--rows", default: "1536"))!
    let n = Int(argument("--n", default: "576"))!
    let tokens = Int(argument("--tokens", default: "128"))!
    let threads = Int(argument("--threads", default: "1"))!
    let reps = Int(argument("--reps", default: "21"))!
    let seconds = KernelBenchmark.matmul(dtype: dtype, rows: rows, n: n, tokens: tokens, threads: threads, reps: reps, mode: mode, kernels: kernels)
    let products = mode == .independent ? threads : 1
    let gflops = 2.0 * Double(rows * n * tokens * products) / seconds / 1e9
    print("{\"kernels\": \"\(kernels.rawValue)\", \"dtype\": \"\(dtype.rawValue)\", \"rows\": \(rows), \"n\": \(n), \"tokens\": \(tokens), \"threads\": \(threads), \"mode\": \"\(mode.rawValue)\", \"seconds\": \(seconds), \"gflops\": \(gflops)}")
}

private func runKernelCheck() -> Never {
    var failed = 0
    for set in CPUKernels.available {
        let cases = KernelCheck.run(kernels: set)
        let bad = cases.filter { !$0.passed }
        for c in bad { FileHandle.standardError.write(Data("FAILED \(c)\n".utf8)) }
        failed += bad.count
        let worst = cases.map(\.worst).max() ?? 0
        print("{\"check\": \"\(set.rawValue)\", \"cases\": \(cases.count), \"failed\": \(bad.count), \"worst_of_bound\": \(worst)}")
    }
    exit(failed == 0 ? 0 : 1)
}

private func runKernelTable(threads: Int) -> Never {
    var lines: [String] = []
    for set in CPUKernels.available {
        let peak = KernelBenchmark.peakFlops(set) / 1e9
        for dtype in [WeightDType.f32, .bf16] {
            for (rows, n) in [(1536, 576), (4096, 4096)] {
                for t in Set([1, threads]).sorted() {
                    let tokens = 128
                    let seconds = KernelBenchmark.matmul(dtype: dtype, rows: rows, n: n, tokens: tokens, threads: t, reps: 7, mode: .pool, kernels: set)
                    let gflops = 2.0 * Double(rows * n * tokens) / seconds / 1e9
                    print("{\"kernels\": \"\(set.rawValue)\", \"peak_gflops_per_core\": \(peak), \"dtype\": \"\(dtype.rawValue)\", \"rows\": \(rows), \"n\": \(n), \"tokens\": \(tokens), \"threads\": \(t), \"gflops\": \(gflops)}")
                    lines.append(String(format: "| %@ | %.1f | %@ | %d×%d | %d | %.1f | %.1f | %.0f %% |", set.rawValue, peak, dtype.rawValue,
                                        rows, n, t, gflops, gflops / Double(t), 100 * gflops / Double(t) / peak))
                }
            }
        }
    }
    FileHandle.standardError.write(Data(("""
        | kernels | peak GFLOP/s per core (measured) | weights | rows×n (128 tokens) | threads | GFLOP/s | per core | of peak |
        |---|---:|---|---|---:|---:|---:|---:|

        """ + lines.joined(separator: "\n") + "\n").utf8))
    exit(0)
}
