import Foundation

/// Why a store operation failed. Every case names the object (and offset where it matters)
/// and says what to do in its description.
public enum StoreError: Error, Sendable, CustomStringConvertible, Equatable {
    case notFound(location: String)
    /// The object was replaced while we read it; continuing would mix two versions.
    case objectChanged(location: String, expected: Generation, found: Generation?)
    case permissionDenied(location: String, status: Int, principal: String?, message: String)
    case http(location: String, status: Int, message: String)
    /// Connection reset, timeout, stall, DNS: the request did not complete.
    case transport(location: String, code: Int, message: String)
    /// The body ended before the bytes the response promised.
    case shortBody(location: String, range: ByteRange, received: Int64)
    /// The server answered something that cannot be right (wrong Content-Range, wrong generation header).
    case badResponse(location: String, message: String)
    case checksumMismatch(location: String, expected: UInt32, actual: UInt32)
    case invalidArgument(String)
    case auth(String)
    case local(path: String, errno: Int32, operation: String)

    /// Whether trying the same request again may succeed.
    public var isRetryable: Bool {
        switch self {
        case .transport, .shortBody, .badResponse: return true
        case .http(_, let status, _): return status == 408 || status == 429 || status >= 500
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .notFound(let loc):
            return "\(loc): not found. Check the bucket and object name (weightfs ls lists what exists)."
        case .objectChanged(let loc, let expected, let found):
            let now = found.map { "generation \($0)" } ?? "no longer exists"
            return "\(loc): object changed while reading (started at generation \(expected), now \(now)). Nothing was mixed; run the command again to read the new version."
        case .permissionDenied(let loc, let status, let principal, let message):
            let who = principal.map { " as \($0)" } ?? ""
            if status == 401 {
                // The credentials themselves were refused (expired, revoked, wrong audience).
                return "\(loc): credentials refused (HTTP 401)\(who): \(message). Renew them (gcloud auth application-default login), or pass --credentials with a valid key."
            }
            return "\(loc): access denied (HTTP \(status))\(who): \(message). Grant roles/storage.objectViewer on the bucket, or pass --credentials."
        case .http(let loc, let status, let message):
            return "\(loc): HTTP \(status): \(message)"
        case .transport(let loc, let code, let message):
            return "\(loc): transfer failed (curl \(code)): \(message). Check the network or endpoint."
        case .shortBody(let loc, let range, let received):
            return "\(loc): body ended after \(received) of \(range.count) bytes at offset \(range.lowerBound + received)."
        case .badResponse(let loc, let message):
            return "\(loc): unexpected response: \(message)"
        case .checksumMismatch(let loc, let expected, let actual):
            return "\(loc): CRC32C mismatch (object says \(String(format: "%08x", expected)), bytes give \(String(format: "%08x", actual))). The download was discarded; retry, and report if it repeats."
        case .invalidArgument(let message):
            return message
        case .auth(let message):
            return "authentication failed: \(message)"
        case .local(let path, let errno, let operation):
            return "\(path): \(operation) failed: \(String(cString: strerror(errno)))"
        }
    }
}

/// A failure of a ranged read, with how many bytes had already reached the sink.
public struct ReadFailure: Error, Sendable, CustomStringConvertible {
    public let error: StoreError
    public let bytesDelivered: Int64
    public init(_ error: StoreError, bytesDelivered: Int64) {
        self.error = error
        self.bytesDelivered = bytesDelivered
    }
    public var description: String { error.description }
}
