import Foundation

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with its HTTP
/// status (vLLM's spellings of `type`).
public struct OpenAIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?

    public init(status: Int, message: String, type: String, param: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
    }

    public var description: String { "\(status) \(type): \(message)" }

    static func badRequest(_ message: String, param: String? = nil) -> OpenAIError {
        OpenAIError(status: 400, message: message, type: "BadRequestError", param: param)
    }

    static let unauthorized = OpenAIError(status: 401, message: "Incorrect API key provided; pass it as 'Authorization: Bearer KEY'.", type: "AuthenticationError")

    static func notFound(model: String, served: String) -> OpenAIError {
        OpenAIError(status: 404, message: "The model `\(model)` does not exist; this server serves `\(served)` (GET /v1/models lists it).",
                    type: "NotFoundError", param: "model")
    }

    static let notReady = OpenAIError(status: 503, message: "The model is still loading (--ready-when loaded); retry shortly.", type: "ServiceUnavailableError")
    static let shuttingDown = OpenAIError(status: 503, message: "The server is shutting down.", type: "ServiceUnavailableError")

    var body: Data {
        struct Payload: Encodable {
            struct Inner: Encodable {
                let message: String
                let type: String
                let param: String?
                let code: Int
            }
            let error: Inner
        }
        return (try? JSONEncoder().encode(Payload(error: .init(message: message, type: type, param: param, code: status)))) ?? Data()
    }
}
