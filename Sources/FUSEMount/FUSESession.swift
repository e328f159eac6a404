import Diagnostics
import CFuse
import CLinux
import Foundation
import Logging

/// The libfuse3 low-level session: the only file that touches libfuse's C types.
///
/// Callbacks run on libfuse's worker threads and never block on the network: a read whose
/// bytes are absent hands the request to a Swift task and returns; the task replies with
/// `fuse_reply_buf` (pointing into the mapped cache file) when the cache has the bytes.
public final class FUSESession: Sendable {
    public let fileSystem: FileSystem

    public init(fileSystem: FileSystem) {
        self.fileSystem = fileSystem
    }

    /// Mounts at `mountpoint` (a directory or `/dev/fd/N`), calls `onMounted`, serves until
    /// unmounted or SIGINT/SIGTERM/SIGHUP, then unmounts. Blocks the calling thread.
    /// On a signal to a `/dev/fd/N` mount the process exits from the signal handler (the fd's
    /// owner holds the mount, so the loop never returns): `beforeExit` runs first, up to 30 s.
    public func run(mountpoint: String, onMounted: () -> Void, beforeExit: @escaping @Sendable () async -> Void = {}) throws {
        let o = fileSystem.options
        var mountOptions = ["ro", "fsname=weightfs", "subtype=weightfs", "max_read=\(o.maxRead)", "default_permissions"]
        if o.allowOther { mountOptions.append("allow_other") }
        var argv = ["weightfs", "-o", mountOptions.joined(separator: ",")]
        if o.debug { argv.append("-d") }
        let cArgs = argv.map { strdup($0) }
        defer { cArgs.forEach { free($0) } }
        var pointers: [UnsafeMutablePointer<CChar>?] = cArgs
        var ops = Self.operations()
        let context = Unmanaged.passUnretained(fileSystem).toOpaque()
        let session: OpaquePointer? = pointers.withUnsafeMutableBufferPointer { buf in
            var args = fuse_args(argc: Int32(buf.count), argv: buf.baseAddress, allocated: 0)
            return fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, context)
        }
        guard let session else { throw MessageError("could not create a FUSE session (bad options: \(mountOptions.joined(separator: ",")))") }
        var repliesDrained = true
        // A reply after destroy would use freed session memory: destroy only once every task has replied.
        defer { if repliesDrained { fuse_session_destroy(session) } }
        guard fuse_session_mount(session, mountpoint) == 0 else {
            throw MessageError("could not mount at \(mountpoint): is it an existing empty directory, is /dev/fuse present, and are you root (or is fusermount3 installed)?")
        }
        defer { fuse_session_unmount(session) }
        let signals = Self.unmountOnSignals(session: SessionHandle(raw: session), mountpoint: mountpoint, logger: fileSystem.logger,
                                            beforeExit: beforeExit)
        defer { signals.forEach { $0.cancel() } }
        // After INIT, which lowers the window to the kernel default: so from a thread of its own,
        // retrying until the value sticks, while the loop below answers INIT.
        let readahead = (mountpoint, fileSystem.options.readAheadKB, fileSystem.logger)
        Thread.detachNewThread { raiseReadahead(mountpoint: readahead.0, kilobytes: readahead.1, logger: readahead.2) }
        onMounted()
        let config = fuse_loop_cfg_create()
        defer { fuse_loop_cfg_destroy(config) }
        fuse_loop_cfg_set_max_threads(config, 16)
        fuse_loop_cfg_set_idle_threads(config, 4)
        let handle = SessionHandle(raw: session)
        fileSystem.setPusher { inode, offset, bytes in
            guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
            populatePages(bytes)
            let rc = wfs_notify_store(handle.raw, fuse_ino_t(inode), off_t(offset), base, bytes.count)
            releasePages(bytes)
            return rc
        }
        let rc = fuse_session_loop_mt(session, config)
        if rc != 0, rc != -Int32(EINTR) {
            fileSystem.logger.info("FUSE loop ended with \(rc)")
        }
        fileSystem.setPusher(nil)
        repliesDrained = fileSystem.waitForReplies(timeout: .seconds(10))
    }

    /// SIGINT/SIGTERM/SIGHUP end the session by unmounting: the kernel then fails the workers'
    /// pending reads of /dev/fuse and the loop returns. (libfuse's own handlers only set a flag,
    /// which threads blocked in read never see when the signal lands on another thread.)
    private static func unmountOnSignals(session: SessionHandle, mountpoint: String, logger: Logger,
                                         beforeExit: @escaping @Sendable () async -> Void) -> [DispatchSourceSignal] {
        [SIGINT, SIGTERM, SIGHUP].map { signo in
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler {
                logger.info("signal \(signo): unmounting \(mountpoint)")
                fuse_session_exit(session.raw)
                if mountpoint.hasPrefix("/dev/fd/") {
                    // Whoever passed the fd owns the mount, and the workers stay blocked on it:
                    // end the process here, once the cache has recorded what it fetched.
                    let done = DispatchSemaphore(value: 0)
                    Task {
                        await beforeExit()
                        done.signal()
                    }
                    if done.wait(timeout: .now() + .seconds(30)) == .timedOut {
                        logger.warning("the cache did not shut down within 30 s; exiting anyway")
                    }
                    exit(0)
                }
                let device = mountDevice(mountpoint)
                defer {
                    // A lazily detached mount can keep the connection (and the workers' reads of
                    // /dev/fuse) alive; aborting it makes the loop return at once.
                    if let minor = device?.split(separator: ":").last {
                        try? "1\n".write(toFile: "/sys/fs/fuse/connections/\(minor)/abort", atomically: false, encoding: .utf8)
                    }
                }
                if umount2(mountpoint, Int32(MNT_DETACH)) != 0 {
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: "/bin/fusermount3")
                    p.arguments = ["-u", "-z", mountpoint]
                    try? p.run()
                    p.waitUntilExit()
                }
            }
            source.resume()
            return source
        }
    }

    private static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in
            guard let userdata, let conn else { return }
            let fs = Unmanaged<FileSystem>.fromOpaque(userdata).takeUnretainedValue()
            // max_read must be set here too, or the mount fails at INIT (docs/FACTS.md).
            conn.pointee.max_read = UInt32(fs.options.maxRead)
            conn.pointee.max_readahead = UInt32(fs.options.maxRead)
        }
        ops.lookup = { req, parent, name in
            let fs = requestFileSystem(req)
            // The name's bytes as the kernel sent them: String(cString:) would repair invalid UTF-8.
            guard let name, let node = fs.table.lookup(parent: parent, name: UnsafeRawBufferPointer(start: name, count: strlen(name))) else {
                fuse_reply_err(req, ENOENT)
                return
            }
            fs.logger.trace("lookup of inode \(node.number)")  // how often the kernel asks (WEIGHTFS_LOG=trace)
            var entry = fuse_entry_param()
            entry.ino = node.number
            entry.attr = fs.attributes(of: node)
            entry.attr_timeout = fs.options.metadataTTL
            entry.entry_timeout = fs.options.metadataTTL
            fuse_reply_entry(req, &entry)
        }
        ops.forget = { req, _, _ in fuse_reply_none(req) }  // inodes live as long as the mount
        ops.getattr = { req, ino, _ in
            let fs = requestFileSystem(req)
            guard let node = fs.table[ino] else {
                fuse_reply_err(req, ENOENT)
                return
            }
            fs.logger.trace("getattr of inode \(node.number)")
            var st = fs.attributes(of: node)
            fuse_reply_attr(req, &st, fs.options.metadataTTL)
        }
        ops.opendir = { req, ino, fi in
            let fs = requestFileSystem(req)
            guard let node = fs.table[ino] else { fuse_reply_err(req, ENOENT); return }
            guard node.isDirectory else { fuse_reply_err(req, ENOTDIR); return }
            fi?.pointee.cache_readdir = 1
            fi?.pointee.keep_cache = 1
            fuse_reply_open(req, fi)
        }
        ops.readdir = { req, ino, size, offset, _ in
            let fs = requestFileSystem(req)
            guard let node = fs.table[ino], node.isDirectory else { fuse_reply_err(req, ENOTDIR); return }
            var entries: [(String, UInt64)] = [(".", node.number), ("..", node.parent)]
            entries += node.children.map { ($0.name, $0.inode) }
            var buffer = [CChar](repeating: 0, count: size)
            var used = 0
            var index = Int(offset)
            while index < entries.count {
                let (name, inode) = entries[index]
                var st = stat()
                st.st_ino = __ino_t(inode)
                st.st_mode = (fs.table[inode]?.isDirectory ?? true) ? S_IFDIR : S_IFREG
                let needed = buffer.withUnsafeMutableBufferPointer { b in
                    fuse_add_direntry(req, b.baseAddress! + used, size - used, name, &st, off_t(index + 1))
                }
                if needed > size - used { break }
                used += needed
                index += 1
            }
            buffer.withUnsafeBufferPointer { _ = fuse_reply_buf(req, $0.baseAddress, used) }
        }
        ops.releasedir = { req, _, _ in fuse_reply_err(req, 0) }
        ops.open = { req, ino, fi in
            let fs = requestFileSystem(req)
            guard let fi, let node = fs.table[ino] else { fuse_reply_err(req, ENOENT); return }
            guard !node.isDirectory else { fuse_reply_err(req, EISDIR); return }
            guard fi.pointee.flags & O_ACCMODE == O_RDONLY else { fuse_reply_err(req, EROFS); return }
            var info = fi.pointee
            let pending = PendingRequest(req)
            fs.replyStarted()
            Task {
                defer { fs.replyFinished() }
                do {
                    info.fh = try await fs.open(node)
                    info.keep_cache = 1  // repeat reads come from the page cache
                    fuse_reply_open(pending.req, &info)
                } catch {
                    fs.logger.error("open \(node.name): \(error)")
                    fuse_reply_err(pending.req, EIO)
                }
            }
        }
        ops.read = { req, _, size, offset, fi in
            let fs = requestFileSystem(req)
            guard let handle = fi?.pointee.fh else { fuse_reply_err(req, EBADF); return }
            // Present bytes are answered here, on the FUSE thread: no task, no actor hop.
            do {
                if let read = try fs.readPresent(handle: handle, offset: Int64(offset), size: size) {
                    read.withBytes { bytes in
                        populatePages(bytes)
                        fuse_reply_buf(req, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
                        releasePages(bytes)
                    }
                    return
                }
            } catch {
                fuse_reply_err(req, EBADF)
                return
            }
            let pending = PendingRequest(req)
            fs.replyStarted()
            Task {
                defer { fs.replyFinished() }
                do {
                    let read = try await fs.read(handle: handle, offset: Int64(offset), size: size)
                    read.withBytes { bytes in
                        populatePages(bytes)
                        fuse_reply_buf(pending.req, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
                        // The kernel copied the bytes: drop the pages from our page tables so the
                        // daemon's RSS does not grow with the model (they stay in the page cache).
                        releasePages(bytes)
                    }
                } catch {
                    fs.logger.error("EIO: read of \(fs.objectLocation(handle: handle)) at offset \(offset) (\(size) bytes): \(error)")
                    fuse_reply_err(pending.req, EIO)  // never wrong bytes
                }
            }
        }
        ops.release = { req, _, fi in
            let fs = requestFileSystem(req)
            let handle = fi?.pointee.fh ?? 0
            let pending = PendingRequest(req)
            fs.replyStarted()
            Task {
                defer { fs.replyFinished() }
                await fs.release(handle: handle)
                fuse_reply_err(pending.req, 0)
            }
        }
        ops.statfs = { req, _ in
            let fs = requestFileSystem(req)
            var st = statvfs()
            st.f_bsize = 4096
            st.f_frsize = 4096
            st.f_blocks = fsblkcnt_t((fs.table.totalBytes + 4095) / 4096)
            st.f_files = fsfilcnt_t(fs.table.nodes.count)
            st.f_namemax = 1024
            fuse_reply_statfs(req, &st)
        }
        ops.getxattr = { req, ino, name, size in
            let fs = requestFileSystem(req)
            guard let node = fs.table[ino], let name else { fuse_reply_err(req, ENOENT); return }
            guard let value = fs.xattrs(of: node).first(where: { $0.0 == String(cString: name) })?.1 else {
                fuse_reply_err(req, ENODATA)
                return
            }
            replyXattr(req, Array(value.utf8), size)
        }
        ops.listxattr = { req, ino, size in
            let fs = requestFileSystem(req)
            guard let node = fs.table[ino] else { fuse_reply_err(req, ENOENT); return }
            var names: [UInt8] = []
            for (k, _) in fs.xattrs(of: node) { names += Array(k.utf8) + [0] }
            replyXattr(req, names, size)
        }
        return ops
    }
}

/// `WEIGHTFS_FUSE_POPULATE=0` turns `populatePages` off (for A/B runs).
private let populateReplies = ProcessInfo.processInfo.environment["WEIGHTFS_FUSE_POPULATE"] != "0"

/// Maps the pages of a reply's bytes in one call before the kernel copies them (MADV_POPULATE_READ):
/// otherwise the copy takes a page fault per 4 KiB of the mapped cache file. Best effort.
private func populatePages(_ bytes: UnsafeRawBufferPointer) {
    guard populateReplies, let base = bytes.baseAddress, bytes.count > 0 else { return }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = Int(bitPattern: base) / page * page
    let end = Int(bitPattern: base) + bytes.count
    _ = wfs_populate_read(UnsafeRawPointer(bitPattern: start), UInt64(end - start))
}

/// `madvise(MADV_DONTNEED)` on the whole pages inside `bytes` of a shared file mapping: the
/// mapping stays valid (a later access faults the page back in from the page cache).
private func releasePages(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = (Int(bitPattern: base) + page - 1) / page * page
    let end = (Int(bitPattern: base) + bytes.count) / page * page
    guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
    madvise(p, end - start, Int32(MADV_DONTNEED))
}

/// The kernel caps a FUSE mount's readahead at 128 KiB whatever INIT negotiates; a larger
/// window keeps more chunk reads in flight for sequential readers. Set through the mount's
/// backing-device entry in sysfs (root only; best effort).
private func raiseReadahead(mountpoint: String, kilobytes: Int, logger: Logger) {
    guard kilobytes > 0, !mountpoint.hasPrefix("/dev/fd/") else { return }
    // The device number comes from mountinfo: stat(2) on the mountpoint would ask this very
    // daemon, whose loop is not running yet.
    guard let device = mountDevice(mountpoint) else {
        logger.info("could not find \(mountpoint) in /proc/self/mountinfo; keeping the kernel's readahead")
        return
    }
    let path = "/sys/class/bdi/\(device)/read_ahead_kb"
    for _ in 0..<50 {
        do {
            try "\(kilobytes)\n".write(toFile: path, atomically: false, encoding: .utf8)
        } catch {
            logger.info("could not raise readahead via \(path): \(error)")
            return
        }
        usleep(100_000)
        let now = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        if now == String(kilobytes) { return }
    }
    logger.info("readahead of \(mountpoint) stayed below \(kilobytes) KiB")
}

/// `MAJOR:MINOR` of the mount at `mountpoint`, from /proc/self/mountinfo (never stat(2): that
/// would ask this daemon itself).
private func mountDevice(_ mountpoint: String) -> String? {
    let target = URL(fileURLWithPath: mountpoint).standardizedFileURL.path
    guard let info = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
          let line = info.split(separator: "\n").last(where: { $0.split(separator: " ").dropFirst(4).first.map(String.init) == target }),
          let device = line.split(separator: " ").dropFirst(2).first else { return nil }
    return String(device)
}

/// The session pointer, for the signal handler that ends it.
struct SessionHandle: @unchecked Sendable {
    let raw: OpaquePointer
}

/// A FUSE request handed to a task: libfuse allows exactly one reply, from any thread.
struct PendingRequest: @unchecked Sendable {
    let req: fuse_req_t?
    init(_ req: fuse_req_t?) { self.req = req }
}

private func requestFileSystem(_ req: fuse_req_t?) -> FileSystem {
    Unmanaged<FileSystem>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
}

private func replyXattr(_ req: fuse_req_t?, _ value: [UInt8], _ size: Int) {
    if size == 0 {
        fuse_reply_xattr(req, value.count)
    } else if size < value.count {
        fuse_reply_err(req, ERANGE)
    } else {
        value.withUnsafeBufferPointer { _ = fuse_reply_buf(req, UnsafeRawPointer($0.baseAddress)?.assumingMemoryBound(to: CChar.self), value.count) }
    }
}

