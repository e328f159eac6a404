// Benchmarks for weightfs (release builds only; results go to docs/BENCHMARKS.md).
//
//   weightfs-bench fetch gs://BUCKET/OBJECT --concurrency 16 [--chunk-size BYTES] [--dest PATH]
//   weightfs-bench demand gs://BUCKET/PREFIX --cache-dir DIR [--samples 100] ...  (see Demand.swift)
//
// fetch downloads one object with the Fetcher and prints one JSON line: bytes, seconds, MB/s,
// retries and the process's peak RSS. Run one process per setting so peak RSS is per setting.
// demand times 4 KiB demand reads of absent offsets through a ChunkCache during a preload.
// infer times prefill and decode of a local model after a warm-up, as llama-bench does (Infer.swift);
// logits prints one forward pass's logits with a chosen CPU kernel set (scripts/device/logits-check).
// kernels times one matmul of synthetic weights, checks every kernel set, or tables GFLOP/s against the core's peak (Kernels.swift).
import Fetcher
import Foundation
import ObjectStore

func argument(_ name: String, default value: String) -> String {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: name), i + 1 < args.count { return args[i + 1] }
    return value
}

func peakRSSBytes() -> Int64 {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Int64(usage.ru_maxrss) * 1024
}

/// Runs a subcommand and exits: 0 when it returns, 1 with its error on stderr when it throws.
func runAndExit(_ body: () async throws -> Void) async -> Never {
    do {
        try await body()
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("weightfs-bench: \(error)\n".utf8))
        exit(1)
    }
}

let args = CommandLine.arguments
if args.count >= 3, args[1] == "infer" { await runAndExit { try await runInfer(args) } }
if args.count >= 3, args[1] == "logits" { await runAndExit { try await runLogits(args) } }
if args.count >= 3, args[1] == "tokenizer" { await runAndExit { try runTokenizerSpeed(args) } }
if args.count >= 2, args[1] == "kernels" {
    runKernels(args)
    exit(0)
}
guard args.count >= 3, args[1] == "fetch" || args[1] == "demand" else {
    FileHandle.standardError.write(Data("""
        usage: weightfs-bench fetch gs://BUCKET/OBJECT [--concurrency N] [--chunk-size BYTES] [--dest PATH]
               weightfs-bench demand gs://BUCKET/PREFIX --cache-dir DIR [--samples N] [--idle-samples N] [--gap-ms MS] [--seed N] [--concurrency N] [--chunk-size BYTES]
               weightfs-bench infer MODEL_DIR [--prompt TEXT] [--threads T] [--reps N] [--decode-tokens N] [--batch N]
               weightfs-bench logits MODEL_DIR --ids 1,2,3 [--kernels SET] [--threads T]
               weightfs-bench tokenizer MODEL_DIR... [--bytes N]
               weightfs-bench kernels [--kernels avx2|avx512|avx512bf16] [--dtype bf16] [--rows R] [--n N] [--tokens T] [--threads T] [--reps N] [--mode pool|independent]
               weightfs-bench kernels --check | --table [--threads T]

        """.utf8))
    exit(2)
}
if args[1] == "demand" { await runAndExit { try await runDemand(args) } }
do {
    let url = try StoreURL(args[2])
    let store = try await url.open()
    let object = try await store.stat(url.path)
    let options = FetchOptions(concurrency: Int(argument("--concurrency", default: "16"))!,
                               chunkSize: Int64(argument("--chunk-size", default: String(8 << 20)))!)
    let dest = argument("--dest", default: "/dev/null")
    let fd = open(dest, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw StoreError.local(path: dest, errno: errno, operation: "open") }
    // As `weightfs cp` does (and the chunk cache for a new object): the blocks reserved first.
    if dest != "/dev/null" { _ = preallocate(fd, bytes: object.size) }
    let report = try await Fetcher(store: store, options: options).download(object, toFile: fd, path: dest)
    close(fd)
    let line: [String: Any] = [
        "object": url.description, "bytes": report.bytes, "seconds": report.seconds,
        "MBps": Double(report.bytes) / report.seconds / 1e6, "retries": report.retries,
        "concurrency": options.concurrency, "chunk_size": options.chunkSize, "peak_rss_bytes": peakRSSBytes(),
    ]
    let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
} catch {
    FileHandle.standardError.write(Data("weightfs-bench: \(error)\n".utf8))
    exit(1)
}
