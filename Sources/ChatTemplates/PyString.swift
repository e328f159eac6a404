/// Python `str` semantics on Swift strings. Python strings are sequences of code points and
/// compare code point by code point, while Swift's `String ==` and `count` work on
/// canonically equivalent grapheme clusters; everything here works on Unicode scalars or
/// UTF-8 bytes (whose order is code point order) so that templates see what Python sees.
enum PyString {
    /// `str.isspace()`, and what `\s` matches in Python's `re`.
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    static func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }

    static func make<S: Sequence>(_ scalars: S) -> String where S.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    static func length(_ s: String) -> Int { s.unicodeScalars.count }

    static func equal(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

    static func less(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    static func hex(_ v: UInt32, _ width: Int) -> String {
        let h = String(v, radix: 16)
        return String(repeating: "0", count: max(0, width - h.count)) + h
    }

    // MARK: Searching

    /// Byte offsets of non-overlapping occurrences of `needle` in `hay`, left to right.
    static func occurrences(of needle: [UInt8], in hay: [UInt8], limit: Int = .max) -> [Int] {
        var found: [Int] = []
        guard !needle.isEmpty, needle.count <= hay.count else { return found }
        var i = 0
        let last = hay.count - needle.count
        while i <= last && found.count < limit {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) {
                found.append(i)
                i += needle.count
            } else {
                i += 1
            }
        }
        return found
    }

    static func contains(_ hay: String, _ needle: String) -> Bool {
        if needle.isEmpty { return true }
        return !occurrences(of: Array(needle.utf8), in: Array(hay.utf8), limit: 1).isEmpty
    }

    static func fromUTF8<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 { String(decoding: bytes, as: UTF8.self) }

    /// `str.find` / `str.rfind` as code point indices (-1 when absent).
    static func find(_ hay: String, _ needle: String, reverse: Bool) -> Int {
        let h = scalars(hay), n = scalars(needle)
        if n.count > h.count { return -1 }
        let starts = Array(0...(h.count - n.count))
        for i in (reverse ? starts.reversed() : starts) where h[i..<(i + n.count)].elementsEqual(n) { return i }
        return -1
    }

    static func count(_ hay: String, _ needle: String) -> Int {
        if needle.isEmpty { return length(hay) + 1 }
        return occurrences(of: Array(needle.utf8), in: Array(hay.utf8)).count
    }

    /// `str.replace(old, new, count)`; an empty `old` inserts `new` around every character.
    static func replace(_ s: String, _ old: String, _ new: String, count: Int = -1) -> String {
        let limit = count < 0 ? Int.max : count
        if old.isEmpty {
            var out = ""
            var n = 0
            for c in s.unicodeScalars {
                if n < limit { out += new; n += 1 }
                out.unicodeScalars.append(c)
            }
            if n < limit { out += new }
            return out
        }
        let hay = Array(s.utf8), needle = Array(old.utf8)
        let hits = occurrences(of: needle, in: hay, limit: limit)
        if hits.isEmpty { return s }
        var out: [UInt8] = []
        out.reserveCapacity(hay.count)
        var prev = 0
        for h in hits {
            out.append(contentsOf: hay[prev..<h])
            out.append(contentsOf: new.utf8)
            prev = h + needle.count
        }
        out.append(contentsOf: hay[prev...])
        return fromUTF8(out)
    }

    // MARK: Stripping and splitting

    static func strip(_ s: String, chars: String?, left: Bool, right: Bool) -> String {
        let set = chars.map { Set(scalars($0).map(\.value)) }
        func strippable(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c.value) } ?? isSpace(c) }
        var a = scalars(s)[...]
        if left { while let f = a.first, strippable(f) { a.removeFirst() } }
        if right { while let l = a.last, strippable(l) { a.removeLast() } }
        return make(a)
    }

    /// `str.split(sep, maxsplit)`; with no separator, runs of whitespace separate and empty
    /// strings are dropped.
    static func split(_ s: String, separator: String?, maxSplit: Int) -> [String] {
        let limit = maxSplit < 0 ? Int.max : maxSplit
        guard let separator else {
            var parts: [String] = []
            let c = scalars(s)
            var i = 0
            while i < c.count {
                while i < c.count && isSpace(c[i]) { i += 1 }
                if i == c.count { break }
                if parts.count == limit {
                    var end = c.count
                    while end > i && isSpace(c[end - 1]) { end -= 1 }
                    parts.append(make(c[i..<end]))
                    break
                }
                let start = i
                while i < c.count && !isSpace(c[i]) { i += 1 }
                parts.append(make(c[start..<i]))
            }
            return parts
        }
        let hay = Array(s.utf8), needle = Array(separator.utf8)
        var parts: [String] = []
        var prev = 0
        for h in occurrences(of: needle, in: hay, limit: limit) {
            parts.append(fromUTF8(hay[prev..<h]))
            prev = h + needle.count
        }
        parts.append(fromUTF8(hay[prev...]))
        return parts
    }

    static func rsplit(_ s: String, separator: String?, maxSplit: Int) -> [String] {
        if maxSplit < 0 { return split(s, separator: separator, maxSplit: -1) }
        guard let separator else {
            // Split from the right on whitespace runs.
            let c = scalars(s)
            var parts: [String] = []
            var i = c.count
            while i > 0 {
                while i > 0 && isSpace(c[i - 1]) { i -= 1 }
                if i == 0 { break }
                if parts.count == maxSplit {
                    var start = 0
                    while start < i && isSpace(c[start]) { start += 1 }
                    parts.append(make(c[start..<i]))
                    break
                }
                let end = i
                while i > 0 && !isSpace(c[i - 1]) { i -= 1 }
                parts.append(make(c[i..<end]))
            }
            return parts.reversed()
        }
        let hay = Array(s.utf8), needle = Array(separator.utf8)
        // The rightmost non-overlapping matches, found from the right.
        var cuts: [Int] = []
        var end = hay.count
        if needle.count <= hay.count {
            var i = hay.count - needle.count
            while i >= 0 && cuts.count < maxSplit {
                if i + needle.count <= end && hay[i..<(i + needle.count)].elementsEqual(needle) {
                    cuts.append(i)
                    end = i
                    i -= needle.count
                } else {
                    i -= 1
                }
            }
        }
        var parts: [String] = []
        var right = hay.count
        for c in cuts {
            parts.append(fromUTF8(hay[(c + needle.count)..<right]))
            right = c
        }
        parts.append(fromUTF8(hay[0..<right]))
        return parts.reversed()
    }

    static func isLineBreak(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029: return true
        default: return false
        }
    }

    /// `str.splitlines(keepends)`.
    static func splitLines(_ s: String, keepEnds: Bool = false) -> [String] {
        let c = scalars(s)
        var lines: [String] = []
        var start = 0
        var i = 0
        while i < c.count {
            if isLineBreak(c[i]) {
                var end = i + 1
                if c[i] == "\r" && i + 1 < c.count && c[i + 1] == "\n" { end += 1 }
                lines.append(make(c[start..<(keepEnds ? end : i)]))
                start = end
                i = end
            } else {
                i += 1
            }
        }
        if start < c.count { lines.append(make(c[start...])) }
        return lines
    }

    // MARK: Case

    static func upper(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars { out += c.properties.uppercaseMapping }
        return out
    }

    static func lower(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars { out += c.properties.lowercaseMapping }
        return out
    }

    static func isCased(_ c: Unicode.Scalar) -> Bool { c.properties.isCased }

    /// `str.capitalize()`: the first character in title case, the rest lower case.
    static func capitalize(_ s: String) -> String {
        var out = ""
        for (i, c) in s.unicodeScalars.enumerated() {
            out += i == 0 ? c.properties.titlecaseMapping : c.properties.lowercaseMapping
        }
        return out
    }

    /// `str.title()`: title case after an uncased character, lower case after a cased one.
    static func title(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for c in s.unicodeScalars {
            out += previousCased ? c.properties.lowercaseMapping : c.properties.titlecaseMapping
            previousCased = isCased(c)
        }
        return out
    }

    static func isLower(_ s: String) -> Bool {
        var cased = false
        for c in s.unicodeScalars {
            if c.properties.isUppercase || c.properties.generalCategory == .titlecaseLetter { return false }
            if c.properties.isLowercase { cased = true }
        }
        return cased
    }

    static func isUpper(_ s: String) -> Bool {
        var cased = false
        for c in s.unicodeScalars {
            if c.properties.isLowercase || c.properties.generalCategory == .titlecaseLetter { return false }
            if c.properties.isUppercase { cased = true }
        }
        return cased
    }

    // MARK: repr

    /// Python's `str.isprintable()` for one character.
    static func isPrintable(_ c: Unicode.Scalar) -> Bool {
        if c == " " { return true }
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            return false
        default:
            return true
        }
    }

    /// `repr(s)`: quoted with ' unless the text holds ' and no ", escapes for the rest.
    static func repr(_ s: String) -> String {
        let hasSingle = s.unicodeScalars.contains("'")
        let hasDouble = s.unicodeScalars.contains("\"")
        let quote: Unicode.Scalar = hasSingle && !hasDouble ? "\"" : "'"
        var out = String.UnicodeScalarView()
        out.append(quote)
        for c in s.unicodeScalars {
            switch c {
            case quote, "\\":
                out.append("\\")
                out.append(c)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            default:
                if c.value < 0x20 || c.value == 0x7F {
                    out.append(contentsOf: ("\\x" + hex(c.value, 2)).unicodeScalars)
                } else if c.value < 0x7F || isPrintable(c) {
                    out.append(c)
                } else if c.value <= 0xFF {
                    out.append(contentsOf: ("\\x" + hex(c.value, 2)).unicodeScalars)
                } else if c.value <= 0xFFFF {
                    out.append(contentsOf: ("\\u" + hex(c.value, 4)).unicodeScalars)
                } else {
                    out.append(contentsOf: ("\\U" + hex(c.value, 8)).unicodeScalars)
                }
            }
        }
        out.append(quote)
        return String(out)
    }

    // MARK: Numbers

    /// `repr(float)`: the shortest digits that round-trip, in fixed notation when the decimal
    /// exponent is in [-4, 16), otherwise as `1e-05` / `1.5e+16`.
    static func floatRepr(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description is also the shortest round-trip form; take its digits.
        var text = "\(d.magnitude)"
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...])!
            text = String(text[..<e])
        }
        var digits: String
        var pointIndex: Int
        if let dot = text.firstIndex(of: ".") {
            digits = String(text[..<dot]) + String(text[text.index(after: dot)...])
            pointIndex = text.distance(from: text.startIndex, to: dot)
        } else {
            digits = text
            pointIndex = text.count
        }
        // Normalize: strip leading zeros (moving the point) and trailing zeros.
        while digits.count > 1 && digits.first == "0" {
            digits.removeFirst()
            pointIndex -= 1
        }
        while digits.count > 1 && digits.last == "0" { digits.removeLast() }
        let decpt = pointIndex + exponent  // value = 0.DIGITS × 10^decpt
        var out = d < 0 ? "-" : ""
        if decpt > -4 && decpt <= 16 {
            if decpt <= 0 {
                out += "0." + String(repeating: "0", count: -decpt) + digits
            } else if decpt >= digits.count {
                out += digits + String(repeating: "0", count: decpt - digits.count) + ".0"
            } else {
                let i = digits.index(digits.startIndex, offsetBy: decpt)
                out += digits[..<i] + "." + digits[i...]
            }
        } else {
            let first = digits.prefix(1)
            let rest = digits.dropFirst()
            out += first + (rest.isEmpty ? "" : "." + rest)
            let e = decpt - 1
            out += "e" + (e < 0 ? "-" : "+") + (abs(e) < 10 ? "0" : "") + String(abs(e))
        }
        return out
    }
}
