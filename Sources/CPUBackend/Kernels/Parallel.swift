import ModelCore
import Dispatch
import Foundation
import Synchronization

/// A raw pointer that may cross into worker closures.
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
    /// and runs `body` on them over up to `threads` workers. Work below `minWorkPerThread` units
    /// per worker runs inline: even a spinning pool's hand-off would cost more than it saves.
    static func forRanges(_ count: Int, threads: Int, granularity: Int = 1, costPerItem: Int = 1,
                          _ body: @Sendable (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let minWorkPerThread = 16_384  // multiply-adds
        let units = (count + granularity - 1) / granularity
        let workers = min(threads, max(1, count * costPerItem / minWorkPerThread), units)
        if workers <= 1 {
            body(0..<count)
            return
        }
        // Guided pieces: each takes 1/(2·workers) of what is left, so they shrink toward the end
        // and the workers finish together (equal eighths left one idle for half a piece at the
        // end of every product, ~7 % of a 2-thread prefill); several per worker also even out a
        // worker that gets descheduled on a shared machine.
        var bounds = [0]
        var left = units
        while left > 0 {
            let take = max(1, (left + 2 * workers - 1) / (2 * workers))
            bounds.append(bounds[bounds.count - 1] + take)
            left -= take
        }
        let cuts = bounds
        WorkerPool.shared.run(pieces: cuts.count - 1, participants: workers) { c in
            let lo = cuts[c] * granularity
            let hi = min(count, cuts[c + 1] * granularity)
            if lo < hi { body(lo..<hi) }
        }
    }
}

/// Persistent worker threads for the kernels, as ggml keeps its own: a forward pass hands out
/// hundreds of small jobs per token, and waking Dispatch threads for each (tens of
/// microseconds) would cost a decode step a large share of its time.
///
/// A job is sized to its work: it asks for `participants - 1` helpers, and only that many
/// workers take part (each claims one of the job's helper slots); the caller wakes at most that
/// many sleepers, never waits for a worker that did not claim a slot (it withdraws the slots
/// left unclaimed once it has run out of pieces), and yields while it waits for the claimed ones.
/// On a 128-core host a small product therefore involves a few threads, not all of them.
///
/// Workers spin on the job word for 2 ms after each job (the next product follows within
/// microseconds), then sleep on a semaphore, so an idle process uses no CPU.
/// One job runs at a time; a caller that finds the pool busy (another forward pass on another
/// thread) runs its job on its own thread instead of waiting.
final class WorkerPool: @unchecked Sendable {  // job fields are written before `job` is published and read after a slot is claimed
    static let shared = WorkerPool(workers: max(0, ProcessInfo.processInfo.activeProcessorCount - 1))

    let workerCount: Int
    /// The current job: its generation (high bits) and its helper slots still unclaimed (low 16
    /// bits). A worker that claims a slot works on that job; the caller cannot post the next one
    /// before every claimed worker has finished, so the job fields it reads are that job's.
    private let job = Atomic<Int>(0)
    private let nextPiece = Atomic<Int>(0)
    /// Claimed helpers still working, plus the slots not yet claimed or withdrawn.
    private let unfinished = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let wake = DispatchSemaphore(value: 0)
    private var body: ((Int) -> Void)?
    private var pieces = 0
    private static let slotBits = 16
    private static let slotMask = (1 << slotBits) - 1
    /// How long a worker spins after a job before it sleeps. Long enough to span the serial
    /// steps between two products of a forward pass (a transpose, a norm, RoPE: up to a few
    /// hundred microseconds in a prefill): a worker that sleeps there wakes late for the next
    /// product — on a VM a sleeping vCPU takes tens of microseconds to wake — and the caller then
    /// waits on the piece it took. Measured here: 20,000 spins (~15 µs) cost the 2-thread prefill
    /// of the demo model 10–20 %.
    private static let spinNanoseconds: UInt64 = 2_000_000

    init(workers: Int) {
        workerCount = min(workers, Self.slotMask)
        for index in 0..<workerCount {
            let thread = Thread { [unowned self] in self.workerLoop(index) }
            thread.name = "weightfs.kernel.\(index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs `body(0..<pieces)` across the calling thread and up to `participants - 1` workers;
    /// returns when every piece is done.
    func run(pieces: Int, participants: Int, _ body: (Int) -> Void) {
        let helpers = min(participants - 1, workerCount, pieces - 1)
        guard helpers > 0, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for c in 0..<pieces { body(c) }
            return
        }
        withoutActuallyEscaping(body) { body in
            self.body = body
            self.pieces = pieces
            nextPiece.store(0, ordering: .relaxed)
            unfinished.store(helpers, ordering: .relaxed)
            let generation = (job.load(ordering: .relaxed) >> Self.slotBits) &+ 1
            job.store(generation << Self.slotBits | helpers, ordering: .sequentiallyConsistent)
            let asleep = sleepers.load(ordering: .sequentiallyConsistent)
            for _ in 0..<min(asleep, helpers) { wake.signal() }
            drain(body)
            // Out of pieces: withdraw the slots no worker has claimed, and wait for those that did.
            var current = job.load(ordering: .acquiring)
            while current & Self.slotMask > 0 {
                let (exchanged, seen) = job.compareExchange(expected: current, desired: current & ~Self.slotMask, ordering: .acquiringAndReleasing)
                if exchanged {
                    unfinished.subtract(current & Self.slotMask, ordering: .relaxed)
                    break
                }
                current = seen
            }
            var spins = 0
            while unfinished.load(ordering: .acquiring) > 0 {
                spins &+= 1
                if spins & 255 == 0 { sched_yield() }
            }
            self.body = nil
        }
        busy.store(false, ordering: .releasing)
    }

    private func drain(_ body: (Int) -> Void) {
        while true {
            let c = nextPiece.add(1, ordering: .relaxed).oldValue
            if c >= pieces { return }
            body(c)
        }
    }

    /// Tries to claim a helper slot of `current`, a job newer than the last one seen: returns
    /// the generation of the job it looked at last and whether it holds one of its slots.
    private func claim(_ current: Int) -> (generation: Int, claimed: Bool) {
        var current = current
        while current & Self.slotMask > 0 {
            let (exchanged, now) = job.compareExchange(expected: current, desired: current - 1, ordering: .acquiringAndReleasing)
            if exchanged { return (current >> Self.slotBits, true) }
            current = now
        }
        return (current >> Self.slotBits, false)
    }

    private func workerLoop(_ index: Int) {
        // The generation this worker last took part in or passed over.
        var seen = 0
        while true {
            var spins = 0
            var since: UInt64 = 0
            while true {
                let current = job.load(ordering: .acquiring)
                if current >> Self.slotBits != seen {
                    let (generation, claimed) = claim(current)
                    // Taken part in, or every slot taken or withdrawn: wait for the next job.
                    seen = generation
                    if claimed {
                        if let body { drain(body) }
                        unfinished.subtract(1, ordering: .releasing)
                        spins = 0
                        since = 0
                    }
                    continue
                }
                spins &+= 1
                if spins & 1023 != 0 { continue }
                let now = DispatchTime.now().uptimeNanoseconds
                if since == 0 { since = now }
                if now - since < Self.spinNanoseconds { continue }
                // Dekker with `run`: it publishes the job then reads `sleepers`; we count
                // ourselves then re-read the job, so one of us sees the other.
                sleepers.add(1, ordering: .sequentiallyConsistent)
                if job.load(ordering: .sequentiallyConsistent) >> Self.slotBits == seen { wake.wait() }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                since = 0
            }
        }
    }
}
