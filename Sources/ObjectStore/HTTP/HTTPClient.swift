import Foundation

/// Async HTTP over the process's shared `CurlEngine`.
public struct HTTPClient: Sendable {
    public init() {}

    /// Sends `request` and collects the body (up to `limit` bytes). Throws `TransportError`
    /// when no complete response arrived; any HTTP status is returned, not thrown.
    public func send(_ request: HTTPRequest, limit: Int = 64 << 20) async throws -> HTTPResponse {
        do {
            let outcome = try await CurlEngine.shared.perform(request, onHead: nil, sink: .buffer(limit: limit))
            return HTTPResponse(head: outcome.head, body: outcome.body)
        } catch let abort as CallbackAbort {
            throw abort.error
        }
    }

    /// Streams a 2xx body to `sink` after `onHead` accepted the head. Returns the head and,
    /// for a non-2xx status, the start of the error body.
    public func stream(_ request: HTTPRequest, onHead: @escaping @Sendable (HTTPResponseHead) throws -> Void,
                       sink: @escaping ByteSink) async throws -> (HTTPResponse, bytesDelivered: Int64) {
        let outcome = try await CurlEngine.shared.perform(request, onHead: onHead, sink: .stream(sink))
        return (HTTPResponse(head: outcome.head, body: outcome.body), outcome.bytesDelivered)
    }
}

extension HTTPResponse {
    /// The `error.message` of a Google JSON error body, else the body's start.
    public var errorMessage: String {
        struct Envelope: Decodable {
            struct Inner: Decodable { var message: String? }
            var error: Inner?
            var error_description: String?
        }
        if let env = try? JSONDecoder().decode(Envelope.self, from: body) {
            if let m = env.error?.message { return m }
            if let m = env.error_description { return m }
        }
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? "(empty body)" : String(t.prefix(300))
    }
}

/// Percent-encoding for URL path segments and query values: everything but RFC 3986 unreserved.
public func percentEncode(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for b in s.utf8 {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            out += String(format: "%%%02X", b)
        }
    }
    return out
}

/// `a=b&c=d` with both sides encoded.
public func formEncode(_ fields: [(String, String)]) -> String {
    fields.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&")
}
