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
/// A job is sized to its work: it offers `participants - 1` helper slots, and only workers that
/// take one (one atomic decrement each, no compare-and-swap loop that 15 spinning workers would
/// fight over) take part; the caller wakes at most that many sleepers, never waits for a worker
/// that took no slot (it takes back the slots left once it has run out of pieces), and yields
/// while it waits for those that did. On a 128-core host a small product involves a few threads,
/// not all of them; a job that asked for 4 of 16 no longer waits for the other 11 to wake.
///
/// Workers spin on the generation for 2 ms after each job (the next product follows within
/// microseconds), then sleep on a semaphore, so an idle process uses no CPU.
/// One job runs at a time; a caller that finds the pool busy (another forward pass on another
/// thread) runs its job on its own thread instead of waiting.
final class WorkerPool: @unchecked Sendable {  // job fields are written before `slots` is published and read after a slot is taken
    static let shared = WorkerPool(workers: max(0, ProcessInfo.processInfo.activeProcessorCount - 1))

    let workerCount: Int
    /// Bumped for every job; workers watch it.
    private let generation = Atomic<Int>(0)
    /// Helper slots of the current job still free. A worker that takes one (the value it
    /// decremented was positive) works on the job whose slots it took: that job's caller cannot
    /// finish, nor post another, before the worker is done, so the fields it reads are that job's.
    /// Below zero after the job's slots are gone (harmless: the next job stores its own count).
    private let slots = Atomic<Int>(0)
    private let nextPiece = Atomic<Int>(0)
    /// Helpers that took a slot and are still working, plus the slots not yet taken back.
    private let unfinished = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let wake = DispatchSemaphore(value: 0)
    private var body: ((Int) -> Void)?
    private var pieces = 0
    /// How long a worker spins after a job before it sleeps. Long enough to span the serial
    /// steps between two products of a forward pass (a transpose, a norm, RoPE: up to a few
    /// hundred microseconds in a prefill): a worker that sleeps there wakes late for the next
    /// product — on a VM a sleeping vCPU takes tens of microseconds to wake — and the caller then
    /// waits on the piece it took. Measured here: 20,000 spins (~15 µs) cost the 2-thread prefill
    /// of the demo model 10–20 %.
    private static let spinNanoseconds: UInt64 = 2_000_000

    init(workers: Int) {
        workerCount = workers
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
            slots.store(helpers, ordering: .releasing)
            generation.add(1, ordering: .sequentiallyConsistent)
            let asleep = sleepers.load(ordering: .sequentiallyConsistent)
            for _ in 0..<min(asleep, helpers) { wake.signal() }
            drain(body)
            // Out of pieces: take back the slots no worker took, and wait for those that did.
            let left = slots.exchange(0, ordering: .acquiringAndReleasing)
            if left > 0 { unfinished.subtract(left, ordering: .relaxed) }
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

    private func workerLoop(_ index: Int) {
        // The generation this worker last saw.
        var seen = 0
        while true {
            var spins = 0
            var since: UInt64 = 0
            while true {
                let current = generation.load(ordering: .acquiring)
                if current != seen {
                    seen = current
                    if slots.subtract(1, ordering: .acquiringAndReleasing).oldValue > 0 {
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
                // Dekker with `run`: it bumps the generation then reads `sleepers`; we count
                // ourselves then re-read the generation, so one of us sees the other.
                sleepers.add(1, ordering: .sequentiallyConsistent)
                if generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                since = 0
            }
        }
    }
}
