import Foundation
import Posix
import SystemPackage
import Testing
import TestSupport

/// Whole reads and writes: they continue until done, and only the end of the file ends a read.
struct FileDescriptorAllTests {
    func scratchFile() throws -> (FileDescriptor, String) {
        let path = try TestEnvironment.scratchDirectory("posix").appendingPathComponent("f").path
        return (try FileDescriptor.open(path, .readWrite, options: [.create, .truncate], permissions: [.ownerReadWrite]), path)
    }

    @Test func writesAndReadsBackAtAnyOffset() throws {
        let (fd, _) = try scratchFile()
        defer { try? fd.close() }
        let data = [UInt8](TestBytes.generate(count: (3 << 20) + 123, seed: 5))
        try data.withUnsafeBytes { try fd.writeAllBytes(at: 4096, $0) }
        var back = [UInt8](repeating: 0, count: data.count)
        let n = try back.withUnsafeMutableBytes { try fd.readAll(fromAbsoluteOffset: 4096, into: $0) }
        #expect(n == data.count && back == data)
        // The hole before it reads as zeros.
        var head = [UInt8](repeating: 1, count: 4096)
        try head.withUnsafeMutableBytes { try fd.readExactly(fromAbsoluteOffset: 0, into: $0) }
        #expect(head.allSatisfy { $0 == 0 })
    }

    @Test func onlyTheEndOfTheFileEndsAReadEarly() throws {
        let (fd, _) = try scratchFile()
        defer { try? fd.close() }
        try [UInt8](repeating: 7, count: 100).withUnsafeBytes { try fd.writeAllBytes($0) }
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(try buffer.withUnsafeMutableBytes { try fd.readAll(fromAbsoluteOffset: 60, into: $0) } == 40)
        #expect(throws: Errno.ioError) { try buffer.withUnsafeMutableBytes { try fd.readExactly(fromAbsoluteOffset: 60, into: $0) } }
        #expect(try buffer.withUnsafeMutableBytes { try fd.readAll(fromAbsoluteOffset: 100, into: $0) } == 0)
    }

    @Test func errorsCarryTheErrno() throws {
        let (fd, path) = try scratchFile()
        try fd.close()
        let readOnly = try FileDescriptor.open(path, .readOnly)
        defer { try? readOnly.close() }
        #expect(throws: Errno.badFileDescriptor) { try [UInt8](repeating: 0, count: 8).withUnsafeBytes { try readOnly.writeAllBytes(at: 0, $0) } }
    }
}
