import Foundation
import ObjectStore
import Testing
import TestSupport

/// The mount's options as a user sets them, observed from outside: ownership, modes,
/// `allow_other`, the extended attributes, and how SIGINT ends it.
@Suite(.serialized)
struct MountOptionsTests {
    func seed(_ label: String) async throws -> (Emulator, String, ObjectInfo) {
        let (emulator, bucket) = try await Emulator.freshBucket(label)
        let info = try await emulator.upload(bucket, "m/a.bin", data: Data("the bytes of a".utf8))
        _ = try await emulator.upload(bucket, "m/d/b.bin", data: Data("b".utf8))
        return (emulator, bucket, info)
    }

    /// `cat PATH` as uid 54321 (a user with no rights of its own): whether it could read. Every
    /// directory above the mountpoint is made passable first (o+x; scripts/test's scratch is
    /// 0700), so only the mount itself decides.
    func readsAsAnotherUser(_ path: String) throws -> Bool {
        var dir = URL(fileURLWithPath: path).deletingLastPathComponent().deletingLastPathComponent()
        while dir.path != "/" {
            var st = stat()
            if stat(dir.path, &st) == 0, st.st_mode & 0o001 == 0 { chmod(dir.path, (st.st_mode & 0o7777) | 0o001) }
            dir = dir.deletingLastPathComponent()
        }
        return try CommandRunner.run("/usr/bin/setpriv", ["--reuid=54321", "--regid=54321", "--clear-groups", "/bin/cat", path], timeout: 30).status == 0
    }

    @Test func ownersModesAndExtendedAttributes() async throws {
        let (emulator, bucket, info) = try await seed("mnt-opts")
        let mount = try MountProcess(url: "gs://\(bucket)/m", endpoint: emulator.url,
                                     arguments: ["--uid", "12345", "--gid", "23456", "--file-mode", "440", "--dir-mode", "550", "--prefetch", "none"])
        defer { mount.stop() }
        var st = stat()
        #expect(stat("\(mount.mountpoint)/a.bin", &st) == 0)
        #expect(st.st_uid == 12345 && st.st_gid == 23456 && st.st_mode == S_IFREG | 0o440, "\(st.st_uid) \(st.st_gid) \(String(st.st_mode, radix: 8))")
        #expect(stat("\(mount.mountpoint)/d", &st) == 0)
        #expect(st.st_uid == 12345 && st.st_gid == 23456 && st.st_mode == S_IFDIR | 0o550, "\(String(st.st_mode, radix: 8))")

        // Every user.weightfs.* attribute, listed and read.
        let script = "import os,sys; p=sys.argv[1]; print('\\n'.join(sorted(n + '=' + os.getxattr(p, n).decode() for n in os.listxattr(p))))"
        let xattrs = try CommandRunner.run(TestEnvironment.python, ["-c", script, "\(mount.mountpoint)/a.bin"], timeout: 30)
        let crc = String(format: "%08x", try #require(info.crc32c))
        #expect(xattrs.stdoutText.split(separator: "\n").map(String.init) == [
            "user.weightfs.crc32c=\(crc)", "user.weightfs.generation=\(info.generation.rawValue)", "user.weightfs.object=gs://\(bucket)/m/a.bin",
        ], "\(xattrs.stdoutText) \(xattrs.stderr)")
        let dirAttrs = try CommandRunner.run(TestEnvironment.python, ["-c", script, "\(mount.mountpoint)/d"], timeout: 30)
        #expect(dirAttrs.status == 0 && dirAttrs.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "a directory has none")
    }

    /// Without `-o allow_other` only the mounting user reads, whatever the modes say; with it,
    /// other users read as the modes allow (`default_permissions`).
    @Test(.enabled(if: geteuid() == 0, "reads as another uid, which needs root"))
    func allowOtherLetsOtherUsersReadAsTheModesSay() async throws {
        let (emulator, bucket, _) = try await seed("mnt-other")
        let mine = try MountProcess(url: "gs://\(bucket)/m", endpoint: emulator.url, arguments: ["--prefetch", "none"])
        defer { mine.stop() }
        #expect(FileManager.default.contents(atPath: "\(mine.mountpoint)/a.bin") == Data("the bytes of a".utf8))
        #expect(try !readsAsAnotherUser("\(mine.mountpoint)/a.bin"), "another user read a mount without allow_other")

        let shared = try MountProcess(url: "gs://\(bucket)/m", endpoint: emulator.url, arguments: ["--prefetch", "none", "-o", "allow_other"])
        defer { shared.stop() }
        #expect(try readsAsAnotherUser("\(shared.mountpoint)/a.bin"), "allow_other with mode 444: others read")
        let closed = try MountProcess(url: "gs://\(bucket)/m", endpoint: emulator.url, arguments: ["--prefetch", "none", "-o", "allow_other", "--file-mode", "400"])
        defer { closed.stop() }
        #expect(try !readsAsAnotherUser("\(closed.mountpoint)/a.bin"), "allow_other with mode 400: the modes still hold")
    }

    /// `--metadata-ttl` is how long the kernel keeps a name and its attributes: with the default
    /// (an hour) five `stat`s of a path ask the daemon once, with 0 every time (counted in the
    /// daemon's trace log).
    @Test func metadataTTLDecidesHowOftenTheKernelAsks() async throws {
        let (emulator, bucket, _) = try await seed("mnt-ttl")
        func lookups(ttl: [String]) throws -> Int {
            let mount = try MountProcess(url: "gs://\(bucket)/m", endpoint: emulator.url, arguments: ["--prefetch", "none"] + ttl,
                                         environment: ["WEIGHTFS_LOG": "trace"])
            defer { mount.stop() }
            var st = stat()
            for _ in 0..<5 { #expect(stat("\(mount.mountpoint)/d/b.bin", &st) == 0) }
            mount.stop()
            let log = try String(contentsOfFile: mount.logPath, encoding: .utf8)
            return log.split(separator: "\n").filter { $0.contains("lookup of inode") && !$0.contains("inode 1") }.count
        }
        let cached = try lookups(ttl: [])
        let uncached = try lookups(ttl: ["--metadata-ttl", "0"])
        #expect(cached == 2, "d and b.bin looked up once each: \(cached)")
        #expect(uncached >= 10, "d and b.bin looked up on every stat: \(uncached)")
    }

    /// Ctrl-C in the foreground: the daemon unmounts, flushes the cache and exits 0.
    @Test func sigintUnmountsAndExitsCleanly() async throws {
        let (emulator, bucket, _) = try await seed("mnt-int")
        let mount = try MountProcess(url: "gs://\(bucket)/m", endpoint: emulator.url, arguments: ["--prefetch", "none"])
        #expect(FileManager.default.contents(atPath: "\(mount.mountpoint)/a.bin") == Data("the bytes of a".utf8))
        #expect(mount.stop(SIGINT), "SIGINT ends the daemon")
        #expect(mount.exitedNormally && mount.terminationStatus == 0)
        #expect(!MountProcess.isMounted(mount.mountpoint))
        let log = try String(contentsOfFile: mount.logPath, encoding: .utf8)
        #expect(log.contains("unmounted") && log.contains("cache flushed"), "\(log)")
    }
}
