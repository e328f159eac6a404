import Foundation
import ObjectStore
import Synchronization
import Testing
import TestSupport

/// Real FUSE mounts (the tests run as root; /dev/fuse exists) of buckets in the emulator.
@Suite(.serialized)
struct MountTests {
    static let names = ["config.json", "with space.bin", "hash#tag.bin", "per%cent+plus.bin", "unicodé/模型.bin", "nested/a/b/deep.bin", "empty.bin"]

    func seed(_ label: String) async throws -> (Emulator, String, [String: Data]) {
        let (emulator, bucket) = try await Emulator.freshBucket(label)
        var contents: [String: Data] = [:]
        for (i, name) in Self.names.enumerated() {
            let data = name == "empty.bin" ? Data() : TestBytes.generate(count: 100_000 + i * 3_000_000, seed: UInt64(i + 10))
            contents[name] = data
            try await emulator.upload(bucket, "models/m/\(name)", data: data)
        }
        return (emulator, bucket, contents)
    }

    @Test func everyFileReadsBackExactlyAndWritesAreRefused() async throws {
        let (emulator, bucket, contents) = try await seed("mnt-files")
        let mount = try MountProcess(url: "gs://\(bucket)/models/m", endpoint: emulator.url, arguments: ["--chunk-size", "1MiB"])
        defer { mount.stop() }
        for (name, data) in contents {
            let path = "\(mount.mountpoint)/\(name)"
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == data, "\(name)")
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.size] as? NSNumber)?.intValue == data.count)
        }
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: mount.mountpoint)) == ["config.json", "with space.bin", "hash#tag.bin", "per%cent+plus.bin", "unicodé", "nested", "empty.bin"])
        // Read-only: writes, creates, renames, deletes fail with EROFS.
        #expect(open("\(mount.mountpoint)/config.json", O_WRONLY) == -1 && errno == EROFS)
        #expect(open("\(mount.mountpoint)/new.bin", O_WRONLY | O_CREAT, 0o644) == -1 && errno == EROFS)
        #expect(rename("\(mount.mountpoint)/config.json", "\(mount.mountpoint)/x.json") == -1 && errno == EROFS)
        #expect(unlink("\(mount.mountpoint)/config.json") == -1 && errno == EROFS)
        #expect(mkdir("\(mount.mountpoint)/d", 0o755) == -1 && errno == EROFS)
        #expect(open("\(mount.mountpoint)/missing.bin", O_RDONLY) == -1 && errno == ENOENT)
        #expect(open("\(mount.mountpoint)/nested/nope/x", O_RDONLY) == -1 && errno == ENOENT)
        // Generation and CRC32C as extended attributes.
        let xattr = try CommandRunner.run(TestEnvironment.python, ["-c", "import os,sys; print(os.getxattr(sys.argv[1], 'user.weightfs.generation').decode())", "\(mount.mountpoint)/config.json"])
        let info = try await emulator.store(bucket).stat("models/m/config.json")
        #expect(xattr.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == String(info.generation.rawValue), "\(xattr.stderr)")
        #expect(mount.stop(), "SIGTERM ends the daemon")
        #expect(!MountProcess.isMounted(mount.mountpoint), "no stale mount after SIGTERM")
    }

    @Test func mmapAtRandomOffsetsBeforeTheFileIsCached() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("mnt-mmap")
        let data = TestBytes.generate(count: 40 << 20, seed: 77)
        try await emulator.upload(bucket, "w.bin", data: data)
        // A slow link: nothing is cached when the first random page is touched.
        let proxy = try LinkProxy(upstream: emulator.url, arguments: ["--rate", "20MB", "--latency-ms", "20"])
        defer { proxy.stop() }
        let mount = try MountProcess(url: "gs://\(bucket)", endpoint: proxy.url, arguments: ["--chunk-size", "1MiB", "--prefetch", "none"])
        defer { mount.stop() }
        let fd = open("\(mount.mountpoint)/w.bin", O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        let map = mmap(nil, data.count, PROT_READ, MAP_SHARED, fd, 0)
        try #require(map != MAP_FAILED && map != nil)
        defer { munmap(map, data.count) }
        let bytes = UnsafeRawBufferPointer(start: map, count: data.count)
        // Offsets in the first half only: the kernel reads around each faulting page (up to the
        // mount's 1 MiB readahead), so 64 faults spread over the whole file could touch all of it.
        var rng = SplitMix64(seed: 77)
        for _ in 0..<64 {
            let offset = Int.random(in: 0..<(data.count / 2), using: &rng)
            #expect(Data(bytes[offset..<offset + 64]) == data[offset..<offset + 64], "offset \(offset)")
        }
        let fetched = (try await proxy.stats()["bytes_down"] as? NSNumber)?.intValue ?? 0
        #expect(fetched < data.count, "random access fetched only what it touched (\(fetched) bytes)")
    }

    @Test func eightConcurrentReadersOfALargeFile() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("mnt-conc")
        let data = TestBytes.generate(count: 64 << 20, seed: 88)
        try await emulator.upload(bucket, "big.bin", data: data)
        let mount = try MountProcess(url: "gs://\(bucket)", endpoint: emulator.url, arguments: ["--chunk-size", "2MiB"])
        defer { mount.stop() }
        let path = "\(mount.mountpoint)/big.bin"
        let mismatches = ByteCounter()
        await withTaskGroup(of: Void.self) { group in
            for reader in 0..<8 {
                group.addTask {
                    // Each reader walks the file from a different start, in 1 MiB preads.
                    let fd = open(path, O_RDONLY)
                    defer { close(fd) }
                    var buffer = [UInt8](repeating: 0, count: 1 << 20)
                    for step in 0..<64 {
                        let block = (step + reader * 8) % 64
                        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 1 << 20, off_t(block << 20)) }
                        if n != 1 << 20 || Data(buffer) != data[(block << 20)..<((block + 1) << 20)] { mismatches.add(1) }
                    }
                }
            }
        }
        #expect(mismatches.value == 0)
    }

    /// `--push-threads`: chunks the cache holds (here from an earlier mount's read) are stored
    /// into the kernel's page cache of the FUSE file ahead of a sequential reader
    /// (FUSE_NOTIFY_STORE). Pages far past the kernel's own 1 MiB readahead become resident
    /// (mincore) without being read; with 0 threads they do not; and every byte read afterwards,
    /// through mmap and read(2), is the object's.
    @Test func pushThreadsStoreCachedChunksAheadOfASequentialReader() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("mnt-push")
        let data = TestBytes.generate(count: 24 << 20, seed: 66)
        try await emulator.upload(bucket, "w.bin", data: data)
        for threads in [0, 2] {
            // Fill a cache through a first mount, then read through a second one over it.
            let cacheDir = try fillCacheThroughAMount(bucket, emulator, data)
            let mount = try MountProcess(url: "gs://\(bucket)", endpoint: emulator.url,
                                         arguments: ["--chunk-size", "1MiB", "--prefetch", "sequential", "--push-threads", "\(threads)", "--cache-dir", cacheDir])
            defer { mount.stop() }
            let fd = open("\(mount.mountpoint)/w.bin", O_RDONLY)
            try #require(fd >= 0)
            defer { close(fd) }
            var head = [UInt8](repeating: 0, count: 1 << 20)
            #expect(head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) } == 1 << 20)
            #expect(Data(head) == data[0..<(1 << 20)])
            let map = mmap(nil, data.count, PROT_READ, MAP_SHARED, fd, 0)
            try #require(map != MAP_FAILED && map != nil)
            defer { munmap(map, data.count) }
            // MiB 8-16: queued by the first read's readahead (16 chunks), never asked for by the
            // kernel (its window is 1 MiB), so resident only if the daemon stored them.
            let window = (8 << 20)..<(16 << 20)
            // Poll (no time is asserted: the deadline only bounds a failure; without threads the
            // two seconds are when pushes, had there been any, would have shown).
            var (count, pages) = residentPages(map!, window)
            for _ in 0..<(threads > 0 ? 300 : 20) {
                (count, pages) = residentPages(map!, window)
                if threads > 0, count == pages { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            if threads > 0 {
                #expect(count == pages, "every page of MiB 8-16 stored ahead of the reader (\(count) of \(pages))")
            } else {
                #expect(count == 0, "without push threads only what the kernel asks for is in its page cache (\(count) pages)")
            }
            let all = UnsafeRawBufferPointer(start: map, count: data.count)
            #expect(Data(all[window]) == data[window], "stored pages hold the object's bytes (\(threads) threads)")
            var rest = [UInt8](repeating: 0, count: data.count - (1 << 20))
            #expect(rest.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(1 << 20)) } == rest.count)
            #expect(Data(rest) == data[(1 << 20)...], "read(2) after the pushes (\(threads) threads)")
        }
    }

    /// A byte of the cache flipped between two mounts, inside what push threads store ahead of
    /// the reader: the chunk fails its check against the logged CRC32C and is fetched again
    /// before it is pushed, so the kernel's page cache gets the object's bytes, never the disk's.
    @Test func pushThreadsNeverStoreACorruptedCacheChunk() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("mnt-push-bad")
        let data = TestBytes.generate(count: 20 << 20, seed: 67)
        try await emulator.upload(bucket, "w.bin", data: data)
        let cacheDir = try fillCacheThroughAMount(bucket, emulator, data)
        // The data file is the cache's one file of the object's size; flip a byte in MiB 10.
        let files = FileManager.default.enumerator(atPath: cacheDir)?.compactMap { $0 as? String } ?? []
        let dataFile = try #require(files.map { "\(cacheDir)/\($0)" }.first {
            $0.hasSuffix("/data") && ((try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? NSNumber)?.intValue == data.count)
        })
        let corrupt = (10 << 20) + 4321
        let fd = open(dataFile, O_RDWR)
        try #require(fd >= 0)
        var byte: UInt8 = 0
        #expect(pread(fd, &byte, 1, off_t(corrupt)) == 1)
        byte ^= 0xFF
        #expect(pwrite(fd, &byte, 1, off_t(corrupt)) == 1)
        close(fd)

        let mount = try MountProcess(url: "gs://\(bucket)", endpoint: emulator.url,
                                     arguments: ["--chunk-size", "1MiB", "--prefetch", "sequential", "--push-threads", "2", "--cache-dir", cacheDir])
        defer { mount.stop() }
        let file = open("\(mount.mountpoint)/w.bin", O_RDONLY)
        try #require(file >= 0)
        defer { close(file) }
        var head = [UInt8](repeating: 0, count: 1 << 20)
        #expect(head.withUnsafeMutableBytes { pread(file, $0.baseAddress, $0.count, 0) } == 1 << 20)
        let map = mmap(nil, data.count, PROT_READ, MAP_SHARED, file, 0)
        try #require(map != MAP_FAILED && map != nil)
        defer { munmap(map, data.count) }
        // Wait until MiB 10 is in the kernel's page cache (stored by a push), then read it there.
        let window = (10 << 20)..<(11 << 20)
        var (count, pages) = residentPages(map!, window)
        for _ in 0..<300 {
            if count == pages { break }
            try await Task.sleep(for: .milliseconds(100))
            (count, pages) = residentPages(map!, window)
        }
        #expect(count == pages, "MiB 10 was stored ahead of the reader")
        let all = UnsafeRawBufferPointer(start: map, count: data.count)
        #expect(all[corrupt] == data[corrupt], "the flipped byte never reaches a reader")
        #expect(Data(all) == data)
    }

    /// Reads `w.bin` of `bucket` whole through a mount (no pushes) and unmounts: its cache
    /// directory then holds every chunk, logged, for a second mount to find.
    func fillCacheThroughAMount(_ bucket: String, _ emulator: Emulator, _ data: Data) throws -> String {
        let first = try MountProcess(url: "gs://\(bucket)", endpoint: emulator.url, arguments: ["--chunk-size", "1MiB", "--push-threads", "0"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(first.mountpoint)/w.bin")) == data)
        #expect(first.stop())
        return first.cacheDir
    }

    /// Pages of `window` (byte offsets into the mapping at `map`) in the kernel's page cache
    /// (mincore, which faults nothing in), and the window's page count.
    func residentPages(_ map: UnsafeMutableRawPointer, _ window: Range<Int>) -> (resident: Int, pages: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var residency = [UInt8](repeating: 0, count: window.count / page)
        _ = mincore(map + window.lowerBound, window.count, &residency)
        return (residency.filter { $0 & 1 != 0 }.count, residency.count)
    }

    @Test func faultyLinkGivesCorrectBytesOrEIO() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("mnt-fault")
        let data = TestBytes.generate(count: 24 << 20, seed: 99)
        try await emulator.upload(bucket, "w.bin", data: data)
        let proxy = try LinkProxy(upstream: emulator.url, arguments: [
            "--seed", "5", "--stall-seconds", "3", "--fault", "reset=0.1", "--fault", "truncate=0.1",
            "--fault", "503=0.05", "--fault", "content-range=0.1",
        ])
        defer { proxy.stop() }
        let mount = try MountProcess(url: "gs://\(bucket)", endpoint: proxy.url, arguments: ["--chunk-size", "1MiB", "--prefetch", "none"])
        defer { mount.stop() }
        let fd = open("\(mount.mountpoint)/w.bin", O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        var wrong = 0, eio = 0, good = 0
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var rng = SplitMix64(seed: 119)  // seeded, as the proxy is: a failure replays
        for _ in 0..<120 {
            let offset = Int.random(in: 0..<(data.count - buffer.count), using: &rng)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if n < 0 {
                #expect(errno == EIO)
                eio += 1
            } else if n == buffer.count, Data(buffer) == data[offset..<offset + buffer.count] {
                good += 1
            } else {
                wrong += 1
            }
        }
        #expect(wrong == 0)
        #expect(good > 0)
        #expect(try await proxy.faultCount() > 5, "faults were injected")
    }

    @Test func pythonSafetensorsLoadsAShardedCheckpointThroughTheMount() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("mnt-st")
        let fixtures = TestEnvironment.repoRoot.appendingPathComponent("Tests/SafetensorsTests/Fixtures/sharded")
        let files = try FileManager.default.contentsOfDirectory(atPath: fixtures.path).filter { $0.hasSuffix(".safetensors") || $0.hasSuffix(".json") }
        try #require(files.contains("model.safetensors.index.json"))
        for f in files { try await emulator.upload(bucket, "llama/\(f)", file: fixtures.appendingPathComponent(f).path) }
        let mount = try MountProcess(url: "gs://\(bucket)/llama", endpoint: emulator.url, arguments: ["--chunk-size", "64KiB"])
        defer { mount.stop() }
        let script = """
        import json, sys, numpy as np
        from safetensors import safe_open
        mnt, src = sys.argv[1], sys.argv[2]
        index = json.load(open(f"{mnt}/model.safetensors.index.json"))
        count = 0
        for name, shard in index["weight_map"].items():
            with safe_open(f"{mnt}/{shard}", framework="numpy") as a, safe_open(f"{src}/{shard}", framework="numpy") as b:
                x, y = a.get_tensor(name), b.get_tensor(name)
                assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name
                count += 1
        print(count)
        """
        let r = try CommandRunner.run(TestEnvironment.python, ["-c", script, mount.mountpoint, fixtures.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect((Int(r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 10)
    }

    /// A sequential reader's chunks, once two chunks behind it, leave the page cache of the
    /// cache's data file (the FUSE file's own page cache holds them): a model read once is in
    /// memory once. Made deterministic by writing the data file back first (dirty pages are left
    /// alone by design) and dropping the FUSE file's pages so the second read reaches the daemon.
    @Test func sequentialReadDropsTheDataFilesPagesBehindIt() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("mnt-drop")
        // Chunks of 4 MiB: the kernel's readahead requests can arrive out of order by up to its
        // 1 MiB window, which with 1 MiB chunks now and then looked like a jump (a new run).
        let chunk = 4 << 20, chunks = 12
        let data = TestBytes.generate(count: chunks * chunk, seed: 91)
        try await emulator.upload(bucket, "d/w.bin", data: data)
        let mount = try MountProcess(url: "gs://\(bucket)/d", endpoint: emulator.url, arguments: ["--chunk-size", "4MiB", "--prefetch", "none"])
        defer { mount.stop() }
        let path = "\(mount.mountpoint)/w.bin"
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == data)
        let objects = "\(mount.cacheDir)/v1/objects"
        let entry = try #require(try FileManager.default.contentsOfDirectory(atPath: objects).first)
        let dataPath = "\(objects)/\(entry)/data"
        let dataFD = open(dataPath, O_RDONLY)
        try #require(dataFD >= 0)
        defer { close(dataFD) }
        #expect(fsync(dataFD) == 0)
        let fuseFD = open(path, O_RDONLY)
        try #require(fuseFD >= 0)
        #expect(posix_fadvise(fuseFD, 0, 0, POSIX_FADV_DONTNEED) == 0)
        var again = Data(count: data.count)
        let got = again.withUnsafeMutableBytes { b -> Int in
            var done = 0
            while done < b.count {
                let n = pread(fuseFD, b.baseAddress! + done, min(256 << 10, b.count - done), off_t(done))
                if n <= 0 { break }
                done += n
            }
            return done
        }
        close(fuseFD)
        #expect(got == data.count)
        #expect(again == data)
        // Pages of the data file still in the page cache, per chunk.
        let map = try #require(mmap(nil, data.count, PROT_READ, MAP_SHARED, dataFD, 0))
        defer { munmap(map, data.count) }
        var resident = [UInt8](repeating: 0, count: data.count / 4096)
        #expect(mincore(map, data.count, &resident) == 0)
        let pages = chunk / 4096
        let perChunk = (0..<chunks).map { c in resident[c * pages..<(c + 1) * pages].filter { $0 & 1 != 0 }.count }
        #expect(perChunk[0..<(chunks - 2)].allSatisfy { $0 == 0 }, "resident pages per chunk: \(perChunk)")
    }

    @Test func oneGiBFileThroughTheMountMatchesSHA256() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("mnt-gib")
        let dir = try TestEnvironment.scratchDirectory("mnt-gib")
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = dir.appendingPathComponent("model.safetensors").path
        try TestBytes.writeFile(source, count: 1 << 30, seed: 1234)
        let expected = try SHA256.hex(file: source)
        try await emulator.upload(bucket, "big/model.safetensors", file: source)
        try FileManager.default.removeItem(atPath: source)
        let mount = try MountProcess(url: "gs://\(bucket)/big", endpoint: emulator.url)
        defer { mount.stop() }
        #expect(try SHA256.hex(file: "\(mount.mountpoint)/model.safetensors") == expected)
    }

    /// The GKE CSI driver opens /dev/fuse, mounts it itself, and hands the daemon `/dev/fd/N`.
    @Test func devFdMountpointAsTheCSIDriverPassesIt() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("mnt-devfd")
        let data = TestBytes.generate(count: 3 << 20, seed: 42)
        try await emulator.upload(bucket, "m/weights.bin", data: data)
        let dir = try TestEnvironment.scratchDirectory("devfd")
        let mountpoint = dir.appendingPathComponent("mnt").path
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let fd = open("/dev/fuse", O_RDWR)
        try #require(fd >= 0)
        let options = "fd=\(fd),rootmode=40000,user_id=0,group_id=0"
        try #require(mount("weightfs", mountpoint, "fuse.weightfs", UInt(MS_NOSUID | MS_NODEV | MS_RDONLY), options) == 0, "mount(2): \(String(cString: strerror(errno)))")
        defer { umount2(mountpoint, Int32(MNT_DETACH)) }
        let cacheDir = dir.appendingPathComponent("cache").path, log = dir.appendingPathComponent("daemon.log").path
        let child = try SpawnedChild(TestEnvironment.weightfsBinary, ["mount", "gs://\(bucket)/m", "/dev/fd/\(fd)", "--foreground",
                                                                     "--cache-dir", cacheDir, "--chunk-size", "1MiB"],
                                     environment: ["STORAGE_EMULATOR_HOST": emulator.url], stderrPath: log)
        close(fd)
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(mountpoint)/weights.bin")) == data)
        #expect(child.stop() == 0, "the daemon exits 0 on SIGTERM")
        // It shut the cache down first (every fetched chunk durable and recorded), as a mount on a
        // directory does: a preload of the same cache finds everything and fetches nothing.
        let said = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(said.contains("weightfs: unmounted /dev/fd/\(fd): 3.0 MiB fetched in 3 chunks"), "\(said)")
        let preload = try CommandRunner.weightfs(["preload", "gs://\(bucket)/m", "--cache-dir", cacheDir, "--chunk-size", "1MiB"],
                                                 environment: ["STORAGE_EMULATOR_HOST": emulator.url])
        #expect(preload.status == 0 && preload.stderr.contains("0 B fetched"), "\(preload.stderr)")
    }
}

/// The main job end to end: the demo model in the emulator, mounted, answered from the mount.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["WEIGHTFS_DEMO_MODEL_TESTS"] == "1"))
struct MountedModelTests {
    @Test func generateOnTheMountedDemoModelAnswersParis() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("mnt-demo")
        let model = TestEnvironment.repoRoot.appendingPathComponent(".work/demo-model/bf16")
        for f in try FileManager.default.contentsOfDirectory(atPath: model.path) where !f.hasPrefix(".") {
            try await emulator.upload(bucket, "SmolLM2/\(f)", file: model.appendingPathComponent(f).path)
        }
        let mount = try MountProcess(url: "gs://\(bucket)/SmolLM2", endpoint: emulator.url)
        defer { mount.stop() }
        let r = try CommandRunner.weightfs(["generate", mount.mountpoint, "--prompt", "The capital of France is", "--max-tokens", "3"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdoutText.hasPrefix(" Paris"), "\(r.stdoutText)")
    }
}
