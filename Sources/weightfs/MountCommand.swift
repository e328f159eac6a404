import Diagnostics
import ArgumentParser
import ChunkCache
import FUSEMount
import Foundation
import ModelStore
import ObjectStore

struct MountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount gs://BUCKET[/PREFIX] read-only at MOUNTPOINT; files are readable and mmappable at once.",
        discussion: """
        Bytes not yet in the cache are fetched on demand, ahead of background prefetch. The tree is \
        a snapshot of the listing at mount time. Unmount with `fusermount3 -u MOUNTPOINT`, `umount`, \
        or SIGINT/SIGTERM to the daemon. MOUNTPOINT may be /dev/fd/N (an opened /dev/fuse, as the \
        GKE CSI driver passes it).
        """
    )

    @Argument(help: "gs://BUCKET[/PREFIX] or file:///DIR")
    var url: String

    @Argument(help: "An empty directory, or /dev/fd/N.")
    var mountpoint: String

    @OptionGroup var cache: CacheOptions

    @Flag(name: .long, help: "Stay in the foreground (default: detach once mounted).")
    var foreground = false

    @Option(name: .short, help: ArgumentHelp("Mount options; `allow_other` lets other users (and containers) read.", valueName: "OPTIONS"))
    var o: [String] = []

    @Option(name: .long, help: "Owner uid of every file (default: yours).")
    var uid: UInt32?

    @Option(name: .long, help: "Group gid of every file (default: yours).")
    var gid: UInt32?

    @Option(name: .customLong("file-mode"), help: "Permission bits of files, octal.")
    var fileMode: String = "444"

    @Option(name: .customLong("dir-mode"), help: "Permission bits of directories, octal.")
    var dirMode: String = "555"

    @Option(name: .customLong("metadata-ttl"), help: "Seconds the kernel may cache names and attributes.")
    var metadataTTL: Double = 3600

    @Option(name: .long, help: "safetensors: fetch a shard on open in forward-pass order; sequential: readahead only; none.")
    var prefetch: String = "safetensors"

    @Option(name: .customLong("read-ahead-kb"), help: "Kernel readahead window of the mount in KiB (0 keeps the kernel's 128).")
    var readAheadKB: Int = 1024

    @Option(name: .customLong("push-threads"), help: "Threads pushing cached chunks into the kernel's page cache ahead of a sequential reader (0: off; default a quarter of the cores, at most 4).")
    var pushThreads: Int?

    @Option(name: .customLong("log-file"), help: "Where the daemon logs (default: stderr in the foreground, nothing when detached).")
    var logFile: String?

    @OptionGroup var fetch: FetchArguments
    @OptionGroup var store: StoreOptions

    func validate() throws {
        guard UInt32(fileMode, radix: 8) != nil, UInt32(dirMode, radix: 8) != nil else { throw ValidationError("--file-mode and --dir-mode are octal, like 444") }
        guard MountOptions.Prefetch(rawValue: prefetch) != nil else { throw ValidationError("--prefetch is safetensors, sequential or none") }
        if let pushThreads, !(0...64).contains(pushThreads) { throw ValidationError("--push-threads must be 0...64, got \(pushThreads)") }
        for option in o.flatMap({ $0.split(separator: ",") }) where option != "allow_other" && option != "debug" {
            throw ValidationError("unsupported -o \(option); weightfs mounts read-only and understands allow_other and debug")
        }
    }

    func run() async throws {
        if !foreground { return try detach() }
        let detachedChild = ProcessInfo.processInfo.environment["WEIGHTFS_DETACHED"] != nil
        // Until the mount is up, a detached child's stderr goes to the waiting parent.
        if let logFile, !detachedChild { try redirectStderr(to: logFile) }
        let logTarget = logFile ?? "/dev/null"
        let target = try parseStoreURL(url)
        let s = try await store.open(target)
        var prefix = target.path
        if !prefix.isEmpty, !prefix.hasSuffix("/") { prefix += "/" }
        let objects = try await s.listAll(prefix: prefix)
        let table = InodeTable(objects: objects, prefix: prefix)
        for name in table.skipped { FileHandle.standardError.write(Data("weightfs: not mounted (name clashes with a directory or has empty parts): \(name.terminalSafe)\n".utf8)) }
        let chunkCache = try ChunkCache(directory: try cache.directory(), store: s, options: fetch.options(defaultConcurrency: 16), capacity: cache.capacity)
        var options = MountOptions()
        options.allowOther = o.contains { $0.split(separator: ",").contains("allow_other") }
        options.debug = o.contains { $0.split(separator: ",").contains("debug") }
        options.uid = uid ?? getuid()
        options.gid = gid ?? getgid()
        options.fileMode = UInt32(fileMode, radix: 8)!
        options.dirMode = UInt32(dirMode, radix: 8)!
        options.metadataTTL = metadataTTL
        options.prefetch = MountOptions.Prefetch(rawValue: prefetch)!
        options.readAheadKB = readAheadKB
        options.pushThreads = pushThreads ?? min(4, ProcessInfo.processInfo.activeProcessorCount / 4)
        let fs = FileSystem(table: table, cache: chunkCache, storeLocation: s.location, options: options) { object in
            try await chunkCache.prefetchForwardOrder([object], priority: .plan)
        }
        let session = FUSESession(fileSystem: fs)
        let mountpoint = self.mountpoint
        let summary = "weightfs: mounted \(target) at \(mountpoint): \(table.fileCount) files, \(formatBytes(table.totalBytes))\n"
        // The FUSE loop blocks its thread: give it one of its own, not a cooperative-pool thread.
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
            let thread = Thread {
                do {
                    try session.run(mountpoint: mountpoint, onMounted: {
                        FileHandle.standardError.write(Data(summary.utf8))
                        signalReady(logTo: logTarget)
                    }, beforeExit: {
                        await Self.shutdown(chunkCache, mountpoint: mountpoint)
                    })
                    done.resume()
                } catch {
                    done.resume(throwing: error)
                }
            }
            thread.name = "weightfs-fuse"
            thread.start()
        }
        await Self.shutdown(chunkCache, mountpoint: mountpoint)
    }

    /// Makes every fetched chunk durable and recorded, then says what this run fetched.
    static func shutdown(_ cache: ChunkCache, mountpoint: String) async {
        await cache.shutdown()
        let stats = await cache.stats
        FileHandle.standardError.write(Data("weightfs: unmounted \(mountpoint): \(formatBytes(stats.bytesFetched)) fetched in \(stats.chunksFetched) chunks, cache flushed\n".utf8))
    }

    /// Runs this command again with --foreground as a detached child and returns once it has
    /// mounted (or failed). Forking a multithreaded Swift process is unsafe; spawning is not.
    private func detach() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        p.arguments = Array(CommandLine.arguments.dropFirst()) + ["--foreground"]
        var env = ProcessInfo.processInfo.environment
        env["WEIGHTFS_DETACHED"] = "1"
        p.environment = env
        p.standardInput = FileHandle.nullDevice
        // The child says "ready" on stdout once mounted; until then its stderr is ours to show,
        // passed on as it comes (a full pipe would stop the child before it mounts).
        let ready = Pipe(), errors = Pipe()
        p.standardOutput = ready
        p.standardError = errors
        try p.run()
        let drained = DispatchSemaphore(value: 0)
        let errorsIn = errors.fileHandleForReading
        let drain = Thread {
            while case let data = errorsIn.availableData, !data.isEmpty { FileHandle.standardError.write(data) }
            drained.signal()
        }
        drain.name = "weightfs-detach-stderr"
        drain.start()
        let said = ready.fileHandleForReading.readData(ofLength: 6)
        if said == Data("ready\n".utf8) {
            // The child moves its stderr to its log right after "ready": the pipe ends then.
            _ = drained.wait(timeout: .now() + 10)
            FileHandle.standardError.write(Data("weightfs: mounted \(url) at \(mountpoint) (daemon pid \(p.processIdentifier))\n".utf8))
            return
        }
        p.waitUntilExit()
        drained.wait()
        throw MessageError("mount failed (exit status \(p.terminationStatus)); the daemon's messages are above")
    }
}

/// Tells a waiting parent (see `detach`) that the mount is up, and moves the detached
/// daemon's stdout and stderr off the parent's pipes (stderr to its log).
private func signalReady(logTo path: String) {
    guard ProcessInfo.processInfo.environment["WEIGHTFS_DETACHED"] != nil else { return }
    try? redirectStderr(to: path)
    let message = Array("ready\n".utf8)
    _ = message.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
    let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
    if null >= 0 {
        dup2(null, STDOUT_FILENO)
        close(null)
    }
}

private func redirectStderr(to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw MessageError("cannot open --log-file \(path): \(String(cString: strerror(errno)))") }
    dup2(fd, STDERR_FILENO)
    close(fd)
}
