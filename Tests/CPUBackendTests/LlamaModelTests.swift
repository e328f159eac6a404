import Foundation
import Testing

import TestSupport
import Tokenizers
@testable import CPUBackend
@testable import ModelCore

/// The runtime against what Hugging Face transformers computed for the tiny fixture models.
@Suite struct LlamaModelReferenceTests {
    static let f32Models = ["tiny-llama-f32", "tiny-qwen2-f32", "tiny-llama3rope-f32"]

    /// On every CPU kernel set this machine runs (all of them compute f32 products for f32 weights).
    @Test(arguments: f32Models, CPUKernels.available)
    func f32LogitsMatchTransformersAtEveryPosition(model: String, kernels: CPUKernelSet) async throws {
        let llama = try LlamaModel(directory: fixtures.appendingPathComponent(model), threads: 2, kernels: kernels)
        let reference = try ReferenceFile(model: model)
        var worst: Float = 0
        for c in reference.runs[0].cases {
            let logits = try await llama.forward(tokens: c.inputIDs, cache: llama.makeCache(capacity: 64), logits: .all)
            let vocab = llama.config.vocabSize
            for (t, expected) in c.logits.enumerated() {
                let err = maxAbsDifference(logits[(t * vocab)..<((t + 1) * vocab)], expected)
                #expect(err < 1e-4, "\(model) \(kernels) \(c.name) position \(t): max abs error \(err)")
                worst = max(worst, err)
            }
        }
        print("\(model) (\(kernels)): max abs logit error over all cases and positions \(worst)")
    }

    /// Prefill part of the sequence, then decode the rest one token at a time through the cache.
    @Test(arguments: f32Models, CPUKernels.available)
    func decodingThroughTheCacheGivesTheSameLogits(model: String, kernels: CPUKernelSet) async throws {
        let llama = try LlamaModel(directory: fixtures.appendingPathComponent(model), threads: 1, kernels: kernels)
        let reference = try ReferenceFile(model: model)
        for c in reference.runs[0].cases {
            let cache = llama.makeCache(capacity: 64)
            let split = c.inputIDs.count / 2
            var last = try await llama.forward(tokens: Array(c.inputIDs[..<split]), cache: cache)
            #expect(maxAbsDifference(last, c.logits[split - 1]) < 1e-4)
            for t in split..<c.inputIDs.count {
                last = try await llama.forward(tokens: [c.inputIDs[t]], cache: cache)
                let err = maxAbsDifference(last, c.logits[t])
                #expect(err < 1e-4, "\(model) \(c.name) decode at \(t): \(err)")
            }
            #expect(cache.count == c.inputIDs.count)
        }
    }

    @Test(arguments: f32Models + ["tiny-llama-bf16"], CPUKernels.available)
    func greedyContinuationsMatch(model: String, kernels: CPUKernelSet) async throws {
        let llama = try LlamaModel(directory: fixtures.appendingPathComponent(model), threads: 2, kernels: kernels)
        let reference = try ReferenceFile(model: model)
        let run = reference.runs.last!  // for bf16: the f32-upcast run, which this runtime computes
        // bf16 activations (AVX512-BF16 on a bf16 model) move logits by up to transformers' own
        // bf16-vs-upcast distance.
        let bf16Pairs = model.hasSuffix("bf16") && kernels >= .avx512bf16
        let margin: Float = bf16Pairs ? 2 * (reference.maxAbsDiffBF16VsUpcast ?? 0.05) : 2e-4
        for c in run.cases {
            let generated = try await greedy(llama, prompt: c.inputIDs, count: c.greedyIDs.count)
            // A step whose top-2 margin is below the logit error may legitimately go the other way
            // (and everything after it): compare the steps before the first such one.
            let comparable = c.greedyMargins.firstIndex(where: { $0 < margin }) ?? c.greedyIDs.count
            #expect(Array(generated.prefix(comparable)) == Array(c.greedyIDs.prefix(comparable)), "\(model) \(c.name)")
        }
    }

    @Test(arguments: CPUKernels.available)
    func bf16LogitsMatchTheF32UpcastReference(kernels: CPUKernelSet) async throws {
        let llama = try LlamaModel(directory: fixtures.appendingPathComponent("tiny-llama-bf16"), threads: 2, kernels: kernels)
        #expect(llama.embedTokens.dtype == .bf16)  // used in place, not widened to an f32 copy
        let reference = try ReferenceFile(model: "tiny-llama-bf16")
        #expect(reference.runs[1].computeDType == "float32")
        var vsUpcast: Float = 0, vsBF16Compute: Float = 0
        for (k, c) in reference.runs[1].cases.enumerated() {
            let logits = try await llama.forward(tokens: c.inputIDs, cache: llama.makeCache(capacity: 64), logits: .all)
            let vocab = llama.config.vocabSize
            for t in c.logits.indices {
                let row = logits[(t * vocab)..<((t + 1) * vocab)]
                vsUpcast = max(vsUpcast, maxAbsDifference(row, c.logits[t]))
                vsBF16Compute = max(vsBF16Compute, maxAbsDifference(row, reference.runs[0].cases[k].logits[t]))
            }
        }
        let bf16Distance = reference.maxAbsDiffBF16VsUpcast ?? 0.05
        if kernels >= .avx512bf16 {
            // Products of bf16 pairs round the activations entering each product to bf16 (as
            // oneDNN does); transformers computing in bf16 rounds every activation, so its own
            // distance from the upcast run bounds ours.
            #expect(vsUpcast <= 2 * bf16Distance)
        } else {
            // Weights are widened exactly and computed in f32: the f32-upcast run is the exact peer.
            #expect(vsUpcast < 1e-4)
        }
        #expect(vsBF16Compute <= 2 * bf16Distance)
        print("tiny-llama-bf16 (\(kernels)): max abs logit error vs f32-upcast run \(vsUpcast), vs bf16-compute run \(vsBF16Compute)")
    }

    /// An f16 checkpoint: tiny-llama-f32's weights rounded to f16 (by the safetensors library),
    /// beside the same rounded values widened back to an f32 checkpoint (the exact peer: the
    /// runtime widens f16 weights exactly and computes in f32), and against transformers' f32
    /// logits (the rounding's own effect, bounded loosely).
    @Test func f16CheckpointsMatchTheirF32Widening() async throws {
        let dir = try TestEnvironment.scratchDirectory("tiny-f16")
        let source = fixtures.appendingPathComponent("tiny-llama-f32").path
        let script = """
            import glob, os, shutil, sys
            import numpy as np
            from safetensors.numpy import load_file, save_file
            src, out = sys.argv[1], sys.argv[2]
            for kind, dtype in (("f16", np.float16), ("widened", np.float32)):
                os.makedirs(f"{out}/{kind}")
                for f in os.listdir(src):
                    if f.endswith(".safetensors"):
                        tensors = {k: v.astype(np.float16).astype(dtype) for k, v in load_file(f"{src}/{f}").items()}
                        save_file(tensors, f"{out}/{kind}/{f}")
                    else:
                        shutil.copy(f"{src}/{f}", f"{out}/{kind}/{f}")
            """
        let made = try CommandRunner.run(TestEnvironment.python, ["-c", script, source, dir.path], timeout: 120)
        try #require(made.status == 0, "\(made.stderr)")
        let f16 = try LlamaModel(directory: dir.appendingPathComponent("f16"), threads: 2)
        #expect(f16.embedTokens.dtype == .f16)  // used in place, not widened to an f32 copy
        let widened = try LlamaModel(directory: dir.appendingPathComponent("widened"), threads: 2)
        let reference = try ReferenceFile(model: "tiny-llama-f32")
        var vsWidened: Float = 0, vsTransformers: Float = 0
        for c in reference.runs[0].cases {
            let a = try await f16.forward(tokens: c.inputIDs, cache: f16.makeCache(capacity: 64), logits: .all)
            let b = try await widened.forward(tokens: c.inputIDs, cache: widened.makeCache(capacity: 64), logits: .all)
            let vocab = f16.config.vocabSize
            for t in c.logits.indices {
                let row = a[(t * vocab)..<((t + 1) * vocab)]
                vsWidened = max(vsWidened, maxAbsDifference(row, Array(b[(t * vocab)..<((t + 1) * vocab)])))
                vsTransformers = max(vsTransformers, maxAbsDifference(row, c.logits[t]))
            }
        }
        #expect(vsWidened < 1e-4)
        #expect(vsTransformers < 0.05, "f16 rounding moved a logit by \(vsTransformers)")
        print("tiny-llama f16: max abs logit error vs its f32 widening \(vsWidened), vs transformers f32 \(vsTransformers)")
    }

    @Test func oneAndTwoThreadsAgree() async throws {
        let dir = fixtures.appendingPathComponent("tiny-llama-f32")
        let one = try LlamaModel(directory: dir, threads: 1), two = try LlamaModel(directory: dir, threads: 2)
        let ids = try ReferenceFile(model: "tiny-llama-f32").runs[0].cases.last!.inputIDs
        let a = try await one.forward(tokens: ids, cache: one.makeCache(capacity: 64), logits: .all)
        let b = try await two.forward(tokens: ids, cache: two.makeCache(capacity: 64), logits: .all)
        #expect(a == b)
    }

    @Test func positionsPastTheCacheAreRefused() async throws {
        let llama = try LlamaModel(directory: fixtures.appendingPathComponent("tiny-qwen2-f32"), threads: 1)
        let cache = llama.makeCache(capacity: 4)
        await #expect(throws: ModelError.self) { try await llama.forward(tokens: [1, 2, 3, 4, 5], cache: cache) }
        await #expect(throws: ModelError.self) { try await llama.forward(tokens: [9999], cache: cache) }
        await #expect(throws: ModelError.self) { try await llama.forward(tokens: [1], positions: [3], cache: cache) }
    }

    /// Running again from an earlier position (a rewound or edited sequence) drops what the cache
    /// held past it: the next default position follows the last one run, and the keys of the
    /// old continuation are never attended to.
    @Test func aPassAtEarlierPositionsDropsTheLaterKeys() async throws {
        let llama = try LlamaModel(directory: fixtures.appendingPathComponent("tiny-llama-f32"), threads: 1)
        let cache = llama.makeCache(capacity: 16)
        _ = try await llama.forward(tokens: [0, 17, 250, 3, 99, 401], cache: cache)
        _ = try await llama.forward(tokens: [42], positions: [2], cache: cache)
        #expect(cache.count == 3)
        let next = try await llama.forward(tokens: [7], cache: cache)
        let fresh = try await llama.forward(tokens: [0, 17, 42, 7], cache: llama.makeCache(capacity: 16))
        #expect(maxAbsDifference(next[...], fresh) < 1e-4)
    }

    func greedy(_ llama: LlamaModel, prompt: [Int], count: Int) async throws -> [Int] {
        let cache = llama.makeCache(capacity: prompt.count + count)
        var logits = try await llama.forward(tokens: prompt, cache: cache)
        var out: [Int] = []
        for _ in 0..<count {
            let next = Sampler.argmax(logits)
            out.append(next)
            logits = try await llama.forward(tokens: [next], cache: cache)
        }
        return out
    }
}
