import Fetcher
import Foundation
import Logging
import ObjectStore
import Posix
import SystemPackage

/// An object opened in the cache: read its bytes from `dataPath` (pread or mmap) once
/// `ChunkCache.ensure` says they are present. Pinned against eviction until closed.
public struct CachedObject: Sendable, Hashable {
    public let key: CacheKey
    public let info: ObjectInfo
    public let dataPath: String
    public let chunkSize: Int64
    /// Which chunks are present now, readable from any thread.
    public let presence: ChunkPresence

    /// Whether every byte of `range` is present now (then it can be read at once, no `ensure`).
    public func isPresent(_ range: ByteRange) -> Bool {
        presence.contains(chunkIndices(covering: range, chunkSize: chunkSize))
    }

    public static func == (a: CachedObject, b: CachedObject) -> Bool { a.key == b.key && a.dataPath == b.dataPath }
    public func hash(into h: inout Hasher) { h.combine(key); h.combine(dataPath) }
}

/// Counters for progress and summaries.
public struct CacheStats: Sendable, Equatable {
    /// Bytes fetched from the store by this process.
    public var bytesFetched: Int64 = 0
    public var chunksFetched = 0
    /// Bytes a previous run left in the cache that verified against their CRC32C (not fetched).
    public var bytesRecovered: Int64 = 0
    public var retries = 0
    public var evictedEntries = 0
}

/// The on-disk, crash-safe chunk cache that the mount, preload and serve share.
///
/// Guarantees:
/// - `ensure(range)` returns only when every byte of `range` is in the data file: its chunk is
///   present (fetched, or recovered and verified by its CRC32C), or the chunk's GET has written
///   those bytes already. Two readers of one absent chunk cause one fetch.
/// - A demand read of an absent chunk fetches its own part of the chunk first, so it waits for its
///   own bytes, not the whole chunk; the rest of the chunk follows when demand reads pause (or a
///   reader asks for it), so random reads do not queue behind each other's chunks.
/// - Chunks are fetched by priority (demand > plan > readahead > preload); a demand read
///   never waits behind queued background work (it also has reserved fetch slots).
/// - Data is durable before its log record, so after SIGKILL every logged chunk that still
///   matches its CRC32C is kept and nothing torn is ever served; at most `2 × concurrency`
///   chunks are lost (downloading, or written and awaiting their group `fdatasync`).
/// - Total cached bytes stay under `capacity` by evicting least recently used, unpinned
///   object generations.
/// - Memory is independent of object and cache size except one byte and one CRC per chunk of
///   the objects open now.
public actor ChunkCache {
    public let directory: String
    public nonisolated let store: any ObjectStore
    public let chunkSize: Int64
    public let capacity: Int64?
    let fetcher: Fetcher
    /// Extra fetch slots only demand reads may use, so they start at once even when
    /// background work fills every regular slot.
    let demandReserve = 4
    /// Unpinned entries kept open so reopening a file needs no re-verification.
    let maxIdleEntries = 64
    /// Where a demand read's own GET starts: its offset rounded down to this.
    let demandAlignment: Int64 = 256 << 10
    /// How much of a demand GET other transfers wait for: the alignment plus the largest read
    /// the kernel sends a FUSE mount (1 MiB).
    static let demandUrgentBytes: Int64 = (256 << 10) + (1 << 20)
    let logger = Logger(label: "weightfs.cache")
    let lockFD: Int32
    /// `directory/v1/objects`, opened once and checked: entries are made and removed relative to it.
    let objects: Directory

    private var entries: [CacheKey: CacheEntry] = [:]
    private let durability = DurabilityQueue()
    /// Which chunk starts next and when deferred rests go: decisions only (see `FetchScheduler`).
    private var scheduler: FetchScheduler
    private var clock: UInt64 = 0
    /// Every entry on disk by directory name: its allocated bytes and last use (wall-clock
    /// seconds, so the order carries across processes through meta.json's mtime). Scanned once
    /// at init and kept current here: no directory scan per close, no `utimes` per read.
    private var onDisk: [String: DiskEntry] = [:]

    struct DiskEntry {
        var bytes: Int64
        var lastUsed: Double
        /// The last use written to meta.json's mtime.
        var lastUsedOnDisk: Double
    }
    public private(set) var stats = CacheStats()

    public init(directory: String, store: any ObjectStore, options: FetchOptions = FetchOptions(), capacity: Int64? = nil) throws {
        self.directory = directory
        self.store = store
        self.chunkSize = options.chunkSize
        self.capacity = capacity
        scheduler = FetchScheduler(concurrency: options.concurrency, demandReserve: demandReserve, lull: Self.demandLull, now: .now)
        self.fetcher = Fetcher(store: store, options: options)
        let tree = try Self.openPrivateTree(directory)
        objects = tree.objects
        // One writer process per cache directory: two would append to the same logs.
        let lockPath = "\(directory)/v1/lock"
        do { lockFD = try tree.v1.openFile("lock", O_RDWR | O_CREAT) } catch {
            throw StoreError.local(path: lockPath, errno: error.rawValue, operation: "open cache lock")
        }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            // deinit closes lockFD: every stored property is set, so a throw here runs it.
            throw CacheError.locked(directory: directory)
        }
        Self.renameLegacyEntries(in: objects, logger: logger)
        onDisk = Self.scanEntries(objects)
    }

    /// Opens `directory/v1` (everything the cache keeps: object names and their bytes, which may
    /// be someone's private model), making it a directory only this user can enter (0700), and
    /// refuses one that another user owns, that others may write, or that is not a plain
    /// directory (a symlink). The cache root itself is left as it is (a Kubernetes emptyDir is
    /// 0777). Everything after is opened relative to the descriptors returned, checked as
    /// opened: a path component swapped for a symlink afterwards redirects nothing.
    static func openPrivateTree(_ directory: String) throws -> (v1: Directory, objects: Directory) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let v1Path = "\(directory)/v1"
        let v1: Directory
        do { v1 = try Directory(path: directory).makeDirectory("v1", mode: 0o700) } catch {
            if error == .tooManySymbolicLinkLevels || error == .notDirectory {
                throw CacheError.unsafeDirectory(path: v1Path, reason: "is not a directory (a symlink or a file)")
            }
            throw StoreError.local(path: v1Path, errno: error.rawValue, operation: "open the cache directory")
        }
        try checkPrivate(v1, path: v1Path)
        let objectsPath = "\(v1Path)/objects"
        do {
            let objects = try v1.makeDirectory("objects", mode: 0o700)
            try checkPrivate(objects, path: objectsPath)
            return (v1, objects)
        } catch let error as Errno {
            throw StoreError.local(path: objectsPath, errno: error.rawValue, operation: "open the cache directory")
        }
    }

    /// Refuses a directory another user owns or others may write; makes a readable one private.
    private static func checkPrivate(_ dir: Directory, path: String) throws {
        var st = Glibc.stat()
        guard fstat(dir.fd, &st) == 0 else { throw StoreError.local(path: path, errno: errno, operation: "stat the cache directory") }
        guard st.st_uid == geteuid() else {
            throw CacheError.unsafeDirectory(path: path, reason: "is owned by uid \(st.st_uid), not by this user (uid \(geteuid()))")
        }
        guard st.st_mode & 0o022 == 0 else {
            throw CacheError.unsafeDirectory(path: path, reason: "is writable by other users (mode \(String(st.st_mode & 0o777, radix: 8)))")
        }
        // Made 0755 by an earlier weightfs: other users could read the names and bytes.
        if st.st_mode & 0o077 != 0, fchmod(dir.fd, 0o700) != 0 {
            throw StoreError.local(path: path, errno: errno, operation: "make the cache directory private (chmod 700)")
        }
    }

    /// Entries named by an older scheme (two seeded CRC32Cs) move to their SHA-256 names, so a
    /// filled cache survives the upgrade; one without a readable meta.json is removed.
    static func renameLegacyEntries(in objects: Directory, logger: Logger) {
        for name in objects.names() where !CacheKey.isDirectoryName(name) {
            if let entry = try? objects.directory(name), let meta = EntryMeta.read(entry) {
                let target = meta.key.directoryName
                if objects.status(target) == nil, (try? objects.rename(name, to: target)) != nil { continue }
            }
            logger.info("removing cache entry \(name) of an older layout")
            objects.removeTree(name)
        }
    }

    deinit { Glibc.close(lockFD) }

    /// Makes every fetched chunk durable and recorded, then releases the cache directory for
    /// another process or instance. Nothing new may be opened afterwards.
    public func shutdown() async {
        for e in entries.values { persistLastUse(e) }
        await durability.flush()
        flock(lockFD, LOCK_UN)
        entries = entries.filter { $0.value.inFlight > 0 }
    }

    private var objectsDirectory: String { "\(directory)/v1/objects" }

    // MARK: opening and closing

    /// Opens `info`'s generation in the cache (recovering what a previous run left) and pins it.
    /// A new entry's blocks are reserved on disk at once (faster writes, BENCHMARKS finding 9)
    /// when the cache has no capacity — with one, only for an object the caller will fetch whole
    /// (`whole`, as `preload` does) that fits in it: a reservation counts in full against the
    /// capacity, and a file read in part would evict more than it holds.
    public func open(_ info: ObjectInfo, whole: Bool = false) throws -> CachedObject {
        let key = CacheKey(store: store.location, name: info.name, generation: info.generation)
        let entry: CacheEntry
        if let e = entries[key] {
            entry = e
        } else {
            // Never let one key's entry take over the files of another that is open (it would
            // unlink them and serve its bytes through the other's mappings).
            let directoryName = key.directoryName
            if let other = entries.values.first(where: { $0.directoryName == directoryName }) {
                throw CacheError.directoryInUse(directory: other.directory, heldBy: other.key, wanted: key)
            }
            entry = try CacheEntry(key: key, info: info, objects: objects, root: objectsDirectory, chunkSize: chunkSize,
                                   reserve: capacity.map { whole && info.size <= $0 } ?? true)
            entries[key] = entry
            let known = onDisk[directoryName]
            onDisk[directoryName] = DiskEntry(bytes: allocatedBytes(entry.dataFD), lastUsed: known?.lastUsed ?? 0, lastUsedOnDisk: known?.lastUsedOnDisk ?? 0)
        }
        entry.pins += 1
        touch(entry)
        return CachedObject(key: key, info: info, dataPath: entry.dataPath, chunkSize: entry.chunkSize, presence: entry.presence)
    }

    /// Unpins; the entry stays on disk and becomes evictable when nothing else holds it.
    public func close(_ object: CachedObject) {
        guard let e = entries[object.key] else { return }
        e.pins = max(0, e.pins - 1)
        persistLastUse(e)
        // Closed entries stay open (their chunks stay verified) up to a bound on file descriptors.
        let idle = entries.values.filter { $0.pins == 0 && $0.inFlight == 0 && $0.waiters.isEmpty }
        if idle.count > maxIdleEntries, let oldest = idle.min(by: { $0.lastUsed < $1.lastUsed }) {
            entries[oldest.key] = nil
        }
        evictIfNeeded()
    }

    // MARK: reading

    /// Returns once every byte of `range` is present, fetching absent chunks at `priority`.
    public func ensure(_ object: CachedObject, range: ByteRange, priority: FetchPriority = .demand) async throws {
        guard let entry = entries[object.key] else { throw CacheError.notOpen(object.key) }
        if let failure = entry.failure { throw failure }
        guard range.upperBound <= entry.info.size else {
            throw CacheError.pastEnd(object.key, range: range, size: entry.info.size)
        }
        touch(entry)
        var missing: [Int] = []
        for c in entry.chunks(covering: range) where entry.states[c] != .present {
            missing.append(c)
            enqueue(entry, c, priority, from: max(range.lowerBound, entry.range(of: c).lowerBound))
        }
        guard !missing.isEmpty else { return }
        startFetches()
        for c in missing {
            let chunkRange = entry.range(of: c)
            let needed = ByteRange(max(range.lowerBound, chunkRange.lowerBound), min(range.upperBound, chunkRange.upperBound))
            // A demand reader of part of a chunk wakes once its bytes are written; whole chunks
            // (and background work) wait for the chunk to be complete and checked.
            let wakeEarly = priority == .demand && needed != chunkRange
            // Loop: while we waited on an earlier chunk, this one may have failed (absent, not
            // queued) or the entry may have been reset; queue it again rather than wait forever.
            while entry.states[c] != .present {
                if let failure = entry.failure { throw failure }
                guard entries[object.key] === entry else { throw CacheError.evicted(object.key) }
                if entry.states[c] == .absent {
                    enqueue(entry, c, priority, from: needed.lowerBound)
                    startFetches()
                }
                if wakeEarly, entry.states[c] == .inFlight, let progress = entry.progress[c] {
                    // Its GET is running: wake as soon as our bytes are written (starting the
                    // chunk's deferred rest if they are in it).
                    if !progress.first.contains(needed) { wantRest(entry, c) }
                    if try await progress.wait(for: needed) { break }
                    continue
                }
                // A whole-chunk reader of a chunk whose rest is deferred starts it.
                if entry.states[c] == .inFlight { wantRest(entry, c) }
                // Woken when its GET starts (then wait on its progress), ends, or fails.
                try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, Error>) in
                    if entry.states[c] == .present || (wakeEarly && entry.states[c] == .inFlight) {
                        cont.resume()
                    } else {
                        entry.waiters[c, default: []].append(cont)
                    }
                }
            }
        }
    }

    /// Queues `range`'s absent chunks at `priority` without waiting.
    public func prefetch(_ object: CachedObject, range: ByteRange, priority: FetchPriority) {
        guard let entry = entries[object.key] else { return }
        for c in entry.chunks(covering: range) where entry.states[c] != .present { enqueue(entry, c, priority) }
        startFetches()
    }

    /// Whether every chunk of `range` is in the cache already: present, or logged by a previous
    /// run and waiting only for its CRC32C check. False when any needs a download.
    public func isLocal(_ object: CachedObject, range: ByteRange) -> Bool {
        guard let entry = entries[object.key] else { return false }
        return entry.chunks(covering: range).allSatisfy {
            entry.states[$0] == .present || entry.claimed[$0] != nil || entry.verifying.contains($0)
        }
    }

    /// Reads `range` into `buffer` (demand priority), for consumers that do not mmap.
    public nonisolated func read(_ object: CachedObject, range: ByteRange, into buffer: UnsafeMutableRawBufferPointer) async throws {
        try await ensure(object, range: range)
        // Holding the entry keeps its fd open (and never reused) for the reads below.
        let holder = try await dataHolder(object)
        let fd = holder.entry.dataFD
        defer { withExtendedLifetime(holder) {} }
        do throws(Errno) {
            try FileDescriptor(rawValue: fd).readExactly(fromAbsoluteOffset: range.lowerBound,
                                                         into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(range.count)]))
        } catch {
            throw StoreError.local(path: object.dataPath, errno: error.rawValue, operation: "read of \(range.count) bytes at offset \(range.lowerBound)")
        }
    }

    /// The entry holding an open object's data file.
    func dataHolder(_ object: CachedObject) throws -> EntryHolder {
        guard let e = entries[object.key] else { throw CacheError.notOpen(object.key) }
        return EntryHolder(entry: e)
    }

    /// Maps an open object's data file read-only (see `CacheMapping`).
    public func map(_ object: CachedObject) throws -> CacheMapping {
        guard let e = entries[object.key] else { throw CacheError.notOpen(object.key) }
        return try CacheMapping(key: e.key, fd: e.dataFD, size: Int(e.info.size), path: e.dataPath)
    }

    /// Bytes of `object` present now.
    public func presentBytes(_ object: CachedObject) -> Int64 { entries[object.key]?.presentBytes ?? 0 }

    /// Bytes of `object` in the cache now: present, or logged by an earlier run and to be
    /// checked against their CRC32C on first use (a chunk that fails is fetched again then).
    public func cachedBytes(_ object: CachedObject) -> Int64 {
        guard let e = entries[object.key] else { return 0 }
        return e.presentBytes + e.claimed.keys.reduce(0) { $0 + e.range(of: $1).count }
    }

    public func isComplete(_ object: CachedObject) -> Bool { entries[object.key]?.isComplete ?? false }

    // MARK: scheduling

    /// Queues `chunk` at `priority` (raising it if queued lower). A demand read says where in
    /// the chunk its bytes start (`from`), so the GET can begin there.
    private func enqueue(_ entry: CacheEntry, _ chunk: Int, _ priority: FetchPriority, from offset: Int64? = nil) {
        switch entry.states[chunk] {
        case .present, .inFlight:
            return
        case .queued(let p) where p >= priority:
            return
        case .queued, .absent:
            entry.states[chunk] = .queued(priority)
            scheduler.enqueue(ChunkRef(key: entry.key, chunk: chunk), priority)
            if priority == .demand, let offset, entry.demandStart[chunk] == nil { entry.demandStart[chunk] = offset }
        }
    }

    /// The GETs for a chunk: one for the whole chunk, or for a demand read that starts past the
    /// chunk's head, the read's part first — from its offset, aligned down to `demandAlignment`,
    /// `demandUrgentBytes` long — then the rest of the chunk after it and the chunk's head, which
    /// wait for a lull in demand reads (see `awaitDeferredTurn`).
    private func segments(of entry: CacheEntry, _ chunk: Int, demandFrom offset: Int64?) -> [ByteRange] {
        let whole = entry.range(of: chunk)
        guard let offset else { return [whole] }
        let split = offset - offset % demandAlignment
        guard split > whole.lowerBound, split < whole.upperBound else { return [whole] }
        let urgentEnd = min(whole.upperBound, split + Self.demandUrgentBytes)
        var parts = [ByteRange(split, urgentEnd)]
        if urgentEnd < whole.upperBound { parts.append(ByteRange(urgentEnd, whole.upperBound)) }
        parts.append(ByteRange(whole.lowerBound, split))
        return parts
    }

    private func startFetches() {
        admitDeferred()
        while let (ref, priority) = scheduler.next(isCurrent: { ref, p in entries[ref.key]?.states[ref.chunk] == .queued(p) }),
              let entry = entries[ref.key] {
            let chunk = ref.chunk
            entry.states[chunk] = .inFlight
            entry.inFlight += 1
            let info = entry.info, fd = entry.dataFD, path = entry.dataPath, range = entry.range(of: chunk)
            let demandFrom = entry.demandStart.removeValue(forKey: chunk)
            let parts = segments(of: entry, chunk, demandFrom: priority == .demand ? demandFrom : nil)
            let progress = ChunkProgress(segments: parts)
            entry.progress[chunk] = progress
            // Readers queued behind this chunk now wait on its progress instead.
            for w in entry.waiters.removeValue(forKey: chunk) ?? [] { w.resume() }
            let fetcher = self.fetcher, logger = self.logger
            let claimed = entry.claimed.removeValue(forKey: chunk)
            if claimed != nil { entry.verifying.insert(chunk) }
            // The task holds the entry so its fds stay open (never reused by another file) even if
            // the entry is evicted meanwhile.
            let holder = EntryHolder(entry: entry)
            // Off the actor: verification reads, the fetch's pwrites and fdatasync must not hold up scheduling.
            Task.detached {
                defer { withExtendedLifetime(holder) {} }
                if let claimed, await VerificationQueue.shared.verify(fd: fd, range: range, crc: claimed) {
                    await self.verified(holder, chunk, crc: claimed)
                    return
                }
                do {
                    var result: (crc32c: UInt32, retries: Int)
                    if parts.count > 1 {
                        // A demand read's own bytes now; the rest of the chunk when demand reads
                        // pause or a reader needs it, without a fetch slot meanwhile: streaming it
                        // at once made the next random reads wait behind it (BENCHMARKS finding 6).
                        let first: (crcs: [(ByteRange, UInt32)], retries: Int)
                        await self.urgentStarted()
                        do {
                            first = try await Self.fetch([parts[0]], of: info, with: fetcher, into: fd, path: path,
                                                         progress: progress, segmentBase: 0, urgent: true, logger: logger)
                        } catch {
                            await self.urgentEnded()
                            throw error
                        }
                        guard await self.awaitDeferredTurn(holder, chunk) else {
                            throw CacheError.evicted(holder.entry.key)
                        }
                        let rest = try await Self.fetch(Array(parts[1...]), of: info, with: fetcher, into: fd, path: path,
                                                        progress: progress, segmentBase: 1, urgent: false, logger: logger)
                        result = Self.combine(first.crcs + rest.crcs, retries: first.retries + rest.retries)
                    } else {
                        let all = try await Self.fetch(parts, of: info, with: fetcher, into: fd, path: path, progress: progress,
                                                       segmentBase: 0, urgent: priority == .demand, logger: logger)
                        result = Self.combine(all.crcs, retries: all.retries)
                    }
                    await self.fetched(holder, chunk, crc: result.crc32c, retries: result.retries)
                } catch {
                    await self.failed(holder, chunk, error)
                }
            }
        }
    }

    /// Fetches segments of a chunk side by side into the data file, advancing `progress` (whose
    /// segment `segmentBase + i` is `parts[i]`) as bytes land; returns each part's CRC32C.
    /// An urgent fetch's first part pauses other transfers until its first `demandUrgentBytes`
    /// arrive (`ReadOptions.urgentBytes`).
    private static func fetch(_ parts: [ByteRange], of info: ObjectInfo, with fetcher: Fetcher, into fd: Int32, path: String,
                              progress: ChunkProgress, segmentBase: Int, urgent: Bool,
                              logger: Logger) async throws -> (crcs: [(ByteRange, UInt32)], retries: Int) {
        let results = try await withThrowingTaskGroup(of: (Int, UInt32, Int).self) { group in
            for (i, part) in parts.enumerated() {
                group.addTask {
                    // Timed only for debug logs: two clock reads and a lock per write otherwise wasted.
                    let timing = logger.logLevel <= .debug ? SegmentTiming() : nil
                    // Page-aligned 64 KiB blocks (BlockWriter); a partial one at once when a
                    // reader waits for bytes in it.
                    let writer = BlockWriter(fd: fd, path: path, range: part, mode: fetcher.options.fileWrites)
                    let segment = segmentBase + i
                    let wrote: @Sendable (Int64) -> Void = { progress.wrote(segment: segment, upTo: $0) }
                    let urgency = ReadOptions(urgentBytes: urgent && i == 0 ? Self.demandUrgentBytes : 0)
                    let r = try await fetcher.fetch(info, range: part, options: urgency) { offset, bytes in
                        let t0 = timing?.mark()
                        try writer.append(bytes, at: offset, written: wrote)
                        if let end = writer.gatheredEnd, progress.wouldServeReader(segment: segment, upTo: end) {
                            try writer.finish(wrote)
                        }
                        if let timing, let t0 { timing.wrote(since: t0) }
                    }
                    try writer.finish(wrote)
                    if let timing {
                        logger.debug("\(info.name) [\(part.lowerBound), \(part.upperBound))\(urgent && i == 0 ? " urgent" : ""): \(timing.summary())")
                    }
                    return (i, r.crc32c, r.retries)
                }
            }
            var all: [(Int, UInt32, Int)] = []
            for try await r in group { all.append(r) }
            return all
        }
        return (results.map { (parts[$0.0], $0.1) }, results.reduce(0) { $0 + $1.2 })
    }

    /// The chunk's CRC32C from its parts' (any order; together they cover the chunk once).
    private static func combine(_ crcs: [(ByteRange, UInt32)], retries: Int) -> (crc32c: UInt32, retries: Int) {
        var crc: UInt32 = 0
        for (part, c) in crcs.sorted(by: { $0.0.lowerBound < $1.0.lowerBound }) {
            crc = CRC32C.combine(crc, c, lengthOfB: part.count)
        }
        return (crc, retries)
    }

    // MARK: deferred remainders

    /// The continuations of deferred rests (`FetchScheduler.deferred`), resumed when they may go.
    private var deferredTurns: [DeferredKey: CheckedContinuation<Void, Never>] = [:]
    private var lullCheckScheduled = false
    /// How long demand reads must have paused before deferred remainders start on their own.
    /// Longer than the gaps inside a burst of random reads (a reader checking what it read, a
    /// busy machine: 50 ms let remainders start mid-burst and p99 went back to 136 ms).
    static let demandLull: Duration = .milliseconds(250)

    private func urgentStarted() { scheduler.urgentStarted(now: .now) }

    private func urgentEnded() { scheduler.urgentEnded(now: .now) }

    /// Called by a demand chunk's task once its read's bytes are in: gives up the fetch slot and
    /// returns when the rest of the chunk may be fetched — demand reads have paused for
    /// `demandLull` and a regular slot is free, or a reader wants bytes of the rest (`wantRest`).
    /// The slot is taken again on return.
    /// Returns false if the entry was evicted meanwhile: the rest is not fetched then (eviction
    /// lets such chunks go at once, see `releaseDeferredOfEvicted`).
    private func awaitDeferredTurn(_ holder: EntryHolder, _ chunk: Int) async -> Bool {
        urgentEnded()
        let key = DeferredKey(entry: ObjectIdentifier(holder.entry), chunk: chunk)
        guard current(holder) != nil else {
            scheduler.forgetRest(key)
            return false
        }
        if scheduler.deferRest(key) { return true }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            deferredTurns[key] = c
            startFetches()
        }
        return current(holder) != nil
    }

    /// Deferred rests of entries no longer in `entries` stop waiting (their tasks end as
    /// abandoned instead of fetching into an unlinked file after the next lull).
    /// GETs running now and rests of chunks waiting for a lull (for tests to wait on events
    /// rather than time).
    var fetchesRunning: Int { scheduler.running }
    var restsDeferred: Int { scheduler.deferred.count }

    private func releaseDeferredOfEvicted() {
        let live = Set(entries.values.map { ObjectIdentifier($0) })
        // Each released rest holds a slot again, which its task gives back in `failed`.
        for key in scheduler.releaseDeferred(keeping: { live.contains($0) }) { deferredTurns.removeValue(forKey: key)?.resume() }
    }

    /// Starts the deferred rest of `chunk` now (or as soon as its read's GET ends): a reader
    /// waits for its bytes.
    private func wantRest(_ entry: CacheEntry, _ chunk: Int) {
        let key = DeferredKey(entry: ObjectIdentifier(entry), chunk: chunk)
        if scheduler.wantRest(key, fetching: entry.progress[chunk] != nil) { deferredTurns.removeValue(forKey: key)?.resume() }
    }

    /// Starts deferred remainders while demand reads pause and regular slots are free; otherwise
    /// looks again when the lull would begin.
    private func admitDeferred() {
        let (start, lookAgain) = scheduler.admitDeferred(now: .now)
        for key in start { deferredTurns.removeValue(forKey: key)?.resume() }
        if let lookAgain, !lullCheckScheduled {
            lullCheckScheduled = true
            Task {
                try? await Task.sleep(until: lookAgain)
                self.lullChecked()
            }
        }
    }

    private func lullChecked() {
        lullCheckScheduled = false
        admitDeferred()
    }

    /// A chunk a previous run left matched its logged CRC32C: present without a fetch.
    /// The entry a completion belongs to, if it is still the current one for its key: a fetch
    /// started for an entry that was evicted (and maybe recreated since) must not touch the new one.
    private func current(_ holder: EntryHolder) -> CacheEntry? {
        entries[holder.entry.key] === holder.entry ? holder.entry : nil
    }

    private func verified(_ holder: EntryHolder, _ chunk: Int, crc: UInt32) {
        scheduler.released()
        guard let entry = current(holder) else { abandoned(holder, chunk); return }
        entry.inFlight -= 1
        stats.bytesRecovered += entry.range(of: chunk).count
        complete(entry, chunk, crc: crc)
    }

    /// The chunk's bytes are in the data file (and the page cache): readers may have them now,
    /// and its fetch slot is free for the next GET. It counts as awaiting durability until its
    /// group `fdatasync` and record are done (see `FetchScheduler.awaitingDurability`).
    private func fetched(_ holder: EntryHolder, _ chunk: Int, crc: UInt32, retries: Int) {
        scheduler.released()
        scheduler.forgetRest(DeferredKey(entry: ObjectIdentifier(holder.entry), chunk: chunk))
        guard let entry = current(holder) else { abandoned(holder, chunk); return }
        stats.bytesFetched += entry.range(of: chunk).count
        stats.chunksFetched += 1
        stats.retries += retries
        scheduler.awaitingSync()
        durability.commit(entry, chunk: chunk, range: entry.range(of: chunk), crc: crc) { ok in
            Task { await self.recorded(holder, chunk, ok: ok) }
        }
        complete(entry, chunk, crc: crc)
    }

    private func recorded(_ holder: EntryHolder, _ chunk: Int, ok: Bool) {
        scheduler.recorded()
        if let entry = current(holder) {
            entry.inFlight -= 1
            if !ok {
                // After a failed fdatasync the kernel may drop the pages: the disk may not hold
                // these bytes, so the chunk must be fetched again before anyone reads it anew.
                logger.warning("\(entry.key): chunk \(chunk) could not be made durable (fdatasync or log append failed); fetching it again")
                entry.markAbsent(chunk)
            }
        }
        startFetches()
    }

    /// Marks a chunk present, wakes its readers, and checks a finished object's CRC32C.
    private func complete(_ entry: CacheEntry, _ chunk: Int, crc: UInt32) {
        let key = entry.key
        entry.markPresent(chunk, crc: crc)
        entry.progress.removeValue(forKey: chunk)?.finish()
        var waiters = entry.waiters.removeValue(forKey: chunk) ?? []
        if entry.isComplete, let expected = entry.info.crc32c, entry.combinedCRC() != expected {
            // Every chunk matched what arrived, but the object does not match GCS's checksum.
            let error = StoreError.checksumMismatch(location: key.description, expected: expected, actual: entry.combinedCRC())
            logger.error("\(error)")
            entry.failure = error
            entry.reset()
            durability.truncate(entry)
            for (_, list) in entry.waiters { waiters += list }
            entry.waiters = [:]
            for w in waiters { w.resume(throwing: error) }
        } else {
            entry.presence.insert(chunk)
            for w in waiters { w.resume() }
        }
        startFetches()
    }

    private func failed(_ holder: EntryHolder, _ chunk: Int, _ error: Error) {
        scheduler.released()
        scheduler.forgetRest(DeferredKey(entry: ObjectIdentifier(holder.entry), chunk: chunk))
        guard let entry = current(holder) else { abandoned(holder, chunk); return }
        entry.inFlight -= 1
        entry.states[chunk] = .absent
        entry.verifying.remove(chunk)
        entry.progress.removeValue(forKey: chunk)?.finish(error: error)
        for w in entry.waiters.removeValue(forKey: chunk) ?? [] { w.resume(throwing: error) }
        startFetches()
    }

    /// A fetch ended for an entry evicted meanwhile: its readers wake and find it gone.
    private func abandoned(_ holder: EntryHolder, _ chunk: Int) {
        holder.entry.progress.removeValue(forKey: chunk)?.finish()
        startFetches()
    }

    // MARK: eviction

    private func touch(_ entry: CacheEntry) {
        clock += 1
        entry.lastUsed = clock
        onDisk[entry.directoryName]?.lastUsed = Date().timeIntervalSince1970
    }

    /// Writes an entry's last use to its meta.json's mtime (which orders entries for LRU across
    /// processes), at close and shutdown rather than on every read.
    private func persistLastUse(_ entry: CacheEntry) {
        guard let d = onDisk[entry.directoryName], d.lastUsed > d.lastUsedOnDisk else { return }
        objects.setTimes("\(entry.directoryName)/meta.json", seconds: d.lastUsed)
        onDisk[entry.directoryName]?.lastUsedOnDisk = d.lastUsed
    }

    /// Removes least recently used entries that nobody holds until the cache fits `capacity`.
    public func evictIfNeeded() {
        guard let capacity else { return }
        // Only open entries can have grown since they were last measured.
        for e in entries.values { onDisk[e.directoryName]?.bytes = allocatedBytes(e.dataFD) }
        var total = onDisk.values.reduce(0) { $0 + $1.bytes }
        guard total > capacity else { return }
        let open = Dictionary(entries.values.map { ($0.directoryName, $0) }, uniquingKeysWith: { a, _ in a })
        for (name, candidate) in onDisk.sorted(by: { $0.value.lastUsed < $1.value.lastUsed }) where total > capacity {
            // Readers pin; a fetch still running for an unpinned entry writes into its unlinked file.
            if let e = open[name] {
                if e.pins > 0 || !e.waiters.isEmpty { continue }
                entries[e.key] = nil
            }
            let path = "\(objectsDirectory)/\(name)"
            objects.removeTree(name)
            onDisk[name] = nil
            total -= candidate.bytes
            stats.evictedEntries += 1
            logger.info("evicted \(path) (\(candidate.bytes) bytes)")
        }
        releaseDeferredOfEvicted()
    }

    /// Entries on disk with their allocated bytes and last use (meta.json's mtime).
    private static func scanEntries(_ objects: Directory) -> [String: DiskEntry] {
        var found: [String: DiskEntry] = [:]
        for name in objects.names() {
            let bytes = objects.status("\(name)/data").map { Int64($0.st_blocks) * 512 } ?? 0
            let mtime = objects.status("\(name)/meta.json").map { Double($0.st_mtim.tv_sec) + Double($0.st_mtim.tv_nsec) / 1e9 } ?? 0
            found[name] = DiskEntry(bytes: bytes, lastUsed: mtime, lastUsedOnDisk: mtime)
        }
        return found
    }
}

/// Blocks allocated to an open file (what it takes on disk; sparse files take less than their size).
private func allocatedBytes(_ fd: Int32) -> Int64 {
    var st = Glibc.stat()
    return fstat(fd, &st) == 0 ? Int64(st.st_blocks) * 512 : 0
}

/// Keeps a cache entry (and so its open file descriptors) alive while a fetch writes into it.
struct EntryHolder: @unchecked Sendable {  // only the entry's immutable fds are read through it; all else stays on the actor
    let entry: CacheEntry
}
