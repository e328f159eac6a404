import Foundation
import Synchronization

/// A GCS bucket through the JSON API. Media reads pin the object's generation, so a replaced
/// object can never mix bytes of two versions: it fails with `objectChanged` instead.
public struct GCSStore: ObjectStore {
    public let bucket: String
    public let config: GCSConfig
    public var httpVersion: HTTPVersion = .http1_1
    /// Abort and report a read that moved no byte for this long.
    public var stallTimeout: Duration = .seconds(30)
    private let http = HTTPClient()

    public init(bucket: String, config: GCSConfig) {
        self.bucket = bucket
        self.config = config
    }

    public var location: String { "gs://\(bucket)" }
    func location(of name: String) -> String { "gs://\(bucket)/\(name)" }

    private var bucketURL: String { "\(config.endpoint)/storage/v1/b/\(percentEncode(bucket))" }
    private func objectURL(_ name: String) -> String { "\(bucketURL)/o/\(percentEncode(name))" }

    private func headers(_ extra: [(String, String)] = []) async throws -> [(String, String)] {
        var h: [(String, String)] = [("User-Agent", "weightfs/0.1")]
        if let auth = try await config.credentials.authorizationHeader() { h.append(auth) }
        return h + extra
    }

    /// Sends a metadata request, retrying transient failures a few times.
    private func metadata(_ url: String, what: String) async throws -> HTTPResponse {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let r = try await http.send(HTTPRequest(url: url, headers: try await headers(), httpVersion: httpVersion))
                if r.status == 200 { return r }
                let error = await statusError(r, location: what)
                if !error.isRetryable || attempt >= 5 { throw error }
            } catch let e as TransportError {
                if attempt >= 5 { throw StoreError.transport(location: what, code: e.code, message: e.message) }
            }
            try await Task.sleep(for: .milliseconds(100 << min(attempt, 6)))
        }
    }

    public func list(prefix: String, delimiter: String?, pageToken: String?) async throws -> ListPage {
        var query: [(String, String)] = [("prefix", prefix), ("maxResults", "1000"), ("projection", "noAcl")]
        if let delimiter { query.append(("delimiter", delimiter)) }
        if let pageToken { query.append(("pageToken", pageToken)) }
        let r = try await metadata("\(bucketURL)/o?\(formEncode(query))", what: "\(location)/\(prefix)")
        struct Page: Decodable {
            var items: [GCSObjectResource]?
            var prefixes: [String]?
            var nextPageToken: String?
        }
        do {
            let page = try JSONDecoder().decode(Page.self, from: r.body)
            let objects = try (page.items ?? []).map { try $0.info(location: location) }
            return ListPage(objects: objects, prefixes: page.prefixes ?? [], nextPageToken: page.nextPageToken.flatMap { $0.isEmpty ? nil : $0 })
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError.badResponse(location: "\(location)/\(prefix)", message: "listing is not valid JSON: \(error)")
        }
    }

    public func stat(_ name: String) async throws -> ObjectInfo {
        let r = try await metadata("\(objectURL(name))?projection=noAcl", what: location(of: name))
        do {
            return try JSONDecoder().decode(GCSObjectResource.self, from: r.body).info(location: location)
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError.badResponse(location: location(of: name), message: "object metadata is not valid JSON: \(error)")
        }
    }

    public func read(_ name: String, generation: Generation, range: ByteRange, options: ReadOptions, into sink: @escaping ByteSink) async throws {
        if range.isEmpty { return }
        let loc = location(of: name)
        let requestHeaders: [(String, String)]
        do {
            requestHeaders = try await headers([("Range", range.httpHeader)])
        } catch {
            // A token refresh that failed once (metadata server blip) is worth another attempt.
            throw ReadFailure(.transport(location: loc, code: -1, message: "could not get an access token: \(error)"), bytesDelivered: 0)
        }
        var request = HTTPRequest(url: "\(objectURL(name))?alt=media&generation=\(generation)",
                                  headers: requestHeaders, stallTimeout: stallTimeout, httpVersion: httpVersion)
        request.urgentBytes = options.urgentBytes
        request.urgentHold = options.maxHold
        let delivered = ByteCounter()
        let limit = range.count
        let counted: ByteSink = { bytes in
            // Count only what reached the sink, so bytesDelivered is a safe resume point.
            guard delivered.value + Int64(bytes.count) <= limit else {
                throw StoreError.badResponse(location: loc, message: "server sent more than the \(limit) bytes asked at offset \(range.lowerBound)")
            }
            try sink(bytes)
            delivered.add(Int64(bytes.count))
        }
        let onHead: @Sendable (HTTPResponseHead) throws -> Void = { head in
            try Self.checkMediaHead(head, range: range, generation: generation, location: loc)
        }
        let response: HTTPResponse
        let got: Int64
        do {
            (response, got) = try await http.stream(request, onHead: onHead, sink: counted)
        } catch let abort as CallbackAbort {
            let n = delivered.value
            if let e = abort.error as? StoreError { throw ReadFailure(e, bytesDelivered: min(n, limit)) }
            throw ReadFailure(.badResponse(location: loc, message: "\(abort.error)"), bytesDelivered: min(n, limit))
        } catch let e as TransportError {
            throw ReadFailure(.transport(location: "\(loc) at offset \(range.lowerBound + e.bytesDelivered)", code: e.code, message: e.message), bytesDelivered: e.bytesDelivered)
        }
        guard response.head.isSuccess else {
            if response.status == 404 {
                // With the generation pinned, 404 means that version is gone: say whether it was replaced.
                if let now = try? await stat(name) {
                    if now.generation == generation {
                        // Same generation still there: a transient 404 (eventual consistency, a proxy); retry.
                        throw ReadFailure(.transport(location: loc, code: 404, message: "404 for the current generation \(generation)"), bytesDelivered: 0)
                    }
                    throw ReadFailure(.objectChanged(location: loc, expected: generation, found: now.generation), bytesDelivered: 0)
                }
                throw ReadFailure(.objectChanged(location: loc, expected: generation, found: nil), bytesDelivered: 0)
            }
            if response.status == 416 {
                throw ReadFailure(.invalidArgument("\(loc): range \(range) is outside the object (HTTP 416)"), bytesDelivered: 0)
            }
            throw ReadFailure(await statusError(response, location: "\(loc) at offset \(range.lowerBound)"), bytesDelivered: 0)
        }
        if got < range.count {
            throw ReadFailure(.shortBody(location: loc, range: range, received: got), bytesDelivered: got)
        }
    }

    /// A media response must be exactly the asked range of the pinned generation.
    static func checkMediaHead(_ head: HTTPResponseHead, range: ByteRange, generation: Generation, location: String) throws {
        if let g = head["x-goog-generation"], let found = Int64(g), found != generation.rawValue {
            throw StoreError.objectChanged(location: location, expected: generation, found: Generation(found))
        }
        switch head.status {
        case 206:
            guard let cr = head["content-range"], let got = parseContentRange(cr) else {
                throw StoreError.badResponse(location: location, message: "206 without a valid Content-Range (asked \(range.httpHeader))")
            }
            guard got == range else {
                throw StoreError.badResponse(location: location, message: "Content-Range \(cr) does not match the range asked (\(range.httpHeader))")
            }
        case 200:
            // A full-object answer is only acceptable when the whole object was asked for.
            let length = head["content-length"].flatMap { Int64($0) }
            guard range.lowerBound == 0, length == range.count else {
                throw StoreError.badResponse(location: location, message: "server ignored Range \(range.httpHeader) (HTTP 200, length \(length.map(String.init) ?? "unknown"))")
            }
        default:
            throw StoreError.badResponse(location: location, message: "unexpected HTTP \(head.status) for a ranged read")
        }
    }

    private func statusError(_ r: HTTPResponse, location: String) async -> StoreError {
        switch r.status {
        case 404: return .notFound(location: location)
        case 401, 403: return .permissionDenied(location: location, status: r.status, principal: await config.credentials.principal, message: r.errorMessage)
        default: return .http(location: location, status: r.status, message: r.errorMessage)
        }
    }
}

/// `bytes a-b/total` → `[a, b+1)`.
func parseContentRange(_ value: String) -> ByteRange? {
    let v = value.trimmingCharacters(in: .whitespaces)
    guard v.hasPrefix("bytes ") else { return nil }
    let spec = v.dropFirst(6).split(separator: "/", maxSplits: 1)
    guard let first = spec.first else { return nil }
    let ends = first.split(separator: "-", maxSplits: 1)
    guard ends.count == 2, let a = Int64(ends[0]), let b = Int64(ends[1]), a >= 0, b >= a else { return nil }
    return ByteRange(a, b + 1)
}

/// The JSON API's object resource (numbers arrive as strings).
struct GCSObjectResource: Decodable {
    var name: String
    var size: String?
    var generation: String?
    var updated: String?
    var crc32c: String?
    var md5Hash: String?

    func info(location: String) throws -> ObjectInfo {
        guard let size = size.flatMap({ Int64($0) }), size >= 0 else {
            throw StoreError.badResponse(location: "\(location)/\(name)", message: "object metadata has no valid size (\(self.size ?? "none"))")
        }
        guard size <= ObjectInfo.maxSize else {
            throw StoreError.badResponse(location: "\(location)/\(name)", message: "object metadata says \(size) bytes, more than GCS's limit of \(ObjectInfo.maxSize) (5 TiB)")
        }
        guard let generation = generation.flatMap({ Int64($0) }) else {
            throw StoreError.badResponse(location: "\(location)/\(name)", message: "object metadata has no valid generation")
        }
        var crc: UInt32? = nil
        if let c = crc32c, let d = Data(base64Encoded: c), d.count == 4 {
            crc = d.reduce(0) { ($0 << 8) | UInt32($1) }
        }
        return ObjectInfo(name: name, size: size, generation: Generation(generation), updated: updated.flatMap(parseRFC3339), crc32c: crc, md5Hash: md5Hash)
    }
}

func parseRFC3339(_ s: String) -> Date? {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let d = f.date(from: s) { return d }
    f.formatOptions = [.withInternetDateTime]
    return f.date(from: s)
}
