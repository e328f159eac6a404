import Diagnostics
import Posix
import SystemPackage
import ArgumentParser
import Fetcher
import Foundation
import ObjectStore

struct CopyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cp",
        abstract: "Download one object with parallel ranged reads to a local file or stdout ('-'), or every object under a prefix (-r).",
        discussion: """
        The object's generation is pinned when the copy starts: if it is replaced meanwhile the copy \
        fails with "object changed" instead of mixing versions. The whole-object CRC32C is checked; \
        on any failure the partial file is removed and DEST is left untouched. With -r, SOURCE is a \
        prefix (a model folder) and DEST a directory (made if missing): each object goes to DEST plus \
        its name below the prefix, one after another, each with parallel ranged reads; names that \
        would leave DEST (`..`, empty parts) are refused.
        """
    )

    @Argument(help: "gs://BUCKET/OBJECT or file:///PATH (with -r: gs://BUCKET/PREFIX).")
    var source: String

    @Argument(help: "Local file path, or - for stdout (with -r: a directory).")
    var destination: String

    @Flag(name: [.customShort("r"), .long], help: "Copy every object under the prefix SOURCE into the directory DEST.")
    var recursive = false

    @OptionGroup var fetch: FetchArguments
    @OptionGroup var store: StoreOptions

    @Flag(name: .shortAndLong, help: "Print a summary (bytes, seconds, MB/s, retries) to stderr.")
    var verbose = false

    func run() async throws {
        let target = try parseStoreURL(source)
        if recursive { return try await copyPrefix(target) }
        guard !target.path.isEmpty, !target.path.hasSuffix("/") else { throw ValidationError("\(source) names a bucket or prefix; cp copies one object") }
        let s = try await store.open(target)
        let object = try await s.stat(target.path)
        let fetcher = Fetcher(store: s, options: fetch.options)
        let report: FetchReport
        if destination == "-" {
            report = try await fetcher.download(object) { bytes in
                do throws(Errno) { try FileDescriptor.standardOutput.writeAllBytes(bytes) } catch {
                    throw StoreError.local(path: "stdout", errno: error.rawValue, operation: "write")
                }
            }
        } else {
            report = try await copyToFile(fetcher, object)
        }
        if verbose {
            let mbps = Double(report.bytes) / max(report.seconds, 1e-9) / 1e6
            FileHandle.standardError.write(Data(String(format: "%@: %lld bytes in %.2f s (%.1f MB/s), %d chunks, %d retries\n",
                                                       target.description, report.bytes, report.seconds, mbps, report.chunks, report.retries).utf8))
        }
    }

    /// `cp -r`: every object under the prefix into the directory DEST, keeping the names below it.
    private func copyPrefix(_ target: StoreURL) async throws {
        guard destination != "-" else { throw ValidationError("cp -r copies into a directory, not to stdout") }
        let s = try await store.open(target)
        let prefix = target.path.isEmpty || target.path.hasSuffix("/") ? target.path : target.path + "/"
        let objects = try await s.listAll(prefix: prefix)
        var plan: [(object: ObjectInfo, relative: String)] = []
        for object in objects {
            guard let relative = object.name.removingBytePrefix(prefix) else { continue }
            if relative.isEmpty || relative.hasSuffix("/") { continue }  // the prefix's or a folder's placeholder
            let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }), !relative.utf8.contains(0) else {
                throw MessageError("\(object.name.terminalSafe) (under \(target)): the name below the prefix (\(relative.terminalSafe)) has an empty, '.' or '..' part and would leave \(destination); rename the object or copy it alone")
            }
            plan.append((object, relative))
        }
        guard !plan.isEmpty else { throw MessageError("\(source.terminalSafe) holds no objects (\(objects.count) listed); point at a prefix (a folder) of the bucket") }
        let fetcher = Fetcher(store: s, options: fetch.options)
        let started = ContinuousClock.now
        var bytes: Int64 = 0
        for (object, relative) in plan {
            let dest = (destination as NSString).appendingPathComponent(relative)
            try FileManager.default.createDirectory(atPath: (dest as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let report = try await copyToFile(fetcher, object, to: dest)
            bytes += report.bytes
            if verbose {
                FileHandle.standardError.write(Data("\(relative.terminalSafe): \(report.bytes) bytes in \(String(format: "%.2f", report.seconds)) s\n".utf8))
            }
        }
        if verbose {
            let seconds = (ContinuousClock.now - started).seconds
            FileHandle.standardError.write(Data(String(format: "%@: %d objects, %lld bytes in %.2f s (%.1f MB/s)\n", source.terminalSafe, plan.count, bytes, seconds,
                                                       Double(bytes) / max(seconds, 1e-9) / 1e6).utf8))
        }
    }

    /// Downloads into DEST.weightfs-partial, then renames over DEST; removes the partial file on failure.
    private func copyToFile(_ fetcher: Fetcher, _ object: ObjectInfo, to explicit: String? = nil) async throws -> FetchReport {
        var dest = explicit ?? destination
        var isDir: ObjCBool = false
        if explicit == nil, FileManager.default.fileExists(atPath: dest, isDirectory: &isDir), isDir.boolValue {
            dest = (dest as NSString).appendingPathComponent((object.name as NSString).lastPathComponent)
        }
        let partial = dest + ".weightfs-partial"
        // A leftover of an interrupted copy goes (unlink removes a link, never its target), and
        // the new file is made afresh: never opened through a symlink someone planted there.
        unlink(partial)
        // Read and write: WEIGHTFS_FILE_WRITES=mapped maps the file (a mapping needs both).
        let fd = open(partial, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let e = errno
            if e == EEXIST { throw MessageError("\(partial): appeared again while cp was creating it (another process writes there); copy to a directory only you can write") }
            throw StoreError.local(path: partial, errno: e, operation: "create")
        }
        do {
            defer { close(fd) }
            guard ftruncate(fd, off_t(object.size)) == 0 else { throw StoreError.local(path: partial, errno: errno, operation: "size to \(object.size) bytes") }
            // The whole object's blocks, before the first byte is fetched: a disk too small fails now.
            // In memory (tmpfs, /dev/shm), reserving zero-fills every page that the download then
            // writes again: there the free room is checked instead.
            let reserved: Int32
            if isInMemory(fd) {
                reserved = (availableBytes(fd).map { $0 < object.size } ?? false) ? ENOSPC : 0
            } else {
                reserved = preallocate(fd, bytes: object.size)
            }
            if [ENOSPC, EDQUOT, EFBIG].contains(reserved) {
                throw MessageError("\(dest): no room for \(object.name) (\(formatBytes(object.size))): \(String(cString: strerror(reserved))); free space there or copy elsewhere")
            }
            let report = try await fetcher.download(object, toFile: fd, path: partial)
            guard fsync(fd) == 0 else { throw StoreError.local(path: partial, errno: errno, operation: "fsync") }
            guard rename(partial, dest) == 0 else { throw StoreError.local(path: dest, errno: errno, operation: "rename from \(partial)") }
            return report
        } catch {
            unlink(partial)
            throw error
        }
    }
}
