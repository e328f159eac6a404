import Foundation
import Testing

@testable import Safetensors

/// What the Python safetensors library saw in a fixture (X.expected.json beside X.safetensors).
struct ExpectedShard: Decodable {
    struct Tensor: Decodable {
        var name: String
        var dtype: String
        var shape: [Int]
        var dataOffsets: [Int64]
        var fnv1a64: String
    }
    var file: String
    var fileSize: Int64
    var headerLength: Int64
    var metadata: [String: String]?
    var tensors: [Tensor]
}

struct ExpectedIndex: Decodable {
    var weightMap: [String: String]
    var shards: [String]
    var totalSize: Int64
}

func decodeExpected<T: Decodable>(_ type: T.Type, _ relativePath: String) throws -> T {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    return try decoder.decode(T.self, from: Data(contentsOf: fixturesDirectory.appendingPathComponent(relativePath)))
}

let shardFixtures = [
    "dtypes", "edge_cases", "no_metadata",
    "sharded/model-00001-of-00003", "sharded/model-00002-of-00003", "sharded/model-00003-of-00003",
]

struct ReferenceFixtureTests {
    @Test(arguments: shardFixtures)
    func headerMatchesWhatThePythonLibrarySees(_ fixture: String) throws {
        let expected = try decodeExpected(ExpectedShard.self, fixture + ".expected.json")
        let bytes = try fixtureBytes(fixture + ".safetensors")
        #expect(Int64(bytes.count) == expected.fileSize)

        let header = try SafetensorsHeader.read(path: fixturesDirectory.appendingPathComponent(fixture + ".safetensors").path)
        #expect(header.fileName == expected.file)
        #expect(header.headerLength == expected.headerLength)
        #expect(header.dataStart == 8 + expected.headerLength)
        #expect(header.expectedFileSize == expected.fileSize)
        #expect(header.metadata == (expected.metadata ?? [:]))
        #expect(header.tensors.count == expected.tensors.count)
        checkInvariants(header, fileSize: expected.fileSize)

        for want in expected.tensors {
            guard let got = header.tensor(named: want.name) else {
                Issue.record("\(fixture): tensor \(want.name) missing")
                continue
            }
            #expect(got.dtype.rawValue == want.dtype, "\(want.name)")
            #expect(got.shape == want.shape, "\(want.name)")
            #expect([got.dataOffsets.lowerBound, got.dataOffsets.upperBound] == want.dataOffsets, "\(want.name)")
            #expect(got.shard == expected.file)
            // The file range must hold exactly the bytes safe_open returned for this tensor.
            let slice = bytes[Int(got.fileRange.lowerBound)..<Int(got.fileRange.upperBound)]
            #expect(fnv1a64(slice) == want.fnv1a64, "\(want.name): file range \(got.fileRange) holds other bytes")
        }

        // The other two entry points agree with read(path:).
        let fromPrefix = try SafetensorsHeader.parse(fileName: expected.file, prefix: bytes, fileSize: expected.fileSize)
        #expect(fromPrefix.tensors == header.tensors)
        let n = try SafetensorsHeader.headerLength(fileName: expected.file, first8: bytes[0..<8], fileSize: expected.fileSize)
        let fromParts = try SafetensorsHeader.parse(
            fileName: expected.file, headerBytes: Data(bytes[8..<Int(8 + n)]), headerLength: n, fileSize: nil)
        #expect(fromParts.tensors == header.tensors)
        #expect(fromParts.metadata == header.metadata)
    }

    @Test func everyDTypeTheLibraryWritesIsCovered() throws {
        let expected = try decodeExpected(ExpectedShard.self, "dtypes.expected.json")
        let written = Set(expected.tensors.map(\.dtype))
        // F6_E2M3 and F6_E3M2 have no torch type, so only the hand-built tests cover them.
        #expect(Set(DType.allCases.map(\.rawValue)).subtracting(written) == ["F6_E2M3", "F6_E3M2"])
        let header = try SafetensorsHeader.parse(fileName: "dtypes.safetensors", prefix: fixtureBytes("dtypes.safetensors"), fileSize: nil)
        #expect(header.tensor(named: "f4")?.shape == [2, 6])  // two F4 values per byte
        #expect(header.tensor(named: "f4")?.byteCount == 6)
    }

    @Test func indexMatchesWhatThePythonLibraryWrote() throws {
        let expected = try decodeExpected(ExpectedIndex.self, "sharded/model.safetensors.index.expected.json")
        let index = try SafetensorsIndex.parse(
            fileName: "model.safetensors.index.json", data: fixtureBytes("sharded/model.safetensors.index.json"))
        #expect(index.weightMap == expected.weightMap)
        #expect(index.shards == expected.shards)
        #expect(index.totalSize == expected.totalSize)
        #expect(index.metadata == ["total_size": String(expected.totalSize)])

        let headers = try index.shards.map { try SafetensorsHeader.read(path: fixturesDirectory.appendingPathComponent("sharded/" + $0).path) }
        try index.check(against: headers)
        #expect(headers.reduce(0) { $0 + $1.dataSize } == expected.totalSize)
    }

    @Test func readNamesTheFullPathWhenTheFileIsBad() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-tests-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var bytes = try fixtureBytes("no_metadata.safetensors")
        bytes.removeLast()
        let path = dir.appendingPathComponent("cut.safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try SafetensorsHeader.read(path: path)
        } throws: { error in
            guard let e = error as? SafetensorsError else { return false }
            return e.file == path && e.kind == .outOfBounds && e.tensor == "weight"
        }
        #expect {
            _ = try SafetensorsHeader.read(path: dir.appendingPathComponent("absent.safetensors").path)
        } throws: { error in
            (error as? SafetensorsError)?.kind == .io
        }
    }
}
