@testable import ChunkCache
import Fetcher
import Foundation
import ObjectStore
import Synchronization
import Testing
import TestSupport

/// The chunk cache against the emulator, with the link proxy counting and shaping requests.
struct ChunkCacheTests {
    func setUp(_ label: String, size: Int, seed: UInt64) async throws -> (Emulator, String, ObjectInfo, Data) {
        let (emulator, bucket) = try await Emulator.freshBucket(label)
        let data = TestBytes.generate(count: size, seed: seed)
        let info = try await emulator.upload(bucket, "model/weights.bin", data: data)
        return (emulator, bucket, info, data)
    }

    /// An object of `size` random bytes in a fresh bucket, behind a link proxy started with
    /// `link`, opened in a fresh cache directory. Stop `proxy` when done.
    struct Shaped {
        let emulator: Emulator, bucket: String, info: ObjectInfo, data: Data
        let proxy: LinkProxy, directory: URL, cache: ChunkCache, object: CachedObject
    }

    func shaped(_ label: String, size: Int, seed: UInt64, link: [String], concurrency: Int, chunkSize: Int64,
                capacity: Int64? = nil, fileWrites: FileWriteMode = .pwrite) async throws -> Shaped {
        let (emulator, bucket, info, data) = try await setUp(label, size: size, seed: seed)
        let proxy = try LinkProxy(upstream: emulator.url, arguments: link)
        do {
            let dir = try TestEnvironment.scratchDirectory(label)
            let cache = try ChunkCache(directory: dir.path, store: emulator.store(bucket, endpoint: proxy.url),
                                       options: FetchOptions(concurrency: concurrency, chunkSize: chunkSize, fileWrites: fileWrites),
                                       capacity: capacity)
            let object = try await cache.open(info)
            return Shaped(emulator: emulator, bucket: bucket, info: info, data: data, proxy: proxy, directory: dir, cache: cache, object: object)
        } catch {
            proxy.stop()
            throw error
        }
    }

    /// Reads the object's last 4 KiB through the cache; returns them and the bytes present then.
    func readLast4K(_ s: Shaped) async throws -> (bytes: Data, presentWhenServed: Int64) {
        let range = ByteRange(offset: s.info.size - 4096, length: 4096)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        try await s.cache.read(s.object, range: range, into: buffer)
        return (Data(buffer), await s.cache.presentBytes(s.object))
    }

    func mediaRequests(_ proxy: LinkProxy) async throws -> Int {
        (try await proxy.stats()["media_requests"] as? NSNumber)?.intValue ?? -1
    }

    /// A new entry's data file has the object's blocks reserved at open (writes then fill
    /// allocated blocks) when the cache has no capacity, or, with one, when the caller fetches the
    /// object whole (`preload`) and it fits; never in memory (tmpfs: reserving would take the whole
    /// object's memory at once), where the entry stays sparse and serves what is read.
    @Test func newEntriesReserveTheirBlocksOnDiskOnly() async throws {
        let (emulator, bucket, info, data) = try await setUp("prealloc", size: 3 << 20, seed: 11)
        func allocated(_ path: String) -> Int64 {
            var st = stat()
            return stat(path, &st) == 0 ? Int64(st.st_blocks) * 512 : -1
        }
        // On disk for certain: under the repository (scripts/test's scratch is in /tmp, which is
        // tmpfs on Debian 13, where nothing is ever reserved).
        let onDiskRoot = TestEnvironment.repoRoot.appendingPathComponent(".work/test-scratch/prealloc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: onDiskRoot, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: onDiskRoot) }
        var caches = 0
        func reservedAtOpen(capacity: Int64?, whole: Bool) async throws -> (allocated: Int64, onDisk: Bool) {
            caches += 1
            let cache = try ChunkCache(directory: onDiskRoot.appendingPathComponent("c\(caches)").path, store: emulator.store(bucket),
                                       options: FetchOptions(concurrency: 2, chunkSize: 1 << 20), capacity: capacity)
            let object = try await cache.open(info, whole: whole)
            let fd = open(object.dataPath, O_RDONLY)
            defer { close(fd) }
            let result = (allocated(object.dataPath), fd >= 0 && !isInMemory(fd))
            #expect(await cache.presentBytes(object) == 0)
            await cache.close(object)
            await cache.shutdown()
            return result
        }
        let unbounded = try await reservedAtOpen(capacity: nil, whole: false)
        try #require(unbounded.onDisk, "\(onDiskRoot.path) is not on disk: this check needs a disk filesystem")
        #expect(unbounded.allocated >= info.size, "blocks reserved before anything is fetched")
        let wholeFits = try await reservedAtOpen(capacity: 8 << 20, whole: true)
        #expect(wholeFits.allocated >= info.size)
        // With a capacity: not for a file that may be read only in part, nor for one larger than the capacity.
        #expect(try await reservedAtOpen(capacity: 8 << 20, whole: false).allocated == 0)
        #expect(try await reservedAtOpen(capacity: 2 << 20, whole: true).allocated == 0)

        let memory = try TestEnvironment.scratchDirectory("prealloc-memory")
        let mounted = try CommandRunner.run("/bin/mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", memory.path])
        try #require(mounted.status == 0, "mount a 16 MiB tmpfs: \(mounted.stderr)")
        defer { _ = try? CommandRunner.run("/bin/umount", ["-l", memory.path]) }  // lazily: the cache may still hold files there
        let cache = try ChunkCache(directory: memory.path, store: emulator.store(bucket), options: FetchOptions(concurrency: 2, chunkSize: 1 << 20))
        let object = try await cache.open(info)
        #expect(allocated(object.dataPath) == 0, "nothing reserved in memory, though the 3 MiB would fit")
        let range = ByteRange(offset: 100, length: 200_000)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(range.count), alignment: 8)
        defer { buffer.deallocate() }
        try await cache.read(object, range: range, into: buffer)
        #expect(Data(buffer) == data[100..<200_100])
        await cache.close(object)
        await cache.shutdown()
    }

    @Test func concurrentReadersOfOneAbsentChunkCauseOneFetch() async throws {
        let s = try await shaped("one-fetch", size: 4 << 20, seed: 1, link: ["--rate", "4MB", "--latency-ms", "50"], concurrency: 4, chunkSize: 1 << 20)
        defer { s.proxy.stop() }
        let (proxy, cache, object, data) = (s.proxy, s.cache, s.object, s.data)
        // Eight readers of different bytes inside chunk 1, all within its first 256 KiB (so the
        // demand GET starts at the chunk's head and the chunk is one GET).
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask {
                    let range = ByteRange(offset: (1 << 20) + Int64(i) * 1000, length: 4096)
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
                    defer { buffer.deallocate() }
                    try await cache.read(object, range: range, into: buffer)
                    #expect(Data(buffer) == data[Int(range.lowerBound)..<Int(range.upperBound)])
                }
            }
            try await group.waitForAll()
        }
        // The readers may wake before the chunk is complete: wait for it (a whole-chunk read does).
        try await cache.ensure(object, range: ByteRange(1 << 20, 2 << 20))
        #expect(try await mediaRequests(proxy) == 1)
        #expect(await cache.stats.chunksFetched == 1)
        await cache.shutdown()
    }

    /// In both write modes: bytes gathered and written with pwrite, or copied into a mapping.
    @Test(arguments: FileWriteMode.allCases)
    func demandReadIsServedFromItsOwnOffsetBeforeTheChunkIsWhole(writes: FileWriteMode) async throws {
        let size = 4 << 20
        // 1 MB/s per connection: the chunk's 3.75 MiB head takes ~4 s, the read's 256 KiB ~0.3 s.
        let s = try await shaped("demand-offset-\(writes)", size: size, seed: 7, link: ["--rate", "1MB"], concurrency: 2,
                                 chunkSize: Int64(size), fileWrites: writes)
        defer { s.proxy.stop() }
        let (data, proxy, cache, object) = (s.data, s.proxy, s.cache, s.object)
        let (bytes, presentWhenServed) = try await readLast4K(s)
        #expect(bytes == data[(size - 4096)...])
        #expect(presentWhenServed == 0, "the read waited for the whole chunk")
        // The rest of the chunk (its head) arrives as the second GET, started by the whole-chunk
        // reader below; nothing is fetched twice.
        try await cache.ensure(object, range: ByteRange(0, Int64(size)))
        #expect(await cache.isComplete(object))
        #expect(try await mediaRequests(proxy) == 2)
        #expect(await cache.stats.chunksFetched == 1)
        // The chunk's CRC32C (combined from its two GETs) was logged: a new cache recovers it.
        try await expectFetchedOnceAndRecovered(s)
    }

    /// The whole object came down once and is in the data file; after shutdown a new cache over
    /// the same directory recovers all of it from the log (its CRC32C was recorded) without a fetch.
    func expectFetchedOnceAndRecovered(_ s: Shaped) async throws {
        let size = s.info.size
        let bytesDown = (try await s.proxy.stats()["bytes_down"] as? NSNumber)?.int64Value ?? -1
        #expect(bytesDown < size + 64 << 10, "\(bytesDown) bytes came down for a \(size)-byte object")
        #expect(try Data(contentsOf: URL(fileURLWithPath: s.object.dataPath)) == s.data)
        await s.cache.shutdown()
        let again = try ChunkCache(directory: s.directory.path, store: s.emulator.store(s.bucket, endpoint: s.proxy.url),
                                   options: FetchOptions(concurrency: 2, chunkSize: s.object.chunkSize))
        let reopened = try await again.open(s.info)
        try await again.ensure(reopened, range: ByteRange(0, size))
        #expect(await again.stats.bytesRecovered == size)
        #expect(await again.stats.bytesFetched == 0)
        await again.shutdown()
    }

    /// Through a link that resets and cuts responses, a whole object and random reads in it land
    /// with the right bytes in the data file, in each write mode (a retried range resumes mid-way:
    /// a mapped writer's copies and pwrite's gathered blocks must both continue at the right place).
    @Test(arguments: FileWriteMode.allCases)
    func aFaultyLinkFillsTheCacheWithTheRightBytes(writes: FileWriteMode) async throws {
        let size = 6 << 20 + 4321
        let s = try await shaped("faulty-fill-\(writes)", size: size, seed: 21,
                                 link: ["--seed", "5", "--fault", "reset=0.2", "--fault", "truncate=0.2"],
                                 concurrency: 4, chunkSize: 1 << 20, fileWrites: writes)
        defer { s.proxy.stop() }
        var rng = SplitMix64(seed: 3)
        for _ in 0..<8 {
            let offset = Int64(rng.next() % UInt64(size - 8192))
            #expect(try await read(s, at: offset, length: 8192) == s.data[Int(offset)..<Int(offset) + 8192])
        }
        try await s.cache.ensure(s.object, range: ByteRange(0, Int64(size)))
        #expect(await s.cache.isComplete(s.object))
        #expect(try Data(contentsOf: URL(fileURLWithPath: s.object.dataPath)) == s.data)
        #expect(try await s.proxy.faultCount() > 0, "the link injected no fault")
    }

    /// Reads `length` bytes at `offset` through the cache.
    func read(_ s: Shaped, at offset: Int64, length: Int = 4096) async throws -> Data {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 8)
        defer { buffer.deallocate() }
        try await s.cache.read(s.object, range: ByteRange(offset: offset, length: Int64(length)), into: buffer)
        return Data(buffer)
    }

    @Test func randomReadDefersTheRestOfItsChunkUntilDemandPauses() async throws {
        let size = 8 << 20
        let s = try await shaped("demand-defer", size: size, seed: 11, link: ["--rate", "20MB"], concurrency: 2, chunkSize: Int64(size))
        defer { s.proxy.stop() }
        let (data, proxy, cache, object) = (s.data, s.proxy, s.cache, s.object)
        // A read in the middle of the chunk: its own 1.25 MiB first; the rest after it and the
        // head follow as two more GETs once demand reads pause, with no reader asking.
        let offset = Int64(3 << 20) + 12_345
        #expect(try await read(s, at: offset) == data[Int(offset)..<Int(offset) + 4096])
        try await waitUntil("the deferred rest of the chunk", timeout: .seconds(60)) { await cache.isComplete(object) }
        let gets = try await proxy.mediaLog()
        #expect(gets.count == 3, "\(gets)")
        #expect(gets.first?.bounds?.first == 3 << 20, "the read's own GET comes first, from its 256 KiB-aligned offset: \(gets)")
        #expect(await cache.stats.chunksFetched == 1)
        // The chunk's CRC32C, combined from its three GETs, was logged: a new cache recovers it.
        try await expectFetchedOnceAndRecovered(s)
    }

    @Test func theDeferredRestOfAnEvictedEntryIsNotFetched() async throws {
        let size = 8 << 20
        let s = try await shaped("demand-evicted", size: size, seed: 17, link: ["--rate", "20MB"], concurrency: 2,
                                 chunkSize: Int64(size), capacity: 4096)
        defer { s.proxy.stop() }
        let offset = Int64(3 << 20) + 12_345
        #expect(try await read(s, at: offset) == s.data[Int(offset)..<Int(offset) + 4096])
        // Unpinned and over the 4 KiB cap: evicted while its chunk's rest waits for a lull (or
        // its read's own GET still runs).
        await s.cache.close(s.object)
        await s.cache.evictIfNeeded()
        #expect(!FileManager.default.fileExists(atPath: s.object.dataPath))
        // Every GET has ended and no rest waits for a lull: nothing more can be fetched for it.
        try await waitUntil("the read's own GET to end") { await s.cache.fetchesRunning == 0 }
        #expect(await s.cache.restsDeferred == 0)
        #expect(try await mediaRequests(s.proxy) == 1, "only the read's own GET: nothing for the evicted entry")
        #expect(await s.cache.stats.chunksFetched == 0)
        await s.cache.shutdown()
    }

    @Test func aRecoveredChunkReadInItsMiddleDoesNotHoldBackDeferredRests() async throws {
        let chunk = 4 << 20, size = 2 * chunk
        let s = try await shaped("demand-recovered", size: size, seed: 13, link: ["--rate", "20MB"], concurrency: 2, chunkSize: Int64(chunk))
        defer { s.proxy.stop() }
        // A first cache fetches chunk 0 only and records it.
        try await s.cache.ensure(s.object, range: ByteRange(0, Int64(chunk)))
        await s.cache.shutdown()
        let again = try ChunkCache(directory: s.directory.path, store: s.emulator.store(s.bucket, endpoint: s.proxy.url),
                                   options: FetchOptions(concurrency: 2, chunkSize: Int64(chunk)))
        let object = try await again.open(s.info)
        // A demand read in the middle of chunk 0 verifies it (no GET); one in the middle of chunk 1
        // fetches its own part and defers the rest, which must still come once reads pause.
        for offset in [Int64(chunk / 2), Int64(chunk + chunk / 2)] {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
            defer { buffer.deallocate() }
            try await again.read(object, range: ByteRange(offset: offset, length: 4096), into: buffer)
            #expect(Data(buffer) == s.data[Int(offset)..<Int(offset) + 4096])
        }
        try await waitUntil("the deferred rest of chunk 1", timeout: .seconds(60)) { await again.isComplete(object) }
        #expect(await again.stats.bytesRecovered == Int64(chunk))
        #expect(await again.stats.bytesFetched == Int64(chunk))
        await again.shutdown()
    }

    @Test func readersOfADeferredRestGetItAtOnce() async throws {
        let size = 8 << 20
        // 2 MB/s per connection: the first read's own 1.25 MiB take ~0.6 s.
        let s = try await shaped("demand-want", size: size, seed: 12, link: ["--rate", "2MB"], concurrency: 2, chunkSize: Int64(size))
        defer { s.proxy.stop() }
        let (cache, object, data) = (s.cache, s.object, s.data)
        // One reader in the middle, one past its urgent part (asking while the first GET runs),
        // one in the chunk's head (asking after), and a whole-chunk reader: all get their bytes.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (delay, offset) in [(0, Int64(2 << 20) + 4096), (100, Int64(6 << 20) + 777), (900, Int64(100_000))] {
                group.addTask {
                    try await Task.sleep(for: .milliseconds(delay))
                    #expect(try await self.read(s, at: offset) == data[Int(offset)..<Int(offset) + 4096], "offset \(offset)")
                }
            }
            try await group.waitForAll()
        }
        try await cache.ensure(object, range: ByteRange(0, Int64(size)))
        #expect(try Data(contentsOf: URL(fileURLWithPath: object.dataPath)) == data)
        #expect(try await mediaRequests(s.proxy) == 3)
        #expect(await cache.stats.chunksFetched == 1)
        await cache.shutdown()
    }

    @Test func demandReadOvertakesARunningPreload() async throws {
        let size = 64 << 20
        // 8 MB/s per connection, 2 regular slots: the preload of 64 chunks takes seconds.
        let s = try await shaped("demand", size: size, seed: 2, link: ["--rate", "8MB"], concurrency: 2, chunkSize: 1 << 20)
        defer { s.proxy.stop() }
        let (cache, object, data) = (s.cache, s.object, s.data)
        // The preload's GETs from 32 MiB to the last chunk wait at the proxy: however fast or
        // slow this machine, the preload cannot reach the last chunk before the read below.
        try await s.proxy.configure(["hold": ".", "hold_from": 32 << 20, "hold_until": size - (1 << 20)])
        let preload = Task { try await cache.ensure(object, range: ByteRange(0, Int64(size)), priority: .preload) }
        try await waitUntil("the preload's first two chunks") { await cache.presentBytes(object) >= 2 << 20 }
        // The last chunk is at the back of the preload queue, behind held chunks: served anyway.
        let (bytes, presentWhenServed) = try await readLast4K(s)
        #expect(bytes == data[(size - 4096)...])
        #expect(presentWhenServed <= 32 << 20, "the demand read waited for \(presentWhenServed) bytes of preload")
        try await s.proxy.configure(["hold": NSNull()])
        try await preload.value
        #expect(await cache.isComplete(object))
        let cached = try Data(contentsOf: URL(fileURLWithPath: object.dataPath))
        #expect(cached == data)
        await cache.shutdown()
    }

    @Test func corruptedChunkOnDiskIsDetectedAndRefetched() async throws {
        let (emulator, bucket, info, data) = try await setUp("corrupt", size: 5 << 20, seed: 3)
        let dir = try TestEnvironment.scratchDirectory("corrupt")
        let options = FetchOptions(concurrency: 4, chunkSize: 1 << 20)
        let first = try ChunkCache(directory: dir.path, store: emulator.store(bucket), options: options)
        let object = try await first.open(info)
        try await first.ensure(object, range: ByteRange(0, info.size))
        await first.shutdown()

        // Flip one byte inside chunk 2.
        let fd = open(object.dataPath, O_RDWR)
        var byte: UInt8 = 0
        pread(fd, &byte, 1, (2 << 20) + 777)
        byte ^= 0xFF
        pwrite(fd, &byte, 1, (2 << 20) + 777)
        close(fd)

        let proxy = try LinkProxy(upstream: emulator.url)
        defer { proxy.stop() }
        let second = try ChunkCache(directory: dir.path, store: emulator.store(bucket, endpoint: proxy.url), options: options)
        let reopened = try await second.open(info)
        try await second.ensure(reopened, range: ByteRange(0, info.size))
        // Four chunks verified against their logged CRC32C, the corrupted one fetched again.
        #expect(try await mediaRequests(proxy) == 1)
        #expect(await second.stats.bytesRecovered == info.size - (1 << 20))
        #expect(await second.stats.chunksFetched == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: reopened.dataPath)) == data)
        await second.shutdown()
    }

    /// `isLocal` (what the mount's push threads ask): true for chunks fetched in this run and for
    /// chunks a previous run logged (before and after their check), false for a range with any
    /// chunk still to download.
    @Test func isLocalIsTrueForHeldChunksOnly() async throws {
        let (emulator, bucket, info, _) = try await setUp("is-local", size: 6 << 20, seed: 21)
        let dir = try TestEnvironment.scratchDirectory("is-local")
        let options = FetchOptions(concurrency: 4, chunkSize: 1 << 20)
        let first = try ChunkCache(directory: dir.path, store: emulator.store(bucket), options: options)
        let object = try await first.open(info)
        let chunk = { (c: Int64) in ByteRange(c << 20, (c + 1) << 20) }
        #expect(await !first.isLocal(object, range: chunk(0)))
        try await first.ensure(object, range: ByteRange(0, 3 << 20))
        #expect(await first.isLocal(object, range: ByteRange(0, 3 << 20)))
        #expect(await !first.isLocal(object, range: chunk(3)))
        #expect(await !first.isLocal(object, range: ByteRange(2 << 20, 4 << 20)), "one chunk of the range still to download")
        await first.shutdown()

        let second = try ChunkCache(directory: dir.path, store: emulator.store(bucket), options: options)
        let reopened = try await second.open(info)
        #expect(await second.isLocal(reopened, range: ByteRange(0, 3 << 20)), "logged by the previous run, not yet checked")
        #expect(await !second.isLocal(reopened, range: chunk(4)))
        try await second.ensure(reopened, range: chunk(1))
        #expect(await second.isLocal(reopened, range: ByteRange(0, 3 << 20)), "checked and unchecked chunks alike")
        await second.shutdown()
    }

    @Test func anObjectFailingItsWholeChecksumFailsReadersAndLeavesNothingToRecover() async throws {
        let (emulator, bucket, info, _) = try await setUp("bad-crc", size: 6 << 20, seed: 9)
        // Every chunk arrives intact, but the object's checksum (as the listing claims it) differs.
        let claimed = ObjectInfo(name: info.name, size: info.size, generation: info.generation, crc32c: (info.crc32c ?? 0) ^ 0x5A5A)
        let dir = try TestEnvironment.scratchDirectory("bad-crc")
        let options = FetchOptions(concurrency: 4, chunkSize: 1 << 20)
        let cache = try ChunkCache(directory: dir.path, store: emulator.store(bucket), options: options)
        let object = try await cache.open(claimed)
        await #expect(throws: StoreError.self) { try await cache.ensure(object, range: ByteRange(0, info.size), priority: .preload) }
        await cache.shutdown()
        // After a restart none of its chunks may count as verified: the log holds no record.
        let log = URL(fileURLWithPath: object.dataPath).deletingLastPathComponent().appendingPathComponent("chunks")
        #expect(try Data(contentsOf: log).isEmpty)
        let again = try ChunkCache(directory: dir.path, store: emulator.store(bucket), options: options)
        let reopened = try await again.open(claimed)
        await #expect(throws: StoreError.self) { try await again.ensure(reopened, range: ByteRange(0, info.size), priority: .preload) }
        #expect(await again.stats.bytesRecovered == 0)
        await again.shutdown()
    }

    @Test func tornAndForeignLogRecordsAreIgnored() async throws {
        let (emulator, bucket, info, data) = try await setUp("torn", size: 3 << 20, seed: 4)
        let dir = try TestEnvironment.scratchDirectory("torn")
        let options = FetchOptions(concurrency: 2, chunkSize: 1 << 20)
        let first = try ChunkCache(directory: dir.path, store: emulator.store(bucket), options: options)
        let object = try await first.open(info)
        try await first.ensure(object, range: ByteRange(0, 2 << 20))
        await first.shutdown()
        // A torn half record and garbage at the end of the log, as a crash mid-append leaves.
        let log = URL(fileURLWithPath: object.dataPath).deletingLastPathComponent().appendingPathComponent("chunks")
        let h = try FileHandle(forWritingTo: log)
        try h.seekToEnd()
        try h.write(contentsOf: Data([0x57, 0x46, 0x43, 0x31, 2, 0, 0]))
        try h.close()
        let second = try ChunkCache(directory: dir.path, store: emulator.store(bucket), options: options)
        let reopened = try await second.open(info)
        try await second.ensure(reopened, range: ByteRange(0, info.size))
        #expect(await second.stats.bytesRecovered == 2 << 20)
        #expect(await second.stats.chunksFetched == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: reopened.dataPath)) == data)
        await second.shutdown()
    }

    @Test func evictionUnderASmallCapKeepsPinnedObjects() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("evict")
        var infos: [ObjectInfo] = []
        for i in 0..<3 { infos.append(try await emulator.upload(bucket, "o\(i)", data: TestBytes.generate(count: 2 << 20, seed: UInt64(i)))) }
        let dir = try TestEnvironment.scratchDirectory("evict")
        let cache = try ChunkCache(directory: dir.path, store: emulator.store(bucket), options: FetchOptions(concurrency: 2, chunkSize: 1 << 20), capacity: 3 << 20)
        let a = try await cache.open(infos[0])
        try await cache.ensure(a, range: ByteRange(0, infos[0].size))
        await cache.close(a)  // unpinned: evictable
        let b = try await cache.open(infos[1])
        try await cache.ensure(b, range: ByteRange(0, infos[1].size))
        await cache.evictIfNeeded()
        #expect(!FileManager.default.fileExists(atPath: a.dataPath), "the unpinned LRU object is evicted")
        #expect(FileManager.default.fileExists(atPath: b.dataPath))
        let c = try await cache.open(infos[2])
        try await cache.ensure(c, range: ByteRange(0, infos[2].size))
        await cache.evictIfNeeded()
        // Both pinned: over the cap, but neither may go.
        #expect(FileManager.default.fileExists(atPath: b.dataPath))
        #expect(FileManager.default.fileExists(atPath: c.dataPath))
        #expect(await cache.stats.evictedEntries == 1)
        await cache.close(b)
        await cache.evictIfNeeded()
        #expect(!FileManager.default.fileExists(atPath: b.dataPath))
        #expect(try Data(contentsOf: URL(fileURLWithPath: c.dataPath)) == TestBytes.generate(count: 2 << 20, seed: 2))
        await cache.shutdown()
    }

    /// Under `capacity`, the least recently used unpinned entries go first, where use is the
    /// last open or read (not the order they were fetched in), and the order carries over to
    /// the next process through meta.json's mtime.
    @Test func evictionTakesTheLeastRecentlyUsedFirst() async throws {
        let root = try TestEnvironment.scratchDirectory("lru")
        let storeDir = root.appendingPathComponent("store").path
        try FileManager.default.createDirectory(atPath: storeDir, withIntermediateDirectories: true)
        for i in 0..<4 { try TestBytes.generate(count: 1 << 20, seed: UInt64(40 + i)).write(to: URL(fileURLWithPath: "\(storeDir)/o\(i)")) }
        let store = FileStore(root: storeDir)
        var infos: [ObjectInfo] = []
        for i in 0..<4 { infos.append(try await store.stat("o\(i)")) }
        let dir = root.appendingPathComponent("cache").path
        let options = FetchOptions(concurrency: 2, chunkSize: 256 << 10)
        let cache = try ChunkCache(directory: dir, store: store, options: options, capacity: (3 << 20) + (512 << 10))
        var paths: [String] = []
        func use(_ i: Int) async throws {
            let o = try await cache.open(infos[i])
            try await cache.ensure(o, range: ByteRange(0, o.info.size))
            await cache.close(o)
            if paths.count <= i { paths.append(o.dataPath) }
        }
        func cached() -> [Int] { (0..<paths.count).filter { FileManager.default.fileExists(atPath: paths[$0]) } }
        for i in 0..<3 { try await use(i) }
        try await use(0)  // o0 is now the most recent: o1 is the least
        try await use(3)
        await cache.evictIfNeeded()
        #expect(cached() == [0, 2, 3], "o1 was the least recently used")
        try await use(1)  // fetched again: now o2 is the least recent
        await cache.evictIfNeeded()
        #expect(cached() == [0, 1, 3], "o2 was the least recently used")
        await cache.shutdown()

        // Another process with a smaller cap: the order it evicts in is the one this one left.
        let next = try ChunkCache(directory: dir, store: store, options: options, capacity: (2 << 20) + (512 << 10))
        await next.evictIfNeeded()
        #expect(cached() == [1, 3], "o0 was used before o3 and o1")
        await next.shutdown()
    }

    @Test func replacedObjectIsServedFromANewGeneration() async throws {
        let (emulator, bucket, old, _) = try await setUp("regen", size: 2 << 20, seed: 5)
        let dir = try TestEnvironment.scratchDirectory("regen")
        let store = emulator.store(bucket)
        let cache = try ChunkCache(directory: dir.path, store: store, options: FetchOptions(concurrency: 2, chunkSize: 1 << 20))
        let first = try await cache.open(old)
        try await cache.ensure(first, range: ByteRange(0, old.size))
        await cache.close(first)
        let newData = TestBytes.generate(count: 3 << 20, seed: 6)
        try await emulator.upload(bucket, old.name, data: newData)
        let current = try await store.stat(old.name)
        #expect(current.generation != old.generation)
        let second = try await cache.open(current)
        #expect(second.dataPath != first.dataPath)
        #expect(await cache.presentBytes(second) == 0)
        try await cache.ensure(second, range: ByteRange(0, current.size))
        #expect(try Data(contentsOf: URL(fileURLWithPath: second.dataPath)) == newData)
        await cache.shutdown()
    }

    @Test func secondProcessOnTheSameDirectoryIsRefused() async throws {
        let (emulator, bucket, _, _) = try await setUp("lock", size: 10, seed: 7)
        let dir = try TestEnvironment.scratchDirectory("lock")
        let first = try ChunkCache(directory: dir.path, store: emulator.store(bucket))
        #expect(throws: CacheError.locked(directory: dir.path)) { _ = try ChunkCache(directory: dir.path, store: emulator.store(bucket)) }
        await first.shutdown()
        let again = try ChunkCache(directory: dir.path, store: emulator.store(bucket))
        await again.shutdown()
    }
}
