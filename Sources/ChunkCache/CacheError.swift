import ObjectStore

/// A cache state that refuses a request: each says which entry or directory, and what to do.
public enum CacheError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Another process holds the cache directory's lock.
    case locked(directory: String)
    case notOpen(CacheKey)
    case pastEnd(CacheKey, range: ByteRange, size: Int64)
    /// The entry was evicted while a read waited on it.
    case evicted(CacheKey)
    /// Two keys' entries would share one directory (a hash collision or a tampered cache):
    /// the open one keeps it, and the new one is refused rather than served its bytes.
    case directoryInUse(directory: String, heldBy: CacheKey, wanted: CacheKey)
    /// The cache's private directory is another user's, writable by others, or not a directory.
    case unsafeDirectory(path: String, reason: String)

    public var description: String {
        switch self {
        case .locked(let directory):
            return "cache directory \(directory) is in use by another weightfs process; give this one its own --cache-dir or stop the other"
        case .notOpen(let key):
            return "\(key): not open in the cache"
        case .pastEnd(let key, let range, let size):
            return "\(key): range \(range) is past the end (\(size) bytes)"
        case .evicted(let key):
            return "\(key): evicted from the cache while reading; read again (a --cache-size too small for what is open evicts entries in use)"
        case .unsafeDirectory(let path, let reason):
            return "cache directory \(path) \(reason): cached weights and object names must be this user's alone; remove it, or pass another --cache-dir"
        case .directoryInUse(let directory, let heldBy, let wanted):
            return "\(wanted): its cache entry \(directory) is held by \(heldBy), which is open; close that first or use another --cache-dir"
        }
    }
}
