#if canImport(Glibc)
import Glibc
#endif
import ObjectStore
import Synchronization

/// Gathers one range's bytes, as they arrive in order, into blocks that start and end at
/// multiples of `blockSize` in the file, and writes each block with one `pwrite`.
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
    private let buffer: UnsafeMutableRawPointer
    /// File offset of `buffer[0]`, and how many bytes are gathered.
    private var start: Int64 = 0
    private var count = 0

    /// 64 KiB: faster and cheaper than writing as bytes came, and than 256 KiB blocks, which
    /// measured slower (BENCHMARKS finding 8).
    public init(fd: Int32, path: String, blockSize: Int = 64 << 10) {
        precondition(blockSize > 0 && blockSize % 4096 == 0, "block size must be a multiple of the page size")
        self.fd = fd
        self.path = path
        self.blockSize = blockSize
        buffer = BlockPool.shared.take(blockSize)
    }

    deinit { BlockPool.shared.give(buffer, blockSize) }

    /// Takes `bytes` for file offset `offset`; `written(end)` runs after each `pwrite` with the
    /// file offset up to which this writer's bytes are now in the file.
    public func append(_ bytes: UnsafeRawBufferPointer, at offset: Int64, written: (Int64) -> Void) throws {
        // Not the continuation of what is gathered (a caller restarting elsewhere): write that first.
        if count > 0 && start + Int64(count) != offset { try flush(written) }
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
        try pwriteAll(fd, UnsafeRawBufferPointer(start: buffer, count: n), at: start, path: path)
        written(start + Int64(n))
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
