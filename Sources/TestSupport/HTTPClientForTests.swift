import Foundation
import ObjectStore

enum HTTPClientForTests {
    static func get(_ url: String) async throws -> Data {
        let r = try await HTTPClient().send(HTTPRequest(url: url))
        guard r.status == 200 else { throw TestSetupError("GET \(url): HTTP \(r.status)") }
        return r.body
    }

    static func post(_ url: String, json: [String: Any]) async throws -> Data {
        let body = try JSONSerialization.data(withJSONObject: json)
        let r = try await HTTPClient().send(HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/json")], body: .data(body)))
        guard r.status == 200 else { throw TestSetupError("POST \(url): HTTP \(r.status) \(r.text)") }
        return r.body
    }
}
