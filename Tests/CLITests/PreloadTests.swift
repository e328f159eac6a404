import ChunkCache
import Fetcher
import Foundation
import ObjectStore
import Testing
import TestSupport

/// `weightfs preload` as a user (or an init container) runs it.
@Suite(.serialized)
struct PreloadTests {
    func seed(_ label: String) async throws -> (Emulator, String, [ObjectInfo], [String: Data]) {
        let (emulator, bucket) = try await Emulator.freshBucket(label)
        var contents: [String: Data] = ["m/config.json": Data(#"{"model_type":"llama"}"#.utf8)]
        for i in 1...3 { contents["m/shard-\(i).bin"] = TestBytes.generate(count: (24 << 20) + i * 4096, seed: UInt64(i)) }
        contents["m/notes.txt"] = Data("skip me".utf8)
        var infos: [ObjectInfo] = []
        for (name, data) in contents.sorted(by: { $0.key < $1.key }) { infos.append(try await emulator.upload(bucket, name, data: data)) }
        return (emulator, bucket, infos, contents)
    }

    func bytesDown(_ proxy: LinkProxy) async throws -> Int64 {
        (try await proxy.stats()["bytes_down"] as? NSNumber)?.int64Value ?? -1
    }

    @Test func sigkillAtSeveralPointsThenResumeRefetchesOnlyChunksInFlight() async throws {
        let (emulator, bucket, infos, contents) = try await seed("kill")
        let proxy = try LinkProxy(upstream: emulator.url, arguments: ["--rate", "12MB"])
        defer { proxy.stop() }
        let cacheDir = try TestEnvironment.scratchDirectory("kill-cache").path
        let concurrency = 4, chunk: Int64 = 1 << 20
        let args = ["preload", "gs://\(bucket)/m", "--cache-dir", cacheDir, "--exclude", "*.txt",
                    "--concurrency", String(concurrency), "--chunk-size", String(chunk)]
        let env = ["STORAGE_EMULATOR_HOST": proxy.url]
        let wanted = infos.filter { !$0.name.hasSuffix(".txt") }
        let total = wanted.reduce(Int64(0)) { $0 + $1.size }

        // The last chunk of the last shard waits at the proxy until the kills are done: however
        // slowly this test polls, no run can finish before its kill point (the bytes counted
        // are reached well before that chunk).
        try await proxy.configure(["hold": #"shard-3\.bin"#, "hold_from": 24 << 20])
        var kills = 0
        for threshold in [Int64(8 << 20), 16 << 20, 24 << 20] {  // new bytes this run before the kill
            let p = Process()
            p.executableURL = URL(fileURLWithPath: TestEnvironment.weightfsBinary)
            p.arguments = args
            p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
            p.standardError = FileHandle.nullDevice
            let before = try await bytesDown(proxy)
            try p.run()
            try await waitUntil("\(threshold) new bytes through the proxy") { try await bytesDown(proxy) - before >= threshold || !p.isRunning }
            #expect(p.isRunning, "preload ended before the kill point (exit status \(p.terminationStatus))")
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            #expect(p.terminationReason == .uncaughtSignal)
            kills += 1
        }
        try await proxy.configure(["hold": NSNull()])
        let resumed = try CommandRunner.weightfs(args, environment: env)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("already cached"))
        let allBytes = try await bytesDown(proxy)
        // Each kill may lose only the chunks in flight then: at most `concurrency` downloading and
        // `concurrency` written but awaiting their group fdatasync (bytes_down also counts the few
        // KB of listings). Losing everything cached would waste 48 MiB; the bound is 24 MiB.
        #expect(allBytes - total <= Int64(kills * 2 * concurrency) * chunk, "refetched \(allBytes - total) bytes over \(kills) kills")
        #expect(allBytes >= total)

        // Idempotent: another run reads no object bytes (only the listing).
        let mediaBefore = (try await proxy.stats()["media_requests"] as? NSNumber)?.intValue
        let again = try CommandRunner.weightfs(args, environment: env)
        #expect(again.status == 0)
        #expect((try await proxy.stats()["media_requests"] as? NSNumber)?.intValue == mediaBefore)
        #expect(again.stderr.contains("0 B fetched"), "\(again.stderr)")

        // The cache holds exactly the source bytes.
        let cache = try ChunkCache(directory: cacheDir, store: emulator.store(bucket), options: FetchOptions(chunkSize: chunk))
        for info in wanted {
            let object = try await cache.open(info)
            try await cache.ensure(object, range: ByteRange(0, info.size))
            #expect(SHA256.hex(try Data(contentsOf: URL(fileURLWithPath: object.dataPath))) == SHA256.hex(contents[info.name]!), "\(info.name)")
        }
        // Every chunk verified from disk; nothing fetched.
        #expect(await cache.stats.chunksFetched == 0)
        #expect(await cache.stats.bytesRecovered == total)
        await cache.shutdown()
    }

    @Test func includeExcludeAndFailureExitCode() async throws {
        let (emulator, bucket, _, _) = try await seed("globs")
        let cacheDir = try TestEnvironment.scratchDirectory("globs-cache").path
        let env = ["STORAGE_EMULATOR_HOST": emulator.url]
        let r = try CommandRunner.weightfs(["preload", "gs://\(bucket)/m/", "--cache-dir", cacheDir, "--include", "*.json"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("preload: 1 objects"), "\(r.stderr)")
        let none = try CommandRunner.weightfs(["preload", "gs://\(bucket)/m", "--cache-dir", cacheDir, "--include", "*.gguf"], environment: env)
        #expect(none.status != 0)
        #expect(none.stderr.contains("nothing to preload"))
        let tooSmall = try CommandRunner.weightfs(["preload", "gs://\(bucket)/m", "--cache-dir", cacheDir, "--cache-size", "1MiB"], environment: env)
        #expect(tooSmall.status != 0)
        #expect(tooSmall.stderr.contains("--cache-size"))
        let refusing = try RefusingPort()
        let unreachable = try CommandRunner.weightfs(["preload", "gs://\(bucket)/m", "--cache-dir", cacheDir], environment: ["STORAGE_EMULATOR_HOST": "http://\(refusing.hostAndPort)"])
        #expect(unreachable.status != 0)
        #expect(unreachable.stderr.contains(refusing.hostAndPort) || unreachable.stderr.contains("gs://\(bucket)"), "\(unreachable.stderr)")
    }

    /// A byte of a cached object flipped on disk after it was fetched: `preload --verify` finds
    /// the chunk it lies in, fetches that chunk alone again, and the cache holds the object's
    /// bytes once more.
    @Test func verifyFindsACorruptedByteAndRefetchesItsChunk() async throws {
        let (emulator, bucket, infos, contents) = try await seed("verify")
        let proxy = try LinkProxy(upstream: emulator.url, arguments: [])
        defer { proxy.stop() }
        let cacheDir = try TestEnvironment.scratchDirectory("verify-cache").path
        let args = ["preload", "gs://\(bucket)/m", "--cache-dir", cacheDir, "--chunk-size", "1MiB", "--verify"]
        let env = ["STORAGE_EMULATOR_HOST": proxy.url]
        let first = try CommandRunner.weightfs(args, environment: env, timeout: 120)
        #expect(first.status == 0, "\(first.stderr)")

        // The entry of shard-2.bin: the data file whose size is that object's.
        let shard = try #require(infos.first { $0.name == "m/shard-2.bin" })
        let objects = "\(cacheDir)/v1/objects"
        let entry = try #require(try FileManager.default.contentsOfDirectory(atPath: objects).first { name in
            ((try? FileManager.default.attributesOfItem(atPath: "\(objects)/\(name)/data"))?[.size] as? NSNumber)?.int64Value == shard.size
        })
        let dataPath = "\(objects)/\(entry)/data"
        let offset: off_t = (5 << 20) + 17
        let fd = open(dataPath, O_RDWR)
        try #require(fd >= 0)
        var byte: UInt8 = 0
        #expect(pread(fd, &byte, 1, offset) == 1)
        byte ^= 0xFF
        #expect(pwrite(fd, &byte, 1, offset) == 1)
        close(fd)

        try await proxy.resetStats()
        let second = try CommandRunner.weightfs(args, environment: env, timeout: 120)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stderr.contains("verified"), "\(second.stderr)")
        let gets = try await proxy.mediaLog()
        #expect(gets.count == 1 && gets.first?.path.hasSuffix("shard-2.bin") == true && gets.first?.range == "bytes=\(5 << 20)-\((6 << 20) - 1)", "\(gets)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dataPath)) == contents["m/shard-2.bin"])
    }
}

/// `preload gs://b/m` where `m` is an object: that object, not the objects under `m-70b/` that
/// share its name as a prefix (issue 14).
@Suite(.serialized)
struct PreloadSinglePrefixTests {
    @Test func anObjectPathPreloadsThatObjectAlone() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("preload-single")
        try await emulator.upload(bucket, "m", data: TestBytes.generate(count: 100_000, seed: 81))
        try await emulator.upload(bucket, "m-70b/model.safetensors", data: TestBytes.generate(count: 300_000, seed: 82))
        let cache = try TestEnvironment.scratchDirectory("preload-single").path
        let r = try CommandRunner.weightfs(["preload", "gs://\(bucket)/m", "--cache-dir", cache], environment: ["STORAGE_EMULATOR_HOST": emulator.url])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("preload: 1 objects"), "\(r.stderr)")
        #expect(!r.stderr.contains("m-70b"), "\(r.stderr)")
        // A prefix that is no object still means the folder.
        let folder = try CommandRunner.weightfs(["preload", "gs://\(bucket)/m-70b", "--cache-dir", cache], environment: ["STORAGE_EMULATOR_HOST": emulator.url])
        #expect(folder.status == 0 && folder.stderr.contains("preload: 1 objects"), "\(folder.stderr)")
    }
}
