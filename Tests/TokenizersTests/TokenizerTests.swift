import Foundation
import Testing
import TestSupport

import JSON
@testable import Tokenizers

// MARK: Fixtures


/// Swift `String ==` compares by canonical equivalence ("e\u{301}" == "é"); a tokenizer must
/// be exact to the code point, so tests compare scalars.
func scalars(_ s: String) -> [UInt32] { s.unicodeScalars.map(\.value) }

struct FixtureCase {
    var name: String
    var text: String
    var ids: [Int]
    var tokens: [String]
    var idsWithSpecialTokens: [Int]
    var decoded: String
    var decodedWithSpecialTokens: String
    var decodedSkipSpecialTokens: String
}

struct FixtureSet {
    let tokenizer: Tokenizer
    let cases: [FixtureCase]
    let chatRendered: String
    let chatIDs: [Int]

    init(directory: String, casesFile: String) throws {
        let dir = fixtures.appendingPathComponent(directory)
        tokenizer = try Tokenizer(directory: dir)
        let root = try readJSON(dir.appendingPathComponent(casesFile))
        cases = root["cases"].arrayValue.map { c in
            FixtureCase(name: c["name"].stringValue, text: c["text"].stringValue, ids: c["ids"].intArray,
                        tokens: c["tokens"].stringArray, idsWithSpecialTokens: c["ids_with_special_tokens"].intArray,
                        decoded: c["decoded"].stringValue, decodedWithSpecialTokens: c["decoded_with_special_tokens"].stringValue,
                        decodedSkipSpecialTokens: c["decoded_skip_special_tokens"].stringValue)
        }
        chatRendered = root["chat"]["rendered"].stringValue
        chatIDs = root["chat"]["ids_add_special_tokens_false"].intArray
    }
}

let tiny = Result { try FixtureSet(directory: "tokenizer", casesFile: "cases.json") }
let demo = Result { try FixtureSet(directory: "demo", casesFile: "tokenizer_cases.json") }
/// What `tokenizers` computes for the cases of scripts/fixtures/make_tokenizer_oracle.py.
let tokenizerOracle = Result { try readJSON(fixtures.appendingPathComponent("tokenizer/oracle.json")) }

func checkAllCases(_ set: FixtureSet, sourceLocation: SourceLocation = #_sourceLocation) {
    let tok = set.tokenizer
    for c in set.cases {
        #expect(tok.encode(c.text, addSpecialTokens: false) == c.ids, "\(c.name): ids", sourceLocation: sourceLocation)
        #expect(tok.encode(c.text, addSpecialTokens: true) == c.idsWithSpecialTokens, "\(c.name): ids with special tokens", sourceLocation: sourceLocation)
        #expect(c.ids.map { tok.token(for: $0) ?? "<nil>" }.map(scalars) == c.tokens.map(scalars), "\(c.name): tokens", sourceLocation: sourceLocation)
        #expect(scalars(tok.decode(c.ids)) == scalars(c.decoded), "\(c.name): decode", sourceLocation: sourceLocation)
        #expect(scalars(tok.decode(c.idsWithSpecialTokens)) == scalars(c.decodedWithSpecialTokens), "\(c.name): decode with special tokens", sourceLocation: sourceLocation)
        #expect(scalars(tok.decode(c.idsWithSpecialTokens, skipSpecialTokens: true)) == scalars(c.decodedSkipSpecialTokens),
                "\(c.name): decode skipping special tokens", sourceLocation: sourceLocation)
    }
}

// MARK: Reference fixtures

struct TokenizerFixtureTests {
    @Test func tinyTokenizerMatchesTokenizersOnEveryCase() throws {
        let set = try tiny.get()
        #expect(set.cases.count >= 30)
        checkAllCases(set)
    }

    @Test func smolLM2TokenizerMatchesTokenizersOnEveryCase() throws {
        let set = try demo.get()
        #expect(set.cases.count >= 30)
        checkAllCases(set)
    }

    @Test func chatTemplateRenderingsEncodeToTheReferenceIDs() throws {
        for set in [try tiny.get(), try demo.get()] {
            #expect(!set.chatIDs.isEmpty)
            #expect(set.tokenizer.encode(set.chatRendered, addSpecialTokens: false) == set.chatIDs)
        }
    }

    @Test func encodeThenDecodeGivesTheTextBack() throws {
        for set in [try tiny.get(), try demo.get()] {
            for c in set.cases {
                let ids = set.tokenizer.encode(c.text, addSpecialTokens: false)
                #expect(scalars(set.tokenizer.decode(ids)) == scalars(c.text), "\(c.name)")
            }
        }
    }

    @Test func configNamesBOSEOSAndTheChatTemplate() throws {
        let t = try tiny.get().tokenizer
        #expect(t.bosToken == "<s>" && t.bosTokenID == 0)
        #expect(t.eosToken == "</s>" && t.eosTokenID == 1)
        #expect(t.padTokenID == 2)
        #expect(t.chatTemplate?.hasPrefix("{% for message in messages %}") == true)
        #expect(t.vocabularySize == 514)
        #expect(t.isSpecial(0) && t.isSpecial(4) && !t.isSpecial(512) && !t.isSpecial(100))
        #expect(t.id(for: "<think>") == 512 && t.token(for: 513) == "</think>")
        #expect(t.token(for: 100_000) == nil && t.token(for: -1) == nil)

        let d = try demo.get().tokenizer
        #expect(d.vocabularySize == 49152)
        #expect(d.eosToken == "<|im_end|>" && d.eosTokenID == 2)
        #expect(d.chatTemplate?.contains("SmolLM") == true)
        // SmolLM2 adds no BOS.
        #expect(d.encode("Hello") == d.encode("Hello", addSpecialTokens: false))
    }

    @Test func specialTokensCanBeLeftUnparsedForUntrustedText() throws {
        let t = try tiny.get().tokenizer
        let text = "<|im_start|>user<think>"
        #expect(t.encode(text, addSpecialTokens: false).first == 3)
        let literal = t.encode(text, addSpecialTokens: false, parseSpecialTokens: false)
        #expect(!literal.contains(3))
        #expect(literal.last == 512, "non-special added tokens still match")
        #expect(t.decode(literal) == text)
    }

    @Test func invalidUTF8FromByteTokensDecodesLikeTokenizers() throws {
        let t = try tiny.get().tokenizer
        // Single-byte tokens for F0 9F 98 41 E0 80 ED A0 80 C3; Python's (and Rust's) lossy
        // UTF-8 decoding gives one U+FFFD per maximal invalid subpart: "\u{FFFD}A" + 6 × U+FFFD.
        let bytes: [UInt8] = [0xF0, 0x9F, 0x98, 0x41, 0xE0, 0x80, 0xED, 0xA0, 0x80, 0xC3]
        let ids = bytes.map { t.id(for: String(Character(ByteLevel.byteToScalar[Int($0)])))! }
        let want = "\u{FFFD}A" + String(repeating: "\u{FFFD}", count: 6)
        #expect(scalars(t.decode(ids)) == scalars(want))
        var stream = t.streamingDecoder()
        var got = ""
        for id in ids { got += stream.push(id) }
        got += stream.finish()
        #expect(scalars(got) == scalars(want))
    }
}

// MARK: Split patterns

struct SplitPatternTests {
    func pieces(_ pattern: SplitPattern, _ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var ends: [Int] = []
        pattern.matchEnds(s, into: &ends)
        var out: [String] = []
        var start = 0
        for e in ends {
            var piece = String()
            piece.unicodeScalars.append(contentsOf: s[start..<e])
            out.append(piece)
            start = e
        }
        return out
    }

    /// Hand-picked edge cases of the three regexes, split by `tokenizers` (Oniguruma) in
    /// scripts/fixtures/make_tokenizer_oracle.py.
    @Test func llama3Qwen2AndGPT2PatternsSplitLikeOniguruma() throws {
        let cases = try tokenizerOracle.get()["split_cases"].arrayValue
        #expect(cases.count >= 30)
        for c in cases {
            let text = c["text"].stringValue
            #expect(pieces(.llama3(maxDigits: 3), text).map(scalars) == c["llama3"].stringArray.map(scalars), "llama3 \(text.debugDescription)")
            #expect(pieces(.llama3(maxDigits: 1), text).map(scalars) == c["qwen2"].stringArray.map(scalars), "qwen2 \(text.debugDescription)")
            #expect(pieces(.gpt2, text).map(scalars) == c["gpt2"].stringArray.map(scalars), "gpt2 \(text.debugDescription)")
        }
    }

    func preTokenize(_ p: PreTokenizer, _ text: String) -> [String] {
        var pieces = [TextPiece(scalars: Array(text.unicodeScalars), atTextStart: true)]
        p.apply(&pieces)
        return pieces.map { piece in
            var s = String()
            s.unicodeScalars.append(contentsOf: piece.scalars)
            return s
        }
    }

    /// `tokenizers`' own documentation example for each split behavior, with and without invert,
    /// Digits and Metaspace: the pieces `tokenizers` gives (scripts/fixtures/make_tokenizer_oracle.py).
    @Test func splitBehaviorsMatchTokenizers() throws {
        let behaviors: [String: SplitBehavior] = ["removed": .removed, "isolated": .isolated, "merged_with_previous": .mergedWithPrevious,
                                                  "merged_with_next": .mergedWithNext, "contiguous": .contiguous]
        let cases = try tokenizerOracle.get()["pre_tokenizer_cases"].arrayValue
        #expect(cases.count == 13)
        for c in cases {
            let text = c["text"].stringValue, want = c["pieces"].stringArray
            switch c["pre_tokenizer"].stringValue {
            case "split":
                let behavior = try #require(behaviors[c["behavior"].stringValue])
                let invert = c["invert"] == .bool(true)
                #expect(preTokenize(.split(.literal(["-"]), behavior: behavior, invert: invert), text) == want, "\(behavior) invert \(invert)")
            case "digits":
                #expect(preTokenize(.digits(individual: c["individual"] == .bool(true)), text) == want)
            default:
                #expect(preTokenize(.metaspace(replacement: "▁", prependScheme: .always, split: true), text) == want)
            }
        }
    }

    @Test func knownRegexSourcesAreRecognized() {
        #expect(SplitPattern(regex: SplitPattern.gpt2Source) == .gpt2)
        #expect(SplitPattern(regex: SplitPattern.llama3Source) == .llama3(maxDigits: 3))
        #expect(SplitPattern(regex: SplitPattern.qwen2Source) == .llama3(maxDigits: 1))
        #expect(SplitPattern(regex: "\\s+") == nil)
    }

    /// Differential check against `tokenizers` on 400 seeded random strings (letters, digits,
    /// spaces, CJK, emoji, combining marks, invisible spaces, special-token text and parts of
    /// it) and 150 random runs of byte tokens, from scripts/fixtures/make_tokenizer_oracle.py.
    @Test func randomStringsMatchTokenizers() throws {
        let root = try tokenizerOracle.get()
        let tinyTok = try tiny.get().tokenizer, demoTok = try demo.get().tokenizer
        var failures = 0
        #expect(root["random_cases"].arrayValue.count == 400 && root["byte_cases"].arrayValue.count == 150)
        for c in root["random_cases"].arrayValue {
            let text = c["text"].stringValue
            let ok = pieces(.llama3(maxDigits: 3), text).map(scalars) == c["llama3"].stringArray.map(scalars)
                && pieces(.llama3(maxDigits: 1), text).map(scalars) == c["qwen2"].stringArray.map(scalars)
                && pieces(.gpt2, text).map(scalars) == c["gpt2"].stringArray.map(scalars)
                && tinyTok.encode(text) == c["tiny"].intArray
                && demoTok.encode(text) == c["demo"].intArray
                && scalars(tinyTok.decode(c["tiny"].intArray)) == scalars(c["tiny_decoded"].stringValue)
            if !ok {
                failures += 1
                if failures <= 10 { Issue.record("oracle mismatch on \(text.debugDescription)") }
            }
        }
        for c in root["byte_cases"].arrayValue where scalars(tinyTok.decode(c["ids"].intArray)) != scalars(c["decoded"].stringValue) {
            failures += 1
            if failures <= 10 { Issue.record("oracle mismatch decoding \(c["ids"].intArray)") }
        }
        #expect(failures == 0)
    }
}

// MARK: BPE

struct BPEMergeTests {
    @Test func longWordsOfOneLetterEncodeQuicklyAndRoundTrip() throws {
        // `tokenizers` gives 10000 ids with the tiny tokenizer (it has no "aa") and 2500 with SmolLM2's.
        for (t, count) in [(try tiny.get().tokenizer, 10_000), (try demo.get().tokenizer, 2500)] {
            let word = String(repeating: "a", count: 10_000)
            let ids = t.encode(word, addSpecialTokens: false)
            #expect(t.decode(ids) == word)
            #expect(ids.count == count)
            let mixed = String((0..<20_000).map { k in Character(UnicodeScalar(UInt8(97 + (k * 7919 % 26)))) })
            #expect(t.decode(t.encode(mixed, addSpecialTokens: false)) == mixed)
        }
    }

    /// Both merge paths (a scan for short words, a heap for long ones) give the ids `tokenizers`'
    /// BPE model gives for 300 random words of 2 to 61 symbols.
    @Test func bothMergePathsGiveTokenizersIDs() throws {
        let model = try demo.get().tokenizer.model
        let words = try tokenizerOracle.get()["merge_words"].arrayValue
        #expect(words.count == 300)
        for w in words {
            let word = Array(w["symbols"].stringValue.unicodeScalars)
            let expected = w["ids"].intArray.map(Int32.init)
            var a = model.initialSymbols(word), b = a
            model.mergeByScan(&a)
            model.mergeWithHeap(&b)
            #expect(a == expected, "scan \(w["symbols"].stringValue)")
            #expect(b == expected, "heap \(w["symbols"].stringValue)")
        }
    }
}

// MARK: Streaming

struct StreamingDecoderTests {
    /// Streams `ids` and checks that every chunk is whole characters and that the chunks add up
    /// to the full decode; returns how many pushes returned nothing (text held back).
    @discardableResult
    func stream(_ t: Tokenizer, _ ids: [Int], skipSpecialTokens: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) -> Int {
        var s = t.streamingDecoder(skipSpecialTokens: skipSpecialTokens)
        var out = ""
        var heldBack = 0
        let full = t.decode(ids, skipSpecialTokens: skipSpecialTokens)
        let fullHasReplacement = full.unicodeScalars.contains("\u{FFFD}")
        for (k, id) in ids.enumerated() {
            let chunk = s.push(id)
            if chunk.isEmpty { heldBack += 1 }
            if !fullHasReplacement {
                #expect(!chunk.unicodeScalars.contains("\u{FFFD}"), "half a character returned after id #\(k)", sourceLocation: sourceLocation)
            }
            out += chunk
            // What has been returned is always a prefix of the final text.
            #expect(full.unicodeScalars.starts(with: out.unicodeScalars), sourceLocation: sourceLocation)
        }
        out += s.finish()
        #expect(scalars(out) == scalars(full), sourceLocation: sourceLocation)
        return heldBack
    }

    @Test func emojiAndCJKSplitAcrossTokensAreHeldBackUntilComplete() throws {
        for t in [try tiny.get().tokenizer, try demo.get().tokenizer] {
            for text in ["family 👨\u{200D}👩\u{200D}👧 ok", "日本語のテキスト", "🇫🇷🇯🇵 flags 🏴\u{E0067}\u{E0062}\u{E007F}", "thumbs 👍🏽"] {
                let ids = t.encode(text, addSpecialTokens: false)
                // At least one character spans several tokens, so something was held back.
                #expect(stream(t, ids) > 0, "\(text)")
            }
        }
    }

    @Test func everyFixtureCaseStreamsToItsDecode() throws {
        for set in [try tiny.get(), try demo.get()] {
            for c in set.cases {
                stream(set.tokenizer, c.idsWithSpecialTokens)
                stream(set.tokenizer, c.idsWithSpecialTokens, skipSpecialTokens: true)
            }
        }
    }

    /// Random byte sequences (valid characters, stray continuation bytes, cut-off and overlong
    /// sequences, surrogates) sent one byte token at a time always add up to the full decode,
    /// and what has been returned is always a prefix of it.
    @Test func randomBytesStreamToTheirLossyDecode() throws {
        let t = try tiny.get().tokenizer
        let byteIDs = (0..<256).map { t.id(for: String(Character(ByteLevel.byteToScalar[$0])))! }
        let pieces: [[UInt8]] = [[0x41], [0xC3, 0xA9], [0xE6, 0x97, 0xA5], [0xF0, 0x9F, 0x98, 0x80], [0x80], [0xBF], [0xC3],
                                 [0xE6, 0x97], [0xF0, 0x9F], [0xF0, 0x9F, 0x98], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
                                 [0xE0, 0x80, 0x80], [0xFF], [0xF5]]
        var rng = SplitMix64(seed: 99)
        for _ in 0..<400 {
            var bytes: [UInt8] = []
            for _ in 0..<(1 + Int(rng.next() % 8)) { bytes += pieces[Int(rng.next() % UInt64(pieces.count))] }
            let ids = bytes.map { byteIDs[Int($0)] }
            #expect(scalars(t.decode(ids)) == scalars(String(decoding: bytes, as: UTF8.self)))
            stream(t, ids)
        }
    }

    @Test func aTruncatedCharacterIsReplacedOnlyAtTheEnd() throws {
        let t = try tiny.get().tokenizer
        let ids = t.encode("😀", addSpecialTokens: false)
        #expect(ids.count > 1)
        var s = t.streamingDecoder()
        #expect(s.push(ids[0]) == "")
        #expect(s.finish() == "\u{FFFD}")
    }
}

// MARK: SentencePiece-style BPE (Llama 2, Mistral)

/// A tiny hand-made vocabulary in the two layouts SentencePiece BPE models are exported in
/// (tokenizer/variants/sentencepiece-*.json); expected ids from `tokenizers`
/// (scripts/fixtures/make_tokenizer_oracle.py).
struct SentencePieceStyleTests {
    static func tokenizer(legacy: Bool) throws -> Tokenizer {
        let url = fixtures.appendingPathComponent("tokenizer/variants/sentencepiece-\(legacy ? "legacy" : "metaspace").json")
        return try Tokenizer(tokenizerJSON: Array(try Data(contentsOf: url)))
    }

    static func expected() throws -> [(text: String, legacy: [Int], metaspace: [Int])] {
        try tokenizerOracle.get()["sentencepiece_cases"].arrayValue.map { ($0["text"].stringValue, $0["legacy"].intArray, $0["metaspace"].intArray) }
    }

    @Test func legacyPrependReplaceLayoutMatchesTokenizers() throws {
        let t = try Self.tokenizer(legacy: true)
        for c in try Self.expected() {
            #expect(t.encode(c.text, addSpecialTokens: false) == c.legacy, "\(c.text)")
            #expect(t.encode(c.text) == [1] + c.legacy, "\(c.text)")
        }
        // Replace, ByteFallback, Fuse, Strip: byte tokens become text, the prepended space goes.
        #expect(t.decode(t.encode("hello\n😀", addSpecialTokens: false)) == "hello\n😀")
        #expect(t.decode(t.encode("é中x", addSpecialTokens: false)) == "é中x")
        #expect(t.decode(t.encode("<s>hello</s> world", addSpecialTokens: false), skipSpecialTokens: true) == "hello  world")
        #expect(t.decode([3 + 0xE4, 3 + 0xB8]) == "\u{FFFD}\u{FFFD}")
    }

    @Test func metaspaceLayoutMatchesTokenizers() throws {
        let t = try Self.tokenizer(legacy: false)
        for c in try Self.expected() {
            #expect(t.encode(c.text, addSpecialTokens: false) == c.metaspace, "\(c.text)")
        }
        #expect(t.decode(t.encode("  hello", addSpecialTokens: false)) == " hello")
        #expect(t.decode(t.encode("<s>hello</s> world", addSpecialTokens: false), skipSpecialTokens: true) == "hello world")
    }

    @Test func streamingWorksWithoutAByteLevelDecoder() throws {
        let t = try Self.tokenizer(legacy: true)
        let ids = t.encode("hello world é中x hello\n😀 world", addSpecialTokens: false)
        var s = t.streamingDecoder()
        var out = ""
        var chunks: [String] = []
        for id in ids {
            let c = s.push(id)
            #expect(!c.unicodeScalars.contains("\u{FFFD}"))
            chunks.append(c)
            out += c
        }
        out += s.finish()
        #expect(out == t.decode(ids))
        #expect(chunks.contains(""), "the byte tokens of 中 and 😀 are held back")
    }
}
// MARK: Llama 3 / Qwen2 layouts and added-token flags

/// The tiny fixture's vocabulary rewired the way other tokenizer.json files are laid out: Llama 3
/// (Split with its regex, ByteLevel without regex, `ignore_merges`, Sequence post-processor),
/// Qwen2 (NFC, Split with its regex, no BOS), and added tokens with lstrip/rstrip/single_word and
/// a `normalized` one (tokenizer/variants/*.json). Expected ids and decodes from `tokenizers`
/// (scripts/fixtures/make_tokenizer_oracle.py).
struct TokenizerLayoutTests {
    static func variant(_ name: String) throws -> Tokenizer {
        try Tokenizer(tokenizerJSON: Array(try Data(contentsOf: fixtures.appendingPathComponent("tokenizer/variants/\(name).json"))))
    }

    /// The variant files carry exactly the regexes this runtime recognizes.
    @Test func theVariantsUseTheKnownRegexes() throws {
        for (name, source) in [("llama3", SplitPattern.llama3Source), ("qwen2", SplitPattern.qwen2Source)] {
            let doc = try readJSON(fixtures.appendingPathComponent("tokenizer/variants/\(name).json"))
            #expect(doc["pre_tokenizer"]["pretokenizers"].arrayValue.first?["pattern"]["Regex"].stringValue == source, "\(name)")
        }
    }

    @Test func llama3Qwen2AndAddedTokenFlagLayoutsMatchTokenizers() throws {
        let tokenizers = ["llama3": try Self.variant("llama3"), "qwen2": try Self.variant("qwen2"), "flags": try Self.variant("flags")]
        let cases = try tokenizerOracle.get()["variant_cases"].arrayValue
        #expect(cases.count == 39)
        for c in cases {
            let variant = c["variant"].stringValue, text = c["text"].stringValue
            let t = try #require(tokenizers[variant])
            #expect(t.encode(text) == c["ids"].intArray, "\(variant) \(text.debugDescription)")
            #expect(scalars(t.decode(c["ids"].intArray)) == scalars(c["decoded"].stringValue), "\(variant) \(text.debugDescription)")
        }
    }
}

// MARK: Malformed files

/// Every way a tokenizer.json can be wrong must end in a TokenizerError that names the file and
/// the field, never a crash.
struct MalformedTokenizerTests {
    /// A minimal valid byte-level tokenizer: a, b, ab with one merge.
    static func json(model: String = #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#,
                     preTokenizer: String = #"{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}"#,
                     normalizer: String = "null", decoder: String = #"{"type": "ByteLevel"}"#,
                     postProcessor: String = "null", addedTokens: String = "[]") -> [UInt8] {
        Array("""
        {"version": "1.0", "added_tokens": \(addedTokens), "normalizer": \(normalizer), "pre_tokenizer": \(preTokenizer),
         "post_processor": \(postProcessor), "decoder": \(decoder), "model": \(model)}
        """.utf8)
    }

    func expectError(_ bytes: [UInt8], kind: TokenizerError.Kind, field: String, mentions: String? = nil,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try Tokenizer(tokenizerJSON: bytes)
            Issue.record("accepted a malformed tokenizer.json", sourceLocation: sourceLocation)
        } catch {
            #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
            #expect(error.file == "tokenizer.json", sourceLocation: sourceLocation)
            // The whole file (field "") has no field.
            #expect(error.field == (field.isEmpty ? nil : field), "\(error)", sourceLocation: sourceLocation)
            if let mentions { #expect(error.description.contains(mentions), "\(error)", sourceLocation: sourceLocation) }
            #expect(error.description.hasPrefix("tokenizer: tokenizer.json"), sourceLocation: sourceLocation)
        }
    }

    @Test func theBaseCaseIsValid() throws {
        let t = try Tokenizer(tokenizerJSON: Self.json())
        #expect(t.encode("abab") == [2, 2])
        #expect(t.decode([2, 0]) == "aba")
    }

    @Test func syntaxErrorsNameTheLine() {
        expectError(Array("{\"model\": ".utf8), kind: .syntax, field: "", mentions: "line 1")
        expectError(Array("{\n\"model\": {,}}".utf8), kind: .syntax, field: "", mentions: "line 2")
        expectError([], kind: .syntax, field: "")
        expectError([0xFF, 0xFE], kind: .syntax, field: "")
        expectError(Array("{\"model\": \"\\ud800\"}".utf8), kind: .syntax, field: "", mentions: "surrogate")
        expectError(Array("[1, 2]".utf8), kind: .invalidField, field: "", mentions: "JSON object")
        expectError(Array(String(repeating: "[", count: 10_000).utf8), kind: .syntax, field: "", mentions: "nesting")
    }

    @Test func aMissingOrForeignModelIsRejected() {
        expectError(Array(#"{"version": "1.0", "normalizer": null}"#.utf8), kind: .invalidField, field: "model", mentions: "missing")
        expectError(Self.json(model: #"{"type": "Unigram", "vocab": [["a", 0.0]]}"#), kind: .unsupported, field: "model.type", mentions: "Unigram")
        expectError(Self.json(model: #"{"type": "BPE", "merges": []}"#), kind: .invalidField, field: "model.vocab", mentions: "missing")
        expectError(Self.json(model: #"{"type": "BPE", "vocab": [], "merges": []}"#), kind: .invalidField, field: "model.vocab", mentions: "object")
        expectError(Self.json(model: #"{"type": "BPE", "vocab": {"a": "zero"}, "merges": []}"#), kind: .invalidField, field: "model.vocab.a", mentions: "integer")
        expectError(Self.json(model: #"{"type": "BPE", "vocab": {"a": -1}, "merges": []}"#), kind: .invalidField, field: "model.vocab.a")
        expectError(Self.json(model: #"{"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}"#), kind: .unsupported, field: "model.dropout")
        expectError(Self.json(model: #"{"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}"#), kind: .invalidField, field: "model.unk_token", mentions: "<unk>")
    }

    @Test func badMergesNameTheirIndex() {
        let vocab = #""vocab": {"a": 0, "b": 1, "ab": 2}"#
        expectError(Self.json(model: "{\"type\": \"BPE\", \(vocab), \"merges\": [\"a b\", \"a c\"]}"), kind: .badMerge, field: "model.merges[1]", mentions: "\"c\"")
        expectError(Self.json(model: "{\"type\": \"BPE\", \(vocab), \"merges\": [\"a b c\"]}"), kind: .badMerge, field: "model.merges[0]", mentions: "one space")
        expectError(Self.json(model: "{\"type\": \"BPE\", \(vocab), \"merges\": [\"ab\"]}"), kind: .badMerge, field: "model.merges[0]")
        expectError(Self.json(model: "{\"type\": \"BPE\", \(vocab), \"merges\": [[\"a\"]]}"), kind: .badMerge, field: "model.merges[0]", mentions: "pair")
        expectError(Self.json(model: "{\"type\": \"BPE\", \(vocab), \"merges\": [[\"b\", \"a\"]]}"), kind: .badMerge, field: "model.merges[0]", mentions: "\"ba\"")
        expectError(Self.json(model: "{\"type\": \"BPE\", \(vocab), \"merges\": [7]}"), kind: .badMerge, field: "model.merges[0]")
        expectError(Self.json(model: "{\"type\": \"BPE\", \(vocab), \"merges\": {}}"), kind: .invalidField, field: "model.merges")
    }

    @Test func unknownComponentsAreNamed() {
        expectError(Self.json(preTokenizer: #"{"type": "BertPreTokenizer"}"#), kind: .unsupported, field: "pre_tokenizer.type", mentions: "BertPreTokenizer")
        expectError(Self.json(preTokenizer: #"{"type": "Sequence", "pretokenizers": [{"type": "Digits"}, {"type": "Whatever"}]}"#),
                    kind: .unsupported, field: "pre_tokenizer.pretokenizers[1].type", mentions: "Whatever")
        expectError(Self.json(preTokenizer: #"{"no_type": 1}"#), kind: .invalidField, field: "pre_tokenizer.type", mentions: "missing")
        expectError(Self.json(preTokenizer: #"{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated"}"#),
                    kind: .unsupported, field: "pre_tokenizer.pattern.Regex", mentions: "regex")
        expectError(Self.json(preTokenizer: #"{"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"}"#),
                    kind: .invalidField, field: "pre_tokenizer.behavior", mentions: "Sideways")
        expectError(Self.json(normalizer: #"{"type": "Precompiled", "precompiled_charsmap": "AAAA"}"#), kind: .unsupported, field: "normalizer.type", mentions: "Precompiled")
        expectError(Self.json(normalizer: #"{"type": "Replace", "pattern": {"Regex": " +"}, "content": " "}"#), kind: .unsupported, field: "normalizer.pattern")
        expectError(Self.json(decoder: #"{"type": "WordPiece"}"#), kind: .unsupported, field: "decoder.type", mentions: "WordPiece")
        expectError(Self.json(postProcessor: #"{"type": "Unknown"}"#), kind: .unsupported, field: "post_processor.type")
    }

    @Test func inconsistentAddedTokensAndTemplatesAreRejected() {
        expectError(Self.json(addedTokens: #"[{"content": "<s>", "special": true}]"#), kind: .invalidField, field: "added_tokens[0].id", mentions: "missing")
        expectError(Self.json(addedTokens: #"[{"id": 5, "content": "", "special": true}]"#), kind: .invalidField, field: "added_tokens[0].content")
        expectError(Self.json(addedTokens: #"{"id": 5}"#), kind: .invalidField, field: "added_tokens", mentions: "array")
        let template = #"{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {}}"#
        expectError(Self.json(postProcessor: template), kind: .invalidField, field: "post_processor.single[0].SpecialToken", mentions: "<s>")
        let badID = #"{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [99], "tokens": ["<s>"]}}}"#
        expectError(Self.json(postProcessor: badID), kind: .invalidField, field: "post_processor", mentions: "99")
    }

    @Test func aBadConfigOrAMissingDirectoryIsReported() throws {
        do {
            _ = try Tokenizer(tokenizerJSON: Self.json(), configJSON: Array(#"{"chat_template": 5}"#.utf8))
            Issue.record("accepted a bad tokenizer_config.json")
        } catch {
            #expect(error.file == "tokenizer_config.json" && error.field == "chat_template", "\(error)")
        }
        let missing = URL(fileURLWithPath: "/nonexistent/weightfs-tokenizer")
        do {
            _ = try Tokenizer(directory: missing)
            Issue.record("loaded from a missing directory")
        } catch {
            #expect(error.kind == .io && error.file == "tokenizer.json", "\(error)")
        }
    }

    /// Seeded random byte flips and truncations of the tiny fixture never crash the loader.
    @Test func randomCorruptionsNeverCrash() throws {
        let original = Array(try Data(contentsOf: fixtures.appendingPathComponent("tokenizer/tokenizer.json")))
        var rng = SplitMix64(seed: 7)
        var rejected = 0
        for round in 0..<60 {
            var bytes = original
            if round % 3 == 0 {
                bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))
            } else {
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            do {
                let t = try Tokenizer(tokenizerJSON: bytes)
                _ = t.decode(t.encode("Hello, world! 日本 <s>"))
            } catch {
                rejected += 1
                #expect(!error.description.isEmpty)
            }
        }
        #expect(rejected > 20)
    }
}

// Speed: `weightfs-bench tokenizer DIR...` (a benchmark, not a test).
