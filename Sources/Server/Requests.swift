import JSON

/// A request body's JSON object, read field by field; every wrong field is a 400 naming it.
struct Fields {
    let members: [String: JSON.Value]

    init(body: [UInt8]) throws(OpenAIError) {
        let value: JSON.Value
        do { value = try JSON.parse(body, duplicateKeys: .reject) } catch {
            throw .badRequest("The request body is not valid JSON: \(error)")
        }
        guard case .object(let m) = value else { throw .badRequest("The request body must be a JSON object.") }
        members = Dictionary(m.map { ($0.key, $0.value) }, uniquingKeysWith: { _, b in b })
    }

    func has(_ key: String) -> Bool {
        if let v = members[key], v != .null { return true }
        return false
    }

    func string(_ key: String) throws(OpenAIError) -> String? {
        guard let v = members[key], v != .null else { return nil }
        guard case .string(let s) = v else { throw .badRequest("'\(key)' must be a string.", param: key) }
        return s
    }

    func bool(_ key: String) throws(OpenAIError) -> Bool? {
        guard let v = members[key], v != .null else { return nil }
        guard case .bool(let b) = v else { throw .badRequest("'\(key)' must be true or false.", param: key) }
        return b
    }

    func int(_ key: String) throws(OpenAIError) -> Int? {
        guard let v = members[key], v != .null else { return nil }
        guard case .number(let n) = v, let i = n.exactInteger, let value = Int(exactly: i) else {
            throw .badRequest("'\(key)' must be an integer.", param: key)
        }
        return value
    }

    func double(_ key: String) throws(OpenAIError) -> Double? {
        guard let v = members[key], v != .null else { return nil }
        guard case .number(let n) = v, n.double.isFinite else { throw .badRequest("'\(key)' must be a number.", param: key) }
        return n.double
    }

    /// `stop`: a string or a list of strings (at most 4 as in OpenAI's API; vLLM takes more).
    func stopStrings() throws(OpenAIError) -> [String] {
        guard let v = members["stop"], v != .null else { return [] }
        switch v {
        case .string(let s): return s.isEmpty ? [] : [s]
        case .array(let items):
            var out: [String] = []
            for item in items {
                guard case .string(let s) = item else { throw .badRequest("'stop' must be a string or a list of strings.", param: "stop") }
                if !s.isEmpty { out.append(s) }
            }
            return out
        default: throw .badRequest("'stop' must be a string or a list of strings.", param: "stop")
        }
    }
}

/// What both endpoints share: sampling, limits, stop strings, streaming.
struct GenerationParameters: Sendable {
    var model: String?
    var maxTokens: Int?
    var temperature: Double
    var topP: Double
    var topK: Int
    var seed: UInt64?
    var stop: [String]
    var stream: Bool
    var includeUsage: Bool
    var ignoreEOS: Bool

    init(_ f: Fields, maxTokensKeys: [String]) throws(OpenAIError) {
        model = try f.string("model")
        var maxTokens: Int? = nil
        for key in maxTokensKeys {
            if let m = try f.int(key) {
                guard m >= 1 else { throw .badRequest("'\(key)' must be at least 1, got \(m).", param: key) }
                maxTokens = m
            }
        }
        self.maxTokens = maxTokens
        temperature = try f.double("temperature") ?? 1.0
        guard temperature >= 0 && temperature <= 100 else { throw .badRequest("'temperature' must be between 0 and 100, got \(temperature).", param: "temperature") }
        topP = try f.double("top_p") ?? 1.0
        guard topP > 0 && topP <= 1 else { throw .badRequest("'top_p' must be in (0, 1], got \(topP).", param: "top_p") }
        let k = try f.int("top_k") ?? -1
        guard k == -1 || k >= 0 else { throw .badRequest("'top_k' must be -1 (off) or at least 0, got \(k).", param: "top_k") }
        topK = max(0, k)
        if let s = try f.int("seed") {
            seed = UInt64(truncatingIfNeeded: s)
        }
        stop = try f.stopStrings()
        stream = try f.bool("stream") ?? false
        includeUsage = false
        if let v = f.members["stream_options"], v != .null {
            guard case .object(let opts) = v else { throw .badRequest("'stream_options' must be an object.", param: "stream_options") }
            for o in opts where o.key == "include_usage" {
                guard case .bool(let b) = o.value else { throw .badRequest("'stream_options.include_usage' must be true or false.", param: "stream_options") }
                includeUsage = b
            }
            guard stream else { throw .badRequest("'stream_options' is only allowed with 'stream': true.", param: "stream_options") }
        }
        ignoreEOS = try f.bool("ignore_eos") ?? false
        if let n = try f.int("n"), n != 1 { throw .badRequest("'n' must be 1: this server returns one choice per request.", param: "n") }
        if let b = try f.int("best_of"), b != 1 { throw .badRequest("'best_of' must be 1.", param: "best_of") }
        if f.has("logprobs"), f.members["logprobs"] != .bool(false) {
            throw .badRequest("'logprobs' is not supported by this server.", param: "logprobs")
        }
        if f.has("top_logprobs") { throw .badRequest("'top_logprobs' is not supported by this server.", param: "top_logprobs") }
        if f.has("tools") || f.has("functions") { throw .badRequest("tool calling is not supported by this server.", param: "tools") }
        if let e = try f.bool("echo"), e { throw .badRequest("'echo' is not supported by this server.", param: "echo") }
    }
}

/// A chat message as OpenAI sends it: role and content (a string, or a list of text parts).
struct ChatMessageInput: Sendable {
    var role: String
    var content: String
}

func parseMessages(_ f: Fields) throws(OpenAIError) -> [ChatMessageInput] {
    guard let v = f.members["messages"] else { throw .badRequest("'messages' is required.", param: "messages") }
    guard case .array(let items) = v, !items.isEmpty else { throw .badRequest("'messages' must be a non-empty list.", param: "messages") }
    var out: [ChatMessageInput] = []
    for (k, item) in items.enumerated() {
        guard case .object(let members) = item else { throw .badRequest("messages[\(k)] must be an object.", param: "messages") }
        var role: String?, content = ""
        for m in members {
            switch m.key {
            case "role":
                guard case .string(let r) = m.value else { throw .badRequest("messages[\(k)].role must be a string.", param: "messages") }
                role = r
            case "content":
                switch m.value {
                case .string(let s): content = s
                case .null: content = ""
                case .array(let parts):
                    for part in parts {
                        guard case .object(let pm) = part, pm.contains(where: { $0.key == "type" && $0.value == .string("text") }),
                              let text = pm.first(where: { $0.key == "text" }), case .string(let t) = text.value else {
                            throw .badRequest("messages[\(k)].content: only text parts are supported.", param: "messages")
                        }
                        content += t
                    }
                default: throw .badRequest("messages[\(k)].content must be a string or a list of text parts.", param: "messages")
                }
            default: break
            }
        }
        guard let role, ["system", "user", "assistant", "developer", "tool"].contains(role) else {
            throw .badRequest("messages[\(k)].role must be system, user, assistant, developer or tool.", param: "messages")
        }
        out.append(ChatMessageInput(role: role == "developer" ? "system" : role, content: content))
    }
    return out
}

/// `prompt` of /v1/completions: a string, or one list of token ids.
enum PromptInput: Sendable {
    case text(String)
    case tokens([Int])
}

func parsePrompt(_ f: Fields) throws(OpenAIError) -> PromptInput {
    guard let v = f.members["prompt"] else { throw .badRequest("'prompt' is required.", param: "prompt") }
    switch v {
    case .string(let s): return .text(s)
    case .array(let items):
        if items.count == 1, case .string(let s) = items[0] { return .text(s) }
        var ids: [Int] = []
        for item in items {
            guard case .number(let n) = item, let i = n.exactInteger, let id = Int(exactly: i) else {
                throw .badRequest("'prompt' must be a string or a list of token ids (one prompt per request).", param: "prompt")
            }
            ids.append(id)
        }
        return .tokens(ids)
    default: throw .badRequest("'prompt' must be a string or a list of token ids.", param: "prompt")
    }
}
