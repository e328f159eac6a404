import Safetensors

/// The tensors of a safetensors checkpoint by name, from its shards' validated headers (and its
/// index, when sharded): the lookup and checks every `WeightSource` shares, wherever the shards'
/// bytes live (mapped files of a local directory, or the chunk cache's data files).
public struct TensorCatalog: Sendable {
    public static let indexFileName = "model.safetensors.index.json"

    /// Shard file names, in load order.
    public let shardNames: [String]
    public let headers: [SafetensorsHeader]
    /// Tensor name → (shard position, info).
    private let tensors: [String: (shard: Int, info: TensorInfo)]
    /// The file a missing tensor should have been in, for errors.
    private let catalogName: String
    /// Where the checkpoint is (a directory or a store URL), for errors.
    public let location: String

    /// Which files hold the weights, from the names of the files beside them: the index's shards
    /// (the caller parses the index), else `model.safetensors`, else every `.safetensors` file.
    /// Returns the shard names and the file that lists them (for errors).
    public static func shardFiles(index: SafetensorsIndex?, files: [String], location: String) throws(ModelError) -> (names: [String], catalog: String) {
        if let index { return (index.shards, indexFileName) }
        if files.contains("model.safetensors") { return (["model.safetensors"], "model.safetensors") }
        let names = files.filter { $0.hasSuffix(".safetensors") }.sorted()
        guard !names.isEmpty else {
            throw ModelError(.io, file: location, "no model.safetensors, \(indexFileName) or other .safetensors file in the model directory")
        }
        return (names, names.count == 1 ? names[0] : location)
    }

    /// Checks the index against the shards' headers and indexes every tensor.
    public init(shardNames: [String], headers: [SafetensorsHeader], index: SafetensorsIndex?, catalogName: String, location: String) throws(ModelError) {
        if let index {
            do { try index.check(against: headers) } catch { throw Self.wrap(error) }
        }
        var tensors: [String: (shard: Int, info: TensorInfo)] = [:]
        for (k, header) in headers.enumerated() {
            for info in header.tensors {
                // With an index, the index decides which shard's copy is the tensor.
                if let index, let shard = index.weightMap[info.name], shard != shardNames[k] { continue }
                if tensors[info.name] == nil { tensors[info.name] = (k, info) }
            }
        }
        self.shardNames = shardNames
        self.headers = headers
        self.tensors = tensors
        self.catalogName = catalogName
        self.location = location
    }

    public func contains(_ name: String) -> Bool { tensors[name] != nil }

    /// The tensor's dtype as stored (for reporting).
    public func storedDType(_ name: String) -> DType? { tensors[name]?.info.dtype }

    /// The tensor `name` in `bytes` (its shard's whole file, mapped), checked to have exactly
    /// `shape`, a dtype the kernels read, and to lie inside the file; `owner` keeps the bytes alive.
    public func tensor(_ name: String, shape: [Int], shardBytes: (Int) -> UnsafeRawBufferPointer, owner: AnyObject?) throws(ModelError) -> WeightTensor {
        guard let (k, info) = tensors[name] else {
            throw ModelError(.missingTensor, file: catalogName, tensor: name, "missing from the checkpoint in \(location)")
        }
        let shard = shardNames[k]
        guard info.shape == shape else {
            throw ModelError(.shape, file: shard, tensor: name, field: "shape", "has shape \(info.shape), but config.json implies \(shape)")
        }
        guard let dtype = WeightDType(info.dtype) else {
            throw ModelError(.dtype, file: shard, tensor: name, field: "dtype", "has unsupported dtype \(info.dtype.rawValue); supported: F32, F16, BF16")
        }
        let bytes = shardBytes(k)
        guard info.fileRange.upperBound <= Int64(bytes.count), let base = bytes.baseAddress ?? (info.byteCount == 0 ? UnsafeRawPointer(bitPattern: 8) : nil) else {
            throw ModelError(.checkpoint, file: shard, tensor: name, "ends at byte \(info.fileRange.upperBound), past the end of the \(bytes.count)-byte file")
        }
        return WeightTensor(name: name, dtype: dtype, shape: shape, base: base + Int(info.fileRange.lowerBound), owner: owner)
    }

    public static func wrap(_ e: SafetensorsError) -> ModelError {
        ModelError(e.kind == .io ? .io : .checkpoint, file: e.file, tensor: e.tensor, field: e.field, e.message)
    }
}
