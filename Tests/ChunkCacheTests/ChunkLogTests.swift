import Foundation
import Testing
import TestSupport

@testable import ChunkCache

/// Replaying a chunk log: every intact record, in order, past the reader's buffer.
struct ChunkLogTests {
    @Test func replaysEveryIntactRecordAcrossManyBuffers() throws {
        let path = try TestEnvironment.scratchDirectory("chunklog").appendingPathComponent("chunks").path
        var bytes: [UInt8] = []
        let count = 9_000  // more than two of the replay's 4096-record buffers
        for i in 0..<count {
            var record = ChunkRecord(chunk: i, crc32c: UInt32(truncatingIfNeeded: i &* 2_654_435_761)).encoded()
            if i == 5_000 { record[9] ^= 0xFF }  // torn: fails its own check
            bytes += record
        }
        bytes += [1, 2, 3]  // a partial record at the end (a crash mid-append)
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let records = readChunkLog(fd: fd)
        #expect(records.count == count - 1)
        #expect(records.map(\.chunk) == Array(0..<5_000) + Array(5_001..<count))
        #expect(records.allSatisfy { $0.crc32c == UInt32(truncatingIfNeeded: $0.chunk &* 2_654_435_761) })
    }
}
