import Foundation
import Testing
import TestSupport

@testable import JSON

/// The header's JSON reader: RFC 8259 exactly, keys in order, duplicates refused.
struct JSONTests {
    func parse(_ text: String) throws(JSON.ParseError) -> JSON.Value {
        try JSON.parse(Array(text.utf8))
    }

    func isRejected(_ text: String) -> Bool {
        (try? parse(text)) == nil
    }

    @Test func keepsMembersInDocumentOrder() throws {
        let v = try parse(#"{"z":1,"a":[true,false,null],"m":{"y":"s","b":-2.5e-3}}"#)
        guard case .object(let members) = v else { Issue.record("not an object"); return }
        #expect(members.map(\.key) == ["z", "a", "m"])
        #expect(v["a"] == .array([.bool(true), .bool(false), .null]))
        guard case .number(let n)? = v["m"]?["b"] else { Issue.record("no number"); return }
        #expect(n.text == "-2.5e-3" && !n.isIntegerLiteral && n.integer == nil)
    }

    @Test(arguments: [
        (#""\"\\\/\b\f\n\r\t""#, "\"\\/\u{08}\u{0C}\n\r\t"),
        (#""\u0041\u00e9\u65E5""#, "Aé日"),
        (#""\ud83d\ude00 \uD834\uDD1E""#, "😀 𝄞"),  // surrogate pairs, either case
        (#""\u0000""#, "\u{0}"),
        ("\"é日😀\"", "é日😀"),  // raw UTF-8 passes through
        (#""""#, ""),
    ])
    func decodesStrings(_ json: String, _ expected: String) throws {
        #expect(try parse(json) == .string(expected))
    }

    @Test(arguments: [
        #""\ud83d""#, #""\ud83d\u0041""#, #""\ude00""#, #""\ud83dx""#,  // lone or mismatched surrogates
        #""\x""#, #""\u12""#, #""\u12G4""#, "\"a\u{01}b\"", "\"tab\there\"", #""unterminated"#, #""\"#,
    ])
    func rejectsBadStrings(_ json: String) {
        #expect(isRejected(json))
    }

    @Test func readsIntegersExactlyAndReportsOverflow() throws {
        let cases: [(String, Int64?, Bool)] = [
            ("0", 0, false), ("-0", 0, true), ("9223372036854775807", .max, false), ("-9223372036854775808", .min, true),
            ("9223372036854775808", nil, false), ("18446744073709551616", nil, false), ("123456789012345678901234567890", nil, false),
        ]
        for (text, value, negative) in cases {
            guard case .number(let n) = try parse(text) else { Issue.record("\(text) not a number"); continue }
            #expect(n.isIntegerLiteral && n.integer == value && n.isNegative == negative, "\(text)")
        }
        for text in ["1.0", "1e0", "1E+2", "-0.5", "0e-0"] {
            guard case .number(let n) = try parse(text) else { Issue.record("\(text) not a number"); continue }
            #expect(!n.isIntegerLiteral && n.integer == nil, "\(text)")
        }
    }

    @Test(arguments: ["01", "-", "-a", "1.", ".5", "1e", "1e+", "+1", "0x10", "1.e3", "Infinity", "NaN", "--1", "1 2"])
    func rejectsBadNumbers(_ json: String) {
        #expect(isRejected(json))
    }

    @Test(arguments: [
        "", " ", "{", "}", "[", "[1,]", "[,1]", "{,}", #"{"a":1,}"#, #"{"a"}"#, #"{"a":}"#, #"{a:1}"#, "{'a':1}",
        "tru", "True", "nul", "falsey", "[1] x", "{}{}", "{} \u{0}", "\u{FEFF}{}", "[1\n,2\t]x", "/*c*/{}",
    ])
    func rejectsBadDocuments(_ json: String) {
        #expect(isRejected(json))
    }

    @Test func acceptsWhitespaceAroundAndInside() throws {
        #expect(try parse(" \t\r\n[ 1 , { \"a\" : [ ] } ]\n  ") == .array([
            .number(.init(text: "1", isIntegerLiteral: true, isNegative: false, integer: 1)),
            .object([.init(key: "a", value: .array([]))]),
        ]))
    }

    @Test func rejectsDuplicateKeysAtEveryDepthAndSaysWhere() {
        let cases: [(String, [String], String)] = [
            (#"{"a":1,"a":2}"#, [], "a"),
            (#"{"x":{"b":1,"c":2,"b":3}}"#, ["x"], "b"),
            (#"{"x":[{"k":1},{"k":1,"k":2}]}"#, ["x", "[1]"], "k"),
            // Equal after unescaping is equal: "\u0061" is "a".
            (#"{"a":1,"\u0061":2}"#, [], "a"),
        ]
        for (json, path, key) in cases {
            do {
                _ = try parse(json)
                Issue.record("accepted \(json)")
            } catch {
                guard case .duplicateKey(_, let gotPath, let gotKey) = error else { Issue.record("\(error)"); continue }
                #expect(gotPath == path && gotKey == key, "\(json)")
            }
        }
        // Same key in sibling objects is fine.
        #expect(!isRejected(#"{"a":{"k":1},"b":{"k":1}}"#))
    }

    /// Keys compare as bytes: NFC `é` and NFD `é` are two keys (a SentencePiece vocabulary holds
    /// both), in small objects and past the set threshold alike.
    @Test func unicodeEquivalentKeysAreDistinct() throws {
        let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
        let small = try parse("{\"\(nfc)\":1,\"\(nfd)\":2}")
        guard case .object(let members) = small else { Issue.record("not an object"); return }
        #expect(members.count == 2)
        #expect(small[nfd] == .number(JSON.Number(text: "2", isIntegerLiteral: true, isNegative: false, integer: 2)))
        let many = (0..<40).map { "\"k\($0)\":\($0)" } + ["\"\(nfc)\":1", "\"\(nfd)\":2"]
        #expect(!isRejected("{" + many.joined(separator: ",") + "}"))
    }

    /// With `.keep`, duplicates are kept in order and lookups take the last, as serde_json does.
    @Test func keepPolicyKeepsDuplicatesAndTheLastWins() throws {
        let value = try JSON.parse(Array(#"{"a":1,"b":0,"a":2}"#.utf8), duplicateKeys: .keep)
        guard case .object(let members) = value else { Issue.record("not an object"); return }
        #expect(members.map(\.key) == ["a", "b", "a"])
        #expect(value["a"]?.compactText == "2")
    }

    /// One escaper: JSON's minimal escapes by default; Python's `json.dumps` (`\b`, `\f` by name,
    /// everything past ASCII as `\uXXXX`, astral characters as surrogate pairs) on request.
    @Test func quotesMinimallyOrAsPythonDoes() {
        let text = "a\"\\\n\u{08}\u{0C}\u{01}é😀"
        #expect(JSON.quoted(text) == #""a\"\\\n\u0008\u000c\u0001é😀""#)
        #expect(JSON.quoted(text, shortControlEscapes: true, ensureASCII: true) == #""a\"\\\n\b\f\u0001\u00e9\ud83d\ude00""#)
        let back = try? JSON.parse(Array(JSON.quoted(text, shortControlEscapes: true, ensureASCII: true).utf8))
        #expect(back == .string(text))
    }

    @Test func findsDuplicatesInLargeObjects() {
        // Past the small-object scan, the set takes over; the duplicate may come anywhere.
        for dupAt in [1, 14, 15, 16, 17, 500] {
            var keys = (0..<600).map { "\"k\($0)\":\($0)" }
            keys.insert("\"k\(dupAt - 1)\":0", at: dupAt)
            #expect(isRejected("{" + keys.joined(separator: ",") + "}"), "duplicate at \(dupAt)")
        }
        let unique = (0..<600).map { "\"k\($0)\":\($0)" }
        #expect(!isRejected("{" + unique.joined(separator: ",") + "}"))
    }

    @Test func limitsNesting() {
        let ok = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        #expect(!isRejected(ok))
        let tooDeep = String(repeating: "[", count: 129) + String(repeating: "]", count: 129)
        #expect(isRejected(tooDeep))
        let mixed = String(repeating: "{\"a\":[", count: 100_000)
        #expect(isRejected(mixed))
    }

    @Test func validatesUTF8Strictly() {
        let good: [[UInt8]] = [[0x41], [0xC3, 0xA9], [0xE6, 0x97, 0xA5], [0xF0, 0x9F, 0x98, 0x80], [0xF4, 0x8F, 0xBF, 0xBF], [0xEF, 0xBF, 0xBF]]
        for g in good { #expect(JSON.firstInvalidUTF8([0x20] + g + [0x20]) == nil, "\(g)") }
        let bad: [([UInt8], Int)] = [
            ([0x20, 0x80], 1), ([0xC0, 0x80], 0), ([0xC1, 0xBF], 0), ([0xE0, 0x80, 0x80], 0), ([0xED, 0xA0, 0x80], 0),
            ([0xF0, 0x80, 0x80, 0x80], 0), ([0xF4, 0x90, 0x80, 0x80], 0), ([0xF5, 0x80, 0x80, 0x80], 0), ([0xFF], 0),
            ([0x41, 0xE6, 0x97], 1), ([0xE6, 0x41, 0x97], 0), ([0xF0, 0x9F, 0x98], 0),
        ]
        for (b, offset) in bad { #expect(JSON.firstInvalidUTF8(b) == offset, "\(b)") }
    }

    /// Whether our value is what JSONSerialization read (on Linux it reads true/false as
    /// NSNumbers 1/0, so a bool matches those; numbers match exactly as integers, else as doubles).
    func matches(_ ours: JSON.Value, _ theirs: Any) -> Bool {
        switch ours {
        case .null: return theirs is NSNull
        case .bool(let b): return (theirs as? NSNumber)?.intValue == (b ? 1 : 0)
        case .number(let n):
            guard let t = theirs as? NSNumber else { return false }
            if let i = n.exactInteger, t.int64Value == i { return true }
            return t.doubleValue == n.double
        case .string(let str): return (theirs as? String).map { $0.utf8.elementsEqual(str.utf8) } ?? false
        case .array(let items):
            guard let t = theirs as? [Any], t.count == items.count else { return false }
            return zip(items, t).allSatisfy { matches($0, $1) }
        case .object(let members):
            guard let t = theirs as? [String: Any], t.count == members.count else { return false }
            return members.allSatisfy { m in t[m.key].map { matches(m.value, $0) } ?? false }
        }
    }

    /// Seeded random valid documents: we read what Foundation's JSONSerialization (an
    /// independent reader) reads, value for value, and what we read writes back (compactText)
    /// to text that reads as the same value.
    @Test func readsRandomValidDocumentsAndRoundTrips() throws {
        var rng = SplitMix64(seed: 42)
        func randomValue(_ depth: Int) -> String {
            switch Int.random(in: 0..<(depth > 3 ? 4 : 7), using: &rng) {
            case 0: return ["0", "-1", "12", "3.25", "-0.5e3", "1E2", "9007199254740993"].randomElement(using: &rng)!
            case 1: return ["true", "false", "null"].randomElement(using: &rng)!
            case 2, 3: return JSON.quoted(["", "a", "é", "😀", "q\"b", "back\\slash", "nl\n", "\u{1}"].randomElement(using: &rng)!)
            case 4: return "[" + (0..<Int.random(in: 0...3, using: &rng)).map { _ in randomValue(depth + 1) }.joined(separator: ",") + "]"
            default:
                let n = Int.random(in: 0...4, using: &rng)
                return "{" + (0..<n).map { "\"k\($0)\":" + randomValue(depth + 1) }.joined(separator: ",") + "}"
            }
        }
        for _ in 0..<300 {
            let text = "{\"root\":" + randomValue(0) + "}"
            let ours = try parse(text)
            let theirs = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            #expect(matches(ours, theirs), "\(text): Foundation read \(theirs)")
            // Our re-serialization parses back to the same value.
            #expect(try parse(ours.compactText) == ours, "\(text)")
        }
    }
}
