import ChunkCache
import Foundation
import Logging
import ObjectStore
import Synchronization

/// What `weightfs mount` may tune.
public struct MountOptions: Sendable {
    public enum Prefetch: String, Sendable, CaseIterable {
        /// On open of a `.safetensors` file, fetch it in forward-pass order; readahead otherwise.
        case safetensors
        /// Readahead behind sequential readers only.
        case sequential
        /// Fetch only what is read.
        case none
    }

    public var allowOther = false
    public var uid: UInt32 = getuid()
    public var gid: UInt32 = getgid()
    public var fileMode: UInt32 = 0o444
    public var dirMode: UInt32 = 0o555
    /// How long the kernel may cache names and attributes (the tree is a snapshot of the listing).
    public var metadataTTL: Double = 3600
    public var prefetch: Prefetch = .safetensors
    /// Largest single read the kernel sends (FUSE caps it at 1 MiB with max_pages 256).
    public var maxRead: Int = 1 << 20
    /// Chunks fetched ahead of a sequential reader.
    public var readaheadChunks: Int = 16
    /// The kernel's readahead window for the mount, in KiB (0: leave the kernel's 128 KiB).
    public var readAheadKB: Int = 1024
    /// Threads that push chunks the cache already holds into the kernel's page cache of the FUSE
    /// file ahead of a sequential reader (FUSE_NOTIFY_STORE), so it finds them there instead of
    /// asking the daemon READ by READ; 0 turns it off.
    public var pushThreads: Int = 0
    public var debug = false

    public init() {}
}

/// One open file: the object pinned in the cache and its data file mapped for zero-copy replies.
struct OpenFile: Sendable {
    let inode: UInt64
    let object: CachedObject
    /// Held by the handle (and by every read's `MappedBytes` until its reply is done).
    let mapping: CacheMapping?
    /// Where a sequential reader's next read would start; readahead fires when it does.
    var nextOffset: Int64 = 0
    /// The chunk index readahead has queued up to.
    var readaheadEnd: Int = 0
    /// Chunks below this index were dropped from the data file's page cache behind a sequential
    /// reader, or were skipped by a jump (`follow`).
    var droppedEnd: Int = 0
    /// Chunks below this index were handed to the push threads (`pushAhead`).
    var pushedEnd: Int = 0
}

/// The read-only file system over the chunk cache: the logic behind the FUSE callbacks, in
/// Swift types only (the C side lives in `FUSESession`).
public final class FileSystem: Sendable {
    public let table: InodeTable
    public let cache: ChunkCache
    public let options: MountOptions
    let storeLocation: String
    let logger = Logger(label: "weightfs.mount")
    private let handles = Mutex<(next: UInt64, open: [UInt64: OpenFile])>((1, [:]))
    /// FUSE requests handed to tasks and not yet answered.
    private let pendingReplies = Atomic<Int>(0)
    /// Mappings shared by every handle of one object: inode → (the cache's mapping, handle count).
    private let mappings = Mutex<[UInt64: (mapping: CacheMapping, users: Int)]>([:])

    /// Stores bytes into the kernel's page cache of a FUSE inode (set by the session while it runs).
    public typealias Pusher = @Sendable (_ inode: UInt64, _ offset: Int64, _ bytes: UnsafeRawBufferPointer) -> Int32
    private let pusher = Mutex<Pusher?>(nil)
    /// Serial queues (each its own thread, never the cooperative pool: a push can wait on a page
    /// lock that only a READ's reply, possibly from a task, releases).
    private let pushQueues: [DispatchQueue]
    /// Bytes pushed into the kernel's page cache, and bytes answered to READ requests (logged at
    /// debug level on each release: how much of a read the pushes took over).
    let pushedBytes = Atomic<Int>(0)
    let readBytes = Atomic<Int>(0)

    /// Queues an opened `.safetensors` file's bytes in the order a forward pass reads them
    /// (with `MountOptions.Prefetch.safetensors`); the mount itself knows no file formats.
    public typealias Planner = @Sendable (CachedObject) async throws -> Void
    let planner: Planner?

    public init(table: InodeTable, cache: ChunkCache, storeLocation: String, options: MountOptions, planner: Planner? = nil) {
        self.table = table
        self.cache = cache
        self.options = options
        self.storeLocation = storeLocation
        self.planner = planner
        self.pushQueues = (0..<max(0, options.pushThreads)).map { DispatchQueue(label: "weightfs.mount.push.\($0)") }
    }

    /// The session's way to push bytes into the kernel (nil: stop; pushes running are counted as
    /// pending replies, so `waitForReplies` waits for them before the session goes).
    func setPusher(_ p: Pusher?) { pusher.withLock { $0 = p } }

    func replyStarted() { pendingReplies.add(1, ordering: .relaxed) }
    func replyFinished() { pendingReplies.subtract(1, ordering: .releasing) }

    /// After the loop ends: waits until every task has replied; false if some still have not.
    func waitForReplies(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while pendingReplies.load(ordering: .acquiring) > 0 {
            if ContinuousClock.now > deadline {
                logger.warning("\(pendingReplies.load(ordering: .relaxed)) FUSE replies still pending at unmount; leaving the session to process exit")
                return false
            }
            usleep(10_000)
        }
        return true
    }

    // MARK: attributes

    func attributes(of node: Inode) -> stat {
        var st = stat()
        st.st_ino = __ino_t(node.number)
        st.st_uid = options.uid
        st.st_gid = options.gid
        if let o = node.object {
            st.st_mode = S_IFREG | options.fileMode
            st.st_nlink = 1
            st.st_size = off_t(o.size)
            st.st_blocks = blkcnt_t((o.size + 511) / 512)
            if let updated = o.updated {
                let t = updated.timeIntervalSince1970
                st.st_mtim = timespec(tv_sec: Int(t), tv_nsec: Int((t - t.rounded(.down)) * 1e9))
                st.st_ctim = st.st_mtim
                st.st_atim = st.st_mtim
            }
        } else {
            st.st_mode = S_IFDIR | options.dirMode
            st.st_nlink = 2
            st.st_size = 4096
        }
        st.st_blksize = 1 << 20
        return st
    }

    /// Extended attributes: where the bytes come from and which version they are.
    func xattrs(of node: Inode) -> [(String, String)] {
        guard let o = node.object else { return [] }
        var out = [("user.weightfs.object", "\(storeLocation)/\(o.name)"), ("user.weightfs.generation", String(o.generation.rawValue))]
        if let c = o.crc32c { out.append(("user.weightfs.crc32c", String(format: "%08x", c))) }
        return out
    }

    // MARK: open / read / release

    /// Opens `node` in the cache and maps its data file; returns the handle number.
    func open(_ node: Inode) async throws -> UInt64 {
        guard let info = node.object else { throw POSIXError(.EISDIR) }
        let object = try await cache.open(info)
        let mapping: CacheMapping?
        do {
            mapping = try await map(node.number, object)
        } catch {
            await cache.close(object)
            throw error
        }
        let handle = handles.withLock { state -> UInt64 in
            let h = state.next
            state.next += 1
            state.open[h] = OpenFile(inode: node.number, object: object, mapping: mapping)
            return h
        }
        if options.prefetch == .safetensors, info.name.hasSuffix(".safetensors"), let planner {
            // The shard in forward-pass order, behind any demand read; an unparsable header only
            // means no plan (the reader will get its own clear error).
            let logger = self.logger
            Task {
                do {
                    try await planner(object)
                } catch {
                    logger.warning("no prefetch plan for \(info.name): \(error)")
                }
            }
        }
        return handle
    }

    /// The object's data file as the cache maps it (from the entry's own descriptor, never by
    /// path), shared by every handle of the inode.
    private func map(_ inode: UInt64, _ object: CachedObject) async throws -> CacheMapping? {
        guard object.info.size > 0 else { return nil }
        if let shared = mappings.withLock({ maps -> CacheMapping? in
            guard let m = maps[inode] else { return nil }
            maps[inode]?.users += 1
            return m.mapping
        }) {
            return shared
        }
        let fresh = try await cache.map(object)
        // Another open of the same inode may have mapped it meanwhile: share that one.
        return mappings.withLock { maps -> CacheMapping in
            if let m = maps[inode] {
                maps[inode]?.users += 1
                return m.mapping
            }
            maps[inode] = (fresh, 1)
            return fresh
        }
    }

    /// Returns where the bytes of a read are mapped if they are all present now, without
    /// leaving the calling (FUSE) thread; nil if the read must wait (`read`). Fires readahead
    /// for sequential readers either way.
    func readPresent(handle: UInt64, offset: Int64, size: Int) throws -> MappedBytes? {
        guard let (file, range) = try request(handle, offset, size) else { return MappedBytes.empty }
        guard file.object.isPresent(range) else { return nil }
        let step = follow(handle, file, range)
        if let ahead = step.readahead {
            let cache = self.cache, object = file.object
            Task { await cache.prefetch(object, range: ahead, priority: .readahead) }
            pushAhead(handle, file, ahead)
        }
        drop(step.dropChunks, of: file)
        return mapped(file, range)
    }

    /// Makes `range` present and returns where its bytes are mapped; fires readahead for
    /// sequential readers.
    func read(handle: UInt64, offset: Int64, size: Int) async throws -> MappedBytes {
        guard let (file, range) = try request(handle, offset, size) else { return MappedBytes.empty }
        let step = follow(handle, file, range)
        if let ahead = step.readahead {
            await cache.prefetch(file.object, range: ahead, priority: .readahead)
            pushAhead(handle, file, ahead)
        }
        try await cache.ensure(file.object, range: range, priority: .demand)
        // After the wait, as before the refactor: the chunks behind have had time to be written
        // back, and dirty pages would be skipped for good.
        drop(step.dropChunks, of: file)
        return mapped(file, range)
    }

    /// The open file and the byte range a read asks for, clipped to the file; nil past its end.
    private func request(_ handle: UInt64, _ offset: Int64, _ size: Int) throws -> (OpenFile, ByteRange)? {
        guard let file = handles.withLock({ $0.open[handle] }) else { throw POSIXError(.EBADF) }
        let total = file.object.info.size
        guard offset < total, size > 0 else { return nil }
        return (file, ByteRange(offset, min(offset + Int64(size), total)))
    }

    private func mapped(_ file: OpenFile, _ range: ByteRange) -> MappedBytes {
        let mapping = file.mapping!
        readBytes.add(Int(range.count), ordering: .relaxed)
        return MappedBytes(owner: mapping, bytes: UnsafeRawBufferPointer(rebasing: mapping.bytes[Int(range.lowerBound)..<Int(range.upperBound)]))
    }

    /// Follows a handle's reader (`file` is its state before this read), deciding under one lock
    /// — two threads serving one reader must not queue or drop the same range:
    /// - readahead: a read that starts where the previous one ended queues the next chunks at
    ///   readahead priority, keeping `readaheadChunks` chunks in flight ahead of the reader;
    /// - chunks to drop: a sequential reader two chunks past a chunk it read has had that chunk
    ///   copied into the kernel's page cache of the FUSE file (which answers re-reads), so the
    ///   data file's copy can leave the page cache (`drop`). Chunks the handle did not read (a
    ///   jump ahead) are left alone.
    private func follow(_ handle: UInt64, _ file: OpenFile, _ range: ByteRange) -> (readahead: ByteRange?, dropChunks: Range<Int>?) {
        let chunk = file.object.chunkSize
        let here = Int(range.lowerBound / chunk)
        let current = Int(range.upperBound / chunk)
        let lastChunk = Int((file.object.info.size - 1) / chunk)
        let wanted = min(lastChunk, current + options.readaheadChunks)
        let sequential = range.lowerBound == file.nextOffset || range.lowerBound == 0
        // The kernel's readahead requests may arrive a little out of order on several FUSE
        // threads: only a jump of more than a chunk starts a new run for dropping.
        let nearby = abs(range.lowerBound - file.nextOffset) <= chunk
        return handles.withLock { state -> (ByteRange?, Range<Int>?) in
            guard let now = state.open[handle] else { return (nil, nil) }
            state.open[handle]?.nextOffset = range.upperBound
            var ahead: ByteRange?
            let from = max(now.readaheadEnd, current)
            if options.prefetch != .none, sequential, wanted > from {
                state.open[handle]?.readaheadEnd = wanted
                ahead = ByteRange(Int64(from) * chunk, min(Int64(wanted + 1) * chunk, file.object.info.size))
            }
            var drop: Range<Int>?
            let behind = here - 2
            if !nearby {
                state.open[handle]?.droppedEnd = max(now.droppedEnd, here)
            } else if behind >= now.droppedEnd {
                state.open[handle]?.droppedEnd = behind + 1
                drop = now.droppedEnd..<(behind + 1)
            }
            return (ahead, drop)
        }
    }

    /// Pushes each chunk of `ahead` (queued for readahead) that the cache already holds into the
    /// kernel's page cache of the FUSE file once it is verified, unless the reader has passed
    /// it by then. The kernel then answers the reader's reads and page faults from its
    /// page cache: the copy into it is made here, on push threads, ahead of the reader, not one
    /// READ at a time on the reader's path. Only present bytes are pushed: never wrong bytes.
    private func pushAhead(_ handle: UInt64, _ file: OpenFile, _ ahead: ByteRange) {
        guard !pushQueues.isEmpty, file.mapping != nil else { return }
        let chunk = file.object.chunkSize
        let size = file.object.info.size
        let end = Int((ahead.upperBound - 1) / chunk) + 1
        // Readahead ranges of one reader overlap by a chunk: push each chunk once.
        let first = handles.withLock { state -> Int? in
            guard let now = state.open[handle] else { return nil }
            let first = max(now.pushedEnd, Int(ahead.lowerBound / chunk))
            guard first < end else { return nil }
            state.open[handle]?.pushedEnd = end
            return first
        }
        guard let first else { return }
        for c in first..<end {
            let range = ByteRange(Int64(c) * chunk, min(Int64(c + 1) * chunk, size))
            let cache = self.cache, object = file.object, queue = pushQueues[c % pushQueues.count]
            Task {
                // Only chunks the cache holds already (a warm cache, a preload's): one still to
                // download is at the reader's download front, where a push only races its READs
                // (device, 16 cores: cold reads 2.38 GB/s with pushes, 2.91 without; warm 3.75
                // with, 2.45 without).
                guard await cache.isLocal(object, range: range) else { return }
                do { try await cache.ensure(object, range: range, priority: .readahead) } catch { return }
                queue.async { self.push(handle, file, range) }
            }
        }
    }

    private func push(_ handle: UInt64, _ file: OpenFile, _ chunk: ByteRange) {
        // What the reader has read, and the kernel's readahead window past it (already asked
        // for by READs, its pages locked until answered), come by READ: push only the rest.
        guard let now = handles.withLock({ $0.open[handle] }) else { return }
        // Whole pages only: the kernel marks a stored page valid when the store fills it, and
        // does not zero the rest of a partial one (the file's last page is left to READ).
        let page = Int64(sysconf(Int32(_SC_PAGESIZE)))
        let window = Int64(max(options.readAheadKB, 128)) * 1024
        let start = (max(chunk.lowerBound, now.nextOffset + window) + page - 1) / page * page
        let end = chunk.upperBound / page * page
        guard start < end, let mapping = mappings.withLock({ $0[file.inode]?.mapping }) else { return }
        let range = ByteRange(start, end)
        let p: Pusher? = pusher.withLock { p in
            if p != nil { replyStarted() }
            return p
        }
        guard let p else { return }
        defer { replyFinished() }
        let bytes = UnsafeRawBufferPointer(rebasing: mapping.bytes[Int(range.lowerBound)..<Int(range.upperBound)])
        let rc = p(file.inode, range.lowerBound, bytes)
        if rc == 0 {
            pushedBytes.add(bytes.count, ordering: .relaxed)
        } else {
            logger.debug("push of \(range.count) bytes at \(range.lowerBound) into the kernel's page cache: \(String(cString: strerror(-rc)))")
        }
    }

    /// Drops `chunks` of the data file from the page cache (`POSIX_FADV_DONTNEED`; pages not yet
    /// written back are left alone). A model read once is then held in memory once, not twice,
    /// and the dropped pages are reused for the next chunks: in this VM first-touching fresh
    /// memory is what a cold read spent most of its time on (BENCHMARKS finding 8).
    private func drop(_ chunks: Range<Int>?, of file: OpenFile) {
        guard let chunks, let mapping = mappings.withLock({ $0[file.inode]?.mapping }) else { return }
        let fd = mapping.file.rawValue
        let size = file.object.chunkSize
        _ = posix_fadvise(fd, off_t(Int64(chunks.lowerBound) * size), off_t(Int64(chunks.count) * size), POSIX_FADV_DONTNEED)
    }

    /// `gs://bucket/object` of an open handle, for messages.
    func objectLocation(handle: UInt64) -> String {
        handles.withLock { $0.open[handle] }.map { "\(storeLocation)/\($0.object.info.name)" } ?? "handle \(handle)"
    }

    func release(handle: UInt64) async {
        guard let file = handles.withLock({ $0.open.removeValue(forKey: handle) }) else { return }
        logger.debug("release \(file.object.info.name): \(pushedBytes.load(ordering: .relaxed)) bytes pushed into the kernel's page cache, \(readBytes.load(ordering: .relaxed)) read, so far")
        let inode = file.inode
        do {
            // The last handle lets the mapping go (CacheMapping unmaps itself).
            mappings.withLock { maps in
                guard let m = maps[inode] else { return }
                if m.users <= 1 { maps[inode] = nil } else { maps[inode]?.users -= 1 }
            }
        }
        await cache.close(file.object)
    }
}

/// A read's bytes in the mapped cache file, with the mapping they lie in: as long as this
/// value lives, a RELEASE of the last handle on another FUSE thread cannot unmap them (the
/// reply and the `madvise` after it run inside `withBytes`).
struct MappedBytes: Sendable {
    let owner: CacheMapping?
    private let start: Int, count: Int

    init(owner: CacheMapping?, bytes: UnsafeRawBufferPointer) {
        self.owner = owner
        start = Int(bitPattern: bytes.baseAddress)
        count = bytes.count
    }

    static let empty = MappedBytes(owner: nil, bytes: UnsafeRawBufferPointer(start: nil, count: 0))

    /// Runs `body` on the bytes while the mapping is certainly alive.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(owner) { try body(UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: start), count: count)) }
    }
}
