import Foundation
import Synchronization
import Testing

import CPUBackend
@testable import Engine
import ModelCore
import TestSupport

/// The engine driving the CPU backend on the tiny fixture model: continuous batching with a
/// deliberately small KV pool gives each request exactly what it gets alone.
@Suite(.serialized)
struct EngineTests {
    static let model = TestEnvironment.repoRoot.appendingPathComponent("Tests/Fixtures/tiny-llama-f32")

    /// Greedy tokens for `prompt`, computed alone with the model's own contiguous cache.
    func alone(_ llama: LlamaModel, _ prompt: [Int], count: Int) async throws -> [Int] {
        let cache = llama.makeCache(capacity: prompt.count + count)
        var logits = try await llama.forward(tokens: prompt, cache: cache)
        var out: [Int] = []
        while out.count < count {
            out.append(Sampler.argmax(logits))
            if out.count < count { logits = try await llama.forward(tokens: [out.last!], cache: cache) }
        }
        return out
    }

    func collect(_ stream: AsyncThrowingStream<EngineOutput, Error>) async throws -> (tokens: [Int], reason: FinishReason?) {
        var tokens: [Int] = []
        for try await o in stream {
            switch o {
            case .admitted: continue
            case .token(let t): tokens.append(t)
            case .finished(let r): return (tokens, r)
            }
        }
        return (tokens, nil)
    }

    /// 16 greedy requests at once with 24 blocks of 16 positions (each needs 2 to 4): preempted
    /// and recomputed along the way, every one ends with the tokens it gets alone.
    @Test func sixteenConcurrentRequestsWithASmallPoolMatchRunningAlone() async throws {
        let llama = try LlamaModel(directory: Self.model, threads: 2)
        var prompts: [[Int]] = []
        var rng = SplitMix64(seed: 5)
        for k in 0..<16 { prompts.append((0..<(5 + 3 * k)).map { _ in Int(rng.next() % 500) + 5 }) }
        let maxTokens = 24
        var expected: [[Int]] = []
        for p in prompts { expected.append(try await alone(llama, p, count: maxTokens)) }

        let executor = CPUExecutor(model: llama, kvBlocks: 24, blockSize: 16)
        let engine = Engine(backend: executor, config: SchedulerConfig(maxNumSeqs: 16, maxNumBatchedTokens: 64, maxModelLen: 128),
                            enablePrefixCaching: false)
        var streams: [AsyncThrowingStream<EngineOutput, Error>] = []
        for p in prompts { streams.append(try await engine.submit(prompt: p, sampling: .greedy, stop: StopConditions(maxTokens: maxTokens)).1) }
        let results = try await withThrowingTaskGroup(of: (Int, [Int], FinishReason?).self) { group in
            for (k, s) in streams.enumerated() { group.addTask { let r = try await self.collect(s); return (k, r.tokens, r.reason) } }
            var out = [[Int]](repeating: [], count: prompts.count)
            for try await (k, tokens, reason) in group {
                #expect(reason == .length, "request \(k)")
                out[k] = tokens
            }
            return out
        }
        for k in prompts.indices { #expect(results[k] == expected[k], "request \(k) (prompt of \(prompts[k].count) tokens)") }
        let counters = await engine.counters
        #expect(counters.preemptions > 0, "24 blocks for 16 requests of up to 4 blocks each")
        #expect(counters.generationTokens == 16 * maxTokens && counters.finished[.length] == 16)
        let (usage, running, waiting) = (await engine.kvUsage, await engine.runningCount, await engine.waitingCount)
        #expect(usage == 0 && running == 0 && waiting == 0)
        // Batching happened: far fewer steps than tokens.
        #expect(await engine.steps < 16 * maxTokens / 2)
    }

    /// The engine's step statistics (`/metrics`' weightfs_engine_*) split a request's steps: a
    /// 20-token prompt in chunks of at most 8 is three mixed steps of 20 tokens, and the 4 tokens
    /// after the first are 4 decode steps of one sequence each; the loop's time holds the forward's.
    @Test func stepStatisticsSplitPrefillChunksFromDecodes() async throws {
        let llama = try LlamaModel(directory: Self.model, threads: 2)
        let engine = Engine(backend: CPUExecutor(model: llama, kvBlocks: 8, blockSize: 16),
                            config: SchedulerConfig(maxNumSeqs: 4, maxNumBatchedTokens: 8, maxModelLen: 64), enablePrefixCaching: false)
        let prompt = (0..<20).map { 7 + 11 * $0 % 400 }
        let (tokens, reason) = try await collect(try await engine.submit(prompt: prompt, sampling: .greedy, stop: StopConditions(maxTokens: 5)).1)
        #expect(tokens == (try await alone(llama, prompt, count: 5)) && reason == .length)
        let stats = await engine.stepStatistics
        #expect(stats.mixed.steps == 3 && stats.mixed.tokens == 20 && stats.mixed.sequences == 3)
        #expect(stats.decode.steps == 4 && stats.decode.tokens == 4 && stats.decode.sequences == 4)
        for kind in [stats.mixed, stats.decode] { #expect(kind.forwardSeconds > 0 && kind.loopSeconds >= kind.forwardSeconds) }
        #expect(await engine.steps == 7)
    }

    /// A consumer cancelled mid-stream (the handler of a client that went away) aborts its
    /// request within a step; its blocks go back and the others go on. The backend runs one step
    /// per permit, so the order of steps and the cancel is the same on any machine (on a fast
    /// one, the tiny model used to finish all 100 tokens before the test saw three).
    @Test func aRequestWhoseConsumerIsCancelledIsAborted() async throws {
        let llama = try LlamaModel(directory: Self.model, threads: 2)
        let backend = GatedBackend(CPUExecutor(model: llama, kvBlocks: 32, blockSize: 16))
        let engine = Engine(backend: backend, config: SchedulerConfig(maxNumSeqs: 4, maxNumBatchedTokens: 64, maxModelLen: 128))
        let (_, leaving) = try await engine.submit(prompt: [5, 6, 7], sampling: .greedy, stop: StopConditions(maxTokens: 100, ignoreEOS: true))
        let (_, staying) = try await engine.submit(prompt: [8, 9, 10], sampling: .greedy, stop: StopConditions(maxTokens: 20))
        let seen = SharedCounter()
        let reader = Task {
            for try await o in leaving where o != .admitted { seen.add() }
        }
        for k in 1...3 {  // one token per step for each request
            backend.allow(1)
            try await waitUntil("token \(k) of the request that will leave") { seen.value >= k }
        }
        reader.cancel()
        _ = await reader.result
        backend.allow(1000)
        let kept = try await collect(staying)
        #expect(kept.tokens.count == 20 && kept.reason == .length)
        let counters = await engine.counters
        #expect(counters.finished[.abort] == 1)
        // Three tokens seen, at most one more step (already scheduled when the consumer left).
        #expect(counters.generationTokens <= 20 + 4, "the abandoned request went on for \(counters.generationTokens - 20) tokens")
        let (running, usage) = (await engine.runningCount, await engine.kvUsage)
        #expect(running == 0 && usage == 0)
    }
}

/// The CPU backend, one step per permit the test gives (`allow`): the real model, in an order
/// the test decides.
final class GatedBackend: ModelBackend {
    let inner: CPUExecutor
    private let state = Mutex<(permits: Int, waiter: CheckedContinuation<Void, Never>?)>((0, nil))
    init(_ inner: CPUExecutor) { self.inner = inner }
    var config: ModelConfig { inner.config }
    var kvBlockSize: Int { inner.kvBlockSize }
    var kvBlockCount: Int { inner.kvBlockCount }

    func allow(_ steps: Int) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.permits += steps
            guard let w = s.waiter else { return nil }
            s.permits -= 1
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    func execute(_ batch: Batch) async throws(ModelError) -> [Float] {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let go = state.withLock { s -> Bool in
                if s.permits > 0 { s.permits -= 1; return true }
                s.waiter = c
                return false
            }
            if go { c.resume() }
        }
        return try await inner.execute(batch)
    }
}

/// A counter shared with a task.
final class SharedCounter: Sendable {
    private let n = Mutex(0)
    func add() { n.withLock { $0 += 1 } }
    var value: Int { n.withLock { $0 } }
}
