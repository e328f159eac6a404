import Foundation
import ObjectStore
import Testing
import TestSupport

struct CRC32CTests {
    @Test func checkValueOfTheStandardString() {
        let crc = Array("123456789".utf8).withUnsafeBytes { CRC32C.checksum($0) }
        #expect(crc == 0xE306_9283)
    }

    @Test func emptyInputIsZero() {
        #expect([UInt8]().withUnsafeBytes { CRC32C.checksum($0) } == 0)
    }

    /// Every length up to 3 × 8 KiB + 100 and a few longer ones, at every alignment mod 8, against
    /// the bit-at-a-time definition: the hardware path splits inputs into three-stream segments
    /// by length, and each split must agree with the plain CRC.
    @Test func hardwarePathMatchesTheBitwiseDefinition() {
        func reference(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for b in bytes {
                crc ^= UInt32(b)
                for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            }
            return ~crc
        }
        let data = TestBytes.generate(count: 80_000, seed: 7)
        data.withUnsafeBytes { all in
            var lengths = Array(stride(from: 0, through: 3 * 8192 + 100, by: 1)).filter { $0 < 1600 || $0 % 61 == 0 || $0 % 128 < 2 }
            lengths += [49_152, 49_153, 65_536, 79_990]
            for (i, length) in lengths.enumerated() {
                let slice = UnsafeRawBufferPointer(rebasing: all[(i % 8)..<(i % 8 + length)])
                #expect(CRC32C.checksum(slice) == reference(slice), "length \(length) at offset \(i % 8)")
            }
        }
    }

    @Test func combineEqualsTheChecksumOfTheConcatenation() {
        // Lengths around the three-stream path's segment sizes (3 × 128, 512, 2048 and 8192 bytes),
        // odd lengths and alignments.
        let data = [UInt8]((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) })
        let whole = data.withUnsafeBytes { CRC32C.checksum($0) }
        for split in [0, 1, 7, 8191, 24_576, 24_577, 100_003, 199_999, 200_000, 199_616, 199_615, 198_464, 194_000] {
            let a = data[0..<split].withUnsafeBytes { CRC32C.checksum($0) }
            let b = data[split...].withUnsafeBytes { CRC32C.checksum($0) }
            #expect(CRC32C.combine(a, b, lengthOfB: Int64(data.count - split)) == whole, "split at \(split)")
        }
        // Incremental updates in uneven pieces, starting at odd addresses.
        var inc = CRC32C()
        var i = 0
        for step in [3, 5000, 1, 30_000, 77_777] + Array(repeating: 9999, count: 10) where i < data.count {
            let end = min(i + step, data.count)
            data[i..<end].withUnsafeBytes { inc.update($0) }
            i = end
        }
        data[i...].withUnsafeBytes { inc.update($0) }
        #expect(inc.value == whole)
    }

    @Test func matchesTheChecksumTheEmulatorComputes() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("crc")
        let data = TestBytes.generate(count: 1_234_567, seed: 42)
        let info = try await emulator.upload(bucket, "x", data: data)
        #expect(info.crc32c == data.withUnsafeBytes { CRC32C.checksum($0) })
    }
}
