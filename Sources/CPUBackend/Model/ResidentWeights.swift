import Foundation
import ModelCore
import Safetensors
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where the CPU backend reads its weights from.
///
/// `mapped`: in place, in the `WeightSource`'s mapping (the page cache of the checkpoint or of
/// the chunk cache's data file, 4 KiB pages). `resident`: each group copied, as soon as its
/// `ready` returns, into anonymous memory that asks for transparent huge pages. Decode streams
/// every weight once per token, and one core reads 2 MiB pages 10-20 % faster than 4 KiB ones
/// (fewer TLB misses, and the hardware prefetcher does not stop at every 4 KiB boundary; see
/// docs/BENCHMARKS.md). The copy costs the model's size in anonymous memory (the page cache's
/// copy stays reclaimable) and one pass over the bytes as they arrive.
public enum WeightResidency: String, Sendable, CaseIterable {
    case resident, mapped

    public static let environmentVariable = "WEIGHTFS_CPU_WEIGHTS"

    /// What the process chose and why, for one line of log.
    public struct Choice: Sendable, Equatable {
        public let residency: WeightResidency
        public let reason: String
    }

    /// The residency for a model of `modelBytes`: `forced` (the environment variable's value)
    /// when set; otherwise resident when transparent huge pages can be asked for (`thpMode`, the
    /// text of /sys/kernel/mm/transparent_hugepage/enabled, with the mode in brackets) and the
    /// weights take at most half of `availableBytes` (MemAvailable), else mapped.
    public static func choose(forced: String?, thpMode: String?, modelBytes: Int, availableBytes: Int?)
        throws(ResidencyError) -> Choice {
        if let forced, !forced.isEmpty {
            guard let r = WeightResidency(rawValue: forced.lowercased()) else {
                throw ResidencyError(description: "\(environmentVariable)=\(forced) is not a residency: use resident or mapped, or unset it to choose by memory")
            }
            return Choice(residency: r, reason: "\(environmentVariable)=\(r.rawValue)")
        }
        let mode = thpMode.flatMap { text -> String? in
            guard let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]") else { return nil }
            return String(text[text.index(after: open)..<close])
        }
        guard let mode, mode == "always" || mode == "madvise" else {
            return Choice(residency: .mapped, reason: "transparent huge pages are \(mode ?? "not available") on this machine")
        }
        if let availableBytes, modelBytes > availableBytes / 2 {
            return Choice(residency: .mapped, reason: "the weights (\(gib(modelBytes))) are more than half the available memory (\(gib(availableBytes)))")
        }
        return Choice(residency: .resident, reason: "\(gib(modelBytes)) in huge pages, \(availableBytes.map(gib) ?? "unknown") available")
    }

    /// The choice for this machine (environment, THP mode, MemAvailable) and a model of `modelBytes`.
    public static func choose(modelBytes: Int) throws(ResidencyError) -> Choice {
        let thp = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8)
        var available: Int? = nil
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kb = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) {
            available = kb * 1024
        }
        return try choose(forced: ProcessInfo.processInfo.environment[environmentVariable], thpMode: thp,
                          modelBytes: modelBytes, availableBytes: available)
    }

    private static func gib(_ bytes: Int) -> String { String(format: "%.2f GiB", Double(bytes) / 1_073_741_824) }
}

public struct ResidencyError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Anonymous memory, 2 MiB aligned and advised as huge pages, that resident weights are copied
/// into; unmapped when the last tensor view that points into it goes.
final class WeightArena: @unchecked Sendable {  // written only by `ResidentCopies` under its lock, before any read
    let base: UnsafeMutableRawPointer
    private let mapping: UnsafeMutableRawPointer
    private let mappingBytes: Int

    init?(bytes: Int) {
        let huge = 2 << 20
        mappingBytes = max(bytes, 1) + huge
        guard let p = mmap(nil, mappingBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              p != MAP_FAILED else { return nil }
        mapping = p
        base = UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: p) + huge - 1) & ~(huge - 1))!
        _ = madvise(base, (bytes + huge - 1) & ~(huge - 1), MADV_HUGEPAGE)  // a hint: without THP the copy still works
    }

    deinit { munmap(mapping, mappingBytes) }
}

/// The copies a resident model still owes: per group, its tensors' bytes from the source's
/// mapping into the arena. Each group is copied once, by the first forward pass that needs it,
/// after the source said it is ready; a pass that comes while another copies waits for it.
final class ResidentCopies: Sendable {
    struct Copy: @unchecked Sendable {  // the source's read-only mapping into the arena's own range
        let from: UnsafeRawPointer
        let to: UnsafeMutableRawPointer
        let bytes: Int
    }

    let arena: WeightArena
    private let pending: Mutex<[FetchPlan.Group: [Copy]]>
    private let threads: Int

    /// Lays `tensors` out in a new arena (each at a 64-byte boundary; a tensor seen twice, as tied
    /// embeddings are, once) and returns the views that point into it, in the same order.
    init?(tensors: [WeightTensor], threads: Int) {
        var offsets: [String: Int] = [:]
        var total = 0
        for t in tensors where offsets[t.name] == nil {
            offsets[t.name] = total
            total += (t.elementCount * t.dtype.byteSize + 63) & ~63
        }
        guard let arena = WeightArena(bytes: total) else { return nil }
        self.arena = arena
        var copies: [FetchPlan.Group: [Copy]] = [:]
        var seen = Set<String>()
        for t in tensors where seen.insert(t.name).inserted {
            copies[FetchPlan.Group(tensorName: t.name), default: []]
                .append(Copy(from: t.base, to: arena.base + offsets[t.name]!, bytes: t.elementCount * t.dtype.byteSize))
        }
        pending = Mutex(copies)
        self.threads = threads
        self.offsets = offsets
    }

    private let offsets: [String: Int]

    /// `t` as a view of its place in the arena (its bytes are there once its group is copied).
    func resident(_ t: WeightTensor) -> WeightTensor {
        WeightTensor(name: t.name, dtype: t.dtype, shape: t.shape, base: UnsafeRawPointer(arena.base + offsets[t.name]!), owner: arena)
    }

    /// Copies `group`'s tensors into the arena unless that was done. Call only after the source's
    /// `ready(group)` returned.
    func copy(_ group: FetchPlan.Group) {
        pending.withLock { pending in
            guard let copies = pending.removeValue(forKey: group) else { return }
            let total = copies.reduce(0) { $0 + $1.bytes }
            let piece = 1 << 20
            // In 1 MiB pieces over the workers: a big layer copies at the memory's rate, not one core's.
            var pieces: [Copy] = []
            for c in copies {
                var o = 0
                while o < c.bytes {
                    let n = min(piece, c.bytes - o)
                    pieces.append(Copy(from: c.from + o, to: c.to + o, bytes: n))
                    o += n
                }
            }
            let all = pieces
            Parallel.forRanges(all.count, threads: threads, costPerItem: total / max(all.count, 1) / 8) { range in
                for i in range { all[i].to.copyMemory(from: all[i].from, byteCount: all[i].bytes) }
            }
        }
    }
}
