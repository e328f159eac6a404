import ChatTemplates
import Engine
import Foundation
import Hummingbird
import Logging
import ModelCore
import ServiceLifecycle
import Synchronization
import Tokenizers

/// A model ready to serve: its engine, tokenizer and what ends a turn.
public struct LoadedModel: Sendable {
    public var engine: Engine
    public var tokenizer: Tokenizer
    public var chatTemplate: ChatTemplate?
    /// End of sequence (config and tokenizer).
    public var stopTokens: Set<Int>
    /// End of an assistant turn (chat only).
    public var endOfTurnTokens: Set<Int>
    public var maxModelLen: Int
    public var vocabSize: Int
    /// Whether every weight is local now, and how the weights' load from a store stands.
    public var weightsReady: @Sendable () async -> Bool
    public var weights: @Sendable () async -> WeightsSnapshot

    public init(engine: Engine, tokenizer: Tokenizer, chatTemplate: ChatTemplate?, stopTokens: Set<Int>, endOfTurnTokens: Set<Int>,
                maxModelLen: Int, vocabSize: Int, weightsReady: @escaping @Sendable () async -> Bool = { true },
                weights: @escaping @Sendable () async -> WeightsSnapshot = { WeightsSnapshot() }) {
        self.engine = engine
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
        self.stopTokens = stopTokens
        self.endOfTurnTokens = endOfTurnTokens
        self.maxModelLen = maxModelLen
        self.vocabSize = vocabSize
        self.weightsReady = weightsReady
        self.weights = weights
    }
}

/// The weights' load from a store as `/metrics` shows it (weightfs's own metrics).
public struct WeightsSnapshot: Sendable {
    /// Each weight group in forward-pass order ("embeddings", "layer 0", …, "lm_head") and
    /// whether all its bytes are local.
    public var groups: [(name: String, loaded: Bool)] = []
    /// Bytes this process fetched from the store, and bytes it found in the cache at start.
    public var bytesFetched: Int64 = 0
    public var bytesFromCache: Int64 = 0
    /// Bytes fetched per second, from the start of the load until every weight arrived (or now).
    public var fetchBytesPerSecond: Double = 0

    public init(groups: [(name: String, loaded: Bool)] = [], bytesFetched: Int64 = 0, bytesFromCache: Int64 = 0, fetchBytesPerSecond: Double = 0) {
        self.groups = groups
        self.bytesFetched = bytesFetched
        self.bytesFromCache = bytesFromCache
        self.fetchBytesPerSecond = fetchBytesPerSecond
    }
}

/// When `/ready` says yes: once listening (requests queue until the model can run them; the
/// weights may still be arriving), or once every weight is local.
public enum ReadyWhen: String, Sendable, CaseIterable {
    case listening, loaded
}

public struct ServeConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8000
    public var apiKey: String?
    public var servedModelName: String
    public var readyWhen: ReadyWhen = .listening
    /// Seconds in-flight requests get to finish after SIGTERM.
    public var shutdownGrace: Double = 30
    /// Largest request body accepted.
    public var maxBodyBytes = 16 << 20
    /// A connection idle this long is closed (slow clients cannot hold connections forever).
    public var idleTimeout: Double = 60

    public init(servedModelName: String) { self.servedModelName = servedModelName }
}

/// The model as it loads: requests wait on it (and count as waiting) until it is there.
actor ModelSlot {
    private var result: Result<LoadedModel, Error>?
    private var waiters: [CheckedContinuation<LoadedModel, Error>] = []
    private(set) var waiting = 0

    var loaded: LoadedModel? { try? result?.get() }
    var failure: Error? {
        if case .failure(let e) = result { return e }
        return nil
    }

    func set(_ r: Result<LoadedModel, Error>) {
        result = r
        for w in waiters { w.resume(with: r) }
        waiters = []
    }

    func get() async throws -> LoadedModel {
        if let result { return try result.get() }
        waiting += 1
        defer { waiting -= 1 }
        return try await withCheckedThrowingContinuation { waiters.append($0) }
    }
}

/// The OpenAI-compatible server over an `Engine`: `/v1/models`, `/v1/completions`,
/// `/v1/chat/completions` (streaming with SSE or not), `/health`, `/ready`, `/metrics` with
/// vLLM's names. It listens at once; the model loads behind it (`load`), and requests that
/// arrive meanwhile wait for it.
public final class OpenAIServer: Sendable {
    public let configuration: ServeConfiguration
    let slot = ModelSlot()
    let metrics: ServerMetrics
    let logger: Logger
    /// Listening, headers parsed, each weight group ready, first token.
    public let timeline: ColdStartTimeline
    private let shuttingDown = Atomic<Bool>(false)
    private let nextRequest = Atomic<Int>(0)

    public init(configuration: ServeConfiguration, logger: Logger = Logger(label: "weightfs.serve")) {
        self.configuration = configuration
        self.logger = logger
        metrics = ServerMetrics(modelName: configuration.servedModelName)
        timeline = ColdStartTimeline(registry: metrics.registry, labels: metrics.labels, logger: logger)
    }

    /// Listens, loads the model behind it, and serves until SIGTERM or SIGINT; then stops
    /// taking requests and gives those in flight `shutdownGrace` seconds. `onListening` runs
    /// once the port is open.
    public func run(load: @escaping @Sendable () async throws -> LoadedModel,
                    onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = Application(
            router: makeRouter(),
            server: .http1(configuration: .init(idleTimeout: .milliseconds(Int64(configuration.idleTimeout * 1000)))),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "weightfs"),
            onServerRunning: { [slot, logger, timeline] channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("listening on \(channel.localAddress.map { "\($0)" } ?? "?")")
                timeline.record("listening")
                await onListening(port)
                Task {
                    do {
                        let model = try await load()
                        await slot.set(.success(model))
                        timeline.record("model ready to run")
                    } catch {
                        logger.error("the model could not be loaded: \(error)")
                        await slot.set(.failure(error))
                    }
                }
            },
            logger: logger
        )
        let drain = DrainOnShutdown { [self] in shuttingDown.store(true, ordering: .relaxed) }
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: app), .init(service: drain)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .milliseconds(Int64(configuration.shutdownGrace * 1000))
        let group = ServiceGroup(configuration: groupConfiguration)
        do {
            try await group.run()
        } catch is CancellationError {
            // The grace period ran out: what was still running was cancelled.
        }
    }

    // MARK: routes

    func makeRouter() -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        router.get("/health") { _, _ -> Response in Self.json(["status": "ok"]) }
        router.get("/ready") { [self] _, _ -> Response in
            if shuttingDown.load(ordering: .relaxed) { return Self.error(.shuttingDown) }
            if let failure = await slot.failure { return Self.error(OpenAIError(status: 503, message: "the model failed to load: \(failure)", type: "ServiceUnavailableError")) }
            switch configuration.readyWhen {
            case .listening: return Self.json(["status": "ready"])
            case .loaded:
                guard let model = await slot.loaded, await model.weightsReady() else { return Self.error(.notReady) }
                return Self.json(["status": "ready"])
            }
        }
        router.get("/metrics") { [self] _, _ -> Response in
            let model = await slot.loaded
            var snapshot = EngineSnapshot(running: 0, waiting: await slot.waiting, kvUsage: 0, counters: SchedulerCounters())
            var ready = false, weights = WeightsSnapshot()
            if let model {
                snapshot.running = await model.engine.runningCount
                snapshot.waiting += await model.engine.waitingCount
                snapshot.kvUsage = await model.engine.kvUsage
                snapshot.kvWaste = await model.engine.kvWaste
                snapshot.counters = await model.engine.counters
                snapshot.steps = await model.engine.stepStatistics
                ready = await model.weightsReady()
                weights = await model.weights()
            }
            let text = metrics.render(engine: snapshot, weightsAreReady: ready, weights: weights)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/v1/models") { [self] request, _ -> Response in
            if let denied = authorize(request) { return Self.error(denied) }
            let model = await slot.loaded
            let entry: [String: Any] = ["id": configuration.servedModelName, "object": "model", "created": Int(Date().timeIntervalSince1970),
                                        "owned_by": "weightfs", "root": configuration.servedModelName, "max_model_len": model?.maxModelLen ?? NSNull()]
            return Self.json(["object": "list", "data": [entry]])
        }
        router.post("/v1/completions") { [self] request, context -> Response in
            await handle(request, context: context, chat: false)
        }
        router.post("/v1/chat/completions") { [self] request, context -> Response in
            await handle(request, context: context, chat: true)
        }
        return router
    }

    func authorize(_ request: Request) -> OpenAIError? {
        guard let key = configuration.apiKey else { return nil }
        return request.headers[.authorization] == "Bearer \(key)" ? nil : .unauthorized
    }

    private func handle(_ request: Request, context: ServerContext, chat: Bool) async -> Response {
        do {
            return try await respond(request, context: context, chat: chat)
        } catch let e as OpenAIError {
            return Self.error(e)
        } catch {
            return Self.error(OpenAIError(status: 500, message: "\(error)", type: "InternalServerError"))
        }
    }

    private func respond(_ incoming: Request, context: ServerContext, chat: Bool) async throws -> Response {
        let arrival = ContinuousClock.now
        if let denied = authorize(incoming) { throw denied }
        if shuttingDown.load(ordering: .relaxed) { throw OpenAIError.shuttingDown }
        // Collected in place: the request keeps its connection's inbound stream, so a client
        // that goes away can be noticed while its request waits or runs.
        var request = incoming
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: configuration.maxBodyBytes) } catch {
            throw OpenAIError(status: 413, message: "The request body is larger than \(configuration.maxBodyBytes) bytes.", type: "BadRequestError")
        }
        let fields = try Fields(body: Array(body.readableBytesView))
        let params = try GenerationParameters(fields, maxTokensKeys: chat ? ["max_tokens", "max_completion_tokens"] : ["max_tokens"])
        if let name = params.model, name != configuration.servedModelName { throw OpenAIError.notFound(model: name, served: configuration.servedModelName) }
        let messages = chat ? try parseMessages(fields) : []
        let prompt = chat ? nil : try parsePrompt(fields)
        if configuration.readyWhen == .loaded {
            guard let model = await slot.loaded, await model.weightsReady() else { throw OpenAIError.notReady }
        }
        let model: LoadedModel
        do { model = try await slot.get() } catch {
            throw OpenAIError(status: 503, message: "the model failed to load: \(error)", type: "ServiceUnavailableError")
        }

        let ids: [Int]
        if chat {
            guard let template = model.chatTemplate else {
                throw OpenAIError.badRequest("This model has no chat template (tokenizer_config.json chat_template); use /v1/completions.")
            }
            do {
                ids = try model.tokenizer.encodeChat(messages.map { ChatMessage(role: $0.role, content: $0.content) }, template: template,
                                                     addGenerationPrompt: true).ids
            } catch {
                throw OpenAIError.badRequest("The chat template failed on these messages: \(error)", param: "messages")
            }
        } else {
            switch prompt! {
            case .text(let text):
                ids = model.tokenizer.encode(text)
            case .tokens(let given):
                if let bad = given.first(where: { $0 < 0 || $0 >= model.vocabSize }) {
                    throw OpenAIError.badRequest("Token id \(bad) is out of vocabulary (0..<\(model.vocabSize)).", param: "prompt")
                }
                ids = given
            }
        }
        guard !ids.isEmpty else { throw OpenAIError.badRequest("The prompt is empty.", param: chat ? "messages" : "prompt") }
        guard ids.count < model.maxModelLen else {
            throw OpenAIError.badRequest("This model's maximum context length is \(model.maxModelLen) tokens. However, your prompt has \(ids.count) tokens.",
                                         param: chat ? "messages" : "prompt")
        }
        let maxTokens = params.maxTokens ?? (model.maxModelLen - ids.count)
        guard ids.count + maxTokens <= model.maxModelLen else {
            throw OpenAIError.badRequest("This model's maximum context length is \(model.maxModelLen) tokens. However, you requested \(ids.count + maxTokens) tokens (\(ids.count) in the prompt, \(maxTokens) in the completion).",
                                         param: "max_tokens")
        }
        var stopIDs: Set<Int> = params.ignoreEOS ? [] : model.stopTokens
        if chat && !params.ignoreEOS { stopIDs.formUnion(model.endOfTurnTokens) }
        let sampling = SamplingParameters(temperature: Float(params.temperature), topK: params.topK, topP: Float(params.topP),
                                          seed: params.seed ?? UInt64.random(in: 0...UInt64.max))
        let number = nextRequest.add(1, ordering: .relaxed).newValue
        let requestID = RequestKey("\(chat ? "chatcmpl" : "cmpl")-\(number)")
        let stream: AsyncThrowingStream<EngineOutput, Error>
        do {
            (_, stream) = try await model.engine.submit(prompt: ids, sampling: sampling,
                                                        stop: StopConditions(maxTokens: maxTokens, stopTokenIDs: stopIDs), id: requestID)
        } catch {
            throw OpenAIError.badRequest(error.description)
        }
        let run = Generation(server: self, model: model, id: requestID, chat: chat, promptTokens: ids.count, stops: params.stop,
                             includeUsage: params.includeUsage, arrival: arrival)
        // A client that closes its connection cancels the generation (queued or running): the
        // engine request is aborted and its blocks go back. Watching the connection reads what
        // the client sends after this request, so the connection is not reused: the response
        // says `Connection: close` and the server ends the connection's input once it is built,
        // so the connection closes right after the response (a request pipelined behind this
        // one was read by the watch: the close tells its client to send it again, RFC 9112
        // 9.3.2, instead of leaving it waiting for an answer that never comes).
        let collected = request
        let endInput = context.endInput
        if params.stream {
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "close"],
                            body: ResponseBody { writer in
                                defer { endInput() }
                                try await collected.body.consumeWithCancellationOnInboundClose { _ in
                                    try await run.stream(stream, writer: &writer)
                                }
                            })
        }
        defer { endInput() }
        var response = try await collected.body.consumeWithCancellationOnInboundClose { _ in try await run.collect(stream) }
        response.headers[.connection] = "close"
        return response
    }

    // MARK: responses

    static func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ e: OpenAIError) -> Response {
        Response(status: HTTPResponse.Status(code: e.status), headers: [.contentType: "application/json"],
                 body: ResponseBody(byteBuffer: ByteBuffer(bytes: e.body)))
    }
}

/// Flips the server to "shutting down" when SIGTERM arrives (before the HTTP server stops
/// accepting), so `/ready` fails and new requests get 503 while those in flight finish.
struct DrainOnShutdown: Service {
    let onShutdown: @Sendable () -> Void
    func run() async throws {
        try? await gracefulShutdown()
        onShutdown()
    }
}

/// The request context: Hummingbird's core storage, and a way to end the connection's input
/// once a generation's response is built (see `respond`).
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Shuts the connection's read side: the server's loop then finishes the connection after
    /// writing the response in progress.
    let endInput: @Sendable () -> Void

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        let channel = source.channel
        endInput = { channel.close(mode: .input, promise: nil) }
    }
}
