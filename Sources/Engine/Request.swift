import ModelCore

/// A request's id, unique within an engine.
public struct RequestKey: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

/// When a request's generation ends (checked on token ids; stop strings belong to the text
/// layer above, which sees the decoded text).
public struct StopConditions: Sendable, Equatable {
    /// New tokens at most.
    public var maxTokens: Int
    /// Tokens that end the generation (the model's end of sequence / end of turn); not returned.
    public var stopTokenIDs: Set<Int>
    /// Keep going past the stop tokens (benchmarks).
    public var ignoreEOS: Bool

    public init(maxTokens: Int, stopTokenIDs: Set<Int> = [], ignoreEOS: Bool = false) {
        self.maxTokens = maxTokens
        self.stopTokenIDs = stopTokenIDs
        self.ignoreEOS = ignoreEOS
    }
}

/// Why a request ended, as OpenAI's `finish_reason` spells it.
public enum FinishReason: String, Sendable, Equatable {
    /// A stop token (or, in the layer above, a stop string).
    case stop
    /// `maxTokens`, or the model's context is full.
    case length
    /// The client went away or the server is shutting down.
    case abort
}

/// One request's state in the scheduler.
struct RequestState: Sendable {
    enum Status: Sendable, Equatable { case waiting, running, finished(FinishReason) }

    let id: RequestKey
    let prompt: [Int]
    let stop: StopConditions
    /// Positions at most (prompt plus output): the model's context or the server's limit.
    let maxLength: Int
    var output: [Int] = []
    var status: Status = .waiting
    /// Tokens whose keys and values are in `blockTable` (the rest are computed next).
    var computed = 0
    var blockTable: [BlockID] = []
    /// Content ids of the cached full blocks at the start of `blockTable` (see KVCacheManager).
    var chain: [UInt64] = []
    var preemptions = 0
    /// Whether its prompt has been looked up in the prefix cache (once per admission).
    var prefixQueried = false

    init(id: RequestKey, prompt: [Int], stop: StopConditions, maxLength: Int) {
        self.id = id
        self.prompt = prompt
        self.stop = stop
        self.maxLength = maxLength
    }

    var tokens: [Int] { prompt + output }

    /// Tokens `range` of prompt + output, without joining the two whole (a decode step needs one).
    func tokens(_ range: Range<Int>) -> [Int] {
        let p = prompt.count
        if range.upperBound <= p { return Array(prompt[range]) }
        if range.lowerBound >= p { return Array(output[(range.lowerBound - p)..<(range.upperBound - p)]) }
        return Array(prompt[range.lowerBound...]) + Array(output[..<(range.upperBound - p)])
    }
    var tokenCount: Int { prompt.count + output.count }
}
