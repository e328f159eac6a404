import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// An open directory that names are resolved against (`openat` and friends), so a path
/// component swapped for a symlink after the directory was checked cannot redirect what is
/// opened, created or removed in it. Every call here refuses to follow a symlink in the last
/// component (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`); `name` may hold slashes only through
/// directories the caller itself made inside this one.
///
/// `Sendable`: the descriptor is immutable and the calls on it are thread-safe system calls.
public final class Directory: Sendable {
    public let fd: Int32

    /// Opens the directory at `path` (following symlinks in `path`: the caller's choice of place).
    public init(path: String) throws(Errno) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        self.fd = fd
    }

    private init(fd: Int32) { self.fd = fd }

    deinit { Glibc.close(fd) }

    /// The subdirectory `name`, never through a symlink (`ELOOP` or `ENOTDIR` for one).
    public func directory(_ name: String) throws(Errno) -> Directory {
        let sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard sub >= 0 else { throw Errno(rawValue: errno) }
        return Directory(fd: sub)
    }

    /// Creates the subdirectory `name` with `mode` unless it exists; then opens it.
    public func makeDirectory(_ name: String, mode: mode_t) throws(Errno) -> Directory {
        if mkdirat(fd, name, mode) != 0, errno != EEXIST { throw Errno(rawValue: errno) }
        return try directory(name)
    }

    /// Opens the file `name` with `flags` (`O_NOFOLLOW | O_CLOEXEC` added), creating it with
    /// `mode` when the flags say `O_CREAT`.
    public func openFile(_ name: String, _ flags: Int32, mode: mode_t = 0o600) throws(Errno) -> Int32 {
        let f = openat(fd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode)
        guard f >= 0 else { throw Errno(rawValue: errno) }
        return f
    }

    /// The whole file `name` (nil when it does not exist or cannot be read).
    public func contents(_ name: String) -> [UInt8]? {
        guard let f = try? openFile(name, O_RDONLY) else { return nil }
        defer { Glibc.close(f) }
        var st = Glibc.stat()
        guard fstat(f, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        let n = bytes.withUnsafeMutableBytes { b in try? FileDescriptor(rawValue: f).readAll(fromAbsoluteOffset: 0, into: b) }
        guard n == bytes.count else { return nil }
        return bytes
    }

    /// Replaces the file `name` with `bytes` atomically (a temporary name, then `renameat`).
    public func replaceFile(_ name: String, with bytes: [UInt8], mode: mode_t = 0o600) throws(Errno) {
        let temporary = "\(name).partial"
        let f = try openFile(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
        let failure: Errno? = bytes.withUnsafeBytes { b in
            do throws(Errno) { try FileDescriptor(rawValue: f).writeAllBytes(at: 0, b) } catch { return error }
            return nil
        }
        if let failure {
            Glibc.close(f)
            unlinkat(fd, temporary, 0)
            throw failure
        }
        Glibc.close(f)
        guard renameat(fd, temporary, fd, name) == 0 else {
            let e = errno
            unlinkat(fd, temporary, 0)
            throw Errno(rawValue: e)
        }
    }

    /// `stat` of `name` itself (a symlink is reported as one, not followed); nil if absent.
    public func status(_ name: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    /// Sets `name`'s access and modification times to `seconds` since the epoch.
    public func setTimes(_ name: String, seconds: Double) {
        let whole = seconds.rounded(.down)
        let t = timespec(tv_sec: Int(whole), tv_nsec: Int((seconds - whole) * 1e9))
        var times = [t, t]
        utimensat(fd, name, &times, AT_SYMLINK_NOFOLLOW)
    }

    /// Removes the file `name` (absent is fine).
    public func remove(_ name: String) {
        unlinkat(fd, name, 0)
    }

    public func rename(_ name: String, to target: String) throws(Errno) {
        guard renameat(fd, name, fd, target) == 0 else { throw Errno(rawValue: errno) }
    }

    /// The names in this directory, without `.` and `..`.
    public func names() -> [String] {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { return [] }
        guard let dir = fdopendir(copy) else {
            Glibc.close(copy)
            return []
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var found: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { found.append(name) }
        }
        return found
    }

    /// Removes `name` and, when it is a directory (never followed through a symlink),
    /// everything under it.
    public func removeTree(_ name: String) {
        if unlinkat(fd, name, 0) == 0 || (errno != EISDIR && errno != EPERM) { return }
        if let sub = try? directory(name) {
            for child in sub.names() { sub.removeTree(child) }
        }
        unlinkat(fd, name, AT_REMOVEDIR)
    }
}
