import FUSEMount
import Foundation
import ObjectStore
import Testing
import TestSupport

/// Object names are bytes: NFC `café.txt` and NFD `café.txt` are two GCS objects, and each must
/// be listed and read by its own bytes (Swift's `String` calls them equal; the mount once listed
/// one of them and served the NFD object's bytes under the NFC name).
@Suite(.serialized)
struct UnicodeNameTests {
    static let nfc = "caf\u{E9}.txt", nfd = "cafe\u{301}.txt"

    @Test func unicodeEquivalentNamesAreTwoNodes() {
        let objects = [Self.nfc, Self.nfd, "d\u{E9}j\u{E0}/x.bin", "de\u{301}ja\u{300}/y.bin"].enumerated().map { i, name in
            ObjectInfo(name: "m/\(name)", size: Int64(10 + i), generation: Generation(1))
        }
        let table = InodeTable(objects: objects, prefix: "m/")
        #expect(table.skipped.isEmpty)
        #expect(table.fileCount == 4)
        let root = InodeTable.rootInode
        #expect(table.lookup(parent: root, name: Array(Self.nfc.utf8))?.object?.size == 10)
        #expect(table.lookup(parent: root, name: Array(Self.nfd.utf8))?.object?.size == 11)
        // Two directories too, each with its own file.
        let composed = table.lookup(parent: root, name: "d\u{E9}j\u{E0}".utf8), decomposed = table.lookup(parent: root, name: "de\u{301}ja\u{300}".utf8)
        #expect(composed != nil && decomposed != nil && composed?.number != decomposed?.number)
        #expect(composed.flatMap { table.lookup(parent: $0.number, name: "x.bin") } != nil)
        #expect(decomposed.flatMap { table.lookup(parent: $0.number, name: "y.bin") } != nil)
        #expect(table[root]?.children.count == 4)
    }

    /// The file's bytes, opened by exactly these path bytes.
    func read(_ path: [UInt8]) -> Data? {
        let fd = (path + [0]).withUnsafeBufferPointer { p in p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { open($0, O_RDONLY) } }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return out
    }

    /// The directory's entries as raw bytes.
    func list(_ path: String) -> Set<[UInt8]> {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: Set<[UInt8]> = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name != Array(".".utf8), name != Array("..".utf8) { names.insert(name) }
        }
        return names
    }

    @Test func eachNameReadsItsOwnBytesThroughTheMount() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("mnt-unicode")
        let composed = TestBytes.generate(count: 300_000, seed: 61), decomposed = TestBytes.generate(count: 200_000, seed: 62)
        try await emulator.upload(bucket, "m/\(Self.nfc)", data: composed)
        try await emulator.upload(bucket, "m/\(Self.nfd)", data: decomposed)
        let listed = try await emulator.store(bucket).listAll(prefix: "m/")
        try #require(Set(listed.map { Array($0.name.utf8) }).count == 2, "the emulator keeps both names")
        let mount = try MountProcess(url: "gs://\(bucket)/m", endpoint: emulator.url)
        defer { mount.stop() }
        #expect(list(mount.mountpoint) == [Array(Self.nfc.utf8), Array(Self.nfd.utf8)])
        #expect(read(Array("\(mount.mountpoint)/".utf8) + Array(Self.nfc.utf8)) == composed)
        #expect(read(Array("\(mount.mountpoint)/".utf8) + Array(Self.nfd.utf8)) == decomposed)
    }
}
