import JSON
import Synchronization

/// Byte-pair encoding over one pre-tokenized word: start from one symbol per character, then
/// repeatedly merge the adjacent pair with the lowest merge rank (the leftmost on ties) until
/// no adjacent pair has a merge. This is `tokenizers`' `BPE` model without dropout.
///
/// Long words use a binary heap of candidate pairs over a linked list of symbols, so a word of
/// n characters costs O(n log n); short words use a plain scan, which is faster there and gives
/// the same result (the lowest rank, leftmost first, is what both pick at every step).
struct BPEModel: Sendable {
    /// Token text (exact UTF-8, no Unicode equivalence) to id.
    let vocab: [TokenBytes: Int32]
    /// Id to token text, nil for ids the vocabulary skips.
    let tokens: [String?]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    let merges: [UInt64: UInt64]
    /// Ids of one-character tokens for characters below U+0800 (-1: none); others in `charIDsHigh`.
    let charIDsLow: [Int32]
    let charIDsHigh: [UInt32: Int32]
    let unkID: Int32?
    let fuseUnk: Bool
    /// When a character has no token: its UTF-8 bytes as `<0xAB>` tokens, if they all exist.
    let byteFallbackIDs: [Int32]?
    /// A word that is itself a token is not merged (Llama 3 sets this).
    let ignoreMerges: Bool
    let cache: BPECache

    /// Words shorter than this use the quadratic scan.
    static let heapThreshold = 24

    /// The words longer than this (in characters) are not cached, as in `tokenizers`.
    static let maxCachedWordLength = 256

    static func parse(_ node: JSONNode) throws(TokenizerError) -> BPEModel {
        let type = try node.optional("type").map { (n) throws(TokenizerError) in try n.string } ?? "BPE"
        guard type == "BPE" else {
            throw TokenizerError(kind: .unsupported, file: node.file, field: node.childPath("type"),
                                 message: "model type \"\(type)\" is not supported (only BPE)")
        }
        if let dropout = try node.optional("dropout") {
            guard case .number(let n) = dropout.value else { throw dropout.error("expected a number") }
            let d = n.double
            if d > 0 { throw dropout.error("BPE dropout \(d) is not supported at inference (set it to null)", kind: .unsupported) }
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let n = try node.optional(key), try !n.string.isEmpty {
                throw n.error("\(key) is not supported", kind: .unsupported)
            }
        }

        // Vocabulary: an object token → id.
        let vocabNode = try node.required("vocab")
        guard case .object(let entries) = vocabNode.value else { throw vocabNode.error("expected an object of token → id, found \(vocabNode.value.kindName)") }
        var vocab: [TokenBytes: Int32] = [:]
        vocab.reserveCapacity(entries.count)
        var maxID = -1
        for (token, value) in entries.map({ ($0.key, $0.value) }) {
            guard case .number(let n) = value, let d = n.integer, d >= 0, d < 16_777_216 else {
                throw TokenizerError(kind: .invalidField, file: node.file, field: vocabNode.childPath(token),
                                     message: "a token id must be an integer in 0..<16777216, found \(value.kindName)")
            }
            vocab[TokenBytes(token)] = Int32(d)
            maxID = max(maxID, Int(d))
        }
        var tokens = [String?](repeating: nil, count: maxID + 1)
        for m in entries { if case .number(let n) = m.value, let d = n.integer { tokens[Int(d)] = m.key } }

        // One-character tokens, for the first step of every word.
        var low = [Int32](repeating: -1, count: 0x800)
        var high: [UInt32: Int32] = [:]
        for m in entries {
            var it = m.key.unicodeScalars.makeIterator()
            guard let first = it.next(), it.next() == nil, case .number(let n) = m.value, let d = n.integer else { continue }
            if first.value < 0x800 { low[Int(first.value)] = Int32(d) } else { high[first.value] = Int32(d) }
        }

        // Merges: ["a b", …] (older files) or [["a", "b"], …].
        var merges: [UInt64: UInt64] = [:]
        if let mergesNode = try node.optional("merges") {
            guard case .array(let items) = mergesNode.value else { throw mergesNode.error("expected an array of merges, found \(mergesNode.value.kindName)") }
            merges.reserveCapacity(items.count)
            for (rank, item) in items.enumerated() {
                let field = "\(mergesNode.path)[\(rank)]"
                func bad(_ message: String) -> TokenizerError {
                    TokenizerError(kind: .badMerge, file: node.file, field: field, message: message)
                }
                let left: String, right: String
                switch item {
                case .string(let line):
                    let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                    guard parts.count == 2 else { throw bad("a merge must be two tokens separated by one space, found \"\(line.prefix(80))\"") }
                    left = String(parts[0]); right = String(parts[1])
                case .array(let pair):
                    guard pair.count == 2, case .string(let a) = pair[0], case .string(let b) = pair[1] else {
                        throw bad("a merge must be a pair of two strings")
                    }
                    left = a; right = b
                default:
                    throw bad("a merge must be a string \"a b\" or a pair [\"a\", \"b\"], found \(item.kindName)")
                }
                guard let l = vocab[TokenBytes(left)] else { throw bad("the merge's first token \"\(left)\" is not in the vocabulary") }
                guard let r = vocab[TokenBytes(right)] else { throw bad("the merge's second token \"\(right)\" is not in the vocabulary") }
                guard let m = vocab[TokenBytes(left + right)] else { throw bad("the merged token \"\(left + right)\" is not in the vocabulary") }
                // A repeated merge keeps its last rank, as `tokenizers` does.
                merges[UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))] = UInt64(rank) << 32 | UInt64(UInt32(m))
            }
        }

        var unkID: Int32? = nil
        if let unkNode = try node.optional("unk_token") {
            let unk = try unkNode.string
            guard let id = vocab[TokenBytes(unk)] else { throw unkNode.error("the unknown token \"\(unk)\" is not in the vocabulary") }
            unkID = id
        }
        var byteFallbackIDs: [Int32]? = nil
        if try node.bool("byte_fallback", default: false) {
            var ids: [Int32] = []
            for b in 0..<256 {
                let name = "<0x" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true) + ">"
                ids.append(vocab[TokenBytes(name)] ?? -1)
            }
            byteFallbackIDs = ids
        }
        return BPEModel(vocab: vocab, tokens: tokens, merges: merges, charIDsLow: low, charIDsHigh: high,
                        unkID: unkID, fuseUnk: try node.bool("fuse_unk", default: false),
                        byteFallbackIDs: byteFallbackIDs, ignoreMerges: try node.bool("ignore_merges", default: false),
                        cache: BPECache(capacity: 10_000))
    }

    func token(for id: Int32) -> String? {
        guard id >= 0, Int(id) < tokens.count else { return nil }
        return tokens[Int(id)]
    }

    @inline(__always)
    func charID(_ s: Unicode.Scalar) -> Int32 {
        s.value < 0x800 ? charIDsLow[Int(s.value)] : (charIDsHigh[s.value] ?? -1)
    }

    /// Appends the ids of `word` (one pre-tokenized word) to `out`.
    func tokenize(_ word: [Unicode.Scalar], into out: inout [Int32]) {
        if word.isEmpty { return }
        if word.count == 1 {
            let id = charID(word[0])
            if id >= 0 { out.append(id); return }
        }
        let cacheable = word.count <= Self.maxCachedWordLength
        if cacheable, let hit = cache.lookup(word) {
            out.append(contentsOf: hit)
            return
        }
        let start = out.count
        if ignoreMerges, let id = vocab[TokenBytes(scalars: word)] {
            out.append(id)
        } else {
            var symbols = initialSymbols(word)
            if symbols.count >= Self.heapThreshold {
                mergeWithHeap(&symbols)
            } else {
                mergeByScan(&symbols)
            }
            out.append(contentsOf: symbols)
        }
        if cacheable { cache.insert(word, Array(out[start...])) }
    }

    /// One id per character; characters without a token become byte-fallback tokens or `unk`
    /// (fused when `fuse_unk`), or are dropped when there is neither, as in `tokenizers`.
    func initialSymbols(_ word: [Unicode.Scalar]) -> [Int32] {
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.count)
        var lastWasUnk = false
        for s in word {
            let id = charID(s)
            if id >= 0 {
                symbols.append(id)
                lastWasUnk = false
                continue
            }
            if let fallback = byteFallbackIDs {
                let bytes = Array(UTF8.encode(s)!)
                if bytes.allSatisfy({ fallback[Int($0)] >= 0 }) {
                    for b in bytes { symbols.append(fallback[Int(b)]) }
                    lastWasUnk = false
                    continue
                }
            }
            if let unk = unkID {
                if !(fuseUnk && lastWasUnk) { symbols.append(unk) }
                lastWasUnk = true
            }
        }
        return symbols
    }

    @inline(__always)
    func merge(_ left: Int32, _ right: Int32) -> UInt64? {
        merges[UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))]
    }

    /// Quadratic but allocation-free merging for short words.
    func mergeByScan(_ symbols: inout [Int32]) {
        while symbols.count >= 2 {
            var best: UInt64 = .max
            var bestAt = -1
            for k in 0..<(symbols.count - 1) {
                if let m = merge(symbols[k], symbols[k + 1]), m < best {
                    // Ranks are unique per pair and sit in the high half, so comparing the packed
                    // value compares ranks; `<` keeps the leftmost of equal pairs.
                    best = m
                    bestAt = k
                }
            }
            if bestAt < 0 { return }
            symbols[bestAt] = Int32(truncatingIfNeeded: best & 0xFFFF_FFFF)
            symbols.remove(at: bestAt + 1)
        }
    }

    /// O(n log n) merging for long words: a min-heap of (rank, position) over a linked list.
    func mergeWithHeap(_ symbols: inout [Int32]) {
        let n = symbols.count
        var ids = symbols
        var prev = [Int](unsafeUninitializedCapacity: n) { buf, count in
            for k in 0..<n { buf[k] = k - 1 }
            count = n
        }
        var next = [Int](unsafeUninitializedCapacity: n) { buf, count in
            for k in 0..<n { buf[k] = k + 1 < n ? k + 1 : -1 }
            count = n
        }
        var alive = [Bool](repeating: true, count: n)
        var heap = MergeHeap()
        for k in 0..<(n - 1) {
            if let m = merge(ids[k], ids[k + 1]) { heap.push(rank: m >> 32, position: k) }
        }
        while let top = heap.pop() {
            let k = top.position
            guard alive[k], next[k] >= 0 else { continue }
            let r = next[k]
            // Skip entries made stale by an earlier merge at k or at its right neighbour.
            guard let m = merge(ids[k], ids[r]), m >> 32 == top.rank else { continue }
            ids[k] = Int32(truncatingIfNeeded: m & 0xFFFF_FFFF)
            alive[r] = false
            next[k] = next[r]
            if next[r] >= 0 { prev[next[r]] = k }
            if prev[k] >= 0, let pm = merge(ids[prev[k]], ids[k]) { heap.push(rank: pm >> 32, position: prev[k]) }
            if next[k] >= 0, let nm = merge(ids[k], ids[next[k]]) { heap.push(rank: nm >> 32, position: k) }
        }
        symbols.removeAll(keepingCapacity: true)
        var k = 0
        while k >= 0 {
            symbols.append(ids[k])
            k = next[k]
        }
    }
}

/// A binary min-heap of merge candidates ordered by (rank, position): the lowest rank first,
/// the leftmost among equal ranks.
struct MergeHeap {
    private var items: [UInt64] = []  // rank << 32 | position

    mutating func push(rank: UInt64, position: Int) {
        items.append(rank << 32 | UInt64(position))
        var c = items.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            if items[p] <= items[c] { break }
            items.swapAt(p, c)
            c = p
        }
    }

    mutating func pop() -> (rank: UInt64, position: Int)? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var p = 0
            while true {
                let l = 2 * p + 1, r = l + 1
                var m = p
                if l < items.count && items[l] < items[m] { m = l }
                if r < items.count && items[r] < items[m] { m = r }
                if m == p { break }
                items.swapAt(p, m)
                p = m
            }
        }
        return (top >> 32, Int(top & 0xFFFF_FFFF))
    }
}

/// A token's exact UTF-8 bytes, as a dictionary key that does not conflate canonically
/// equivalent spellings (Swift `String` equality would).
struct TokenBytes: Hashable, Sendable {
    let bytes: [UInt8]
    init(_ s: String) { bytes = Array(s.utf8) }
    init(scalars: [Unicode.Scalar]) {
        var b: [UInt8] = []
        b.reserveCapacity(scalars.count * 2)
        for s in scalars { b.append(contentsOf: UTF8.encode(s)!) }
        bytes = b
    }
}

/// Ids of recently seen words. Bounded: when it holds `capacity` words it starts over, which
/// keeps the common words of the current text without any bookkeeping per lookup.
final class BPECache: Sendable {
    let capacity: Int
    private let words: Mutex<[[Unicode.Scalar]: [Int32]]>

    init(capacity: Int) {
        self.capacity = capacity
        words = Mutex([:])
    }

    func lookup(_ word: [Unicode.Scalar]) -> [Int32]? {
        words.withLock { $0[word] }
    }

    func insert(_ word: [Unicode.Scalar], _ ids: [Int32]) {
        words.withLock { map in
            if map.count >= capacity { map.removeAll(keepingCapacity: true) }
            map[word] = ids
        }
    }
}
