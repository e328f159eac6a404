import Safetensors

/// Element types the kernels read directly from mapped bytes.
public enum WeightDType: String, Sendable, Hashable {
    case f32, f16, bf16

    public init?(_ dtype: DType) {
        switch dtype {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        default: return nil
        }
    }

    public var byteSize: Int { self == .f32 ? 4 : 2 }
}

/// A read-only view of one weight tensor in place: row-major, `shape` as the checkpoint stores
/// it (a Linear weight is [out, in]), elements of `dtype` starting at `base`.
///
/// `@unchecked Sendable`: it points into a read-only mapping that `owner` (the `WeightSource`
/// that made it) keeps alive as long as the view exists; nothing ever writes through it.
public struct WeightTensor: @unchecked Sendable {
    public let name: String
    public let dtype: WeightDType
    public let shape: [Int]
    /// The first element.
    public let base: UnsafeRawPointer
    /// Keeps the memory under `base` alive.
    let owner: AnyObject?

    /// A view of memory at `base` that `owner` (when given) keeps alive, or that the caller does.
    public init(name: String, dtype: WeightDType, shape: [Int], base: UnsafeRawPointer, owner: AnyObject? = nil) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.base = base
        self.owner = owner
    }

    public var elementCount: Int { shape.reduce(1, *) }
    /// Elements per row: the last dimension (1-D tensors are one row).
    public var rowLength: Int { shape.last ?? 1 }
    public var rowCount: Int { elementCount / max(rowLength, 1) }

    /// Start of row `r` of a 2-D tensor.
    @inline(__always)
    public func row(_ r: Int) -> UnsafeRawPointer { base + r * rowLength * dtype.byteSize }

    /// Element `i` as Float (slow path: norms, biases, embedding rows).
    @inline(__always)
    public func element(_ i: Int) -> Float {
        switch dtype {
        case .f32: return base.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
        case .f16: return Float(base.loadUnaligned(fromByteOffset: i * 2, as: Float16.self))
        case .bf16: return Float(bitPattern: UInt32(base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16)
        }
    }

    /// The whole tensor converted to f32 (for the small vectors: norm weights and biases).
    public func toFloats() -> [Float] {
        (0..<elementCount).map { element($0) }
    }
}
