import Foundation
import Testing
import TestSupport

@testable import CPUBackend
@testable import ModelCore

/// The backend seam: sequences batched into one step, their keys and values in blocks scattered
/// over one pool, give what each gives alone.
struct BatchTests {
    static let a = [0, 17, 250, 3, 99, 401, 8], b = [5, 44, 300, 12, 9, 77, 123, 2, 64, 11]

    func alone(_ model: LlamaModel, _ tokens: [Int], then next: Int) async throws -> (prefill: [Float], decode: [Float]) {
        let cache = model.makeCache(capacity: 32)
        let prefill = try await model.forward(tokens: tokens, cache: cache)
        let decode = try await model.forward(tokens: [next], cache: cache)
        return (prefill, decode)
    }

    @Test(arguments: ["tiny-llama-f32", "tiny-qwen2-f32"])
    func twoSequencesInOneStepMatchEachAlone(model name: String) async throws {
        let config = try ModelConfig.load(directory: fixtures.appendingPathComponent(name))
        let weights = try SafetensorsCheckpoint(directory: fixtures.appendingPathComponent(name))
        let backend = try CPUExecutor.load(config: config, weights: weights, kvBlocks: 8, blockSize: 4, threads: 2)
        let (soloA, soloB) = (try await alone(backend.model, Self.a, then: 7), try await alone(backend.model, Self.b, then: 8))

        // Blocks out of order and interleaved between the two sequences.
        let tableA = [BlockID(5), BlockID(0)], tableB = [BlockID(3), BlockID(6), BlockID(1)]
        let vocab = config.vocabSize
        let prefill = Batch(tokens: Self.a + Self.b, positions: Array(0..<Self.a.count) + Array(0..<Self.b.count),
                            sequences: [Batch.Sequence(rows: 0..<Self.a.count, blockTable: tableA),
                                        Batch.Sequence(rows: Self.a.count..<(Self.a.count + Self.b.count), blockTable: tableB)],
                            logitRows: [Self.a.count - 1, Self.a.count + Self.b.count - 1])
        let first = try await backend.execute(prefill)
        #expect(first.count == 2 * vocab)
        #expect(maxAbsDifference(first[0..<vocab], soloA.prefill) < 1e-4)
        #expect(maxAbsDifference(first[vocab...], soloB.prefill) < 1e-4)

        // A batched decode step: one new token for each, B first this time.
        let decode = Batch(tokens: [8, 7], positions: [Self.b.count, Self.a.count],
                           sequences: [Batch.Sequence(rows: 0..<1, blockTable: tableB), Batch.Sequence(rows: 1..<2, blockTable: tableA)],
                           logitRows: [1, 0])
        let second = try await backend.execute(decode)
        #expect(maxAbsDifference(second[0..<vocab], soloA.decode) < 1e-4)
        #expect(maxAbsDifference(second[vocab...], soloB.decode) < 1e-4)
    }

    @Test func malformedBatchesAreRefusedNamingWhatIsWrong() async throws {
        let dir = fixtures.appendingPathComponent("tiny-llama-f32")
        let backend = try CPUExecutor.load(config: try ModelConfig.load(directory: dir), weights: try SafetensorsCheckpoint(directory: dir),
                                           kvBlocks: 2, blockSize: 4, threads: 1)
        func refused(_ batch: Batch, _ words: String) async {
            do {
                _ = try await backend.execute(batch)
                Issue.record("accepted a batch that should fail with \(words)")
            } catch {
                #expect(error.kind == .invalidInput && error.message.contains(words), "\(error)")
            }
        }
        let one = Batch.Sequence(rows: 0..<2, blockTable: [BlockID(0)])
        await refused(Batch(tokens: [1, 2], positions: [0, 1], sequences: [Batch.Sequence(rows: 0..<2, blockTable: [BlockID(7)])], logitRows: [1]), "not one of the 2 blocks")
        await refused(Batch(tokens: [1, 2], positions: [3, 4], sequences: [one], logitRows: [1]), "past its 1 blocks")
        await refused(Batch(tokens: [1, 2], positions: [0, 2], sequences: [one], logitRows: [1]), "consecutive")
        await refused(Batch(tokens: [1, 2], positions: [0, 1], sequences: [Batch.Sequence(rows: 0..<1, blockTable: [BlockID(0)])], logitRows: [0]), "row 1 belongs to no sequence")
        await refused(Batch(tokens: [1, 2], positions: [0, 1], sequences: [one, one], logitRows: [1]), "two sequences")
        await refused(Batch(tokens: [1, 2], positions: [0, 1], sequences: [one], logitRows: [2]), "logit row 2")
    }
}
