import Diagnostics
import Posix
import SystemPackage
import ArgumentParser
import ChunkCache
import Fetcher
import Foundation
import ModelStore
import ObjectStore

struct PreloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preload",
        abstract: "Fill the local chunk cache with every object under gs://BUCKET/PREFIX.",
        discussion: """
        Small files (config, tokenizer) come first, then safetensors shards, then the rest. \
        Idempotent and resumable: what is already cached (and verified by its CRC32C) is not \
        fetched again, also after the process was killed. Exits non-zero if any object failed.
        """
    )

    @Argument(help: "gs://BUCKET[/PREFIX] or file:///DIR")
    var url: String

    @OptionGroup var cache: CacheOptions

    @Option(name: .long, help: ArgumentHelp("Only objects whose path below the prefix matches this glob (repeatable).", valueName: "GLOB"))
    var include: [String] = []

    @Option(name: .long, help: ArgumentHelp("Skip objects whose path below the prefix matches this glob (repeatable).", valueName: "GLOB"))
    var exclude: [String] = []

    @Flag(name: .long, help: "After loading, re-read every object from the cache and check its whole-object CRC32C.")
    var verify = false

    @OptionGroup var fetch: FetchArguments
    @OptionGroup var store: StoreOptions

    func run() async throws {
        let target = try parseStoreURL(url)
        let cacheDirectory = try cache.directory()  // before any listing: a missing setting fails at once
        let s = try await store.open(target)
        var prefix = target.path
        let all: [ObjectInfo]
        if !prefix.isEmpty, !prefix.hasSuffix("/"), let single = try? await s.stat(prefix) {
            // The path names one object: that object alone, not its siblings that share the
            // prefix (`m` is not `m-70b/…`). Globs match its base name.
            all = [single]
            prefix = prefix.contains("/") ? String(prefix[...prefix.lastIndex(of: "/")!]) : ""
        } else {
            if !prefix.isEmpty, !prefix.hasSuffix("/") { prefix += "/" }
            all = try await s.listAll(prefix: prefix)
        }
        let selected = all.filter { o in
            let rel = o.name.removingBytePrefix(prefix) ?? o.name
            return (include.isEmpty || include.contains { glob($0, rel) }) && !exclude.contains { glob($0, rel) }
        }
        guard !selected.isEmpty else {
            throw MessageError("nothing to preload: no object under \(target) matches (\(all.count) objects listed)")
        }
        let ordered = preloadOrder(selected)
        let total = ordered.reduce(Int64(0)) { $0 + $1.size }
        if let cap = cache.capacity, total > cap {
            throw MessageError("\(target) holds \(formatBytes(total)), more than --cache-size \(formatBytes(cap)); raise --cache-size or narrow with --include")
        }
        let chunkCache = try ChunkCache(directory: cacheDirectory, store: s, options: fetch.options, capacity: cache.capacity)
        var opened: [CachedObject] = []
        for o in ordered { opened.append(try await chunkCache.open(o, whole: true)) }
        // Queue in order: small files, then the shards in forward-pass order, then the rest.
        let shards = opened.filter { $0.info.name.hasSuffix(".safetensors") }
        for c in opened where preloadRank(c.info) == 0 { await chunkCache.prefetch(c, range: ByteRange(0, c.info.size), priority: .preload) }
        do {
            try await chunkCache.prefetchForwardOrder(shards, priority: .preload)
        } catch {
            FileHandle.standardError.write(Data("preload: not in forward-pass order (\(error)); fetching the shards whole\n".utf8))
            for c in shards { await chunkCache.prefetch(c, range: ByteRange(0, c.info.size), priority: .preload) }
        }
        for c in opened where preloadRank(c.info) == 2 { await chunkCache.prefetch(c, range: ByteRange(0, c.info.size), priority: .preload) }
        let recovered = await chunkCache.stats.bytesRecovered
        let progress = ProgressReporter(total: total, alreadyPresent: recovered, objectCount: ordered.count)
        let started = ContinuousClock.now
        let reporter = Task {
            while !Task.isCancelled {
                var present: Int64 = 0
                var current = ""
                for c in opened {
                    let p = await chunkCache.presentBytes(c)
                    present += p
                    if current.isEmpty, p < c.info.size { current = c.info.name.terminalSafe }
                }
                progress.update(present: present, current: current)
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        defer { reporter.cancel() }
        var failures: [String] = []
        for c in opened {
            do {
                try await chunkCache.ensure(c, range: ByteRange(0, c.info.size), priority: .preload)
            } catch {
                failures.append("\(c.info.name): \(error)")
            }
        }
        reporter.cancel()
        let stats = await chunkCache.stats
        let seconds = (ContinuousClock.now - started).seconds
        progress.finish()
        if verify, failures.isEmpty {
            for c in opened where c.info.crc32c != nil {
                // Through the entry's own descriptor, never by path (open while the mapping lives).
                let mapping = try await chunkCache.map(c)
                let crc = try withExtendedLifetime(mapping) { try crc32cOfFile(mapping.file, path: c.dataPath, size: c.info.size) }
                if crc != c.info.crc32c { failures.append("\(c.info.name): cached bytes fail the object's CRC32C (\(String(format: "%08x", crc)) vs \(String(format: "%08x", c.info.crc32c!)))") }
            }
        }
        for c in opened { await chunkCache.close(c) }
        await chunkCache.shutdown()  // every fetched chunk durable and recorded before we exit
        let rate = Double(stats.bytesFetched) / max(seconds, 1e-9) / 1e6
        FileHandle.standardError.write(Data(String(format: "preload: %d objects, %@ in %.1f s: %@ fetched (%.1f MB/s), %@ already cached%@\n",
                                                    ordered.count, formatBytes(total), seconds, formatBytes(stats.bytesFetched), rate,
                                                    formatBytes(stats.bytesRecovered), verify ? ", verified" : "").utf8))
        if !failures.isEmpty {
            throw MessageError("preload failed for \(failures.count) object(s):\n  " + failures.joined(separator: "\n  ") + "\nRun the same command again to resume.")
        }
    }

    /// Small files first (config, tokenizer: what a loader reads before weights), then
    /// safetensors shards by name, then everything else by name.
    func preloadOrder(_ objects: [ObjectInfo]) -> [ObjectInfo] {
        objects.sorted { (preloadRank($0), $0.name) < (preloadRank($1), $1.name) }
    }

    func preloadRank(_ o: ObjectInfo) -> Int {
        if o.name.hasSuffix(".safetensors") { return 1 }
        return o.size <= 16 << 20 ? 0 : 2
    }
}

/// `fnmatch(3)` where `*` also crosses `/`.
func glob(_ pattern: String, _ text: String) -> Bool { fnmatch(pattern, text, 0) == 0 }

func crc32cOfFile(_ file: FileDescriptor, path: String, size: Int64) throws -> UInt32 {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8 << 20, alignment: 4096)
    defer { buffer.deallocate() }
    var crc = CRC32C()
    var offset: Int64 = 0
    while offset < size {
        let want = min(buffer.count, Int(size - offset))
        do throws(Errno) {
            try file.readExactly(fromAbsoluteOffset: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
        } catch {
            let what = error == .ioError ? "read of \(want) bytes at offset \(offset) (the file ends before \(size) bytes)" : "read at offset \(offset)"
            throw StoreError.local(path: path, errno: error.rawValue, operation: what)
        }
        crc.update(UnsafeRawBufferPointer(rebasing: buffer[0..<want]))
        offset += Int64(want)
    }
    return crc.value
}

/// Where the cache lives and how big it may grow.
struct CacheOptions: ParsableArguments {
    @Option(name: .customLong("cache-dir"), help: ArgumentHelp("Cache directory (default $XDG_CACHE_HOME/weightfs, or /var/cache/weightfs as root).", valueName: "DIR"))
    var cacheDir: String?

    @Option(name: .customLong("cache-size"), help: ArgumentHelp("Evict least recently used objects beyond this, e.g. 50GiB (default: no limit).", valueName: "SIZE"))
    var cacheSize: ByteSize?

    /// The cache directory: never a shared default such as one under /tmp, where another user
    /// could make it first (with HOME unset, the home directory from the password database).
    func directory() throws -> String {
        if let cacheDir { return cacheDir }
        let env = ProcessInfo.processInfo.environment
        if getuid() == 0 { return "/var/cache/weightfs" }
        if let xdg = env["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return "\(xdg)/weightfs" }
        if let home = env["HOME"], home.hasPrefix("/") { return "\(home)/.cache/weightfs" }
        if let home = passwordDatabaseHome(), home.hasPrefix("/"), home != "/" { return "\(home)/.cache/weightfs" }
        throw MessageError("no cache directory: HOME is not set and uid \(getuid()) has no home directory; pass --cache-dir DIR (a directory of this user's)")
    }

    var capacity: Int64? { cacheSize?.bytes }
}

/// This user's home directory from the password database (nil if it has no entry).
func passwordDatabaseHome() -> String? {
    var entry = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var buffer = [CChar](repeating: 0, count: 16 << 10)
    guard getpwuid_r(getuid(), &entry, &buffer, buffer.count, &result) == 0, result != nil, let dir = entry.pw_dir else { return nil }
    return String(cString: dir)
}

/// A progress bar on a TTY, plain lines every few seconds otherwise (logs, CI, kubectl logs).
final class ProgressReporter: @unchecked Sendable {  // used from one task at a time
    let total: Int64
    let objectCount: Int
    let isTTY = isatty(STDERR_FILENO) == 1
    let started = ContinuousClock.now
    let startBytes: Int64
    var lastLine = ContinuousClock.now - .seconds(60)

    init(total: Int64, alreadyPresent: Int64, objectCount: Int) {
        self.total = total
        self.objectCount = objectCount
        self.startBytes = alreadyPresent
    }

    func update(present: Int64, current: String) {
        let elapsed = (ContinuousClock.now - started).seconds
        // A rate over less than a second is noise (the first chunks land at once).
        let rate = elapsed >= 1 ? Double(present - startBytes) / elapsed : 0
        let eta = rate > 0 ? Double(total - present) / rate : .infinity
        let fraction = total > 0 ? Double(present) / Double(total) : 1
        let etaText = eta.isFinite ? String(format: "%.0fs", eta) : "--"
        if isTTY {
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = String(format: "\r[%@] %5.1f%% %@/%@ %.0f MB/s ETA %@ %@", bar, fraction * 100, formatBytes(present), formatBytes(total), rate / 1e6, etaText, String(current.suffix(40)))
            FileHandle.standardError.write(Data((line + "\u{1B}[K").utf8))
        } else if ContinuousClock.now - lastLine >= .seconds(5) {
            lastLine = .now
            FileHandle.standardError.write(Data(String(format: "preload: %.1f%% %@ of %@, %.0f MB/s, ETA %@, at %@\n", fraction * 100, formatBytes(present), formatBytes(total), rate / 1e6, etaText, current).utf8))
        }
    }

    func finish() {
        if isTTY { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
