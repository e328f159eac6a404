import Foundation
import ObjectStore

/// Puts buckets and objects into the fake-gcs-server emulator through its JSON API.
public struct Emulator: Sendable {
    public let url: String
    let http = HTTPClient()

    public init() throws { url = try TestEnvironment.emulatorURL }
    public init(url: String) { self.url = url }

    /// The emulator and a new empty bucket no other test uses.
    public static func freshBucket(_ label: String) async throws -> (Emulator, String) {
        let emulator = try Emulator()
        let bucket = TestEnvironment.uniqueBucket(label)
        try await emulator.createBucket(bucket)
        return (emulator, bucket)
    }

    /// A GCS store on the emulator (or on `endpoint`, e.g. a link proxy in front of it).
    public func store(_ bucket: String, endpoint: String? = nil) -> GCSStore {
        GCSStore(bucket: bucket, config: GCSConfig(endpoint: endpoint ?? url, credentials: .anonymous, credentialsSource: "test"))
    }

    public func createBucket(_ name: String) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["name": name])
        let r = try await http.send(HTTPRequest(method: "POST", url: "\(url)/storage/v1/b", headers: [("Content-Type", "application/json")], body: .data(body)))
        guard r.status == 200 || r.status == 409 else { throw TestSetupError("create bucket \(name): HTTP \(r.status) \(r.text)") }
    }

    @discardableResult
    public func upload(_ bucket: String, _ name: String, data: Data) async throws -> ObjectInfo {
        try await upload(bucket, name, body: .data(data))
    }

    @discardableResult
    public func upload(_ bucket: String, _ name: String, file: String) async throws -> ObjectInfo {
        try await upload(bucket, name, body: .file(path: file))
    }

    private func upload(_ bucket: String, _ name: String, body: HTTPRequest.Body) async throws -> ObjectInfo {
        let target = "\(url)/upload/storage/v1/b/\(percentEncode(bucket))/o?uploadType=media&name=\(percentEncode(name))"
        let r = try await http.send(HTTPRequest(method: "POST", url: target, headers: [("Content-Type", "application/octet-stream")], body: body, totalTimeout: .seconds(600)))
        guard r.status == 200 else { throw TestSetupError("upload \(bucket)/\(name): HTTP \(r.status) \(r.text)") }
        return try await store(bucket).stat(name)
    }

    public func delete(_ bucket: String, _ name: String) async throws {
        let r = try await http.send(HTTPRequest(method: "DELETE", url: "\(url)/storage/v1/b/\(percentEncode(bucket))/o/\(percentEncode(name))"))
        guard r.status == 204 || r.status == 200 else { throw TestSetupError("delete \(bucket)/\(name): HTTP \(r.status) \(r.text)") }
    }
}
