import Foundation
import Testing
import TestSupport

@testable import Safetensors

/// Each validation rule, broken on purpose from a valid header, must be rejected with an error
/// naming the tensor and field; then thousands of seeded random mutations must each either be
/// rejected or parse into a header that keeps every guarantee — never a crash.
struct MalformedHeaderTests {
    let a = Entry("a", shape: [2], offsets: (0, 8))
    let b = Entry("b", dtype: "F16", shape: [2, 2], offsets: (8, 16))

    var valid: [UInt8] { shard(json: headerJSON([a, b]), dataSize: 16) }

    @Test func theBaseCaseIsValid() throws {
        let h = try parseShard(valid)
        #expect(h.tensors.map(\.name) == ["a", "b"])
        #expect(h.tensors[1].fileRange == (h.dataStart + 8)..<(h.dataStart + 16))
        checkInvariants(h, fileSize: Int64(valid.count))
    }

    // MARK: Header length

    @Test func headerLengthOfZeroIsRejected() {
        expectRejected([0, 0, 0, 0, 0, 0, 0, 0] + Array("{}".utf8), kind: .headerLength, tensor: nil, field: "header length", mentions: "is 0")
    }

    @Test func headerLengthAboveTheLimitIsRejected() {
        var bytes = valid
        withUnsafeBytes(of: UInt64(100_000_001).littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        expectRejected(bytes, kind: .headerLength, tensor: nil, field: "header length", mentions: "100000000")
        // Even without the file size, as in a first ranged read of an object.
        #expect(throws: SafetensorsError.self) {
            try SafetensorsHeader.headerLength(fileName: "x", first8: bytes.prefix(8), fileSize: nil)
        }
        withUnsafeBytes(of: UInt64.max.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        expectRejected(bytes, kind: .headerLength, tensor: nil, field: "header length")
    }

    @Test func headerLengthPastTheEndOfTheFileIsRejected() {
        let bytes = Array(valid.prefix(20))
        expectRejected(bytes, kind: .headerLength, tensor: nil, field: "header length", mentions: "past the end of the 20-byte file")
    }

    @Test func fewerThanEightBytesAreRejected() {
        expectRejected([1, 0, 0], kind: .truncated, tensor: nil, field: "header length")
        expectRejected([], kind: .truncated, tensor: nil, field: "header length")
    }

    @Test func headerBytesThatDisagreeWithTheLengthAreRejected() {
        #expect(throws: SafetensorsError.self) {
            try SafetensorsHeader.parse(fileName: "x", headerBytes: Array("{}".utf8), headerLength: 3, fileSize: nil)
        }
        // A prefix too short for the header says how much to read.
        do {
            _ = try SafetensorsHeader.parse(fileName: "x", prefix: valid.prefix(30), fileSize: nil)
            Issue.record("accepted a prefix shorter than the header")
        } catch {
            #expect(error.kind == .truncated)
            #expect(error.message.contains("read the first"))
        }
    }

    // MARK: Encoding and syntax

    @Test func nonUTF8HeaderIsRejected() {
        var json = Array(headerJSON([a, b]).utf8)
        json[3] = 0xFF  // the quote closing the name "a"
        expectRejected(shard(headerBytes: json, dataSize: 16), kind: .encoding, tensor: nil, field: nil, mentions: "byte 3 of the header (file offset 11)")
        // Overlong encoding of '/' and an encoded surrogate are not UTF-8 either.
        for bad: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]] {
            let j = Array("{\"".utf8) + bad + Array("\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}".utf8)
            expectRejected(shard(headerBytes: j, dataSize: 0), kind: .encoding, tensor: nil, field: nil)
        }
    }

    @Test func invalidJSONIsRejectedNamingTheTensor() {
        let json = headerJSON([a, b]).replacingOccurrences(of: "\"shape\":[2,2]", with: "\"shape\" [2,2]")
        expectRejected(shard(json: json, dataSize: 16), kind: .syntax, tensor: "b", field: nil, mentions: "expected ':'")
        let json2 = headerJSON([a, b]).replacingOccurrences(of: "[0,8]", with: "[0,08]")
        expectRejected(shard(json: json2, dataSize: 16), kind: .syntax, tensor: "a", field: "data_offsets", mentions: "leading zero")
    }

    @Test func trailingGarbageIsRejectedButSpacePaddingIsNot() throws {
        let json = headerJSON([a, b])
        expectRejected(shard(json: json + "x", dataSize: 16), kind: .syntax, tensor: nil, field: nil, mentions: "after the end of the JSON value")
        expectRejected(shard(json: json + "\0", dataSize: 16, pad: false), kind: .syntax, tensor: nil, field: nil)
        expectRejected(shard(json: json + "{}", dataSize: 16), kind: .syntax, tensor: nil, field: nil)
        // Spaces (the writer's padding) and other JSON whitespace are fine, as in the reference reader.
        _ = try parseShard(shard(json: json + "       ", dataSize: 16, pad: false))
        _ = try parseShard(shard(json: " \n" + json + "\t\r\n ", dataSize: 16))
    }

    @Test func absurdNestingIsRejectedWithoutExhaustingTheStack() {
        let deep = String(repeating: "[", count: 200_000)
        let json = "{\"a\":{\"dtype\":\"F32\",\"shape\":\(deep)"
        expectRejected(shard(json: json, dataSize: 0), kind: .syntax, tensor: "a", field: "shape", mentions: "nesting deeper than 128")
    }

    // MARK: Duplicate keys

    @Test func aTensorNamedTwiceIsRejected() {
        let json = headerJSON([a, b, Entry("a", shape: [0], offsets: (16, 16))])
        expectRejected(shard(json: json, dataSize: 16), kind: .duplicateKey, tensor: "a", field: nil, mentions: "twice")
    }

    @Test func aFieldNamedTwiceIsRejected() {
        var dup = b
        dup.extra = ",\"dtype\":\"F16\""
        expectRejected(shard(json: headerJSON([a, dup]), dataSize: 16), kind: .duplicateKey, tensor: "b", field: "dtype")
    }

    @Test func aMetadataKeyNamedTwiceIsRejected() {
        let json = headerJSON([a, b], metadata: "{\"format\":\"pt\",\"format\":\"np\"}")
        expectRejected(shard(json: json, dataSize: 16), kind: .duplicateKey, tensor: "__metadata__", field: "format")
        let json2 = "{\"__metadata__\":{},\"__metadata__\":{}," + headerJSON([a, b]).dropFirst()
        expectRejected(shard(json: json2, dataSize: 16), kind: .duplicateKey, tensor: "__metadata__", field: nil)
    }

    @Test func duplicatesAmongThousandsOfTensorsAreFound() {
        var entries = (0..<3000).map { Entry("t\($0)", shape: [1], offsets: (Int64($0) * 4, Int64($0) * 4 + 4)) }
        entries.append(Entry("t2999", shape: [0], offsets: (12000, 12000)))
        expectRejected(shard(json: headerJSON(entries), dataSize: 12000), kind: .duplicateKey, tensor: "t2999", field: nil)
    }

    // MARK: dtype, shape, data_offsets

    @Test func unknownOrMistypedDTypeIsRejected() {
        for (dtype, mention) in [("\"F33\"", "unknown dtype \"F33\""), ("\"f32\"", "unknown dtype"), ("32", "must be a string"), ("null", "must be a string")] {
            var bad = b
            bad.dtype = dtype
            expectRejected(shard(json: headerJSON([a, bad]), dataSize: 16), kind: .dtype, tensor: "b", field: "dtype", mentions: mention)
        }
    }

    @Test func badShapesAreRejected() {
        let cases: [(String, String)] = [
            ("4", "must be an array"), ("\"[4]\"", "must be an array"), ("[2,-2]", "shape[1] is negative"),
            ("[-0,4]", "shape[0] is negative"), ("[2.0,2]", "shape[0] must be an integer"), ("[2,2e0]", "must be an integer"),
            ("[2,\"2\"]", "must be a non-negative integer"), ("[2,[2]]", "must be a non-negative integer"),
            ("[18446744073709551616]", "too large"), ("[2,null]", "must be a non-negative integer"),
        ]
        for (shape, mention) in cases {
            var bad = b
            bad.shape = shape
            expectRejected(shard(json: headerJSON([a, bad]), dataSize: 16), kind: .shape, tensor: "b", field: "shape", mentions: mention)
        }
    }

    @Test func badDataOffsetsAreRejected() {
        let cases: [(String, String)] = [
            ("[8]", "with 1 element"), ("[8,16,16]", "with 3 elements"), ("[]", "with 0 elements"), ("{\"begin\":8}", "found an object"),
            ("[16,8]", "begin 16 is after end 8"), ("[-8,16]", "begin is negative"), ("[8,16.0]", "end must be an integer"),
            ("[8,\"16\"]", "end must be a non-negative integer"), ("[8,99999999999999999999]", "too large"),
        ]
        for (offsets, mention) in cases {
            var bad = b
            bad.offsets = offsets
            expectRejected(shard(json: headerJSON([a, bad]), dataSize: 16), kind: .dataOffsets, tensor: "b", field: "data_offsets", mentions: mention)
        }
    }

    @Test func missingFieldsAreRejected() {
        let entries = [
            ("shape", "{\"b\":{\"dtype\":\"F16\",\"data_offsets\":[0,8]}}"),
            ("dtype", "{\"b\":{\"shape\":[4],\"data_offsets\":[0,8]}}"),
            ("data_offsets", "{\"b\":{\"dtype\":\"F16\",\"shape\":[4]}}"),
        ]
        for (field, json) in entries {
            expectRejected(shard(json: json, dataSize: 8), kind: field == "data_offsets" ? .dataOffsets : field == "dtype" ? .dtype : .shape,
                           tensor: "b", field: field, mentions: "missing")
        }
    }

    @Test func unknownFieldsAreIgnoredAsTheReferenceReaderDoes() throws {
        var extra = b
        extra.extra = ",\"quantization\":{\"bits\":4}"
        let h = try parseShard(shard(json: headerJSON([a, extra]), dataSize: 16))
        #expect(h.tensor(named: "b")?.shape == [2, 2])
    }

    @Test func sizeThatDisagreesWithShapeAndDTypeIsRejected() {
        var bad = b
        bad.dtype = "\"F32\""  // [2, 2] of F32 is 16 bytes, not 8
        expectRejected(shard(json: headerJSON([a, bad]), dataSize: 16), kind: .sizeMismatch, tensor: "b", field: "data_offsets",
                       mentions: "span 8 bytes, but shape [2, 2] of F32 needs 16")
    }

    @Test func shapesWhoseSizeOverflowsAreRejectedWithoutTrapping() {
        for shape in ["[4294967296,4294967296]", "[9223372036854775807,2]", "[3037000500,3037000500,0]"] {
            var bad = b
            bad.shape = shape
            expectRejected(shard(json: headerJSON([a, bad]), dataSize: 16), kind: .sizeMismatch, tensor: "b", field: "shape", mentions: "more than 2^63 elements")
        }
        var bits = b
        bits.dtype = "\"F64\""
        bits.shape = "[1152921504606846976]"  // 2^60 elements: fits, but 2^66 bits do not
        expectRejected(shard(json: headerJSON([a, bits]), dataSize: 16), kind: .sizeMismatch, tensor: "b", field: "shape")
    }

    @Test func subByteDTypesMustFillWholeBytes() throws {
        let ok = Entry("q", dtype: "F4", shape: [2, 3], offsets: (0, 3))
        let h = try parseShard(shard(json: headerJSON([ok]), dataSize: 3))
        #expect(h.tensors[0].byteCount == 3)
        #expect(DType.f4.byteSize == nil && DType.bf16.byteSize == 2)
        let six = Entry("s", dtype: "F6_E2M3", shape: [4], offsets: (0, 3))
        _ = try parseShard(shard(json: headerJSON([six]), dataSize: 3))
        let odd = Entry("q", dtype: "F4", shape: [3], offsets: (0, 2))
        expectRejected(shard(json: headerJSON([odd]), dataSize: 2), kind: .sizeMismatch, tensor: "q", field: "shape", mentions: "byte boundary")
    }

    // MARK: Layout of the data section

    @Test func tensorsPastTheDataSectionAreRejected() {
        expectRejected(shard(json: headerJSON([a, b]), dataSize: 12), kind: .outOfBounds, tensor: "b", field: "data_offsets", mentions: "holds 12 bytes")
        // Offsets near Int64.max with an unknown file size cannot wrap fileRange.
        let huge = Entry("h", dtype: "U8", shape: [1], offsets: (Int64.max - 1, Int64.max))
        expectRejected(shard(json: headerJSON([huge]), dataSize: 0), kind: .outOfBounds, tensor: "h", field: "data_offsets", knownSize: false)
    }

    @Test func overlappingTensorsAreRejected() {
        let c = Entry("c", shape: [2], offsets: (4, 12))
        let d = Entry("d", dtype: "U8", shape: [4], offsets: (12, 16))
        expectRejected(shard(json: headerJSON([a, c, d]), dataSize: 16), kind: .overlap, tensor: "c", field: "data_offsets", mentions: "overlap tensor \"a\"")
        // Same range twice.
        let a2 = Entry("a2", shape: [2], offsets: (0, 8))
        expectRejected(shard(json: headerJSON([a, a2, Entry("z", shape: [2], offsets: (8, 16))]), dataSize: 16), kind: .overlap, tensor: "a2", field: "data_offsets")
        // An empty tensor inside another's bytes overlaps it (the reference reader rejects it too).
        let inside = Entry("e", shape: [0], offsets: (4, 4))
        expectRejected(shard(json: headerJSON([a, b, inside]), dataSize: 16), kind: .overlap, tensor: "e", field: "data_offsets")
    }

    @Test func holesInTheDataSectionAreRejected() {
        let late = Entry("b", dtype: "F16", shape: [2, 2], offsets: (12, 20))
        expectRejected(shard(json: headerJSON([a, late]), dataSize: 20), kind: .gap, tensor: "b", field: "data_offsets", mentions: "data bytes 8..<12 belong to no tensor")
        // A hole at the start: the first tensor must begin at 0.
        let first = Entry("f", shape: [1], offsets: (4, 8))
        expectRejected(shard(json: headerJSON([first]), dataSize: 8), kind: .gap, tensor: "f", field: "data_offsets")
        // Holes are found without the file size too.
        expectRejected(shard(json: headerJSON([a, late]), dataSize: 20), kind: .gap, tensor: "b", field: "data_offsets", knownSize: false)
    }

    @Test func bytesAfterTheLastTensorAreRejected() throws {
        expectRejected(shard(json: headerJSON([a, b]), dataSize: 20), kind: .gap, tensor: "b", field: "data_offsets", mentions: "the last 4 bytes belong to no tensor")
        expectRejected(shard(json: "{}", dataSize: 1), kind: .gap, tensor: nil, field: nil)
        // Unknown file size: the data section is taken to end where the tensors do.
        let h = try parseShard(shard(json: headerJSON([a, b]), dataSize: 20), knownSize: false)
        #expect(h.dataSize == 16)
    }

    @Test func emptyTensorsMayShareAnOffset() throws {
        let e1 = Entry("e1", shape: [0], offsets: (8, 8))
        let e2 = Entry("e2", dtype: "BF16", shape: [3, 0], offsets: (8, 8))
        let h = try parseShard(shard(json: headerJSON([b, e2, a, e1]), dataSize: 16))
        #expect(h.tensors.map(\.name) == ["a", "e2", "e1", "b"])  // by offset, then header order
        let empty = try parseShard(shard(json: "{}", dataSize: 0))
        #expect(empty.tensors.isEmpty && empty.dataSize == 0)
    }

    // MARK: __metadata__ and the shape of the document

    @Test func metadataMustBeAStringMap() throws {
        expectRejected(shard(json: headerJSON([a, b], metadata: "{\"format\":\"pt\",\"version\":2}"), dataSize: 16),
                       kind: .metadata, tensor: "__metadata__", field: "version", mentions: "the number 2")
        expectRejected(shard(json: headerJSON([a, b], metadata: "[\"pt\"]"), dataSize: 16), kind: .metadata, tensor: "__metadata__", field: nil)
        // A tensor named __metadata__ is a metadata map that is not a string map.
        let json = "{\"__metadata__\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
        expectRejected(shard(json: json, dataSize: 8), kind: .metadata, tensor: "__metadata__", field: "shape")
        // null means none, as in the reference reader; metadata may come anywhere.
        #expect(try parseShard(shard(json: headerJSON([a, b], metadata: "null"), dataSize: 16)).metadata.isEmpty)
        let late = "{" + a.json + ",\"__metadata__\":{\"k\":\"v\",\"é\":\"\\u00e9\"}," + b.json + "}"
        #expect(try parseShard(shard(json: late, dataSize: 16)).metadata == ["k": "v", "é": "é"])
    }

    @Test func theHeaderMustBeAnObjectOfObjects() {
        expectRejected(shard(json: "[1,2]", dataSize: 0), kind: .structure, tensor: nil, field: nil, mentions: "found an array")
        expectRejected(shard(json: "\"x\"", dataSize: 0), kind: .structure, tensor: nil, field: nil)
        expectRejected(shard(json: "{\"a\":[0,8]}", dataSize: 8), kind: .structure, tensor: "a", field: nil)
        expectRejected(shard(json: "{\"a\":null}", dataSize: 0), kind: .structure, tensor: "a", field: nil)
    }

    @Test func errorsSayWhereAndWhatToDo() {
        let e = SafetensorsError(.sizeMismatch, file: "model-00001-of-00002.safetensors", tensor: "lm_head.weight", field: "data_offsets", "span 8 bytes")
        #expect(e.description.hasPrefix("model-00001-of-00002.safetensors: tensor \"lm_head.weight\", field \"data_offsets\": span 8 bytes ("))
        #expect(e.description.contains("upload it again"))
        let h = SafetensorsError(.headerLength, file: "x.safetensors", field: "header length", "is 0")
        #expect(h.description.hasPrefix("x.safetensors: field \"header length\": is 0 ("))
    }

    // MARK: Generated corpus

    /// Valid shards to start mutating from: the reference fixtures and generated headers.
    func seeds(_ rng: inout SplitMix64) throws -> [[UInt8]] {
        var out = try ["dtypes", "edge_cases", "no_metadata", "sharded/model-00003-of-00003"].map { try fixtureBytes($0 + ".safetensors") }
        for count in [0, 1, 3, 8, 20] {
            let (entries, size) = validEntries(count: count, rng: &rng)
            let meta: String? = count % 2 == 0 ? "{\"format\":\"pt\",\"esc\":\"\\ud83d\\ude00\\n\"}" : nil
            out.append(shard(json: headerJSON(entries, metadata: meta), dataSize: size))
        }
        return out
    }

    /// Bytes that matter to JSON and to the numbers in a header, so mutations reach the validator.
    static let interesting: [UInt8] = Array("{}[]\":,\\-.0123456789eEtfnul uU ".utf8) + [0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xED, 0xF0, 0xFF]

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var b = input
        let headerEnd = min(b.count, 8 + Int(b.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } & 0xFFFFF))
        // Mostly inside the header, where parsing happens.
        func position() -> Int {
            guard !b.isEmpty else { return 0 }
            if headerEnd > 8, Int.random(in: 0..<10, using: &rng) < 8 { return Int.random(in: 8..<headerEnd, using: &rng) }
            return Int.random(in: 0..<b.count, using: &rng)
        }
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            switch Int.random(in: 0..<11, using: &rng) {
            case 0 where !b.isEmpty:  // flip a bit
                let p = position(); if p < b.count { b[p] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng) }
            case 1 where !b.isEmpty:  // overwrite with a JSON-significant byte
                let p = position(); if p < b.count { b[p] = interesting.randomElement(using: &rng)! }
            case 2:  // insert
                let p = min(position(), b.count)
                b.insert(interesting.randomElement(using: &rng)!, at: p)
            case 3 where !b.isEmpty:  // delete a short run
                let p = position(); if p < b.count { b.removeSubrange(p..<min(b.count, p + Int.random(in: 1...4, using: &rng))) }
            case 4:  // truncate
                b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng)))
            case 5 where b.count >= 8:  // nudge the header length
                var n = b.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
                n = [n &+ 1, n &- 1, n &+ 8, 0, UInt64.max, 100_000_001, n << 1].randomElement(using: &rng)!
                withUnsafeBytes(of: n.littleEndian) { b.replaceSubrange(0..<8, with: $0) }
            case 6:  // replace a digit run with another number (reaches size, bounds, overlap rules)
                let p = position()
                if p < b.count, let start = b[p...].firstIndex(where: { $0 >= 0x30 && $0 <= 0x39 }) {
                    let end = b[start...].firstIndex(where: { !($0 >= 0x30 && $0 <= 0x39) }) ?? b.count
                    let replacement = ["0", "1", "4", "7", "8", "16", "-1", "1.5", "1e3", "4294967296", "9223372036854775807", "18446744073709551616"].randomElement(using: &rng)!
                    b.replaceSubrange(start..<end, with: Array(replacement.utf8))
                }
            case 7:  // grow or shrink the data section
                if Bool.random(using: &rng) { b += [0, 0, 0, 0] } else if b.count > 4 { b.removeLast(4) }
            case 8:  // repeat a member: from a quote up to the next comma (duplicate keys)
                let p = position()
                if p < b.count, let q = b[p...].firstIndex(of: UInt8(ascii: "\"")), let c = b[q...].firstIndex(of: UInt8(ascii: ",")) {
                    b.insert(contentsOf: b[q...c], at: q)
                }
            case 9:  // move a tensor, keeping its size (overlaps and holes that pass the size check)
                shiftOffsets(&b, at: position(), by: [-8, -4, -2, -1, 1, 2, 4, 8].randomElement(using: &rng)!)
            default:  // duplicate a chunk of the header
                let p = position(), len = Int.random(in: 1...40, using: &rng)
                if p < b.count { b.insert(contentsOf: b[p..<min(b.count, p + len)], at: min(b.count, p + len)) }
            }
        }
        // Keep the length prefix consistent half the time, so mutations reach the JSON rather
        // than stopping at the length check.
        if b.count >= 8, Bool.random(using: &rng) {
            let delta = b.count - input.count
            let n = Int64(bitPattern: input.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
            if delta != 0, n + Int64(delta) > 0, n + Int64(delta) <= 8 * 1024 * 1024 {
                withUnsafeBytes(of: UInt64(n + Int64(delta)).littleEndian) { b.replaceSubrange(0..<8, with: $0) }
            }
        }
        return b
    }

    /// Rewrites the first `"data_offsets":[begin,end]` at or after `position` to `[begin+delta,end+delta]`.
    static func shiftOffsets(_ b: inout [UInt8], at position: Int, by delta: Int64) {
        let key = Array("\"data_offsets\":[".utf8)
        guard position < b.count, let start = (position..<max(position, b.count - key.count)).first(where: { b[$0..<($0 + key.count)].elementsEqual(key) }) else { return }
        let open = start + key.count
        guard let close = b[open...].firstIndex(of: UInt8(ascii: "]")) else { return }
        let parts = String(decoding: b[open..<close], as: UTF8.self).split(separator: ",")
        guard parts.count == 2, let begin = Int64(parts[0]), let end = Int64(parts[1]) else { return }
        b.replaceSubrange(open..<close, with: Array("\(begin &+ delta),\(end &+ delta)".utf8))
    }

    @Test func randomMutationsAreRejectedOrStayValid() throws {
        var rng = SplitMix64(seed: 0x5AFE_7E45)
        let corpus = try seeds(&rng)
        var rejected: [SafetensorsError.Kind: Int] = [:]
        var accepted = 0
        for iteration in 0..<4000 {
            let input = corpus[iteration % corpus.count]
            let bytes = Self.mutate(input, &rng)
            for knownSize in [true, false] {
                do {
                    let h = try parseShard(bytes, knownSize: knownSize)
                    checkInvariants(h, fileSize: knownSize ? Int64(bytes.count) : nil)
                    accepted += 1
                } catch {
                    // Typed throws already guarantee the type; the message must be usable.
                    #expect(!error.message.isEmpty && error.file == "test.safetensors")
                    rejected[error.kind, default: 0] += 1
                }
            }
        }
        // The corpus reaches most rules, not just the first check.
        let reached = Set(rejected.keys)
        let wanted: Set<SafetensorsError.Kind> = [.truncated, .headerLength, .encoding, .syntax, .duplicateKey, .dtype, .shape, .dataOffsets, .sizeMismatch, .outOfBounds, .overlap, .gap]
        #expect(wanted.subtracting(reached).isEmpty, "rules never reached: \(wanted.subtracting(reached)); reached \(rejected)")
        #expect(accepted > 100, "only \(accepted) mutations stayed valid")
        print("random header mutations: \(accepted) parsed valid, rejected by rule: \(rejected.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
    }
}
