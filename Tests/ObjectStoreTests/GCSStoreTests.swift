import Foundation
import ObjectStore
import Synchronization
import Testing
import TestSupport

/// The GCS client against the real fake-gcs-server emulator.
struct GCSStoreTests {
    static let specialNames = [
        "plain.bin", "with space.bin", "hash#tag.bin", "question?mark.bin", "per%cent.bin", "plus+sign.bin",
        "unicodé/naïve/模型.safetensors", "emoji-🤖.bin", "nested/a/b/c/deep.bin", "both%20looking&amp=.bin",
    ]

    /// Reads `object` whole with its first 512 KiB urgent; returns `background`'s count when the
    /// first byte came and when the urgent bytes were in.
    func urgentRead(_ object: ObjectInfo, from store: GCSStore, watching background: ByteCounter) async throws -> (first: Int64?, done: Int64?) {
        let urgentBytes: Int64 = 512 << 10
        let got = ByteCounter()
        let marks = Mutex<(first: Int64?, done: Int64?)>((nil, nil))
        try await store.read(object.name, generation: object.generation, range: ByteRange(0, object.size),
                             // No cap in practice: the pause itself is asserted, however slow the machine.
                             options: ReadOptions(urgentBytes: urgentBytes, maxHold: .seconds(600))) { bytes in
            let before = got.add(Int64(bytes.count))
            marks.withLock { m in
                if m.first == nil { m.first = background.value }
                if m.done == nil, before + Int64(bytes.count) >= urgentBytes { m.done = background.value }
            }
        }
        return marks.withLock { ($0.first, $0.done) }
    }

    @Test func anUrgentReadPausesOtherTransfersUntilItsBytesArrive() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("urgent")
        let big = try await emulator.upload(bucket, "background.bin", data: TestBytes.generate(count: 16 << 20, seed: 11))
        let small = try await emulator.upload(bucket, "urgent.bin", data: TestBytes.generate(count: 1 << 20, seed: 12))
        let proxy = try LinkProxy(upstream: emulator.url, arguments: ["--rate", "4MB"])
        defer { proxy.stop() }
        let store = emulator.store(bucket, endpoint: proxy.url)
        let background = ByteCounter()
        let preload = Task {
            try await store.read(big.name, generation: big.generation, range: ByteRange(0, big.size)) { background.add(Int64($0.count)) }
        }
        try await waitUntil("the background read's first MiB") { background.value >= 1 << 20 }
        // Background bytes seen at the urgent read's first byte and when its urgent half is in:
        // equal if the background transfer was paused in between.
        let (first, done) = try await urgentRead(small, from: store, watching: background)
        #expect(first != nil && done != nil)
        #expect(first == done, "the background transfer received \((done ?? 0) - (first ?? 0)) bytes while the urgent one waited")
        // Then it resumes and completes with every byte.
        try await preload.value
        #expect(background.value == big.size)
    }

    /// Urgency holds the link it waits on: a transfer to another endpoint (another store, or in
    /// these tests another test's proxy) goes on receiving while the urgent read waits.
    @Test func anUrgentReadLeavesTransfersToOtherEndpointsRunning() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("urgent-other")
        let big = try await emulator.upload(bucket, "background.bin", data: TestBytes.generate(count: 16 << 20, seed: 13))
        let small = try await emulator.upload(bucket, "urgent.bin", data: TestBytes.generate(count: 1 << 20, seed: 14))
        let backgroundLink = try LinkProxy(upstream: emulator.url, arguments: ["--rate", "4MB"])
        defer { backgroundLink.stop() }
        let urgentLink = try LinkProxy(upstream: emulator.url, arguments: ["--rate", "1MB"])
        defer { urgentLink.stop() }
        let background = ByteCounter()
        let backgroundStore = emulator.store(bucket, endpoint: backgroundLink.url)
        let preload = Task {
            try await backgroundStore.read(big.name, generation: big.generation, range: ByteRange(0, big.size)) { background.add(Int64($0.count)) }
        }
        try await waitUntil("the background read's first MiB") { background.value >= 1 << 20 }
        let (first, done) = try await urgentRead(small, from: emulator.store(bucket, endpoint: urgentLink.url), watching: background)
        // 512 KiB at 1 MB/s take half a second; the other link moves 4 MB/s meanwhile.
        #expect((done ?? 0) > (first ?? 0) || background.value == big.size,
                "the transfer to the other endpoint was held while the urgent one waited")
        try await preload.value
        #expect(background.value == big.size)
    }

    @Test func listingFollowsPagesPastAThousandObjects() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("list")
        let names = (0..<1100).map { String(format: "many/obj-%05d", $0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for batch in stride(from: 0, to: names.count, by: 100) {
                group.addTask {
                    for name in names[batch..<min(batch + 100, names.count)] {
                        try await emulator.upload(bucket, name, data: Data(name.utf8))
                    }
                }
            }
            try await group.waitForAll()
        }
        try await emulator.upload(bucket, "other/x", data: Data("x".utf8))
        let store = emulator.store(bucket)

        let first = try await store.list(prefix: "many/", delimiter: nil, pageToken: nil)
        #expect(first.objects.count == 1000)
        #expect(first.nextPageToken != nil)

        let all = try await store.listAll(prefix: "many/")
        #expect(all.map(\.name) == names)
        #expect(all.allSatisfy { $0.size == Int64($0.name.utf8.count) })

        let top = try await store.list(prefix: "", delimiter: "/", pageToken: nil)
        #expect(Set(top.prefixes) == ["many/", "other/"])
        #expect(top.objects.isEmpty)
    }

    @Test func specialCharacterNamesRoundTrip() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("names")
        for (i, name) in Self.specialNames.enumerated() {
            try await emulator.upload(bucket, name, data: TestBytes.generate(count: 1000 + i, seed: UInt64(i)))
        }
        let store = emulator.store(bucket)
        let listed = try await store.listAll(prefix: "")
        #expect(Set(listed.map(\.name)) == Set(Self.specialNames))
        for (i, name) in Self.specialNames.enumerated() {
            let info = try await store.stat(name)
            #expect(info.name == name)
            let got = try await readAll(store, info)
            #expect(got == TestBytes.generate(count: 1000 + i, seed: UInt64(i)), "\(name)")
        }
    }

    @Test func rangesAtStartEndAndAcrossBoundaries() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("ranges")
        let data = TestBytes.generate(count: 3 << 20, seed: 7)
        let info = try await emulator.upload(bucket, "obj", data: data)
        let store = emulator.store(bucket)
        let size = Int64(data.count)
        let mib: Int64 = 1 << 20
        let ranges = [ByteRange(0, 1), ByteRange(0, 4096), ByteRange(size - 1, size), ByteRange(size - 4096, size),
                      ByteRange(mib - 3, mib + 3), ByteRange(mib - 1, 2 * mib + 1), ByteRange(0, size), ByteRange(12345, 12345)]
        for r in ranges {
            let got = try await read(store, info, r)
            #expect(got == data[Int(r.lowerBound)..<Int(r.upperBound)], "range \(r)")
        }
    }

    @Test func zeroLengthObjects() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("empty")
        let info = try await emulator.upload(bucket, "empty.bin", data: Data())
        #expect(info.size == 0)
        #expect(info.crc32c == 0)
        let got = try await read(emulator.store(bucket), info, ByteRange(0, 0))
        #expect(got.isEmpty)
    }

    @Test func rangePastTheEndIsAClearError() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("past")
        let info = try await emulator.upload(bucket, "small", data: Data(count: 100))
        await #expect(throws: ReadFailure.self) { _ = try await read(emulator.store(bucket), info, ByteRange(200, 300)) }
    }

    @Test func missingObjectsAndBucketsAreNotFound() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("missing")
        let error = await #expect(throws: StoreError.self) { try await emulator.store(bucket).stat("nope") }
        #expect(error == .notFound(location: "gs://\(bucket)/nope"))
        #expect(error?.description.contains("gs://\(bucket)/nope") == true)
    }

    @Test func readOfAReplacedGenerationIsObjectChanged() async throws {
        let (emulator, bucket) = try await Emulator.freshBucket("gen")
        let old = try await emulator.upload(bucket, "model.bin", data: TestBytes.generate(count: 10000, seed: 1))
        let new = try await emulator.upload(bucket, "model.bin", data: TestBytes.generate(count: 10000, seed: 2))
        #expect(old.generation != new.generation)
        let failure = await #expect(throws: ReadFailure.self) { _ = try await read(emulator.store(bucket), old, ByteRange(0, 100)) }
        #expect(failure?.error == .objectChanged(location: "gs://\(bucket)/model.bin", expected: old.generation, found: new.generation))
        // The current generation still reads.
        let got = try await read(emulator.store(bucket), new, ByteRange(0, 10000))
        #expect(got == TestBytes.generate(count: 10000, seed: 2))
    }
}

func read(_ store: any ObjectStore, _ info: ObjectInfo, _ range: ByteRange) async throws -> Data {
    let collected = Mutex(Data())
    try await store.read(info.name, generation: info.generation, range: range) { bytes in
        collected.withLock { $0.append(contentsOf: bytes) }
    }
    return collected.withLock { $0 }
}

func readAll(_ store: any ObjectStore, _ info: ObjectInfo) async throws -> Data {
    try await read(store, info, ByteRange(0, info.size))
}
