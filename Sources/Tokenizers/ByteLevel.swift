import JSON
/// GPT-2's reversible map between bytes and printable characters: byte-level BPE vocabularies
/// are written in these characters, so that a space is `Ġ` (U+0120) and a newline `Ċ` (U+010A).
enum ByteLevel {
    /// The character each byte is written as.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The byte each of those characters stands for, indexed by scalar value (-1: not one of them).
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in byteToScalar.enumerated() { table[Int(s.value)] = Int16(b) }
        return table
    }()

    @inline(__always)
    static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let v = Int(scalar.value)
        guard v < scalarToByte.count else { return nil }
        let b = scalarToByte[v]
        return b < 0 ? nil : UInt8(b)
    }

    /// The byte-level spelling of `scalars`' UTF-8 bytes.
    static func encode(_ scalars: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(scalars.count + 4)
        let table = byteToScalar
        for s in scalars {
            let v = s.value
            if v < 0x80 {
                out.append(table[Int(v)])
            } else if v < 0x800 {
                out.append(table[Int(0xC0 | v >> 6)])
                out.append(table[Int(0x80 | v & 0x3F)])
            } else if v < 0x10000 {
                out.append(table[Int(0xE0 | v >> 12)])
                out.append(table[Int(0x80 | v >> 6 & 0x3F)])
                out.append(table[Int(0x80 | v & 0x3F)])
            } else {
                out.append(table[Int(0xF0 | v >> 18)])
                out.append(table[Int(0x80 | v >> 12 & 0x3F)])
                out.append(table[Int(0x80 | v >> 6 & 0x3F)])
                out.append(table[Int(0x80 | v & 0x3F)])
            }
        }
        return out
    }

    /// The bytes a token stands for: each character mapped back to its byte when every character
    /// is one of the 256; otherwise (an added token such as `<|im_start|>` with characters outside
    /// the alphabet) its own UTF-8, as `tokenizers`' ByteLevel decoder does.
    static func decode(_ token: String, into bytes: inout [UInt8]) {
        let start = bytes.count
        for s in token.unicodeScalars {
            guard let b = byte(for: s) else {
                bytes.removeSubrange(start...)
                bytes.append(contentsOf: token.utf8)
                return
            }
            bytes.append(b)
        }
    }
}

/// UTF-8 helpers for text that arrives a byte at a time.
enum UTF8Boundary {
    /// The length of the longest prefix of `bytes` that can be decoded now: everything except a
    /// trailing sequence that is a valid but incomplete start of a character (which the next
    /// bytes may complete). Invalid bytes are included: they decode to U+FFFD whatever follows.
    static func decodablePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        // An incomplete character is at most 3 bytes long, so only the tail needs looking at.
        var start = n
        var back = 0
        while start > 0 && back < 3 {
            start -= 1
            back += 1
            if bytes[start] & 0xC0 != 0x80 { break }
        }
        if start == n { return n }
        // ASCII, a stray continuation byte, or an invalid lead: nothing to wait for.
        guard let (need, first) = JSON.utf8Lead(bytes[start]) else { return n }
        let have = n - start - 1
        if have >= need { return n }  // complete (valid or not): decodable now
        // Incomplete: hold it back only if what is there so far can still become a character.
        if have >= 1 && !first.contains(bytes[start + 1]) { return n }
        if have >= 2 && bytes[start + 2] & 0xC0 != 0x80 { return n }
        return start
    }
}
