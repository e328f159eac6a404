import Posix
import SystemPackage
import Foundation

/// A local directory as an object store (`file:///dir`): object names are paths relative to
/// `root`; the generation is the file's modification time in nanoseconds, so a rewritten file
/// is a new generation and a read of the old one fails with `objectChanged`.
public struct FileStore: ObjectStore {
    public let root: String

    public init(root: String) {
        self.root = root.count > 1 ? root.trimmingSuffix("/") : root
    }

    public var location: String { "file://\(root)" }
    private func path(_ name: String) -> String { root == "/" ? "/\(name)" : "\(root)/\(name)" }

    public func list(prefix: String, delimiter: String?, pageToken: String?) async throws -> ListPage {
        // Walk only the directory that holds the prefix.
        let dirPart = prefix.contains("/") ? String(prefix[..<prefix.lastIndex(of: "/")!]) : ""
        let start = dirPart.isEmpty ? root : path(dirPart)
        var objects: [ObjectInfo] = []
        var prefixes = Set<String>()
        // A directory that is there but cannot be read is an error, not an empty prefix.
        if access(start, F_OK) == 0, access(start, R_OK | X_OK) != 0 {
            throw StoreError.local(path: start, errno: errno, operation: "list the directory")
        }
        guard let walker = FileManager.default.enumerator(atPath: start) else {
            return ListPage(objects: [], prefixes: [], nextPageToken: nil)
        }
        while let rel = walker.nextObject() as? String {
            let name = dirPart.isEmpty ? rel : "\(dirPart)/\(rel)"
            var st = Glibc.stat()
            guard lstat(path(name), &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, let rest = name.removingBytePrefix(prefix) else { continue }
            if let delimiter, let r = rest.range(of: delimiter) {
                prefixes.insert(prefix + String(rest[..<r.upperBound]))
                continue
            }
            objects.append(Self.info(name: name, st))
        }
        // GCS lists in byte order.
        objects.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        return ListPage(objects: objects, prefixes: prefixes.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }, nextPageToken: nil)
    }

    public func stat(_ name: String) async throws -> ObjectInfo {
        var st = Glibc.stat()
        guard statFile(path(name), &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw StoreError.notFound(location: "\(location)/\(name)")
        }
        return Self.info(name: name, st)
    }

    static func info(name: String, _ st: Glibc.stat) -> ObjectInfo {
        let ns = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        return ObjectInfo(name: name, size: Int64(st.st_size), generation: Generation(ns),
                          updated: Date(timeIntervalSince1970: Double(ns) / 1e9))
    }

    /// A local file has no link to share: `options` change nothing.
    public func read(_ name: String, generation: Generation, range: ByteRange, options: ReadOptions, into sink: @escaping ByteSink) async throws {
        let loc = "\(location)/\(name)"
        let fd = open(path(name), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReadFailure(.notFound(location: loc), bytesDelivered: 0) }
        defer { close(fd) }
        var st = Glibc.stat()
        fstat(fd, &st)
        let found = Self.info(name: name, st).generation
        guard found == generation else {
            throw ReadFailure(.objectChanged(location: loc, expected: generation, found: found), bytesDelivered: 0)
        }
        let block = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: block, alignment: 4096)
        defer { buffer.deallocate() }
        var done: Int64 = 0
        while done < range.count {
            let want = Int(min(Int64(block), range.count - done))
            let n: Int
            do throws(Errno) {
                n = try FileDescriptor(rawValue: fd).readAll(fromAbsoluteOffset: range.lowerBound + done,
                                                             into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            } catch {
                throw ReadFailure(.local(path: path(name), errno: error.rawValue, operation: "read at offset \(range.lowerBound + done)"), bytesDelivered: done)
            }
            if n == 0 { throw ReadFailure(.shortBody(location: loc, range: range, received: done), bytesDelivered: done) }
            do { try sink(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) } catch let e as StoreError {
                throw ReadFailure(e, bytesDelivered: done)
            }
            done += Int64(n)
        }
    }
}

/// `stat(2)`; a free function because `FileStore.stat` shadows the C name inside the type.
private func statFile(_ path: String, _ st: inout Glibc.stat) -> Int32 { stat(path, &st) }
