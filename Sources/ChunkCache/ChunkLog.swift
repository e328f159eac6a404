import Posix
import SystemPackage
import Foundation
import ObjectStore

/// The durable record that a chunk's bytes are in the data file: 16 bytes, little-endian,
/// `magic, chunk index, CRC32C of the chunk's bytes, CRC32C of the first 12 bytes`.
///
/// Records are appended only after the chunk's data was made durable (`fdatasync`), so a
/// record on disk always describes data on disk. A torn record (a crash mid-append) fails its
/// own CRC and is ignored; a record whose chunk data does not match its CRC (the disk lied,
/// someone edited the file) makes that chunk absent. Either way the chunk is fetched again.
struct ChunkRecord: Equatable {
    static let size = 16
    static let magic: UInt32 = 0x3143_4657  // "WFC1"

    var chunk: Int
    var crc32c: UInt32

    func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        put(&bytes, 0, Self.magic)
        put(&bytes, 4, UInt32(chunk))
        put(&bytes, 8, crc32c)
        let check = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<12])) }
        put(&bytes, 12, check)
        return bytes
    }

    /// Decodes one record; nil when it is torn or not a record.
    static func decode(_ bytes: UnsafeRawBufferPointer) -> ChunkRecord? {
        guard bytes.count == size else { return nil }
        let check = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<12]))
        guard get(bytes, 0) == magic, get(bytes, 12) == check else { return nil }
        return ChunkRecord(chunk: Int(get(bytes, 4)), crc32c: get(bytes, 8))
    }

    private func put(_ b: inout [UInt8], _ at: Int, _ v: UInt32) {
        for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }

    private static func get(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) }
    }
}

/// Reads every intact record of a chunk log. A read that fails ends the replay there: the
/// chunks of the records not read are absent, and fetched again.
func readChunkLog(fd: Int32) -> [ChunkRecord] {
    var records: [ChunkRecord] = []
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ChunkRecord.size * 4096, alignment: 16)
    defer { buffer.deallocate() }
    var offset: Int64 = 0
    while true {
        // Whole buffers (EINTR and short reads retried), so records stay aligned to 16 bytes.
        guard let n = try? FileDescriptor(rawValue: fd).readAll(fromAbsoluteOffset: offset, into: buffer), n > 0 else { break }
        let whole = n - n % ChunkRecord.size
        for at in stride(from: 0, to: whole, by: ChunkRecord.size) {
            if let r = ChunkRecord.decode(UnsafeRawBufferPointer(rebasing: buffer[at..<at + ChunkRecord.size])) { records.append(r) }
        }
        offset += Int64(n)
        if n < buffer.count { break }
    }
    return records
}
