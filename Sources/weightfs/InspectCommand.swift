import Diagnostics
import ArgumentParser
import Foundation
import ObjectStore
import Safetensors

struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List the tensors of a safetensors checkpoint: name, dtype, shape, bytes, shard; and totals.",
        discussion: "PATH may be a .safetensors file, a directory, or gs://BUCKET/PREFIX (only the headers are read)."
    )

    @Argument(help: "A .safetensors file, a model directory, gs://BUCKET/PREFIX or file:///DIR")
    var path: String

    @Flag(name: .long, help: "Print JSON: {tensors: [...], total_bytes, shards}.")
    var json = false

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let headers: [SafetensorsHeader]
        if path.hasPrefix("gs://") || path.hasPrefix("file://") {
            headers = try await remoteHeaders()
        } else {
            headers = try localHeaders()
        }
        guard !headers.isEmpty else { throw MessageError("\(path): no .safetensors files found") }
        let tensors = headers.flatMap(\.tensors)
        let total = tensors.reduce(Int64(0)) { $0 + $1.byteCount }
        if json {
            let rows: [[String: Any]] = tensors.map { ["name": $0.name, "dtype": $0.dtype.rawValue, "shape": $0.shape, "bytes": $0.byteCount, "shard": $0.shard] }
            let doc: [String: Any] = ["tensors": rows, "total_bytes": total, "tensor_count": tensors.count, "shards": headers.map(\.fileName)]
            let data = try JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys, .withoutEscapingSlashes])
            writeStdout(String(decoding: data, as: UTF8.self) + "\n")
            return
        }
        let width = min(72, tensors.map(\.name.count).max() ?? 10)
        for t in tensors.sorted(by: { ($0.shard, $0.fileRange.lowerBound) < ($1.shard, $1.fileRange.lowerBound) }) {
            let name = t.name.count > width ? t.name : t.name + String(repeating: " ", count: width - t.name.count)
            writeStdout("\(name)  \(t.dtype.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0))  \(("[" + t.shape.map(String.init).joined(separator: ", ") + "]").padding(toLength: 16, withPad: " ", startingAt: 0))  \(String(t.byteCount).leftPad(12))  \((t.shard as NSString).lastPathComponent)\n")
        }
        var byDType: [String: Int64] = [:]
        for t in tensors { byDType[t.dtype.rawValue, default: 0] += t.byteCount }
        writeStdout("\(tensors.count) tensors in \(headers.count) shard(s), \(formatBytes(total)) (\(byDType.sorted { $0.key < $1.key }.map { "\($0.key) \(formatBytes($0.value))" }.joined(separator: ", ")))\n")
    }

    private func localHeaders() throws -> [SafetensorsHeader] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw MessageError("\(path): no such file or directory") }
        guard isDir.boolValue else { return [try SafetensorsHeader.read(path: path)] }
        let files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".safetensors") }.sorted()
        return try files.map { try SafetensorsHeader.read(path: "\(path)/\($0)") }
    }

    private func remoteHeaders() async throws -> [SafetensorsHeader] {
        let target = try parseStoreURL(path)
        let s = try await store.open(target)
        let objects: [ObjectInfo]
        if target.path.hasSuffix(".safetensors") {
            objects = [try await s.stat(target.path)]
        } else {
            let prefix = target.path.isEmpty || target.path.hasSuffix("/") ? target.path : target.path + "/"
            objects = try await s.listAll(prefix: prefix).filter { $0.name.hasSuffix(".safetensors") }
        }
        var headers: [SafetensorsHeader] = []
        for o in objects {
            let name = "\(s.location)/\(o.name)"
            let first8 = try await readBytes(s, o, ByteRange(0, min(8, o.size)))
            let length = try SafetensorsHeader.headerLength(fileName: name, first8: first8, fileSize: o.size)
            let header = try await readBytes(s, o, ByteRange(8, 8 + length))
            headers.append(try SafetensorsHeader.parse(fileName: name, headerBytes: header, headerLength: length, fileSize: o.size))
        }
        return headers
    }

    private func readBytes(_ s: any ObjectStore, _ o: ObjectInfo, _ range: ByteRange) async throws -> [UInt8] {
        let box = ByteBox()
        try await s.read(o.name, generation: o.generation, range: range) { box.append($0) }
        return box.bytes
    }
}

/// Collects a small body on the I/O thread.
final class ByteBox: @unchecked Sendable {  // appended by one transfer, read after it completes
    var bytes: [UInt8] = []
    func append(_ b: UnsafeRawBufferPointer) { bytes += b }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
