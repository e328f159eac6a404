import SystemPackage

/// Whole reads and writes on a raw descriptor, the one way every module does them: EINTR is
/// retried (swift-system's `retryOnInterrupt`), a short read or write continues where it
/// stopped, and only the end of the file ends a read early.
extension FileDescriptor {
    /// Reads into all of `buffer` from `offset`, stopping early only at the end of the file;
    /// returns the bytes read.
    public func readAll(fromAbsoluteOffset offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        var done = 0
        while done < buffer.count {
            let n: Int
            do {
                n = try read(fromAbsoluteOffset: offset + Int64(done), into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]),
                             retryOnInterrupt: true)
            } catch {
                throw error as! Errno  // swift-system throws only Errno
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// `readAll` of exactly `buffer.count` bytes; an end of file before them is `Errno.ioError`
    /// (the caller names the file and what it expected).
    public func readExactly(fromAbsoluteOffset offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        guard try readAll(fromAbsoluteOffset: offset, into: buffer) == buffer.count else { throw Errno.ioError }
    }

    /// Writes every byte of `bytes` at `offset` (swift-system's `writeAll`, with a typed error).
    public func writeAllBytes(at offset: Int64, _ bytes: UnsafeRawBufferPointer) throws(Errno) {
        do { _ = try writeAll(toAbsoluteOffset: offset, bytes) } catch { throw error as! Errno }
    }

    /// Writes every byte of `bytes` at the current offset (a pipe, or a file opened to append).
    public func writeAllBytes(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        do { _ = try writeAll(bytes) as Int } catch { throw error as! Errno }
    }
}
