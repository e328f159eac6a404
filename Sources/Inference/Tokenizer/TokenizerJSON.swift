/// A small JSON reader for `tokenizer.json` and `tokenizer_config.json`.
///
/// Foundation's readers return objects as `[String: Any]`, and Swift `String` keys compare by
/// canonical equivalence: two vocabulary entries that differ only in Unicode normalization (NFC
/// vs NFD spellings, which SentencePiece vocabularies do contain) would collapse into one. This
/// reader keeps every object member in document order with its exact code points, and reports
/// where the text stops being JSON instead of trapping.
enum TokenizerJSON {
    static let maxDepth = 128

    indirect enum Value: Sendable {
        case null
        case bool(Bool)
        case number(Double, isInteger: Bool)
        case string(String)
        case array([Value])
        case object([(key: String, value: Value)])

        var kindName: String {
            switch self {
            case .null: return "null"
            case .bool: return "a boolean"
            case .number: return "a number"
            case .string: return "a string"
            case .array: return "an array"
            case .object: return "an object"
            }
        }
    }

    struct SyntaxError: Error {
        var offset: Int
        var line: Int
        var column: Int
        var message: String
    }

    static func parse(_ bytes: [UInt8]) throws(SyntaxError) -> Value {
        var p = Parser(bytes: bytes)
        p.skipWhitespace()
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        if p.i < bytes.count { throw p.fail("unexpected text after the end of the JSON value") }
        return v
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        func fail(_ message: String) -> SyntaxError {
            var line = 1, col = 1, k = 0
            while k < i && k < bytes.count {
                if bytes[k] == 0x0A { line += 1; col = 1 } else if bytes[k] & 0xC0 != 0x80 { col += 1 }
                k += 1
            }
            return SyntaxError(offset: i, line: line, column: col, message: message)
        }

        mutating func skipWhitespace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        mutating func value(depth: Int) throws(SyntaxError) -> Value {
            guard depth <= TokenizerJSON.maxDepth else { throw fail("nesting deeper than \(TokenizerJSON.maxDepth) levels") }
            guard i < bytes.count else { throw fail("the JSON ends early; expected a value") }
            switch bytes[i] {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw fail("expected a value")
            }
        }

        mutating func literal(_ word: String) throws(SyntaxError) {
            for b in word.utf8 {
                guard i < bytes.count, bytes[i] == b else { throw fail("invalid literal; expected \(word)") }
                i += 1
            }
        }

        mutating func object(depth: Int) throws(SyntaxError) -> Value {
            i += 1
            var members: [(key: String, value: Value)] = []
            skipWhitespace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try string()
                skipWhitespace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':' after an object key") }
                i += 1
                skipWhitespace()
                let v = try value(depth: depth)
                members.append((key, v))
                skipWhitespace()
                guard i < bytes.count else { throw fail("the JSON ends early; expected ',' or '}'") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw fail("expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) throws(SyntaxError) -> Value {
            i += 1
            var items: [Value] = []
            skipWhitespace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipWhitespace()
                items.append(try value(depth: depth))
                skipWhitespace()
                guard i < bytes.count else { throw fail("the JSON ends early; expected ',' or ']'") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        }

        mutating func number() throws(SyntaxError) -> Value {
            let start = i
            var isInteger = true
            if bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 else { throw fail("invalid number") }
            if bytes[i] == 0x30 {
                i += 1
            } else {
                while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                isInteger = false
                i += 1
                guard i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 else { throw fail("invalid number: no digit after '.'") }
                while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                isInteger = false
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 else { throw fail("invalid number: no digit in the exponent") }
                while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
            }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            guard let d = Double(text) else { throw fail("invalid number \(text)") }
            return .number(d, isInteger: isInteger)
        }

        mutating func hex4() throws(SyntaxError) -> UInt32 {
            guard i + 4 <= bytes.count else { throw fail("the JSON ends inside a \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw fail("invalid hex digit in a \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        mutating func string() throws(SyntaxError) -> String {
            i += 1  // opening quote
            let start = i
            // Fast path: no escapes, so the bytes are the string (validated as UTF-8 below).
            while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\"), bytes[i] >= 0x20 { i += 1 }
            guard i < bytes.count else { throw fail("the JSON ends inside a string") }
            if bytes[i] == UInt8(ascii: "\"") {
                let slice = bytes[start..<i]
                guard let s = String(validating: slice, as: UTF8.self) else { throw fail("a string is not valid UTF-8") }
                i += 1
                return s
            }
            var out: [UInt8] = Array(bytes[start..<i])
            while true {
                guard i < bytes.count else { throw fail("the JSON ends inside a string") }
                let c = bytes[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                if c < 0x20 { throw fail("a control character inside a string must be escaped") }
                if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
                i += 1
                guard i < bytes.count else { throw fail("the JSON ends inside an escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if code >= 0xD800 && code < 0xDC00 {
                        guard i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail("a lone surrogate in a \\u escape")
                        }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("a lone surrogate in a \\u escape") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if code >= 0xDC00 && code < 0xE000 {
                        throw fail("a lone surrogate in a \\u escape")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                    out.append(contentsOf: String(Character(scalar)).utf8)
                default:
                    throw fail("invalid escape in a string")
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw fail("a string is not valid UTF-8") }
            return s
        }
    }
}

/// A JSON value together with where it is, so that every complaint names the file and field.
struct JSONNode {
    let value: TokenizerJSON.Value
    let path: String
    let file: String

    func error(_ message: String, kind: TokenizerError.Kind = .invalidField) -> TokenizerError {
        TokenizerError(kind: kind, file: file, field: path, message: message)
    }

    func childPath(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    var isNull: Bool { if case .null = value { return true } else { return false } }

    /// Member `key`, or nil when absent or null.
    func optional(_ key: String) throws(TokenizerError) -> JSONNode? {
        guard case .object(let members) = value else { throw error("expected an object, found \(value.kindName)") }
        // The last of equal keys wins, as serde_json does for maps.
        guard let member = members.last(where: { $0.key.utf8.elementsEqual(key.utf8) }) else { return nil }
        if case .null = member.value { return nil }
        return JSONNode(value: member.value, path: childPath(key), file: file)
    }

    func required(_ key: String) throws(TokenizerError) -> JSONNode {
        guard let node = try optional(key) else {
            throw TokenizerError(kind: .invalidField, file: file, field: childPath(key), message: "missing (or null)")
        }
        return node
    }

    var string: String {
        get throws(TokenizerError) {
            guard case .string(let s) = value else { throw error("expected a string, found \(value.kindName)") }
            return s
        }
    }

    var bool: Bool {
        get throws(TokenizerError) {
            guard case .bool(let b) = value else { throw error("expected true or false, found \(value.kindName)") }
            return b
        }
    }

    var int: Int {
        get throws(TokenizerError) {
            guard case .number(let d, let isInteger) = value, isInteger, d >= -9.0e15, d <= 9.0e15 else {
                throw error("expected an integer, found \(value.kindName)")
            }
            return Int(d)
        }
    }

    var array: [JSONNode] {
        get throws(TokenizerError) {
            guard case .array(let items) = value else { throw error("expected an array, found \(value.kindName)") }
            var out: [JSONNode] = []
            out.reserveCapacity(items.count)
            for (k, v) in items.enumerated() { out.append(JSONNode(value: v, path: "\(path)[\(k)]", file: file)) }
            return out
        }
    }

    /// The members of an object in document order.
    var members: [(key: String, node: JSONNode)] {
        get throws(TokenizerError) {
            guard case .object(let items) = value else { throw error("expected an object, found \(value.kindName)") }
            var out: [(key: String, node: JSONNode)] = []
            out.reserveCapacity(items.count)
            for (k, v) in items { out.append((k, JSONNode(value: v, path: childPath(k), file: file))) }
            return out
        }
    }

    func bool(_ key: String, default def: Bool) throws(TokenizerError) -> Bool {
        guard let n = try optional(key) else { return def }
        return try n.bool
    }

    /// The component's `type` tag.
    var typeTag: String {
        get throws(TokenizerError) { try required("type").string }
    }
}
