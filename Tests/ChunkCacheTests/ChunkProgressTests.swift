@testable import ChunkCache
import Foundation
import ObjectStore
import Testing

struct ChunkProgressTests {
    /// The fetch asks after each piece whether the bytes it is gathering would complete a
    /// waiting reader's range; only then does it write a partial block.
    @Test func tellsWhenGatheredBytesWouldServeAWaitingReader() async throws {
        let progress = ChunkProgress(segments: [ByteRange(0, 1 << 20)])
        #expect(!progress.wouldServeReader(segment: 0, upTo: 1 << 20), "nobody waits")
        let reader = Task { try await progress.wait(for: ByteRange(4096, 8192)) }
        var registered = false
        for _ in 0..<2000 where !registered {
            registered = progress.wouldServeReader(segment: 0, upTo: 8192)
            if !registered { try await Task.sleep(for: .milliseconds(1)) }
        }
        #expect(registered, "a reader of [4096, 8192) is served by bytes up to 8192")
        #expect(!progress.wouldServeReader(segment: 0, upTo: 8191), "one byte short serves nobody")
        progress.wrote(segment: 0, upTo: 8192)
        #expect(try await reader.value)
        #expect(!progress.wouldServeReader(segment: 0, upTo: 1 << 20), "the reader has its bytes")
    }
}
