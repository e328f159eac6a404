/// Keys and values of one sequence, for every layer, in one contiguous allocation
/// ([layer][kv head][position][head dim], so one head's history is contiguous).
///
/// A simple per-sequence cache; the paged cache (blocks from a shared pool) replaces it later.
/// Not Sendable: one sequence's forward passes use it one at a time.
public final class KVCache {
    public let layerCount: Int
    public let kvHeadCount: Int
    public let headDim: Int
    /// Positions it can hold.
    public let capacity: Int
    /// Positions 0..<count hold keys and values.
    public internal(set) var count = 0
    let keys: UnsafeMutablePointer<Float>
    let values: UnsafeMutablePointer<Float>

    public init(config: ModelConfig, capacity: Int) {
        precondition(capacity > 0)
        layerCount = config.layerCount
        kvHeadCount = config.kvHeadCount
        headDim = config.headDim
        self.capacity = capacity
        let size = layerCount * kvHeadCount * capacity * headDim
        keys = .allocate(capacity: size)
        values = .allocate(capacity: size)
        keys.initialize(repeating: 0, count: size)
        values.initialize(repeating: 0, count: size)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// Forgets every position (the memory is reused).
    public func reset() { count = 0 }

    /// Where `layer`'s key (or value) for `head` at position 0 starts.
    @inline(__always)
    func offset(layer: Int, head: Int) -> Int { (layer * kvHeadCount + head) * capacity * headDim }
}
