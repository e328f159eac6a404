/// Text from outside (object names, a bucket's listing, a file's fields) on its way to a
/// terminal: control characters could move the cursor, retitle the window or rewrite earlier
/// lines, so each is shown as an escape (`\x1b`, `\u{9b}`) instead. Newlines and tabs stay.
extension String {
    public var terminalSafe: String {
        guard unicodeScalars.contains(where: Self.isControl) else { return self }
        var out = ""
        for s in unicodeScalars {
            if Self.isControl(s) {
                out += s.value < 0x80 ? "\\x" + Self.hex2(s.value) : "\\u{" + String(s.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(s)
            }
        }
        return out
    }

    /// C0 controls but newline and tab, DEL, and the C1 controls (U+0080–U+009F: U+009B is CSI).
    private static func isControl(_ s: Unicode.Scalar) -> Bool {
        (s.value < 0x20 && s != "\n" && s != "\t") || (s.value >= 0x7F && s.value <= 0x9F)
    }

    private static func hex2(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return h.count == 1 ? "0" + h : h
    }
}
