import Foundation
import Testing
import TestSupport

/// `preload` and the mount's `safetensors` prefetch fetch shards in the order a forward pass
/// reads them: embeddings, layer 0…N, the final norm, lm_head, whatever order the files lay
/// the tensors out in. The checkpoint here is laid out against that order (lm_head first,
/// layer 2 before layer 0, embeddings in the second shard), so fetching file by file, or each
/// file front to back, fails the checks.
@Suite(.serialized)
struct ForwardOrderTests {
    static let layers = 3

    /// The position of a tensor in a forward pass: embeddings 0, layer k at k + 1, the final norm
    /// after the layers, lm_head last (written out here, not taken from the code under test).
    static func rank(_ name: String) -> Int {
        if name.hasPrefix("model.embed_tokens.") { return 0 }
        if name.hasPrefix("model.layers.") { return Int(name.split(separator: ".")[2])! + 1 }
        if name.hasPrefix("model.norm.") { return layers + 1 }
        return layers + 2
    }

    static let shards: [(name: String, file: SafetensorsFile)] = {
        func t(_ name: String, _ seed: UInt64) -> SafetensorsFile.Tensor { .init(name, bytes: TestBytes.generate(count: 96 << 10, seed: seed)) }
        return [
            ("model-00001-of-00002.safetensors", SafetensorsFile([
                t("lm_head.weight", 1), t("model.layers.2.mlp.down_proj.weight", 2),
                t("model.layers.0.self_attn.q_proj.weight", 3), t("model.norm.weight", 4),
            ])),
            ("model-00002-of-00002.safetensors", SafetensorsFile([
                t("model.layers.1.mlp.up_proj.weight", 5), t("model.embed_tokens.weight", 6),
                t("model.layers.0.mlp.down_proj.weight", 7), t("model.layers.2.self_attn.k_proj.weight", 8),
            ])),
        ]
    }()

    func upload() async throws -> (Emulator, String, LinkProxy) {
        let (emulator, bucket) = try await Emulator.freshBucket("fwd-order")
        _ = try await emulator.upload(bucket, "m/config.json", data: Data(#"{"model_type":"llama"}"#.utf8))
        for shard in Self.shards { _ = try await emulator.upload(bucket, "m/\(shard.name)", data: shard.file.data) }
        return (emulator, bucket, try LinkProxy(upstream: emulator.url, arguments: []))
    }

    /// The forward-pass rank of each GET of tensor bytes, in the order the GETs arrived: the least
    /// rank of the tensors its range touches (when it is first needed). GETs from offset 0 read
    /// the headers, which come first by design, and are left out.
    func ranksOfDataGETs(_ log: [LinkProxy.MediaRequest], shards: [(name: String, file: SafetensorsFile)]) -> [Int] {
        var ranks: [Int] = []
        for entry in log {
            guard let shard = shards.first(where: { entry.path.hasSuffix("/\($0.name)") }), let bounds = entry.bounds,
                  bounds.first > 0 else { continue }
            let get = bounds.first..<(bounds.last + 1)
            let touched = shard.file.fileRanges.filter { $0.value.overlaps(get) }.map { Self.rank($0.key) }
            if let least = touched.min() { ranks.append(least) }
        }
        return ranks
    }

    @Test func preloadFetchesTheShardsInForwardPassOrder() async throws {
        let (_, bucket, proxy) = try await upload()
        defer { proxy.stop() }
        let cache = try TestEnvironment.scratchDirectory("fwd-preload").path
        // One GET at a time, so arrival order is the order they were queued in.
        let r = try CommandRunner.weightfs(["preload", "gs://\(bucket)/m", "--cache-dir", cache, "--concurrency", "1", "--chunk-size", "32KiB"],
                                           environment: ["STORAGE_EMULATOR_HOST": proxy.url], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("not in forward-pass order"), "\(r.stderr)")
        let ranks = ranksOfDataGETs(try await proxy.mediaLog(), shards: Self.shards)
        #expect(ranks.count >= 20, "\(ranks)")
        #expect(ranks == ranks.sorted(), "GETs out of forward-pass order: \(ranks)")
        #expect(Set(ranks) == Set(0...(Self.layers + 2)))
    }

    @Test func theMountFetchesAnOpenedShardInForwardPassOrder() async throws {
        let (_, bucket, proxy) = try await upload()
        defer { proxy.stop() }
        let mount = try MountProcess(url: "gs://\(bucket)/m", endpoint: proxy.url, arguments: ["--concurrency", "1", "--chunk-size", "32KiB"])
        defer { mount.stop() }
        let shard = Self.shards[0]
        let fd = open("\(mount.mountpoint)/\(shard.name)", O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        // Opening the shard queues its plan; nothing reads it. Wait until its GETs cover the file.
        let chunk: Int64 = 32 << 10
        let chunks = (Int64(shard.file.data.count) + chunk - 1) / chunk
        try await waitUntil("the opened shard's GETs to cover it") {
            let covered = Set(try await proxy.mediaLog().filter { $0.path.hasSuffix(shard.name) }.compactMap { $0.bounds.map { $0.first / chunk } })
            return Int64(covered.count) >= chunks
        }
        let ranks = ranksOfDataGETs(try await proxy.mediaLog(), shards: [shard])
        #expect(ranks.count >= 8, "\(ranks)")
        #expect(ranks == ranks.sorted(), "GETs out of forward-pass order: \(ranks)")
    }
}
