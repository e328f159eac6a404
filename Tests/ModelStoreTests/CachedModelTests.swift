import ChunkCache
import Fetcher
import Foundation
import CPUBackend
import ModelCore
import Tokenizers
import ModelStore
import ObjectStore
import Safetensors
import Synchronization
import Testing
import TestSupport

/// A model read straight from the emulator through the chunk cache (no FUSE), against the same
/// model read from its local directory.
@Suite(.serialized)
struct CachedModelTests {
    static let fixtures = TestEnvironment.repoRoot.appendingPathComponent("Tests/Fixtures")
    /// Five shards: layer 2 (the last) and the final norm are in shard 4, lm_head in shard 5.
    static let model = "tiny-llama-f32"
    static let tokens = [0, 17, 250, 3, 99, 401, 8, 12]

    /// Uploads the fixture model's files under `models/tiny/` of a fresh bucket.
    func upload(_ label: String) async throws -> (Emulator, String) {
        let (emulator, bucket) = try await Emulator.freshBucket(label)
        let dir = Self.fixtures.appendingPathComponent(Self.model)
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) {
            try await emulator.upload(bucket, "models/tiny/\(name)", file: dir.appendingPathComponent(name).path)
        }
        return (emulator, bucket)
    }

    func localLogits() async throws -> [Float] {
        // Read in place: the cached model's runs below copy theirs into huge-page memory (or not),
        // and the logits must not depend on where the bytes are.
        let local = try LlamaModel(directory: Self.fixtures.appendingPathComponent(Self.model), threads: 1, residency: .mapped)
        return try await local.forward(tokens: Self.tokens, cache: local.makeCache(capacity: 16), logits: .all)
    }

    @Test(arguments: WeightResidency.allCases)
    func logitsAndTokenizerMatchTheLocalCheckpoint(residency: WeightResidency) async throws {
        let (emulator, bucket) = try await upload("cached-model-\(residency)")
        let cache = try ChunkCache(directory: try TestEnvironment.scratchDirectory("cached-model").path, store: emulator.store(bucket),
                                   options: FetchOptions(concurrency: 4, chunkSize: 64 << 10))
        let source = try await CachedModel.open(cache: cache, prefix: "models/tiny")
        #expect(source.catalog.shardNames.count == 5)
        let model = try LlamaModel(config: try await source.config(), weights: source, threads: 1, residency: residency)
        #expect(model.residency.residency == residency)
        let logits = try await model.forward(tokens: Self.tokens, cache: model.makeCache(capacity: 16), logits: .all)
        #expect(logits == (try await localLogits()), "the same bytes through the same kernels")

        let tokenizer = try await source.tokenizer()
        let local = try Tokenizer(directory: Self.fixtures.appendingPathComponent(Self.model))
        #expect(tokenizer.encode("The capital of France is") == local.encode("The capital of France is"))
        await cache.shutdown()
    }

    /// The point of the design: layer 0 runs while the last layer's bytes have not arrived. The
    /// link proxy holds every read of shard 4 past its first chunk (its header and the start of
    /// layer 2) until the forward pass has computed layer 0.
    @Test func layerZeroRunsBeforeTheLastLayerArrives() async throws {
        let (emulator, bucket) = try await upload("cached-model-hold")
        let proxy = try LinkProxy(upstream: emulator.url)
        defer { proxy.stop() }
        try await proxy.configure(["hold": "model-00004-of-00005", "hold_from": 1])
        let cache = try ChunkCache(directory: try TestEnvironment.scratchDirectory("cached-model-hold").path,
                                   store: emulator.store(bucket, endpoint: proxy.url),
                                   options: FetchOptions(concurrency: 4, chunkSize: 64 << 10))
        let source = try await CachedModel.open(cache: cache, prefix: "models/tiny")
        let seen = Watching(source, proxy: proxy)
        // Resident: each layer's copy into huge-page memory must wait for its bytes too.
        let model = try LlamaModel(config: try await source.config(), weights: seen, threads: 1, residency: .resident)
        let logits = try await model.forward(tokens: Self.tokens, cache: model.makeCache(capacity: 16), logits: .all)

        let log = seen.log.withLock { $0 }
        #expect(log.map(\.group) == [.embeddings, .layer(0), .layer(1), .layer(2), .finalNorm, .lmHead])
        // When layer 1 was asked for (layer 0 computed), layer 2's bytes were still held back.
        let atLayer1 = try #require(log.first { $0.group == .layer(1) })
        #expect(!atLayer1.lastLayerPresent, "layer 0 ran before the last layer's bytes arrived")
        #expect(logits == (try await localLogits()), "right output once the bytes arrived")
        await cache.shutdown()
    }
}

/// Records each `ready` call and whether the last layer's bytes were present then; on the call
/// for layer 1 it releases the proxy's hold, so the pass can go on.
final class Watching: WeightSource {
    struct Event: Sendable {
        let group: FetchPlan.Group
        let lastLayerPresent: Bool
    }

    let inner: CachedModel
    let proxy: LinkProxy
    let log = Mutex<[Event]>([])

    init(_ inner: CachedModel, proxy: LinkProxy) {
        self.inner = inner
        self.proxy = proxy
    }

    func tensor(_ name: String, shape: [Int]) throws(ModelError) -> WeightTensor { try inner.tensor(name, shape: shape) }
    func contains(_ name: String) -> Bool { inner.contains(name) }

    func ready(_ group: FetchPlan.Group) async throws(ModelError) {
        let event = Event(group: group, lastLayerPresent: inner.isPresent(.layer(2)))
        log.withLock { $0.append(event) }
        if group == .layer(1) {
            do { try await proxy.configure(["hold": NSNull()]) } catch {
                throw ModelError(.io, file: "link proxy", "could not release the hold: \(error)")
            }
        }
        try await inner.ready(group)
    }
}
