import Foundation
import Testing

import TestSupport
import Tokenizers
@testable import CPUBackend
@testable import ModelCore

/// SmolLM2-135M-Instruct (built by scripts/demo-model into .work/demo-model; not committed),
/// against transformers' top-20 logits in Tests/Fixtures/demo/reference.json. scripts/test
/// builds the model (f32 and bf16) and sets WEIGHTFS_DEMO_MODEL_TESTS=1; with it set, a missing
/// model is a failure, not a skip. A bare `swift test` without the model leaves the suite out.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["WEIGHTFS_DEMO_MODEL_TESTS"] == "1"))
struct DemoModelTests {
    static let f32Dir = TestEnvironment.repoRoot.appendingPathComponent(".work/demo-model/f32")
    static let bf16Dir = TestEnvironment.repoRoot.appendingPathComponent(".work/demo-model/bf16")

    struct Case {
        var name: String
        var inputIDs: [Int]
        var topIDs: [Int]
        var topLogits: [Float]
        var logsumexp: Float
        var greedyIDs: [Int]
    }

    static func cases() throws -> [Case] {
        try readJSON(fixtures.appendingPathComponent("demo/reference.json"))["cases"].arrayValue.map { c in
            guard let lse = c["last_logsumexp"].doubleValue else { throw ModelError(.invalidField, file: "reference.json", "last_logsumexp") }
            return Case(name: c["name"].stringValue, inputIDs: c["input_ids"].intArray, topIDs: c["last_top20"]["ids"].intArray,
                        topLogits: c["last_top20"]["logits"].floats, logsumexp: Float(lse), greedyIDs: c["greedy"]["new_ids"].intArray)
        }
    }

    /// Returns the largest |logit − reference| over the reference's top 20 and the logsumexp error.
    func compare(_ dir: URL) async throws -> (top20: Float, logsumexp: Float, sameTop1: Bool) {
        let model = try LlamaModel(directory: dir, threads: 2)
        var worst: Float = 0, worstLSE: Float = 0, sameTop1 = true
        for c in try Self.cases() {
            let logits = try await model.forward(tokens: c.inputIDs, cache: model.makeCache(capacity: c.inputIDs.count))
            worst = max(worst, maxAbsDifference(c.topIDs.map { logits[$0] }, c.topLogits))
            let m = logits.max()!
            let lse = m + log(logits.reduce(Float(0)) { $0 + exp($1 - m) })
            worstLSE = max(worstLSE, abs(lse - c.logsumexp))
            sameTop1 = sameTop1 && Sampler.argmax(logits) == c.topIDs[0]
        }
        return (worst, worstLSE, sameTop1)
    }

    @Test
    func f32Top20LogitsMatchTransformers() async throws {
        let r = try await compare(Self.f32Dir)
        print("demo f32: max abs error over the top-20 logits \(r.top20), logsumexp \(r.logsumexp)")
        #expect(r.top20 < 2e-3 && r.logsumexp < 2e-3 && r.sameTop1)
    }

    @Test
    func bf16StaysCloseToTheF32Reference() async throws {
        let r = try await compare(Self.bf16Dir)
        print("demo bf16 vs f32 reference: max abs error over the top-20 logits \(r.top20), logsumexp \(r.logsumexp)")
        #expect(r.sameTop1 && r.top20 < 0.5)
    }

    @Test
    func capitalOfFranceIsParis() async throws {
        let model = try LlamaModel(directory: Self.f32Dir, threads: 2)
        let tokenizer = try Tokenizer(directory: Self.f32Dir)
        let prompt = tokenizer.encode("The capital of France is")
        let c = try #require(try Self.cases().first { $0.name == "capital_of_france" })
        #expect(prompt == c.inputIDs)
        let cache = model.makeCache(capacity: 32)
        var logits = try await model.forward(tokens: prompt, cache: cache)
        var ids: [Int] = []
        for _ in 0..<4 {
            ids.append(Sampler.argmax(logits))
            logits = try await model.forward(tokens: [ids.last!], cache: cache)
        }
        #expect(tokenizer.decode(ids).hasPrefix(" Paris"))
        #expect(ids == Array(c.greedyIDs.prefix(4)))
    }
}
