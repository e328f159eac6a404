#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Foundation
import ObjectStore
import Synchronization

/// How downloaded bytes reach a file.
public enum FileWriteMode: String, Sendable, CaseIterable {
    /// Gathered into page-aligned 64 KiB blocks, each written with `pwrite`. Every filesystem
    /// serializes writes to one file (the inode lock), so one object is written by one thread at
    /// a time, however many transfers fetch it: on tmpfs that was ~2.5 GB/s on the 16-core device.
    case pwrite
    /// Copied straight from the transfer into a shared mapping of the range, its pages faulted
    /// in first by `madvise(MADV_POPULATE_WRITE)` (which reports a full disk or a short file as an
    /// error where a write through the mapping would raise SIGBUS); page faults of one file run
    /// in parallel. Falls back to `pwrite` for a range whose mapping or population fails.
    case mapped

    /// `WEIGHTFS_FILE_WRITES` (pwrite or mapped); unset, `automatic(cores:)` for this machine.
    public static let `default`: FileWriteMode = {
        let automatic = FileWriteMode.automatic(cores: ProcessInfo.processInfo.activeProcessorCount)
        guard let text = ProcessInfo.processInfo.environment["WEIGHTFS_FILE_WRITES"], !text.isEmpty else { return automatic }
        guard let mode = FileWriteMode(rawValue: text) else {
            FileHandle.standardError.write(Data("weightfs: WEIGHTFS_FILE_WRITES=\(text) is not one of pwrite, mapped; using \(automatic.rawValue)\n".utf8))
            return automatic
        }
        return mode
    }()

    /// Mapped on 8 cores or more, pwrite below. On the 16-core device a copy into tmpfs ran
    /// 1.5× faster mapped (3.3 against 2.2 GB/s) at less CPU per GiB (2.0 against 3.0 s); on 2
    /// cores it was no faster and cost ~30 % more CPU (docs/BENCHMARKS.md, session 11).
    public static func automatic(cores: Int) -> FileWriteMode { cores >= 8 ? .mapped : .pwrite }
}

/// Gathers one range's bytes, as they arrive in order, into blocks that start and end at
/// multiples of `blockSize` in the file, and writes each block with one `pwrite`; or, in
/// `FileWriteMode.mapped`, copies them into a shared mapping of the range as they arrive.
///
/// libcurl hands a transfer's body over at most 16 KiB at a time, in sizes that follow the TCP
/// segments: written as they come, a GiB took ~65 000 `pwrite` calls, and every write that began
/// or ended inside a page made ext4 zero the rest of that page first (`memset` was 4 % of a cold
/// mount's CPU). Gathered, writes cover whole pages except at the range's own ends.
///
/// One transfer uses a writer at a time (a range's deliveries come one after another), so the
/// class is `@unchecked Sendable`. Memory: one block per range in flight, reused through
/// `BlockPool` (not a fresh allocation, and its page faults, per range).
public final class BlockWriter: @unchecked Sendable {
    public let fd: Int32
    public let path: String
    public let blockSize: Int
    private var buffer: UnsafeMutableRawPointer? = nil
    /// File offset of `buffer[0]`, and how many bytes are gathered.
    private var start: Int64 = 0
    private var count = 0
    /// The range's shared mapping in `.mapped` mode (nil once it fell back to pwrite).
    private var window: MappedWindow? = nil

    /// 64 KiB: faster and cheaper than writing as bytes came, and than 256 KiB blocks, which
    /// measured slower (BENCHMARKS finding 8). `range` (the bytes this writer will receive) is
    /// what `.mapped` maps; without it the writer uses pwrite.
    public init(fd: Int32, path: String, blockSize: Int = 64 << 10, range: ByteRange? = nil, mode: FileWriteMode = .default) {
        precondition(blockSize > 0 && blockSize % 4096 == 0, "block size must be a multiple of the page size")
        self.fd = fd
        self.path = path
        self.blockSize = blockSize
        if mode == .mapped, let range, !range.isEmpty { window = MappedWindow(fd: fd, range: range) }
    }

    deinit {
        if let buffer { BlockPool.shared.give(buffer, blockSize) }
    }

    /// Whether bytes go through a mapping (false: pwrite, by mode or after a fallback).
    public var isMapped: Bool { window != nil }

    /// Takes `bytes` for file offset `offset`; `written(end)` runs after each write with the
    /// file offset up to which this writer's bytes are now in the file.
    public func append(_ bytes: UnsafeRawBufferPointer, at offset: Int64, written: (Int64) -> Void) throws {
        if let window {
            if window.copy(bytes, at: offset) {
                written(offset + Int64(bytes.count))
                return
            }
            self.window = nil  // could not map or fault in: the rest by pwrite, which names any error
        }
        // Not the continuation of what is gathered (a caller restarting elsewhere): write that first.
        if count > 0 && start + Int64(count) != offset { try flush(written) }
        let buffer = self.buffer ?? BlockPool.shared.take(blockSize)
        self.buffer = buffer
        var done = 0
        while done < bytes.count {
            if count == 0 { start = offset + Int64(done) }
            let end = start + Int64(count)
            let blockEnd = (start / Int64(blockSize) + 1) * Int64(blockSize)
            let n = min(Int(blockEnd - end), bytes.count - done)
            (buffer + count).copyMemory(from: bytes.baseAddress! + done, byteCount: n)
            count += n
            done += n
            if end + Int64(n) == blockEnd { try flush(written) }
        }
    }

    /// Writes what is gathered (the range's last, partial block, or bytes a reader waits for).
    public func finish(_ written: (Int64) -> Void) throws {
        if count > 0 { try flush(written) }
    }

    /// The file offset up to which bytes are gathered and not yet written; nil if none are.
    public var gatheredEnd: Int64? { count > 0 ? start + Int64(count) : nil }

    private func flush(_ written: (Int64) -> Void) throws {
        let n = count
        count = 0  // a failed write drops the block: the caller fails the range
        try pwriteAll(fd, UnsafeRawBufferPointer(start: buffer!, count: n), at: start, path: path)
        written(start + Int64(n))
    }
}

/// A writable shared mapping of one range of a file (from the page below its start), faulted in
/// ahead of the copies a megabyte at a time.
final class MappedWindow {
    private let base: UnsafeMutableRawPointer
    private let length: Int
    /// File offset of `base`.
    private let origin: Int64
    private let end: Int64
    /// File offset up to which pages are faulted in.
    private var populated: Int64
    static let step: Int64 = 1 << 20
    /// Cleared the first time the kernel does not know MADV_POPULATE_WRITE (before Linux 5.14).
    static let kernelPopulates = Atomic<Bool>(true)
    private let page: Int64

    init?(fd: Int32, range: ByteRange) {
        guard Self.kernelPopulates.load(ordering: .relaxed) else { return nil }
        page = Int64(sysconf(Int32(_SC_PAGESIZE)))
        origin = range.lowerBound / page * page
        end = range.upperBound
        length = Int(end - origin)
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(origin)), p != MAP_FAILED else { return nil }
        base = p
        populated = origin
    }

    deinit { munmap(base, length) }

    /// Copies `bytes` to file offset `offset`; false (nothing copied) when they fall outside the
    /// range or their pages cannot be faulted in.
    func copy(_ bytes: UnsafeRawBufferPointer, at offset: Int64) -> Bool {
        let last = offset + Int64(bytes.count)
        guard offset >= origin, last <= end else { return false }
        if last > populated {
            // `populated` stays page-aligned (or the range's end), as madvise needs.
            let ahead = max(last, populated + Self.step)
            let upTo = min(end, (ahead + page - 1) / page * page)
            let rc = wfs_populate_write(base + Int(populated - origin), UInt64(upTo - populated))
            if rc == EINVAL { Self.kernelPopulates.store(false, ordering: .relaxed) }
            guard rc == 0 else { return false }
            populated = upTo
        }
        (base + Int(offset - origin)).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        return true
    }
}

/// Blocks kept for reuse: at most `limit` of each size, so the pool stays as large as the most
/// ranges that were ever in flight together, up to that bound.
final class BlockPool: Sendable {
    static let shared = BlockPool()
    /// A block nobody uses (owned by the pool while in it).
    private struct Block: @unchecked Sendable { let pointer: UnsafeMutableRawPointer }
    private let free = Mutex<[Int: [Block]]>([:])
    private let limit = 32

    func take(_ size: Int) -> UnsafeMutableRawPointer {
        free.withLock { $0[size]?.popLast() }?.pointer ?? UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
    }

    func give(_ pointer: UnsafeMutableRawPointer, _ size: Int) {
        let block = Block(pointer: pointer)
        let kept = free.withLock { pool -> Bool in
            guard pool[size, default: []].count < limit else { return false }
            pool[size, default: []].append(block)
            return true
        }
        if !kept { pointer.deallocate() }
    }
}
