import Fetcher
import ObjectStore
import Foundation
import Testing
import TestSupport

struct BlockWriterTests {
    /// Unset, the mode follows the machine: mapped writes at node scale (8 cores or more), where
    /// one file's pwrites are serialized by its inode lock; pwrite below, where mapping costs more.
    @Test func theDefaultModeFollowsTheCoreCount() {
        #expect(FileWriteMode.automatic(cores: 1) == .pwrite)
        #expect(FileWriteMode.automatic(cores: 2) == .pwrite)
        #expect(FileWriteMode.automatic(cores: 7) == .pwrite)
        #expect(FileWriteMode.automatic(cores: 8) == .mapped)
        #expect(FileWriteMode.automatic(cores: 192) == .mapped)
    }

    /// Appends `data` at file offset `start` in pieces of uneven sizes up to `largestPiece` (as
    /// TCP hands them to curl); `after(marks, bytesDone)` runs after each piece. Returns the marks.
    func feed(_ data: Data, to writer: BlockWriter, at start: Int64, largestPiece: Int,
              after: ([Int64], Int) -> Void = { _, _ in }) throws -> [Int64] {
        var marks: [Int64] = []
        var done = 0
        var piece = 0
        try data.withUnsafeBytes { all in
            while done < all.count {
                piece += 1
                let n = min(all.count - done, 1 + (piece * 7919 + 12_345) % largestPiece)
                try writer.append(UnsafeRawBufferPointer(rebasing: all[done..<done + n]), at: start + Int64(done)) { marks.append($0) }
                done += n
                after(marks, done)
            }
        }
        return marks
    }

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
        var marks = try feed(data, to: writer, at: start, largestPiece: 20_000)
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

    /// `.mapped`: pieces copied into a mapping of the range land where pwrite would put them, the
    /// marks follow every piece, and the writer stays mapped (the file covers the range).
    @Test(arguments: [0, 4096 * 3 + 17, (1 << 20) - 5] as [Int64])
    func mappedWritesLandAtTheirOffsets(start: Int64) throws {
        let path = try TestEnvironment.scratchDirectory("blocks-mapped").appendingPathComponent("f").path
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0)
        defer { close(fd) }
        let data = TestBytes.generate(count: 2_500_001, seed: 10)
        let end = start + Int64(data.count)
        #expect(ftruncate(fd, off_t(end + 12_345)) == 0)
        let writer = BlockWriter(fd: fd, path: path, range: ByteRange(start, end), mode: .mapped)
        #expect(writer.isMapped)
        var marks = try feed(data, to: writer, at: start, largestPiece: 300_000) { marks, done in
            #expect(marks.last == start + Int64(done))  // a mapped writer's bytes are in the file at once
        }
        try writer.finish { marks.append($0) }
        #expect(writer.isMapped)
        #expect(marks.last == end)
        let file = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(file[Int(start)..<Int(end)] == data)
        #expect(file.prefix(Int(start)).allSatisfy { $0 == 0 } && file.suffix(from: Int(end)).allSatisfy { $0 == 0 })
    }

    /// `.mapped` over a file shorter than the range (a write through the mapping there would be
    /// SIGBUS): the pages cannot be faulted in, so the writer falls back to pwrite and the bytes
    /// still land right; a piece outside the range does the same.
    @Test func mappedFallsBackToPwriteWhereTheFileIsShort() throws {
        let path = try TestEnvironment.scratchDirectory("blocks-short").appendingPathComponent("f").path
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let data = TestBytes.generate(count: 3 << 20, seed: 12)
        #expect(ftruncate(fd, 4096) == 0)  // the range is [8192, 8192 + 3 MiB)
        let writer = BlockWriter(fd: fd, path: path, range: ByteRange(8192, 8192 + Int64(data.count)), mode: .mapped)
        try data.withUnsafeBytes { all in
            var done = 0
            while done < all.count {
                let n = min(all.count - done, 100_000)
                try writer.append(UnsafeRawBufferPointer(rebasing: all[done..<done + n]), at: 8192 + Int64(done)) { _ in }
                done += n
            }
        }
        try writer.finish { _ in }
        #expect(!writer.isMapped)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).suffix(from: 8192) == data)

        let outside = BlockWriter(fd: fd, path: path, range: ByteRange(0, 4096), mode: .mapped)
        #expect(outside.isMapped)
        let tail = TestBytes.generate(count: 10, seed: 13)
        try tail.withUnsafeBytes { try outside.append($0, at: 5000) { _ in } }  // past the range: by pwrite
        try outside.finish { _ in }
        #expect(!outside.isMapped)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path))[5000..<5010] == tail)
    }
}
