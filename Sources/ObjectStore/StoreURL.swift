import Foundation

/// A parsed `gs://BUCKET[/PATH]` or `file:///DIR[/PATH]` argument.
public struct StoreURL: Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case gcs(bucket: String), file }
    public let kind: Kind
    /// The object name or prefix within the store (no leading `/`).
    public let path: String

    public init(_ text: String) throws {
        if text.hasPrefix("gs://") {
            let rest = text.dropFirst(5)
            let bucket = rest.prefix { $0 != "/" }
            guard !bucket.isEmpty else { throw StoreError.invalidArgument("\(text): no bucket name; write gs://BUCKET[/PREFIX]") }
            kind = .gcs(bucket: String(bucket))
            path = String(rest.dropFirst(bucket.count).drop { $0 == "/" })
        } else if text.hasPrefix("file://") {
            let p = text.dropFirst(7)
            guard p.hasPrefix("/") else { throw StoreError.invalidArgument("\(text): a file URL needs an absolute path, like file:///data/models") }
            kind = .file
            path = String(p.drop { $0 == "/" })
        } else {
            throw StoreError.invalidArgument("\(text): not a store URL; write gs://BUCKET[/PREFIX] or file:///DIR")
        }
    }

    public var description: String {
        switch kind {
        case .gcs(let bucket): return path.isEmpty ? "gs://\(bucket)" : "gs://\(bucket)/\(path)"
        case .file: return "file:///\(path)"
        }
    }

    /// Opens the store this URL names; for GCS the auth chain runs here.
    public func open(credentialsFile: String? = nil, httpVersion: HTTPVersion = .http1_1) async throws -> any ObjectStore {
        switch kind {
        case .gcs(let bucket):
            var store = GCSStore(bucket: bucket, config: try await GCSConfig.resolve(credentialsFile: credentialsFile))
            store.httpVersion = httpVersion
            return store
        case .file:
            return FileStore(root: "/")
        }
    }
}

extension String {
    /// What follows `prefix` when this string's UTF-8 bytes start with `prefix`'s; nil otherwise.
    /// Object names are bytes: `hasPrefix` and `dropFirst(n)` work on Characters, and a combining
    /// mark after the prefix's last byte would join that Character (or NFC/NFD spellings match).
    public func removingBytePrefix(_ prefix: String) -> String? {
        let bytes = Array(utf8), head = Array(prefix.utf8)
        guard bytes.starts(with: head) else { return nil }
        return String(decoding: bytes[head.count...], as: UTF8.self)
    }
}
