import Foundation

/// The `normalizer` of a tokenizer.json: rewrites text before it is split into words. Added
/// tokens with `normalized: false` are cut out of the text before this runs.
indirect enum Normalizer: Sendable {
    case sequence([Normalizer])
    case nfc, nfd, nfkc, nfkd
    case lowercase
    /// Every occurrence of `pattern` (a literal string) becomes `content`.
    case replace(pattern: [Unicode.Scalar], content: [Unicode.Scalar])
    /// `prefix` goes in front of any non-empty text.
    case prepend([Unicode.Scalar])
    /// Removes whitespace at either end.
    case strip(left: Bool, right: Bool)

    static func parse(_ node: JSONNode) throws(TokenizerError) -> Normalizer {
        let type = try node.typeTag
        switch type {
        case "Sequence":
            return .sequence(try node.required("normalizers").array.map { (n) throws(TokenizerError) in try parse(n) })
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Replace":
            let pattern = try node.required("pattern")
            let content = try node.required("content").string
            if let literal = try pattern.optional("String") {
                let p = try literal.string
                if p.isEmpty { throw literal.error("an empty pattern") }
                return .replace(pattern: Array(p.unicodeScalars), content: Array(content.unicodeScalars))
            }
            if try pattern.optional("Regex") != nil {
                throw pattern.error("Replace with a regex pattern is not supported (only a literal String pattern)", kind: .unsupported)
            }
            throw pattern.error("expected {\"String\": …} or {\"Regex\": …}")
        case "Prepend":
            return .prepend(Array(try node.required("prepend").string.unicodeScalars))
        case "Strip":
            return .strip(left: try node.bool("strip_left", default: true), right: try node.bool("strip_right", default: true))
        default:
            throw TokenizerError(kind: .unsupported, file: node.file, field: node.childPath("type"),
                                 message: "normalizer type \"\(type)\" is not supported (supported: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Replace with a String pattern, Prepend, Strip)")
        }
    }

    func apply(_ s: inout [Unicode.Scalar]) {
        switch self {
        case .sequence(let list):
            for n in list { n.apply(&s) }
        case .nfc: s = Self.mapString(s) { $0.precomposedStringWithCanonicalMapping }
        case .nfd: s = Self.mapString(s) { $0.decomposedStringWithCanonicalMapping }
        case .nfkc: s = Self.mapString(s) { $0.precomposedStringWithCompatibilityMapping }
        case .nfkd: s = Self.mapString(s) { $0.decomposedStringWithCompatibilityMapping }
        case .lowercase: s = Self.mapString(s) { $0.lowercased() }
        case .replace(let pattern, let content):
            s = replaceAll(s, pattern: pattern, with: content)
        case .prepend(let prefix):
            if !s.isEmpty { s.insert(contentsOf: prefix, at: 0) }
        case .strip(let left, let right):
            var lo = 0, hi = s.count
            if left { while lo < hi && CharClass.isWhitespace(s[lo]) { lo += 1 } }
            if right { while hi > lo && CharClass.isWhitespace(s[hi - 1]) { hi -= 1 } }
            if lo != 0 || hi != s.count { s = Array(s[lo..<hi]) }
        }
    }

    private static func mapString(_ s: [Unicode.Scalar], _ f: (String) -> String) -> [Unicode.Scalar] {
        // ASCII text is unchanged by the normalization forms; skip the round trip.
        if s.allSatisfy({ $0.value < 0x80 }), f("A") == "A" { return s }
        var str = String()
        str.unicodeScalars.append(contentsOf: s)
        return Array(f(str).unicodeScalars)
    }
}

/// `s` with every non-overlapping occurrence of `pattern`, left to right, replaced by `content`.
func replaceAll(_ s: [Unicode.Scalar], pattern: [Unicode.Scalar], with content: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard !pattern.isEmpty, s.count >= pattern.count else { return s }
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(s.count)
    var i = 0
    let first = pattern[0]
    while i < s.count {
        if s[i] == first && i + pattern.count <= s.count && s[i..<(i + pattern.count)].elementsEqual(pattern) {
            out.append(contentsOf: content)
            i += pattern.count
        } else {
            out.append(s[i])
            i += 1
        }
    }
    return out
}
