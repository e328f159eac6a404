/// Who is waiting for a chunk. Higher runs first; a chunk queued low is raised when someone
/// more urgent asks for it.
public enum FetchPriority: Int, Comparable, Sendable, CaseIterable, CustomStringConvertible {
    /// Filling the cache ahead of use (`weightfs preload`).
    case preload = 0
    /// Sequential readahead behind a reader.
    case readahead = 1
    /// A safetensors plan: tensors in the order a forward pass needs them.
    case plan = 2
    /// A reader is blocked on these bytes now.
    case demand = 3

    public static func < (a: FetchPriority, b: FetchPriority) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        // Not String(describing: self): that calls this property again, without end.
        switch self {
        case .preload: return "preload"
        case .readahead: return "readahead"
        case .plan: return "plan"
        case .demand: return "demand"
        }
    }
}

/// A chunk's life: absent → queued → in flight → present (or back to absent on failure).
enum ChunkState: Equatable {
    case absent
    case queued(FetchPriority)
    case inFlight
    case present
}
