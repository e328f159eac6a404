import Foundation

/// An HTTP request as the engine sends it.
public struct HTTPRequest: Sendable {
    public enum Body: Sendable {
        case none
        case data(Data)
        /// Streamed from a local file, so large uploads (tests, fixtures) need no memory.
        case file(path: String)
    }

    public var method: String
    public var url: String
    public var headers: [(String, String)]
    public var body: Body
    /// Abort when no byte moved for this long (a stalled connection); retried by callers.
    public var stallTimeout: Duration
    public var connectTimeout: Duration
    /// Whole-request cap; nil means none (large bodies are governed by the stall timeout).
    public var totalTimeout: Duration?
    public var httpVersion: HTTPVersion
    /// Body bytes a reader is blocked on: until they arrive, the engine's other transfers pause
    /// (at most `urgentHold`). 0: not urgent.
    public var urgentBytes: Int64 = 0
    public var urgentHold: Duration = ReadOptions.maxUrgentHold

    public init(method: String = "GET", url: String, headers: [(String, String)] = [], body: Body = .none,
                stallTimeout: Duration = .seconds(30), connectTimeout: Duration = .seconds(10),
                totalTimeout: Duration? = nil, httpVersion: HTTPVersion = .http1_1) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.stallTimeout = stallTimeout
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
        self.httpVersion = httpVersion
    }
}

/// HTTP/1.1 over a pool of connections is the default: HTTP/2 multiplexing of many ranged
/// streams failed framing against real servers here (see docs/FACTS.md), so it is opt-in.
public enum HTTPVersion: String, Sendable {
    case http1_1 = "1.1"
    case http2 = "2"
}

/// Status line and headers of a response; header names are lowercased.
public struct HTTPResponseHead: Sendable {
    public var status: Int
    public var headers: [String: String]
    public init(status: Int, headers: [String: String]) {
        self.status = status
        self.headers = headers
    }
    public subscript(_ name: String) -> String? { headers[name.lowercased()] }
    public var isSuccess: Bool { (200..<300).contains(status) }
}

/// A response whose body was collected in memory (listings, metadata, tokens).
public struct HTTPResponse: Sendable {
    public var head: HTTPResponseHead
    public var body: Data
    public var status: Int { head.status }
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// How a transfer ended below the HTTP layer.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var bytesDelivered: Int64
    public var description: String { "curl error \(code): \(message)" }
}
