import Foundation
import ObjectStore

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

    init(key: CacheKey, fd: Int32, size: Int, path: String) throws {
        self.key = key
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0)
        guard let p, p != MAP_FAILED else { throw StoreError.local(path: path, errno: errno, operation: "mmap \(size) bytes") }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
