import JSON
import Foundation

/// A token id, as the model's embedding table and sampler see it.
public typealias TokenID = Int

/// A Hugging Face `tokenizer.json` tokenizer: byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM2)
/// or SentencePiece-style BPE (Llama 2, Mistral), giving the same ids as `tokenizers`.
///
/// Encoding runs the same stages as `tokenizers`: added tokens are cut out of the raw text,
/// the rest is normalized, pre-tokenized into words, each word is BPE-encoded, and the
/// post-processor adds BOS/EOS when asked. Loading checks the whole file, so a malformed or
/// unsupported tokenizer fails at load with a `TokenizerError`, never later.
///
/// A value is immutable and safe to share across tasks; its word cache is internally locked.
public struct Tokenizer: Sendable {
    let model: BPEModel
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let postProcessor: PostProcessor?
    let decoder: TokenDecoder?
    let addedTokens: AddedTokenMatcher
    /// Added tokens matched in the original text (`normalized: false`), all or without the special ones.
    let rawMatcher: AddedTokenMatcher
    let rawMatcherNoSpecial: AddedTokenMatcher
    /// Added tokens matched in normalized text (`normalized: true`).
    let normalizedMatcher: AddedTokenMatcher
    let normalizedMatcherNoSpecial: AddedTokenMatcher
    /// Id → added token content.
    let addedByID: [Int32: String]
    /// Ids whose text is a special token's (skipped by `decode(skipSpecialTokens: true)`).
    let specialIDs: Set<Int32>
    /// Whether text can be decoded a byte at a time (the decoder is ByteLevel).
    let decodesByteLevel: Bool

    /// The number of distinct token ids (model vocabulary and added tokens together).
    public let vocabularySize: Int
    /// From tokenizer_config.json, when it names them and they are in the vocabulary.
    public let bosToken: String?
    public let eosToken: String?
    public let padToken: String?
    public let bosTokenID: TokenID?
    public let eosTokenID: TokenID?
    public let padTokenID: TokenID?
    /// The Jinja chat template from tokenizer_config.json (the default one when it lists several).
    public let chatTemplate: String?

    /// Loads `tokenizer.json` and, when present, `tokenizer_config.json` from `directory`.
    public init(directory: URL) throws(TokenizerError) {
        let tokenizerURL = directory.appendingPathComponent("tokenizer.json")
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        let tokenizerBytes = try Self.read(tokenizerURL)
        let configBytes = FileManager.default.fileExists(atPath: configURL.path) ? try Self.read(configURL) : nil
        try self.init(tokenizerJSON: tokenizerBytes, configJSON: configBytes)
    }

    /// Parses the contents of `tokenizer.json` and optionally `tokenizer_config.json`.
    public init(tokenizerJSON: [UInt8], configJSON: [UInt8]? = nil,
                tokenizerFileName: String = "tokenizer.json", configFileName: String = "tokenizer_config.json") throws(TokenizerError) {
        let root = JSONNode(value: try Self.parseJSON(tokenizerJSON, file: tokenizerFileName), path: "", file: tokenizerFileName)
        guard case .object = root.value else { throw root.error("the file must hold a JSON object, found \(root.value.kindName)") }

        model = try BPEModel.parse(try root.required("model"))
        normalizer = try root.optional("normalizer").map { (n) throws(TokenizerError) in try Normalizer.parse(n) }
        preTokenizer = try root.optional("pre_tokenizer").map { (n) throws(TokenizerError) in try PreTokenizer.parse(n) }
        postProcessor = try root.optional("post_processor").map { (n) throws(TokenizerError) in try PostProcessor.parse(n) }
        decoder = try root.optional("decoder").map { (n) throws(TokenizerError) in try TokenDecoder.parse(n) }
        decodesByteLevel = decoder?.isByteLevel ?? false

        var added: [AddedToken] = []
        if let list = try root.optional("added_tokens") {
            for item in try list.array { added.append(try AddedToken.parse(item)) }
        }
        addedTokens = AddedTokenMatcher(added)
        // `tokenizers` matches special tokens first, then the others, each group in file order.
        let ordered = added.filter(\.special) + added.filter { !$0.special }
        rawMatcher = AddedTokenMatcher(ordered.filter { !$0.normalized })
        rawMatcherNoSpecial = AddedTokenMatcher(ordered.filter { !$0.normalized && !$0.special })
        normalizedMatcher = AddedTokenMatcher(Self.normalizedContents(ordered.filter(\.normalized), normalizer))
        normalizedMatcherNoSpecial = AddedTokenMatcher(Self.normalizedContents(ordered.filter { $0.normalized && !$0.special }, normalizer))

        var byID: [Int32: String] = [:]
        for t in added { byID[t.id] = t.contentString }
        addedByID = byID
        var special = Set<Int32>()
        for t in added where t.special {
            special.insert(t.id)
            if let id = model.vocab[TokenBytes(t.contentString)] { special.insert(id) }
        }
        specialIDs = special
        var ids = Set<Int32>(byID.keys)
        for (k, t) in model.tokens.enumerated() where t != nil { ids.insert(Int32(k)) }
        vocabularySize = ids.count

        // Post-processor ids must exist, or encode would emit ids the model cannot embed.
        if let p = postProcessor {
            for id in p.prefix + p.suffix where model.token(for: id) == nil && byID[id] == nil {
                throw TokenizerError(kind: .invalidField, file: tokenizerFileName, field: "post_processor",
                                     message: "adds token id \(id), which is neither in the vocabulary nor an added token")
            }
        }

        let config = try configJSON.map { (bytes) throws(TokenizerError) in
            try TokenizerConfig(JSONNode(value: try Self.parseJSON(bytes, file: configFileName), path: "", file: configFileName))
        }
        chatTemplate = config?.chatTemplate
        bosToken = config?.bosToken
        eosToken = config?.eosToken
        padToken = config?.padToken
        let vocab = model.vocab
        func lookup(_ t: String?) -> TokenID? {
            guard let t else { return nil }
            if let a = added.first(where: { $0.contentString.utf8.elementsEqual(t.utf8) }) { return Int(a.id) }
            return vocab[TokenBytes(t)].map(Int.init)
        }
        bosTokenID = lookup(config?.bosToken)
        eosTokenID = lookup(config?.eosToken)
        padTokenID = lookup(config?.padToken)
    }

    static func read(_ url: URL) throws(TokenizerError) -> [UInt8] {
        do {
            return Array(try Data(contentsOf: url))
        } catch {
            throw TokenizerError(kind: .io, file: url.lastPathComponent, field: "", message: "cannot read \(url.path): \(error.localizedDescription)")
        }
    }

    static func parseJSON(_ bytes: [UInt8], file: String) throws(TokenizerError) -> JSON.Value {
        do {
            // Every member kept, the last of equal keys wins (serde_json); vocabulary keys that
            // differ only in Unicode normalization are two tokens.
            return try JSON.parse(bytes, duplicateKeys: .keep)
        } catch {
            let (line, column) = JSON.lineAndColumn(of: error.offset, in: bytes)
            throw TokenizerError(kind: .syntax, file: file, field: "",
                                 message: "not valid JSON at line \(line), column \(column) (byte \(error.offset)): \(error.message)")
        }
    }

    /// Added tokens with `normalized: true` are looked for in normalized text, so their
    /// contents are normalized the same way.
    static func normalizedContents(_ tokens: [AddedToken], _ normalizer: Normalizer?) -> [AddedToken] {
        guard let normalizer else { return tokens }
        return tokens.map { t in
            var c = t.content
            normalizer.apply(&c)
            return AddedToken(id: t.id, content: c, contentString: t.contentString, special: t.special, singleWord: t.singleWord,
                              lstrip: t.lstrip, rstrip: t.rstrip, normalized: t.normalized)
        }
    }

    // MARK: Encoding

    /// The ids of `text`.
    ///
    /// - Parameters:
    ///   - addSpecialTokens: let the post-processor add its tokens (BOS for Llama-style models).
    ///   - parseSpecialTokens: match special tokens written in the text (`<|im_start|>` in a chat
    ///     template). Pass false for untrusted text, so that a user cannot forge them; their
    ///     characters are then encoded as ordinary text. Non-special added tokens always match.
    public func encode(_ text: String, addSpecialTokens: Bool = true, parseSpecialTokens: Bool = true) -> [TokenID] {
        var ids: [Int32] = []
        let scalars = Array(text.unicodeScalars)
        ids.reserveCapacity(scalars.count / 3 + 4)
        if addSpecialTokens, let p = postProcessor { ids.append(contentsOf: p.prefix) }
        let raw = parseSpecialTokens ? rawMatcher : rawMatcherNoSpecial
        let normalizedTokens = parseSpecialTokens ? normalizedMatcher : normalizedMatcherNoSpecial
        var pieces: [TextPiece] = []
        let (normalizer, preTokenizer, model) = (self.normalizer, self.preTokenizer, self.model)
        for segment in raw.split(scalars, 0..<scalars.count) {
            if let id = segment.id {
                ids.append(id)
                continue
            }
            var piece = Array(scalars[segment.range])
            if let normalizer { normalizer.apply(&piece) }
            let atStart = segment.range.lowerBound == 0
            for inner in normalizedTokens.split(piece, 0..<piece.count) {
                if let id = inner.id {
                    ids.append(id)
                    continue
                }
                if inner.range.isEmpty { continue }
                pieces.removeAll(keepingCapacity: true)
                pieces.append(TextPiece(scalars: Array(piece[inner.range]), atTextStart: atStart && inner.range.lowerBound == 0))
                preTokenizer?.apply(&pieces)
                for word in pieces { model.tokenize(word.scalars, into: &ids) }
            }
        }
        if addSpecialTokens, let p = postProcessor { ids.append(contentsOf: p.suffix) }
        return ids.map(Int.init)
    }

    // MARK: Decoding

    /// The text of token `id` as the vocabulary writes it (`Ġthe`, `<|im_end|>`), nil when unknown.
    public func token(for id: TokenID) -> String? {
        guard id >= 0, id < Int(Int32.max) else { return nil }
        if let added = addedByID[Int32(id)] { return added }
        return model.token(for: Int32(id))
    }

    /// The id of a token written as the vocabulary writes it, nil when there is none.
    public func id(for token: String) -> TokenID? {
        if let a = addedTokens.tokens.first(where: { $0.contentString.utf8.elementsEqual(token.utf8) }) { return Int(a.id) }
        return model.vocab[TokenBytes(token)].map(Int.init)
    }

    /// Whether `id` is a special token (BOS, EOS, chat markers…), which decoding can skip.
    public func isSpecial(_ id: TokenID) -> Bool {
        guard id >= 0, id < Int(Int32.max) else { return false }
        return specialIDs.contains(Int32(id))
    }

    /// The text of `ids`. Unknown ids are skipped, as in `tokenizers`.
    public func decode(_ ids: [TokenID], skipSpecialTokens: Bool = false) -> String {
        if decodesByteLevel {
            // The same as the ByteLevel decoder over the token strings, without building them.
            var bytes: [UInt8] = []
            bytes.reserveCapacity(ids.count * 4)
            for id in ids where !(skipSpecialTokens && isSpecial(id)) { _ = byteLevelBytes(of: id, into: &bytes) }
            return String(decoding: bytes, as: UTF8.self)
        }
        let tokens = decodeTokens(ids, skipSpecialTokens: skipSpecialTokens)
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }

    func decodeTokens(_ ids: [TokenID], skipSpecialTokens: Bool) -> [String] {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let t = token(for: id) else { continue }
            if skipSpecialTokens && isSpecial(id) { continue }
            tokens.append(t)
        }
        return tokens
    }

    /// The bytes of token `id` when decoding is byte-level (each token stands for bytes on its
    /// own), nil otherwise or when the id is unknown.
    func byteLevelBytes(of id: TokenID, into bytes: inout [UInt8]) -> Bool {
        guard let t = token(for: id) else { return false }
        ByteLevel.decode(t, into: &bytes)
        return true
    }


    /// A decoder for ids that arrive one at a time, as a model generates them.
    public func streamingDecoder(skipSpecialTokens: Bool = false) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }
}

/// What `tokenizer_config.json` adds: the names of BOS/EOS/PAD and the chat template.
struct TokenizerConfig {
    var bosToken: String?
    var eosToken: String?
    var padToken: String?
    var chatTemplate: String?

    init(_ root: JSONNode) throws(TokenizerError) {
        guard case .object = root.value else { throw root.error("the file must hold a JSON object, found \(root.value.kindName)") }
        bosToken = try Self.tokenName(root, "bos_token")
        eosToken = try Self.tokenName(root, "eos_token")
        padToken = try Self.tokenName(root, "pad_token")
        if let t = try root.optional("chat_template") {
            switch t.value {
            case .string(let s):
                chatTemplate = s
            case .array:
                // [{"name": "default", "template": …}, {"name": "tool_use", …}]
                var chosen: String? = nil
                for entry in try t.array {
                    let name = try entry.required("name").string
                    let template = try entry.required("template").string
                    if name == "default" || chosen == nil { chosen = template }
                }
                chatTemplate = chosen
            default:
                throw t.error("expected a string or a list of {name, template}, found \(t.value.kindName)")
            }
        }
    }

    /// A special token is written as its text or, in older files, as {"content": …, …}.
    static func tokenName(_ root: JSONNode, _ key: String) throws(TokenizerError) -> String? {
        guard let n = try root.optional(key) else { return nil }
        switch n.value {
        case .string(let s): return s
        case .object: return try n.required("content").string
        default: throw n.error("expected a string or an object with \"content\", found \(n.value.kindName)")
        }
    }
}
