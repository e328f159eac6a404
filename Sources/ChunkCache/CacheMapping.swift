import Foundation
import ObjectStore
import Posix
import SystemPackage

/// A read-only mapping of an open cache entry's data file, made from the entry's own file
/// descriptor (never by path, which a later entry could take over). Its bytes are the object's
/// where `ChunkCache.ensure` said they are present; elsewhere the sparse file reads zeros, so
/// readers wait for `ensure` first. Unmapped when the last reference goes (it outlives `close`).
public final class CacheMapping: Sendable {
    public let key: CacheKey
    /// The data file, open as long as the mapping (for `posix_fadvise`, `pread`): a duplicate of
    /// the entry's descriptor, so it stays valid after the entry is closed.
    public let file: FileDescriptor
    private let region: MappedRegion
    public var bytes: UnsafeRawBufferPointer { region.bytes }

    init(key: CacheKey, fd: Int32, size: Int, path: String) throws {
        self.key = key
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw StoreError.local(path: path, errno: errno, operation: "duplicate the descriptor") }
        let file = FileDescriptor(rawValue: copy)
        do { region = try MappedRegion(file, count: size) } catch {
            try? file.close()
            throw StoreError.local(path: path, errno: error.rawValue, operation: "mmap \(size) bytes")
        }
        self.file = file
    }

    deinit { try? file.close() }
}
