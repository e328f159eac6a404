import Fetcher
import Foundation
import Testing
import TestSupport

struct BlockWriterTests {
    /// Pieces of uneven sizes (as TCP hands them to curl) land at the right offsets, every write
    /// but the range's last ends on a block boundary, and the marks it reports only grow.
    @Test(arguments: [0, 4096 * 3 + 17, 65536 - 1] as [Int64])
    func gathersPiecesIntoAlignedBlocks(start: Int64) throws {
        let path = try TestEnvironment.scratchDirectory("blocks").appendingPathComponent("f").path
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0)
        defer { close(fd) }
        let data = TestBytes.generate(count: 700_001, seed: 9)
        let writer = BlockWriter(fd: fd, path: path, blockSize: 64 << 10)
        var marks: [Int64] = []
        var done = 0
        var piece = 0
        try data.withUnsafeBytes { all in
            while done < all.count {
                piece += 1
                let n = min(all.count - done, 1 + (piece * 7919 + 12_345) % 20_000)
                try writer.append(UnsafeRawBufferPointer(rebasing: all[done..<done + n]), at: start + Int64(done)) { marks.append($0) }
                done += n
            }
        }
        try writer.finish { marks.append($0) }
        let end = start + Int64(data.count)
        #expect(marks.last == end)
        #expect(marks == marks.sorted())
        #expect(marks.dropLast().allSatisfy { $0 % (64 << 10) == 0 })
        let file = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(file.count == Int(end))
        #expect(file.suffix(from: Int(start)) == data)
    }

    /// A piece that does not continue what is gathered (a caller starting elsewhere) writes the
    /// gathered bytes first; nothing is lost or misplaced.
    @Test func aJumpWritesWhatWasGatheredFirst() throws {
        let path = try TestEnvironment.scratchDirectory("blocks-jump").appendingPathComponent("f").path
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let a = TestBytes.generate(count: 1000, seed: 1), b = TestBytes.generate(count: 3000, seed: 2)
        let writer = BlockWriter(fd: fd, path: path, blockSize: 4096)
        var marks: [Int64] = []
        try a.withUnsafeBytes { try writer.append($0, at: 0) { marks.append($0) } }
        try b.withUnsafeBytes { try writer.append($0, at: 10_000) { marks.append($0) } }
        try writer.finish { marks.append($0) }
        #expect(marks == [1000, 12_288, 13_000])  // the second piece crosses the block boundary at 12288
        let file = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(file.prefix(1000) == a)
        #expect(file.suffix(from: 10_000) == b)
    }
}
