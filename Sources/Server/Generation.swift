import Engine
import Foundation
import Hummingbird
import Logging

/// One request's generation: the engine's tokens become text (stop strings applied), then one
/// JSON response or a stream of SSE chunks; latencies go to the metrics and one log line.
struct Generation: Sendable {
    let server: OpenAIServer
    let model: LoadedModel
    let id: RequestKey
    let chat: Bool
    let promptTokens: Int
    let stops: [String]
    let includeUsage: Bool
    let arrival: ContinuousClock.Instant
    let created = Int(Date().timeIntervalSince1970)

    /// What the stream produced: a text delta (may be empty), or the end.
    enum Piece {
        case text(String)
        case end(FinishReason)
    }

    /// Runs the engine's stream through the text layer, calling `emit` for each piece; aborts
    /// the engine request when a stop string ends it or when `emit` throws (the client left).
    func drive(_ stream: AsyncThrowingStream<EngineOutput, Error>, emit: (Piece) async throws -> Void) async throws -> (completionTokens: Int, reason: FinishReason) {
        var text = TextStream(tokenizer: model.tokenizer, stops: stops)
        var tokens = 0
        var firstToken: ContinuousClock.Instant?
        var lastToken: ContinuousClock.Instant?
        var finished = false
        defer {
            if !finished {
                // The client went away (a write failed) or the handler was cancelled.
                server.metrics.finished(.abort)
                Task { [engine = model.engine, id] in await engine.abort(id) }
            }
        }
        var reason = FinishReason.abort
        loop: for try await output in stream {
            switch output {
            case .admitted:
                server.metrics.queueTime.record(ContinuousClock.now - arrival)
            case .token(let t):
                let now = ContinuousClock.now
                tokens += 1
                if firstToken == nil {
                    firstToken = now
                    server.metrics.ttft.record(now - arrival)
                    server.timeline.record("first token")
                } else if let last = lastToken {
                    server.metrics.interToken.record(now - last)
                }
                lastToken = now
                let (delta, stopped) = text.push(t)
                if !delta.isEmpty { try await emit(.text(delta)) }
                if stopped {
                    reason = .stop
                    finished = true
                    await model.engine.abort(id)  // the engine stops here; the stream ends with .abort
                    break loop
                }
            case .finished(let r):
                let (rest, stopped) = text.finish()
                if !rest.isEmpty { try await emit(.text(rest)) }
                reason = stopped ? .stop : r
                finished = true
                break loop
            }
        }
        guard finished else { throw CancellationError() }
        server.metrics.finished(reason)
        let total = ContinuousClock.now - arrival
        server.metrics.e2e.record(total)
        let ttft = firstToken.map { String(format: "%.3f s", ($0 - arrival).seconds) } ?? "-"
        server.logger.info("request \(id): prompt \(promptTokens) tokens, generated \(tokens), ttft \(ttft), total \(String(format: "%.3f s", total.seconds)), finish \(reason.rawValue)")
        try await emit(.end(reason))
        return (tokens, reason)
    }

    /// The whole answer as one JSON response.
    func collect(_ stream: AsyncThrowingStream<EngineOutput, Error>) async throws -> Response {
        var text = ""
        let (tokens, reason) = try await drive(stream) { piece in
            if case .text(let t) = piece { text += t }
        }
        let usage = Usage(prompt_tokens: promptTokens, completion_tokens: tokens, total_tokens: promptTokens + tokens)
        let data: Data
        if chat {
            data = try JSONEncoder().encode(ChatCompletion(id: id.rawValue, created: created, model: server.configuration.servedModelName,
                                                           choices: [.init(message: .init(content: text), finish_reason: reason.rawValue)], usage: usage))
        } else {
            data = try JSONEncoder().encode(Completion(id: id.rawValue, created: created, model: server.configuration.servedModelName,
                                                       choices: [.init(text: text, finish_reason: reason.rawValue)], usage: usage))
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Server-sent events: a chunk per text delta, a last chunk with the finish reason, the
    /// usage when asked (`stream_options.include_usage`), then `data: [DONE]`.
    func stream(_ stream: AsyncThrowingStream<EngineOutput, Error>, writer: inout any ResponseBodyWriter) async throws {
        let model = server.configuration.servedModelName
        let encoder = JSONEncoder()
        // One writer for the whole response (a closure cannot capture the inout parameter).
        var w = writer
        if chat {
            let first = try encoder.encode(StreamChunk(id: id.rawValue, object: "chat.completion.chunk", created: created, model: model, choices: [ChatChunkChoice(delta: ChatDelta(role: "assistant", content: ""), finish_reason: nil)]))
            try await w.write(ByteBuffer(string: "data: " + String(decoding: first, as: UTF8.self) + "\n\n"))
        }
        let (tokens, _) = try await drive(stream) { piece in
            let data: Data
            switch piece {
            case .text(let t):
                data = chat
                    ? try encoder.encode(StreamChunk(id: id.rawValue, object: "chat.completion.chunk", created: created, model: model, choices: [ChatChunkChoice(delta: ChatDelta(role: nil, content: t), finish_reason: nil)]))
                    : try encoder.encode(StreamChunk(id: id.rawValue, object: "text_completion", created: created, model: model, choices: [CompletionChunkChoice(text: t, finish_reason: nil)]))
            case .end(let reason):
                data = chat
                    ? try encoder.encode(StreamChunk(id: id.rawValue, object: "chat.completion.chunk", created: created, model: model, choices: [ChatChunkChoice(delta: ChatDelta(role: nil, content: nil), finish_reason: reason.rawValue)]))
                    : try encoder.encode(StreamChunk(id: id.rawValue, object: "text_completion", created: created, model: model, choices: [CompletionChunkChoice(text: "", finish_reason: reason.rawValue)]))
            }
            try await w.write(ByteBuffer(string: "data: " + String(decoding: data, as: UTF8.self) + "\n\n"))
        }
        if includeUsage {
            let usage = Usage(prompt_tokens: promptTokens, completion_tokens: tokens, total_tokens: promptTokens + tokens)
            let data = chat
                ? try encoder.encode(StreamChunk<ChatChunkChoice>(id: id.rawValue, object: "chat.completion.chunk", created: created, model: model, choices: [], usage: usage))
                : try encoder.encode(StreamChunk<CompletionChunkChoice>(id: id.rawValue, object: "text_completion", created: created, model: model, choices: [], usage: usage))
            try await w.write(ByteBuffer(string: "data: " + String(decoding: data, as: UTF8.self) + "\n\n"))
        }
        try await w.write(ByteBuffer(string: "data: [DONE]\n\n"))
        try await w.finish(nil)
    }
}

// MARK: OpenAI's response shapes (nulls written as null, as OpenAI and vLLM do)

struct Usage: Encodable {
    let prompt_tokens: Int
    let completion_tokens: Int
    let total_tokens: Int
}

struct Completion: Encodable {
    /// The same choice as a stream's chunk, with its finish reason always set.
    typealias Choice = CompletionChunkChoice
    let id: String
    var object = "text_completion"
    let created: Int
    let model: String
    let choices: [Choice]
    let usage: Usage
}

struct CompletionChunkChoice: Encodable {
    let text: String
    let finish_reason: String?
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(0, forKey: .index)
        try c.encode(text, forKey: .text)
        try c.encodeNil(forKey: .logprobs)
        if let finish_reason { try c.encode(finish_reason, forKey: .finish_reason) } else { try c.encodeNil(forKey: .finish_reason) }
    }
    enum Keys: String, CodingKey { case index, text, logprobs, finish_reason }
}

struct ChatCompletion: Encodable {
    struct Message: Encodable {
        var role = "assistant"
        let content: String
    }
    struct Choice: Encodable {
        let message: Message
        let finish_reason: String
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(0, forKey: .index)
            try c.encode(message, forKey: .message)
            try c.encodeNil(forKey: .logprobs)
            try c.encode(finish_reason, forKey: .finish_reason)
        }
        enum Keys: String, CodingKey { case index, message, logprobs, finish_reason }
    }
    let id: String
    var object = "chat.completion"
    let created: Int
    let model: String
    let choices: [Choice]
    let usage: Usage
}

struct ChatDelta: Encodable {
    let role: String?
    let content: String?
}

struct ChatChunkChoice: Encodable {
    let delta: ChatDelta
    let finish_reason: String?
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(0, forKey: .index)
        try c.encode(delta, forKey: .delta)
        try c.encodeNil(forKey: .logprobs)
        if let finish_reason { try c.encode(finish_reason, forKey: .finish_reason) } else { try c.encodeNil(forKey: .finish_reason) }
    }
    enum Keys: String, CodingKey { case index, delta, logprobs, finish_reason }
}

/// One SSE chunk of either endpoint (`text_completion` or `chat.completion.chunk`); `usage` is
/// null but in the last chunk of `include_usage`.
struct StreamChunk<Choice: Encodable>: Encodable {
    let id: String
    let object: String
    let created: Int
    let model: String
    let choices: [Choice]
    var usage: Usage? = nil
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(id, forKey: .id)
        try c.encode(object, forKey: .object)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        try c.encode(choices, forKey: .choices)
        if let usage { try c.encode(usage, forKey: .usage) } else { try c.encodeNil(forKey: .usage) }
    }
    enum Keys: String, CodingKey { case id, object, created, model, choices, usage }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
