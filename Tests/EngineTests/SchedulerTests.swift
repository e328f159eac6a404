import Testing

@testable import Engine
import ModelCore

/// The scheduler and the KV cache manager as pure logic: no model, no I/O. A "step" here commits
/// what `schedule` returned, with a made-up next token for each chunk that wants one.
struct SchedulerTests {
    func makeScheduler(blocks: Int, blockSize: Int = 4, maxNumSeqs: Int = 8, budget: Int = 64, maxModelLen: Int = 256,
                       prefixCaching: Bool = true) -> Scheduler {
        Scheduler(config: SchedulerConfig(maxNumSeqs: maxNumSeqs, maxNumBatchedTokens: budget, maxModelLen: maxModelLen),
                  kv: KVCacheManager(blockCount: blocks, blockSize: blockSize, enablePrefixCaching: prefixCaching))
    }

    /// Runs one step: the next token of request r is 1000 + its output length (deterministic).
    @discardableResult
    func step(_ s: inout Scheduler, next: (RequestKey) -> Int = { _ in 7 }) -> (chunks: [ScheduledChunk], events: [RequestEvent]) {
        let chunks = s.schedule()
        var sampled: [RequestKey: Int] = [:]
        for c in chunks where c.wantsLogits { sampled[c.id] = next(c.id) }
        return (chunks, s.commit(sampled: sampled))
    }

    func id(_ n: Int) -> RequestKey { RequestKey("r\(n)") }

    @Test func admitsWithinTheTokenBudgetAndMaxNumSeqsAndPrefillsInChunks() throws {
        var s = makeScheduler(blocks: 64, maxNumSeqs: 2, budget: 10)
        try s.add(id(0), prompt: Array(1...25), stop: StopConditions(maxTokens: 3))
        try s.add(id(1), prompt: Array(1...4), stop: StopConditions(maxTokens: 3))
        try s.add(id(2), prompt: Array(1...4), stop: StopConditions(maxTokens: 3))
        // Step 1: 10 of r0's 25 prompt tokens (no logits yet); nothing else fits the budget.
        var (chunks, events) = step(&s)
        #expect(chunks.map(\.id) == [id(0)] && chunks[0].tokens == Array(1...10) && chunks[0].start == 0 && !chunks[0].wantsLogits)
        #expect(events.isEmpty)
        (chunks, _) = step(&s)
        #expect(chunks.map(\.id) == [id(0)] && chunks[0].start == 10 && chunks[0].tokens.count == 10)
        // Step 3: r0's last 5 prompt tokens (logits: its first token), then r1 fits in the rest.
        (chunks, events) = step(&s)
        #expect(chunks.map(\.id) == [id(0), id(1)])
        #expect(chunks[0].start == 20 && chunks[0].tokens.count == 5 && chunks[0].wantsLogits)
        #expect(chunks[1].tokens == Array(1...4) && chunks[1].wantsLogits)
        #expect(events == [.token(id(0), 7), .token(id(1), 7)])
        // Step 4: two decodes; r2 waits for a seat (maxNumSeqs 2).
        (chunks, _) = step(&s)
        #expect(chunks.map(\.id) == [id(0), id(1)] && chunks.allSatisfy { $0.tokens == [7] })
        #expect(s.waitingCount == 1 && s.runningCount == 2)
        // Each ends after 3 tokens (length); r2 then runs.
        (_, events) = step(&s)
        #expect(events.contains(.finished(id(0), .length)) && events.contains(.finished(id(1), .length)))
        (chunks, _) = step(&s)
        #expect(chunks.map(\.id) == [id(2)])
        #expect(s.counters.promptTokens == 25 + 4 + 4 && s.counters.finished[.length] == 2)
    }

    @Test func aStopTokenEndsTheRequestWithoutReturningIt() throws {
        var s = makeScheduler(blocks: 16)
        try s.add(id(0), prompt: [1, 2, 3], stop: StopConditions(maxTokens: 10, stopTokenIDs: [99]))
        var n = 0
        var events: [RequestEvent] = []
        while s.hasWork { events += step(&s) { _ in n += 1; return n == 3 ? 99 : 50 + n }.events }
        #expect(events == [.token(id(0), 51), .token(id(0), 52), .finished(id(0), .stop)])
        #expect(s.kv.pool.usedCount - s.kv.cachedBlockCount <= 0 && s.kv.usage == 0, "its blocks went back")
    }

    /// Blocks run out: the newest running request is preempted (blocks back, front of the
    /// queue), the older one finishes, then the preempted one is recomputed (prompt and the
    /// tokens it had generated) and produces what it would have alone.
    @Test func theNewestRequestIsPreemptedAndResumesWithTheSameTokens() throws {
        func run(_ prompts: [[Int]], blocks: Int) throws -> (outputs: [RequestKey: [Int]], preemptions: Int) {
            var s = makeScheduler(blocks: blocks, prefixCaching: false)
            for (k, p) in prompts.enumerated() { try s.add(id(k), prompt: p, stop: StopConditions(maxTokens: 12)) }
            var outputs: [RequestKey: [Int]] = [:]
            var history: [RequestKey: [Int]] = [:]  // tokens each request has seen, for a made-up "model"
            for (k, p) in prompts.enumerated() { history[id(k)] = p }
            var guardSteps = 0
            while s.hasWork && guardSteps < 500 {
                guardSteps += 1
                let chunks = s.schedule()
                var sampled: [RequestKey: Int] = [:]
                for c in chunks where c.wantsLogits {
                    // The next token depends on every token before it (as a model's would).
                    let seen = Array(history[c.id]!.prefix(c.start + c.tokens.count))
                    sampled[c.id] = seen.reduce(17) { ($0 &* 31 &+ $1) % 1000 }
                }
                for e in s.commit(sampled: sampled) {
                    if case .token(let r, let t) = e {
                        outputs[r, default: []].append(t)
                        history[r]!.append(t)
                    }
                }
            }
            #expect(!s.hasWork)
            return (outputs, s.counters.preemptions)
        }
        let prompts = [Array(1...8), Array(11...18), Array(21...28)]
        let roomy = try run(prompts, blocks: 64)
        #expect(roomy.preemptions == 0)
        // 3 requests of 8 + 12 positions need 5 blocks each; 8 blocks hold fewer.
        let tight = try run(prompts, blocks: 8)
        #expect(tight.preemptions > 0)
        #expect(tight.outputs == roomy.outputs)
        #expect(roomy.outputs.values.allSatisfy { $0.count == 12 })
    }

    @Test func aSharedPrefixIsComputedOnce() throws {
        var s = makeScheduler(blocks: 64, blockSize: 4, budget: 256)
        let prefix = Array(100..<132)  // 8 full blocks
        try s.add(id(0), prompt: prefix + [1, 2, 3], stop: StopConditions(maxTokens: 2))
        var (chunks, _) = step(&s)
        #expect(chunks[0].tokens.count == 35)
        #expect(s.counters.prefixCacheQueries == 35 && s.counters.prefixCacheHits == 0)
        // While r0 still runs, r1 shares its 8 full prefix blocks and computes only its tail.
        try s.add(id(1), prompt: prefix + [9, 9, 9, 9, 9], stop: StopConditions(maxTokens: 2))
        (chunks, _) = step(&s)
        let r1 = try #require(chunks.first { $0.id == id(1) })
        #expect(r1.start == 32 && r1.tokens == [9, 9, 9, 9, 9])
        let r0 = try #require(chunks.first { $0.id == id(0) })
        #expect(Array(r1.blockTable.prefix(8)) == Array(r0.blockTable.prefix(8)), "the same blocks")
        #expect(s.counters.prefixCacheQueries == 35 + 37 && s.counters.prefixCacheHits == 32)
        while s.hasWork { step(&s) }
        // After both finished, the prefix stays cached: a third request hits it too, and a prompt
        // that is entirely cached still computes its last block (its logits are needed).
        try s.add(id(2), prompt: prefix, stop: StopConditions(maxTokens: 1))
        (chunks, _) = step(&s)
        #expect(chunks[0].start == 28 && chunks[0].tokens == Array(prefix[28...]))
        #expect(s.counters.prefixCacheHits == 32 + 28)
    }

    @Test func aPrefixIsMatchedOnEveryTokenNotOnAHash() throws {
        var s = makeScheduler(blocks: 64, blockSize: 4, budget: 256)
        try s.add(id(0), prompt: [1, 2, 3, 4, 5, 6, 7, 8, 9], stop: StopConditions(maxTokens: 1))
        while s.hasWork { step(&s) }
        // Same first block, second block differs in its last token: one block hit, not two.
        try s.add(id(1), prompt: [1, 2, 3, 4, 5, 6, 7, 0, 9], stop: StopConditions(maxTokens: 1))
        let chunks = step(&s).chunks
        #expect(chunks[0].start == 4)
        // The same tokens after a different first block: no hit at all (the chain differs).
        try s.add(id(2), prompt: [0, 2, 3, 4, 5, 6, 7, 8, 9], stop: StopConditions(maxTokens: 1))
        #expect(step(&s).chunks.first { $0.id == id(2) }?.start == 0)
    }

    @Test func cachedBlocksNobodyHoldsAreEvictedWhenMemoryIsNeeded() throws {
        var s = makeScheduler(blocks: 6, blockSize: 4, budget: 256)
        try s.add(id(0), prompt: Array(1...16), stop: StopConditions(maxTokens: 1))
        while s.hasWork { step(&s) }
        #expect(s.kv.cachedBlockCount == 4 && s.kv.usage == 0 && s.kv.availableBlocks == 6)
        // A different 20-token prompt needs 6 blocks: 2 free plus 4 evicted.
        try s.add(id(1), prompt: Array(101...120), stop: StopConditions(maxTokens: 1))
        let chunks = step(&s).chunks
        #expect(chunks.count == 1 && chunks[0].start == 0)
        #expect(s.counters.prefixCacheHits == 0)
    }

    @Test func abortFreesTheBlocksAtOnce() throws {
        var s = makeScheduler(blocks: 16, prefixCaching: false)
        try s.add(id(0), prompt: Array(1...20), stop: StopConditions(maxTokens: 5))
        try s.add(id(1), prompt: Array(1...4), stop: StopConditions(maxTokens: 5))
        step(&s)
        #expect(s.kv.pool.usedCount == 6)
        let first = s.abort(id(0))
        #expect(first)
        #expect(s.kv.pool.usedCount == 1 && s.runningCount == 1)
        let second = s.abort(id(1))
        #expect(second && s.kv.pool.usedCount == 0 && !s.hasWork)
        let third = s.abort(id(1))
        #expect(!third, "already gone")
        #expect(s.counters.finished[.abort] == 2)
    }

    @Test func requestsThatCanNeverRunAreRefused() throws {
        var s = makeScheduler(blocks: 4, blockSize: 4, maxModelLen: 64)
        func refusal(_ rid: RequestKey, _ prompt: [Int], maxTokens: Int) -> AdmissionError? {
            do { try s.add(rid, prompt: prompt, stop: StopConditions(maxTokens: maxTokens)) } catch { return error }
            return nil
        }
        let empty = refusal(id(0), [], maxTokens: 1)
        let long = refusal(id(1), Array(repeating: 1, count: 60), maxTokens: 10)
        let big = refusal(id(2), Array(repeating: 1, count: 10), maxTokens: 10)
        let fine = refusal(id(3), [1], maxTokens: 1)
        let again = refusal(id(3), [1], maxTokens: 1)
        #expect(empty == .emptyPrompt)
        #expect(long == .tooLong(promptTokens: 60, maxTokens: 10, maxModelLen: 64))
        #expect(big == .exceedsKVCache(positions: 20, blocksNeeded: 5, blocksInPool: 4))
        #expect(fine == nil)
        #expect(again == .duplicateID(id(3)))
        #expect(s.waitingCount == 1)
    }

    /// KV waste: blocks are allocated as tokens arrive, so only each running request's last block
    /// is partly empty.
    @Test func kvWasteIsTheEmptySlotsOfLastBlocks() throws {
        var s = makeScheduler(blocks: 64, blockSize: 4, budget: 256, prefixCaching: false)
        try s.add(id(0), prompt: Array(1...5), stop: StopConditions(maxTokens: 10))  // 5 of 8 slots after the prefill
        try s.add(id(1), prompt: Array(1...8), stop: StopConditions(maxTokens: 10))  // 8 of 8
        #expect(s.kvWaste == 0, "nothing running yet")
        step(&s)
        #expect(s.kvWaste == 3.0 / 16.0)
        step(&s)  // each computes one more token: 6 of 8, 9 of 12
        #expect(s.kvWaste == 5.0 / 20.0)
    }
}
