import ModelCore

/// The CPU backend: a Llama-family model whose weights are read in place from their
/// `WeightSource`, and KV memory of `kvBlockCount` blocks in host memory that the scheduler above
/// hands out by block id.
public final class CPUExecutor: ModelBackend {
    public let model: LlamaModel
    public let kv: KVMemory

    public var config: ModelConfig { model.config }
    public var kvBlockSize: Int { kv.blockSize }
    public var kvBlockCount: Int { kv.blockCount }

    public init(model: LlamaModel, kvBlocks: Int, blockSize: Int) {
        self.model = model
        kv = KVMemory(config: model.config, blockCount: kvBlocks, blockSize: blockSize)
    }

    /// Looks up every tensor (reading none of their bytes) and sets aside the KV memory.
    public static func load(config: ModelConfig, weights: any WeightSource, kvBlocks: Int, blockSize: Int = 16,
                            threads: Int) throws(ModelError) -> CPUExecutor {
        CPUExecutor(model: try LlamaModel(config: config, weights: weights, threads: threads), kvBlocks: kvBlocks, blockSize: blockSize)
    }

    public func execute(_ batch: Batch) async throws(ModelError) -> [Float] {
        try await model.forward(batch, kv: kv)
    }
}
