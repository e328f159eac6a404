import ObjectStore
import Dispatch
import Foundation
import Synchronization

/// How far the GETs of one in-flight chunk have written into the data file, so a reader whose
/// bytes have arrived need not wait for the rest of the chunk.
///
/// A chunk is fetched as one segment, or for a demand read as up to three (the read's part
/// first, later the rest after it and the chunk's head); each segment's bytes are delivered in
/// order, so what is written is `[start, mark)` per segment. The fetch (on the transfer thread)
/// advances the marks after each `pwrite` returns; bytes below a mark are in the data file and as
/// trustworthy as a whole chunk's: they are the pinned generation's bytes, and the chunk's CRC32C
/// and log record follow when it is whole.
final class ChunkProgress: Sendable {
    private struct Waiter {
        let range: ByteRange
        let continuation: CheckedContinuation<Bool, Error>
    }

    private struct State {
        var starts: [Int64]
        var marks: [Int64]
        var waiters: [Waiter] = []
        var finished = false

        /// Whether the written parts `[start, mark)` of the segments together cover `r`.
        func covers(_ r: ByteRange) -> Bool {
            var position = r.lowerBound
            while position < r.upperBound {
                guard let i = starts.indices.first(where: { starts[$0] <= position && position < marks[$0] }) else { return false }
                position = marks[i]
            }
            return true
        }
    }

    private let state: Mutex<State>
    /// How many readers wait: set under the lock, read without it by `wouldServeReader`, which
    /// the fetch asks after every piece of a GET.
    private let waiterCount = Atomic<Int>(0)

    /// The first segment (a demand read's own part, fetched at once).
    let first: ByteRange

    /// `segments` are the byte ranges (object offsets) the chunk's GETs will write, in any order.
    init(segments: [ByteRange]) {
        first = segments[0]
        state = Mutex(State(starts: segments.map(\.lowerBound), marks: segments.map(\.lowerBound)))
    }

    /// Called by the fetch after bytes up to `offset` of `segment` are in the data file.
    func wrote(segment: Int, upTo offset: Int64) {
        let ready = state.withLock { s -> [CheckedContinuation<Bool, Error>] in
            s.marks[segment] = max(s.marks[segment], offset)
            guard !s.waiters.isEmpty else { return [] }
            var ready: [CheckedContinuation<Bool, Error>] = [], still: [Waiter] = []
            for w in s.waiters {
                if s.covers(w.range) { ready.append(w.continuation) } else { still.append(w) }
            }
            s.waiters = still
            waiterCount.store(still.count, ordering: .relaxed)
            return ready
        }
        for c in ready { c.resume(returning: true) }
    }

    /// Whether a reader waits for bytes that `segment` written up to `offset` would give it: the
    /// fetch then writes the bytes it is gathering at once instead of when their block fills
    /// (`BlockWriter`), so a reader never waits on bytes that have arrived.
    func wouldServeReader(segment: Int, upTo offset: Int64) -> Bool {
        guard waiterCount.load(ordering: .relaxed) > 0 else { return false }
        return state.withLock { s -> Bool in
            guard offset > s.marks[segment], !s.waiters.isEmpty else { return false }
            var then = s
            then.marks[segment] = offset
            return then.waiters.contains { then.covers($0.range) }
        }
    }

    /// Returns true once `range` is written; false if the fetch ended without writing it (the
    /// chunk is then present or absent: look again); throws the fetch's error if it failed.
    func wait(for range: ByteRange) async throws -> Bool {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Bool, Error>) in
            let now = state.withLock { s -> Bool? in
                if s.covers(range) { return true }
                if s.finished { return false }
                s.waiters.append(Waiter(range: range, continuation: c))
                waiterCount.store(s.waiters.count, ordering: .relaxed)
                return nil
            }
            if let now { c.resume(returning: now) }
        }
    }

    /// The fetch is over (the actor has already marked the chunk present or absent): wakes every
    /// reader still waiting, with the error if it failed.
    func finish(error: Error? = nil) {
        let waiters = state.withLock { s -> [Waiter] in
            s.finished = true
            waiterCount.store(0, ordering: .relaxed)
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters {
            if let error { w.continuation.resume(throwing: error) } else { w.continuation.resume(returning: false) }
        }
    }
}

/// Times of one segment's GET for debug logs: first byte, end, the slowest and total `pwrite`.
/// (A `pwrite` runs on the transfer thread, so a slow one holds up every transfer.)
final class SegmentTiming: Sendable {
    private struct State {
        var firstByte: UInt64 = 0
        var slowestWrite: UInt64 = 0
        var writing: UInt64 = 0
        var writes = 0
    }

    private let start = DispatchTime.now().uptimeNanoseconds
    private let state = Mutex(State())

    func mark() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    func wrote(since t0: UInt64) {
        let now = DispatchTime.now().uptimeNanoseconds
        state.withLock {
            if $0.firstByte == 0 { $0.firstByte = t0 }
            $0.slowestWrite = max($0.slowestWrite, now - t0)
            $0.writing += now - t0
            $0.writes += 1
        }
    }

    func summary() -> String {
        let end = DispatchTime.now().uptimeNanoseconds
        return state.withLock { s in
            func ms(_ ns: UInt64) -> String { String(format: "%.1f ms", Double(ns) / 1e6) }
            return "first byte \(s.firstByte == 0 ? "-" : ms(s.firstByte - start)), done \(ms(end - start)), "
                + "\(s.writes) pwrites taking \(ms(s.writing)), slowest \(ms(s.slowestWrite))"
        }
    }
}
