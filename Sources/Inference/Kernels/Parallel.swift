import Dispatch

/// A raw pointer that may cross into `concurrentPerform` closures.
///
/// `@unchecked Sendable`: the kernels hand each worker a disjoint range of the memory behind it
/// (output rows, or heads), and join all workers before the caller touches it again.
struct SendableMutablePointer<T>: @unchecked Sendable {
    let p: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { self.p = p }
}

/// Read-only counterpart of `SendableMutablePointer`; same reasoning.
struct SendablePointer<T>: @unchecked Sendable {
    let p: UnsafePointer<T>
    init(_ p: UnsafePointer<T>) { self.p = p }
    init(_ p: UnsafeMutablePointer<T>) { self.p = UnsafePointer(p) }
}

enum Parallel {
    /// Splits `0..<count` into contiguous ranges (multiples of `granularity` except the last)
    /// and runs `body` on them over up to `threads` workers. Work below `minPerThread` units
    /// per worker runs inline: spawning would cost more than it saves.
    static func forRanges(_ count: Int, threads: Int, granularity: Int = 1, costPerItem: Int = 1,
                          _ body: @Sendable (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let minWorkPerThread = 32_768  // multiply-adds
        let workers = min(threads, max(1, count * costPerItem / minWorkPerThread), (count + granularity - 1) / granularity)
        if workers <= 1 {
            body(0..<count)
            return
        }
        // A few chunks per worker even out a worker that gets descheduled on a shared machine.
        let chunks = min(workers * 4, (count + granularity - 1) / granularity)
        let units = (count + granularity - 1) / granularity
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = units * c / chunks * granularity
            let hi = min(count, units * (c + 1) / chunks * granularity)
            if lo < hi { body(lo..<hi) }
        }
    }
}
