import Foundation
import Testing
import TestSupport

import JSON
@testable import Safetensors

/// Tests/SafetensorsTests/Fixtures, written by scripts/fixtures/make_safetensors_fixtures.py.
let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

func fixtureBytes(_ relativePath: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: fixturesDirectory.appendingPathComponent(relativePath)))
}

/// FNV-1a 64, as the fixture script hashes each tensor's bytes.
func fnv1a64(_ bytes: ArraySlice<UInt8>) -> String {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes {
        h ^= UInt64(b)
        h = h &* 0x100_0000_01B3
    }
    let hex = String(h, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}

/// A tensor entry for a hand-built header; fields are JSON text so tests can put anything there.
struct Entry {
    var name: String
    var dtype = "\"F32\""
    var shape = "[1]"
    var offsets = "[0,4]"
    var extra = ""

    init(_ name: String, dtype: String = "F32", shape: [Int], offsets: (Int64, Int64)) {
        self.name = name
        self.dtype = "\"\(dtype)\""
        self.shape = "[" + shape.map(String.init).joined(separator: ",") + "]"
        self.offsets = "[\(offsets.0),\(offsets.1)]"
    }

    var json: String {
        "\(JSON.quoted(name)):{\"dtype\":\(dtype),\"shape\":\(shape),\"data_offsets\":\(offsets)\(extra)}"
    }
}

/// Header JSON for `entries`, with `__metadata__` first when given (as the reference writer does).
func headerJSON(_ entries: [Entry], metadata: String? = nil) -> String {
    var parts: [String] = []
    if let metadata { parts.append("\"__metadata__\":\(metadata)") }
    parts += entries.map(\.json)
    return "{" + parts.joined(separator: ",") + "}"
}

/// A whole shard: length prefix, JSON padded with spaces to a multiple of 8, `dataSize` data bytes.
func shard(json: String, dataSize: Int, pad: Bool = true) -> [UInt8] {
    var header = Array(json.utf8)
    if pad { header += Array(repeating: 0x20, count: (8 - header.count % 8) % 8) }
    return shard(headerBytes: header, dataSize: dataSize)
}

func shard(headerBytes: [UInt8], dataSize: Int) -> [UInt8] {
    var out: [UInt8] = []
    withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out += $0 }
    out += headerBytes
    out += (0..<dataSize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
    return out
}

/// A valid header of `count` F32/F16 tensors laid end to end; returns the JSON and the data size.
func validEntries(count: Int, rng: inout SplitMix64) -> (entries: [Entry], dataSize: Int) {
    var entries: [Entry] = []
    var offset: Int64 = 0
    for k in 0..<count {
        let dtype = ["F32", "F16", "BF16", "U8", "I64", "BOOL", "F8_E4M3"].randomElement(using: &rng)!
        let rank = Int.random(in: 0...3, using: &rng)
        let shape = (0..<rank).map { _ in Int.random(in: 0...4, using: &rng) }
        let bytes = Int64(shape.reduce(1, *) * DType(rawValue: dtype)!.byteSize!)
        entries.append(Entry("t\(k).weight", dtype: dtype, shape: shape, offsets: (offset, offset + bytes)))
        offset += bytes
    }
    entries.shuffle(using: &rng)  // header order need not be offset order
    return (entries, Int(offset))
}

func parseShard(_ bytes: [UInt8], name: String = "test.safetensors", knownSize: Bool = true) throws(SafetensorsError) -> SafetensorsHeader {
    try SafetensorsHeader.parse(fileName: name, prefix: bytes, fileSize: knownSize ? Int64(bytes.count) : nil)
}

/// Parses `bytes` and checks the rejection names what it should.
func expectRejected(
    _ bytes: [UInt8], kind: SafetensorsError.Kind, tensor: String?, field: String?, mentions: String? = nil,
    knownSize: Bool = true, sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        let header = try parseShard(bytes, knownSize: knownSize)
        Issue.record("accepted a header that should fail with \(kind): \(header.tensors.map(\.name))", sourceLocation: sourceLocation)
    } catch {
        #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        #expect(error.file == "test.safetensors", sourceLocation: sourceLocation)
        #expect(error.tensor == tensor, "\(error)", sourceLocation: sourceLocation)
        #expect(error.field == field, "\(error)", sourceLocation: sourceLocation)
        if let mentions {
            #expect(error.message.contains(mentions), "\(error)", sourceLocation: sourceLocation)
        }
        #expect(error.description.hasPrefix("test.safetensors"), sourceLocation: sourceLocation)
    }
}

/// What every accepted header must satisfy, whatever bytes it came from.
func checkInvariants(_ h: SafetensorsHeader, fileSize: Int64?, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(h.dataStart == 8 + h.headerLength, sourceLocation: sourceLocation)
    var cursor: Int64 = 0
    var names = Set<String>()
    for t in h.tensors {
        #expect(t.dataOffsets.lowerBound == cursor, "\(t.name) leaves a hole or overlaps", sourceLocation: sourceLocation)
        cursor = t.dataOffsets.upperBound
        #expect(t.fileRange == (h.dataStart + t.dataOffsets.lowerBound)..<(h.dataStart + t.dataOffsets.upperBound), sourceLocation: sourceLocation)
        #expect(t.dtype.byteCount(elements: t.elementCount) == t.byteCount, sourceLocation: sourceLocation)
        #expect(names.insert(t.name).inserted, sourceLocation: sourceLocation)
        #expect(h.tensor(named: t.name) == t, sourceLocation: sourceLocation)
    }
    #expect(h.dataSize == cursor, sourceLocation: sourceLocation)
    if let fileSize { #expect(h.expectedFileSize == fileSize, sourceLocation: sourceLocation) }
}
