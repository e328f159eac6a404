import Foundation
import ObjectStore
import CPUBackend
import ModelCore
import Tokenizers

/// `weightfs-bench infer MODEL_DIR --prompt TEXT [--threads T] [--reps N] [--decode-tokens 128]`:
/// the model loaded once, one warm-up pass, then `--reps` prefills of the prompt (each into a
/// fresh KV cache) and `--reps` decodes of `--decode-tokens` greedy steps after the prompt's first
/// 8 tokens — what llama-bench does (pp/tg after a warm-up), so the two compare like for like.
/// One JSON line per repetition and kind; a fresh process's first pass (page faults of the mapped
/// weights) is `weightfs generate`'s number instead.
func runInfer(_ args: [String]) async throws {
    let dir = URL(fileURLWithPath: args[2])
    let threads = Int(argument("--threads", default: String(ProcessInfo.processInfo.activeProcessorCount)))!
    let reps = Int(argument("--reps", default: "5"))!
    let decodeTokens = Int(argument("--decode-tokens", default: "128"))!
    let tokenizer = try Tokenizer(directory: dir)
    let model = try LlamaModel(directory: dir, threads: threads, kernels: try CPUKernels.selection.get())
    FileHandle.standardError.write(Data("weightfs-bench infer: \(CPUKernels.summary)\nweightfs-bench infer: \(model.residencySummary)\n".utf8))
    let prompt = tokenizer.encode(argument("--prompt", default: "The capital of France is"))
    let short = Array(prompt.prefix(8))
    let clock = ContinuousClock()

    _ = try await model.forward(tokens: prompt, cache: model.makeCache(capacity: prompt.count))  // warm-up
    for rep in 1...reps {
        let cache = model.makeCache(capacity: prompt.count)
        let start = clock.now
        _ = try await model.forward(tokens: prompt, cache: cache)
        let s = (clock.now - start).seconds
        print("{\"what\": \"prefill\", \"rep\": \(rep), \"threads\": \(threads), \"tokens\": \(prompt.count), \"tok_s\": \(Double(prompt.count) / s)}")
    }
    for rep in 1...reps {
        let cache = model.makeCache(capacity: short.count + decodeTokens)
        var logits = try await model.forward(tokens: short, cache: cache)
        var greedy = Sampler(SamplingParameters())
        let start = clock.now
        for _ in 0..<decodeTokens {
            logits = try await model.forward(tokens: [greedy.sample(logits)], cache: cache)
        }
        let s = (clock.now - start).seconds
        print("{\"what\": \"decode\", \"rep\": \(rep), \"threads\": \(threads), \"tokens\": \(decodeTokens), \"tok_s\": \(Double(decodeTokens) / s)}")
    }
    // --batch N: N sequences decoding together, one step (one forward pass, N rows) per token,
    // as `serve` runs them: what batching gives over one sequence, without HTTP or scheduling.
    let batch = Int(argument("--batch", default: "0"))!
    if batch > 0 {
        let executor = CPUExecutor(model: model, kvBlocks: batch * ((short.count + decodeTokens) / 16 + 1), blockSize: 16)
        let perSeq = (short.count + decodeTokens) / 16 + 1
        let tables = (0..<batch).map { s in (0..<perSeq).map { BlockID(s * perSeq + $0) } }
        for rep in 1...reps {
            // Each sequence's prompt as its own step, then the decode steps of all of them.
            var last: [Int] = []
            for s in 0..<batch {
                let logits = try await executor.execute(Batch.single(tokens: short, start: 0, blockTable: tables[s]))
                var greedy = Sampler(SamplingParameters())
                last.append(greedy.sample(logits))
            }
            let start = clock.now
            for step in 0..<decodeTokens {
                let pos = short.count + step
                let b = Batch(tokens: last, positions: Array(repeating: pos, count: batch),
                              sequences: (0..<batch).map { Batch.Sequence(rows: $0..<($0 + 1), blockTable: tables[$0]) },
                              logitRows: Array(0..<batch))
                let logits = try await executor.execute(b)
                let v = model.config.vocabSize
                for s in 0..<batch {
                    var greedy = Sampler(SamplingParameters())
                    last[s] = logits.withUnsafeBufferPointer { greedy.sample(UnsafeBufferPointer(rebasing: $0[(s * v)..<((s + 1) * v)])) }
                }
            }
            let s = (clock.now - start).seconds
            print("{\"what\": \"batched decode\", \"batch\": \(batch), \"rep\": \(rep), \"threads\": \(threads), \"tokens\": \(batch * decodeTokens), \"tok_s\": \(Double(batch * decodeTokens) / s), \"step_ms\": \(s * 1000 / Double(decodeTokens))}")
        }
    }
}

/// `weightfs-bench logits MODEL_DIR --ids 1,2,3 [--kernels SET] [--threads T]`: the logits at
/// every position of one forward pass over the ids, as one JSON line, computed with the given
/// CPU kernel set: `scripts/device/logits-check` compares them with transformers' references
/// on a CPU that runs kernel sets CI cannot (the tests do the same where CI runs them).
func runLogits(_ args: [String]) async throws {
    let dir = URL(fileURLWithPath: args[2])
    let threads = Int(argument("--threads", default: "2"))!
    let kernels = args.contains("--kernels") ? try CPUKernels.choose(forced: argument("--kernels", default: ""), source: "--kernels")
                                             : try CPUKernels.selection.get()
    let ids = argument("--ids", default: "").split(separator: ",").compactMap { Int($0) }
    let model = try LlamaModel(directory: dir, threads: threads, kernels: kernels)
    let logits = try await model.forward(tokens: ids, cache: model.makeCache(capacity: ids.count), logits: .all)
    let rows = (0..<ids.count).map { t in "[" + logits[(t * model.config.vocabSize)..<((t + 1) * model.config.vocabSize)].map { "\($0)" }.joined(separator: ",") + "]" }
    print("{\"kernels\": \"\(kernels.rawValue)\", \"logits\": [\(rows.joined(separator: ","))]}")
}
