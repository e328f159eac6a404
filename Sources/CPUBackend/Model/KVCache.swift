import ModelCore

/// The CPU backend's KV memory: `blockCount` blocks of `blockSize` positions, for every layer
/// and key/value head, keys and values apart, laid out [layer][block][kv head][slot][head dim] so
/// one head's positions within a block are contiguous (attention reads them as one run).
///
/// Not zero-filled: attention reads only positions a step has written. `@unchecked Sendable`:
/// written only by forward passes, which must not run at once over the same blocks (the
/// `ModelBackend.execute` contract); the pointers live as long as `self`.
public final class KVMemory: @unchecked Sendable {
    public let layerCount: Int
    public let kvHeadCount: Int
    public let headDim: Int
    public let blockSize: Int
    public let blockCount: Int
    let keys: UnsafeMutablePointer<Float>
    let values: UnsafeMutablePointer<Float>

    public init(config: ModelConfig, blockCount: Int, blockSize: Int) {
        precondition(blockCount > 0 && blockSize > 0)
        layerCount = config.layerCount
        kvHeadCount = config.kvHeadCount
        headDim = config.headDim
        self.blockSize = blockSize
        self.blockCount = blockCount
        let size = layerCount * blockCount * kvHeadCount * blockSize * headDim
        keys = .allocate(capacity: size)
        values = .allocate(capacity: size)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// Bytes of keys and values together.
    public var byteCount: Int { 2 * layerCount * blockCount * kvHeadCount * blockSize * headDim * MemoryLayout<Float>.size }

    /// Where `layer`'s keys (or values) of `head` in `block` start (slot 0).
    @inline(__always)
    func offset(layer: Int, block: Int, head: Int) -> Int {
        ((layer &* blockCount &+ block) &* kvHeadCount &+ head) &* blockSize &* headDim
    }
}

/// One sequence's keys and values on its own: KV memory of just enough blocks for `capacity`
/// positions and the block table that lists them in order (what `generate` and the tests use;
/// `serve` shares one pool between sequences through a `BlockPool`).
/// Not Sendable: one sequence's forward passes use it one at a time.
public final class KVCache {
    /// Positions it can hold.
    public let capacity: Int
    /// Positions 0..<count hold keys and values.
    public internal(set) var count = 0
    let memory: KVMemory
    let blockTable: [BlockID]

    public init(config: ModelConfig, capacity: Int, blockSize: Int = 16) {
        precondition(capacity > 0)
        self.capacity = capacity
        let blocks = BlockPool.blocksNeeded(positions: capacity, blockSize: blockSize)
        memory = KVMemory(config: config, blockCount: blocks, blockSize: blockSize)
        blockTable = (0..<blocks).map { BlockID($0) }
    }

    /// Forgets every position (the memory is reused).
    public func reset() { count = 0 }
}
