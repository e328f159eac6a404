/// The `decoder` of a tokenizer.json: turns token strings back into text. Each step maps a list
/// of strings to a list of strings, and the result is their concatenation (`decode_chain`).
indirect enum TokenDecoder: Sendable {
    case sequence([TokenDecoder])
    /// Byte-level alphabet back to bytes, then UTF-8 (invalid bytes become U+FFFD).
    case byteLevel
    /// `replacement` becomes a space, except that the first token loses it when one was prepended.
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme)
    case replace(pattern: [Unicode.Scalar], content: [Unicode.Scalar])
    /// Runs of `<0xAB>` tokens become the text their bytes spell (or one U+FFFD per byte).
    case byteFallback
    /// All tokens into one.
    case fuse
    /// Up to `start` leading and `stop` trailing `content` characters removed from each token.
    case strip(content: Unicode.Scalar, start: Int, stop: Int)

    static func parse(_ node: JSONNode) throws(TokenizerError) -> TokenDecoder {
        let type = try node.typeTag
        switch type {
        case "Sequence":
            return .sequence(try node.required("decoders").array.map { (n) throws(TokenizerError) in try parse(n) })
        case "ByteLevel": return .byteLevel
        case "Metaspace":
            let r = Array(try node.required("replacement").string.unicodeScalars)
            guard r.count == 1 else { throw try node.required("replacement").error("expected one character") }
            var scheme = PrependScheme.always
            if let s = try node.optional("prepend_scheme") {
                let name = try s.string
                guard let parsed = PrependScheme(rawValue: name) else { throw s.error("unknown prepend_scheme \"\(name)\"") }
                scheme = parsed
            } else if let add = try node.optional("add_prefix_space") {
                scheme = try add.bool ? .always : .never
            }
            return .metaspace(replacement: r[0], prependScheme: scheme)
        case "Replace":
            let pattern = try node.required("pattern")
            guard let literal = try pattern.optional("String") else {
                throw pattern.error("Replace with a regex pattern is not supported (only a literal String pattern)", kind: .unsupported)
            }
            let p = try literal.string
            if p.isEmpty { throw literal.error("an empty pattern") }
            return .replace(pattern: Array(p.unicodeScalars), content: Array(try node.required("content").string.unicodeScalars))
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            let c = Array(try node.required("content").string.unicodeScalars)
            guard c.count == 1 else { throw try node.required("content").error("expected one character") }
            let start = try node.required("start").int, stop = try node.required("stop").int
            guard start >= 0, stop >= 0 else { throw node.error("start and stop must not be negative") }
            return .strip(content: c[0], start: start, stop: stop)
        default:
            throw TokenizerError(kind: .unsupported, file: node.file, field: node.childPath("type"),
                                 message: "decoder type \"\(type)\" is not supported (supported: Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip)")
        }
    }

    /// Whether decoding is just "each token's bytes, concatenated, as UTF-8", which lets a
    /// streaming decoder work byte by byte.
    var isByteLevel: Bool {
        switch self {
        case .byteLevel: return true
        case .sequence(let list): return list.count == 1 && list[0].isByteLevel
        default: return false
        }
    }

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .sequence(let list):
            var t = tokens
            for d in list { t = d.decodeChain(t) }
            return t
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens { ByteLevel.decode(t, into: &bytes) }
            return [String(decoding: bytes, as: UTF8.self)]
        case .metaspace(let replacement, let scheme):
            return tokens.enumerated().map { (i, token) in
                var out = String.UnicodeScalarView()
                for c in token.unicodeScalars {
                    if c == replacement {
                        if !(i == 0 && scheme != .never) { out.append(" ") }
                    } else {
                        out.append(c)
                    }
                }
                return String(out)
            }
        case .replace(let pattern, let content):
            return tokens.map { t in
                var out = String()
                out.unicodeScalars.append(contentsOf: replaceAll(Array(t.unicodeScalars), pattern: pattern, with: content))
                return out
            }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let s = String(validating: pending, as: UTF8.self) {
                    out.append(s)
                } else {
                    out.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
                }
                pending.removeAll()
            }
            for t in tokens {
                if let b = Self.fallbackByte(t) {
                    pending.append(b)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { t in
                let chars = Array(t.unicodeScalars)
                var lo = 0
                while lo < min(start, chars.count) && chars[lo] == content { lo += 1 }
                var hi = chars.count
                var removed = 0
                while removed < min(stop, chars.count - lo) && chars[hi - 1] == content { hi -= 1; removed += 1 }
                var out = String()
                out.unicodeScalars.append(contentsOf: chars[lo..<hi])
                return out
            }
        }
    }

    /// The byte of a `<0xAB>` token.
    static func fallbackByte(_ t: String) -> UInt8? {
        let u = Array(t.utf8)
        guard u.count == 6, u[0] == UInt8(ascii: "<"), u[1] == UInt8(ascii: "0"), u[2] == UInt8(ascii: "x"), u[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16)
    }
}

/// The `post_processor` of a tokenizer.json, as far as ids go: which special tokens wrap a
/// single sequence when `addSpecialTokens` is true. (ByteLevel's only changes offsets.)
struct PostProcessor: Sendable {
    var prefix: [Int32] = []
    var suffix: [Int32] = []

    static func parse(_ node: JSONNode) throws(TokenizerError) -> PostProcessor {
        let type = try node.typeTag
        switch type {
        case "ByteLevel":
            return PostProcessor()
        case "Sequence":
            var combined = PostProcessor()
            for p in try node.required("processors").array {
                let inner = try parse(p)
                // Each processor wraps what the previous one produced.
                combined.prefix = inner.prefix + combined.prefix
                combined.suffix += inner.suffix
            }
            return combined
        case "TemplateProcessing":
            let specialNode = try node.required("special_tokens")
            var special: [String: [Int32]] = [:]
            for (name, entry) in try specialNode.members {
                var ids: [Int32] = []
                for idNode in try entry.required("ids").array {
                    let id = try idNode.int
                    guard id >= 0, id < 16_777_216 else { throw idNode.error("a token id must be in 0..<16777216") }
                    ids.append(Int32(id))
                }
                special[name] = ids
            }
            var result = PostProcessor()
            var seenSequence = false
            for item in try node.required("single").array {
                if let s = try item.optional("SpecialToken") {
                    let name = try s.required("id").string
                    guard let ids = special[name] else {
                        throw s.error("the template names special token \"\(name)\", which special_tokens does not define")
                    }
                    if seenSequence { result.suffix += ids } else { result.prefix += ids }
                } else if let s = try item.optional("Sequence") {
                    let id = try s.required("id").string
                    guard id == "A" else { throw s.error("the single-sequence template can only hold sequence A, found \(id)") }
                    if seenSequence { throw s.error("sequence A appears twice") }
                    seenSequence = true
                } else {
                    throw item.error("expected {\"SpecialToken\": …} or {\"Sequence\": …}")
                }
            }
            guard seenSequence else { throw try node.required("single").error("the template never places the sequence") }
            return result
        case "BertProcessing", "RobertaProcessing":
            func id(_ key: String) throws(TokenizerError) -> Int32 {
                let pair = try node.required(key).array
                guard pair.count == 2 else { throw try node.required(key).error("expected [token, id]") }
                let v = try pair[1].int
                guard v >= 0, v < 16_777_216 else { throw pair[1].error("a token id must be in 0..<16777216") }
                return Int32(v)
            }
            return PostProcessor(prefix: [try id("cls")], suffix: [try id("sep")])
        default:
            throw TokenizerError(kind: .unsupported, file: node.file, field: node.childPath("type"),
                                 message: "post-processor type \"\(type)\" is not supported (supported: TemplateProcessing, ByteLevel, Sequence, BertProcessing, RobertaProcessing)")
        }
    }
}
