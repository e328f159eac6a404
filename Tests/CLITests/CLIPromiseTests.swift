import Foundation
import Testing
import TestSupport

/// README promises of the CLI that had no test: `inspect`, the `file://` store end to end,
/// `--seed`, and `--chat` stopping at the end of the assistant's turn.
@Suite(.serialized)
struct CLIPromiseTests {
    /// docs/CONFIGURATION.md is what the binary's --help says, regenerated and compared; and
    /// every environment variable the product's sources read is in its table.
    @Test func theConfigurationPageIsTheBinarysOwnHelp() throws {
        let root = TestEnvironment.repoRoot
        let fresh = try TestEnvironment.scratchDirectory("configuration").appendingPathComponent("CONFIGURATION.md").path
        let r = try CommandRunner.run(root.appendingPathComponent("scripts/gen-configuration").path, [TestEnvironment.weightfsBinary, fresh], timeout: 120)
        try #require(r.status == 0, "\(r.stderr)")
        let page = try String(contentsOf: root.appendingPathComponent("docs/CONFIGURATION.md"), encoding: .utf8)
        let generated = try String(contentsOfFile: fresh, encoding: .utf8)
        #expect(page == generated, "docs/CONFIGURATION.md differs from the binary's --help: run scripts/gen-configuration")
        for command in ["ls", "stat", "cp", "preload", "mount", "inspect", "generate", "serve"] {
            #expect(page.contains("### weightfs \(command)\n"), "\(command) is missing")
        }
        var read = Set<String>()
        let pattern = try NSRegularExpression(pattern: #"environment\["([A-Z_0-9]+)"\]"#)
        let sources = root.appendingPathComponent("Sources")
        for case let file as String in FileManager.default.enumerator(atPath: sources.path) ?? NSEnumerator()
        where file.hasSuffix(".swift") && !file.hasPrefix("TestSupport/") && !file.hasPrefix("weightfs-fuzz/") {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                read.insert(String(text[Range(m.range(at: 1), in: text)!]))
            }
        }
        #expect(read.contains("STORAGE_EMULATOR_HOST") && read.count >= 8, "\(read)")
        for name in read { #expect(page.contains("`\(name)`"), "\(name) is read by the sources but not in docs/CONFIGURATION.md") }
    }

    static let tiny = TestEnvironment.repoRoot.appendingPathComponent("Tests/Fixtures/tiny-llama-f32")

    /// What the safetensors library itself reads from the fixture's shards: name → (dtype, shape, file).
    func referenceTensors(_ dir: String) throws -> [String: [String]] {
        let script = """
            import json, os, sys
            from safetensors import safe_open
            out = {}
            for f in sorted(os.listdir(sys.argv[1])):
                if f.endswith(".safetensors"):
                    with safe_open(os.path.join(sys.argv[1], f), "numpy") as h:
                        for k in h.keys():
                            s = h.get_slice(k)
                            out[k] = [s.get_dtype(), json.dumps(s.get_shape()), f]
            print(json.dumps(out))
            """
        let r = try CommandRunner.run(TestEnvironment.python, ["-c", script, dir], timeout: 60)
        try #require(r.status == 0, "\(r.stderr)")
        return try JSONSerialization.jsonObject(with: r.stdout) as? [String: [String]] ?? [:]
    }

    func inspected(_ r: CommandResult) throws -> (tensors: [String: [String]], total: Int64) {
        let doc = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any], "\(r.stdoutText) \(r.stderr)")
        var out: [String: [String]] = [:]
        for t in doc["tensors"] as? [[String: Any]] ?? [] {
            let shape = (t["shape"] as? [Int] ?? []).map(String.init).joined(separator: ", ")
            // From a store the shard is its URL; the file name is what must match.
            out[t["name"] as? String ?? ""] = [t["dtype"] as? String ?? "", "[\(shape)]", ((t["shard"] as? String ?? "") as NSString).lastPathComponent]
        }
        return (out, (doc["total_bytes"] as? NSNumber)?.int64Value ?? -1)
    }

    /// `inspect --json` lists what the safetensors library reads, from a directory, `file://`
    /// and `gs://`; from the bucket it reads the headers only.
    @Test func inspectListsWhatTheSafetensorsLibraryReads() async throws {
        let reference = try referenceTensors(Self.tiny.path)
        let shardBytes = try FileManager.default.contentsOfDirectory(atPath: Self.tiny.path).filter { $0.hasSuffix(".safetensors") }
            .reduce(Int64(0)) { $0 + ((try FileManager.default.attributesOfItem(atPath: Self.tiny.appendingPathComponent($1).path)[.size] as? NSNumber)?.int64Value ?? 0) }
        let local = try inspected(try CommandRunner.weightfs(["inspect", "--json", Self.tiny.path], timeout: 60))
        #expect(local.tensors == reference)
        #expect(local.total > 0 && local.total < shardBytes)
        let viaFile = try inspected(try CommandRunner.weightfs(["inspect", "--json", "file://\(Self.tiny.path)"], timeout: 60))
        #expect(viaFile.tensors == reference && viaFile.total == local.total)

        let (emulator, bucket) = try await Emulator.freshBucket("cli-inspect")
        for name in try FileManager.default.contentsOfDirectory(atPath: Self.tiny.path) {
            try await emulator.upload(bucket, "m/\(name)", file: Self.tiny.appendingPathComponent(name).path)
        }
        let proxy = try LinkProxy(upstream: emulator.url, arguments: [])
        defer { proxy.stop() }
        let remote = try inspected(try CommandRunner.weightfs(["inspect", "--json", "gs://\(bucket)/m"], environment: ["STORAGE_EMULATOR_HOST": proxy.url], timeout: 60))
        #expect(remote.tensors == reference && remote.total == local.total)
        let down = (try await proxy.stats()["bytes_down"] as? NSNumber)?.int64Value ?? -1
        #expect(down < shardBytes / 4, "inspect of gs:// moved \(down) bytes of \(shardBytes)")
    }

    /// `file:///DIR` works wherever `gs://` does: preload into a cache, mount, and generate
    /// print the same as the directory itself.
    @Test func theFileStoreEndToEnd() async throws {
        let url = "file://\(Self.tiny.path)"
        let cache = try TestEnvironment.scratchDirectory("file-e2e").path
        let preload = try CommandRunner.weightfs(["preload", url, "--cache-dir", cache], timeout: 120)
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.tiny.path).count
        #expect(preload.status == 0 && preload.stderr.contains("preload: \(files) objects"), "\(preload.stderr)")
        let again = try CommandRunner.weightfs(["preload", url, "--cache-dir", cache], timeout: 120)
        #expect(again.stderr.contains("0 B fetched"), "\(again.stderr)")

        let args = ["--prompt", "The capital of France is", "--max-tokens", "8", "--ignore-eos", "--threads", "1"]
        let local = try CommandRunner.weightfs(["generate", Self.tiny.path] + args, timeout: 120)
        let viaStore = try CommandRunner.weightfs(["generate", url, "--cache-dir", cache] + args, timeout: 120)
        #expect(local.status == 0 && viaStore.status == 0, "\(viaStore.stderr)")
        #expect(!local.stdoutText.isEmpty && viaStore.stdoutText == local.stdoutText)

        let mount = try MountProcess(url: url, endpoint: "http://127.0.0.1:1", arguments: ["--prefetch", "none"])
        defer { mount.stop() }
        for name in try FileManager.default.contentsOfDirectory(atPath: Self.tiny.path) {
            #expect(FileManager.default.contents(atPath: "\(mount.mountpoint)/\(name)") == FileManager.default.contents(atPath: Self.tiny.appendingPathComponent(name).path), "\(name)")
        }
    }

    /// `WEIGHTFS_CPU_KERNELS` forces a kernel set the CPU has (the report names it), and one it
    /// lacks or does not know is refused before any work, by `generate` and `serve` alike.
    @Test func cpuKernelsAreForcedOrRefusedByName() throws {
        let flags = Set((try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)).split(whereSeparator: \.isWhitespace).map(String.init))
        let avx512 = ["avx512f", "avx512bw", "avx512vl", "avx512dq"].allSatisfy(flags.contains)
        let bf16 = avx512 && flags.contains("avx512_bf16")
        let has = ["avx2": true, "avx512": avx512, "avx512bf16": bf16, "amx": bf16 && flags.contains("amx_bf16") && flags.contains("amx_tile")]
        let args = ["generate", Self.tiny.path, "--prompt", "Once upon a time", "--max-tokens", "4", "--ignore-eos", "--threads", "1"]
        for (set, runs) in has {
            let r = try CommandRunner.weightfs(args, environment: ["WEIGHTFS_CPU_KERNELS": set], timeout: 120)
            if runs {
                #expect(r.status == 0 && r.stderr.contains("CPU kernels \(set);") && !r.stdoutText.isEmpty, "\(set): \(r.stderr)")
            } else {
                #expect(r.status != 0 && r.stdoutText.isEmpty, "\(set): \(r.stderr)")
                #expect(r.stderr.contains("WEIGHTFS_CPU_KERNELS=\(set): this CPU lacks"), "\(r.stderr)")
            }
        }
        let bogus = try CommandRunner.weightfs(args, environment: ["WEIGHTFS_CPU_KERNELS": "sse2"], timeout: 120)
        #expect(bogus.status != 0 && bogus.stderr.contains("WEIGHTFS_CPU_KERNELS=sse2 is not a kernel set: use one of avx2, avx512, avx512bf16, amx"), "\(bogus.stderr)")
        let serve = try CommandRunner.weightfs(["serve", Self.tiny.path, "--port", "0"], environment: ["WEIGHTFS_CPU_KERNELS": "sse2"], timeout: 60)
        #expect(serve.status != 0 && serve.stderr.contains("WEIGHTFS_CPU_KERNELS=sse2 is not a kernel set") && !serve.stderr.contains("listening"), "\(serve.stderr)")
    }

    /// Sampling with a seed: the same seed prints the same text, another seed other text.
    @Test func theSameSeedGivesTheSameText() throws {
        func run(_ seed: Int) throws -> String {
            let r = try CommandRunner.weightfs(["generate", Self.tiny.path, "--prompt", "Once upon a time", "--max-tokens", "24", "--ignore-eos",
                                                "--temperature", "1.0", "--top-k", "50", "--seed", String(seed), "--threads", "1"], timeout: 120)
            #expect(r.status == 0, "\(r.stderr)")
            return r.stdoutText
        }
        let a = try run(7), b = try run(7), c = try run(8)
        #expect(!a.isEmpty && a == b)
        #expect(a != c, "seeds 7 and 8 sampled the same 24 tokens")
        let greedy = try CommandRunner.weightfs(["generate", Self.tiny.path, "--prompt", "Once upon a time", "--max-tokens", "24", "--ignore-eos", "--threads", "1"], timeout: 120)
        #expect(greedy.stdoutText != a, "temperature 1 printed the greedy text")
    }

    /// `--chat` stops at the end of the assistant's turn (`<|im_end|>`) even when the model's
    /// config names another end-of-sequence token: the demo model with its EOS moved elsewhere.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["WEIGHTFS_DEMO_MODEL_TESTS"] != nil, "needs the demo model (scripts/test builds it)"))
    func chatStopsAtTheEndOfTheTurn() throws {
        let demo = TestEnvironment.repoRoot.appendingPathComponent(".work/demo-model/bf16")
        let dir = try TestEnvironment.scratchDirectory("chat-stop")
        for name in try FileManager.default.contentsOfDirectory(atPath: demo.path) where name.hasSuffix(".safetensors") || name == "tokenizer.json" {
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(name), withDestinationURL: demo.appendingPathComponent(name))
        }
        // EOS becomes <|endoftext|> (id 0) in config.json, generation_config.json and tokenizer_config.json.
        for name in ["config.json", "generation_config.json", "tokenizer_config.json"] {
            guard var doc = try JSONSerialization.jsonObject(with: Data(contentsOf: demo.appendingPathComponent(name))) as? [String: Any] else { continue }
            if doc["eos_token_id"] != nil { doc["eos_token_id"] = 0 }
            if doc["eos_token"] != nil { doc["eos_token"] = "<|endoftext|>" }
            try JSONSerialization.data(withJSONObject: doc).write(to: dir.appendingPathComponent(name))
        }
        let r = try CommandRunner.weightfs(["generate", dir.path, "--chat", "--prompt", "What is the capital of France? Answer in one word.",
                                            "--max-tokens", "40"], timeout: 300)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdoutText.contains("Paris"), "\(r.stdoutText)")
        #expect(r.stderr.contains("stopped at end of turn <|im_end|>"), "\(r.stderr)")
    }
}
