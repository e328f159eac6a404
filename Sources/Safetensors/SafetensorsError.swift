import Diagnostics

/// Why a safetensors shard header or `model.safetensors.index.json` was rejected.
///
/// Every error names the file, and where it applies the tensor (the header's top-level key,
/// `__metadata__` included) and the field (`dtype`, `shape`, `data_offsets`, a metadata key,
/// `weight_map`, or `header length` for bytes 0..<8). `message` says what is wrong with the
/// values found; `description` adds what to do about it.
public typealias SafetensorsError = FileError<SafetensorsProblem>

/// Which rule a shard header or index broke, for callers that react to a class of problem rather than read text.
public enum SafetensorsProblem: String, FileProblemKind {
    /// The file (or the bytes handed over) ends before the header does.
    case truncated
    /// The 8-byte header length is 0, above the 100 MB limit, or runs past the end of the file.
    case headerLength
    /// The header is not valid UTF-8.
    case encoding
    /// The header is not one JSON value (bad syntax, nesting too deep, or bytes after the value).
    case syntax
    /// A JSON object names the same key twice; readers disagree on which one wins.
    case duplicateKey
    /// The header is not an object of objects (a tensor entry is a number, say).
    case structure
    case dtype
    case shape
    /// `data_offsets` is not two non-negative integers with begin <= end.
    case dataOffsets
    /// `data_offsets` spans a different number of bytes than shape × dtype size.
    case sizeMismatch
    /// A tensor ends past the data section.
    case outOfBounds
    /// Two tensors claim the same bytes.
    case overlap
    /// Bytes of the data section belong to no tensor.
    case gap
    /// `__metadata__` is not an object of strings.
    case metadata
    /// `model.safetensors.index.json` is malformed or disagrees with the shards.
    case index
    /// The local file could not be opened or read.
    case io

    /// What to do, by class of problem.
    public var advice: String {
        switch self {
        case .io:
            return "check the path and its permissions"
        case .index:
            return "regenerate model.safetensors.index.json from the checkpoint (save_pretrained writes it), or fix the entry by hand"
        case .truncated:
            return "the file is incomplete: upload it again from the source checkpoint"
        default:
            return "the shard is damaged or was not written by a safetensors writer; upload it again from the source checkpoint (safetensors.torch.save_file writes valid files)"
        }
    }
}
