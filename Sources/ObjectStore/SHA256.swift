import CCrypto

/// SHA-256 via libcrypto, which the process already links (for RS256).
public enum SHA256 {
    /// The digest of `bytes` as 64 lowercase hex digits.
    public static func hex(_ bytes: some Collection<UInt8>) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = Array(bytes).withUnsafeBytes { b in
            EVP_Digest(b.baseAddress, b.count, &digest, &length, EVP_sha256(), nil)
        }
        // EVP_Digest with a built-in digest fails only when memory runs out.
        precondition(ok == 1 && length == 32, "SHA-256 (libcrypto EVP_Digest) failed")
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
