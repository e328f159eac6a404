@testable import FUSEMount
import ChunkCache
import Fetcher
import Foundation
import ObjectStore
import Testing
import TestSupport

/// A read's reply points into the cache file's mapping; the `madvise` after the reply too. A
/// RELEASE of the last handle (on another FUSE thread, once the kernel has the reply) must not
/// unmap those bytes under them: a range unmapped and reused by the heap would be zeroed.
struct ReadLifetimeTests {
    @Test func aReadsBytesOutliveTheLastRelease() async throws {
        let root = try TestEnvironment.scratchDirectory("read-lifetime")
        let storeDir = root.appendingPathComponent("store").path
        try FileManager.default.createDirectory(atPath: storeDir, withIntermediateDirectories: true)
        let bytes = TestBytes.generate(count: 300_000, seed: 91)
        try bytes.write(to: URL(fileURLWithPath: "\(storeDir)/x.bin"))
        let store = FileStore(root: storeDir)
        let cache = try ChunkCache(directory: root.appendingPathComponent("cache").path, store: store,
                                   options: FetchOptions(concurrency: 2, chunkSize: 64 << 10))
        let table = InodeTable(objects: [try await store.stat("x.bin")], prefix: "")
        let fs = FileSystem(table: table, cache: cache, storeLocation: store.location, options: MountOptions())
        let node = try #require(table.lookup(parent: InodeTable.rootInode, name: "x.bin"))
        let handle = try await fs.open(node)
        var read: MappedBytes? = try await fs.read(handle: handle, offset: 4096, size: 100_000)
        await fs.release(handle: handle)
        // The handle and the file system's share are gone; the read still holds its bytes.
        read?.withBytes { #expect(Data($0) == bytes[4096..<104_096]) }
        weak let mapping = read?.owner
        #expect(mapping != nil)
        read = nil
        #expect(mapping == nil, "the mapping outlived the last read that held it")
        await cache.shutdown()
    }
}
