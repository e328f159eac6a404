import Testing

@testable import ModelCore

/// The block pool's bookkeeping, without memory or I/O.
struct BlockPoolTests {
    /// `count` blocks, which the test needs to get.
    func take(_ pool: inout BlockPool, _ count: Int) -> [BlockID] {
        let blocks = pool.allocate(count)
        #expect(blocks != nil, "\(count) blocks of \(pool.freeCount) free")
        return blocks ?? []
    }

    @Test func allocatesOnlyFreeBlocksAllOrNothing() {
        var pool = BlockPool(blockCount: 8, blockSize: 16)
        let a = take(&pool, 3), b = take(&pool, 5)
        #expect(Set(a).isDisjoint(with: b))
        #expect(Set(a + b) == Set((0..<8).map { BlockID($0) }))
        #expect(pool.freeCount == 0 && pool.usage == 1)
        #expect(pool.allocate(1) == nil, "none free")
        pool.release(a)
        #expect(pool.allocate(4) == nil, "3 free: a request for 4 takes nothing")
        #expect(pool.freeCount == 3)
        let c = take(&pool, 3)
        #expect(Set(c) == Set(a))
        #expect(pool.allocate(0) == [])
    }

    @Test func sharedBlocksAreFreeOnlyAfterTheirLastHolder() {
        var pool = BlockPool(blockCount: 4, blockSize: 4)
        let prefix = take(&pool, 2)
        pool.retain(prefix)  // a second sequence shares the prompt's blocks
        #expect(prefix.allSatisfy { pool.holderCount($0) == 2 })
        pool.release(prefix)
        #expect(pool.freeCount == 2, "still held by the second sequence")
        #expect(pool.usage == 0.5)
        pool.release(prefix)
        #expect(pool.freeCount == 4)
        #expect(prefix.allSatisfy { pool.holderCount($0) == 0 })
    }

    @Test func reusesTheMostRecentlyFreedBlockFirst() {
        var pool = BlockPool(blockCount: 4, blockSize: 4)
        let all = take(&pool, 4)
        pool.release([all[2]])
        pool.release([all[0]])
        #expect(pool.allocate(1) == [all[0]])
    }

    @Test func countsBlocksForPositions() {
        #expect(BlockPool.blocksNeeded(positions: 0, blockSize: 16) == 0)
        #expect(BlockPool.blocksNeeded(positions: 1, blockSize: 16) == 1)
        #expect(BlockPool.blocksNeeded(positions: 16, blockSize: 16) == 1)
        #expect(BlockPool.blocksNeeded(positions: 17, blockSize: 16) == 2)
    }
}
