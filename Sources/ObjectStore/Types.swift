import Foundation
import Synchronization

/// A half-open byte range `[lowerBound, upperBound)` within an object.
public struct ByteRange: Hashable, Sendable, CustomStringConvertible {
    public let lowerBound: Int64
    public let upperBound: Int64

    public init(_ lowerBound: Int64, _ upperBound: Int64) {
        precondition(lowerBound >= 0 && upperBound >= lowerBound, "invalid byte range \(lowerBound)..<\(upperBound)")
        self.lowerBound = lowerBound
        self.upperBound = upperBound
    }

    public init(offset: Int64, length: Int64) { self.init(offset, offset + length) }

    public var count: Int64 { upperBound - lowerBound }
    public var isEmpty: Bool { count == 0 }
    /// The HTTP `Range` header value (inclusive end).
    public var httpHeader: String { "bytes=\(lowerBound)-\(upperBound - 1)" }
    public var description: String { "[\(lowerBound), \(upperBound))" }

    /// Whether every byte of `other` lies in this range.
    public func contains(_ other: ByteRange) -> Bool { lowerBound <= other.lowerBound && other.upperBound <= upperBound }

    /// The part of this range that starts `n` bytes later.
    public func dropFirst(_ n: Int64) -> ByteRange { ByteRange(min(lowerBound + n, upperBound), upperBound) }
}

/// An object version in the store. GCS changes it whenever an object is replaced.
public struct Generation: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int64
    public init(_ rawValue: Int64) { self.rawValue = rawValue }
    public var description: String { String(rawValue) }
}

/// What the store says about one object.
public struct ObjectInfo: Hashable, Sendable {
    /// The largest size accepted from a store: GCS's limit per object (5 TiB). A larger one is a
    /// server's error, refused before any arithmetic on it.
    public static let maxSize: Int64 = 5 << 40

    public var name: String
    public var size: Int64
    public var generation: Generation
    public var updated: Date?
    /// CRC32C of the whole object, when the store knows it.
    public var crc32c: UInt32?
    /// Base64 MD5, as GCS reports it (absent for composite objects).
    public var md5Hash: String?

    public init(name: String, size: Int64, generation: Generation, updated: Date? = nil, crc32c: UInt32? = nil, md5Hash: String? = nil) {
        self.name = name
        self.size = size
        self.generation = generation
        self.updated = updated
        self.crc32c = crc32c
        self.md5Hash = md5Hash
    }
}

/// One page of a listing: objects and (with a delimiter) the "directories" below the prefix.
public struct ListPage: Sendable {
    public var objects: [ObjectInfo]
    public var prefixes: [String]
    public var nextPageToken: String?
    public init(objects: [ObjectInfo], prefixes: [String], nextPageToken: String?) {
        self.objects = objects
        self.prefixes = prefixes
        self.nextPageToken = nextPageToken
    }
}

/// Receives a ranged read's body bytes, in order, on the store's I/O thread. It must not block for long.
/// Throwing aborts the read with that error.
public typealias ByteSink = @Sendable (UnsafeRawBufferPointer) throws -> Void

/// How a ranged read is carried out.
public struct ReadOptions: Sendable, Equatable {
    /// A reader is blocked on the read's first `urgentBytes` bytes: the store's other transfers
    /// pause until they arrive (at most `maxUrgentHold`). 0: not urgent.
    public var urgentBytes: Int64
    /// How long an urgent read may hold the others at most (a slow or stalled urgent GET must
    /// not stall a preload).
    public var maxHold: Duration

    public init(urgentBytes: Int64 = 0, maxHold: Duration = ReadOptions.maxUrgentHold) {
        self.urgentBytes = urgentBytes
        self.maxHold = maxHold
    }

    /// The default `maxHold`.
    public static let maxUrgentHold: Duration = .milliseconds(1000)
}

/// Read-only access to a flat namespace of immutable-per-generation objects (GCS, a local directory).
public protocol ObjectStore: Sendable {
    /// A URL-like description, e.g. `gs://bucket`, for messages.
    var location: String { get }
    func list(prefix: String, delimiter: String?, pageToken: String?) async throws -> ListPage
    func stat(_ name: String) async throws -> ObjectInfo
    /// Reads `range` of generation `generation` of `name`, handing bytes to `sink` in order.
    /// Returns only after exactly `range.count` bytes were delivered; on error, the error's
    /// `bytesDelivered` says how many were, so a caller can resume.
    func read(_ name: String, generation: Generation, range: ByteRange, options: ReadOptions, into sink: @escaping ByteSink) async throws
}

extension ObjectStore {
    /// A read that is not urgent.
    public func read(_ name: String, generation: Generation, range: ByteRange, into sink: @escaping ByteSink) async throws {
        try await read(name, generation: generation, range: range, options: ReadOptions(), into: sink)
    }

    /// Every object under `prefix`, across all pages (see `ListingGuard` for what is refused).
    public func listAll(prefix: String) async throws -> [ObjectInfo] {
        var out: [ObjectInfo] = []
        var pages = ListingGuard(location: "\(location)/\(prefix)")
        var token: String? = nil
        repeat {
            let page = try await list(prefix: prefix, delimiter: nil, pageToken: token)
            token = try pages.next(page)
            out.append(contentsOf: page.objects)
        } while token != nil
        return out
    }
}

/// What a listing's pages may not do, whatever the server sends: repeat a page token (a client
/// that follows it lists forever) or add up to more bytes than a 64-bit total holds (each
/// object is at most `ObjectInfo.maxSize`, and sums of sizes are taken everywhere).
public struct ListingGuard: Sendable {
    public let location: String
    private var seen: Set<String> = []
    private var totalBytes: Int64 = 0
    /// Bytes a listing may total: 2^62, a million times the largest bucket in use, and a sum
    /// that sizes rounded up to blocks or chunks cannot push past Int64.max.
    public static let maxTotalBytes: Int64 = 1 << 62

    public init(location: String) { self.location = location }

    /// Takes one page; returns the token of the next, or nil at the end.
    public mutating func next(_ page: ListPage) throws -> String? {
        for o in page.objects {
            let (sum, overflow) = totalBytes.addingReportingOverflow(o.size)
            guard !overflow, sum <= Self.maxTotalBytes else {
                throw StoreError.badResponse(location: location, message: "the listing's sizes add up to more than \(Self.maxTotalBytes) bytes (at \(o.name)); the server is misbehaving")
            }
            totalBytes = sum
        }
        guard let token = page.nextPageToken else { return nil }
        guard seen.insert(token).inserted else {
            throw StoreError.badResponse(location: location, message: "the listing repeats page token \(token) after \(seen.count) pages; the server is misbehaving (a client that followed it would list forever)")
        }
        return token
    }
}

/// A byte count shared between the I/O thread and the task awaiting it.
public final class ByteCounter: Sendable {
    private let storage = Atomic<Int64>(0)
    public init() {}
    /// Adds `n`; returns the count before.
    @discardableResult
    public func add(_ n: Int64) -> Int64 { storage.add(n, ordering: .relaxed).oldValue }
    public var value: Int64 { storage.load(ordering: .relaxed) }
}
