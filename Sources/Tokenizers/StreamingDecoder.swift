/// Decodes ids that arrive one at a time into text, returning only whole characters: bytes of a
/// character that a later token completes (an emoji split across byte tokens) are held back.
/// The concatenation of everything returned, `finish()` included, equals
/// `tokenizer.decode(allIDs, skipSpecialTokens:)`.
///
/// With a ByteLevel decoder this works on bytes directly. With other decoders (Metaspace,
/// ByteFallback…) it decodes a short window of recent ids again each time and returns the new
/// part, holding back text that ends in U+FFFD (an incomplete byte sequence).
public struct StreamingDecoder: Sendable {
    public let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    private let byteMode: Bool
    /// Byte mode: bytes not returned yet.
    private var pending: [UInt8] = []
    /// Window mode: ids since `prefixOffset`; text of ids before `readOffset` has been returned.
    private var ids: [TokenID] = []
    private var prefixOffset = 0
    private var readOffset = 0

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        byteMode = tokenizer.decodesByteLevel
    }

    /// Adds one id; returns the text that is now complete (often empty mid-character).
    public mutating func push(_ id: TokenID) -> String {
        if skipSpecialTokens && tokenizer.isSpecial(id) { return "" }
        if byteMode {
            guard tokenizer.byteLevelBytes(of: id, into: &pending) else { return "" }
            let ready = UTF8Boundary.decodablePrefixLength(pending)
            if ready == 0 { return "" }
            let text = String(decoding: pending[..<ready], as: UTF8.self)
            pending.removeSubrange(..<ready)
            return text
        }
        guard tokenizer.token(for: id) != nil else { return "" }
        ids.append(id)
        let previous = tokenizer.decode(Array(ids[prefixOffset..<readOffset]), skipSpecialTokens: skipSpecialTokens)
        let current = tokenizer.decode(Array(ids[prefixOffset...]), skipSpecialTokens: skipSpecialTokens)
        if current.unicodeScalars.last == "\u{FFFD}" { return "" }
        let prevScalars = previous.unicodeScalars.count
        let currentScalars = Array(current.unicodeScalars)
        guard currentScalars.count >= prevScalars, currentScalars[..<prevScalars].elementsEqual(previous.unicodeScalars) else {
            // The decoder rewrote earlier text (it should not); return nothing rather than garbage.
            return ""
        }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: currentScalars[prevScalars...])
        // Keep the last returned id as context for the next window (Metaspace treats the first
        // token of a window specially), and drop older ones.
        prefixOffset = readOffset
        readOffset = ids.count
        if prefixOffset > 0 {
            ids.removeSubrange(..<prefixOffset)
            readOffset -= prefixOffset
            prefixOffset = 0
        }
        return String(out)
    }

    /// Adds several ids; returns the text that is now complete.
    public mutating func push(_ ids: [TokenID]) -> String {
        var out = ""
        for id in ids { out += push(id) }
        return out
    }

    /// Ends the stream: returns what is still held back, invalid bytes as U+FFFD.
    public mutating func finish() -> String {
        if byteMode {
            let text = String(decoding: pending, as: UTF8.self)
            pending.removeAll()
            return text
        }
        let previous = tokenizer.decode(Array(ids[prefixOffset..<readOffset]), skipSpecialTokens: skipSpecialTokens)
        let current = tokenizer.decode(Array(ids[prefixOffset...]), skipSpecialTokens: skipSpecialTokens)
        ids.removeAll()
        prefixOffset = 0
        readOffset = 0
        let prevScalars = previous.unicodeScalars.count
        let currentScalars = Array(current.unicodeScalars)
        guard currentScalars.count >= prevScalars else { return "" }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: currentScalars[prevScalars...])
        return String(out)
    }
}
