/// A token from `added_tokens`: matched literally in the text before anything else runs, so
/// that `<|im_start|>` is one id however the model would split its characters.
struct AddedToken: Sendable {
    let id: Int32
    let content: [Unicode.Scalar]
    let contentString: String
    let special: Bool
    /// Only matches when not inside a word (`\w` on neither side).
    let singleWord: Bool
    /// Takes the whitespace on its left (or right) into the match.
    let lstrip: Bool
    let rstrip: Bool
    /// Matched against the normalized text instead of the original.
    let normalized: Bool

    static func parse(_ node: JSONNode) throws(TokenizerError) -> AddedToken {
        let idNode = try node.required("id")
        let id = try idNode.int
        guard id >= 0, id < 16_777_216 else { throw idNode.error("a token id must be in 0..<16777216") }
        let contentNode = try node.required("content")
        let content = try contentNode.string
        if content.isEmpty { throw contentNode.error("an added token cannot be empty") }
        let special = try node.bool("special", default: false)
        return AddedToken(id: Int32(id), content: Array(content.unicodeScalars), contentString: content, special: special,
                          singleWord: try node.bool("single_word", default: false),
                          lstrip: try node.bool("lstrip", default: false),
                          rstrip: try node.bool("rstrip", default: false),
                          normalized: try node.bool("normalized", default: !special))
    }
}

/// Finds added tokens in text: at each position the longest token that starts there, leftmost
/// first, without overlaps (the Aho–Corasick "leftmost-longest" search `tokenizers` uses).
struct AddedTokenMatcher: Sendable {
    private var children: [[UInt32: Int32]] = [[:]]
    private var terminal: [Int32] = [-1]  // index into `tokens`, -1 for none
    let tokens: [AddedToken]

    init(_ tokens: [AddedToken]) {
        self.tokens = tokens
        for (index, token) in tokens.enumerated() {
            var node = 0
            for s in token.content {
                if let c = children[node][s.value] {
                    node = Int(c)
                } else {
                    children.append([:])
                    terminal.append(-1)
                    let c = Int32(children.count - 1)
                    children[node][s.value] = c
                    node = Int(c)
                }
            }
            // The first of equal contents wins; `tokenizers` would map both to one id anyway.
            if terminal[node] < 0 { terminal[node] = Int32(index) }
        }
    }

    var isEmpty: Bool { tokens.isEmpty }

    /// The longest token starting at `i`: (its index in `tokens`, the end of the match).
    @inline(__always)
    private func longest(_ s: [Unicode.Scalar], at i: Int) -> (token: Int, end: Int)? {
        guard let first = children[0][s[i].value] else { return nil }
        var node = Int(first)
        var best: (Int, Int)? = terminal[node] >= 0 ? (Int(terminal[node]), i + 1) : nil
        var k = i + 1
        while k < s.count, let c = children[node][s[k].value] {
            node = Int(c)
            k += 1
            if terminal[node] >= 0 { best = (Int(terminal[node]), k) }
        }
        return best
    }

    /// Splits `s[range]` into segments that are an added token (with its id) or plain text.
    func split(_ s: [Unicode.Scalar], _ range: Range<Int>) -> [(range: Range<Int>, id: Int32?)] {
        if tokens.isEmpty || range.isEmpty { return [(range, nil)] }
        var out: [(range: Range<Int>, id: Int32?)] = []
        var textStart = range.lowerBound
        var i = range.lowerBound
        while i < range.upperBound {
            // Only positions whose character begins some token can start a match.
            guard children[0][s[i].value] != nil, let (index, matchEnd) = longestWithin(s, at: i, limit: range.upperBound) else {
                i += 1
                continue
            }
            let token = tokens[index]
            var start = i, end = matchEnd
            if token.singleWord {
                let leftOK = start == range.lowerBound || !CharClass.isWordCharacter(s[start - 1])
                let rightOK = end == range.upperBound || !CharClass.isWordCharacter(s[end])
                if !(leftOK && rightOK) {
                    // Not a match; the search resumes after it, as the automaton's iterator does.
                    i = matchEnd
                    continue
                }
            }
            if token.lstrip {
                while start > textStart && CharClass.isWhitespace(s[start - 1]) { start -= 1 }
            }
            if token.rstrip {
                while end < range.upperBound && CharClass.isWhitespace(s[end]) { end += 1 }
            }
            if textStart < start { out.append((textStart..<start, nil)) }
            out.append((start..<end, token.id))
            textStart = end
            i = end
        }
        if textStart < range.upperBound { out.append((textStart..<range.upperBound, nil)) }
        return out
    }

    private func longestWithin(_ s: [Unicode.Scalar], at i: Int, limit: Int) -> (Int, Int)? {
        if limit == s.count { return longest(s, at: i) }
        return longest(Array(s[i..<limit]), at: 0).map { ($0.token, $0.end + i) }
    }
}
