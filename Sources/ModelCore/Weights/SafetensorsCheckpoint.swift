import Foundation
import Safetensors

/// A local Hugging Face checkpoint directory: every safetensors shard mapped read-only, with
/// tensors looked up by name and used in place (f32, f16 and bf16 are never copied or widened).
///
/// Loading validates each shard's header (which also catches a truncated shard: its data must
/// end exactly at the end of the file) and, for a sharded checkpoint, that
/// `model.safetensors.index.json` agrees with the shards.
public final class SafetensorsCheckpoint: WeightSource {
    public static let indexFileName = TensorCatalog.indexFileName

    public let directory: URL
    public let catalog: TensorCatalog
    private let files: [MappedFile]

    /// Shard file names, in load order.
    public var shardNames: [String] { catalog.shardNames }

    public init(directory: URL) throws(ModelError) {
        self.directory = directory
        let fm = FileManager.default
        let indexURL = directory.appendingPathComponent(Self.indexFileName)
        var index: SafetensorsIndex? = nil
        if fm.fileExists(atPath: indexURL.path) {
            let data: Data
            do { data = try Data(contentsOf: indexURL) } catch {
                throw ModelError(.io, file: indexURL.path, "cannot read: \(error.localizedDescription)")
            }
            do { index = try SafetensorsIndex.parse(fileName: Self.indexFileName, data: data) } catch {
                throw TensorCatalog.wrap(error)
            }
        }
        let listed = index == nil ? ((try? fm.contentsOfDirectory(atPath: directory.path)) ?? []) : []
        let (names, catalogName) = try TensorCatalog.shardFiles(index: index, files: listed, location: directory.path)

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
                var e = TensorCatalog.wrap(error)
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
        catalog = try TensorCatalog(shardNames: names, headers: headers, index: index, catalogName: catalogName, location: directory.path)
        self.files = files
    }

    public func contains(_ name: String) -> Bool { catalog.contains(name) }

    public func tensor(_ name: String, shape: [Int]) throws(ModelError) -> WeightTensor {
        try catalog.tensor(name, shape: shape, shardBytes: { files[$0].bytes }, owner: self)
    }

    /// Every byte of a local checkpoint is readable.
    public func ready(_ group: FetchPlan.Group) async throws(ModelError) {}

    /// The tensor's dtype as stored (for reporting).
    public func storedDType(_ name: String) -> DType? { catalog.storedDType(name) }
}
