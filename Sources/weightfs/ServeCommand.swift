import ArgumentParser
import ChatTemplates
import ChunkCache
import CPUBackend
import Diagnostics
import Engine
import Foundation
import Logging
import ModelCore
import ModelStore
import ObjectStore
import Server
import Synchronization
import Tokenizers

/// `weightfs serve MODEL`: the OpenAI-compatible server (docs/SERVE.md).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model through an OpenAI-compatible API (completions, chat, streaming) with vLLM's metrics.",
        discussion: """
            MODEL is a local directory, a weightfs mount, or gs://BUCKET/PREFIX (file:///DIR) read \
            through the chunk cache with no FUSE. The server listens at once and answers /health; \
            the model's config, tokenizer and safetensors headers are read first, and from a store \
            the weights arrive in forward-pass order while the first requests already run.
            """
    )

    @Argument(help: "A model directory, or gs://BUCKET/PREFIX (file:///DIR) of one.")
    var model: String

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port).") var port = 8000
    @Option(name: .customLong("api-key"), help: "Require 'Authorization: Bearer KEY' on /v1 (default: $VLLM_API_KEY, else none).") var apiKey: String?
    @Option(name: .customLong("served-model-name"), help: "The model's name in the API (default: the last part of MODEL).") var servedModelName: String?
    @Option(help: "Threads per kernel (default: all cores).") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Option(name: .customLong("max-model-len"), help: "Prompt plus output at most (default: the model's max_position_embeddings).") var maxModelLen: Int?
    @Option(name: .customLong("max-num-seqs"), help: "Requests running at once at most.") var maxNumSeqs = 256
    @Option(name: .customLong("max-num-batched-tokens"), help: "Tokens one step computes at most (long prompts are prefilled in chunks).") var maxNumBatchedTokens = 2048
    @Option(name: .customLong("kv-cache-memory"), help: ArgumentHelp("Memory for the KV cache, e.g. 2GiB (default: a quarter of available memory, at most 8 GiB, and no more than --max-num-seqs requests of --max-model-len use).", valueName: "SIZE"))
    var kvCacheMemory: ByteSize?
    @Flag(name: .customLong("enable-prefix-caching"), inversion: .prefixedNo, help: "Share the KV blocks of prompts' common prefixes.") var enablePrefixCaching = true
    @Option(name: .customLong("ready-when"), help: "When /ready says yes: listening (at once) or loaded (every weight local).") var readyWhen = "listening"
    @Option(name: .customLong("shutdown-grace"), help: "Seconds in-flight requests get after SIGTERM.") var shutdownGrace: Double = 30

    @OptionGroup(title: "From a store URL") var cacheOptions: CacheOptions
    @OptionGroup(title: "From a store URL") var fetch: FetchArguments
    @OptionGroup(title: "From a store URL") var store: StoreOptions

    func validate() throws {
        guard ReadyWhen(rawValue: readyWhen) != nil else { throw ValidationError("--ready-when is listening or loaded") }
        guard threads > 0, maxNumSeqs > 0, maxNumBatchedTokens > 0 else { throw ValidationError("--threads, --max-num-seqs and --max-num-batched-tokens must be positive") }
        guard port >= 0 && port < 65536 else { throw ValidationError("--port must be 0...65535") }
        guard shutdownGrace >= 0 else { throw ValidationError("--shutdown-grace must be 0 or more seconds") }
        if let m = maxModelLen { guard m > 1 else { throw ValidationError("--max-model-len must be at least 2") } }
    }


    func run() async throws {
        // A WEIGHTFS_CPU_KERNELS this CPU cannot honour is an error before anything listens.
        do { _ = try CPUKernels.selection.get() } catch { throw MessageError("\(error)") }
        let name = servedModelName ?? (model.hasSuffix("/") ? String(model.dropLast()) : model).split(separator: "/").last.map(String.init) ?? model
        var configuration = ServeConfiguration(servedModelName: name)
        configuration.host = host
        configuration.port = port
        configuration.apiKey = apiKey ?? ProcessInfo.processInfo.environment["VLLM_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        configuration.readyWhen = ReadyWhen(rawValue: readyWhen)!
        configuration.shutdownGrace = shutdownGrace
        var logger = Logger(label: "weightfs.serve")
        // One line per request and the cold-start timeline are the point of the server's log.
        logger.logLevel = ProcessInfo.processInfo.environment["WEIGHTFS_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .info
        let server = OpenAIServer(configuration: configuration, logger: logger)
        let this = self
        try await server.run(load: { try await this.load(timeline: server.timeline) }, onListening: { port in
            FileHandle.standardError.write(Data("weightfs serve: \(name) listening on http://\(this.host):\(port)\n".utf8))
        })
        FileHandle.standardError.write(Data("weightfs serve: stopped\n".utf8))
    }

    /// Opens the model (headers only from a store; weights arrive as the engine needs them).
    func load(timeline: ColdStartTimeline) async throws -> LoadedModel {
        let loadStart = ContinuousClock.now
        let opened = try await OpenedModel.open(model, cacheOptions: cacheOptions, fetch: fetch, store: store)
        let (tokenizer, config, weights, chunkCache, cached) = (opened.tokenizer, opened.config, opened.weights, opened.chunkCache, opened.cached)
        timeline.record("config, tokenizer and headers read")
        // Two views of the cold start: "X ready" when the forward pass has X's bytes and computes
        // it, "X arrived" when X's bytes are all local, whoever asked for them.
        cached?.observeReadiness { group in timeline.record("\(group) ready") }
        let allArrived = Mutex<ContinuousClock.Instant?>(nil)
        if let cached {
            Task.detached {
                do {
                    try await cached.watchArrivals { group in timeline.record("\(group) arrived") }
                    allArrived.withLock { $0 = .now }
                    timeline.record("all weights arrived")
                } catch {
                    FileHandle.standardError.write(Data("weightfs serve: \(String(describing: error).terminalSafe)\n".utf8))
                }
            }
        }
        let maxLen = min(maxModelLen ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings)
        let blockSize = 16
        let bytesPerBlock = 2 * config.layerCount * config.kvHeadCount * blockSize * config.headDim * MemoryLayout<Float>.size
        let needed = BlockPool.blocksNeeded(positions: maxLen, blockSize: blockSize)
        // By default no more than every running request at its longest could use.
        let budget = kvCacheMemory?.bytes ?? min(Self.defaultKVMemory(), Int64(maxNumSeqs) * Int64(needed) * Int64(bytesPerBlock))
        let blocks = Int(budget / Int64(bytesPerBlock))
        guard blocks >= needed else {
            throw MessageError("--kv-cache-memory \(formatBytes(budget)) holds \(blocks) KV blocks of \(blockSize) positions; one request of --max-model-len \(maxLen) needs \(needed). Raise --kv-cache-memory or lower --max-model-len.")
        }
        FileHandle.standardError.write(Data("weightfs serve: KV cache \(formatBytes(Int64(blocks) * Int64(bytesPerBlock))) (\(blocks) blocks of \(blockSize) positions, \(blocks * blockSize) tokens); max-model-len \(maxLen)\n".utf8))
        FileHandle.standardError.write(Data("weightfs serve: \(CPUKernels.summary)\n".utf8))
        let executor = try CPUExecutor.load(config: config, weights: weights, kvBlocks: blocks, blockSize: blockSize, threads: threads)
        FileHandle.standardError.write(Data("weightfs serve: \(executor.model.residencySummary)\n".utf8))
        let engine = Engine(backend: executor, config: SchedulerConfig(maxNumSeqs: maxNumSeqs, maxNumBatchedTokens: maxNumBatchedTokens, maxModelLen: maxLen),
                            enablePrefixCaching: enablePrefixCaching)
        let stops = Set(config.eosTokenIDs + [tokenizer.eosTokenID].compactMap { $0 })
        let endOfTurn = Set(GenerateCommand.endOfTurnTokens.compactMap { tokenizer.id(for: $0) }.filter(tokenizer.isSpecial))
        var template: ChatTemplate? = nil
        if let source = tokenizer.chatTemplate {
            do { template = try ChatTemplate(source) } catch {
                FileHandle.standardError.write(Data("weightfs serve: the chat template does not parse (\(error)); /v1/chat/completions will refuse\n".utf8))
            }
        }
        return LoadedModel(engine: engine, tokenizer: tokenizer, chatTemplate: template, stopTokens: stops, endOfTurnTokens: endOfTurn,
                           maxModelLen: maxLen, vocabSize: config.vocabSize,
                           weightsReady: { [cached] in cached?.isComplete() ?? true },
                           weights: { [chunkCache] in
                               guard let cached, let chunkCache else { return WeightsSnapshot() }
                               let fetched = await chunkCache.stats.bytesFetched
                               let seconds = ((allArrived.withLock { $0 } ?? .now) - loadStart).seconds
                               return WeightsSnapshot(groups: cached.loadState().map { ("\($0.group)", $0.present) }, bytesFetched: fetched,
                                                      bytesFromCache: cached.bytesPresentAtOpen, fetchBytesPerSecond: seconds > 0 ? Double(fetched) / seconds : 0)
                           })
    }

    /// A quarter of available memory, at most 8 GiB, at least 64 MiB.
    static func defaultKVMemory() -> Int64 {
        var available: Int64 = 4 << 30
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kb = line.split(separator: " ").dropFirst().first.flatMap({ Int64($0) }) {
            available = kb * 1024
        }
        return max(64 << 20, min(8 << 30, available / 4))
    }
}
