import Foundation
import Testing
import TestSupport

/// `weightfs mount` without `--foreground`: the parent returns once the daemon has mounted.
@Suite(.serialized)
struct DetachedMountTests {
    /// A bucket whose names clash (a file `d` beside objects under `d/`) makes the daemon warn
    /// about each before it mounts: 400 warnings, more than a pipe holds. The parent passes them
    /// on as they come, so neither process waits on the other, and the mount comes up.
    @Test func manyWarningsBeforeMountingDoNotStopTheDaemon() async throws {
        // A stub serves the listing (the emulator stores objects as files, where a file and a
        // directory of one name cannot both exist); the mount reads no object here.
        let stem = String(repeating: "n", count: 180)
        let clashes = 400
        let items: [[String: String]] = (0..<clashes).flatMap { i in
            ["m/\(stem)\(i)", "m/\(stem)\(i)/x"].map { ["name": $0, "size": "5", "generation": "1"] }
        }
        let stub = try LoopbackHTTPServer { request in
            request.path.contains("/o?") ? .json(["items": items]) : .json(["error": ["code": 404, "message": "No such object"]], status: 404)
        }
        let dir = try TestEnvironment.scratchDirectory("detach")
        let mountpoint = dir.appendingPathComponent("mnt").path
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let r = try CommandRunner.weightfs(["mount", "gs://b/m", mountpoint, "--cache-dir", dir.appendingPathComponent("cache").path],
                                           environment: ["STORAGE_EMULATOR_HOST": stub.url], timeout: 120)
        defer { _ = try? CommandRunner.run("/bin/fusermount3", ["-u", "-z", mountpoint], timeout: 30) }
        #expect(r.status == 0, "\(r.stderr.suffix(500))")
        let warnings = r.stderr.split(separator: "\n").filter { $0.contains("not mounted") }
        #expect(warnings.count == clashes)
        #expect(r.stderr.contains("(daemon pid "))
        #expect(MountProcess.isMounted(mountpoint))
        #expect(try FileManager.default.contentsOfDirectory(atPath: mountpoint).count == clashes)

        // fusermount3 -u ends the daemon.
        let pid = r.stderr.split(separator: "(daemon pid ").last.flatMap { Int32($0.prefix(while: \.isNumber)) }
        let unmounted = try CommandRunner.run("/bin/fusermount3", ["-u", mountpoint], timeout: 30)
        #expect(unmounted.status == 0, "\(unmounted.stderr)")
        if let pid {
            var gone = false
            for _ in 0..<400 where !gone {
                // Exited: gone, or a zombie its new parent has not reaped yet.
                gone = kill(pid, 0) != 0 || ((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.contains(") Z ") ?? true)
                if !gone { usleep(25_000) }
            }
            #expect(gone, "the daemon (pid \(pid)) still runs 10 s after fusermount3 -u")
        } else {
            Issue.record("no daemon pid in: \(r.stderr.suffix(300))")
        }
    }
}
