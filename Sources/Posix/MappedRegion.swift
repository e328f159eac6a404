import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A read-only, shared mapping of a file's first `bytes.count` bytes, unmapped when the last
/// reference goes. The mapping stays valid after the descriptor it was made from is closed.
///
/// `@unchecked Sendable`: the mapping is `PROT_READ` and never remapped, so its bytes can be read
/// from any thread; the pointer is only handed out while `self` is alive.
public final class MappedRegion: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer

    /// Maps `count` bytes of `file` from offset 0 (an empty region for 0).
    public init(_ file: FileDescriptor, count: Int) throws(Errno) {
        guard count > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, count, PROT_READ, MAP_SHARED, file.rawValue, 0)
        guard let p, p != MAP_FAILED else { throw Errno(rawValue: errno) }
        bytes = UnsafeRawBufferPointer(start: p, count: count)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
