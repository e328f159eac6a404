import Posix
import SystemPackage

/// A whole local file mapped read-only (a safetensors shard of a model directory).
final class MappedFile: Sendable {
    let path: String
    let region: MappedRegion
    var bytes: UnsafeRawBufferPointer { region.bytes }

    init(path: String) throws(ModelError) {
        self.path = path
        let file: FileDescriptor
        do { file = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec]) } catch {
            throw ModelError(.io, file: path, "cannot open: \(error)")
        }
        defer { try? file.close() }
        let size: Int64
        do { size = try file.seek(offset: 0, from: .end) } catch {
            throw ModelError(.io, file: path, "cannot find its size: \(error)")
        }
        do { region = try MappedRegion(file, count: Int(size)) } catch {
            throw ModelError(.io, file: path, "cannot mmap \(size) bytes: \(error)")
        }
    }
}
