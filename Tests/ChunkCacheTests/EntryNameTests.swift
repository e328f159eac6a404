import ChunkCache
import Fetcher
import Foundation
import ObjectStore
import Testing
import TestSupport

/// Cache entries are named by a SHA-256 of their key, so no two objects share an entry's files.
struct EntryNameTests {
    /// A `file://` store in a fresh directory whose objects all get generation `generation`
    /// (the file store's generation is the mtime in nanoseconds).
    struct Files {
        let root: URL
        let store: FileStore
        let generation: Int64 = 1_700_000_000_123_456_789

        init(_ label: String) throws {
            root = try TestEnvironment.scratchDirectory(label)
            store = FileStore(root: root.appendingPathComponent("store").path)
            try FileManager.default.createDirectory(atPath: store.root + "/m", withIntermediateDirectories: true)
        }

        func put(_ name: String, _ data: Data) throws {
            let path = "\(store.root)/\(name)"
            try data.write(to: URL(fileURLWithPath: path))
            var times = [timespec(tv_sec: Int(generation / 1_000_000_000), tv_nsec: Int(generation % 1_000_000_000)),
                         timespec(tv_sec: Int(generation / 1_000_000_000), tv_nsec: Int(generation % 1_000_000_000))]
            #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        }

        func read(_ cache: ChunkCache, _ object: CachedObject, _ range: ByteRange) async throws -> Data {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(range.count), alignment: 8)
            defer { buffer.deallocate() }
            try await cache.read(object, range: range, into: buffer)
            return Data(buffer)
        }
    }

    /// The entry name of earlier versions: two CRC32Cs of the key with different seeds and the
    /// key's length. CRC is affine in its seed, so keys of one length whose first CRCs agree
    /// agree in the second too: the name carried 32 bits, and a birthday search finds a pair.
    static func legacyName(_ key: String) -> String {
        var a = CRC32C(), b = CRC32C(value: 0x5EED)
        let text = Array(key.utf8)
        text.withUnsafeBytes { a.update($0); b.update($0) }
        return String(format: "%08x%08x-%x", a.value, b.value, text.count)
    }

    /// Two object names of one length whose legacy entry names collide in `files`' store
    /// (a birthday search over the first CRC, extended from the key's common prefix).
    static func collidingNames(_ files: Files) -> (String, String) {
        let prefix = Array("\(files.store.location)\u{0}m/w".utf8), suffix = Array(".bin\u{0}\(files.generation)".utf8)
        let head = prefix.withUnsafeBytes { CRC32C.checksum($0) }
        var seen: [UInt32: Int] = [:]
        var middle = [UInt8](repeating: 0x30, count: 8)
        for i in 0..<4_000_000 {
            var n = i
            for k in (0..<8).reversed() { middle[k] = UInt8(0x30 + n % 10); n /= 10 }
            var crc = CRC32C(value: head)
            (middle + suffix).withUnsafeBytes { crc.update($0) }
            if let j = seen[crc.value] {
                let pair = (String(format: "m/w%08d.bin", j), String(format: "m/w%08d.bin", i))
                let key = { (name: String) in "\(files.store.location)\u{0}\(name)\u{0}\(files.generation)" }
                #expect(legacyName(key(pair.0)) == legacyName(key(pair.1)))
                return pair
            }
            seen[crc.value] = i
        }
        Issue.record("no colliding pair among 4 million names (expected one after ~80 thousand)")
        return ("", "")
    }

    /// Reproduces the defect a review found: with the legacy names, opening B unlinked A's data
    /// file and created B's at the same path, so a mapping of A's entry (what the mount and the
    /// runtime read) served B's bytes.
    @Test func objectsWhoseLegacyEntryNamesCollideKeepTheirOwnBytes() async throws {
        let files = try Files("entry-collide")
        let (nameA, nameB) = Self.collidingNames(files)
        try #require(!nameA.isEmpty)
        let dataA = TestBytes.generate(count: 3 << 20, seed: 21), dataB = TestBytes.generate(count: 3 << 20, seed: 22)
        try files.put(nameA, dataA)
        try files.put(nameB, dataB)
        let infoA = try await files.store.stat(nameA), infoB = try await files.store.stat(nameB)
        try #require(infoA.generation == Generation(files.generation) && infoB.generation == infoA.generation)

        let dir = files.root.appendingPathComponent("cache").path
        let cache = try ChunkCache(directory: dir, store: files.store, options: FetchOptions(concurrency: 2, chunkSize: 1 << 20))
        let a = try await cache.open(infoA)
        #expect(try await files.read(cache, a, ByteRange(0, 1 << 20)) == dataA[0..<(1 << 20)])
        let b = try await cache.open(infoB)
        #expect(a.dataPath != b.dataPath)
        #expect(try await files.read(cache, b, ByteRange(0, infoB.size)) == dataB)
        #expect(try await files.read(cache, a, ByteRange(0, infoA.size)) == dataA)
        // What a mapping of each entry's file holds (the mount maps `dataPath`).
        #expect(FileManager.default.contents(atPath: a.dataPath) == dataA)
        #expect(FileManager.default.contents(atPath: b.dataPath) == dataB)
        await cache.close(a)
        await cache.close(b)
        await cache.shutdown()

        // A later process finds both entries whole, each with its own bytes, and fetches nothing.
        let again = try ChunkCache(directory: dir, store: files.store, options: FetchOptions(concurrency: 2, chunkSize: 1 << 20))
        let a2 = try await again.open(infoA), b2 = try await again.open(infoB)
        #expect(try await files.read(again, b2, ByteRange(0, infoB.size)) == dataB)
        #expect(try await files.read(again, a2, ByteRange(0, infoA.size)) == dataA)
        #expect(await again.stats.bytesFetched == 0)
        await again.shutdown()
    }

    /// An entry a previous version named by the legacy scheme is moved to its new name when the
    /// cache opens, and its chunks are recovered, not fetched again.
    @Test func legacyEntriesAreRenamedAndKept() async throws {
        let files = try Files("entry-legacy")
        let data = TestBytes.generate(count: (2 << 20) + 12345, seed: 23)
        try files.put("m/model.bin", data)
        let info = try await files.store.stat("m/model.bin")
        let dir = files.root.appendingPathComponent("cache").path
        let first = try ChunkCache(directory: dir, store: files.store, options: FetchOptions(concurrency: 2, chunkSize: 1 << 20))
        let object = try await first.open(info)
        #expect(try await files.read(first, object, ByteRange(0, info.size)) == data)
        await first.close(object)
        await first.shutdown()

        let objects = "\(dir)/v1/objects"
        let current = try FileManager.default.contentsOfDirectory(atPath: objects)
        try #require(current.count == 1)
        #expect(current[0].count == 64, "a SHA-256 in hex")
        let legacy = Self.legacyName("\(files.store.location)\u{0}m/model.bin\u{0}\(files.generation)")
        try FileManager.default.moveItem(atPath: "\(objects)/\(current[0])", toPath: "\(objects)/\(legacy)")
        // An entry of the old layout with no meta.json cannot be placed: it goes.
        try FileManager.default.createDirectory(atPath: "\(objects)/0000000000000000-1", withIntermediateDirectories: false)

        let second = try ChunkCache(directory: dir, store: files.store, options: FetchOptions(concurrency: 2, chunkSize: 1 << 20))
        #expect(try FileManager.default.contentsOfDirectory(atPath: objects) == current)
        let reopened = try await second.open(info)
        #expect(try await files.read(second, reopened, ByteRange(0, info.size)) == data)
        #expect(await second.stats.bytesFetched == 0)
        #expect(await second.stats.bytesRecovered == info.size)
        await second.shutdown()
    }

    /// Names are bytes: NFC `café` and NFD `café` are two objects with two entries.
    @Test func unicodeEquivalentNamesAreDistinctKeys() {
        let nfc = CacheKey(store: "gs://b", name: "m/caf\u{E9}.txt", generation: Generation(1))
        let nfd = CacheKey(store: "gs://b", name: "m/cafe\u{301}.txt", generation: Generation(1))
        #expect(nfc.name == nfd.name, "Swift's String calls them equal")
        #expect(nfc != nfd)
        #expect(Set([nfc, nfd]).count == 2)
    }
}
