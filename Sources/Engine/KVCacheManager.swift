import Collections
import ModelCore

/// The KV blocks of every request, over a `BlockPool`, with prefix caching (vLLM's
/// `KVCacheManager` and `BlockPool` together): a full block's content is known by its tokens and
/// the content of the block before it, so a request whose prompt starts with tokens another
/// request already computed takes those blocks instead of computing them again.
///
/// Guarantees:
/// - A block is reused for a prefix only when its tokens and every block before it in the chain
///   are equal to the request's, compared in full (no hash is trusted: a collision could otherwise
///   hand one request another's keys and values).
/// - A cached block nobody holds stays cached (the manager holds it) until its memory is needed:
///   then the least recently released goes first, the tail of a sequence before its prefix.
/// - Blocks return to the pool exactly once: a request's release, or eviction of a cached block.
/// Pure bookkeeping: no memory and no I/O.
public struct KVCacheManager: Sendable {
    public private(set) var pool: BlockPool
    public let enablePrefixCaching: Bool
    public var blockSize: Int { pool.blockSize }

    /// What a full block holds: its tokens after the content before it (`parent`, 0 for the first).
    struct ContentKey: Hashable, Sendable {
        var parent: UInt64
        var tokens: [Int]
    }

    /// Full blocks with known content, and each one's content id (ids are never reused, so a
    /// chain that names an evicted block's id matches nothing).
    private var cached: [ContentKey: BlockID] = [:]
    private var contentOf: [BlockID: (key: ContentKey, id: UInt64)] = [:]
    private var nextContentID: UInt64 = 1
    /// Cached blocks no request holds (the manager holds each once), least recently released first.
    private var evictable: OrderedSet<BlockID> = []

    public init(blockCount: Int, blockSize: Int, enablePrefixCaching: Bool = true) {
        pool = BlockPool(blockCount: blockCount, blockSize: blockSize)
        self.enablePrefixCaching = enablePrefixCaching
    }

    /// Blocks a request could get now (free, or cached and evictable).
    public var availableBlocks: Int { pool.freeCount + evictable.count }
    /// Blocks held by requests, as a share of all (`vllm:kv_cache_usage_perc`): cached blocks
    /// nobody holds count as free, as in vLLM.
    public var usage: Double { Double(pool.usedCount - evictable.count) / Double(pool.blockCount) }
    public var cachedBlockCount: Int { contentOf.count }

    /// The longest run of cached full blocks that `tokens` starts with, and the content id of
    /// each (the chain a request continues when it caches its next blocks). Holds nothing yet.
    public func lookup(_ tokens: [Int]) -> (blocks: [BlockID], chain: [UInt64]) {
        guard enablePrefixCaching else { return ([], []) }
        var blocks: [BlockID] = [], chain: [UInt64] = []
        var parent: UInt64 = 0
        var start = 0
        while start + blockSize <= tokens.count {
            guard let b = cached[ContentKey(parent: parent, tokens: Array(tokens[start..<(start + blockSize)]))], let c = contentOf[b] else { break }
            blocks.append(b)
            chain.append(c.id)
            parent = c.id
            start += blockSize
        }
        return (blocks, chain)
    }

    /// Takes a hold on blocks `lookup` found (a request now uses them).
    public mutating func acquire(_ blocks: [BlockID]) {
        for b in blocks {
            if evictable.remove(b) != nil { continue }  // the manager's hold becomes the request's
            pool.retain([b])
        }
    }

    /// `count` fresh blocks, evicting cached ones nobody holds if the pool runs short; nil (and
    /// nothing taken or evicted) if even that is not enough.
    public mutating func allocate(_ count: Int) -> [BlockID]? {
        guard count <= availableBlocks else { return nil }
        while pool.freeCount < count, let oldest = evictable.first {
            evictable.removeFirst()
            forget(oldest)
            pool.release([oldest])
        }
        return pool.allocate(count)
    }

    /// Drops a request's hold on its blocks, last block first: a cached block nobody else holds
    /// stays cached (evicted tail first), any other is free again.
    public mutating func release(_ blockTable: [BlockID]) {
        for b in blockTable.reversed() {
            if contentOf[b] != nil, pool.holderCount(b) == 1 {
                evictable.append(b)
            } else {
                pool.release([b])
            }
        }
    }

    /// Records the content of a request's newly filled blocks: `tokens` are its tokens whose
    /// keys and values are in `blockTable`, `chain` the content ids of its blocks cached so far
    /// (extended here). A block whose content another block already has stays uncached (the
    /// chain continues through the other).
    public mutating func cacheFullBlocks(tokens: [Int], blockTable: [BlockID], chain: inout [UInt64]) {
        guard enablePrefixCaching else { return }
        let full = min(tokens.count / blockSize, blockTable.count)
        while chain.count < full {
            let k = chain.count
            let key = ContentKey(parent: k == 0 ? 0 : chain[k - 1], tokens: Array(tokens[(k * blockSize)..<((k + 1) * blockSize)]))
            if let existing = cached[key], let c = contentOf[existing] {
                chain.append(c.id)
                continue
            }
            let b = blockTable[k]
            if let old = contentOf[b] { cached[old.key] = nil }  // cannot happen for a block in use; kept exact
            let id = nextContentID
            nextContentID += 1
            cached[key] = b
            contentOf[b] = (key, id)
            chain.append(id)
        }
    }

    private mutating func forget(_ block: BlockID) {
        if let c = contentOf.removeValue(forKey: block) { cached[c.key] = nil }
    }

    /// Forgets every cached block nobody holds (e.g. after the weights change).
    public mutating func resetPrefixCache() {
        while let b = evictable.first {
            evictable.removeFirst()
            forget(b)
            pool.release([b])
        }
    }
}
