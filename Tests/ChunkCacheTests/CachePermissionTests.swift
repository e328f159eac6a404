@testable import ChunkCache
import Fetcher
import Foundation
import ObjectStore
import Testing
import TestSupport

/// A weights cache on a shared node holds other people's private models: only its user may
/// read it, and a directory someone else controls is refused.
struct CachePermissionTests {
    func mode(_ path: String) -> mode_t {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & 0o777 : 0o7777
    }

    @Test func theCacheTreeIsPrivate() async throws {
        let root = try TestEnvironment.scratchDirectory("cache-private")
        let storeDir = root.appendingPathComponent("store").path
        try FileManager.default.createDirectory(atPath: storeDir, withIntermediateDirectories: true)
        try TestBytes.generate(count: 300_000, seed: 71).write(to: URL(fileURLWithPath: "\(storeDir)/model.bin"))
        let store = FileStore(root: storeDir)
        let dir = root.appendingPathComponent("cache").path
        let cache = try ChunkCache(directory: dir, store: store, options: FetchOptions(concurrency: 2, chunkSize: 64 << 10))
        let object = try await cache.open(try await store.stat("model.bin"))
        try await cache.ensure(object, range: ByteRange(0, object.info.size))
        await cache.close(object)
        await cache.shutdown()
        #expect(mode("\(dir)/v1") == 0o700)
        #expect(mode("\(dir)/v1/objects") == 0o700)
        #expect(mode("\(dir)/v1/lock") == 0o600)
        let entry = URL(fileURLWithPath: object.dataPath).deletingLastPathComponent().path
        #expect(mode(entry) == 0o700)
        for file in ["data", "chunks", "meta.json"] { #expect(mode("\(entry)/\(file)") == 0o600, "\(file)") }
    }

    @Test func anOlderLooserTreeIsTightened() throws {
        let dir = try TestEnvironment.scratchDirectory("cache-older").path
        try FileManager.default.createDirectory(atPath: "\(dir)/v1/objects", withIntermediateDirectories: true)
        chmod("\(dir)/v1", 0o755)
        _ = try ChunkCache(directory: dir, store: FileStore(root: dir))
        #expect(mode("\(dir)/v1") == 0o700)
    }

    @Test func aDirectorySomeoneElseControlsIsRefused() throws {
        func refused(_ prepare: (String) -> Void, _ words: String) throws {
            let dir = try TestEnvironment.scratchDirectory("cache-unsafe").path
            prepare("\(dir)/v1")
            do {
                _ = try ChunkCache(directory: dir, store: FileStore(root: dir))
                Issue.record("accepted a cache directory that \(words)")
            } catch let error as CacheError {
                guard case .unsafeDirectory(let path, let reason) = error else { Issue.record("\(error)"); return }
                #expect(path == "\(dir)/v1" && reason.contains(words), "\(error)")
                #expect(error.description.contains("--cache-dir"))
            }
        }
        try refused({ mkdir($0, 0o700); chown($0, 12345, 12345) }, "owned by uid 12345")
        try refused({ mkdir($0, 0o700); chmod($0, 0o777) }, "writable by other users")
        let elsewhere = try TestEnvironment.scratchDirectory("cache-elsewhere").path
        try refused({ symlink(elsewhere, $0) }, "not a directory")
    }

    /// The cache directory's path swapped for a symlink to a planted tree after the cache opened
    /// it (a directory under a place others can write): the cache keeps working where it
    /// checked, and the planted entry (its name is the key's SHA-256, which anyone can compute;
    /// a matching meta.json; `data` a link to a victim's file) is never opened.
    @Test func aPathSwappedAfterOpeningRedirectsNothing() async throws {
        let root = try TestEnvironment.scratchDirectory("cache-swap")
        let storeDir = root.appendingPathComponent("store").path
        try FileManager.default.createDirectory(atPath: storeDir, withIntermediateDirectories: true)
        let bytes = TestBytes.generate(count: 200_000, seed: 72)
        try bytes.write(to: URL(fileURLWithPath: "\(storeDir)/model.bin"))
        let store = FileStore(root: storeDir)
        let dir = root.appendingPathComponent("cache").path
        let cache = try ChunkCache(directory: dir, store: store, options: FetchOptions(concurrency: 2, chunkSize: 64 << 10))

        let victim = root.appendingPathComponent("victim").path
        try Data("precious".utf8).write(to: URL(fileURLWithPath: victim))
        let checked = root.appendingPathComponent("cache-checked").path
        #expect(rename(dir, checked) == 0)
        let info = try await store.stat("model.bin")
        let key = CacheKey(store: store.location, name: info.name, generation: info.generation)
        let planted = root.appendingPathComponent("planted").path
        let plantedEntry = "\(planted)/v1/objects/\(key.directoryName)"
        try FileManager.default.createDirectory(atPath: plantedEntry, withIntermediateDirectories: true)
        let meta = EntryMeta(store: key.store, name: key.name, generation: key.generation.rawValue, size: info.size, chunkSize: 64 << 10, crc32c: info.crc32c)
        try JSONEncoder().encode(meta).write(to: URL(fileURLWithPath: "\(plantedEntry)/meta.json"))
        #expect(symlink(victim, "\(plantedEntry)/data") == 0)
        #expect(symlink(planted, dir) == 0)

        let object = try await cache.open(info)
        try await cache.ensure(object, range: ByteRange(0, info.size))
        let mapping = try await cache.map(object)
        #expect(Data(mapping.bytes) == bytes)
        #expect(try Data(contentsOf: URL(fileURLWithPath: victim)) == Data("precious".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(checked)/v1/objects") == [key.directoryName])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(plantedEntry)/data") == victim)
        await cache.close(object)
        await cache.shutdown()
    }
}
