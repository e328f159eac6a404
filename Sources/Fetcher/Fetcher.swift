import Posix
import SystemPackage
import Foundation
import Logging
import ObjectStore
import Synchronization

/// How the Fetcher splits and paces work.
public struct FetchOptions: Sendable {
    /// Ranged GETs in flight at once.
    public var concurrency: Int
    /// Bytes per ranged GET.
    public var chunkSize: Int64
    public var retry: RetryPolicy
    /// Check the whole-object CRC32C when a whole object was fetched.
    public var verifyChecksum: Bool
    /// How bytes reach files (`download(_:toFile:)`, the chunk cache): `WEIGHTFS_FILE_WRITES`.
    public var fileWrites: FileWriteMode

    public init(concurrency: Int = 16, chunkSize: Int64 = 8 << 20, retry: RetryPolicy = .default, verifyChecksum: Bool = true,
                fileWrites: FileWriteMode = .default) {
        self.concurrency = concurrency
        self.chunkSize = chunkSize
        self.retry = retry
        self.verifyChecksum = verifyChecksum
        self.fileWrites = fileWrites
    }
}

/// What a download did.
public struct FetchReport: Sendable {
    public var bytes: Int64
    public var chunks: Int
    /// Requests that failed and were tried again.
    public var retries: Int
    public var seconds: Double
    /// CRC32C of the bytes fetched (whole object only).
    public var crc32c: UInt32?
}

/// A range that could not be fetched, after retries when the error allowed them.
public struct FetchError: Error, Sendable, CustomStringConvertible {
    public let object: String
    public let offset: Int64
    public let attempts: Int
    public let underlying: StoreError

    public var description: String {
        attempts > 1
            ? "\(underlying) (gave up on offset \(offset) of \(object) after \(attempts) attempts)"
            : underlying.description
    }
}

/// Gets bytes of objects with parallel ranged reads, retries and integrity checks.
///
/// Each chunk is one ranged GET; a failed GET resumes from the last byte that arrived (the
/// generation is pinned, so the bytes before are still right). Memory use is the destination's:
/// bytes go from the socket to page-aligned blocks (`BlockWriter`) and `pwrite`, or the caller's buffer.
public struct Fetcher: Sendable {
    public let store: any ObjectStore
    public let options: FetchOptions
    let logger: Logger

    public init(store: any ObjectStore, options: FetchOptions = FetchOptions(), logger: Logger = Logger(label: "weightfs.fetcher")) {
        self.store = store
        self.options = options
        self.logger = logger
    }

    /// Fetches `range` of `object`, handing `(objectOffset, bytes)` to `deliver` in order and
    /// retrying transient failures (a retry is urgent for what is left of the urgent bytes).
    /// Returns the range's CRC32C and how many retries it took.
    public func fetch(_ object: ObjectInfo, range: ByteRange, options readOptions: ReadOptions = ReadOptions(),
                      deliver: @escaping @Sendable (Int64, UnsafeRawBufferPointer) throws -> Void) async throws -> (crc32c: UInt32, retries: Int) {
        let progress = RangeProgress()
        let started = ContinuousClock.now
        var attemptsWithoutProgress = 0
        var attempts = 0
        while true {
            let before = progress.delivered
            let remaining = range.dropFirst(before)
            attempts += 1
            do {
                let urgent = ReadOptions(urgentBytes: max(0, readOptions.urgentBytes - before), maxHold: readOptions.maxHold)
                try await store.read(object.name, generation: object.generation, range: remaining, options: urgent) { bytes in
                    try deliver(range.lowerBound + progress.delivered, bytes)
                    progress.advance(bytes)
                }
                return (progress.crc, attempts - 1)
            } catch let failure as ReadFailure {
                if progress.delivered > before { attemptsWithoutProgress = 0 }
                attemptsWithoutProgress += 1
                let offset = range.lowerBound + progress.delivered
                let outOfTime = ContinuousClock.now - started > options.retry.totalBudget
                guard failure.error.isRetryable, attemptsWithoutProgress < options.retry.maxAttempts, !outOfTime else {
                    throw FetchError(object: "\(store.location)/\(object.name)", offset: offset, attempts: attempts, underlying: failure.error)
                }
                let wait = options.retry.delay(afterAttempt: attemptsWithoutProgress)
                logger.debug("retrying \(object.name) at offset \(offset) in \(wait): \(failure.error)")
                try await Task.sleep(for: wait)
            }
        }
    }

    /// Downloads the whole object into `fd` (at the object's own offsets) with up to
    /// `concurrency` ranged reads in flight, then checks its CRC32C. `fd` must be open for
    /// reading and writing for `FileWriteMode.mapped` (else that falls back to pwrite) and the
    /// file at least the object's size.
    public func download(_ object: ObjectInfo, toFile fd: Int32, path: String,
                         progress: ByteCounter? = nil) async throws -> FetchReport {
        let started = ContinuousClock.now
        let chunks = chunkRanges(object.size)
        var crcs = [UInt32](repeating: 0, count: chunks.count)
        var retries = 0
        try await forEachChunk(chunks) { _, range in
            let writer = BlockWriter(fd: fd, path: path, range: range, mode: options.fileWrites)
            let result = try await fetch(object, range: range) { offset, bytes in
                try writer.append(bytes, at: offset) { _ in }
                progress?.add(Int64(bytes.count))
            }
            try writer.finish { _ in }
            return result
        } completed: { index, result in
            crcs[index] = result.crc32c
            retries += result.retries
        }
        let crc = try verify(object, chunks: chunks, crcs: crcs)
        return FetchReport(bytes: object.size, chunks: chunks.count, retries: retries,
                           seconds: (ContinuousClock.now - started).seconds, crc32c: crc)
    }

    /// Downloads the whole object and writes it *in order* to `write` (a pipe, stdout).
    /// Chunks are fetched in parallel into at most `concurrency` chunk buffers.
    public func download(_ object: ObjectInfo, inOrderTo write: (UnsafeRawBufferPointer) throws -> Void) async throws -> FetchReport {
        let started = ContinuousClock.now
        let chunks = chunkRanges(object.size)
        var crcs = [UInt32](repeating: 0, count: chunks.count)
        var retries = 0
        var ready: [Int: ChunkBuffer] = [:]
        var nextToWrite = 0
        // At most `concurrency` chunks are fetched or waiting to be written, so that many buffers
        // serve the whole object: each is faulted in once, not once per chunk (page faults and
        // zeroing were a third of the process's CPU time with a fresh buffer per chunk).
        let pool = ChunkBufferPool(bytes: Int(options.chunkSize))
        try await forEachChunk(chunks, window: options.concurrency, isWritten: { nextToWrite }) { index, range in
            let buffer = pool.take()
            do {
                let result = try await fetch(object, range: range) { offset, bytes in
                    buffer.copy(bytes, at: Int(offset - range.lowerBound))
                }
                return (result, buffer)
            } catch {
                pool.give(buffer)
                throw error
            }
        } completed: { index, value in
            let (result, buffer) = value
            crcs[index] = result.crc32c
            retries += result.retries
            ready[index] = buffer
            while let b = ready.removeValue(forKey: nextToWrite) {
                defer { pool.give(b) }
                try b.withBytes(count: Int(chunks[nextToWrite].count), write)
                nextToWrite += 1
            }
        }
        let crc = try verify(object, chunks: chunks, crcs: crcs)
        return FetchReport(bytes: object.size, chunks: chunks.count, retries: retries,
                           seconds: (ContinuousClock.now - started).seconds, crc32c: crc)
    }

    func chunkRanges(_ size: Int64) -> [ByteRange] {
        stride(from: Int64(0), to: size, by: Int(options.chunkSize)).map { ByteRange($0, min($0 + options.chunkSize, size)) }
    }

    /// Runs `work` for every chunk with at most `concurrency` in flight; `completed` runs on
    /// the caller's task, one at a time. With `window`, chunk i starts only once chunk
    /// i - window has been consumed (bounded reorder buffer).
    private func forEachChunk<T: Sendable>(_ chunks: [ByteRange], window: Int? = nil, isWritten: () -> Int = { 0 },
                                           _ work: @escaping @Sendable (Int, ByteRange) async throws -> T,
                                           completed: (Int, T) throws -> Void) async throws {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            var next = 0
            var inFlight = 0
            func startMore() {
                while next < chunks.count, inFlight < options.concurrency, window.map({ next < isWritten() + $0 }) ?? true {
                    let i = next
                    let range = chunks[i]
                    group.addTask { (i, try await work(i, range)) }
                    next += 1
                    inFlight += 1
                }
            }
            startMore()
            while let (i, value) = try await group.next() {
                inFlight -= 1
                try completed(i, value)
                startMore()
            }
        }
    }

    private func verify(_ object: ObjectInfo, chunks: [ByteRange], crcs: [UInt32]) throws -> UInt32 {
        var crc: UInt32 = 0
        for (range, c) in zip(chunks, crcs) { crc = CRC32C.combine(crc, c, lengthOfB: range.count) }
        if options.verifyChecksum, let expected = object.crc32c, expected != crc {
            throw FetchError(object: "\(store.location)/\(object.name)", offset: 0, attempts: 1,
                             underlying: .checksumMismatch(location: "\(store.location)/\(object.name)", expected: expected, actual: crc))
        }
        return crc
    }
}

/// Bytes and CRC of one range so far; written on the I/O thread, read after the await.
final class RangeProgress: Sendable {
    private let state = Mutex<(delivered: Int64, crc: CRC32C)>((0, CRC32C()))
    var delivered: Int64 { state.withLock { $0.delivered } }
    var crc: UInt32 { state.withLock { $0.crc.value } }
    func advance(_ bytes: UnsafeRawBufferPointer) {
        state.withLock {
            $0.crc.update(bytes)
            $0.delivered += Int64(bytes.count)
        }
    }
}

/// One chunk's bytes in memory, filled by the I/O thread, then written out in order.
final class ChunkBuffer: @unchecked Sendable {  // written by one transfer at a time, read after it completes
    private let storage: UnsafeMutableRawBufferPointer
    init(count: Int) {
        // 2 MiB aligned and marked for huge pages: 512 times fewer faults and TLB entries for
        // the copy into it (a hint: where the kernel gives none, small pages serve).
        let huge = 2 << 20
        storage = .allocate(byteCount: max(count, 1), alignment: count >= huge ? huge : 4096)
        if count >= huge { _ = madvise(storage.baseAddress!, count & ~(huge - 1), MADV_HUGEPAGE) }
    }
    deinit { storage.deallocate() }
    func copy(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        precondition(offset >= 0 && offset + bytes.count <= storage.count, "chunk buffer overrun")
        storage.baseAddress!.advanced(by: offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
    }
    /// The first `count` bytes (a chunk may be shorter than the buffer: the object's last).
    func withBytes(count: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        try body(UnsafeRawBufferPointer(rebasing: storage[..<min(count, storage.count)]))
    }
}

/// Chunk buffers of one size handed out again once written: a download of any size touches
/// only as many as are in flight at once.
final class ChunkBufferPool: Sendable {
    private let bytes: Int
    private let free = Mutex<[ChunkBuffer]>([])
    init(bytes: Int) { self.bytes = bytes }
    func take() -> ChunkBuffer { free.withLock { $0.popLast() } ?? ChunkBuffer(count: bytes) }
    func give(_ buffer: ChunkBuffer) { free.withLock { $0.append(buffer) } }
}

/// Every byte of `bytes` written at `offset` of the file open as `fd` (`path` names it in errors).
public func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64, path: String) throws {
    do throws(Errno) { try FileDescriptor(rawValue: fd).writeAllBytes(at: offset, bytes) } catch {
        throw StoreError.local(path: path, errno: error.rawValue, operation: "write of \(bytes.count) bytes at offset \(offset)")
    }
}

