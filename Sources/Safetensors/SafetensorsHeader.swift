import JSON
import Foundation

/// One tensor of a shard, as its validated header describes it.
///
/// Only a parsed header makes one, so: `dataOffsets` spans exactly `elementCount` elements of
/// `dtype`, lies inside the data section, and `fileRange` is the same range shifted by the shard's
/// `dataStart`, so it can be fetched or mmapped as is.
public struct TensorInfo: Sendable, Hashable {
    /// The header key, e.g. `model.layers.0.self_attn.q_proj.weight`.
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range within the data section (the header's `data_offsets`).
    public let dataOffsets: Range<Int64>
    /// Byte range within the shard file (`dataStart + dataOffsets`).
    public let fileRange: Range<Int64>
    /// File name of the shard that holds the tensor.
    public let shard: String

    /// The product of `shape` (1 for a scalar).
    public var elementCount: Int64 { shape.reduce(Int64(1)) { $0 * Int64($1) } }  // validated not to overflow
    public var byteCount: Int64 { dataOffsets.upperBound - dataOffsets.lowerBound }
}

/// The validated header of one `.safetensors` file (a shard).
///
/// A shard is 8 bytes of little-endian header length N, N bytes of JSON, then the data section.
/// Once parsed, the header guarantees: every tensor has a known dtype, a shape of non-negative
/// integers, and `data_offsets` whose length is exactly shape × dtype size; the tensors, sorted
/// by offset, tile the data section from 0 with no overlap and no hole (as the reference Rust
/// reader demands); when the file size was known, the last tensor ends exactly at the end of
/// the file. No JSON key appears twice at any level.
public struct SafetensorsHeader: Sendable {
    /// The reference reader's limit on N; anything bigger is not a header worth trusting.
    public static let maxHeaderLength: Int64 = 100_000_000

    public let fileName: String
    /// N, the length of the JSON header (including its trailing space padding).
    public let headerLength: Int64
    /// File offset of the data section: 8 + N.
    public let dataStart: Int64
    /// Sorted by offset (ties, only possible between empty tensors, in header order).
    public let tensors: [TensorInfo]
    /// `__metadata__`, or empty when the header has none.
    public let metadata: [String: String]
    /// Bytes in the data section: where the last tensor ends.
    public let dataSize: Int64
    private let indexByName: [String: Int]

    /// The size the complete shard has: `dataStart + dataSize`.
    public var expectedFileSize: Int64 { dataStart + dataSize }

    public func tensor(named name: String) -> TensorInfo? {
        indexByName[name].map { tensors[$0] }
    }

    // MARK: Parsing

    /// Reads N from the first 8 bytes of a shard and checks it: not 0, not above
    /// `maxHeaderLength`, and (when `fileSize` is known) not past the end of the file.
    public static func headerLength(fileName: String, first8: some Collection<UInt8>, fileSize: Int64?) throws(SafetensorsError) -> Int64 {
        let field = "header length"
        let bytes = Array(first8.prefix(8))
        guard bytes.count == 8 else {
            throw SafetensorsError(.truncated, file: fileName, field: field,
                                   "got \(bytes.count) bytes; a safetensors file starts with an 8-byte little-endian header length")
        }
        var n: UInt64 = 0
        for (k, b) in bytes.enumerated() { n |= UInt64(b) << (8 * UInt64(k)) }
        guard n > 0 else {
            throw SafetensorsError(.headerLength, file: fileName, field: field,
                                   "header length is 0; even an empty header is the 2 bytes \"{}\"")
        }
        guard n <= UInt64(maxHeaderLength) else {
            throw SafetensorsError(.headerLength, file: fileName, field: field,
                                   "header length \(n) exceeds the limit of \(maxHeaderLength) bytes; bytes 0..<8 are not a safetensors header length")
        }
        let length = Int64(n)
        if let fileSize, 8 + length > fileSize {
            throw SafetensorsError(.headerLength, file: fileName, field: field,
                                   "header length \(length) runs past the end of the \(fileSize)-byte file (header would end at byte \(8 + length))")
        }
        return length
    }

    /// Parses and validates the N JSON bytes that follow the header length.
    ///
    /// - Parameters:
    ///   - headerBytes: file bytes 8..<8+N, exactly `headerLength` of them.
    ///   - fileSize: the shard's size, when known; enables the checks against the end of the data section.
    public static func parse(fileName: String, headerBytes: some Collection<UInt8>, headerLength: Int64, fileSize: Int64?) throws(SafetensorsError) -> SafetensorsHeader {
        guard headerLength > 0, headerLength <= maxHeaderLength else {
            throw SafetensorsError(.headerLength, file: fileName, field: "header length",
                                   "header length \(headerLength) is outside 1...\(maxHeaderLength)")
        }
        let bytes = Array(headerBytes.prefix(Int(headerLength) + 1))  // one extra, to notice too many
        guard Int64(bytes.count) == headerLength else {
            throw SafetensorsError(.truncated, file: fileName, field: "header length",
                                   "got \(bytes.count == Int(headerLength) + 1 ? "more" : String(bytes.count)) header bytes, but the header length says \(headerLength)")
        }
        let dataStart = 8 + headerLength
        var dataSize: Int64? = nil
        if let fileSize {
            guard fileSize >= dataStart else {
                throw SafetensorsError(.headerLength, file: fileName, field: "header length",
                                       "header length \(headerLength) runs past the end of the \(fileSize)-byte file")
            }
            dataSize = fileSize - dataStart
        }

        let root: JSON.Value
        do {
            root = try JSON.parse(bytes)
        } catch {
            throw jsonError(error, file: fileName, what: "header", base: 8)
        }
        guard case .object(let members) = root else {
            throw SafetensorsError(.structure, file: fileName,
                                   "the header must be a JSON object of tensors, found \(root.kindName)")
        }

        var metadata: [String: String] = [:]
        var unsorted: [(info: TensorInfo, order: Int)] = []
        unsorted.reserveCapacity(members.count)
        for member in members {
            if member.key == "__metadata__" {
                metadata = try parseMetadata(member.value, file: fileName)
                continue
            }
            let info = try parseTensor(member, file: fileName, dataStart: dataStart, dataSize: dataSize)
            unsorted.append((info, unsorted.count))
        }

        unsorted.sort {
            ($0.info.dataOffsets.lowerBound, $0.info.dataOffsets.upperBound, $0.order)
                < ($1.info.dataOffsets.lowerBound, $1.info.dataOffsets.upperBound, $1.order)
        }
        // Walk in offset order: each tensor must begin exactly where the bytes so far end.
        var cursor: Int64 = 0
        var coveringTensor: TensorInfo? = nil
        for (info, _) in unsorted {
            let begin = info.dataOffsets.lowerBound
            if begin > cursor {
                throw SafetensorsError(.gap, file: fileName, tensor: info.name, field: "data_offsets",
                                       "data_offsets begin at \(begin), but the tensors before it end at \(cursor): data bytes \(cursor)..<\(begin) belong to no tensor (the data section must be covered from 0 without holes)")
            }
            if begin < cursor, let other = coveringTensor {
                throw SafetensorsError(.overlap, file: fileName, tensor: info.name, field: "data_offsets",
                                       "data_offsets [\(begin), \(info.dataOffsets.upperBound)] overlap tensor \"\(other.name)\" at [\(other.dataOffsets.lowerBound), \(other.dataOffsets.upperBound)]")
            }
            if info.dataOffsets.upperBound > cursor {
                cursor = info.dataOffsets.upperBound
                coveringTensor = info
            }
        }
        if let dataSize, cursor != dataSize {
            // cursor > dataSize was rejected per tensor; here bytes are left over at the end.
            throw SafetensorsError(.gap, file: fileName, tensor: coveringTensor?.name, field: coveringTensor == nil ? nil : "data_offsets",
                                   "the data section holds \(dataSize) bytes (file size \(dataStart + dataSize) minus \(dataStart)), but the tensors end at \(cursor): the last \(dataSize - cursor) bytes belong to no tensor")
        }

        let tensors = unsorted.map(\.info)
        var indexByName: [String: Int] = [:]
        indexByName.reserveCapacity(tensors.count)
        for (k, t) in tensors.enumerated() { indexByName[t.name] = k }
        return SafetensorsHeader(fileName: fileName, headerLength: headerLength, dataStart: dataStart, tensors: tensors,
                                 metadata: metadata, dataSize: cursor, indexByName: indexByName)
    }

    /// Parses a header from the start of a shard: `prefix` holds file bytes from offset 0 and at
    /// least through the end of the header (a whole file, or a large first read).
    public static func parse(fileName: String, prefix: some Collection<UInt8>, fileSize: Int64?) throws(SafetensorsError) -> SafetensorsHeader {
        let n = try headerLength(fileName: fileName, first8: prefix.prefix(8), fileSize: fileSize)
        let header = Array(prefix.dropFirst(8).prefix(Int(n)))  // copies the header only, not a whole mapped file
        guard header.count == Int(n) else {
            throw SafetensorsError(.truncated, file: fileName, field: "header length",
                                   "the header ends at byte \(8 + n), but only \(8 + header.count) bytes were given; read the first \(8 + n) bytes")
        }
        return try parse(fileName: fileName, headerBytes: header, headerLength: n, fileSize: fileSize)
    }

    /// Reads and validates the header of a local shard (the file size is checked too).
    /// `fileName` in the result, and each tensor's `shard`, is the last path component.
    public static func read(path: String) throws(SafetensorsError) -> SafetensorsHeader {
        let url = URL(fileURLWithPath: path)
        let first8: Data, fileSize: Int64
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: url)
        } catch {
            throw SafetensorsError(.io, file: path, "cannot open: \(error.localizedDescription)")
        }
        defer { try? handle.close() }
        do {
            fileSize = Int64(try handle.seekToEnd())
            try handle.seek(toOffset: 0)
            first8 = try handle.read(upToCount: 8) ?? Data()
        } catch {
            throw SafetensorsError(.io, file: path, "cannot read: \(error.localizedDescription)")
        }
        let n = try headerLength(fileName: path, first8: first8, fileSize: fileSize)
        let body: Data
        do {
            body = try handle.read(upToCount: Int(n)) ?? Data()
        } catch {
            throw SafetensorsError(.io, file: path, "cannot read the \(n)-byte header: \(error.localizedDescription)")
        }
        do throws(SafetensorsError) {
            return try parse(fileName: url.lastPathComponent, headerBytes: body, headerLength: n, fileSize: fileSize)
        } catch var error {
            error.file = path  // a person reads this: the full path helps more than the shard name
            throw error
        }
    }

    // MARK: Validation of the parts

    private static func parseMetadata(_ value: JSON.Value, file: String) throws(SafetensorsError) -> [String: String] {
        let name = "__metadata__"
        switch value {
        case .null:
            return [:]  // the reference reader accepts null as "no metadata"
        case .object(let members):
            var out: [String: String] = [:]
            for m in members {
                guard case .string(let s) = m.value else {
                    throw SafetensorsError(.metadata, file: file, tensor: name, field: m.key,
                                           "__metadata__ must map strings to strings, but \"\(m.key)\" is \(m.value.kindName)")
                }
                out[m.key] = s
            }
            return out
        default:
            throw SafetensorsError(.metadata, file: file, tensor: name,
                                   "__metadata__ must be an object of strings, found \(value.kindName); a tensor cannot be named __metadata__")
        }
    }

    private static func parseTensor(_ member: JSON.Member, file: String, dataStart: Int64, dataSize: Int64?) throws(SafetensorsError) -> TensorInfo {
        let name = member.key
        func fail(_ kind: SafetensorsError.Kind, _ field: String?, _ message: String) -> SafetensorsError {
            SafetensorsError(kind, file: file, tensor: name, field: field, message)
        }
        guard case .object = member.value else {
            throw fail(.structure, nil, "expected an object with dtype, shape and data_offsets, found \(member.value.kindName)")
        }
        // Other keys are ignored, as the reference reader ignores them.

        guard let dtypeValue = member.value["dtype"] else { throw fail(.dtype, "dtype", "missing") }
        guard case .string(let dtypeText) = dtypeValue else {
            throw fail(.dtype, "dtype", "must be a string such as \"F32\", found \(dtypeValue.kindName)")
        }
        guard let dtype = DType(rawValue: dtypeText) else {
            throw fail(.dtype, "dtype", "unknown dtype \(JSON.quoted(String(dtypeText.prefix(40)))); known: \(DType.allCases.map(\.rawValue).joined(separator: ", "))")
        }

        /// A non-negative integer literal, or an error saying what `what` is instead.
        func integer(_ value: JSON.Value, _ kind: SafetensorsError.Kind, _ field: String, _ what: String) throws(SafetensorsError) -> Int64 {
            guard case .number(let n) = value else { throw fail(kind, field, "\(what) must be a non-negative integer, found \(value.kindName)") }
            guard n.isIntegerLiteral else { throw fail(kind, field, "\(what) must be an integer, found \(n.shortText)") }
            guard !n.isNegative else { throw fail(kind, field, "\(what) is negative (\(n.shortText))") }
            guard let v = n.integer else { throw fail(kind, field, "\(what) is \(n.shortText), too large for 63 bits") }
            return v
        }

        guard let shapeValue = member.value["shape"] else { throw fail(.shape, "shape", "missing") }
        guard case .array(let dims) = shapeValue else {
            throw fail(.shape, "shape", "must be an array of non-negative integers, found \(shapeValue.kindName)")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        var elements: Int64 = 1
        var elementsOverflow = false
        for (k, dim) in dims.enumerated() {
            let d = try integer(dim, .shape, "shape", "shape[\(k)]")
            shape.append(Int(d))
            // Like the reference reader, an overflowing running product is an error even if a later dimension is 0.
            let (product, overflow) = elements.multipliedReportingOverflow(by: d)
            elements = product
            elementsOverflow = elementsOverflow || overflow
        }
        let shapeText = "[" + shape.prefix(16).map(String.init).joined(separator: ", ") + (shape.count > 16 ? ", …]" : "]")
        guard !elementsOverflow else {
            throw fail(.sizeMismatch, "shape", "shape \(shapeText) has more than 2^63 elements")
        }

        guard let offsetsValue = member.value["data_offsets"] else { throw fail(.dataOffsets, "data_offsets", "missing") }
        guard case .array(let pair) = offsetsValue, pair.count == 2 else {
            throw fail(.dataOffsets, "data_offsets", "must be [begin, end], two non-negative integers; found \(offsetsValue.kindName)\(offsetsValue.arrayCountNote)")
        }
        let begin = try integer(pair[0], .dataOffsets, "data_offsets", "begin")
        let end = try integer(pair[1], .dataOffsets, "data_offsets", "end")
        guard begin <= end else {
            throw fail(.dataOffsets, "data_offsets", "begin \(begin) is after end \(end)")
        }

        let (bits, bitsOverflow) = elements.multipliedReportingOverflow(by: Int64(dtype.bitSize))
        guard !bitsOverflow else {
            throw fail(.sizeMismatch, "shape", "shape \(shapeText) of \(dtype.rawValue) needs more than 2^60 bytes")
        }
        guard bits % 8 == 0 else {
            throw fail(.sizeMismatch, "shape", "\(elements) elements of \(dtype.rawValue) (\(dtype.bitSize) bits each) do not end on a byte boundary")
        }
        guard end - begin == bits / 8 else {
            throw fail(.sizeMismatch, "data_offsets", "data_offsets [\(begin), \(end)] span \(end - begin) bytes, but shape \(shapeText) of \(dtype.rawValue) needs \(bits / 8)")
        }

        if let dataSize, end > dataSize {
            throw fail(.outOfBounds, "data_offsets",
                       "data_offsets [\(begin), \(end)] end past the data section, which holds \(dataSize) bytes (file size \(dataStart + dataSize))")
        }
        guard end <= Int64.max - dataStart else {
            throw fail(.outOfBounds, "data_offsets", "end \(end) is beyond any file size")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end,
                          fileRange: (dataStart + begin)..<(dataStart + end), shard: file)
    }

    /// A JSON reader error as a SafetensorsError, with the offset in the file (`base` + offset in the JSON).
    static func jsonError(_ error: JSON.ParseError, file: String, what: String, base: Int64) -> SafetensorsError {
        func at(_ offset: Int) -> String {
            base == 0 ? "byte \(offset) of the \(what)" : "byte \(offset) of the \(what) (file offset \(base + Int64(offset)))"
        }
        switch error {
        case .invalidUTF8(let offset):
            return SafetensorsError(.encoding, file: file,
                                    "the \(what) is not valid UTF-8: \(at(offset)) starts an invalid sequence")
        case .syntax(let offset, let path, let message):
            return SafetensorsError(.syntax, file: file, tensor: path.first, field: path.count > 1 ? path[1] : nil,
                                    "invalid JSON at \(at(offset)): \(message)")
        case .duplicateKey(let offset, let path, let key):
            let full = path + [key]
            let scope = path.isEmpty ? "the \(what)" : "object \(path.map { JSON.quoted($0) }.joined(separator: "."))"
            return SafetensorsError(.duplicateKey, file: file, tensor: full.first, field: full.count > 1 ? full[1] : nil,
                                    "\(scope) has the key \(JSON.quoted(key)) twice (again at \(at(offset))); readers disagree on which one wins")
        }
    }
}

extension JSON.Value {
    /// ", with N elements" for arrays, so a wrong-length `data_offsets` says how long it was.
    fileprivate var arrayCountNote: String {
        if case .array(let items) = self { return " with \(items.count) element\(items.count == 1 ? "" : "s")" }
        return ""
    }
}
