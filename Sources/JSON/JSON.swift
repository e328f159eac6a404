/// The one strict RFC 8259 JSON reader (safetensors headers and index files, tokenizer.json,
/// config.json, HTTP bodies) and string escaper of weightfs.
///
/// Foundation's JSONSerialization keeps one of two equal keys without a word, loses key order,
/// and its `String` keys compare by Unicode canonical equivalence, so two vocabulary entries
/// that differ only in normalization (NFC and NFD spellings) would collapse into one. This
/// reader keeps members in document order with their exact code points, compares keys as
/// bytes, rejects (or, by the caller's policy, keeps) duplicate keys at any depth, and rejects
/// invalid UTF-8, lone surrogates, control characters in strings, leading zeros, nesting deeper
/// than `maxDepth`, and anything but whitespace after the value. It never traps: every index is
/// checked and integer conversion reports overflow.
public enum JSON {
    /// serde_json's default recursion limit; deeper input is rejected rather than risking the stack.
    public static let maxDepth = 128

    /// What an object naming one key twice (compared as bytes) is.
    public enum DuplicateKeys: Sendable {
        /// An error: readers disagree on which entry wins (safetensors headers).
        case reject
        /// Every member is kept in document order; readers take the last, as serde_json does
        /// for maps (tokenizer.json, config.json).
        case keep
    }

    /// A number as written, plus its exact value when it is an integer literal that fits Int64.
    /// A number as written, plus its exact value when it is an integer literal that fits Int64.
    public struct Number: Equatable, Sendable {
        public var text: String
        /// No fraction and no exponent.
        public var isIntegerLiteral: Bool
        public var isNegative: Bool
        /// The value of an integer literal, nil when it does not fit Int64 or is not an integer literal.
        public var integer: Int64?

        public init(text: String, isIntegerLiteral: Bool, isNegative: Bool, integer: Int64?) {
            self.text = text
            self.isIntegerLiteral = isIntegerLiteral
            self.isNegative = isNegative
            self.integer = integer
        }

        /// The nearest Double (a valid JSON number always parses; huge ones are ±infinity).
        public var double: Double { Double(text) ?? .nan }

        /// The value when it is an integer, written as one or not (`3`, `3.0`, `3e0`) and exactly
        /// representable; nil otherwise.
        public var exactInteger: Int64? {
            if let integer { return integer }
            let d = double
            return d.rounded() == d ? Int64(exactly: d) : nil
        }

        /// `text`, cut short for messages (a fuzzed header can hold a megabyte of digits).
        public var shortText: String { text.count > 40 ? String(text.prefix(40)) + "…" : text }
    }

    public struct Member: Equatable, Sendable {
        public var key: String
        public var value: Value
        public init(key: String, value: Value) {
            self.key = key
            self.value = value
        }
    }

    public indirect enum Value: Equatable, Sendable {
        case null
        case bool(Bool)
        case number(Number)
        case string(String)
        case array([Value])
        case object([Member])

        /// How a message names this kind of value.
        public var kindName: String {
            switch self {
            case .null: return "null"
            case .bool: return "a boolean"
            case .number(let n): return "the number \(n.shortText)"
            case .string: return "a string"
            case .array: return "an array"
            case .object: return "an object"
            }
        }

        /// The value of member `key` (compared as bytes; the last of equal keys, as serde_json),
        /// when this is an object that has one.
        public subscript(key: String) -> Value? {
            guard case .object(let members) = self else { return nil }
            return members.last { $0.key.utf8.elementsEqual(key.utf8) }?.value
        }

        /// Compact JSON text, for echoing a value in a message or a metadata map.
        public var compactText: String {
            switch self {
            case .null: return "null"
            case .bool(let b): return b ? "true" : "false"
            case .number(let n): return n.text
            case .string(let s): return JSON.quoted(s)
            case .array(let items): return "[" + items.map(\.compactText).joined(separator: ",") + "]"
            case .object(let members):
                return "{" + members.map { JSON.quoted($0.key) + ":" + $0.value.compactText }.joined(separator: ",") + "}"
            }
        }
    }

    public enum ParseError: Error, Equatable, Sendable {
        /// Byte `offset` starts a sequence that is not UTF-8.
        case invalidUTF8(offset: Int)
        /// `path` is the chain of object keys (array positions as "[i]") leading to the problem.
        case syntax(offset: Int, path: [String], message: String)
        /// The object at `path` names `key` a second time at `offset`.
        case duplicateKey(offset: Int, path: [String], key: String)

        public var offset: Int {
            switch self {
            case .invalidUTF8(let o), .syntax(let o, _, _), .duplicateKey(let o, _, _): return o
            }
        }

        /// What is wrong, without the position.
        public var message: String {
            switch self {
            case .invalidUTF8: return "invalid UTF-8"
            case .syntax(_, _, let message): return message
            case .duplicateKey(_, _, let key): return "duplicate key \(JSON.quoted(key))"
            }
        }
    }

    /// The 1-based line and column (in characters) of byte `offset`, for messages about text files.
    public static func lineAndColumn(of offset: Int, in bytes: [UInt8]) -> (line: Int, column: Int) {
        var line = 1, column = 1, k = 0
        while k < offset && k < bytes.count {
            if bytes[k] == 0x0A { line += 1; column = 1 } else if bytes[k] & 0xC0 != 0x80 { column += 1 }
            k += 1
        }
        return (line, column)
    }

    /// Parses `bytes` as exactly one JSON value, surrounded by optional whitespace.
    public static func parse(_ bytes: [UInt8], duplicateKeys: DuplicateKeys = .reject) throws(ParseError) -> Value {
        if let bad = firstInvalidUTF8(bytes) { throw .invalidUTF8(offset: bad) }
        var parser = Parser(bytes: bytes, duplicateKeys: duplicateKeys)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.i < bytes.count {
            throw .syntax(offset: parser.i, path: [], message: "unexpected \(describeByte(bytes[parser.i])) after the end of the JSON value")
        }
        return value
    }

    /// What a lead byte of a well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
    /// surrogates, nothing above U+10FFFF) asks of the bytes after it: how many continuation
    /// bytes, and the range the first of them must lie in. Nil for ASCII, a continuation byte or
    /// a byte that never starts a sequence.
    public static func utf8Lead(_ c: UInt8) -> (continuations: Int, first: ClosedRange<UInt8>)? {
        switch c {
        case 0xC2...0xDF: return (1, 0x80...0xBF)
        case 0xE0: return (2, 0xA0...0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: return (2, 0x80...0xBF)
        case 0xED: return (2, 0x80...0x9F)
        case 0xF0: return (3, 0x90...0xBF)
        case 0xF1...0xF3: return (3, 0x80...0xBF)
        case 0xF4: return (3, 0x80...0x8F)
        default: return nil
        }
    }

    /// The offset of the first byte that does not start or continue a well-formed UTF-8
    /// sequence (no overlong forms, no surrogates, nothing above U+10FFFF); nil when all are fine.
    public static func firstInvalidUTF8(_ b: [UInt8]) -> Int? {
        var i = 0
        let n = b.count
        while i < n {
            let c = b[i]
            if c < 0x80 { i += 1; continue }
            guard let (need, first) = utf8Lead(c) else { return i }
            let lo = first.lowerBound, hi = first.upperBound
            guard i + need < n else { return i }
            guard b[i + 1] >= lo, b[i + 1] <= hi else { return i }
            var k = 2
            while k <= need {
                guard b[i + k] & 0xC0 == 0x80 else { return i }
                k += 1
            }
            i += need + 1
        }
        return nil
    }

    public static func describeByte(_ c: UInt8) -> String {
        if c >= 0x21 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x" + String(c, radix: 16, uppercase: true).leftPadded(to: 2)
    }

    /// `s` as a JSON string literal: `"`, `\\`, `\n`, `\r`, `\t` escaped by name, other control
    /// characters as `\\uXXXX`. `shortControlEscapes` also writes `\\b` and `\\f` by name (Python's
    /// `json.dumps`, which chat templates' `tojson` follows); `ensureASCII` escapes everything
    /// past U+007E, astral characters as surrogate pairs (Python's default).
    public static func quoted(_ s: String, shortControlEscapes: Bool = false, ensureASCII: Bool = false) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}" where shortControlEscapes: out += "\\b"
            case "\u{0C}" where shortControlEscapes: out += "\\f"
            case _ where scalar.value < 0x20 || (ensureASCII && scalar.value > 0x7E):
                if scalar.value > 0xFFFF {
                    let v = scalar.value - 0x10000
                    out += "\\u" + hex4(0xD800 + (v >> 10)) + "\\u" + hex4(0xDC00 + (v & 0x3FF))
                } else {
                    out += "\\u" + hex4(scalar.value)
                }
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    private static func hex4(_ v: UInt32) -> String { String(v, radix: 16).leftPadded(to: 4) }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0
        let duplicateKeys: DuplicateKeys
        /// Keys of the objects we are inside, for naming where a problem is.
        var path: [String] = []

        init(bytes: [UInt8], duplicateKeys: DuplicateKeys) {
            self.bytes = bytes
            self.duplicateKeys = duplicateKeys
        }

        func fail(_ message: String, at offset: Int? = nil) -> ParseError {
            .syntax(offset: offset ?? i, path: path, message: message)
        }

        func unexpected(_ expecting: String) -> ParseError {
            guard i < bytes.count else { return fail("the JSON ends early; expected \(expecting)") }
            return fail("expected \(expecting), found \(JSON.describeByte(bytes[i]))")
        }

        mutating func skipWhitespace() {
            while i < bytes.count {
                switch bytes[i] {
                case 0x20, 0x09, 0x0A, 0x0D: i += 1
                default: return
                }
            }
        }

        mutating func parseValue(depth: Int) throws(ParseError) -> Value {
            guard i < bytes.count else { throw unexpected("a value") }
            switch bytes[i] {
            case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
            case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
            default: throw unexpected("a value")
            }
        }

        mutating func literal(_ word: StaticString) throws(ParseError) {
            let start = i
            let count = word.utf8CodeUnitCount
            guard bytes.count - i >= count else { throw fail("invalid literal; expected \(word)", at: start) }
            for k in 0..<count where bytes[i + k] != word.utf8Start[k] {
                throw fail("invalid literal; expected \(word)", at: start)
            }
            i += count
        }

        mutating func parseObject(depth: Int) throws(ParseError) -> Value {
            guard depth <= JSON.maxDepth else { throw fail("nesting deeper than \(JSON.maxDepth) levels") }
            i += 1  // {
            var members: [Member] = []
            // Small objects (a tensor entry) are checked for duplicates by a scan; big ones (the
            // header itself, thousands of tensors) by a set, so neither allocates needlessly.
            // Keys compare as bytes: NFC and NFD spellings are two keys.
            var seen: Set<[UInt8]>? = nil
            skipWhitespace()
            if i < bytes.count && bytes[i] == UInt8(ascii: "}") { i += 1; return .object([]) }
            while true {
                skipWhitespace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw unexpected("a string key") }
                let keyOffset = i
                let key = try parseString()
                if duplicateKeys == .reject {
                    let duplicate: Bool
                    if seen != nil {
                        duplicate = !seen!.insert(Array(key.utf8)).inserted  // in place: no copy of the set
                    } else {
                        duplicate = members.contains { $0.key.utf8.elementsEqual(key.utf8) }
                        if members.count >= 15 { seen = Set(members.map { Array($0.key.utf8) } + [Array(key.utf8)]) }
                    }
                    if duplicate { throw .duplicateKey(offset: keyOffset, path: path, key: key) }
                }
                skipWhitespace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw unexpected("':' after the key") }
                i += 1
                skipWhitespace()
                path.append(key)
                let value = try parseValue(depth: depth)
                path.removeLast()
                members.append(Member(key: key, value: value))
                skipWhitespace()
                guard i < bytes.count else { throw unexpected("',' or '}'") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw unexpected("',' or '}'")
            }
        }

        mutating func parseArray(depth: Int) throws(ParseError) -> Value {
            guard depth <= JSON.maxDepth else { throw fail("nesting deeper than \(JSON.maxDepth) levels") }
            i += 1  // [
            var items: [Value] = []
            skipWhitespace()
            if i < bytes.count && bytes[i] == UInt8(ascii: "]") { i += 1; return .array([]) }
            while true {
                skipWhitespace()
                path.append("[\(items.count)]")
                let value = try parseValue(depth: depth)
                path.removeLast()
                items.append(value)
                skipWhitespace()
                guard i < bytes.count else { throw unexpected("',' or ']'") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw unexpected("',' or ']'")
            }
        }

        mutating func parseString() throws(ParseError) -> String {
            let open = i
            i += 1  // "
            let start = i
            // Fast path: no escapes, the usual case for tensor names and dtypes.
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    return String(decoding: bytes[start..<(i - 1)], as: UTF8.self)
                }
                if c == UInt8(ascii: "\\") { break }
                if c < 0x20 { throw fail("control character \(JSON.describeByte(c)) inside a string; it must be escaped") }
                i += 1
            }
            var out = Array(bytes[start..<i])
            while true {
                guard i < bytes.count else { throw fail("unterminated string", at: open) }
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    return String(decoding: out, as: UTF8.self)
                }
                if c < 0x20 { throw fail("control character \(JSON.describeByte(c)) inside a string; it must be escaped") }
                if c != UInt8(ascii: "\\") {
                    out.append(c)
                    i += 1
                    continue
                }
                let escapeStart = i
                i += 1
                guard i < bytes.count else { throw fail("unterminated string", at: open) }
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
                    let unit = try hex4(escapeStart)
                    var scalarValue = UInt32(unit)
                    if (0xDC00...0xDFFF).contains(unit) {
                        throw fail("lone low surrogate \\u\(String(unit, radix: 16)) (not valid Unicode)", at: escapeStart)
                    }
                    if (0xD800...0xDBFF).contains(unit) {
                        guard bytes.count - i >= 2, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail("high surrogate \\u\(String(unit, radix: 16)) not followed by a low surrogate", at: escapeStart)
                        }
                        i += 2
                        let low = try hex4(escapeStart)
                        guard (0xDC00...0xDFFF).contains(low) else {
                            throw fail("high surrogate \\u\(String(unit, radix: 16)) followed by \\u\(String(low, radix: 16)), not a low surrogate", at: escapeStart)
                        }
                        scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                    }
                    // Surrogates were handled above, so this always succeeds.
                    guard let scalar = Unicode.Scalar(scalarValue) else { throw fail("invalid \\u escape", at: escapeStart) }
                    UTF8.encode(scalar) { out.append($0) }
                default:
                    throw fail("invalid escape \\\(Character(Unicode.Scalar(e))) in a string", at: escapeStart)
                }
            }
        }

        /// Four hex digits at `i`, as a UTF-16 code unit.
        mutating func hex4(_ escapeStart: Int) throws(ParseError) -> UInt16 {
            guard bytes.count - i >= 4 else { throw fail("\\u escape needs four hex digits", at: escapeStart) }
            var v: UInt16 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
                default: throw fail("\\u escape needs four hex digits", at: escapeStart)
                }
                v = v << 4 | UInt16(d)
                i += 1
            }
            return v
        }

        mutating func parseNumber() throws(ParseError) -> Number {
            let start = i
            let negative = bytes[i] == UInt8(ascii: "-")
            if negative { i += 1 }
            func isDigit(_ k: Int) -> Bool { k < bytes.count && bytes[k] >= UInt8(ascii: "0") && bytes[k] <= UInt8(ascii: "9") }
            guard isDigit(i) else { throw fail("a number needs a digit after '-'", at: start) }
            let intStart = i
            if bytes[i] == UInt8(ascii: "0") {
                i += 1
                if isDigit(i) { throw fail("a number cannot have a leading zero", at: start) }
            } else {
                while isDigit(i) { i += 1 }
            }
            let intEnd = i
            var integerLiteral = true
            if i < bytes.count && bytes[i] == UInt8(ascii: ".") {
                integerLiteral = false
                i += 1
                guard isDigit(i) else { throw fail("a number needs digits after '.'", at: start) }
                while isDigit(i) { i += 1 }
            }
            if i < bytes.count && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
                integerLiteral = false
                i += 1
                if i < bytes.count && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
                guard isDigit(i) else { throw fail("a number needs digits in its exponent", at: start) }
                while isDigit(i) { i += 1 }
            }
            var value: Int64? = nil
            if integerLiteral {
                var v: Int64 = 0
                var overflow = false
                for k in intStart..<intEnd where !overflow {
                    let digit = Int64(bytes[k] - UInt8(ascii: "0"))
                    let (times10, o1) = v.multipliedReportingOverflow(by: 10)
                    let (next, o2) = negative ? times10.subtractingReportingOverflow(digit) : times10.addingReportingOverflow(digit)
                    overflow = o1 || o2
                    v = next
                }
                value = overflow ? nil : v
            }
            return Number(
                text: String(decoding: bytes[start..<i], as: UTF8.self),
                isIntegerLiteral: integerLiteral, isNegative: negative, integer: value
            )
        }
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
