import Foundation
import JSON

/// A safetensors file laid out exactly as given (tensors in `tensors` order, F32, one
/// dimension), for tests that need a layout no fixture has (e.g. out of forward-pass order).
public struct SafetensorsFile: Sendable {
    public struct Tensor: Sendable {
        public var name: String
        public var bytes: Data
        public init(_ name: String, bytes: Data) {
            self.name = name
            self.bytes = bytes
        }
    }

    public let data: Data
    /// Each tensor's byte range in the file (header included), by name.
    public let fileRanges: [String: Range<Int64>]

    public init(_ tensors: [Tensor]) {
        var offset = 0
        var entries: [String] = []
        var dataRanges: [(String, Range<Int>)] = []
        for t in tensors {
            precondition(t.bytes.count % 4 == 0, "F32 tensors hold whole floats")
            entries.append("\(JSON.quoted(t.name)):{\"dtype\":\"F32\",\"shape\":[\(t.bytes.count / 4)],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            dataRanges.append((t.name, offset..<(offset + t.bytes.count)))
            offset += t.bytes.count
        }
        var header = Data(("{" + entries.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var file = Data()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(header)
        for t in tensors { file.append(t.bytes) }
        data = file
        let start = Int64(8 + header.count)
        fileRanges = Dictionary(uniqueKeysWithValues: dataRanges.map { ($0.0, (start + Int64($0.1.lowerBound))..<(start + Int64($0.1.upperBound))) })
    }

    /// Where the tensor bytes start (the 8-byte length and the header come before).
    public var dataStart: Int64 { fileRanges.values.map(\.lowerBound).min() ?? Int64(data.count) }
}
