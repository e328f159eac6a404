/// Hand-written scanners for the regular expressions that byte-level BPE tokenizers split text
/// with, exact to what Hugging Face `tokenizers` computes with Oniguruma (leftmost alternative
/// first, greedy with backtracking), and much faster than a general regex engine.
///
/// Character classes follow Oniguruma's Unicode definitions: `\p{L}` is general category
/// L (Lu Ll Lt Lm Lo), `\p{N}` is N (Nd Nl No), and `\s` is U+0009–U+000D, U+0085 and the
/// categories Zs, Zl, Zp (which is the White_Space property). `(?i:'s|…)` folds case per
/// Unicode simple case folding, so `'ſ` (U+017F) counts as `'s`.
enum SplitPattern: Sendable, Equatable {
    /// GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
    /// built into the ByteLevel pre-tokenizer.
    case gpt2
    /// Llama 3's `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// (`maxDigits` 3), and Qwen2's, which is the same with `\p{N}` (`maxDigits` 1).
    case llama3(maxDigits: Int)

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The scanner for a regex written in a tokenizer.json, or nil when it is not one of these.
    init?(regex: String) {
        switch regex {
        case Self.gpt2Source: self = .gpt2
        case Self.llama3Source: self = .llama3(maxDigits: 3)
        case Self.qwen2Source: self = .llama3(maxDigits: 1)
        default: return nil
        }
    }

    /// The end offsets of consecutive matches covering `s` from 0 (these patterns match every
    /// character, so the matches tile the input). Appends to `ends`.
    func matchEnds(_ s: [Unicode.Scalar], into ends: inout [Int]) {
        let classes = CharClass.classify(s)
        var i = 0
        while i < s.count {
            let end: Int
            switch self {
            case .gpt2: end = Self.nextGPT2(s, classes, i)
            case .llama3(let maxDigits): end = Self.nextLlama3(s, classes, i, maxDigits: maxDigits)
            }
            ends.append(end)
            i = end
        }
    }

    /// `\s+(?!\S)|\s+` at `i`, where `s[i]` is whitespace: the whole run at the end of the
    /// text; before a non-space, the run less its last character (which then starts the next
    /// match), or the single character when the run is one long.
    @inline(__always)
    private static func whitespaceRun(_ c: [UInt8], _ i: Int) -> Int {
        var k = i + 1
        while k < c.count && c[k] & CharClass.space != 0 { k += 1 }
        if k == c.count { return k }
        return k - i >= 2 ? k - 1 : k
    }

    private static func nextGPT2(_ s: [Unicode.Scalar], _ c: [UInt8], _ i: Int) -> Int {
        let n = s.count
        if s[i] == "'" && i + 1 < n {
            switch s[i + 1] {
            case "s", "t", "m", "d": return i + 2
            case "r" where i + 2 < n && s[i + 2] == "e": return i + 3
            case "v" where i + 2 < n && s[i + 2] == "e": return i + 3
            case "l" where i + 2 < n && s[i + 2] == "l": return i + 3
            default: break
            }
        }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional ASCII space, then a run of one class.
        let j = (s[i] == " " && i + 1 < n) ? i + 1 : i
        let cls = c[j]
        if cls & CharClass.letter != 0 || cls & CharClass.number != 0 || cls == 0 {
            let want = cls & (CharClass.letter | CharClass.number)
            var k = j + 1
            if want != 0 {
                while k < n && c[k] & want != 0 { k += 1 }
            } else {
                while k < n && c[k] == 0 { k += 1 }
            }
            return k
        }
        // Here s[i] is whitespace (a lone space before a space is handled by the run too).
        return whitespaceRun(c, i)
    }

    /// Unicode simple case folding of the letters in the contractions.
    @inline(__always)
    private static func foldContractionLetter(_ u: Unicode.Scalar) -> Unicode.Scalar {
        switch u.value {
        case 0x41...0x5A: return Unicode.Scalar(u.value + 0x20)!
        case 0x17F: return "s"  // LATIN SMALL LETTER LONG S folds to s
        default: return u
        }
    }

    private static func nextLlama3(_ s: [Unicode.Scalar], _ c: [UInt8], _ i: Int, maxDigits: Int) -> Int {
        let n = s.count
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if s[i] == "'" && i + 1 < n {
            switch foldContractionLetter(s[i + 1]) {
            case "s", "t", "m", "d": return i + 2
            case "r" where i + 2 < n && foldContractionLetter(s[i + 2]) == "e": return i + 3
            case "v" where i + 2 < n && foldContractionLetter(s[i + 2]) == "e": return i + 3
            case "l" where i + 2 < n && foldContractionLetter(s[i + 2]) == "l": return i + 3
            default: break
            }
        }
        let ci = c[i]
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if ci & CharClass.letter != 0 {
            var k = i + 1
            while k < n && c[k] & CharClass.letter != 0 { k += 1 }
            return k
        }
        if ci & (CharClass.newline | CharClass.number) == 0 && i + 1 < n && c[i + 1] & CharClass.letter != 0 {
            var k = i + 2
            while k < n && c[k] & CharClass.letter != 0 { k += 1 }
            return k
        }
        // \p{N}{1,maxDigits}
        if ci & CharClass.number != 0 {
            var k = i + 1
            while k < n && k - i < maxDigits && c[k] & CharClass.number != 0 { k += 1 }
            return k
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let j = (s[i] == " " && i + 1 < n) ? i + 1 : i
        if c[j] == 0 {
            var k = j + 1
            while k < n && c[k] == 0 { k += 1 }
            while k < n && c[k] & CharClass.newline != 0 { k += 1 }
            return k
        }
        // Whitespace from here on. `\s*[\r\n]+`: through the last CR/LF of the run, if any.
        var k = i
        var lastNewline = -1
        while k < n && c[k] & CharClass.space != 0 {
            if c[k] & CharClass.newline != 0 { lastNewline = k }
            k += 1
        }
        if lastNewline >= 0 { return lastNewline + 1 }
        return whitespaceRun(c, i)
    }
}

/// Per-character class bits used by the scanners. 0 means "none of these" (`[^\s\p{L}\p{N}]`).
enum CharClass {
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let space: UInt8 = 4
    /// CR or LF (always together with `space`).
    static let newline: UInt8 = 8

    static let ascii: [UInt8] = (0..<128).map { v in classifySlow(Unicode.Scalar(UInt8(v))) }

    static func classify(_ s: [Unicode.Scalar]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: s.count)
        let table = ascii
        for k in 0..<s.count {
            let v = s[k].value
            out[k] = v < 128 ? table[Int(v)] : classifySlow(s[k])
        }
        return out
    }

    @inline(__always)
    static func of(_ u: Unicode.Scalar) -> UInt8 {
        u.value < 128 ? ascii[Int(u.value)] : classifySlow(u)
    }

    static func classifySlow(_ u: Unicode.Scalar) -> UInt8 {
        switch u.value {
        case 0x0A, 0x0D: return space | newline
        case 0x09, 0x0B, 0x0C, 0x85: return space
        default: break
        }
        switch u.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        case .spaceSeparator, .lineSeparator, .paragraphSeparator: return space
        default: return 0
        }
    }

    /// Rust's `char::is_numeric` (general category Nd, Nl or No), used by the Digits pre-tokenizer.
    @inline(__always)
    static func isNumeric(_ u: Unicode.Scalar) -> Bool { of(u) & number != 0 }

    /// Rust `regex`'s `\s` (White_Space), used around added tokens.
    @inline(__always)
    static func isWhitespace(_ u: Unicode.Scalar) -> Bool { of(u) & space != 0 }

    /// Rust `regex`'s Unicode `\w`: Alphabetic, marks, decimal numbers, connector punctuation, join controls.
    static func isWordCharacter(_ u: Unicode.Scalar) -> Bool {
        let p = u.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }
}
