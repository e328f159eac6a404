import CCrypto
import Foundation

/// RSASSA-PKCS1-v1_5 with SHA-256 (JWT "RS256") via libcrypto, which the process already links.
public enum RS256 {
    public static func sign(_ message: Data, privateKeyPEM: String) throws -> Data {
        let pkey = try loadKey(privateKeyPEM) { bio in PEM_read_bio_PrivateKey(bio, nil, nil, nil) }
        defer { EVP_PKEY_free(pkey) }
        guard let ctx = EVP_MD_CTX_new() else { throw StoreError.auth("out of memory") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, EVP_sha256(), nil, pkey) == 1 else { throw opensslError("EVP_DigestSignInit") }
        var length = 0
        let ok = message.withUnsafeBytes { m in
            EVP_DigestSign(ctx, nil, &length, m.bindMemory(to: UInt8.self).baseAddress, m.count)
        }
        guard ok == 1 else { throw opensslError("EVP_DigestSign") }
        var signature = Data(count: length)
        let ok2 = signature.withUnsafeMutableBytes { s in
            message.withUnsafeBytes { m in
                EVP_DigestSign(ctx, s.bindMemory(to: UInt8.self).baseAddress, &length, m.bindMemory(to: UInt8.self).baseAddress, m.count)
            }
        }
        guard ok2 == 1 else { throw opensslError("EVP_DigestSign") }
        return signature.prefix(length)
    }

    /// Verifies an RS256 signature with a PEM public key (SubjectPublicKeyInfo).
    public static func verify(_ message: Data, signature: Data, publicKeyPEM: String) throws -> Bool {
        let pkey = try loadKey(publicKeyPEM) { bio in PEM_read_bio_PUBKEY(bio, nil, nil, nil) }
        defer { EVP_PKEY_free(pkey) }
        guard let ctx = EVP_MD_CTX_new() else { throw StoreError.auth("out of memory") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, EVP_sha256(), nil, pkey) == 1 else { throw opensslError("EVP_DigestVerifyInit") }
        let rc = signature.withUnsafeBytes { s in
            message.withUnsafeBytes { m in
                EVP_DigestVerify(ctx, s.bindMemory(to: UInt8.self).baseAddress, s.count, m.bindMemory(to: UInt8.self).baseAddress, m.count)
            }
        }
        _ = wfs_openssl_last_error(nil, 0)
        return rc == 1
    }

    private static func loadKey(_ pem: String, _ read: (OpaquePointer?) -> OpaquePointer?) throws -> OpaquePointer {
        let bytes = Array(pem.utf8)
        let key: OpaquePointer? = bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return read(bio)
        }
        guard let key else { throw opensslError("reading the PEM key (is private_key a valid PEM RSA key?)") }
        return key
    }

    private static func opensslError(_ what: String) -> StoreError {
        var buf = [CChar](repeating: 0, count: 256)
        _ = wfs_openssl_last_error(&buf, buf.count)
        let detail = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return .auth("\(what) failed: \(detail.isEmpty ? "unknown OpenSSL error" : detail)")
    }
}

/// base64url without padding, as JWTs use.
public func base64URL(_ data: Data) -> String {
    data.base64EncodedString()
        .replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

public func base64URLDecode(_ s: String) -> Data? {
    var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while t.count % 4 != 0 { t += "=" }
    return Data(base64Encoded: t)
}
