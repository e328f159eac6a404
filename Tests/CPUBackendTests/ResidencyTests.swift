import Foundation
import Testing

import TestSupport

@testable import CPUBackend

/// Where the CPU backend reads its weights from: the choice (pure) and that both places give the
/// same logits.
@Suite struct ResidencyTests {
    static let gib = 1 << 30

    @Test func residentWhenHugePagesCanBeAskedForAndTheWeightsFitInHalfTheMemory() throws {
        let madvise = try WeightResidency.choose(forced: nil, thpMode: "always [madvise] never\n", modelBytes: 4 * Self.gib, availableBytes: 16 * Self.gib)
        #expect(madvise.residency == .resident)
        let always = try WeightResidency.choose(forced: "", thpMode: "[always] madvise never", modelBytes: 1, availableBytes: nil)
        #expect(always.residency == .resident)
    }

    @Test func mappedWhenHugePagesAreOffOrUnknownOrTheWeightsAreTooBig() throws {
        let never = try WeightResidency.choose(forced: nil, thpMode: "always madvise [never]", modelBytes: 1, availableBytes: 16 * Self.gib)
        #expect(never.residency == .mapped)
        #expect(never.reason.contains("never"), "\(never.reason)")
        let unknown = try WeightResidency.choose(forced: nil, thpMode: nil, modelBytes: 1, availableBytes: 16 * Self.gib)
        #expect(unknown.residency == .mapped)
        let big = try WeightResidency.choose(forced: nil, thpMode: "always [madvise] never", modelBytes: 9 * Self.gib, availableBytes: 16 * Self.gib)
        #expect(big.residency == .mapped)
        #expect(big.reason.contains("more than half"), "\(big.reason)")
    }

    @Test func theEnvironmentForcesEitherAndABadValueIsNamed() throws {
        let forced = try WeightResidency.choose(forced: "MAPPED", thpMode: "[always]", modelBytes: 1, availableBytes: 16 * Self.gib)
        #expect(forced.residency == .mapped)
        let resident = try WeightResidency.choose(forced: "resident", thpMode: "always madvise [never]", modelBytes: 9 * Self.gib, availableBytes: 1)
        #expect(resident.residency == .resident)
        #expect(throws: ResidencyError.self) { try WeightResidency.choose(forced: "hugepages", thpMode: nil, modelBytes: 1, availableBytes: nil) }
        do {
            _ = try WeightResidency.choose(forced: "hugepages", thpMode: nil, modelBytes: 1, availableBytes: nil)
        } catch {
            #expect(error.description.contains("WEIGHTFS_CPU_WEIGHTS=hugepages"), "\(error.description)")
        }
    }

    /// Copied or read in place, the same bytes through the same kernels: identical logits (bf16;
    /// and tied embeddings, whose matrix is copied once and read as the LM head too).
    @Test(arguments: ["tiny-qwen2-f32", "tiny-llama-bf16"])
    func residentAndMappedGiveIdenticalLogits(model: String) async throws {
        let dir = TestEnvironment.repoRoot.appendingPathComponent("Tests/Fixtures/\(model)")
        let tokens = [0, 17, 250, 3, 99, 401, 8, 12]
        var results: [[Float]] = []
        for residency in WeightResidency.allCases {
            let llama = try LlamaModel(directory: dir, threads: 2, residency: residency)
            #expect(llama.residency.residency == residency)
            #expect((llama.copies != nil) == (residency == .resident))
            results.append(try await llama.forward(tokens: tokens, cache: llama.makeCache(capacity: 16), logits: .all))
        }
        #expect(results[0] == results[1])
        #expect(results[0].contains { $0 != 0 })
    }
}
