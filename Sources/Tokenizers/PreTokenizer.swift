/// A piece of text on its way to the model: its characters, and whether it begins at the very
/// start of the input (Metaspace's `prepend_scheme: first` adds its marker only there).
struct TextPiece {
    var scalars: [Unicode.Scalar]
    var atTextStart: Bool
}

/// What happens to the matches of a Split pattern (`tokenizers`' SplitDelimiterBehavior).
enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

/// What Metaspace puts in front of a piece.
enum PrependScheme: String, Sendable {
    case always, first, never
}

/// The `pre_tokenizer` of a tokenizer.json: cuts normalized text into words, which BPE then
/// encodes one by one (merges never cross a word boundary).
indirect enum PreTokenizer: Sendable {
    case sequence([PreTokenizer])
    /// Optionally a leading space, the GPT-2 split, then each word's UTF-8 bytes spelled in the
    /// byte-level alphabet.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(SplitMatcher, behavior: SplitBehavior, invert: Bool)
    /// Each numeric character (`individual`) or each run of them becomes its own piece.
    case digits(individual: Bool)
    /// Spaces become `replacement`; optionally one is prepended; optionally split before each.
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme, split: Bool)

    /// How Split finds its matches.
    enum SplitMatcher: Sendable {
        case literal([Unicode.Scalar])
        case pattern(SplitPattern)
    }

    static let supportedTypes = "Sequence, ByteLevel, Split (a literal String, or the GPT-2 / Llama 3 / Qwen2 regex), Digits, Metaspace"

    static func parse(_ node: JSONNode) throws(TokenizerError) -> PreTokenizer {
        let type = try node.typeTag
        switch type {
        case "Sequence":
            return .sequence(try node.required("pretokenizers").array.map { (n) throws(TokenizerError) in try parse(n) })
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: try node.bool("add_prefix_space", default: true),
                              useRegex: try node.bool("use_regex", default: true))
        case "Split":
            let pattern = try node.required("pattern")
            let matcher: SplitMatcher
            if let literal = try pattern.optional("String") {
                let p = try literal.string
                if p.isEmpty { throw literal.error("an empty pattern") }
                matcher = .literal(Array(p.unicodeScalars))
            } else if let regex = try pattern.optional("Regex") {
                let source = try regex.string
                guard let known = SplitPattern(regex: source) else {
                    throw regex.error("this regex is not one this runtime implements (GPT-2's, Llama 3's or Qwen2's): \(source.prefix(200))", kind: .unsupported)
                }
                matcher = .pattern(known)
            } else {
                throw pattern.error("expected {\"String\": …} or {\"Regex\": …}")
            }
            let behaviorNode = try node.required("behavior")
            let name = try behaviorNode.string
            guard let behavior = SplitBehavior(rawValue: name) else {
                throw behaviorNode.error("unknown split behavior \"\(name)\" (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)")
            }
            return .split(matcher, behavior: behavior, invert: try node.bool("invert", default: false))
        case "Digits":
            return .digits(individual: try node.bool("individual_digits", default: false))
        case "Metaspace":
            let replacementNode = try node.required("replacement")
            let r = Array(try replacementNode.string.unicodeScalars)
            guard r.count == 1 else { throw replacementNode.error("expected one character") }
            var scheme = PrependScheme.always
            if let s = try node.optional("prepend_scheme") {
                let name = try s.string
                guard let parsed = PrependScheme(rawValue: name) else { throw s.error("unknown prepend_scheme \"\(name)\" (expected always, first or never)") }
                scheme = parsed
            } else if let add = try node.optional("add_prefix_space") {
                scheme = try add.bool ? .always : .never
            }
            return .metaspace(replacement: r[0], prependScheme: scheme, split: try node.bool("split", default: true))
        default:
            throw TokenizerError(kind: .unsupported, file: node.file, field: node.childPath("type"),
                                 message: "pre-tokenizer type \"\(type)\" is not supported (supported: \(supportedTypes))")
        }
    }

    /// Whether the words that come out are spelled in the byte-level alphabet.
    var producesByteLevel: Bool {
        switch self {
        case .byteLevel: return true
        case .sequence(let list): return list.contains { $0.producesByteLevel }
        default: return false
        }
    }

    func apply(_ pieces: inout [TextPiece]) {
        switch self {
        case .sequence(let list):
            for p in list { p.apply(&pieces) }
        case .byteLevel(let addPrefixSpace, let useRegex):
            var out: [TextPiece] = []
            out.reserveCapacity(pieces.count * 2)
            var ends: [Int] = []
            for var piece in pieces {
                if addPrefixSpace && piece.scalars.first != " " { piece.scalars.insert(" ", at: 0) }
                if useRegex {
                    ends.removeAll(keepingCapacity: true)
                    SplitPattern.gpt2.matchEnds(piece.scalars, into: &ends)
                    var start = 0
                    for end in ends {
                        out.append(TextPiece(scalars: ByteLevel.encode(piece.scalars[start..<end]), atTextStart: piece.atTextStart && start == 0))
                        start = end
                    }
                } else if !piece.scalars.isEmpty {
                    out.append(TextPiece(scalars: ByteLevel.encode(piece.scalars[...]), atTextStart: piece.atTextStart))
                }
            }
            pieces = out
        case .split(let matcher, let behavior, let invert):
            var out: [TextPiece] = []
            out.reserveCapacity(pieces.count * 2)
            var ends: [Int] = []
            for piece in pieces {
                let matches: [(range: Range<Int>, isMatch: Bool)]
                switch matcher {
                case .pattern(let p):
                    ends.removeAll(keepingCapacity: true)
                    p.matchEnds(piece.scalars, into: &ends)
                    var start = 0
                    var m: [(range: Range<Int>, isMatch: Bool)] = []
                    m.reserveCapacity(ends.count)
                    for end in ends { m.append((start..<end, true)); start = end }
                    matches = m
                case .literal(let lit):
                    matches = Self.literalMatches(piece.scalars, lit)
                }
                Self.splitPiece(piece, matches: invert ? matches.map { ($0.range, !$0.isMatch) } : matches, behavior: behavior, into: &out)
            }
            pieces = out
        case .digits(let individual):
            var out: [TextPiece] = []
            out.reserveCapacity(pieces.count)
            for piece in pieces {
                let matches = Self.predicateMatches(piece.scalars, CharClass.isNumeric)
                Self.splitPiece(piece, matches: matches, behavior: individual ? .isolated : .contiguous, into: &out)
            }
            pieces = out
        case .metaspace(let replacement, let scheme, let split):
            var out: [TextPiece] = []
            out.reserveCapacity(pieces.count * 2)
            for var piece in pieces {
                for k in piece.scalars.indices where piece.scalars[k] == " " { piece.scalars[k] = replacement }
                let prepend: Bool
                switch scheme {
                case .always: prepend = true
                case .first: prepend = piece.atTextStart
                case .never: prepend = false
                }
                if prepend && piece.scalars.first != replacement { piece.scalars.insert(replacement, at: 0) }
                if split {
                    let matches = Self.predicateMatches(piece.scalars) { $0 == replacement }
                    Self.splitPiece(piece, matches: matches, behavior: .mergedWithNext, into: &out)
                } else if !piece.scalars.isEmpty {
                    out.append(piece)
                }
            }
            pieces = out
        }
    }

    /// Each character satisfying `predicate` is a match of its own (as `tokenizers`' char patterns).
    static func predicateMatches(_ s: [Unicode.Scalar], _ predicate: (Unicode.Scalar) -> Bool) -> [(range: Range<Int>, isMatch: Bool)] {
        var out: [(range: Range<Int>, isMatch: Bool)] = []
        var last = 0
        for k in s.indices where predicate(s[k]) {
            if last < k { out.append((last..<k, false)) }
            out.append((k..<(k + 1), true))
            last = k + 1
        }
        if last < s.count { out.append((last..<s.count, false)) }
        return out
    }

    static func literalMatches(_ s: [Unicode.Scalar], _ lit: [Unicode.Scalar]) -> [(range: Range<Int>, isMatch: Bool)] {
        var out: [(range: Range<Int>, isMatch: Bool)] = []
        var last = 0
        var i = 0
        while i + lit.count <= s.count {
            if s[i] == lit[0] && s[i..<(i + lit.count)].elementsEqual(lit) {
                if last < i { out.append((last..<i, false)) }
                out.append((i..<(i + lit.count), true))
                i += lit.count
                last = i
            } else {
                i += 1
            }
        }
        if last < s.count { out.append((last..<s.count, false)) }
        return out
    }

    /// Cuts `piece` at `matches` (which tile it) as `behavior` says; empty pieces are dropped.
    static func splitPiece(_ piece: TextPiece, matches: [(range: Range<Int>, isMatch: Bool)], behavior: SplitBehavior, into out: inout [TextPiece]) {
        var spans: [Range<Int>] = []
        spans.reserveCapacity(matches.count)
        switch behavior {
        case .isolated:
            spans = matches.map(\.range)
        case .removed:
            spans = matches.filter { !$0.isMatch }.map(\.range)
        case .contiguous:
            var previous = false
            for m in matches {
                if m.isMatch == previous, let last = spans.last {
                    spans[spans.count - 1] = last.lowerBound..<m.range.upperBound
                } else {
                    spans.append(m.range)
                }
                previous = m.isMatch
            }
        case .mergedWithPrevious:
            var previous = false
            for m in matches {
                if m.isMatch && !previous, let last = spans.last {
                    spans[spans.count - 1] = last.lowerBound..<m.range.upperBound
                } else {
                    spans.append(m.range)
                }
                previous = m.isMatch
            }
        case .mergedWithNext:
            var previous = false
            for m in matches.reversed() {
                if m.isMatch && !previous, let last = spans.last {
                    spans[spans.count - 1] = m.range.lowerBound..<last.upperBound
                } else {
                    spans.append(m.range)
                }
                previous = m.isMatch
            }
            spans.reverse()
        }
        for span in spans where !span.isEmpty {
            out.append(TextPiece(scalars: Array(piece.scalars[span]), atTextStart: piece.atTextStart && span.lowerBound == 0))
        }
    }
}
