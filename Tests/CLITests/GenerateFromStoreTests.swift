import Foundation
import Testing
import TestSupport

/// `weightfs generate gs://…`: the model read through the chunk cache, no FUSE, as a user runs it.
@Suite(.serialized)
struct GenerateFromStoreTests {
    @Test func generateFromTheBucketPrintsWhatTheLocalDirectoryPrints() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("cli-generate")
        let dir = TestEnvironment.repoRoot.appendingPathComponent("Tests/Fixtures/tiny-llama-f32")
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) {
            try await emulator.upload(bucket, "models/tiny/\(name)", file: dir.appendingPathComponent(name).path)
        }
        let cacheDir = try TestEnvironment.scratchDirectory("cli-generate").path
        let args = ["--prompt", "The capital of France is", "--max-tokens", "12", "--ignore-eos", "--threads", "1"]
        let local = try CommandRunner.weightfs(["generate", dir.path] + args)
        #expect(local.status == 0, "\(local.stderr)")
        let remote = try CommandRunner.weightfs(["generate", "gs://\(bucket)/models/tiny", "--cache-dir", cacheDir, "--chunk-size", "64KiB"] + args,
                                                environment: ["STORAGE_EMULATOR_HOST": emulator.url])
        #expect(remote.status == 0, "\(remote.stderr)")
        #expect(!local.stdoutText.isEmpty)
        #expect(remote.stdoutText == local.stdoutText)
        #expect(remote.stderr.contains("first token at"))

        // A prefix without a model is a clear error naming it.
        let empty = try CommandRunner.weightfs(["generate", "gs://\(bucket)/models/none", "--cache-dir", cacheDir] + args,
                                               environment: ["STORAGE_EMULATOR_HOST": emulator.url])
        #expect(empty.status != 0)
        #expect(empty.stderr.contains("gs://\(bucket)/models/none"))
        #expect(empty.stderr.contains("config.json"))
    }
}
