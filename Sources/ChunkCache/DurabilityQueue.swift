import CLinux
import Dispatch
import Foundation
import ObjectStore
import Synchronization

/// Group commit for fetched chunks: one `fdatasync` per data file per batch, then the chunks'
/// log records, on a thread of its own (a blocking sync must never occupy the few threads of
/// Swift's cooperative pool). A record is appended only after its data is durable.
final class DurabilityQueue: Sendable {
    struct Item: @unchecked Sendable {  // the entry is only used for its fds, which outlive the item (it holds the entry)
        let entry: CacheEntry
        let chunk: Int
        let crc: UInt32
        let epoch: Int
        let done: @Sendable (Bool) -> Void
    }

    private let queue = DispatchQueue(label: "weightfs.cache.durability")
    /// Starts writeback of each chunk as it completes; may block briefly on a busy disk, so not
    /// on the durability queue (which would delay the syncs) nor the cooperative pool.
    private let writeback = DispatchQueue(label: "weightfs.cache.writeback")
    private let pending = Mutex<(items: [Item], scheduled: Bool)>(([], false))

    /// Queues a chunk whose bytes are written; `done(true)` runs once its record is durable-ordered
    /// after the data (`false` if the sync failed: the chunk is right but will not survive a crash).
    /// The chunk's writeback starts at once (`sync_file_range`), so the group `fdatasync` that
    /// follows finds little left to write.
    func commit(_ entry: CacheEntry, chunk: Int, range: ByteRange, crc: UInt32, done: @escaping @Sendable (Bool) -> Void) {
        let item = Item(entry: entry, chunk: chunk, crc: crc, epoch: entry.epoch.load(ordering: .sequentiallyConsistent), done: done)
        let fd = entry.dataFD
        writeback.async { withExtendedLifetime(item) { _ = wfs_start_writeback(fd, range.lowerBound, range.count) } }
        let schedule = pending.withLock { state -> Bool in
            state.items.append(item)
            if state.scheduled { return false }
            state.scheduled = true
            return true
        }
        if schedule { queue.async { self.drain() } }
    }

    /// Empties `entry`'s chunk log after every append already taken off the queue; records
    /// committed before the entry's `reset` and not yet appended are dropped (epoch check).
    func truncate(_ entry: CacheEntry) {
        let holder = EntryHolder(entry: entry)
        queue.async { _ = ftruncate(holder.entry.logFD, 0) }
    }

    /// Returns once everything committed before the call is synced and recorded.
    func flush() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in queue.async { c.resume() } }
    }

    private func drain() {
        while true {
            let items = pending.withLock { state -> [Item] in
                let taken = state.items
                state.items = []
                if taken.isEmpty { state.scheduled = false }
                return taken
            }
            if items.isEmpty { return }
            var synced: [ObjectIdentifier: Bool] = [:]
            for item in items where synced[ObjectIdentifier(item.entry)] == nil {
                synced[ObjectIdentifier(item.entry)] = fdatasync(item.entry.dataFD) == 0
            }
            for item in items {
                var ok = synced[ObjectIdentifier(item.entry)] ?? false
                // A chunk of an entry reset since its commit: its bytes are not to be trusted.
                let current = item.entry.epoch.load(ordering: .sequentiallyConsistent) == item.epoch
                if ok && current { ok = (try? item.entry.appendRecord(item.chunk, crc: item.crc)) != nil }
                item.done(ok)
            }
        }
    }
}

/// Re-reads recovered chunks against their logged CRC32C on Dispatch threads, never on the few
/// threads of Swift's cooperative pool (an 8 MiB read can block for milliseconds).
final class VerificationQueue: Sendable {
    static let shared = VerificationQueue()
    private let queue = DispatchQueue(label: "weightfs.cache.verify", attributes: .concurrent)

    func verify(fd: Int32, range: ByteRange, crc: UInt32) async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            queue.async { c.resume(returning: CacheEntry.verify(fd: fd, range: range, crc: crc)) }
        }
    }
}
