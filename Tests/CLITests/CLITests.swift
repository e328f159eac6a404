import Foundation
import ObjectStore
import Testing
import TestSupport

/// The `weightfs` binary as a user runs it, against the emulator.
@Suite(.serialized)
struct CLITests {
    static let specialNames = [
        "with space.bin", "hash#tag.bin", "question?mark.bin", "per%cent.bin", "plus+sign.bin",
        "unicodé/模型.safetensors", "nested/a/b/deep.bin",
    ]

    func env(_ emulator: Emulator, endpoint: String? = nil) -> [String: String] {
        ["STORAGE_EMULATOR_HOST": endpoint ?? emulator.url]
    }

    @Test func lsAndStatShowSpecialNames() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("cli-ls")
        for (i, name) in Self.specialNames.enumerated() { try await emulator.upload(bucket, name, data: Data(count: 10 + i)) }

        let recursive = try CommandRunner.weightfs(["ls", "-r", "--json", "gs://\(bucket)"], environment: env(emulator))
        #expect(recursive.status == 0, "\(recursive.stderr)")
        let rows = recursive.stdoutText.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(Set(rows.compactMap { $0["name"] as? String }) == Set(Self.specialNames))
        #expect(rows.allSatisfy { $0["generation"] is String && $0["size"] is Int && $0["updated"] is String })

        let top = try CommandRunner.weightfs(["ls", "gs://\(bucket)"], environment: env(emulator))
        #expect(top.status == 0)
        #expect(top.stdoutText.contains("nested/"))
        #expect(top.stdoutText.contains("hash#tag.bin"))
        #expect(!top.stdoutText.contains("deep.bin"))

        let dir = try CommandRunner.weightfs(["ls", "gs://\(bucket)/nested/a/b"], environment: env(emulator))
        #expect(dir.stdoutText.contains("nested/a/b/deep.bin"))

        let stat = try CommandRunner.weightfs(["stat", "--json", "gs://\(bucket)/question?mark.bin"], environment: env(emulator))
        #expect(stat.status == 0, "\(stat.stderr)")
        let fields = try JSONSerialization.jsonObject(with: stat.stdout) as! [String: Any]
        #expect(fields["size"] as? Int == 12)  // 10 + its index in specialNames
        #expect(fields["name"] as? String == "question?mark.bin")
    }

    /// `cp -r`: every object under a prefix lands in the directory under its name below the
    /// prefix (nested folders made, special names kept, bytes equal); objects beside the prefix
    /// are not copied; an empty prefix is an error. (Names that would leave DEST: HostileServerTests.)
    @Test func cpRecursiveCopiesAPrefixIntoADirectory() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("cli-cpr")
        var expected: [String: Data] = [:]
        for (i, name) in Self.specialNames.enumerated() {
            let data = TestBytes.generate(count: 70_000 + i * 1000, seed: UInt64(200 + i))
            try await emulator.upload(bucket, "model/\(name)", data: data)
            expected[name] = data
        }
        try await emulator.upload(bucket, "model-other/config.json", data: Data("{}".utf8))
        try await emulator.upload(bucket, "modelx.bin", data: Data(count: 5))
        let dest = try TestEnvironment.scratchDirectory("cli-cpr").appendingPathComponent("out/x").path
        let r = try CommandRunner.weightfs(["cp", "-r", "--chunk-size", "64KiB", "-v", "gs://\(bucket)/model", dest], environment: env(emulator))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("\(Self.specialNames.count) objects"), "\(r.stderr)")
        for (name, data) in expected {
            #expect((try? Data(contentsOf: URL(fileURLWithPath: "\(dest)/\(name)"))) == data, "\(name)")
        }
        let all = FileManager.default.enumerator(atPath: dest)?.compactMap { $0 as? String } ?? []
        let files = all.filter { var d: ObjCBool = false; return FileManager.default.fileExists(atPath: "\(dest)/\($0)", isDirectory: &d) && !d.boolValue }
        #expect(Set(files) == Set(Self.specialNames), "\(files)")

        let empty = try CommandRunner.weightfs(["cp", "-r", "gs://\(bucket)/nothing-here", dest], environment: env(emulator))
        #expect(empty.status != 0 && empty.stderr.contains("holds no objects"), "\(empty.stderr)")
    }

    /// With four curl event loops (WEIGHTFS_CURL_THREADS=4: transfers and their sinks on four
    /// threads at once) through a link that resets connections, `cp` to a file and to stdout and
    /// `preload --verify` give exactly the object's bytes.
    @Test func fourEventLoopsGiveTheSameBytes() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("cli-loops")
        let data = TestBytes.generate(count: 12 << 20, seed: 4242)
        try await emulator.upload(bucket, "m/blob.bin", data: data)
        let proxy = try LinkProxy(upstream: emulator.url, arguments: ["--fault", "reset=0.1", "--seed", "5"])
        defer { proxy.stop() }
        var environment = env(emulator, endpoint: proxy.url)
        environment["WEIGHTFS_CURL_THREADS"] = "4"
        let dir = try TestEnvironment.scratchDirectory("cli-loops")
        let dest = dir.appendingPathComponent("blob.bin").path
        let r = try CommandRunner.weightfs(["cp", "--chunk-size", "256KiB", "--concurrency", "16", "gs://\(bucket)/m/blob.bin", dest], environment: environment)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dest)) == data)
        let piped = try CommandRunner.weightfs(["cp", "--chunk-size", "256KiB", "--concurrency", "16", "gs://\(bucket)/m/blob.bin", "-"], environment: environment)
        #expect(piped.status == 0 && piped.stdout == data, "\(piped.stderr)")
        let cache = dir.appendingPathComponent("cache").path
        let preload = try CommandRunner.weightfs(["preload", "gs://\(bucket)/m", "--cache-dir", cache, "--chunk-size", "256KiB", "--concurrency", "16"], environment: environment)
        #expect(preload.status == 0, "\(preload.stderr)")
        let verify = try CommandRunner.weightfs(["preload", "gs://\(bucket)/m", "--cache-dir", cache, "--verify"], environment: environment)
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(((try await proxy.stats()["faults"] as? [String: Any])?["reset"] as? Int ?? 0) > 0, "no reset was injected")
    }

    @Test func cpCopiesSpecialNamesToFilesAndStdout() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("cli-cp")
        let dir = try TestEnvironment.scratchDirectory("cli-cp")
        for (i, name) in Self.specialNames.enumerated() {
            let data = TestBytes.generate(count: 300_000 + i * 1000, seed: UInt64(100 + i))
            try await emulator.upload(bucket, name, data: data)
            let dest = dir.appendingPathComponent("out-\(i)").path
            let r = try CommandRunner.weightfs(["cp", "--chunk-size", "64KiB", "gs://\(bucket)/\(name)", dest], environment: env(emulator))
            #expect(r.status == 0, "\(name): \(r.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: dest)) == data, "\(name)")
            let piped = try CommandRunner.weightfs(["cp", "--chunk-size", "64KiB", "--concurrency", "3", "gs://\(bucket)/\(name)", "-"], environment: env(emulator))
            #expect(piped.status == 0)
            #expect(piped.stdout == data, "\(name) via stdout")
        }
        // No partial files are left behind.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".weightfs-partial") }
        #expect(leftovers.isEmpty)
    }

    /// The acceptance check: a 1 GiB object copied with 1 and 16 streams matches its sha256.
    @Test func oneGiBCopiedWithOneAndSixteenStreamsMatchesSHA256() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("cli-gib")
        let dir = try TestEnvironment.scratchDirectory("cli-gib")
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = dir.appendingPathComponent("source.bin").path
        try TestBytes.writeFile(source, count: 1 << 30, seed: 2026)
        let expected = try SHA256.hex(file: source)
        try await emulator.upload(bucket, "big/model-00001-of-00001.safetensors", file: source)
        try FileManager.default.removeItem(atPath: source)
        for streams in [1, 16] {
            let dest = dir.appendingPathComponent("copy-\(streams)").path
            let r = try CommandRunner.weightfs(["cp", "--concurrency", String(streams), "gs://\(bucket)/big/model-00001-of-00001.safetensors", dest], environment: env(emulator))
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try SHA256.hex(file: dest) == expected, "\(streams) streams")
            try FileManager.default.removeItem(atPath: dest)
        }
    }

    @Test func missingObjectIsAClearErrorAndNonZeroExit() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("cli-missing")
        let dest = try TestEnvironment.scratchDirectory("cli-missing").appendingPathComponent("x").path
        let r = try CommandRunner.weightfs(["cp", "gs://\(bucket)/nope.bin", dest], environment: env(emulator))
        #expect(r.status != 0)
        #expect(r.stderr.contains("gs://\(bucket)/nope.bin: not found"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dest))
        let bad = try CommandRunner.weightfs(["ls", "s3://x"], environment: env(emulator))
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("gs://BUCKET"))
    }

    /// `cp` reserves the object's blocks (on tmpfs: checks the room) before fetching: onto a disk too small for it, it fails
    /// at once with the object, the file and what to do, fetches nothing, and leaves no partial file.
    @Test func cpOntoADiskTooSmallFailsBeforeFetching() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("cli-enospc")
        try await emulator.upload(bucket, "big.bin", data: TestBytes.generate(count: 3 << 20, seed: 5))
        let small = try TestEnvironment.scratchDirectory("cli-enospc")
        let mounted = try CommandRunner.run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", small.path])
        try #require(mounted.status == 0, "mount a 1 MiB tmpfs: \(mounted.stderr)")
        defer { _ = try? CommandRunner.run("/bin/umount", [small.path]) }
        let proxy = try LinkProxy(upstream: emulator.url)
        defer { proxy.stop() }
        let dest = small.appendingPathComponent("big.bin").path
        let r = try CommandRunner.weightfs(["cp", "gs://\(bucket)/big.bin", dest], environment: env(emulator, endpoint: proxy.url))
        #expect(r.status != 0)
        #expect(r.stderr.contains("\(dest): no room for big.bin (3.0 MiB): No space left on device; free space there or copy elsewhere"), "\(r.stderr)")
        let mediaRequests = (try await proxy.stats()["media_requests"] as? NSNumber)?.intValue ?? -1
        #expect(mediaRequests == 0, "nothing is fetched for a copy that cannot fit")
        #expect(try FileManager.default.contentsOfDirectory(atPath: small.path).isEmpty)
        // What fits is copied there whole (in memory the room is checked, not reserved).
        let fits = TestBytes.generate(count: 700_000, seed: 6)
        try await emulator.upload(bucket, "fits.bin", data: fits)
        let ok = try CommandRunner.weightfs(["cp", "--chunk-size", "64KiB", "gs://\(bucket)/fits.bin", small.appendingPathComponent("fits.bin").path],
                                           environment: env(emulator, endpoint: proxy.url))
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(try Data(contentsOf: small.appendingPathComponent("fits.bin")) == fits)
    }

    @Test func replacingTheObjectMidCopyFailsWithObjectChanged() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("cli-change")
        try await emulator.upload(bucket, "m.bin", data: TestBytes.generate(count: 24 << 20, seed: 1))
        let proxy = try LinkProxy(upstream: emulator.url, arguments: ["--rate", "3MB"])
        defer { proxy.stop() }
        let dest = try TestEnvironment.scratchDirectory("cli-change").appendingPathComponent("m.bin").path
        let copy = Task.detached { [env = env(emulator, endpoint: proxy.url)] in
            try CommandRunner.weightfs(["cp", "--concurrency", "2", "--chunk-size", "1MiB", "gs://\(bucket)/m.bin", dest], environment: env)
        }
        // Wait until the copy has pulled at least a MiB through the proxy, then replace the object.
        try await waitUntil("the copy's first MiB through the proxy") { ((try await proxy.stats()["bytes_down"] as? NSNumber)?.intValue ?? 0) >= 1 << 20 }
        try await emulator.upload(bucket, "m.bin", data: TestBytes.generate(count: 24 << 20, seed: 2))
        let r = try await copy.value
        #expect(r.status != 0)
        #expect(r.stderr.contains("object changed"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dest))
        #expect(!FileManager.default.fileExists(atPath: dest + ".weightfs-partial"))
    }
}
