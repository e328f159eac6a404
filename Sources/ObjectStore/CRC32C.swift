import CCRC32C

/// CRC32C (Castagnoli), the checksum GCS keeps for every object.
public struct CRC32C: Sendable, Equatable {
    public private(set) var value: UInt32 = 0
    public init() {}
    public init(value: UInt32) { self.value = value }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        value = wfs_crc32c_extend(value, base, bytes.count)
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = CRC32C()
        c.update(bytes)
        return c.value
    }

    /// CRC of A‖B from crc(A), crc(B) and the length of B.
    public static func combine(_ a: UInt32, _ b: UInt32, lengthOfB: Int64) -> UInt32 {
        wfs_crc32c_combine(a, b, UInt64(lengthOfB))
    }

    public static var isHardwareAccelerated: Bool { wfs_crc32c_hardware() == 1 }
}
