/// An element type as a safetensors header spells it (`"dtype": "BF16"`).
///
/// The cases are the ones the reference Rust library (safetensors 0.8) accepts. `F4` and the
/// `F6_*` types pack elements across byte boundaries, so their size is given in bits; a tensor of
/// them is valid only when its elements fill whole bytes.
public enum DType: String, Sendable, Hashable, CaseIterable {
    case f64 = "F64"
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u64 = "U64"
    case u32 = "U32"
    case u16 = "U16"
    case u8 = "U8"
    case bool = "BOOL"
    case f8E4M3 = "F8_E4M3"
    case f8E5M2 = "F8_E5M2"
    case f8E4M3FNUZ = "F8_E4M3FNUZ"
    case f8E5M2FNUZ = "F8_E5M2FNUZ"
    case f8E8M0 = "F8_E8M0"
    /// Complex, two F32s.
    case c64 = "C64"
    case f4 = "F4"
    case f6E2M3 = "F6_E2M3"
    case f6E3M2 = "F6_E3M2"

    /// Bits per element.
    public var bitSize: Int {
        switch self {
        case .f64, .i64, .u64, .c64: return 64
        case .f32, .i32, .u32: return 32
        case .f16, .bf16, .i16, .u16: return 16
        case .i8, .u8, .bool, .f8E4M3, .f8E5M2, .f8E4M3FNUZ, .f8E5M2FNUZ, .f8E8M0: return 8
        case .f6E2M3, .f6E3M2: return 6
        case .f4: return 4
        }
    }

    /// Bytes per element; nil for the sub-byte types (`F4`, `F6_*`), whose sizes only add up per tensor.
    public var byteSize: Int? { bitSize % 8 == 0 ? bitSize / 8 : nil }

    /// Bytes that `elements` elements occupy; nil when that overflows Int64 or does not end on a byte boundary.
    public func byteCount(elements: Int64) -> Int64? {
        let (bits, overflow) = elements.multipliedReportingOverflow(by: Int64(bitSize))
        guard !overflow, bits >= 0, bits % 8 == 0 else { return nil }
        return bits / 8
    }
}
