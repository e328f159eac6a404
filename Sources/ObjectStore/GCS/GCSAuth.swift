import Foundation
import Synchronization

/// An OAuth2 access token and when it stops working.
public struct AccessToken: Sendable {
    public var value: String
    public var expiry: Date
    public init(value: String, expiry: Date) {
        self.value = value
        self.expiry = expiry
    }
}

/// Something that can mint access tokens (a service account key, a refresh token, the metadata server).
public protocol TokenSource: Sendable {
    /// Who the tokens act as, for error messages (an email), when known.
    var principal: String? { get async }
    func fetchToken() async throws -> AccessToken
}

/// Hands out a cached token, refreshing it `refreshMargin` before it expires; concurrent
/// callers share one refresh. Tokens are never logged.
public actor TokenCache {
    public let source: any TokenSource
    private let refreshMargin: TimeInterval
    private let now: @Sendable () -> Date
    private var cached: AccessToken?
    private var refreshing: Task<AccessToken, Error>?

    public init(source: any TokenSource, refreshMargin: TimeInterval = 300, now: @escaping @Sendable () -> Date = { Date() }) {
        self.source = source
        self.refreshMargin = refreshMargin
        self.now = now
    }

    public func token() async throws -> String {
        if let cached, cached.expiry.timeIntervalSince(now()) > refreshMargin { return cached.value }
        // Every caller in the margin waits on the one refresh, and every one of them falls back
        // the same way when it fails.
        let task: Task<AccessToken, Error>
        if let refreshing {
            task = refreshing
        } else {
            task = Task { try await source.fetchToken() }
            refreshing = task
        }
        do {
            let fresh = try await task.value
            if refreshing == task { refreshing = nil }
            cached = fresh
            return fresh.value
        } catch {
            if refreshing == task { refreshing = nil }
            // Refreshing early failed, but the token we have still works: use it, try again next time.
            if let cached, cached.expiry > now() { return cached.value }
            throw error
        }
    }
}

/// How requests to GCS authenticate.
public enum GCSCredentials: Sendable {
    /// The emulator, or a public bucket.
    case anonymous
    case oauth(TokenCache)

    func authorizationHeader() async throws -> (String, String)? {
        switch self {
        case .anonymous: return nil
        case .oauth(let cache): return ("Authorization", "Bearer \(try await cache.token())")
        }
    }

    var principal: String? {
        get async {
            switch self {
            case .anonymous: return "anonymous"
            case .oauth(let cache): return await cache.source.principal
            }
        }
    }
}

/// Where GCS is and who we are there.
public struct GCSConfig: Sendable {
    public var endpoint: String
    public var credentials: GCSCredentials
    /// What chose these credentials, for `--verbose` output (never the secret).
    public var credentialsSource: String
    public init(endpoint: String, credentials: GCSCredentials, credentialsSource: String) {
        self.endpoint = endpoint
        self.credentials = credentials
        self.credentialsSource = credentialsSource
    }

    public static let productionEndpoint = "https://storage.googleapis.com"
    public static let readOnlyScope = "https://www.googleapis.com/auth/devstorage.read_only"

    /// The auth chain, first that works: `STORAGE_EMULATOR_HOST` (no auth) → `credentialsFile`
    /// → `GOOGLE_APPLICATION_CREDENTIALS` → gcloud's application-default file → the metadata
    /// server (GKE Workload Identity; `GCE_METADATA_HOST` overrides its address) → anonymous.
    public static func resolve(credentialsFile: String? = nil,
                               environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> GCSConfig {
        if let host = environment["STORAGE_EMULATOR_HOST"], !host.isEmpty {
            let endpoint = host.contains("://") ? host : "http://\(host)"
            return GCSConfig(endpoint: endpoint.trimmingSuffix("/"), credentials: .anonymous, credentialsSource: "STORAGE_EMULATOR_HOST")
        }
        let endpoint = environment["WEIGHTFS_GCS_ENDPOINT"] ?? productionEndpoint
        if let file = credentialsFile {
            return GCSConfig(endpoint: endpoint, credentials: .oauth(TokenCache(source: try keyFileSource(path: file))), credentialsSource: file)
        }
        if let file = environment["GOOGLE_APPLICATION_CREDENTIALS"], !file.isEmpty {
            return GCSConfig(endpoint: endpoint, credentials: .oauth(TokenCache(source: try keyFileSource(path: file))), credentialsSource: "GOOGLE_APPLICATION_CREDENTIALS=\(file)")
        }
        // gcloud's ADC file: in CLOUDSDK_CONFIG when set (as gcloud itself reads it), else ~/.config/gcloud.
        let gcloudConfig = environment["CLOUDSDK_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? environment["HOME"].map { "\($0)/.config/gcloud" }
        if let gcloudConfig {
            let adc = "\(gcloudConfig)/application_default_credentials.json"
            if FileManager.default.fileExists(atPath: adc) {
                return GCSConfig(endpoint: endpoint, credentials: .oauth(TokenCache(source: try keyFileSource(path: adc))), credentialsSource: adc)
            }
        }
        let metadata = MetadataServerSource(host: environment["GCE_METADATA_HOST"] ?? MetadataServerSource.defaultHost)
        if environment["WEIGHTFS_NO_METADATA"] == nil, await metadata.isAvailable() {
            return GCSConfig(endpoint: endpoint, credentials: .oauth(TokenCache(source: metadata)), credentialsSource: "metadata server \(metadata.host)")
        }
        return GCSConfig(endpoint: endpoint, credentials: .anonymous, credentialsSource: "anonymous")
    }

    /// A token source from a JSON key file: `service_account` or `authorized_user`.
    public static func keyFileSource(path: String) throws -> any TokenSource {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StoreError.auth("cannot read credentials file \(path); check the path and its permissions")
        }
        struct Kind: Decodable { var type: String? }
        guard let kind = try? JSONDecoder().decode(Kind.self, from: data) else {
            throw StoreError.auth("credentials file \(path) is not JSON")
        }
        switch kind.type {
        case "service_account":
            do {
                return ServiceAccountSource(key: try JSONDecoder().decode(ServiceAccountKey.self, from: data))
            } catch {
                throw StoreError.auth("credentials file \(path): service_account key lacks a field: \(error)")
            }
        case "authorized_user":
            do {
                return AuthorizedUserSource(user: try JSONDecoder().decode(AuthorizedUser.self, from: data))
            } catch {
                throw StoreError.auth("credentials file \(path): authorized_user lacks a field: \(error)")
            }
        default:
            throw StoreError.auth("credentials file \(path) has type \(kind.type ?? "(none)"); weightfs understands service_account and authorized_user")
        }
    }
}

public struct ServiceAccountKey: Decodable, Sendable {
    public var client_email: String
    public var private_key: String
    public var private_key_id: String?
    public var token_uri: String?

    public init(client_email: String, private_key: String, private_key_id: String? = nil, token_uri: String? = nil) {
        self.client_email = client_email
        self.private_key = private_key
        self.private_key_id = private_key_id
        self.token_uri = token_uri
    }
}

/// Signs a JWT (RS256) with the key and exchanges it at the key's `token_uri` (RFC 7523).
public struct ServiceAccountSource: TokenSource {
    public let key: ServiceAccountKey
    public var scope: String = GCSConfig.readOnlyScope
    public var now: @Sendable () -> Date = { Date() }

    public init(key: ServiceAccountKey) { self.key = key }

    public var principal: String? { key.client_email }
    var tokenURI: String { key.token_uri ?? "https://oauth2.googleapis.com/token" }

    /// The signed assertion: header.claims.signature, valid for one hour from `now`.
    public func assertion() throws -> String {
        let iat = Int(now().timeIntervalSince1970)
        var header: [String: String] = ["alg": "RS256", "typ": "JWT"]
        if let kid = key.private_key_id { header["kid"] = kid }
        let claims: [String: Any] = ["iss": key.client_email, "scope": scope, "aud": tokenURI, "iat": iat, "exp": iat + 3600]
        let h = base64URL(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        let c = base64URL(try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]))
        let signingInput = "\(h).\(c)"
        let signature = try RS256.sign(Data(signingInput.utf8), privateKeyPEM: key.private_key)
        return "\(signingInput).\(base64URL(signature))"
    }

    public func fetchToken() async throws -> AccessToken {
        let form = formEncode([("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", try assertion())])
        return try await exchange(url: tokenURI, form: form, who: key.client_email, now: now)
    }
}

public struct AuthorizedUser: Decodable, Sendable {
    public var client_id: String
    public var client_secret: String
    public var refresh_token: String
    public var token_uri: String?
}

/// gcloud's user credentials: a refresh token exchanged for access tokens.
public struct AuthorizedUserSource: TokenSource {
    public let user: AuthorizedUser
    public init(user: AuthorizedUser) { self.user = user }
    public var principal: String? { "user credentials (client \(user.client_id))" }

    public func fetchToken() async throws -> AccessToken {
        let form = formEncode([("grant_type", "refresh_token"), ("client_id", user.client_id),
                               ("client_secret", user.client_secret), ("refresh_token", user.refresh_token)])
        return try await exchange(url: user.token_uri ?? "https://oauth2.googleapis.com/token", form: form, who: "authorized_user \(user.client_id)", now: { Date() })
    }
}

/// The GCE/GKE metadata server: tokens for the node's or the pod's (Workload Identity) service account.
public struct MetadataServerSource: TokenSource {
    public static let defaultHost = "169.254.169.254"
    public let host: String
    public init(host: String) { self.host = host }

    private var base: String { "http://\(host)/computeMetadata/v1/instance/service-accounts/default" }
    private static let flavor = ("Metadata-Flavor", "Google")

    public var principal: String? {
        get async {
            let r = try? await HTTPClient().send(HTTPRequest(url: "\(base)/email", headers: [Self.flavor], connectTimeout: .seconds(2), totalTimeout: .seconds(5)))
            guard let r, r.status == 200 else { return nil }
            return r.text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// A quick probe: does a metadata server answer, with the `Metadata-Flavor: Google` header?
    public func isAvailable() async -> Bool {
        let request = HTTPRequest(url: "http://\(host)/computeMetadata/v1/", headers: [Self.flavor],
                                  connectTimeout: .milliseconds(500), totalTimeout: .seconds(2))
        guard let r = try? await HTTPClient().send(request) else { return false }
        return r.head["metadata-flavor"] == "Google"
    }

    public func fetchToken() async throws -> AccessToken {
        let request = HTTPRequest(url: "\(base)/token", headers: [Self.flavor], connectTimeout: .seconds(5), totalTimeout: .seconds(30))
        let r: HTTPResponse
        do { r = try await HTTPClient().send(request) } catch {
            throw StoreError.auth("metadata server \(host) unreachable: \(error)")
        }
        guard r.status == 200 else {
            throw StoreError.auth("metadata server \(host) answered HTTP \(r.status): \(r.errorMessage). On GKE, check the pod's Kubernetes service account is bound to a Google service account (Workload Identity).")
        }
        return try decodeToken(r, who: "metadata server \(host)", now: Date())
    }
}

private func exchange(url: String, form: String, who: String, now: @Sendable () -> Date) async throws -> AccessToken {
    let request = HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/x-www-form-urlencoded")],
                              body: .data(Data(form.utf8)), connectTimeout: .seconds(10), totalTimeout: .seconds(60))
    let r: HTTPResponse
    do { r = try await HTTPClient().send(request) } catch {
        throw StoreError.auth("token endpoint \(url) unreachable for \(who): \(error)")
    }
    guard r.status == 200 else {
        throw StoreError.auth("token endpoint \(url) refused \(who): HTTP \(r.status): \(r.errorMessage). Check the key is valid and not revoked.")
    }
    return try decodeToken(r, who: who, now: now())
}

private func decodeToken(_ r: HTTPResponse, who: String, now: Date) throws -> AccessToken {
    struct TokenResponse: Decodable {
        var access_token: String
        var expires_in: Double?
    }
    guard let t = try? JSONDecoder().decode(TokenResponse.self, from: r.body) else {
        throw StoreError.auth("token response for \(who) has no access_token")
    }
    return AccessToken(value: t.access_token, expiry: now.addingTimeInterval(t.expires_in ?? 3600))
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var s = self
        while s.hasSuffix(suffix) { s.removeLast(suffix.count) }
        return s
    }
}
