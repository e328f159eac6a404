import Foundation
import Testing

@testable import CPUBackend

/// The kernels' worker pool: every piece of every job runs exactly once and is done when `run`
/// returns, however many helpers a job asks for and whether or not the workers are asleep.
struct WorkerPoolTests {
    /// Pools live as long as the process (their threads never end), as the shared one does.
    static let fiveWorkers = WorkerPool(workers: 5), threeWorkers = WorkerPool(workers: 3)

    @Test func everyPieceRunsOnceBeforeRunReturns() async {
        let pool = Self.fiveWorkers
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
            return Int(seed % UInt64(n))
        }
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 64)
        defer { counts.deallocate() }
        var bad = 0
        for round in 0..<3000 {
            let pieces = 1 + next(64), participants = 1 + next(8)
            counts.initialize(repeating: 0, count: pieces)
            let shared = SendableMutablePointer(counts)
            // Now and then a pause long enough for the workers to fall asleep (2 ms of spinning).
            if round % 500 == 499 { usleep(5_000) }
            pool.run(pieces: pieces, participants: participants) { c in
                shared.p[c] += 1
                if c % 7 == 0 { usleep(10) }  // uneven pieces
            }
            if (0..<pieces).contains(where: { counts[$0] != 1 }) { bad += 1 }
        }
        #expect(bad == 0, "\(bad) jobs had a piece run other than once by the time run returned")
    }

    /// Two callers at once: the second finds the pool busy and runs its job on its own thread;
    /// both jobs are whole.
    @Test func concurrentCallersBothFinish() async {
        let pool = Self.threeWorkers
        let results = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    let counts = UnsafeMutablePointer<Int>.allocate(capacity: 32)
                    defer { counts.deallocate() }
                    var ok = true
                    for _ in 0..<500 {
                        counts.initialize(repeating: 0, count: 32)
                        let shared = SendableMutablePointer(counts)
                        pool.run(pieces: 32, participants: 4) { c in shared.p[c] += 1 }
                        ok = ok && (0..<32).allSatisfy { counts[$0] == 1 }
                    }
                    return ok
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results == [true, true])
    }
}
