import ModelCore
import Synchronization

/// What a request's stream yields.
public enum EngineOutput: Sendable, Equatable {
    /// The request left the queue: its first step is running (once; again after a preemption is
    /// not reported).
    case admitted
    case token(Int)
    case finished(FinishReason)
}

/// A failed step: the requests it carried end with this error.
public struct EngineError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Where the engine's loop spends its time, by kind of step: `decode` (every sequence of the step
/// adds one token) or `mixed` (the step also computes prompt or recomputed tokens, more than one
/// for some sequence). `/metrics` exports them as `weightfs_engine_*`; the serving benchmark
/// reads them to split a run's time between decode steps and steps carrying prefills.
public struct StepStatistics: Sendable, Equatable {
    public struct Kind: Sendable, Equatable {
        public var steps = 0
        /// Tokens the steps computed, and sequences they carried (a decode step: one token each).
        public var tokens = 0
        public var sequences = 0
        /// The backend's forward pass, and the whole loop turn around it (scheduling, sampling,
        /// streaming the tokens): `loopSeconds - forwardSeconds` is the engine's own cost.
        public var forwardSeconds = 0.0
        public var loopSeconds = 0.0
        public init() {}
    }
    public var decode = Kind()
    public var mixed = Kind()
    public init() {}
}

/// Drives a `ModelBackend` with the `Scheduler`: one batched step at a time for every running
/// request (the weights are read once per step for all of them), sampling each request's next
/// token with its own sampler, streaming tokens to each request as they come. Backend-neutral:
/// any `ModelBackend` plugs in.
///
/// A request's stream ends with `.finished`; a consumer that stops listening (a client gone)
/// aborts its request, and its blocks go back before the next step.
public actor Engine {
    public let backend: any ModelBackend
    private var scheduler: Scheduler
    private var streams: [RequestKey: AsyncThrowingStream<EngineOutput, Error>.Continuation] = [:]
    private var samplers: [RequestKey: Sampler] = [:]
    /// Aborts asked for while a step runs, applied after it.
    private var pendingAborts: Set<RequestKey> = []
    /// Requests whose consumer went away, noted at once by their stream's termination handler and
    /// applied before the next step: the hop of `abort` onto this actor may come later than that
    /// on a busy machine, after the request has generated everything it asked for.
    private let gone = GoneRequests()
    private var stepping = false
    private var loop: Task<Void, Never>?
    private var nextID = 0
    private var admitted: Set<RequestKey> = []
    /// Steps run and their batched tokens (for metrics and tests).
    public private(set) var steps = 0
    public private(set) var stepStatistics = StepStatistics()

    public init(backend: any ModelBackend, config: SchedulerConfig, enablePrefixCaching: Bool = true) {
        self.backend = backend
        scheduler = Scheduler(config: config, kv: KVCacheManager(blockCount: backend.kvBlockCount, blockSize: backend.kvBlockSize,
                                                                 enablePrefixCaching: enablePrefixCaching))
    }

    public var counters: SchedulerCounters { scheduler.counters }
    public var waitingCount: Int { scheduler.waitingCount }
    public var runningCount: Int { scheduler.runningCount }
    public var kvUsage: Double { scheduler.kv.usage }
    public var kvWaste: Double { scheduler.kvWaste }

    /// Queues a request and returns its id and stream; throws `AdmissionError` for a request
    /// that can never run (too long for the context or the KV cache, empty).
    public func submit(prompt: [Int], sampling: SamplingParameters, stop: StopConditions, id: RequestKey? = nil)
        throws(AdmissionError) -> (RequestKey, AsyncThrowingStream<EngineOutput, Error>) {
        let rid = id ?? RequestKey("req-\(nextID)")
        nextID += 1
        try scheduler.add(rid, prompt: prompt, stop: stop)
        let (stream, continuation) = AsyncThrowingStream<EngineOutput, Error>.makeStream()
        continuation.onTermination = { [weak self, gone] termination in
            guard case .cancelled = termination else { return }
            gone.insert(rid)
            // The loop applies it before its next step; an idle engine, here.
            if let self { Task { await self.abort(rid) } }
        }
        streams[rid] = continuation
        samplers[rid] = Sampler(sampling)
        startLoop()
        return (rid, stream)
    }

    /// Ends a request (its stream finishes with `.abort`); during a step, right after it.
    public func abort(_ id: RequestKey) {
        if stepping {
            pendingAborts.insert(id)
            return
        }
        if scheduler.abort(id) { end(id, .abort) }
    }

    private func startLoop() {
        guard loop == nil else { return }
        loop = Task { await self.run() }
    }

    private func run() async {
        while true {
            for id in gone.drain() where scheduler.abort(id) { end(id, .abort) }
            guard scheduler.hasWork else { break }
            let turnStart = ContinuousClock.now
            let chunks = scheduler.schedule()
            if chunks.isEmpty {
                _ = scheduler.commit(sampled: [:])
                break  // cannot happen with admitted requests; never spin
            }
            var tokens: [Int] = [], positions: [Int] = [], sequences: [Batch.Sequence] = [], logitRows: [Int] = []
            var sampledIDs: [RequestKey] = []
            for c in chunks {
                if admitted.insert(c.id).inserted { streams[c.id]?.yield(.admitted) }
                let rows = tokens.count..<(tokens.count + c.tokens.count)
                tokens += c.tokens
                positions += Array(c.start..<(c.start + c.tokens.count))
                sequences.append(Batch.Sequence(rows: rows, blockTable: c.blockTable))
                if c.wantsLogits {
                    logitRows.append(rows.upperBound - 1)
                    sampledIDs.append(c.id)
                }
            }
            stepping = true
            let forwardStart = ContinuousClock.now
            let result: Result<[Float], ModelError>
            do { result = .success(try await backend.execute(Batch(tokens: tokens, positions: positions, sequences: sequences, logitRows: logitRows))) } catch {
                result = .failure(error)
            }
            let forwardSeconds = (ContinuousClock.now - forwardStart).seconds
            stepping = false
            steps += 1
            switch result {
            case .success(let logits):
                let vocab = backend.config.vocabSize
                var sampled: [RequestKey: Int] = [:]
                logits.withUnsafeBufferPointer { all in
                    for (k, id) in sampledIDs.enumerated() {
                        sampled[id] = samplers[id]!.sample(UnsafeBufferPointer(rebasing: all[(k * vocab)..<((k + 1) * vocab)]))
                    }
                }
                for event in scheduler.commit(sampled: sampled) {
                    switch event {
                    case .token(let id, let t): streams[id]?.yield(.token(t))
                    case .finished(let id, let reason): end(id, reason)
                    }
                }
            case .failure(let error):
                _ = scheduler.commit(sampled: [:])
                for c in chunks where scheduler.abort(c.id) { fail(c.id, EngineError(message: "the forward pass failed: \(error)")) }
            }
            for id in pendingAborts where scheduler.abort(id) { end(id, .abort) }
            pendingAborts = []
            let isDecode = tokens.count == chunks.count
            var kind = isDecode ? stepStatistics.decode : stepStatistics.mixed
            kind.steps += 1
            kind.tokens += tokens.count
            kind.sequences += chunks.count
            kind.forwardSeconds += forwardSeconds
            kind.loopSeconds += (ContinuousClock.now - turnStart).seconds
            if isDecode { stepStatistics.decode = kind } else { stepStatistics.mixed = kind }
            await Task.yield()  // let submissions and aborts in between steps
        }
        loop = nil
        if scheduler.hasWork { startLoop() }
    }

    private func end(_ id: RequestKey, _ reason: FinishReason) {
        samplers[id] = nil
        admitted.remove(id)
        guard let c = streams.removeValue(forKey: id) else { return }
        c.yield(.finished(reason))
        c.finish()
    }

    private func fail(_ id: RequestKey, _ error: Error) {
        samplers[id] = nil
        admitted.remove(id)
        streams.removeValue(forKey: id)?.finish(throwing: error)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

/// Request ids noted from any thread (a stream's termination handler), taken by the engine's loop.
final class GoneRequests: Sendable {
    private let ids = Mutex<Set<RequestKey>>([])
    func insert(_ id: RequestKey) { _ = ids.withLock { $0.insert(id) } }
    func drain() -> Set<RequestKey> {
        ids.withLock { all in
            defer { all = [] }
            return all
        }
    }
}
