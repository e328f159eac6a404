import ModelCore
/// Reading weights of one element type as f32, eight at a time: half-precision weights are
/// widened in registers inside the kernels, never copied to an f32 buffer.
protocol WeightLoad: Sendable {
    /// Elements `i..<i+8` of the row at `p`, as f32.
    static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float>
    /// Element `i` of the row at `p`, as f32.
    static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float
}

enum F32Load: WeightLoad {
    @inline(__always)
    static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        p.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
    }
    @inline(__always)
    static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        p.loadUnaligned(fromByteOffset: i &* 4, as: Float.self)
    }
}

/// bf16 is the top half of an f32: widening is a shift.
enum BF16Load: WeightLoad {
    @inline(__always)
    static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        let h = p.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<UInt16>.self)
        return unsafeBitCast(SIMD8<UInt32>(truncatingIfNeeded: h) &<< 16, to: SIMD8<Float>.self)
    }
    @inline(__always)
    static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)) << 16)
    }
}

/// IEEE half: F16C (x86-64-v3) widens eight at a time.
enum F16Load: WeightLoad {
    @inline(__always)
    static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        SIMD8<Float>(p.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<Float16>.self))
    }
    @inline(__always)
    static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        Float(p.loadUnaligned(fromByteOffset: i &* 2, as: Float16.self))
    }
}

@inline(__always)
func loadX8(_ x: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
    UnsafeRawPointer(x).loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
}
