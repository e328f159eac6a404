import ObjectStore
import Testing

/// Object-name prefixes compare bytes, not Characters.
struct BytePrefixTests {
    @Test func prefixesAreBytes() {
        #expect("m/model.bin".removingBytePrefix("m/") == "model.bin")
        #expect("m/\u{301}x".removingBytePrefix("m/") == "\u{301}x", "a combining mark after the prefix joins its last Character, not its bytes")
        #expect("m/cafe\u{301}.txt".removingBytePrefix("m/caf\u{E9}") == nil, "NFD does not start with the NFC spelling")
        #expect("m/cafe\u{301}.txt".removingBytePrefix("m/cafe") == "\u{301}.txt")
        #expect("x".removingBytePrefix("xy") == nil)
    }
}
