import Foundation
import ObjectStore
import Synchronization
import Testing
import TestSupport

/// The auth chain against loopback stand-ins for Google's token endpoint, the metadata
/// server and GCS, each checking what Google documents.
struct AuthTests {
    /// A fresh RSA key pair from the openssl CLI: (private PKCS#8 PEM, public SPKI PEM).
    static func makeKeyPair() throws -> (String, String) {
        let dir = try TestEnvironment.scratchDirectory("key")
        let priv = dir.appendingPathComponent("key.pem").path
        let pub = dir.appendingPathComponent("pub.pem").path
        try run("/usr/bin/openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", priv])
        try run("/usr/bin/openssl", ["pkey", "-in", priv, "-pubout", "-out", pub])
        return (try String(contentsOfFile: priv, encoding: .utf8), try String(contentsOfFile: pub, encoding: .utf8))
    }

    static func run(_ exe: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TestSetupError("\(exe) \(args) failed") }
    }

    /// A stand-in for GCS that answers object metadata only to `Bearer <token>`.
    static func fakeGCS(token: String, status: Int = 200) throws -> LoopbackHTTPServer {
        try LoopbackHTTPServer { request in
            guard request.headers["authorization"] == "Bearer \(token)" else {
                return .json(["error": ["code": 401, "message": "Invalid Credentials"]], status: 401)
            }
            if status != 200 {
                return .json(["error": ["code": status, "message": "caller does not have storage.objects.get access"]], status: status)
            }
            return .json(["name": "obj", "size": "5", "generation": "77", "crc32c": "AAAAAA=="])
        }
    }

    static func writeJSON(_ object: [String: Any]) throws -> String {
        let path = try TestEnvironment.scratchDirectory("cred").appendingPathComponent("key.json").path
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Where no metadata server answers (held for the whole test run).
    static let noMetadataServer = try! RefusingPort()

    static func isolatedEnvironment(_ extra: [String: String]) throws -> [String: String] {
        // No emulator, no ADC file, no metadata server unless the test says so.
        ["HOME": try TestEnvironment.scratchDirectory("home").path, "GCE_METADATA_HOST": noMetadataServer.hostAndPort].merging(extra) { $1 }
    }

    @Test func serviceAccountJWTIsSignedAndExchanged() async throws {
        let (privatePEM, publicPEM) = try Self.makeKeyPair()
        let email = "loader@project.iam.gserviceaccount.com"
        let tokenServer = try LoopbackHTTPServer { _ in .json(["access_token": "ya29.test-token", "expires_in": 3599, "token_type": "Bearer"]) }
        defer { tokenServer.stop() }
        let gcs = try Self.fakeGCS(token: "ya29.test-token")
        defer { gcs.stop() }
        let keyFile = try Self.writeJSON(["type": "service_account", "client_email": email, "private_key": privatePEM,
                                          "private_key_id": "kid-123", "token_uri": "\(tokenServer.url)/token"])

        let config = try await GCSConfig.resolve(credentialsFile: keyFile, environment: try Self.isolatedEnvironment(["WEIGHTFS_GCS_ENDPOINT": gcs.url]))
        let info = try await GCSStore(bucket: "b", config: config).stat("obj")
        #expect(info.generation == Generation(77))

        let exchange = try #require(tokenServer.requests.first)
        #expect(exchange.method == "POST")
        #expect(exchange.path == "/token")
        #expect(exchange.headers["content-type"] == "application/x-www-form-urlencoded")
        #expect(exchange.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer")
        let jwt = try #require(exchange.form["assertion"])
        let parts = jwt.split(separator: ".").map(String.init)
        try #require(parts.count == 3)
        let header = try JSONSerialization.jsonObject(with: try #require(base64URLDecode(parts[0]))) as! [String: Any]
        let claims = try JSONSerialization.jsonObject(with: try #require(base64URLDecode(parts[1]))) as! [String: Any]
        #expect(header["alg"] as? String == "RS256")
        #expect(header["typ"] as? String == "JWT")
        #expect(header["kid"] as? String == "kid-123")
        #expect(claims["iss"] as? String == email)
        #expect(claims["aud"] as? String == "\(tokenServer.url)/token")
        #expect(claims["scope"] as? String == "https://www.googleapis.com/auth/devstorage.read_only")
        let iat = try #require(claims["iat"] as? Int)
        let exp = try #require(claims["exp"] as? Int)
        #expect(exp - iat == 3600)
        #expect(abs(Double(iat) - Date().timeIntervalSince1970) < 300)
        let signature = try #require(base64URLDecode(parts[2]))
        #expect(try RS256.verify(Data("\(parts[0]).\(parts[1])".utf8), signature: signature, publicKeyPEM: publicPEM))
        // A tampered message must not verify: the check above can fail.
        #expect(try !RS256.verify(Data("\(parts[0]).x\(parts[1])".utf8), signature: signature, publicKeyPEM: publicPEM))
    }

    @Test func tokensAreCachedAndRefreshedBeforeExpiry() async throws {
        let (privatePEM, _) = try Self.makeKeyPair()
        let counter = Mutex(0)
        let tokenServer = try LoopbackHTTPServer { _ in
            let n = counter.withLock { $0 += 1; return $0 }
            return .json(["access_token": "token-\(n)", "expires_in": 600])
        }
        defer { tokenServer.stop() }
        let key = ServiceAccountKey(client_email: "a@b.iam.gserviceaccount.com", private_key: privatePEM, private_key_id: nil, token_uri: "\(tokenServer.url)/token")
        let skew = Mutex<TimeInterval>(0)
        let cache = TokenCache(source: ServiceAccountSource(key: key), refreshMargin: 300, now: { Date().addingTimeInterval(skew.withLock { $0 }) })

        #expect(try await cache.token() == "token-1")
        skew.withLock { $0 = 200 }  // 400 s left: still good
        #expect(try await cache.token() == "token-1")
        skew.withLock { $0 = 310 }  // 290 s left: inside the margin, refresh
        #expect(try await cache.token() == "token-2")
        // Concurrent callers share one refresh.
        skew.withLock { $0 = 2000 }
        let tokens = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<8 { group.addTask { try await cache.token() } }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(tokens == ["token-3"])
        #expect(counter.withLock { $0 } == 3)
    }

    /// A refresh that fails inside the margin leaves every caller with the still valid token,
    /// the ones that joined the refresh as well as the one that started it.
    @Test func aFailedEarlyRefreshFallsBackForEveryWaiter() async throws {
        let (privatePEM, _) = try Self.makeKeyPair()
        let failing = Mutex(false)
        let tokenServer = try LoopbackHTTPServer { _ in
            guard failing.withLock({ $0 }) else { return .json(["access_token": "token-1", "expires_in": 600]) }
            usleep(300_000)  // long enough for every caller to join this refresh
            return .json(["error": "backendError"], status: 503)
        }
        defer { tokenServer.stop() }
        let key = ServiceAccountKey(client_email: "a@b.iam.gserviceaccount.com", private_key: privatePEM, private_key_id: nil, token_uri: "\(tokenServer.url)/token")
        let skew = Mutex<TimeInterval>(0)
        let cache = TokenCache(source: ServiceAccountSource(key: key), refreshMargin: 300, now: { Date().addingTimeInterval(skew.withLock { $0 }) })
        #expect(try await cache.token() == "token-1")
        failing.withLock { $0 = true }
        skew.withLock { $0 = 400 }  // 200 s left: refresh, which fails; the token still works
        let results = await withTaskGroup(of: String.self) { group in
            for _ in 0..<8 { group.addTask { (try? await cache.token()) ?? "error" } }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(results == Array(repeating: "token-1", count: 8))
        skew.withLock { $0 = 700 }  // expired: now the failure is the caller's
        await #expect(throws: (any Error).self) { try await cache.token() }
    }

    @Test func metadataServerFlowAsOnGKE() async throws {
        let metadata = try LoopbackHTTPServer { request in
            guard request.headers["metadata-flavor"] == "Google" else {
                return .json(["error": "Missing Metadata-Flavor:Google header."], status: 403)
            }
            let flavor = [("Metadata-Flavor", "Google")]
            switch request.path {
            case "/computeMetadata/v1/":
                return LoopbackHTTPServer.Response(status: 200, headers: flavor, body: Data("instance/\n".utf8))
            case "/computeMetadata/v1/instance/service-accounts/default/token":
                return .json(["access_token": "ya29.metadata", "expires_in": 3599, "token_type": "Bearer"], headers: flavor)
            case "/computeMetadata/v1/instance/service-accounts/default/email":
                return LoopbackHTTPServer.Response(status: 200, headers: flavor, body: Data("pod-sa@proj.iam.gserviceaccount.com".utf8))
            default:
                return LoopbackHTTPServer.Response(status: 404, headers: flavor)
            }
        }
        defer { metadata.stop() }
        let gcs = try Self.fakeGCS(token: "ya29.metadata", status: 403)
        defer { gcs.stop() }
        let config = try await GCSConfig.resolve(environment: try Self.isolatedEnvironment([
            "GCE_METADATA_HOST": "127.0.0.1:\(metadata.port)", "WEIGHTFS_GCS_ENDPOINT": gcs.url]))
        #expect(config.credentialsSource.contains("metadata server"))
        let error = await #expect(throws: StoreError.self) { try await GCSStore(bucket: "b", config: config).stat("obj") }
        // 403 names the principal the metadata server vouches for.
        guard case .permissionDenied(_, 403, let principal, _) = error else {
            Issue.record("expected permissionDenied, got \(String(describing: error))")
            return
        }
        #expect(principal == "pod-sa@proj.iam.gserviceaccount.com")
        #expect(error.map(String.init(describing:))?.contains("access denied (HTTP 403) as pod-sa@proj.iam.gserviceaccount.com") == true, "\(String(describing: error))")
        #expect(error.map(String.init(describing:))?.contains("roles/storage.objectViewer") == true)
        #expect(metadata.requests.allSatisfy { $0.headers["metadata-flavor"] == "Google" })
        #expect(metadata.requests.contains { $0.path.hasSuffix("/default/token") })

        // A token GCS does not accept: 401, naming the principal and what to do about credentials.
        let refusing = try Self.fakeGCS(token: "ya29.some-other-token")
        defer { refusing.stop() }
        let config401 = try await GCSConfig.resolve(environment: try Self.isolatedEnvironment([
            "GCE_METADATA_HOST": "127.0.0.1:\(metadata.port)", "WEIGHTFS_GCS_ENDPOINT": refusing.url]))
        let refused = await #expect(throws: StoreError.self) { try await GCSStore(bucket: "b", config: config401).stat("obj") }
        let text = refused.map(String.init(describing:)) ?? ""
        #expect(text.contains("credentials refused (HTTP 401) as pod-sa@proj.iam.gserviceaccount.com") && text.contains("--credentials"), "\(text)")
    }

    @Test func authorizedUserRefreshTokenFlow() async throws {
        let tokenServer = try LoopbackHTTPServer { _ in .json(["access_token": "ya29.user", "expires_in": 3599]) }
        defer { tokenServer.stop() }
        let gcs = try Self.fakeGCS(token: "ya29.user")
        defer { gcs.stop() }
        let file = try Self.writeJSON(["type": "authorized_user", "client_id": "cid.apps.googleusercontent.com", "client_secret": "sec",
                                       "refresh_token": "1//refresh", "token_uri": "\(tokenServer.url)/token"])
        let config = try await GCSConfig.resolve(environment: try Self.isolatedEnvironment(["GOOGLE_APPLICATION_CREDENTIALS": file, "WEIGHTFS_GCS_ENDPOINT": gcs.url]))
        _ = try await GCSStore(bucket: "b", config: config).stat("obj")
        let form = try #require(tokenServer.requests.first).form
        #expect(form == ["grant_type": "refresh_token", "client_id": "cid.apps.googleusercontent.com", "client_secret": "sec", "refresh_token": "1//refresh"])
    }

    /// `gcloud auth application-default login` writes an authorized_user file that is used
    /// without any setting: in ~/.config/gcloud, or in $CLOUDSDK_CONFIG when that is set.
    @Test func gcloudsApplicationDefaultCredentialsFile() async throws {
        let tokenServer = try LoopbackHTTPServer { _ in .json(["access_token": "ya29.adc", "expires_in": 3599]) }
        defer { tokenServer.stop() }
        let gcs = try Self.fakeGCS(token: "ya29.adc")
        defer { gcs.stop() }
        let adc: [String: Any] = ["type": "authorized_user", "client_id": "adc.apps.googleusercontent.com", "client_secret": "s",
                                  "refresh_token": "1//adc", "token_uri": "\(tokenServer.url)/token"]
        let home = try TestEnvironment.scratchDirectory("adc-home").path
        try FileManager.default.createDirectory(atPath: "\(home)/.config/gcloud", withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: adc).write(to: URL(fileURLWithPath: "\(home)/.config/gcloud/application_default_credentials.json"))
        let config = try await GCSConfig.resolve(environment: try Self.isolatedEnvironment(["HOME": home, "WEIGHTFS_GCS_ENDPOINT": gcs.url]))
        #expect(config.credentialsSource == "\(home)/.config/gcloud/application_default_credentials.json")
        _ = try await GCSStore(bucket: "b", config: config).stat("obj")
        #expect(tokenServer.requests.first?.form["refresh_token"] == "1//adc")

        let elsewhere = try TestEnvironment.scratchDirectory("adc-cloudsdk").path
        try JSONSerialization.data(withJSONObject: adc).write(to: URL(fileURLWithPath: "\(elsewhere)/application_default_credentials.json"))
        let viaEnv = try await GCSConfig.resolve(environment: try Self.isolatedEnvironment(["CLOUDSDK_CONFIG": elsewhere, "WEIGHTFS_GCS_ENDPOINT": gcs.url]))
        #expect(viaEnv.credentialsSource == "\(elsewhere)/application_default_credentials.json")
    }

    @Test func fallsBackToAnonymousWithoutCredentials() async throws {
        let config = try await GCSConfig.resolve(environment: try Self.isolatedEnvironment([:]))
        #expect(config.credentialsSource == "anonymous")
        #expect(config.endpoint == GCSConfig.productionEndpoint)
    }

    @Test func emulatorHostNeedsNoAuth() async throws {
        let config = try await GCSConfig.resolve(credentialsFile: "/nonexistent", environment: ["STORAGE_EMULATOR_HOST": "127.0.0.1:4443"])
        #expect(config.endpoint == "http://127.0.0.1:4443")
        #expect(config.credentialsSource == "STORAGE_EMULATOR_HOST")
    }

    @Test func badKeyFilesAreClearErrors() async throws {
        let notJSON = try TestEnvironment.scratchDirectory("bad").appendingPathComponent("k.json").path
        try Data("nope".utf8).write(to: URL(fileURLWithPath: notJSON))
        let wrongType = try Self.writeJSON(["type": "external_account"])
        let badPEM = try Self.writeJSON(["type": "service_account", "client_email": "x@y", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
        for (file, words) in [(notJSON, "not JSON"), (wrongType, "external_account"), ("/nonexistent/key.json", "cannot read")] {
            let e = await #expect(throws: StoreError.self) { _ = try await GCSConfig.resolve(credentialsFile: file, environment: [:]) }
            #expect(e?.description.contains(words) == true, "\(String(describing: e))")
        }
        let config = try await GCSConfig.resolve(credentialsFile: badPEM, environment: ["HOME": "/nonexistent"])
        let e = await #expect(throws: StoreError.self) { _ = try await GCSStore(bucket: "b", config: config).stat("o") }
        #expect(e?.description.contains("PEM") == true, "\(String(describing: e))")
    }
}
