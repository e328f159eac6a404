import Foundation
import Safetensors

/// A local Hugging Face checkpoint directory: every safetensors shard mapped read-only, with
/// tensors looked up by name and used in place (f32, f16 and bf16 are never copied or widened).
///
/// Loading validates each shard's header (which also catches a truncated shard: its data must
/// end exactly at the end of the file) and, for a sharded checkpoint, that
/// `model.safetensors.index.json` agrees with the shards.
public final class SafetensorsCheckpoint: WeightSource {
    public static let indexFileName = "model.safetensors.index.json"

    public let directory: URL
    /// Shard file names, in load order.
    public let shardNames: [String]
    private let files: [MappedFile]
    private let headers: [SafetensorsHeader]
    /// Tensor name → (shard position, info).
    private let tensors: [String: (shard: Int, info: TensorInfo)]
    /// The file a missing tensor should have been in, for errors.
    private let catalogName: String

    public init(directory: URL) throws(ModelError) {
        self.directory = directory
        let fm = FileManager.default
        let indexURL = directory.appendingPathComponent(Self.indexFileName)
        var index: SafetensorsIndex? = nil
        let names: [String]
        if fm.fileExists(atPath: indexURL.path) {
            let data: Data
            do { data = try Data(contentsOf: indexURL) } catch {
                throw ModelError(.io, file: indexURL.path, "cannot read: \(error.localizedDescription)")
            }
            do { index = try SafetensorsIndex.parse(fileName: Self.indexFileName, data: data) } catch {
                throw Self.wrap(error)
            }
            names = index!.shards
            catalogName = Self.indexFileName
        } else if fm.fileExists(atPath: directory.appendingPathComponent("model.safetensors").path) {
            names = ["model.safetensors"]
            catalogName = "model.safetensors"
        } else {
            let listed = (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
            names = listed.filter { $0.hasSuffix(".safetensors") }.sorted()
            guard !names.isEmpty else {
                throw ModelError(.io, file: directory.path, "no model.safetensors, \(Self.indexFileName) or other .safetensors file in the model directory")
            }
            catalogName = names.count == 1 ? names[0] : directory.lastPathComponent
        }

        var headers: [SafetensorsHeader] = []
        var files: [MappedFile] = []
        for name in names {
            let path = directory.appendingPathComponent(name).path
            guard fm.fileExists(atPath: path) else {
                throw ModelError(.checkpoint, file: index != nil ? Self.indexFileName : name, field: index != nil ? "weight_map" : nil,
                                 "names shard \(name), which is not in \(directory.path)")
            }
            let header: SafetensorsHeader
            do { header = try SafetensorsHeader.read(path: path) } catch {
                var e = Self.wrap(error)
                e.file = name
                throw e
            }
            let file = try MappedFile(path: path)
            // The header was checked against the file size a moment ago; the mapping must agree too.
            guard Int64(file.bytes.count) >= header.expectedFileSize else {
                throw ModelError(.checkpoint, file: name, "is \(file.bytes.count) bytes, but its header describes \(header.expectedFileSize); the shard is truncated")
            }
            headers.append(header)
            files.append(file)
        }
        if let index {
            do { try index.check(against: headers) } catch { throw Self.wrap(error) }
        }

        var tensors: [String: (shard: Int, info: TensorInfo)] = [:]
        for (k, header) in headers.enumerated() {
            for info in header.tensors {
                // With an index, the index decides which shard's copy is the tensor.
                if let index, let shard = index.weightMap[info.name], shard != names[k] { continue }
                if tensors[info.name] == nil { tensors[info.name] = (k, info) }
            }
        }
        self.shardNames = names
        self.files = files
        self.headers = headers
        self.tensors = tensors
    }

    public func contains(_ name: String) -> Bool { tensors[name] != nil }

    public func tensor(_ name: String, shape: [Int]) throws(ModelError) -> WeightTensor {
        guard let (k, info) = tensors[name] else {
            throw ModelError(.missingTensor, file: catalogName, tensor: name, "missing from the checkpoint in \(directory.path)")
        }
        let shard = shardNames[k]
        guard info.shape == shape else {
            throw ModelError(.shape, file: shard, tensor: name, field: "shape", "has shape \(info.shape), but config.json implies \(shape)")
        }
        guard let dtype = WeightDType(info.dtype) else {
            throw ModelError(.dtype, file: shard, tensor: name, field: "dtype", "has unsupported dtype \(info.dtype.rawValue); supported: F32, F16, BF16")
        }
        let bytes = files[k].bytes
        guard info.fileRange.upperBound <= Int64(bytes.count), let base = bytes.baseAddress ?? (info.byteCount == 0 ? UnsafeRawPointer(bitPattern: 8) : nil) else {
            throw ModelError(.checkpoint, file: shard, tensor: name, "ends at byte \(info.fileRange.upperBound), past the end of the \(bytes.count)-byte file")
        }
        return WeightTensor(name: name, dtype: dtype, shape: shape, base: base + Int(info.fileRange.lowerBound))
    }

    public func ready(_ group: FetchPlan.Group) async throws {}

    /// The tensor's dtype as stored (for reporting).
    public func storedDType(_ name: String) -> DType? { tensors[name]?.info.dtype }

    static func wrap(_ e: SafetensorsError) -> ModelError {
        ModelError(e.kind == .io ? .io : .checkpoint, file: e.file, tensor: e.tensor, field: e.field, e.message)
    }
}
