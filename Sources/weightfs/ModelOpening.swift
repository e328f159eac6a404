import ChunkCache
import Diagnostics
import Foundation
import ModelCore
import ModelStore
import ObjectStore
import Tokenizers

/// A model opened for `generate` and `serve`: from a directory, or from a store through the
/// chunk cache (then only the small files and the headers are read; the weights follow as the
/// forward pass needs them).
struct OpenedModel {
    var tokenizer: Tokenizer
    var config: ModelConfig
    var weights: any WeightSource
    /// From a store: the cache and the cached model.
    var chunkCache: ChunkCache?
    var cached: CachedModel?

    static func open(_ model: String, cacheOptions: CacheOptions, fetch: FetchArguments, store: StoreOptions) async throws -> OpenedModel {
        do {
            if model.hasPrefix("gs://") || model.hasPrefix("file://") {
                let target = try parseStoreURL(model)
                let cache = try ChunkCache(directory: try cacheOptions.directory(), store: try await store.open(target),
                                           options: fetch.options, capacity: cacheOptions.capacity)
                let source = try await CachedModel.open(cache: cache, prefix: target.path)
                return OpenedModel(tokenizer: try await source.tokenizer(), config: try await source.config(), weights: source,
                                   chunkCache: cache, cached: source)
            }
            let dir = URL(fileURLWithPath: model)
            return OpenedModel(tokenizer: try Tokenizer(directory: dir), config: try ModelConfig.load(directory: dir),
                               weights: try SafetensorsCheckpoint(directory: dir))
        } catch {
            throw MessageError("\(model): \(error)")
        }
    }
}
