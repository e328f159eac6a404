import Synchronization

/// Which chunks of a cache entry are present, readable without the actor: the mount's FUSE
/// threads serve reads of present ranges straight from the mapped data file with no hop. The
/// actor is the only writer (it sets a bit after the chunk is complete and clears it when the
/// chunk is dropped); one bit per chunk.
public final class ChunkPresence: Sendable {
    private let words: Mutex<[UInt64]>

    init(chunkCount: Int) {
        words = Mutex([UInt64](repeating: 0, count: (chunkCount + 63) / 64))
    }

    /// Whether every chunk in `chunks` is present.
    public func contains(_ chunks: Range<Int>) -> Bool {
        words.withLock { w in chunks.allSatisfy { w[$0 >> 6] & (1 << UInt64($0 & 63)) != 0 } }
    }

    func insert(_ chunk: Int) { words.withLock { $0[chunk >> 6] |= 1 << UInt64(chunk & 63) } }
    func remove(_ chunk: Int) { words.withLock { $0[chunk >> 6] &= ~(1 << UInt64(chunk & 63)) } }
    func removeAll() { words.withLock { for i in $0.indices { $0[i] = 0 } } }
}
