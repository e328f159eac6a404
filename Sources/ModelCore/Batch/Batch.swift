/// One step of work for a backend, after vLLM v1's model input: the new tokens of every
/// scheduled sequence flattened into one list (so the matrix products run once for all of them),
/// their positions, each sequence's block table, and the rows whose next-token logits are wanted.
///
/// A sequence's tokens are consecutive in `tokens` and at consecutive positions; the keys and
/// values of its earlier positions are already in the blocks of its table. The backend writes the
/// new tokens' keys and values into the table's blocks (position p goes to block
/// `blockTable[p / blockSize]`, slot `p % blockSize`) before attending over them.
public struct Batch: Sendable {
    public struct Sequence: Sendable {
        /// Its tokens' rows in `tokens` and `positions`.
        public var rows: Range<Int>
        /// The blocks holding its positions 0..<(blockTable.count × blockSize), in order.
        public var blockTable: [BlockID]

        public init(rows: Range<Int>, blockTable: [BlockID]) {
            self.rows = rows
            self.blockTable = blockTable
        }
    }

    public var tokens: [Int]
    public var positions: [Int]
    public var sequences: [Sequence]
    /// Rows of `tokens` whose next-token logits `execute` returns, in this order (usually each
    /// sequence's last row; every row for a scoring request).
    public var logitRows: [Int]

    public init(tokens: [Int], positions: [Int], sequences: [Sequence], logitRows: [Int]) {
        self.tokens = tokens
        self.positions = positions
        self.sequences = sequences
        self.logitRows = logitRows
    }

    /// One sequence's tokens starting at `start`, with logits for its last token (or all).
    public static func single(tokens: [Int], start: Int, blockTable: [BlockID], allLogits: Bool = false) -> Batch {
        Batch(tokens: tokens, positions: Array(start..<(start + tokens.count)),
              sequences: [Sequence(rows: 0..<tokens.count, blockTable: blockTable)],
              logitRows: allLogits ? Array(tokens.indices) : [tokens.count - 1])
    }
}

/// A backend: the forward pass on one kind of device, with the model's weights and the KV
/// memory it owns (after ggml-backend and vLLM's model runner). Model code above it never names
/// a device, and the scheduler above it deals in block ids only.
///
/// Built by a backend's `load(config:weights:kvBlocks:blockSize:…)`, which looks up every tensor
/// (reading no bytes); `execute` awaits each weight group's `WeightSource.ready` before its first
/// use, so a first step can run while the weights still arrive.
public protocol ModelBackend: AnyObject, Sendable {
    var config: ModelConfig { get }
    /// Positions per KV block.
    var kvBlockSize: Int { get }
    /// Blocks of KV memory this backend holds (block ids are 0..<kvBlockCount).
    var kvBlockCount: Int { get }
    /// Runs `batch` and returns `config.vocabSize` logits for each of `batch.logitRows`, one
    /// row after another. Steps must not overlap on the same blocks.
    func execute(_ batch: Batch) async throws(ModelError) -> [Float]
}
