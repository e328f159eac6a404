import Collections
import ModelCore

/// Limits of one scheduler step and of a request (vLLM's scheduler config).
public struct SchedulerConfig: Sendable, Equatable {
    /// Requests running at once at most (`--max-num-seqs`).
    public var maxNumSeqs: Int
    /// Tokens computed in one step at most, prefill chunks and decodes together
    /// (`--max-num-batched-tokens`); a longer prompt is prefilled over several steps.
    public var maxNumBatchedTokens: Int
    /// Prompt plus output at most (`--max-model-len`).
    public var maxModelLen: Int

    public init(maxNumSeqs: Int = 256, maxNumBatchedTokens: Int = 2048, maxModelLen: Int) {
        precondition(maxNumSeqs > 0 && maxNumBatchedTokens > 0 && maxModelLen > 0)
        self.maxNumSeqs = maxNumSeqs
        self.maxNumBatchedTokens = maxNumBatchedTokens
        self.maxModelLen = maxModelLen
    }
}

/// Counters of what the scheduler did (the engine's share of vLLM's metrics).
public struct SchedulerCounters: Sendable, Equatable {
    public var preemptions = 0
    /// Tokens looked up in the prefix cache, and how many of them were found (per admission).
    public var prefixCacheQueries = 0
    public var prefixCacheHits = 0
    /// Prompt tokens of requests whose prefill finished (each request once), and tokens generated.
    public var promptTokens = 0
    public var generationTokens = 0
    /// Tokens computed by steps (prefill chunks, recomputation after preemption, decodes).
    public var computedTokens = 0
    public var finished: [FinishReason: Int] = [:]

    public init() {}
}

/// One request's part of a step: compute `tokens` at positions `start...`, keys and values into
/// `blockTable`; when `wantsLogits`, sample its next token from the last one's logits.
public struct ScheduledChunk: Sendable, Equatable {
    public var id: RequestKey
    public var tokens: [Int]
    public var start: Int
    public var blockTable: [BlockID]
    public var wantsLogits: Bool
}

/// What a step's results did to a request.
public enum RequestEvent: Sendable, Equatable {
    /// A new token to return.
    case token(RequestKey, Int)
    /// The request ended (after its last `.token`).
    case finished(RequestKey, FinishReason)
}

/// Why a request cannot be admitted at all.
public enum AdmissionError: Error, Sendable, Equatable, CustomStringConvertible {
    case emptyPrompt
    case tooLong(promptTokens: Int, maxTokens: Int, maxModelLen: Int)
    case exceedsKVCache(positions: Int, blocksNeeded: Int, blocksInPool: Int)
    case duplicateID(RequestKey)

    public var description: String {
        switch self {
        case .emptyPrompt:
            return "the prompt has no tokens"
        case .tooLong(let p, let m, let limit):
            return m == 0 || p >= limit
                ? "the prompt is \(p) tokens; this model's context (max-model-len) is \(limit) tokens"
                : "the prompt (\(p) tokens) plus max_tokens (\(m)) is more than this model's context (max-model-len \(limit))"
        case .exceedsKVCache(let positions, let need, let pool):
            return "\(positions) positions need \(need) KV blocks; the KV cache holds \(pool) (raise --kv-cache-memory)"
        case .duplicateID(let id):
            return "request id \(id) is already in use"
        }
    }
}

/// Continuous batching with paged KV, after vLLM v1's scheduler: each step first continues the
/// running requests (a decode token each, or the next chunk of a long prompt), then admits
/// waiting requests in arrival order while the token budget, `maxNumSeqs` and free blocks allow.
/// When a running request needs a block and none is free, the newest running request is
/// preempted: its blocks go back and it waits at the front of the queue, to be recomputed (its
/// prompt and the tokens it already generated) when blocks free up, giving the same output.
///
/// Pure state: `schedule` says what to compute; the caller runs the step and passes what it
/// sampled to `commit`. Between the two, nothing else may change the scheduler.
public struct Scheduler: Sendable {
    public let config: SchedulerConfig
    public private(set) var kv: KVCacheManager
    public private(set) var counters = SchedulerCounters()
    private var requests: [RequestKey: RequestState] = [:]
    private var waiting: Deque<RequestKey> = []
    private var running: [RequestKey] = []
    /// The chunks `schedule` handed out and `commit` has not yet taken.
    private var inFlight: [ScheduledChunk] = []

    public init(config: SchedulerConfig, kv: KVCacheManager) {
        self.config = config
        self.kv = kv
    }

    public var waitingCount: Int { waiting.count }
    public var runningCount: Int { running.count }
    public var hasWork: Bool { !waiting.isEmpty || !running.isEmpty }
    /// KV slots of the running requests' blocks that hold no token yet, as a share of all their
    /// slots (vLLM's "KV waste": with blocks allocated as tokens arrive, only each sequence's
    /// last block is partly empty).
    public var kvWaste: Double {
        var allocated = 0, used = 0
        // A step in flight fills its chunks' slots: they count as used.
        let filling = Dictionary(inFlight.map { ($0.id, $0.start + $0.tokens.count) }, uniquingKeysWith: max)
        for id in running {
            guard let r = requests[id] else { continue }
            allocated += r.blockTable.count * kv.blockSize
            used += min(filling[id] ?? r.computed, r.blockTable.count * kv.blockSize)
        }
        return allocated == 0 ? 0 : Double(allocated - used) / Double(allocated)
    }
    public func preemptions(of id: RequestKey) -> Int? { requests[id]?.preemptions }
    public func output(of id: RequestKey) -> [Int]? { requests[id]?.output }

    /// Queues a request; refuses one that could never run.
    public mutating func add(_ id: RequestKey, prompt: [Int], stop: StopConditions) throws(AdmissionError) {
        guard requests[id] == nil else { throw .duplicateID(id) }
        guard !prompt.isEmpty else { throw .emptyPrompt }
        guard prompt.count < config.maxModelLen, stop.maxTokens >= 1, prompt.count + stop.maxTokens <= config.maxModelLen else {
            throw .tooLong(promptTokens: prompt.count, maxTokens: stop.maxTokens, maxModelLen: config.maxModelLen)
        }
        let positions = prompt.count + stop.maxTokens
        let need = BlockPool.blocksNeeded(positions: positions, blockSize: kv.blockSize)
        guard need <= kv.pool.blockCount else { throw .exceedsKVCache(positions: positions, blocksNeeded: need, blocksInPool: kv.pool.blockCount) }
        requests[id] = RequestState(id: id, prompt: prompt, stop: stop, maxLength: positions)
        waiting.append(id)
    }

    /// The next step's work (empty when there is none).
    public mutating func schedule() -> [ScheduledChunk] {
        precondition(inFlight.isEmpty, "schedule() again before commit()")
        var budget = config.maxNumBatchedTokens
        var chunks: [ScheduledChunk] = []
        var preempted = false
        var i = 0
        while i < running.count, budget > 0 {
            let id = running[i]
            let n = min(requests[id]!.tokenCount - requests[id]!.computed, budget)
            var scheduled = true
            while !grow(id, to: requests[id]!.computed + n) {
                let victim = running.last!
                preempt(victim)
                preempted = true
                if victim == id {
                    scheduled = false
                    break
                }
            }
            guard scheduled else { break }  // it was the newest: nothing after it runs
            chunks.append(chunk(id, n))
            budget -= n
            i += 1
        }
        // vLLM admits nothing in a step that had to preempt: the blocks are short.
        while !preempted, let id = waiting.first, running.count < config.maxNumSeqs, budget > 0 {
            guard let n = admit(id, budget: budget) else { break }
            waiting.removeFirst()
            running.append(id)
            chunks.append(chunk(id, n))
            budget -= n
        }
        inFlight = chunks
        return chunks
    }

    /// Takes the results of the step `schedule` returned: `sampled` has a token for each chunk
    /// that wanted logits. Returns the tokens and endings to report, in chunk order.
    public mutating func commit(sampled: [RequestKey: Int]) -> [RequestEvent] {
        var events: [RequestEvent] = []
        let chunks = inFlight
        inFlight = []
        for c in chunks {
            guard var r = requests[c.id], r.status == .running else { continue }
            r.computed = c.start + c.tokens.count
            counters.computedTokens += c.tokens.count
            // Only when a block has just filled (every blockSize tokens, not every step).
            if kv.enablePrefixCaching, r.computed / kv.blockSize > r.chain.count {
                kv.cacheFullBlocks(tokens: r.tokens(0..<r.computed), blockTable: r.blockTable, chain: &r.chain)
            }
            requests[c.id] = r
            guard c.wantsLogits, let token = sampled[c.id] else { continue }
            if r.output.isEmpty { counters.promptTokens += r.prompt.count }
            r.output.append(token)
            counters.generationTokens += 1
            requests[c.id] = r
            if r.stop.stopTokenIDs.contains(token) && !r.stop.ignoreEOS {
                finish(c.id, .stop)
                events.append(.finished(c.id, .stop))
                continue
            }
            events.append(.token(c.id, token))
            if r.output.count >= r.stop.maxTokens || r.tokenCount >= r.maxLength {
                finish(c.id, .length)
                events.append(.finished(c.id, .length))
            }
        }
        return events
    }

    /// Ends a request at once, wherever it is (its blocks go back). Only between steps: a step's
    /// blocks must not change under it.
    public mutating func abort(_ id: RequestKey) -> Bool {
        precondition(inFlight.isEmpty, "abort() during a step")
        guard let r = requests[id], r.status != .finished(.abort) else { return false }
        if r.status == .waiting, let k = waiting.firstIndex(of: id) { waiting.remove(at: k) }
        finish(id, .abort)
        return true
    }

    // MARK: internals

    private func chunk(_ id: RequestKey, _ n: Int) -> ScheduledChunk {
        let r = requests[id]!
        return ScheduledChunk(id: id, tokens: r.tokens(r.computed..<(r.computed + n)), start: r.computed,
                              blockTable: r.blockTable, wantsLogits: r.computed + n == r.tokenCount)
    }

    /// Blocks for positions 0..<positions; false (nothing taken) if there are not enough.
    private mutating func grow(_ id: RequestKey, to positions: Int) -> Bool {
        let need = BlockPool.blocksNeeded(positions: positions, blockSize: kv.blockSize) - requests[id]!.blockTable.count
        guard need > 0 else { return true }
        guard let fresh = kv.allocate(need) else { return false }
        requests[id]!.blockTable += fresh
        return true
    }

    /// Gives a waiting request its cached prefix and the blocks of its first chunk; returns the
    /// chunk's length, or nil (nothing held) when the blocks are not there.
    private mutating func admit(_ id: RequestKey, budget: Int) -> Int? {
        var r = requests[id]!
        var (hits, chain) = kv.lookup(r.tokens)
        // At least one token is computed: its logits give the next token.
        while !hits.isEmpty, hits.count * kv.blockSize >= r.tokenCount {
            hits.removeLast()
            chain.removeLast()
        }
        let start = hits.count * kv.blockSize
        let n = min(r.tokenCount - start, budget)
        let need = BlockPool.blocksNeeded(positions: start + n, blockSize: kv.blockSize) - hits.count
        kv.acquire(hits)  // before allocating, which could otherwise evict them
        guard let fresh = kv.allocate(need) else {
            kv.release(hits)
            return nil
        }
        if kv.enablePrefixCaching {
            counters.prefixCacheQueries += r.tokenCount
            counters.prefixCacheHits += start
        }
        r.blockTable = hits + fresh
        r.chain = chain
        r.computed = start
        r.status = .running
        requests[id] = r
        return n
    }

    /// Sends the newest running request back to the front of the queue, to be recomputed.
    private mutating func preempt(_ id: RequestKey) {
        kv.release(requests[id]!.blockTable)
        requests[id]!.blockTable = []
        requests[id]!.chain = []
        requests[id]!.computed = 0
        requests[id]!.status = .waiting
        requests[id]!.preemptions += 1
        counters.preemptions += 1
        running.removeAll { $0 == id }
        waiting.prepend(id)
    }

    private mutating func finish(_ id: RequestKey, _ reason: FinishReason) {
        guard let r = requests.removeValue(forKey: id) else { return }
        kv.release(r.blockTable)
        running.removeAll { $0 == id }
        counters.finished[reason, default: 0] += 1
    }
}
