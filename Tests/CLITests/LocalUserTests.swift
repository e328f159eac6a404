import Foundation
import Testing
import TestSupport

/// What another user of the machine can plant in places the command writes to.
@Suite(.serialized)
struct LocalUserTests {
    /// `cp` writes DEST.weightfs-partial and renames it over DEST: a symlink planted at the
    /// partial name (to a file of the victim's) is replaced, never written through.
    @Test func cpNeverWritesThroughAPlantedPartialFile() throws {
        let root = try TestEnvironment.scratchDirectory("cp-planted")
        let store = root.appendingPathComponent("store").path, out = root.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let bytes = TestBytes.generate(count: 100_000, seed: 81)
        try bytes.write(to: URL(fileURLWithPath: "\(store)/x.bin"))
        let victim = root.appendingPathComponent("victim").path
        try Data("precious".utf8).write(to: URL(fileURLWithPath: victim))
        #expect(symlink(victim, "\(out)/x.bin.weightfs-partial") == 0)
        let r = try CommandRunner.weightfs(["cp", "file://\(store)/x.bin", "\(out)/x.bin"], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: victim)) == Data("precious".utf8))
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(out)/x.bin")) == bytes)
        #expect(!FileManager.default.fileExists(atPath: "\(out)/x.bin.weightfs-partial"))
    }

    /// With HOME unset and no home in the password database, the cache is no fixed place under
    /// /tmp (which another user could make first and fill with links): the command asks for
    /// --cache-dir. Needs root, to run as a user with no passwd entry.
    @Test(.enabled(if: geteuid() == 0, "runs the command as another uid, which needs root"))
    func noSharedDefaultCacheWithoutAHome() throws {
        let root = try TestEnvironment.scratchDirectory("no-home")
        let store = root.appendingPathComponent("store").path
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        try Data("w".utf8).write(to: URL(fileURLWithPath: "\(store)/w.bin"))
        chmod(root.path, 0o755)
        let r = try CommandRunner.run("/usr/bin/setpriv", ["--reuid=54321", "--regid=54321", "--clear-groups", "/usr/bin/env", "-i", "PATH=/usr/bin:/bin",
                                                          TestEnvironment.weightfsBinary, "preload", "file://\(store)"], timeout: 60)
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("HOME is not set") && r.stderr.contains("--cache-dir"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/.cache/weightfs"))
    }
}
