import Foundation
import Testing
import TestSupport

/// A storage endpoint that lies: what it sends is refused with a message naming it, never a
/// trap, a hang or a terminal taken over. (A stub on loopback stands in for the server.)
@Suite(.serialized)
struct HostileServerTests {
    /// Serves one bucket's listing (every page the same, with `nextPageToken` when given),
    /// `object` as every object's metadata, and 404 for anything else.
    static func server(_ items: [[String: String]], nextPageToken: String? = nil, object: [String: String]? = nil) throws -> LoopbackHTTPServer {
        try LoopbackHTTPServer { request in
            guard request.path.contains("/o?") else {
                if let object, request.path.contains("/o/") { return .json(object) }
                return .json(["error": ["code": 404, "message": "No such object"]], status: 404)
            }
            var page: [String: Any] = ["kind": "storage#objects", "items": items]
            if let nextPageToken { page["nextPageToken"] = nextPageToken }
            return .json(page)
        }
    }

    static func item(_ name: String, size: String = "5") -> [String: String] {
        ["name": name, "size": size, "generation": "1", "updated": "2026-12-01T00:00:00.000Z"]
    }

    @Test func aSizePastGCSLimitsIsRefusedNamingTheObject() throws {
        let huge = Self.item("m/huge.bin", size: String(Int64.max))
        let stub = try Self.server([Self.item("m/a.bin"), huge], object: huge)
        let cache = try TestEnvironment.scratchDirectory("hostile-size").path
        for args in [["ls", "gs://b/m/"], ["preload", "gs://b/m", "--cache-dir", cache], ["stat", "gs://b/m/huge.bin"]] {
            let r = try CommandRunner.weightfs(args, environment: ["STORAGE_EMULATOR_HOST": stub.url], timeout: 60)
            #expect(r.status == 1, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.contains("gs://b/m/huge.bin") && r.stderr.contains("5 TiB"), "\(args): \(r.stderr)")
        }
    }

    /// `cp -r` refuses names whose part below the prefix would leave DEST ('..', empty parts:
    /// the emulator normalizes such names, a real bucket keeps them), before writing anything.
    @Test func cpRecursiveRefusesNamesThatLeaveTheDirectory() throws {
        for evil in ["m/a/../../escaped.bin", "m/../escaped.bin", "m/a//b.bin", "m/./c.bin"] {
            let stub = try Self.server([Self.item("m/ok.bin"), Self.item(evil)])
            let dest = try TestEnvironment.scratchDirectory("hostile-cpr").appendingPathComponent("in").path
            let r = try CommandRunner.weightfs(["cp", "-r", "gs://b/m", dest], environment: ["STORAGE_EMULATOR_HOST": stub.url], timeout: 60)
            #expect(r.status == 1, "\(evil): \(r.stderr)")
            #expect(r.stderr.contains(evil) && r.stderr.contains("would leave"), "\(evil): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dest), "\(evil): something was written")
            #expect(!FileManager.default.fileExists(atPath: (dest as NSString).deletingLastPathComponent + "/escaped.bin"))
        }
    }

    @Test func aRepeatedPageTokenEndsTheListing() throws {
        let stub = try Self.server([Self.item("m/a.bin")], nextPageToken: "again")
        let cache = try TestEnvironment.scratchDirectory("hostile-token").path
        for args in [["ls", "-r", "gs://b/m/"], ["preload", "gs://b/m", "--cache-dir", cache]] {
            let r = try CommandRunner.weightfs(args, environment: ["STORAGE_EMULATOR_HOST": stub.url], timeout: 60)
            #expect(r.status == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.contains("repeats page token again"), "\(args): \(r.stderr)")
        }
    }

    /// Names with terminal control sequences (retitle the window, clear the screen) are shown
    /// escaped by `ls`, `stat` and in errors; `ls --json` escapes them as JSON does.
    @Test func controlCharactersInNamesReachNoTerminal() throws {
        let evil = "m/evil\u{1B}]0;pwned\u{07}\u{9B}2J.bin"
        let stub = try Self.server([Self.item(evil)])
        let env = ["STORAGE_EMULATOR_HOST": stub.url]
        let ls = try CommandRunner.weightfs(["ls", "gs://b/m/"], environment: env, timeout: 60)
        #expect(ls.status == 0, "\(ls.stderr)")
        #expect(ls.stdoutText.contains("m/evil\\x1b]0;pwned\\x07\\u{9b}2J.bin"), "\(ls.stdoutText)")
        #expect(!ls.stdout.contains(0x1B) && !ls.stdout.contains(0x07))
        let json = try CommandRunner.weightfs(["ls", "--json", "gs://b/m/"], environment: env, timeout: 60)
        let line = try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]
        #expect(line?["name"] as? String == evil)
        // An error quoting the name (the stub has no such object to stat).
        let missing = try CommandRunner.weightfs(["stat", "gs://b/\(evil)"], environment: env, timeout: 60)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("evil\\x1b]0;pwned"), "\(missing.stderr)")
        #expect(!missing.stderr.utf8.contains(0x1B))
    }
}
