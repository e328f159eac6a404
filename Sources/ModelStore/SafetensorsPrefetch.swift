import ChunkCache
import Foundation
import ObjectStore
import Safetensors

extension ChunkCache {
    /// Reads and validates a cached shard's safetensors header, fetching its first bytes at
    /// demand priority. `fileName` names the shard in the header and its errors (default: its
    /// full location).
    public nonisolated func safetensorsHeader(_ object: CachedObject, fileName: String? = nil) async throws -> SafetensorsHeader {
        let size = object.info.size
        let name = fileName ?? "\(store.location)/\(object.info.name)"
        guard size >= 8 else {
            throw SafetensorsError(.truncated, file: name, "file is \(size) bytes, shorter than the 8-byte header length")
        }
        let first8 = try await bytes(object, ByteRange(0, 8))
        let length = try SafetensorsHeader.headerLength(fileName: name, first8: first8, fileSize: size)
        let header = try await bytes(object, ByteRange(8, 8 + length))
        return try SafetensorsHeader.parse(fileName: name, headerBytes: header, headerLength: length, fileSize: size)
    }

    private nonisolated func bytes(_ object: CachedObject, _ range: ByteRange) async throws -> [UInt8] {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(range.count), alignment: 8)
        defer { buffer.deallocate() }
        try await read(object, range: range, into: buffer)
        return Array(buffer)
    }

    /// The headers of `shards`, in their order, read all at once (one round trip for the lot).
    public nonisolated func safetensorsHeaders(_ shards: [CachedObject], fileNames: [String]? = nil) async throws -> [SafetensorsHeader] {
        let parsed = try await withThrowingTaskGroup(of: (Int, SafetensorsHeader).self) { group in
            for (i, shard) in shards.enumerated() {
                group.addTask { (i, try await self.safetensorsHeader(shard, fileName: fileNames?[i])) }
            }
            return try await group.reduce(into: [Int: SafetensorsHeader]()) { $0[$1.0] = $1.1 }
        }
        return shards.indices.compactMap { parsed[$0] }
    }

    /// Queues every step of `plan` at `priority`, in the plan's order; `shards` by file name.
    public nonisolated func prefetch(_ plan: FetchPlan, shards: [String: CachedObject], priority: FetchPriority) async {
        for step in plan.steps where step.byteCount > 0 {
            guard let shard = shards[step.shard] else { continue }
            await prefetch(shard, range: ByteRange(step.range.lowerBound, step.range.upperBound), priority: priority)
        }
    }

    /// Queues safetensors shards in the order a forward pass reads them (headers, embeddings,
    /// layer 0…N, final norm, lm_head, the rest) at `priority`; returns the plan.
    @discardableResult
    public nonisolated func prefetchForwardOrder(_ shards: [CachedObject], priority: FetchPriority) async throws -> FetchPlan {
        let headers = try await safetensorsHeaders(shards)
        var byFileName: [String: CachedObject] = [:]
        for (header, shard) in zip(headers, shards) { byFileName[header.fileName] = shard }
        let plan = FetchPlan.forwardOrder(headers: headers)
        await prefetch(plan, shards: byFileName, priority: priority)
        return plan
    }
}
