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
        abstract: "Download one object with parallel ranged reads to a local file, or to stdout with '-'.",
        discussion: """
        The object's generation is pinned when the copy starts: if it is replaced meanwhile the copy \
        fails with "object changed" instead of mixing versions. The whole-object CRC32C is checked; \
        on any failure the partial file is removed and DEST is left untouched.
        """
    )

    @Argument(help: "gs://BUCKET/OBJECT or file:///PATH")
    var source: String

    @Argument(help: "Local file path, or - for stdout.")
    var destination: String

    @OptionGroup var fetch: FetchArguments
    @OptionGroup var store: StoreOptions

    @Flag(name: .shortAndLong, help: "Print a summary (bytes, seconds, MB/s, retries) to stderr.")
    var verbose = false

    func run() async throws {
        let target = try parseStoreURL(source)
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

    /// Downloads into DEST.weightfs-partial, then renames over DEST; removes the partial file on failure.
    private func copyToFile(_ fetcher: Fetcher, _ object: ObjectInfo) async throws -> FetchReport {
        var dest = destination
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dest, isDirectory: &isDir), isDir.boolValue {
            dest = (dest as NSString).appendingPathComponent((object.name as NSString).lastPathComponent)
        }
        let partial = dest + ".weightfs-partial"
        // A leftover of an interrupted copy goes (unlink removes a link, never its target), and
        // the new file is made afresh: never opened through a symlink someone planted there.
        unlink(partial)
        let fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let e = errno
            if e == EEXIST { throw MessageError("\(partial): appeared again while cp was creating it (another process writes there); copy to a directory only you can write") }
            throw StoreError.local(path: partial, errno: e, operation: "create")
        }
        do {
            defer { close(fd) }
            guard ftruncate(fd, off_t(object.size)) == 0 else { throw StoreError.local(path: partial, errno: errno, operation: "size to \(object.size) bytes") }
            // The whole object's blocks, before the first byte is fetched: a disk too small fails now.
            let reserved = preallocate(fd, bytes: object.size)
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
