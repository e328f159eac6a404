/// Splits template source into tokens the way jinja2's lexer does with the settings
/// transformers uses (`trim_blocks=True`, `lstrip_blocks=True`, no `keep_trailing_newline`):
///
/// - `\r\n` and `\r` read as `\n`; one trailing newline of the template is dropped.
/// - `{%- … -%}`, `{{- … -}}`, `{#- … -#}` strip all whitespace on that side.
/// - trim_blocks: the first newline after `%}` or `#}` is dropped (`+%}` keeps it).
/// - lstrip_blocks: spaces and tabs from the start of a line up to `{%` or `{#` are dropped
///   (`{%+` keeps them); never before `{{`.
/// - `{% raw %}…{% endraw %}` is passed through as text.
struct TemplateToken {
    enum Kind: Equatable {
        case data, variableBegin, variableEnd, blockBegin, blockEnd
        case name, string, integer, float, op, eof
    }

    var kind: Kind
    /// Text for data, names, operators and (decoded) string literals.
    var text: String = ""
    var integer: Int = 0
    var float: Double = 0
    var position: SourcePosition
}

struct TemplateLexer {
    private let src: [Unicode.Scalar]
    private let lineStarts: [Int]

    init(source: String) {
        var normalized: [Unicode.Scalar] = []
        let raw = Array(source.unicodeScalars)
        normalized.reserveCapacity(raw.count)
        var i = 0
        while i < raw.count {
            if raw[i] == "\r" {
                normalized.append("\n")
                if i + 1 < raw.count && raw[i + 1] == "\n" { i += 1 }
            } else {
                normalized.append(raw[i])
            }
            i += 1
        }
        if normalized.last == "\n" { normalized.removeLast() }
        src = normalized
        var starts = [0]
        for (k, c) in normalized.enumerated() where c == "\n" { starts.append(k + 1) }
        lineStarts = starts
    }

    func position(of offset: Int) -> SourcePosition {
        // The last line start at or before offset.
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return SourcePosition(line: lo + 1, column: offset - lineStarts[lo] + 1)
    }

    private func error(_ message: String, at offset: Int) -> RenderError {
        RenderError(.syntax, message, at: position(of: offset))
    }

    private func at(_ i: Int) -> Unicode.Scalar? { i < src.count ? src[i] : nil }

    private func matches(_ literal: String, at i: Int) -> Bool {
        var k = i
        for c in literal.unicodeScalars {
            guard k < src.count, src[k] == c else { return false }
            k += 1
        }
        return true
    }

    private func skipSpaces(from i: Int) -> Int {
        var k = i
        while k < src.count && PyString.isSpace(src[k]) { k += 1 }
        return k
    }

    func tokenize() throws(RenderError) -> [TemplateToken] {
        var tokens: [TemplateToken] = []
        var pos = 0
        var lineStarting = true
        let n = src.count

        while pos < n {
            // The earliest "{{", "{%" or "{#".
            var start = pos
            var found = false
            while start + 1 < n {
                if src[start] == "{", src[start + 1] == "{" || src[start + 1] == "%" || src[start + 1] == "#" {
                    found = true
                    break
                }
                start += 1
            }
            guard found else {
                tokens.append(TemplateToken(kind: .data, text: Self.string(src[pos..<n]), position: position(of: pos)))
                break
            }
            let opener = src[start + 1]
            let raw = opener == "%" ? matchRawBegin(at: start) : nil
            var signIndex = start + 2
            if raw == nil, let s = at(signIndex), s == "-" || s == "+" {
                signIndex += 1
            }
            let sign: Unicode.Scalar? = raw?.sign ?? (signIndex > start + 2 ? src[start + 2] : nil)

            var text = Array(src[pos..<start])
            if sign == "-" {
                while let last = text.last, PyString.isSpace(last) { text.removeLast() }
            } else if sign != "+" && opener != "{" {
                // lstrip_blocks: only whitespace between the line start and the tag.
                let lineStart = (text.lastIndex(of: "\n").map { $0 + 1 }) ?? 0
                if lineStart > 0 || lineStarting {
                    let rest = text[lineStart...]
                    if !rest.isEmpty && rest.allSatisfy(PyString.isSpace) { text.removeSubrange(lineStart...) }
                }
            }
            if !text.isEmpty {
                tokens.append(TemplateToken(kind: .data, text: Self.string(text[...]), position: position(of: pos)))
            }

            if let raw {
                let (body, end) = try lexRaw(from: raw.end, openedAt: start)
                if !body.isEmpty {
                    tokens.append(TemplateToken(kind: .data, text: Self.string(body[...]), position: position(of: raw.end)))
                }
                pos = end
                lineStarting = end > 0 && src[end - 1] == "\n"
                continue
            }

            switch opener {
            case "#":
                pos = try skipComment(from: signIndex, openedAt: start)
                lineStarting = pos > 0 && src[pos - 1] == "\n"
            default:
                let isBlock = opener == "%"
                tokens.append(TemplateToken(kind: isBlock ? .blockBegin : .variableBegin, position: position(of: start)))
                pos = try lexTag(from: signIndex, isBlock: isBlock, openedAt: start, into: &tokens)
                lineStarting = src[pos - 1] == "\n"
            }
        }
        tokens.append(TemplateToken(kind: .eof, position: position(of: n)))
        return tokens
    }

    static func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    /// `{%(-|+|)\s*raw\s*(-%}\s*|%})`: where the raw text starts, and the opener's sign.
    private func matchRawBegin(at start: Int) -> (end: Int, sign: Unicode.Scalar?)? {
        var k = start + 2
        var sign: Unicode.Scalar? = nil
        if let s = at(k), s == "-" || s == "+" { sign = s; k += 1 }
        k = skipSpaces(from: k)
        guard matches("raw", at: k) else { return nil }
        k = skipSpaces(from: k + 3)
        if matches("-%}", at: k) { return (skipSpaces(from: k + 3), sign) }
        if matches("%}", at: k) { return (k + 2, sign) }
        return nil
    }

    /// The text up to `{% endraw %}` (with its whitespace control) and the offset after it.
    private func lexRaw(from begin: Int, openedAt: Int) throws(RenderError) -> ([Unicode.Scalar], Int) {
        var k = begin
        while k + 1 < src.count {
            if src[k] == "{" && src[k + 1] == "%" {
                var j = k + 2
                var sign: Unicode.Scalar? = nil
                if let s = at(j), s == "-" || s == "+" { sign = s; j += 1 }
                j = skipSpaces(from: j)
                if matches("endraw", at: j) {
                    j = skipSpaces(from: j + 6)
                    var end: Int? = nil
                    if matches("+%}", at: j) { end = j + 3 }
                    else if matches("-%}", at: j) { end = skipSpaces(from: j + 3) }
                    else if matches("%}", at: j) { end = j + 2 + (at(j + 2) == "\n" ? 1 : 0) }
                    if let end {
                        var body = Array(src[begin..<k])
                        if sign == "-" {
                            while let last = body.last, PyString.isSpace(last) { body.removeLast() }
                        } else if sign != "+" {
                            let lineStart = (body.lastIndex(of: "\n").map { $0 + 1 }) ?? 0
                            // jinja2 never counts the raw body as starting a line.
                            if lineStart > 0 {
                                let rest = body[lineStart...]
                                if !rest.isEmpty && rest.allSatisfy(PyString.isSpace) { body.removeSubrange(lineStart...) }
                            }
                        }
                        return (body, end)
                    }
                }
            }
            k += 1
        }
        throw error("missing end of raw directive ({% endraw %})", at: openedAt)
    }

    private func skipComment(from begin: Int, openedAt: Int) throws(RenderError) -> Int {
        var k = begin
        while k < src.count {
            if src[k] == "+" && matches("#}", at: k + 1) { return k + 3 }
            if src[k] == "-" && matches("#}", at: k + 1) { return skipSpaces(from: k + 3) }
            if matches("#}", at: k) { return k + 2 + (at(k + 2) == "\n" ? 1 : 0) }
            k += 1
        }
        throw error("missing end of comment tag (#})", at: openedAt)
    }

    /// The tokens of one `{% … %}` or `{{ … }}` tag; returns the offset after its end.
    private func lexTag(from begin: Int, isBlock: Bool, openedAt: Int, into tokens: inout [TemplateToken]) throws(RenderError) -> Int {
        var k = begin
        var balance: [Unicode.Scalar] = []
        while true {
            guard k < src.count else {
                throw error("unexpected end of template: the tag opened here is not closed with \(isBlock ? "%}" : "}}")", at: openedAt)
            }
            if balance.isEmpty {
                if isBlock {
                    if src[k] == "+" && matches("%}", at: k + 1) {
                        tokens.append(TemplateToken(kind: .blockEnd, position: position(of: k)))
                        return k + 3
                    }
                    if src[k] == "-" && matches("%}", at: k + 1) {
                        tokens.append(TemplateToken(kind: .blockEnd, position: position(of: k)))
                        return skipSpaces(from: k + 3)
                    }
                    if matches("%}", at: k) {
                        tokens.append(TemplateToken(kind: .blockEnd, position: position(of: k)))
                        return k + 2 + (at(k + 2) == "\n" ? 1 : 0)
                    }
                } else {
                    if src[k] == "-" && matches("}}", at: k + 1) {
                        tokens.append(TemplateToken(kind: .variableEnd, position: position(of: k)))
                        return skipSpaces(from: k + 3)
                    }
                    if matches("}}", at: k) {
                        tokens.append(TemplateToken(kind: .variableEnd, position: position(of: k)))
                        return k + 2
                    }
                }
            }
            let c = src[k]
            if PyString.isSpace(c) {
                k = skipSpaces(from: k)
                continue
            }
            let here = position(of: k)
            if let (end, value) = matchFloat(at: k) {
                tokens.append(TemplateToken(kind: .float, float: value, position: here))
                k = end
                continue
            }
            if let end = matchInteger(at: k) {
                let digits = String(String.UnicodeScalarView(src[k..<end].filter { $0 != "_" }))
                var value: Int?
                let lower = digits.lowercased()
                if lower.hasPrefix("0x") { value = Int(lower.dropFirst(2), radix: 16) }
                else if lower.hasPrefix("0o") { value = Int(lower.dropFirst(2), radix: 8) }
                else if lower.hasPrefix("0b") { value = Int(lower.dropFirst(2), radix: 2) }
                else { value = Int(digits) }
                guard let value else { throw error("integer literal \(digits) is too large", at: k) }
                tokens.append(TemplateToken(kind: .integer, integer: value, position: here))
                k = end
                continue
            }
            if Self.isNameStart(c) {
                var end = k + 1
                while end < src.count && Self.isNameContinue(src[end]) { end += 1 }
                tokens.append(TemplateToken(kind: .name, text: Self.string(src[k..<end]), position: here))
                k = end
                continue
            }
            if c == "'" || c == "\"" {
                var end = k + 1
                var closed = false
                while end < src.count {
                    if src[end] == "\\" { end += 2; continue }
                    if src[end] == c { closed = true; break }
                    end += 1
                }
                if closed {
                    let value = try decodeEscapes(src[(k + 1)..<end], at: k)
                    tokens.append(TemplateToken(kind: .string, text: value, position: here))
                    k = end + 1
                    continue
                }
                throw error("unterminated string literal", at: k)
            }
            if let op = matchOperator(at: k) {
                switch op {
                case "{": balance.append("}")
                case "(": balance.append(")")
                case "[": balance.append("]")
                case "}", ")", "]":
                    guard let expected = balance.popLast() else { throw error("unexpected '\(op)'", at: k) }
                    guard String(expected) == op else { throw error("unexpected '\(op)', expected '\(expected)'", at: k) }
                default: break
                }
                tokens.append(TemplateToken(kind: .op, text: op, position: here))
                k += op.unicodeScalars.count
                continue
            }
            throw error("unexpected character '\(c)'", at: k)
        }
    }

    private static let operators = ["//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")",
                                    "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"]

    private func matchOperator(at k: Int) -> String? {
        Self.operators.first { matches($0, at: k) }
    }

    private static func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 48 && c.value <= 57 }

    static func isNameStart(_ c: Unicode.Scalar) -> Bool {
        c == "_" || c.properties.isAlphabetic
    }

    static func isNameContinue(_ c: Unicode.Scalar) -> Bool {
        c == "_" || c.properties.isAlphabetic || c.properties.numericType == .decimal
            || c.properties.generalCategory == .nonspacingMark || c.properties.generalCategory == .spacingMark
            || c.properties.generalCategory == .connectorPunctuation
    }

    /// `(\d+_)*\d+`: digits with single underscores between them.
    private func matchDigits(at k: Int) -> Int? {
        guard let c = at(k), Self.isDigit(c) else { return nil }
        var p = k
        while true {
            while let c = at(p), Self.isDigit(c) { p += 1 }
            if at(p) == "_", let d = at(p + 1), Self.isDigit(d) { p += 1; continue }
            return p
        }
    }

    private func matchExponent(at k: Int) -> Int? {
        guard let e = at(k), e == "e" || e == "E" else { return nil }
        var p = k + 1
        if let s = at(p), s == "+" || s == "-" { p += 1 }
        return matchDigits(at: p)
    }

    /// jinja2's float_re: digits, then an exponent (with an optional fraction) or a fraction;
    /// never right after a dot (`x.0.1` is item access).
    private func matchFloat(at k: Int) -> (Int, Double)? {
        if k > 0 && src[k - 1] == "." { return nil }
        guard let intEnd = matchDigits(at: k) else { return nil }
        var end: Int? = nil
        if at(intEnd) == ".", let fracEnd = matchDigits(at: intEnd + 1) {
            end = matchExponent(at: fracEnd) ?? fracEnd
        } else if let expEnd = matchExponent(at: intEnd) {
            end = expEnd
        }
        guard let end else { return nil }
        let text = String(String.UnicodeScalarView(src[k..<end].filter { $0 != "_" }))
        guard let value = Double(text) else { return nil }
        return (end, value)
    }

    /// jinja2's integer_re: 0b/0o/0x forms, `[1-9](_?\d)*` or `0(_?0)*`.
    private func matchInteger(at k: Int) -> Int? {
        guard let c = at(k), Self.isDigit(c) else { return nil }
        func run(_ from: Int, _ ok: (Unicode.Scalar) -> Bool) -> Int? {
            var p = from
            var any = false
            while true {
                if let d = at(p), ok(d) { p += 1; any = true; continue }
                if at(p) == "_", let d = at(p + 1), ok(d) { p += 2; any = true; continue }
                break
            }
            return any ? p : nil
        }
        if c == "0", let x = at(k + 1) {
            switch x {
            case "b", "B": if let e = run(k + 2, { $0 == "0" || $0 == "1" }) { return e }
            case "o", "O": if let e = run(k + 2, { $0.value >= 48 && $0.value <= 55 }) { return e }
            case "x", "X": if let e = run(k + 2, { $0.properties.isASCIIHexDigit }) { return e }
            default: break
            }
        }
        if c != "0" {
            return run(k + 1, Self.isDigit) ?? k + 1
        }
        return run(k + 1, { $0 == "0" }) ?? k + 1
    }

    /// Python's `unicode-escape` decoding, as jinja2 applies it to string literals.
    private func decodeEscapes(_ body: ArraySlice<Unicode.Scalar>, at offset: Int) throws(RenderError) -> String {
        var out = String.UnicodeScalarView()
        let s = Array(body)
        var i = 0
        func hex(_ count: Int, _ what: String) throws(RenderError) -> Unicode.Scalar {
            var v: UInt32 = 0
            for j in 0..<count {
                guard i + 1 + j < s.count, let d = Self.hexValue(s[i + 1 + j]) else {
                    throw error("truncated \\\(what) escape in a string literal", at: offset)
                }
                v = v * 16 + d
            }
            guard let scalar = Unicode.Scalar(v) else { throw error("illegal Unicode character in a string literal", at: offset) }
            i += count + 1
            return scalar
        }
        while i < s.count {
            let c = s[i]
            guard c == "\\", i + 1 < s.count else {
                out.append(c)
                i += 1
                continue
            }
            let e = s[i + 1]
            i += 1  // i now at the escape letter
            switch e {
            case "\n": i += 1
            case "\\": out.append("\\"); i += 1
            case "'": out.append("'"); i += 1
            case "\"": out.append("\""); i += 1
            case "a": out.append("\u{07}"); i += 1
            case "b": out.append("\u{08}"); i += 1
            case "f": out.append("\u{0C}"); i += 1
            case "n": out.append("\n"); i += 1
            case "r": out.append("\r"); i += 1
            case "t": out.append("\t"); i += 1
            case "v": out.append("\u{0B}"); i += 1
            case "x": out.append(try hex(2, "xXX"))
            case "u": out.append(try hex(4, "uXXXX"))
            case "U": out.append(try hex(8, "UXXXXXXXX"))
            case "0"..."7":
                var v: UInt32 = 0
                var count = 0
                while count < 3, i < s.count, s[i].value >= 48, s[i].value <= 55 {
                    v = v * 8 + (s[i].value - 48)
                    i += 1
                    count += 1
                }
                out.append(Unicode.Scalar(v)!)
            case "N":
                throw RenderError(.unsupported, "\\N{…} escapes in string literals are not supported", at: position(of: offset))
            default:
                out.append("\\")
                if e.isASCII {
                    out.append(e)
                } else {
                    // Python first rewrites a non-ASCII character as \xNN / \uNNNN / \UNNNNNNNN;
                    // after a backslash that escape's own backslash is consumed, leaving its text.
                    let v = e.value
                    let text = v <= 0xFF ? "x" + PyString.hex(v, 2) : v <= 0xFFFF ? "u" + PyString.hex(v, 4) : "U" + PyString.hex(v, 8)
                    out.append(contentsOf: text.unicodeScalars)
                }
                i += 1
            }
        }
        return String(out)
    }

    private static func hexValue(_ c: Unicode.Scalar) -> UInt32? {
        switch c.value {
        case 48...57: return c.value - 48
        case 65...70: return c.value - 55
        case 97...102: return c.value - 87
        default: return nil
        }
    }
}
