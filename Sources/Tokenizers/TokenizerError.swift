import Diagnostics

/// Why a tokenizer could not be loaded.
///
/// Every error names the file and, where one applies, the JSON field (as a path such as
/// `model.merges[17]` or `pre_tokenizer.pretokenizers[1].type`); `message` says what is wrong
/// with what was found, and `description` adds what to do about it.
public typealias TokenizerError = FileError<TokenizerProblem>

/// Which kind of problem, for callers that react to a class of problem rather than read text.
public enum TokenizerProblem: String, FileProblemKind {
    /// The file could not be read.
    case io
    /// The file is not valid UTF-8 JSON.
    case syntax
    /// A required field is missing or has the wrong JSON type or value.
    case invalidField
    /// A component (model, normalizer, pre-tokenizer, post-processor, decoder) or an option of
    /// one that this runtime does not implement.
    case unsupported
    /// A merge names a token that is not in the vocabulary, or is not two tokens.
    case badMerge

    public static var subject: String? { "tokenizer" }

    public var advice: String {
        switch self {
        case .io: return "check that the file exists and is readable"
        case .syntax: return "the file is not valid JSON; re-export it with Hugging Face `tokenizers`"
        case .invalidField: return "the file does not look like a Hugging Face tokenizer.json; re-export it with `tokenizers`"
        case .unsupported: return "this runtime supports byte-level BPE tokenizers (Llama 3, Qwen2, SmolLM2, GPT-2 style) and SentencePiece-style BPE (Llama 2, Mistral)"
        case .badMerge: return "the merges do not match the vocabulary; the file is damaged or was edited by hand"
        }
    }
}

extension FileError where K == TokenizerProblem {
    /// A tokenizer problem at the JSON path `field` (empty: the whole file).
    public init(kind: Kind, file: String, field: String, message: String) {
        self.init(kind, file: file, field: field.isEmpty ? nil : field, message)
    }
}
