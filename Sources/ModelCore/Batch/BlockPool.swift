/// One block of a backend's KV memory: `blockSize` consecutive positions of one sequence, for
/// every layer and key/value head. The scheduler sees only these ids; the backend owns the memory.
public struct BlockID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(_ rawValue: Int32) { self.rawValue = rawValue }
    public init(_ index: Int) { self.rawValue = Int32(index) }
    public var index: Int { Int(rawValue) }
    public static func < (a: BlockID, b: BlockID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "block \(rawValue)" }
}

/// Which blocks of a KV pool are in use, and by how many sequences (a shared prompt prefix is
/// held by several). Pure bookkeeping, no memory and no I/O: what vLLM's `BlockPool` is to its
/// KV cache manager.
///
/// Guarantees: `allocate` hands out only free blocks, all of the request or none; a block
/// returns to the free list exactly when its last holder releases it; releasing a block
/// nobody holds is a programming error (trap), never a silent double free.
public struct BlockPool: Sendable {
    public let blockCount: Int
    /// Positions per block.
    public let blockSize: Int
    /// Free blocks; the most recently freed is reused first (its memory is warm).
    private var free: [BlockID]
    private var holders: [Int32]

    public init(blockCount: Int, blockSize: Int) {
        precondition(blockCount > 0 && blockSize > 0, "a pool needs at least one block of at least one position")
        self.blockCount = blockCount
        self.blockSize = blockSize
        free = (0..<blockCount).reversed().map { BlockID($0) }
        holders = Array(repeating: 0, count: blockCount)
    }

    public var freeCount: Int { free.count }
    public var usedCount: Int { blockCount - free.count }
    /// The share of blocks in use, 0...1 (`vllm:kv_cache_usage_perc`).
    public var usage: Double { Double(usedCount) / Double(blockCount) }

    /// Blocks that hold `positions` positions.
    public static func blocksNeeded(positions: Int, blockSize: Int) -> Int { (positions + blockSize - 1) / blockSize }

    public func holderCount(_ block: BlockID) -> Int { Int(holders[block.index]) }

    /// `count` free blocks, each now held once; nil (nothing taken) when fewer are free.
    public mutating func allocate(_ count: Int) -> [BlockID]? {
        guard count >= 0, count <= free.count else { return nil }
        let taken = Array(free.suffix(count).reversed())
        free.removeLast(count)
        for b in taken { holders[b.index] = 1 }
        return taken
    }

    /// Another holder for blocks already in use (a sequence sharing a cached prefix).
    public mutating func retain(_ blocks: [BlockID]) {
        for b in blocks {
            precondition(holders[b.index] > 0, "retain of \(b), which is free")
            holders[b.index] += 1
        }
    }

    /// Drops one holder of each block; a block nobody holds any more is free again.
    public mutating func release(_ blocks: [BlockID]) {
        for b in blocks {
            precondition(holders[b.index] > 0, "release of \(b), which is already free")
            holders[b.index] -= 1
            if holders[b.index] == 0 { free.append(b) }
        }
    }
}
