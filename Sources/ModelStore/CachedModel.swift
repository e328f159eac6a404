import ChunkCache
import Foundation
import ModelCore
import Tokenizers
import ObjectStore
import Safetensors
import Synchronization

/// A Hugging Face model directory under a store prefix (`gs://bucket/models/x`), read through
/// the chunk cache with no FUSE: the `WeightSource` of `weightfs generate gs://…` (and `serve`).
///
/// Opening reads only the small files and the shards' headers; every shard is then queued in
/// forward-pass order (`FetchPlan`) at plan priority and mapped from the cache's data files, so
/// tensors are used in place. `ready(group)` suspends until that group's bytes are present,
/// asking for them at demand priority: a forward pass computes layer 0 while later layers still
/// arrive, and the first token comes when the last layer lands.
///
/// Guarantees: a tensor's bytes are read only after `ready` of its group returned (the
/// mappings of absent chunks read as zeros; `LlamaModel` awaits each group before its first
/// use); the shards stay open (pinned against eviction) while the model lives.
public final class CachedModel: WeightSource {
    public let cache: ChunkCache
    /// The prefix, for messages: `gs://bucket/models/x`.
    public let location: String
    /// The objects under the prefix, by name relative to it.
    public let files: [String: ObjectInfo]
    /// The small files read at open (config and tokenizer files), by name.
    private let smallFiles: [String: [UInt8]]
    /// Read whole at open, before the shards' bytes are queued (so they do not share the link
    /// with the plan): what building the model and its tokenizer needs.
    public static let openingFiles = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]
    public let catalog: TensorCatalog
    /// The shards' bytes in forward-pass order.
    public let plan: FetchPlan
    private let shards: [CachedObject]
    private let mappings: [CacheMapping]
    /// The byte ranges of each group's tensors: (shard position, range).
    private let ranges: [FetchPlan.Group: [(shard: Int, range: ByteRange)]]
    /// Bytes of the shards already in the cache when the model was opened (before its headers
    /// were read):
    /// what an earlier run or `weightfs preload` left, not fetched again.
    public let bytesPresentAtOpen: Int64
    private let readyGroups = Mutex<Set<FetchPlan.Group>>([])
    private let readinessObserver = Mutex<(@Sendable (FetchPlan.Group) -> Void)?>(nil)

    /// Calls `observer` once for each weight group, when the forward pass first finds all its
    /// bytes present (the cold-start timeline of `serve`).
    public func observeReadiness(_ observer: @escaping @Sendable (FetchPlan.Group) -> Void) {
        readinessObserver.withLock { $0 = observer }
    }

    /// The largest config or tokenizer file read whole into memory.
    public static let smallFileLimit: Int64 = 256 << 20

    /// Lists `prefix` (a "directory" under the cache's store), reads the index (if any) and every
    /// shard's header through the cache, maps the shards and queues their bytes in forward order.
    public static func open(cache: ChunkCache, prefix: String) async throws -> CachedModel {
        let dir = prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
        let location = "\(cache.store.location)/\(dir.hasSuffix("/") ? String(dir.dropLast()) : dir)"
        var files: [String: ObjectInfo] = [:]
        for info in try await cache.store.listAll(prefix: dir) {
            if let relative = info.name.removingBytePrefix(dir) { files[relative] = info }
        }
        guard files["config.json"] != nil else {
            throw ModelError(.io, file: location, "holds no config.json (\(files.count) objects listed); point at the folder of a Hugging Face model")
        }

        let indexName = TensorCatalog.indexFileName
        var index: SafetensorsIndex? = nil
        if let info = files[indexName] {
            let bytes = try await Self.contents(of: info, cache: cache, location: location)
            do { index = try SafetensorsIndex.parse(fileName: indexName, data: bytes) } catch { throw TensorCatalog.wrap(error) }
        }
        let (names, catalogName) = try TensorCatalog.shardFiles(index: index, files: Array(files.keys), location: location)
        var shards: [CachedObject] = []
        do {
            for name in names {
                guard let info = files[name] else {
                    throw ModelError(.checkpoint, file: index != nil ? indexName : name, field: index != nil ? "weight_map" : nil,
                                     "names shard \(name), which is not under \(location)")
                }
                shards.append(try await cache.open(info))
            }
            var present: Int64 = 0
            for shard in shards { present += await cache.cachedBytes(shard) }
            // The small files and the shards' headers at once: one round trip for all of them.
            let small = Task { [files, location] in
                var read: [String: [UInt8]] = [:]
                for name in Self.openingFiles { if let info = files[name] { read[name] = try await Self.contents(of: info, cache: cache, location: location) } }
                return read
            }
            let headers: [SafetensorsHeader]
            do { headers = try await cache.safetensorsHeaders(shards, fileNames: names) } catch let e as SafetensorsError { throw TensorCatalog.wrap(e) }
            let smallFiles = try await small.value
            let catalog = try TensorCatalog(shardNames: names, headers: headers, index: index, catalogName: catalogName, location: location)
            var mappings: [CacheMapping] = []
            for shard in shards { mappings.append(try await cache.map(shard)) }
            let plan = FetchPlan.forwardOrder(headers: headers)
            let model = CachedModel(cache: cache, location: location, files: files, smallFiles: smallFiles, catalog: catalog, plan: plan,
                                    shards: shards, mappings: mappings, bytesPresentAtOpen: present)
            await cache.prefetch(plan, shards: Dictionary(uniqueKeysWithValues: zip(names, shards)), priority: .plan)
            return model
        } catch {
            for shard in shards { await cache.close(shard) }
            throw error
        }
    }

    private init(cache: ChunkCache, location: String, files: [String: ObjectInfo], smallFiles: [String: [UInt8]], catalog: TensorCatalog,
                 plan: FetchPlan, shards: [CachedObject], mappings: [CacheMapping], bytesPresentAtOpen: Int64) {
        self.bytesPresentAtOpen = bytesPresentAtOpen
        self.cache = cache
        self.location = location
        self.files = files
        self.smallFiles = smallFiles
        self.catalog = catalog
        self.plan = plan
        self.shards = shards
        self.mappings = mappings
        var position: [String: Int] = [:]
        for (k, name) in catalog.shardNames.enumerated() { position[name] = k }
        var ranges: [FetchPlan.Group: [(shard: Int, range: ByteRange)]] = [:]
        for step in plan.steps where step.byteCount > 0 {
            guard let k = position[step.shard] else { continue }
            ranges[step.group, default: []].append((k, ByteRange(step.range.lowerBound, step.range.upperBound)))
        }
        self.ranges = ranges
    }

    deinit {
        let cache = cache, shards = shards
        Task { for shard in shards { await cache.close(shard) } }
    }

    /// The whole contents of a small file under the prefix (config, tokenizer), or nil if absent.
    public func contents(of name: String) async throws -> [UInt8]? {
        if let read = smallFiles[name] { return read }
        guard let info = files[name] else { return nil }
        return try await Self.contents(of: info, cache: cache, location: location)
    }

    private static func contents(of info: ObjectInfo, cache: ChunkCache, location: String) async throws -> [UInt8] {
        guard info.size <= smallFileLimit else {
            throw ModelError(.io, file: "\(cache.store.location)/\(info.name)", "is \(info.size) bytes; a config or tokenizer file larger than \(smallFileLimit) is not read into memory")
        }
        guard info.size > 0 else { return [] }
        let object = try await cache.open(info)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(info.size), alignment: 8)
        defer { buffer.deallocate() }
        do {
            try await cache.read(object, range: ByteRange(0, info.size), into: buffer)
        } catch {
            await cache.close(object)
            throw error
        }
        await cache.close(object)
        return Array(buffer)
    }

    /// `config.json`.
    public func config() async throws -> ModelConfig {
        try ModelConfig.parse(try await contents(of: "config.json") ?? [], fileName: "\(location)/config.json")
    }

    /// `tokenizer.json` and, when present, `tokenizer_config.json`.
    public func tokenizer() async throws -> Tokenizer {
        guard let json = try await contents(of: "tokenizer.json") else {
            throw ModelError(.io, file: location, "holds no tokenizer.json; weightfs reads Hugging Face tokenizers (tokenizer.json)")
        }
        return try Tokenizer(tokenizerJSON: json, configJSON: try await contents(of: "tokenizer_config.json"),
                             tokenizerFileName: "\(location)/tokenizer.json", configFileName: "\(location)/tokenizer_config.json")
    }

    // MARK: WeightSource

    public func contains(_ name: String) -> Bool { catalog.contains(name) }

    public func tensor(_ name: String, shape: [Int]) throws(ModelError) -> WeightTensor {
        try catalog.tensor(name, shape: shape, shardBytes: { mappings[$0].bytes }, owner: self)
    }

    public func ready(_ group: FetchPlan.Group) async throws(ModelError) {
        if readyGroups.withLock({ $0.contains(group) }) { return }
        let parts = ranges[group] ?? []
        let cache = cache, shards = shards
        do {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for (k, range) in parts {
                    let shard = shards[k]
                    tasks.addTask { try await cache.ensure(shard, range: range, priority: .demand) }
                }
                try await tasks.waitForAll()
            }
        } catch {
            let shard = parts.first.map { catalog.shardNames[$0.shard] } ?? location
            throw ModelError(.io, file: "\(location)/\(shard)", "the bytes of \(group) could not be fetched: \(error)")
        }
        if readyGroups.withLock({ $0.insert(group).inserted }) { readinessObserver.withLock { $0 }?(group) }
    }

    /// Whether every byte of `group` is present now (without waiting or fetching).
    public func isPresent(_ group: FetchPlan.Group) -> Bool {
        (ranges[group] ?? []).allSatisfy { shards[$0.shard].isPresent($0.range) }
    }

    /// Whether every weight of the model is present now.
    public func isComplete() -> Bool { ranges.keys.allSatisfy(isPresent) }

    /// The weight groups in forward-pass order, each with whether all its bytes are present now
    /// (without waiting or fetching): the per-group load state of `serve`'s `/metrics`.
    public func loadState() -> [(group: FetchPlan.Group, present: Bool)] {
        ranges.keys.sorted().map { ($0, isPresent($0)) }
    }

    /// Calls `arrived` for each weight group in forward-pass order, once all its bytes are local
    /// (brought by the plan's prefetch or by a forward pass that asked for them), and returns
    /// when every group has arrived. It waits at plan priority: it asks for nothing the plan has
    /// not queued and never jumps ahead of a forward pass's demand. Throws what a fetch threw.
    public func watchArrivals(_ arrived: @Sendable (FetchPlan.Group) -> Void) async throws {
        for group in ranges.keys.sorted() {
            for (k, range) in ranges[group] ?? [] {
                try Task.checkCancellation()
                try await cache.ensure(shards[k], range: range, priority: .plan)
            }
            arrived(group)
        }
    }
}
