import Foundation
import ObjectStore
import Safetensors

extension ChunkCache {
    /// Reads and validates a cached shard's safetensors header, fetching its first bytes at
    /// demand priority.
    public nonisolated func safetensorsHeader(_ object: CachedObject) async throws -> SafetensorsHeader {
        let size = object.info.size
        let name = "\(store.location)/\(object.info.name)"
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

    /// Queues safetensors shards in the order a forward pass reads them (headers, embeddings,
    /// layer 0…N, final norm, lm_head, the rest) at `priority`; returns the plan.
    @discardableResult
    public nonisolated func prefetchForwardOrder(_ shards: [CachedObject], priority: FetchPriority) async throws -> FetchPlan {
        // All shards' headers at once: one round trip for the lot, not one per shard.
        let parsed = try await withThrowingTaskGroup(of: (Int, SafetensorsHeader).self) { group in
            for (i, shard) in shards.enumerated() {
                group.addTask { (i, try await self.safetensorsHeader(shard)) }
            }
            return try await group.reduce(into: [Int: SafetensorsHeader]()) { $0[$1.0] = $1.1 }
        }
        var headers: [SafetensorsHeader] = []
        var byFileName: [String: CachedObject] = [:]
        for (i, shard) in shards.enumerated() {
            guard let header = parsed[i] else { continue }
            headers.append(header)  // in the shards' order, as the plan wants
            byFileName[header.fileName] = shard
        }
        let plan = FetchPlan.forwardOrder(headers: headers)
        for step in plan.steps where step.byteCount > 0 {
            guard let shard = byFileName[step.shard] else { continue }
            await prefetch(shard, range: ByteRange(step.range.lowerBound, step.range.upperBound), priority: priority)
        }
        return plan
    }
}
