import Foundation
import ObjectStore
import Testing
import TestSupport
import Tokenizers

/// `weightfs serve` as a user runs it, driven by the official `openai` Python client.
@Suite(.serialized)
struct ServerTests {
    static let tiny = TestEnvironment.repoRoot.appendingPathComponent("Tests/Fixtures/tiny-llama-f32")
    static let client = TestEnvironment.repoRoot.appendingPathComponent("Tests/ServerTests/openai_client.py").path

    /// A running server and where it listens.
    struct Served {
        let child: SpawnedChild
        let port: Int
        let stderrPath: String
        var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    }

    static func serve(_ arguments: [String], environment: [String: String] = [:]) async throws -> Served {
        let dir = try TestEnvironment.scratchDirectory("serve")
        let stderrPath = dir.appendingPathComponent("serve.log").path
        let child = try SpawnedChild(TestEnvironment.weightfsBinary, ["serve"] + arguments + ["--port", "0", "--threads", "2"],
                                     environment: ["WEIGHTFS_LOG": "info"].merging(environment) { $1 }, stderrPath: stderrPath)
        var port = 0
        do {
            try await waitUntil("the server to listen") {
                let log = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
                guard let r = log.range(of: "listening on http://127.0.0.1:") else { return false }
                port = Int(log[r.upperBound...].prefix(while: \.isNumber)) ?? 0
                return port > 0
            }
        } catch {
            _ = child.stop(SIGKILL)
            throw TestSetupError("\(error): \((try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "")")
        }
        return Served(child: child, port: port, stderrPath: stderrPath)
    }

    func get(_ port: Int, _ path: String, key: String? = nil) throws -> (status: Int, body: String) {
        var args = ["-s", "-o", "-", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"]
        if let key { args += ["-H", "Authorization: Bearer \(key)"] }
        let r = try CommandRunner.run("/usr/bin/curl", args, timeout: 60)
        let text = r.stdoutText
        let split = text.lastIndex(of: "\n").map { (String(text[..<$0]), Int(text[text.index(after: $0)...]) ?? 0) } ?? (text, 0)
        return (split.1, split.0)
    }

    /// Completions and chat, streaming and not, through the `openai` client: greedy text equals
    /// `weightfs generate`'s; errors come in OpenAI's shape with the right status; `/metrics`
    /// has vLLM's names; SIGTERM ends the server with status 0.
    @Test func theOpenAIClientGetsWhatGenerateGets() async throws {
        let prompt = "The capital of France is", message = "What is the capital of France?", maxTokens = 12
        let served = try await Self.serve([Self.tiny.path, "--api-key", "sekret", "--served-model-name", "tiny", "--max-model-len", "256"])
        defer { _ = served.child.stop(SIGKILL) }
        let (health, _) = try get(served.port, "/health")
        #expect(health == 200)

        let r = try CommandRunner.run(TestEnvironment.python, [Self.client, String(served.port), "tiny", "sekret", prompt, message, String(maxTokens)], timeout: 300)
        try #require(r.status == 0, "\(r.stderr)\n\(served.stderr)")
        let out = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        func field(_ k: String) -> [String: Any] { out[k] as? [String: Any] ?? [:] }

        let generated = try CommandRunner.weightfs(["generate", Self.tiny.path, "--prompt", prompt, "--max-tokens", String(maxTokens), "--ignore-eos", "--threads", "1"], timeout: 120)
        let chatGenerated = try CommandRunner.weightfs(["generate", Self.tiny.path, "--chat", "--prompt", message, "--max-tokens", String(maxTokens), "--threads", "1"], timeout: 120)
        let expected = String(generated.stdoutText.dropLast()), expectedChat = String(chatGenerated.stdoutText.dropLast())
        #expect(!expected.isEmpty)

        #expect(out["models"] as? [String] == ["tiny"])
        #expect(field("completion")["text"] as? String == expected)
        #expect(field("completion")["finish_reason"] as? String == "length")
        let usage = field("completion")["usage"] as? [String: Any]
        #expect(usage?["completion_tokens"] as? Int == maxTokens)
        #expect(field("completion_stream")["text"] as? String == expected)
        #expect(field("completion_stream")["finish_reason"] as? String == "length")
        #expect((field("completion_stream")["usage"] as? [String: Any])?["completion_tokens"] as? Int == maxTokens)
        #expect(field("chat")["text"] as? String == expectedChat, "\(field("chat")) vs \(expectedChat)")
        #expect(field("chat")["role"] as? String == "assistant")
        #expect(field("chat_stream")["text"] as? String == expectedChat)
        #expect(field("chat_stream")["role"] as? String == "assistant")
        let stopped = field("stopped"), stop = stopped["stop"] as? String ?? ""
        if !stop.isEmpty, let cut = expected.range(of: stop) {
            #expect(stopped["text"] as? String == String(expected[..<cut.lowerBound]))
            #expect(stopped["finish_reason"] as? String == "stop")
        }

        let errors = field("errors")
        #expect(errors["unknown_model"] as? Int == 404)
        #expect(errors["n2"] as? Int == 400)
        #expect(errors["negative_max_tokens"] as? Int == 400)
        #expect(errors["huge_max_tokens"] as? Int == 400)
        #expect(errors["too_long"] as? Int == 400)
        #expect(errors["logprobs"] as? Int == 400)
        #expect(errors["bad_key"] as? Int == 401)

        let (metricsStatus, metrics) = try get(served.port, "/metrics")
        #expect(metricsStatus == 200)
        for name in ["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc", "vllm:prompt_tokens_total",
                     "vllm:generation_tokens_total", "vllm:request_success_total", "vllm:num_preemptions_total",
                     "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:time_to_first_token_seconds_bucket",
                     "vllm:inter_token_latency_seconds_bucket", "vllm:e2e_request_latency_seconds_bucket", "vllm:request_queue_time_seconds_bucket"] {
            #expect(metrics.contains("\(name){") , "\(name) missing from /metrics")
        }
        #expect(metrics.contains("vllm:num_requests_waiting{model_name=\"tiny\"} 0"))
        #expect(metrics.contains("vllm:request_success_total{model_name=\"tiny\",finished_reason=\"length\"}"))
        // Both chat calls shared their prompt: the second hit the prefix cache.
        #expect(!metrics.contains("vllm:prefix_cache_hits_total{model_name=\"tiny\"} 0\n"), "no prefix cache hits")

        let status = served.child.stop(SIGTERM)
        #expect(status == 0, "exit status \(String(describing: status)): \(served.stderr.suffix(500))")
        #expect(served.stderr.contains("request cmpl-"), "one log line per request")
    }

    /// From `gs://` through the link proxy: with every shard's tensor bytes held back, `/health`
    /// and `/ready` answer and a completion is accepted before any weight byte has arrived; then
    /// the layers come while the last shard (lm_head) is still held, and the request runs them;
    /// once lm_head arrives it returns the text the local directory gives.
    @Test func servesFromTheBucketWhileTheLastShardIsHeld() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("serve-gs")
        for name in try FileManager.default.contentsOfDirectory(atPath: Self.tiny.path) {
            _ = try await emulator.upload(bucket, "m/\(name)", file: Self.tiny.appendingPathComponent(name).path)
        }
        let proxy = try LinkProxy(upstream: emulator.url, arguments: [])
        defer { proxy.stop() }
        try await proxy.configure(["hold": "model-0000[1-5]-of-00005", "hold_from": 1])
        let cache = try TestEnvironment.scratchDirectory("serve-gs-cache").path
        let served = try await Self.serve(["gs://\(bucket)/m", "--cache-dir", cache, "--chunk-size", "64KiB", "--served-model-name", "tiny", "--max-model-len", "256"],
                                          environment: ["STORAGE_EMULATOR_HOST": proxy.url])
        defer { _ = served.child.stop(SIGKILL) }
        #expect(try get(served.port, "/health").status == 200)
        #expect(try get(served.port, "/ready").status == 200, "--ready-when listening: ready at once")

        let body = #"{"model": "tiny", "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0, "ignore_eos": true}"#
        let port = served.port
        let answer = Task.detached {
            try CommandRunner.run("/usr/bin/curl", ["-s", "-H", "Content-Type: application/json", "-d", body, "http://127.0.0.1:\(port)/v1/completions"], timeout: 300)
        }
        // Nothing of the weights has arrived: the request waits for its first layer.
        try await Task.sleep(for: .milliseconds(300))
        #expect(!served.stderr.contains("cold start: embeddings ready") && !served.stderr.contains("cold start: layer 0 ready"), "\(served.stderr)")
        #expect(try get(served.port, "/health").status == 200)
        // Let everything but lm_head's shard through.
        try await proxy.configure(["hold": "model-00005-of-00005", "hold_from": 1])
        // The request runs the layers it has and waits in its first step on the held lm_head.
        try await waitUntil("the request to run") { try self.get(port, "/metrics").body.contains("vllm:num_requests_running{model_name=\"tiny\"} 1.0") }
        #expect(((try await proxy.stats()["held_requests"] as? NSNumber)?.intValue ?? 0) > 0)
        #expect(try get(served.port, "/metrics").body.contains("weightfs_weights_ready{model_name=\"tiny\"} 0.0"))
        // The timeline so far: every layer was ready (and so computed: the forward pass asks
        // for a group as it reaches it) while lm_head's bytes were still held back.
        try await waitUntil("layer 2 in the timeline") { served.stderr.contains("cold start: layer 2 ready") }
        let before = served.stderr
        #expect(before.contains("cold start: listening") && before.contains("cold start: config, tokenizer and headers read"))
        #expect(before.contains("cold start: layer 0 ready") && !before.contains("cold start: lm_head ready") && !before.contains("cold start: first token"), "\(before)")
        try await proxy.configure(["hold": NSNull()])
        let r = try await answer.value
        let doc = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any], "\(r.stdoutText) \(served.stderr)")
        let text = ((doc["choices"] as? [[String: Any]])?.first?["text"] as? String) ?? "<none>"
        let local = try CommandRunner.weightfs(["generate", Self.tiny.path, "--prompt", "The capital of France is", "--max-tokens", "8", "--ignore-eos", "--threads", "1"], timeout: 120)
        #expect(text + "\n" == local.stdoutText)
        let after = served.stderr
        #expect(after.contains("cold start: lm_head ready") && after.contains("cold start: first token"))
        #expect(try get(served.port, "/metrics").body.contains("weightfs_cold_start_seconds{model_name=\"tiny\",event=\"layer 0 ready\"}"))
        #expect(served.child.stop(SIGTERM) == 0)
    }

    /// 16 streaming greedy requests at once with a deliberately small KV cache: all complete,
    /// each with the text it gets alone, and the preemptions show in `/metrics`. Then two
    /// requests sharing a 512-token prefix: the second's prefix comes from the cache (hits
    /// counted in `/metrics`, not timed).
    @Test func concurrentRequestsWithASmallCacheAndASharedPrefix() async throws {
        let script = TestEnvironment.repoRoot.appendingPathComponent("Tests/ServerTests/concurrent_client.py").path
        // tiny-llama: 3 layers × 2 KV heads × 16 dims, f32: 12 KiB per 16-position block; 32 blocks
        // (the least that holds one request of the 512-position context).
        let served = try await Self.serve([Self.tiny.path, "--served-model-name", "tiny", "--max-model-len", "512",
                                           "--kv-cache-memory", String(32 * 12288), "--max-num-batched-tokens", "512"])
        defer { _ = served.child.stop(SIGKILL) }
        let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi"]
        let prompts = words.enumerated().map { k, w in String(repeating: "\(w) ", count: 3 + k) }
        let maxTokens = 24
        // A prefix of about 400 tokens (the tiny model's context is 512).
        let tokenizer = try Tokenizer(directory: Self.tiny)
        var prefix = ""
        while tokenizer.encode(prefix).count < 400 { prefix += "the weights arrive while it answers; " }
        let shared = tokenizer.encode(prefix).count
        let promptsJSON = String(decoding: try JSONSerialization.data(withJSONObject: prompts), as: UTF8.self)
        let r = try CommandRunner.run(TestEnvironment.python, [script, String(served.port), "tiny", promptsJSON, String(maxTokens), prefix], timeout: 600)
        try #require(r.status == 0, "\(r.stderr)\n\(served.stderr.suffix(2000))")
        let out = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        let texts = out["concurrent"] as? [String] ?? []
        #expect(texts.count == prompts.count)
        for (k, p) in prompts.enumerated() {
            let alone = try CommandRunner.weightfs(["generate", Self.tiny.path, "--prompt", p, "--max-tokens", String(maxTokens), "--ignore-eos", "--threads", "1"], timeout: 120)
            #expect(k < texts.count && texts[k] + "\n" == alone.stdoutText, "request \(k)")
        }
        let metrics = try get(served.port, "/metrics").body
        func value(_ name: String) -> Double? {
            metrics.split(separator: "\n").first { $0.hasPrefix("\(name){model_name=\"tiny\"}") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        #expect((value("vllm:num_preemptions_total") ?? 0) > 0, "32 blocks for 16 requests of 2 to 4 blocks each")
        #expect(value("vllm:generation_tokens_total") == Double(prompts.count * maxTokens + 4))
        #expect(value("vllm:num_requests_waiting") == 0 && value("vllm:num_requests_running") == 0)
        // The second request found the full blocks of the shared prefix (the first 16-token
        // blocks of both prompts are the same tokens; the last shared block may differ by the tail).
        let hits = value("vllm:prefix_cache_hits_total") ?? 0
        #expect(hits >= Double(shared / 16 * 16 - 16), "hits \(hits) for a shared prefix of \(shared) tokens")
        // The engine's steps by kind: decodes carry one token per sequence, prompts went in mixed
        // steps, and each kind's loop time holds its forward time.
        func step(_ name: String, _ kind: String) -> Double {
            metrics.split(separator: "\n").first { $0.hasPrefix("\(name){model_name=\"tiny\",kind=\"\(kind)\"}") }
                .flatMap { Double($0.split(separator: " ").last ?? "") } ?? -1
        }
        #expect(step("weightfs_engine_steps_total", "decode") > 0 && step("weightfs_engine_steps_total", "mixed") > 0, "\(metrics)")
        #expect(step("weightfs_engine_step_tokens_total", "decode") == step("weightfs_engine_step_sequences_total", "decode"))
        #expect(step("weightfs_engine_step_tokens_total", "mixed") > step("weightfs_engine_step_sequences_total", "mixed"))
        for kind in ["decode", "mixed"] {
            #expect(step("weightfs_engine_step_seconds_total", kind) >= step("weightfs_engine_forward_seconds_total", kind))
            #expect(step("weightfs_engine_forward_seconds_total", kind) > 0)
        }
        #expect(served.child.stop(SIGTERM) == 0)
    }

    /// Bad input gets OpenAI's error shape naming the field; a client gone mid-stream has its
    /// request aborted; a slowloris connection stops nobody; the server keeps serving.
    @Test func badClientsGetClearErrorsAndStopNobody() async throws {
        let script = TestEnvironment.repoRoot.appendingPathComponent("Tests/ServerTests/bad_clients.py").path
        let served = try await Self.serve([Self.tiny.path, "--served-model-name", "tiny", "--api-key", "k3y", "--max-model-len", "512"])
        defer { _ = served.child.stop(SIGKILL) }
        let r = try CommandRunner.run(TestEnvironment.python, [script, String(served.port), "tiny", "k3y"], timeout: 300)
        try #require(r.status == 0, "\(r.stderr)\n\(served.stderr.suffix(2000))")
        let out = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        func reply(_ k: String) -> (status: Int, error: [String: Any]) {
            let pair = out[k] as? [Any] ?? []
            return (pair.first as? Int ?? 0, ((pair.last as? [String: Any])?["error"] as? [String: Any]) ?? [:])
        }
        for (k, status, param) in [("malformed", 400, nil), ("not_object", 400, nil), ("wrong_type", 400, "max_tokens"),
                                   ("wrong_temperature", 400, "temperature"), ("no_prompt", 400, "prompt"), ("bad_messages", 400, "messages"),
                                   ("out_of_vocab", 400, "prompt"), ("missing_key", 401, nil)] as [(String, Int, String?)] {
            let (got, error) = reply(k)
            #expect(got == status, "\(k): \(out[k] ?? "none")")
            #expect(error["code"] as? Int == status && !(error["message"] as? String ?? "").isEmpty && error["type"] != nil, "\(k)")
            if let param { #expect(error["param"] as? String == param, "\(k): \(error)") }
        }
        #expect(out["gone_saw_events"] as? Int ?? 0 >= 2)
        // Completions answer with Connection: close (watching for the client to leave reads the
        // connection, so it cannot carry another request) and then close it: a request pipelined
        // behind one is not left waiting (before 2026-12-03 the connection stayed open, unanswered).
        let pipelined = out["pipelined"] as? [String: Any] ?? [:]
        #expect(pipelined["responses"] as? Int == 1 && pipelined["connection_close"] as? Bool == true, "\(pipelined)")
        #expect(pipelined["closed"] as? Bool == true, "the server left a pipelining client waiting: \(pipelined)")
        let after = out["after"] as? [Any] ?? []
        #expect(after.first as? Int == 200, "\(after)")
        // The abandoned stream (400 tokens asked) and the abandoned plain request (500 asked,
        // its client gone as soon as it sent it) were aborted, not run to their end.
        try await waitUntil("the abandoned request to end") {
            try self.get(served.port, "/metrics").body.contains("vllm:num_requests_running{model_name=\"tiny\"} 0.0")
        }
        let metrics = try get(served.port, "/metrics").body
        let generated = metrics.split(separator: "\n").first { $0.hasPrefix("vllm:generation_tokens_total{") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(generated < 400, "generated \(generated) tokens in all: a request of a client that left ran on")
        #expect(metrics.contains("vllm:request_success_total{model_name=\"tiny\",finished_reason=\"abort\"} 2"), "both abandoned requests counted as aborted")
        #expect(served.child.stop(SIGTERM) == 0)
    }

    /// SIGTERM: `/ready` fails and new requests are refused while a stream in flight runs to its
    /// end within `--shutdown-grace`; then the process exits 0.
    @Test func sigtermLetsTheStreamInFlightFinish() async throws {
        let served = try await Self.serve([Self.tiny.path, "--served-model-name", "tiny", "--max-model-len", "512", "--shutdown-grace", "60"])
        defer { _ = served.child.stop(SIGKILL) }
        let port = served.port
        let body = #"{"model": "tiny", "prompt": "long", "max_tokens": 300, "temperature": 0, "stream": true, "ignore_eos": true}"#
        let streaming = Task.detached {
            try CommandRunner.run("/usr/bin/curl", ["-s", "-N", "-H", "Content-Type: application/json", "-d", body, "http://127.0.0.1:\(port)/v1/completions"], timeout: 300)
        }
        try await waitUntil("the stream to start") { try self.get(port, "/metrics").body.contains("vllm:num_requests_running{model_name=\"tiny\"} 1.0") }
        kill(served.child.pid, SIGTERM)
        try await waitUntil("/ready to refuse") { (try? self.get(port, "/ready").status) != 200 }
        let r = try await streaming.value
        #expect(r.stdoutText.contains("\"finish_reason\":\"length\""), "the stream ran to its end: \(r.stdoutText.suffix(300))")
        #expect(r.stdoutText.hasSuffix("data: [DONE]\n\n"))
        var status: Int32 = 0
        var exited = false
        for _ in 0..<400 where !exited {
            exited = waitpid(served.child.pid, &status, WNOHANG) == served.child.pid
            if !exited { usleep(50_000) }
        }
        #expect(exited && status == 0, "exit status \(status)")
    }

    /// Load: 64 streaming clients for 60 s from another process, at most 16 running: no errors,
    /// requests wait while it is saturated and none after, and memory stays flat after warm-up
    /// (a leak per request would grow it with the thousands of requests served).
    @Test func sixtyFourStreamingClientsForAMinute() async throws {
        let script = TestEnvironment.repoRoot.appendingPathComponent("Tests/ServerTests/load_clients.py").path
        let served = try await Self.serve([Self.tiny.path, "--served-model-name", "tiny", "--max-model-len", "512", "--max-num-seqs", "16"],
                                          environment: ["WEIGHTFS_LOG": "warning"])
        defer { _ = served.child.stop(SIGKILL) }
        let r = try CommandRunner.run(TestEnvironment.python, [script, String(served.port), "tiny", String(served.child.pid), "60", "64"], timeout: 400)
        try #require(r.status == 0, "\(r.stderr)\n\(served.stderr.suffix(2000))")
        let out = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        #expect(out["error_count"] as? Int == 0, "\(out["errors"] ?? [])")
        let done = out["done"] as? Int ?? 0
        #expect(done > 64, "\(done) requests completed")
        let waiting = out["waiting"] as? [Double] ?? []
        #expect((waiting.max() ?? 0) > 0, "64 clients, 16 seats: some wait")
        #expect(out["waiting_after"] as? Double == 0)
        // Memory after warm-up (the first quarter) grows by less than 32 MiB to the end.
        let rss = out["rss"] as? [Int] ?? []
        try #require(rss.count >= 20, "\(rss.count) samples")
        let warm = rss[rss.count / 4], end = rss.last!
        #expect(end - warm < 32 << 20, "RSS \(warm / 1048576) MiB after warm-up, \(end / 1048576) MiB at the end")
        print("load: \(done) requests, \(out["tokens"] ?? 0) streamed tokens in 60 s; waiting at most \(waiting.max() ?? 0); RSS \(rss.first! / 1048576) → \(warm / 1048576) (warm) → \(end / 1048576) MiB")
        #expect(served.child.stop(SIGTERM) == 0)
    }

    /// The demo model's cold start from the bucket through a shaped link (4 connections of
    /// 5 MB/s: its 269 MB take over 13 s): `/health` answers before any weight has arrived; a
    /// completion sent at once returns the text `weightfs generate` gives from the local
    /// directory; the timeline shows layer 1 reached (so layer 0 computed) before the last
    /// layer's bytes arrived; `/metrics` carries the per-group load state. A second server on
    /// the same cache finds the weights there and fetches nothing.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["WEIGHTFS_DEMO_MODEL_TESTS"] != nil, "needs the demo model (scripts/test builds it)"))
    func theDemoModelAnswersWhileItsWeightsStillArrive() async throws {
        let demo = TestEnvironment.repoRoot.appendingPathComponent(".work/demo-model/bf16")
        let (emulator, bucket) = try await Emulator.freshBucket("serve-cold")
        for name in try FileManager.default.contentsOfDirectory(atPath: demo.path) where !name.hasPrefix(".") {
            _ = try await emulator.upload(bucket, "demo/\(name)", file: demo.appendingPathComponent(name).path)
        }
        let layers = try #require((try JSONSerialization.jsonObject(with: Data(contentsOf: demo.appendingPathComponent("config.json"))) as? [String: Any])?["num_hidden_layers"] as? Int)
        let proxy = try LinkProxy(upstream: emulator.url, arguments: ["--rate", "5MB"])
        defer { proxy.stop() }
        let cache = try TestEnvironment.scratchDirectory("serve-cold-cache").path
        let arguments = ["gs://\(bucket)/demo", "--cache-dir", cache, "--concurrency", "4", "--served-model-name", "demo", "--max-model-len", "512"]
        let served = try await Self.serve(arguments, environment: ["STORAGE_EMULATOR_HOST": proxy.url])
        defer { _ = served.child.stop(SIGKILL) }
        let health = try get(served.port, "/health").status
        let atHealth = served.stderr
        #expect(health == 200)
        #expect(!atHealth.contains("embeddings arrived") && !atHealth.contains("layer 0 arrived"), "\(atHealth)")

        let prompt = "The capital of France is"
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["model": "demo", "prompt": prompt, "max_tokens": 8, "temperature": 0, "ignore_eos": true]), as: UTF8.self)
        let r = try CommandRunner.run("/usr/bin/curl", ["-s", "-H", "Content-Type: application/json", "-d", body, "http://127.0.0.1:\(served.port)/v1/completions"], timeout: 300)
        let doc = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any], "\(r.stdoutText) \(served.stderr)")
        let text = ((doc["choices"] as? [[String: Any]])?.first?["text"] as? String) ?? "<none>"
        let local = try CommandRunner.weightfs(["generate", demo.path, "--prompt", prompt, "--max-tokens", "8", "--ignore-eos", "--threads", "1"], timeout: 300)
        #expect(text + "\n" == local.stdoutText)

        try await waitUntil("every weight to arrive", timeout: .seconds(300)) { served.stderr.contains("cold start: all weights arrived") }
        let metrics = try get(served.port, "/metrics").body
        func event(_ name: String) -> Double? {
            metrics.split(separator: "\n").first { $0.hasPrefix("weightfs_cold_start_seconds{model_name=\"demo\",event=\"\(name)\"}") }
                .flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        let reached = try #require(event("layer 1 ready"), "\(served.stderr)")
        let lastArrived = try #require(event("layer \(layers - 1) arrived"), "\(served.stderr)")
        #expect(reached < lastArrived, "layer 1 reached at \(reached) s, layer \(layers - 1)'s bytes arrived at \(lastArrived) s")
        #expect(try #require(event("listening")) < lastArrived)
        #expect(metrics.contains("weightfs_weight_group_loaded{model_name=\"demo\",group=\"layer \(layers - 1)\"} 1.0"))
        #expect(metrics.contains("weightfs_weight_group_loaded{model_name=\"demo\",group=\"embeddings\"} 1.0"))
        #expect(!metrics.contains("weightfs_weight_group_loaded{model_name=\"demo\",group=\"layer 0\"} 0.0"))
        #expect(metrics.contains("weightfs_weights_ready{model_name=\"demo\"} 1.0"))
        #expect(metrics.contains("weightfs_cache_hit_bytes{model_name=\"demo\"} 0.0"))
        #expect(served.child.stop(SIGTERM) == 0)

        // Again on the same cache: everything is found there.
        try await proxy.configure(["rate": 0])
        let again = try await Self.serve(arguments, environment: ["STORAGE_EMULATOR_HOST": proxy.url])
        defer { _ = again.child.stop(SIGKILL) }
        try await waitUntil("every weight to be found", timeout: .seconds(120)) { again.stderr.contains("cold start: all weights arrived") }
        let second = try get(again.port, "/metrics").body
        let size = try FileManager.default.attributesOfItem(atPath: demo.appendingPathComponent("model.safetensors").path)[.size] as? Int ?? -1
        #expect(second.contains("weightfs_cache_hit_bytes{model_name=\"demo\"} \(Double(size))"), "\(second)")
        #expect(second.contains("weightfs_bytes_fetched_total{model_name=\"demo\"} 0"))
        #expect(again.child.stop(SIGTERM) == 0)
    }

    /// Prefix caching on the demo model: the second of two requests sharing a prefix of 512
    /// tokens or more takes every full block of it from the cache (`vllm:prefix_cache_hits_total`,
    /// counted, not timed) and computes only the rest.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["WEIGHTFS_DEMO_MODEL_TESTS"] != nil, "needs the demo model (scripts/test builds it)"))
    func aSharedPrefixOf512TokensIsComputedOnce() async throws {
        let demo = TestEnvironment.repoRoot.appendingPathComponent(".work/demo-model/bf16")
        let tokenizer = try Tokenizer(directory: demo)
        var prefix = ""
        while tokenizer.encode(prefix).count < 520 { prefix += "Model weights stream from the bucket while the server answers. " }
        let shared = tokenizer.encode(prefix).count
        let served = try await Self.serve([demo.path, "--served-model-name", "demo", "--max-model-len", "1024"])
        defer { _ = served.child.stop(SIGKILL) }
        func metric(_ name: String) throws -> Double {
            let body = try get(served.port, "/metrics").body
            return body.split(separator: "\n").first { $0.hasPrefix("\(name){model_name=\"demo\"}") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? -1
        }
        for (k, tail) in ["Question one: what arrives first?", "Question two: what arrives last?"].enumerated() {
            let body = String(decoding: try JSONSerialization.data(withJSONObject: ["model": "demo", "prompt": prefix + tail, "max_tokens": 1, "temperature": 0]), as: UTF8.self)
            let r = try CommandRunner.run("/usr/bin/curl", ["-s", "-H", "Content-Type: application/json", "-d", body, "http://127.0.0.1:\(served.port)/v1/completions"], timeout: 300)
            #expect(r.stdoutText.contains("\"finish_reason\""), "\(r.stdoutText)")
            let hits = try metric("vllm:prefix_cache_hits_total")
            if k == 0 { #expect(hits == 0) } else { #expect(hits >= Double(shared / 16 * 16 - 16) && hits >= 512, "\(hits) hits for a \(shared)-token prefix") }
        }
        #expect(served.child.stop(SIGTERM) == 0)
    }
}
