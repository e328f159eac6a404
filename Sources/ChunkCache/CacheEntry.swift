import Fetcher
import Posix
import SystemPackage
import Foundation
import ObjectStore
import Synchronization

/// The identity of cached bytes: store, object and generation. A replaced object is a new key.
///
/// Names are compared as bytes: GCS names are byte strings, and two names Swift's `String`
/// calls equal (NFC `café` and NFD `café`) are two objects.
public struct CacheKey: Hashable, Sendable, CustomStringConvertible {
    public var store: String
    public var name: String
    public var generation: Generation

    public init(store: String, name: String, generation: Generation) {
        self.store = store
        self.name = name
        self.generation = generation
    }

    public var description: String { "\(store)/\(name)#\(generation)" }

    public static func == (a: CacheKey, b: CacheKey) -> Bool {
        a.generation == b.generation && a.store.utf8.elementsEqual(b.store.utf8) && a.name.utf8.elementsEqual(b.name.utf8)
    }

    public func hash(into h: inout Hasher) {
        h.combine(generation)
        for b in store.utf8 { h.combine(b) }
        h.combine(0 as UInt8)
        for b in name.utf8 { h.combine(b) }
    }

    /// The entry's directory name: the SHA-256 of store, name and generation (object names can
    /// be long or contain anything). A name that could collide would let one object's entry
    /// take over another's files (a 64-bit CRC pair did: CRC is affine in its seed, so it
    /// carried 32 bits).
    var directoryName: String {
        SHA256.hex(Array("\(store)\u{0}\(name)\u{0}\(generation.rawValue)".utf8))
    }

    /// Whether `name` has the shape of `directoryName` (entries of older layouts do not).
    static func isDirectoryName(_ name: String) -> Bool {
        name.utf8.count == 64 && name.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// What `meta.json` holds: enough to know whose bytes the entry has and how they are split.
struct EntryMeta: Codable, Equatable {
    var store: String
    var name: String
    var generation: Int64
    var size: Int64
    var chunkSize: Int64
    var crc32c: UInt32?

    var key: CacheKey { CacheKey(store: store, name: name, generation: Generation(generation)) }

    static func read(_ entry: Directory) -> EntryMeta? {
        guard let bytes = entry.contents("meta.json") else { return nil }
        return try? JSONDecoder().decode(EntryMeta.self, from: Data(bytes))
    }
}

/// The chunks of `chunkSize` bytes that `r` touches (none for an empty range).
func chunkIndices(covering r: ByteRange, chunkSize: Int64) -> Range<Int> {
    guard !r.isEmpty else { return 0..<0 }
    return Int(r.lowerBound / chunkSize)..<Int((r.upperBound - 1) / chunkSize + 1)
}

/// One object generation on disk: a sparse `data` file laid out like the object, the chunk log,
/// and `meta.json`. Owned by the `ChunkCache` actor; never shared.
final class CacheEntry {
    let key: CacheKey
    let info: ObjectInfo
    let directoryName: String
    let directory: String
    let dataPath: String
    let chunkSize: Int64
    let chunkCount: Int
    let dataFD: Int32
    let logFD: Int32
    var states: [ChunkState]
    /// The present bits of `states`, for readers off the actor (set by `ChunkCache.complete`
    /// once a finished object has passed its whole-object check).
    let presence: ChunkPresence
    var crcs: [UInt32]
    /// Chunks a previous run logged, not yet verified in this one: chunk → logged CRC32C.
    var claimed: [Int: UInt32] = [:]
    /// Claimed chunks whose check is running (taken out of `claimed` when it starts): the cache
    /// holds their bytes unless the check fails (`ChunkCache.isLocal`).
    var verifying: Set<Int> = []
    var waiters: [Int: [CheckedContinuation<Void, Error>]] = [:]
    /// In-flight chunks: how far their GETs have written.
    var progress: [Int: ChunkProgress] = [:]
    /// Queued demand chunks: the offset the first demand read starts at.
    var demandStart: [Int: Int64] = [:]
    var pins = 0
    var inFlight = 0
    var presentBytes: Int64 = 0
    var presentCount = 0
    var lastUsed: UInt64 = 0
    /// Set when the finished object failed its whole-object CRC32C.
    var failure: Error?
    /// Bumped by `reset`: records of chunks committed before it must not reach the log (the
    /// durability thread checks it before each append).
    let epoch = Atomic<Int>(0)

    /// Opens (creating if needed) the entry and replays its chunk log (see `recover`).
    /// `reserve`: a fresh entry's data file gets all of the object's blocks at once (`reserveBlocks`).
    /// `objects` is the cache's checked objects directory (`root` its path, for messages): the
    /// entry's directory and files are opened relative to it and never through a symlink.
    init(key: CacheKey, info: ObjectInfo, objects: Directory, root: String, chunkSize requested: Int64, reserve: Bool = true) throws {
        self.key = key
        self.info = info
        directoryName = key.directoryName
        directory = "\(root)/\(directoryName)"
        dataPath = "\(directory)/data"
        let here: Directory
        do { here = try objects.makeDirectory(directoryName, mode: 0o700) } catch {
            throw StoreError.local(path: directory, errno: error.rawValue, operation: "create the cache entry's directory")
        }
        var meta = EntryMeta(store: key.store, name: key.name, generation: key.generation.rawValue, size: info.size, chunkSize: requested, crc32c: info.crc32c)
        var fresh = true
        if let old = EntryMeta.read(here) {
            if old.key == key, old.size == meta.size, old.chunkSize > 0 {
                meta.chunkSize = old.chunkSize  // the entry keeps the chunk size its log was written with
                fresh = false
            }
        }
        chunkSize = meta.chunkSize
        chunkCount = Int((info.size + chunkSize - 1) / chunkSize)
        states = Array(repeating: .absent, count: chunkCount)
        presence = ChunkPresence(chunkCount: chunkCount)
        crcs = Array(repeating: 0, count: chunkCount)

        if fresh {
            // Log first, then meta: a crash in between leaves a meta-less entry, which is fresh again.
            here.remove("chunks")
            here.remove("data")
            let encoded = try JSONEncoder().encode(meta)
            do { try here.replaceFile("meta.json", with: Array(encoded)) } catch {
                throw StoreError.local(path: "\(directory)/meta.json", errno: error.rawValue, operation: "write the cache entry's meta.json")
            }
        }
        do { dataFD = try here.openFile("data", O_RDWR | O_CREAT) } catch {
            throw StoreError.local(path: dataPath, errno: error.rawValue, operation: "open cache data file")
        }
        do { logFD = try here.openFile("chunks", O_RDWR | O_CREAT | O_APPEND) } catch {
            close(dataFD)
            throw StoreError.local(path: "\(directory)/chunks", errno: error.rawValue, operation: "open chunk log")
        }
        // From here every stored property is set: a throw runs deinit, which closes both fds.
        guard ftruncate(dataFD, off_t(info.size)) == 0 else {
            throw StoreError.local(path: dataPath, errno: errno, operation: "size the cache data file to \(info.size) bytes (is the disk full?)")
        }
        if fresh && reserve { reserveBlocks() }
        if !fresh { recover() }
    }

    /// Reserves the fresh data file's blocks (`preallocate`) — on disk only (in memory that would
    /// take the whole object's memory at once), and only with room to spare (a reservation must
    /// not leave the disk full for the other entries' writes). Nothing is written yet, so a
    /// reservation that fails part-way is undone by truncating: the file stays sparse and serves
    /// what fits.
    private func reserveBlocks() {
        let headroom: Int64 = 256 << 20
        guard !isInMemory(dataFD), let free = availableBytes(dataFD), free >= info.size + headroom else { return }
        if preallocate(dataFD, bytes: info.size) != 0 {
            _ = ftruncate(dataFD, 0)
            _ = ftruncate(dataFD, off_t(info.size))
        }
    }

    deinit {
        if dataFD >= 0 { close(dataFD) }
        if logFD >= 0 { close(logFD) }
    }

    func range(of chunk: Int) -> ByteRange {
        let start = Int64(chunk) * chunkSize
        return ByteRange(start, min(start + chunkSize, info.size))
    }

    func chunks(covering r: ByteRange) -> Range<Int> { chunkIndices(covering: r, chunkSize: chunkSize) }

    var isComplete: Bool { presentCount == chunkCount }

    /// Replays the log: each chunk it claims (the last record wins) is remembered with its
    /// CRC32C, to be verified against the data the first time someone needs the chunk. Lazy, so
    /// opening a large cached object costs no read of its bytes.
    private func recover() {
        for r in readChunkLog(fd: logFD) where r.chunk < chunkCount { claimed[r.chunk] = r.crc32c }
    }

    /// Reads `chunk` back and checks it against its logged CRC32C (off the actor; the data file
    /// is only ever written by fetches of absent chunks, never of a chunk being verified).
    static func verify(fd: Int32, range: ByteRange, crc: UInt32) -> Bool {
        // 1 MiB at a time through a buffer kept for the next verification: a fresh 8 MiB buffer
        // per chunk cost 2048 zero-filled page faults, a third of the daemon's CPU on a warm read.
        let buffer = VerifyBuffers.shared.take()
        defer { VerifyBuffers.shared.give(buffer) }
        var c = CRC32C()
        var done: Int64 = 0
        while done < range.count {
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(min(Int64(buffer.count), range.count - done))])
            guard (try? FileDescriptor(rawValue: fd).readExactly(fromAbsoluteOffset: range.lowerBound + done, into: part)) != nil else { return false }
            c.update(UnsafeRawBufferPointer(part))
            done += Int64(part.count)
        }
        return c.value == crc
    }

    func markAbsent(_ chunk: Int) {
        presence.remove(chunk)
        if states[chunk] == .present {
            presentBytes -= range(of: chunk).count
            presentCount -= 1
        }
        states[chunk] = .absent
        verifying.remove(chunk)
    }

    func markPresent(_ chunk: Int, crc: UInt32) {
        if states[chunk] != .present {
            presentBytes += range(of: chunk).count
            presentCount += 1
        }
        states[chunk] = .present
        crcs[chunk] = crc
        verifying.remove(chunk)
    }

    /// Appends the durable record for a chunk whose data is already synced.
    func appendRecord(_ chunk: Int, crc: UInt32) throws {
        let bytes = ChunkRecord(chunk: chunk, crc32c: crc).encoded()
        let before = lseek(logFD, 0, SEEK_END)
        let log = FileDescriptor(rawValue: logFD)
        var failure: Errno? = nil
        bytes.withUnsafeBytes { b in
            do throws(Errno) { try log.writeAllBytes(b) } catch { failure = error }
        }
        if let failure {
            // A partial record would misalign every later one: cut it off.
            if before >= 0 { ftruncate(logFD, before) }
            throw StoreError.local(path: "\(directory)/chunks", errno: failure.rawValue, operation: "append chunk record")
        }
    }

    /// The whole object's CRC32C from its chunks' (valid once complete).
    func combinedCRC() -> UInt32 {
        var crc: UInt32 = 0
        for c in 0..<chunkCount { crc = CRC32C.combine(crc, crcs[c], lengthOfB: range(of: c).count) }
        return crc
    }

    /// Forgets every chunk (after a failed whole-object check). The caller empties the log on the
    /// durability thread (`DurabilityQueue.truncate`), after any append already under way.
    func reset() {
        epoch.add(1, ordering: .sequentiallyConsistent)
        claimed = [:]
        verifying = []
        presence.removeAll()
        states = Array(repeating: .absent, count: chunkCount)
        presentBytes = 0
        presentCount = 0
    }
}

/// Reusable 1 MiB buffers for `CacheEntry.verify` (at most one per concurrent verification).
final class VerifyBuffers: Sendable {
    static let shared = VerifyBuffers()
    private let free = Mutex<[UnsafeMutableRawBufferPointerBox]>([])

    func take() -> UnsafeMutableRawBufferPointer {
        if let b = free.withLock({ $0.popLast() }) { return b.buffer }
        return UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
    }

    func give(_ buffer: UnsafeMutableRawBufferPointer) {
        free.withLock { $0.append(UnsafeMutableRawBufferPointerBox(buffer: buffer)) }
    }
}

/// `@unchecked Sendable`: a buffer is used by one verification at a time (taken, then given back).
struct UnsafeMutableRawBufferPointerBox: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
}
