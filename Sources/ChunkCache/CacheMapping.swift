import Foundation
import ObjectStore
import SystemPackage

/// A read-only mapping of an open cache entry's data file, made from the entry's own file
/// descriptor (never by path, which a later entry could take over). Its bytes are the object's
/// where `ChunkCache.ensure` said they are present; elsewhere the sparse file reads zeros, so
/// readers wait for `ensure` first. Unmapped when the last reference goes (it outlives `close`).
///
/// `@unchecked Sendable`: the mapping is `PROT_READ` and never remapped; the pointer is only
/// handed out while `self` is alive.
public final class CacheMapping: @unchecked Sendable {
    public let key: CacheKey
    public let bytes: UnsafeRawBufferPointer
    /// The data file, open as long as the mapping (for `posix_fadvise`, `pread`): a duplicate of
    /// the entry's descriptor, so it stays valid after the entry is closed.
    public let file: FileDescriptor

    init(key: CacheKey, fd: Int32, size: Int, path: String) throws {
        self.key = key
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw StoreError.local(path: path, errno: errno, operation: "duplicate the descriptor") }
        file = FileDescriptor(rawValue: copy)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_SHARED, copy, 0)
        guard let p, p != MAP_FAILED else {
            let e = errno
            close(copy)
            throw StoreError.local(path: path, errno: e, operation: "mmap \(size) bytes")
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
        try? file.close()
    }
}
