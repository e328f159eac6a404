import Foundation
import Testing
import TestSupport

/// configs/gke/ as a platform engineer applies it: rendered by scripts/gke/render from the
/// settings file, validated offline against the Kubernetes schemas (kubernetes-validate, a pinned
/// version) and KEDA's CRDs (scripts/gke/check.py), and checked against the real binary: every
/// flag exists in that command's `--help`, every probe path is answered by a running
/// `weightfs serve`, every metric a KEDA query names is in its `/metrics`, /dev/shm is memory,
/// GPU pods tolerate the GPU taint.
@Suite(.serialized)
struct GKEManifestTests {
    static let root = TestEnvironment.repoRoot
    static let crds = root.appendingPathComponent("Tests/Fixtures/keda").path

    /// Renders configs/gke/ with its settings file into a scratch folder.
    static func render() throws -> String {
        let out = try TestEnvironment.scratchDirectory("gke").appendingPathComponent("rendered").path
        let r = try CommandRunner.run(root.appendingPathComponent("scripts/gke/render").path,
                                      [root.appendingPathComponent("configs/gke/settings.env").path, out], timeout: 60)
        try #require(r.status == 0, "render: \(r.stderr)")
        return out
    }

    static func check(_ dir: String) throws -> [String: Any] {
        let r = try CommandRunner.run(TestEnvironment.python, [root.appendingPathComponent("scripts/gke/check.py").path, dir, crds], timeout: 300)
        try #require(r.status == 0, "check.py: \(r.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
    }

    static func settings() throws -> [String: String] {
        let text = try String(contentsOf: root.appendingPathComponent("configs/gke/settings.env"), encoding: .utf8)
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { out[String(parts[0])] = String(parts[1]) }
        }
        return out
    }

    @Test func everyManifestValidatesAgainstItsSchema() throws {
        let facts = try Self.check(try Self.render())
        let documents = facts["documents"] as? [[String: Any]] ?? []
        let kinds = Set(documents.compactMap { $0["kind"] as? String })
        #expect(kinds.isSuperset(of: ["Deployment", "Service", "ServiceAccount", "ScaledObject", "TriggerAuthentication", "PodMonitoring"]), "\(kinds)")
        for d in documents {
            #expect((d["errors"] as? [String] ?? ["?"]).isEmpty, "\(d["file"] ?? "?"): \(d["errors"] ?? "?")")
            // Only GKE's own custom kinds have no schema here.
            if d["kind"] as? String != "PodMonitoring" {
                #expect(d["validated_by"] is String, "\(d["file"] ?? "?") (\(d["kind"] ?? "?")) was validated by nothing")
            }
        }
    }

    /// The checker is not a rubber stamp: typos in a Deployment and a ScaledObject, and a wrong
    /// type, are reported with their field.
    @Test func theSchemaCheckCatchesTyposAndWrongTypes() throws {
        let dir = try Self.render()
        func edit(_ file: String, _ from: String, _ to: String) throws {
            let path = "\(dir)/\(file)"
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(text.contains(from))
            try text.replacingOccurrences(of: from, with: to).write(toFile: path, atomically: true, encoding: .utf8)
        }
        try edit("keda/scaledobject.yaml", "cooldownPeriod:", "cooldownPeriods:")
        try edit("serve/deployment-gpu.yaml", "livenessProbe:", "livenessProbes:")
        try edit("serve/service.yaml", "port: 8000", "port: eight-thousand")
        let documents = (try Self.check(dir)["documents"] as? [[String: Any]]) ?? []
        func errors(_ file: String) -> String { documents.filter { $0["file"] as? String == file }.map { "\($0["errors"] ?? "")" }.joined() }
        #expect(errors("keda/scaledobject.yaml").contains("cooldownPeriods"))
        #expect(errors("serve/deployment-gpu.yaml").contains("livenessProbes"))
        #expect(errors("serve/service.yaml").contains("eight-thousand"))
        #expect(!errors("serve/deployment-cpu.yaml").contains("Probes"))
    }

    @Test func theManifestsMatchTheRealBinary() async throws {
        let facts = try Self.check(try Self.render())
        let settings = try Self.settings()
        let containers = (facts["containers"] as? [[String: Any]] ?? []).filter { $0["image"] as? String == settings["IMAGE"] }
        try #require(!containers.isEmpty, "no container runs the weightfs image \(settings["IMAGE"] ?? "?")")

        var probePaths = Set<String>()
        for c in containers {
            let where_ = "\(c["file"] ?? "?") container \(c["name"] ?? "?")"
            let args = c["args"] as? [String] ?? []
            let command = try #require(args.first, "\(where_) has no args")
            // Every flag exists in that command's --help.
            let help = try CommandRunner.weightfs([command, "--help"], timeout: 60).stdoutText
            #expect(help.contains("USAGE: weightfs \(command)"), "\(where_): '\(command)' is not a weightfs command")
            for arg in args.dropFirst() where arg.hasPrefix("--") {
                let flag = String(arg.split(separator: "=", maxSplits: 1)[0])
                #expect(help.contains("\(flag) ") || help.contains("\(flag)\n") || help.contains("\(flag)="), "\(where_): \(flag) is not in `weightfs \(command) --help`")
            }
            if command == "serve" {
                // /dev/shm is a memory-backed emptyDir with a size limit.
                let mounts = c["mounts"] as? [String: Any] ?? [:]
                let shm = (mounts["/dev/shm"] as? [String: Any])?["emptyDir"] as? [String: Any]
                #expect(shm?["medium"] as? String == "Memory", "\(where_): /dev/shm is not a memory-backed emptyDir")
                #expect(shm?["sizeLimit"] != nil, "\(where_): /dev/shm has no sizeLimit")
                let probes = c["probes"] as? [String: String] ?? [:]
                #expect(Set(probes.keys) == ["startupProbe", "livenessProbe", "readinessProbe"], "\(where_): \(probes)")
                probePaths.formUnion(probes.values)
                // The pod's grace covers the server's.
                let grace = args.first { $0.hasPrefix("--shutdown-grace=") }.flatMap { Double($0.split(separator: "=")[1]) } ?? 30
                #expect(Double(c["termination_grace"] as? Int ?? 30) > grace, "\(where_): terminationGracePeriodSeconds does not exceed --shutdown-grace")
            }
        }
        let all = facts["containers"] as? [[String: Any]] ?? []
        #expect(all.contains { ($0["args"] as? [String])?.first == "mount" }, "no manifest runs weightfs mount")
        #expect(all.contains { ($0["args"] as? [String])?.first == "cp" }, "no manifest copies with weightfs cp")
        for c in all {
            let where_ = "\(c["file"] ?? "?") container \(c["name"] ?? "?")"
            // GPU pods tolerate GKE's GPU taint.
            if c["gpu"] as? Bool == true {
                let tolerations = c["tolerations"] as? [[String: Any]] ?? []
                #expect(tolerations.contains { $0["key"] as? String == "nvidia.com/gpu" && $0["effect"] as? String == "NoSchedule" },
                        "\(where_) requests a GPU without tolerating nvidia.com/gpu:NoSchedule")
            }
            // vLLM's containers get a memory-backed /dev/shm too.
            if c["image"] as? String == settings["VLLM_IMAGE"] {
                let shm = ((c["mounts"] as? [String: Any])?["/dev/shm"] as? [String: Any])?["emptyDir"] as? [String: Any]
                #expect(shm?["medium"] as? String == "Memory", "\(where_): /dev/shm is not a memory-backed emptyDir")
            }
        }

        // A running server answers every probe path, and exports every metric a KEDA query names.
        let served = try await ServerTests.serve([ServerTests.tiny.path, "--served-model-name", settings["MODEL_NAME"] ?? "m", "--max-model-len", "256"])
        defer { _ = served.child.stop(SIGKILL) }
        try #require(!probePaths.isEmpty)
        for path in probePaths {
            let status = try ServerTests().get(served.port, path).status
            #expect(status == 200, "probe path \(path) answered \(status)")
        }
        try await waitUntil("the model to load") { served.stderr.contains("cold start: model ready to run") }
        let metrics = try ServerTests().get(served.port, "/metrics").body
        let triggers = facts["triggers"] as? [[String: Any]] ?? []
        let queried = triggers.flatMap { $0["metrics"] as? [String] ?? [] }
        #expect(queried.contains("vllm:num_requests_waiting"))
        for name in queried {
            #expect(metrics.contains("\(name){"), "the KEDA query names \(name), which /metrics does not export")
            if let query = triggers.first(where: { ($0["metrics"] as? [String] ?? []).contains(name) })?["query"] as? String {
                #expect(query.contains("model_name=\"\(settings["MODEL_NAME"] ?? "?")\""), "the query does not select the served model: \(query)")
            }
        }
        // Scale from zero needs a trigger that exists while no pod runs.
        #expect(triggers.contains { $0["type"] as? String == "gcp-stackdriver" }, "no trigger can wake the Deployment from zero")
        #expect(served.child.stop(SIGTERM) == 0)
    }

    /// The Dockerfile passes hadolint; a copy with the usual mistakes does not, naming the rules.
    @Test func theDockerfilePassesHadolint() throws {
        let hadolint = URL(fileURLWithPath: TestEnvironment.python).deletingLastPathComponent().appendingPathComponent("hadolint").path
        let dockerfile = Self.root.appendingPathComponent("Dockerfile").path
        let clean = try CommandRunner.run(hadolint, [dockerfile], timeout: 60)
        #expect(clean.status == 0, "\(clean.stdoutText)\(clean.stderr)")
        let bad = try TestEnvironment.scratchDirectory("hadolint").appendingPathComponent("Dockerfile").path
        let text = try String(contentsOfFile: dockerfile, encoding: .utf8)
            .replacingOccurrences(of: "--no-install-recommends ", with: "")
            .replacingOccurrences(of: "WORKDIR /src", with: "RUN cd /src")
        try text.write(toFile: bad, atomically: true, encoding: .utf8)
        let r = try CommandRunner.run(hadolint, [bad], timeout: 60)
        #expect(r.status != 0)
        #expect(r.stdoutText.contains("DL3015") && r.stdoutText.contains("DL3003"), "\(r.stdoutText)")
    }
}
