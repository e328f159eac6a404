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

    @Test func combineEqualsTheChecksumOfTheConcatenation() {
        // Lengths around the 3-way interleave's 24 KiB block, odd lengths and alignments.
        let data = [UInt8]((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) })
        let whole = data.withUnsafeBytes { CRC32C.checksum($0) }
        for split in [0, 1, 7, 8191, 24_576, 24_577, 100_003, 199_999, 200_000] {
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
