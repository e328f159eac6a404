// `weightfs-bench demand`: latency of 4 KiB demand reads of absent offsets while a preload runs.
//
//   weightfs-bench demand gs://BUCKET/PREFIX --cache-dir DIR [--samples 100] [--concurrency 16]
//                  [--chunk-size BYTES] [--idle-samples 8] [--gap-ms 20] [--seed 1]
//
// 1. Idle: `--idle-samples` single-chunk fetches with the Fetcher (nothing else running: "one
//    chunk's fetch time"), then as many 4 KiB reads through a fresh ChunkCache (the same plus
//    the cache's pwrite/fdatasync/record).
// 2. Rounds, each in a fresh cache directory DIR/round-N: open every object under the prefix,
//    queue them whole at preload priority (in name order, chunk order), wait for the first wave
//    of chunks, then read 4 KiB at a random offset of a random chunk the preload has not
//    reached yet (queue position beyond what is present + concurrency + 8), one read at a time
//    with `--gap-ms` between reads, until the preload is within its last 20 %; then wait for the
//    preload to finish. Rounds repeat until `--samples` reads were timed.
//
// Every ranged GET the cache makes goes through a timing wrapper around the store, so each
// demand read is split into its queue wait (read issued → its chunk's GET starts), the GET
// itself (start → first byte → last byte) and the rest (fdatasync, record, wake-up).
// Prints one JSON line.
import ChunkCache
import Fetcher
import Foundation
import ObjectStore
import Synchronization

/// One ranged GET as the cache made it.
struct GetTiming: Sendable {
    var name: String
    var lowerBound: Int64
    var count: Int64
    var start: ContinuousClock.Instant
    var firstByte: ContinuousClock.Instant?
    var end: ContinuousClock.Instant?
}

/// Wraps a store and records when each `read` started, got its first byte and ended.
final class TimedStore: ObjectStore {
    let inner: any ObjectStore
    let log = Mutex<[GetTiming]>([])
    init(_ inner: any ObjectStore) { self.inner = inner }

    var location: String { inner.location }
    func list(prefix: String, delimiter: String?, pageToken: String?) async throws -> ListPage {
        try await inner.list(prefix: prefix, delimiter: delimiter, pageToken: pageToken)
    }
    func stat(_ name: String) async throws -> ObjectInfo { try await inner.stat(name) }
    func read(_ name: String, generation: Generation, range: ByteRange, options: ReadOptions, into sink: @escaping ByteSink) async throws {
        let index = log.withLock { l -> Int in
            l.append(GetTiming(name: name, lowerBound: range.lowerBound, count: range.count, start: .now))
            return l.count - 1
        }
        let calls = ByteCounter()
        // A GET may outlive a `reset` (a round's cache shut down with a chunk still arriving).
        defer { log.withLock { if index < $0.count { $0[index].end = .now } } }
        try await inner.read(name, generation: generation, range: range, options: options) { bytes in
            if calls.add(1) == 0 { self.log.withLock { if index < $0.count { $0[index].firstByte = .now } } }
            try sink(bytes)
        }
    }

    /// The first GET of `name` starting at `offset` that began at or after `since`.
    func get(_ name: String, at offset: Int64, since: ContinuousClock.Instant) -> GetTiming? {
        log.withLock { l in l.first { $0.name == name && $0.lowerBound == offset && $0.start >= since } }
    }
    func reset() { log.withLock { $0.removeAll() } }
    func all() -> [GetTiming] { log.withLock { $0 } }
}

/// SplitMix64: a seeded generator, so a run's offsets can be repeated.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))  // nearest rank
    return sorted[min(max(rank, 1), sorted.count) - 1]
}

func ms(_ d: Duration) -> Double { d.seconds * 1000 }

func summary(_ values: [Double]) -> [String: Any] {
    guard !values.isEmpty else { return ["n": 0] }
    return ["n": values.count, "p50": percentile(values, 50), "p90": percentile(values, 90), "p99": percentile(values, 99),
            "max": values.max()!, "mean": values.reduce(0, +) / Double(values.count)]
}

func runDemand(_ args: [String]) async throws {
    let url = try StoreURL(args[2])
    let cacheDir = argument("--cache-dir", default: "")
    guard !cacheDir.isEmpty else { throw StoreError.invalidArgument("demand needs --cache-dir DIR (rounds use DIR/round-N)") }
    let wantSamples = Int(argument("--samples", default: "100"))!
    let idleSamples = Int(argument("--idle-samples", default: "8"))!
    let gap = Duration.milliseconds(Int(argument("--gap-ms", default: "20"))!)
    var rng = SeededRandom(state: UInt64(argument("--seed", default: "1"))!)
    let options = FetchOptions(concurrency: Int(argument("--concurrency", default: "16"))!,
                               chunkSize: Int64(argument("--chunk-size", default: String(8 << 20)))!)
    let chunkSize = options.chunkSize
    let store = TimedStore(try await url.open())
    var prefix = url.path
    if !prefix.isEmpty, !prefix.hasSuffix("/") { prefix += "/" }
    let objects = try await store.listAll(prefix: prefix).sorted { $0.name < $1.name }
    guard !objects.isEmpty else { throw StoreError.invalidArgument("nothing under \(url)") }
    // Queue order of the preload: every chunk of every object, objects by name.
    var queue: [(object: Int, chunk: Int)] = []
    for (i, o) in objects.enumerated() {
        for c in 0..<Int((o.size + chunkSize - 1) / chunkSize) { queue.append((i, c)) }
    }
    let totalBytes = objects.reduce(Int64(0)) { $0 + $1.size }
    let fm = FileManager.default
    try? fm.removeItem(atPath: cacheDir)
    try fm.createDirectory(atPath: cacheDir, withIntermediateDirectories: true)

    func randomRead(_ n: Int) -> (object: Int, chunk: Int, range: ByteRange) {
        let (o, c) = queue[n]
        let start = Int64(c) * chunkSize
        let len = min(chunkSize, objects[o].size - start)
        let page = Int64.random(in: 0..<max(1, len / 4096), using: &rng) * 4096
        return (o, c, ByteRange(start + page, min(start + page + 4096, objects[o].size)))
    }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    defer { buffer.deallocate() }

    // 1. Idle: one chunk with the Fetcher alone, then one 4 KiB read through an otherwise idle cache.
    let fetcher = Fetcher(store: store, options: options)
    var idleFetch: [Double] = [], idleFetchTTFB: [Double] = [], idleDemand: [Double] = []
    for _ in 0..<idleSamples {
        let (o, c, _) = randomRead(Int.random(in: 0..<queue.count, using: &rng))
        let r = ByteRange(Int64(c) * chunkSize, min(Int64(c + 1) * chunkSize, objects[o].size))
        let t0 = ContinuousClock.now
        _ = try await fetcher.fetch(objects[o], range: r) { _, _ in }
        idleFetch.append(ms(.now - t0))
        if let g = store.get(objects[o].name, at: r.lowerBound, since: t0), let fb = g.firstByte { idleFetchTTFB.append(ms(fb - g.start)) }
    }
    do {
        let cache = try ChunkCache(directory: "\(cacheDir)/idle", store: store, options: options)
        var opened: [CachedObject] = []
        for o in objects { opened.append(try await cache.open(o)) }
        var used = Set<Int>()
        for _ in 0..<idleSamples {
            var n = Int.random(in: 0..<queue.count, using: &rng)
            while used.contains(n) { n = (n + 1) % queue.count }
            used.insert(n)
            let (o, _, r) = randomRead(n)
            let t0 = ContinuousClock.now
            try await cache.read(opened[o], range: r, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(r.count)]))
            idleDemand.append(ms(.now - t0))
            // The rest of the chunk (its head) is still arriving: let it finish before the next sample.
            let c = r.lowerBound / chunkSize * chunkSize
            try await cache.ensure(opened[o], range: ByteRange(c, min(c + chunkSize, objects[o].size)), priority: .preload)
        }
        await cache.shutdown()
    }
    try? fm.removeItem(atPath: "\(cacheDir)/idle")

    // 2. Rounds of preload + demand reads.
    var latency: [Double] = [], queueWait: [Double] = [], getTime: [Double] = [], getTTFB: [Double] = [], afterFirstByte: [Double] = []
    var progressAtRead: [Double] = []
    var preloadChunkTime: [Double] = []
    var roundRates: [Double] = []
    var round = 0
    // Reads are taken only while the preload has more than concurrency + 8 chunks and 20 % of
    // its queue left to go: the objects must be large enough for that.
    guard Double(options.concurrency + 8 + 1) < Double(queue.count) * 0.8 else {
        throw StoreError.invalidArgument("\(queue.count) chunks under \(url) are too few for the probe: need more than \((options.concurrency + 9) * 5 / 4)")
    }
    while latency.count < wantSamples {
        round += 1
        guard round <= wantSamples else { throw StoreError.invalidArgument("no demand read could be timed in \(round - 1) rounds") }
        let dir = "\(cacheDir)/round-\(round)"
        try? fm.removeItem(atPath: dir)
        store.reset()
        let cache = try ChunkCache(directory: dir, store: store, options: options)
        var opened: [CachedObject] = []
        for o in objects { opened.append(try await cache.open(o)) }
        let started = ContinuousClock.now
        for c in opened { await cache.prefetch(c, range: ByteRange(0, c.info.size), priority: .preload) }
        func present() async -> Int64 {
            var p: Int64 = 0
            for c in opened { p += await cache.presentBytes(c) }
            return p
        }
        // The first wave: every regular slot busy, connections open and streaming.
        while await present() < Int64(options.concurrency) * chunkSize { try await Task.sleep(for: .milliseconds(5)) }
        var demanded = Set<Int>()
        var demandedGets = Set<String>()
        let stopAt = Int(Double(queue.count) * 0.8)
        sampling: while latency.count < wantSamples {
            // The preload's progress: present chunks, less the demanded ones that are whole (a
            // demanded chunk's head may still be arriving after its read returned).
            let wholeDemanded = demanded.filter { n in
                let (o, c) = queue[n]
                return opened[o].isPresent(ByteRange(Int64(c) * chunkSize, min(Int64(c + 1) * chunkSize, objects[o].size)))
            }.count
            let done = Int(await present() / chunkSize) - wholeDemanded
            let frontier = done + options.concurrency + 8
            guard frontier < stopAt else { break sampling }
            var candidates = Array(frontier..<queue.count).filter { !demanded.contains($0) }
            if candidates.isEmpty { break sampling }
            candidates.shuffle(using: &rng)
            let n = candidates[0]
            demanded.insert(n)
            let (o, c, r) = randomRead(n)
            let name = objects[o].name, chunkStart = Int64(c) * chunkSize
            // The cache's demand GET starts at the read's offset rounded down to 256 KiB.
            let getStart = max(chunkStart, r.lowerBound - r.lowerBound % (256 << 10))
            demandedGets.insert("\(name)@\(chunkStart)")
            let t0 = ContinuousClock.now
            try await cache.read(opened[o], range: r, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(r.count)]))
            let t1 = ContinuousClock.now
            latency.append(ms(t1 - t0))
            progressAtRead.append(Double(done) / Double(queue.count))
            // The read returns when its bytes are in; its GET goes on to the chunk's end.
            let whole = ByteRange(chunkStart, min(chunkStart + chunkSize, objects[o].size))
            try await cache.ensure(opened[o], range: whole)
            if let g = store.get(name, at: getStart, since: t0), let end = g.end {
                queueWait.append(ms(g.start - t0))
                getTime.append(ms(end - g.start))
                if let fb = g.firstByte {
                    getTTFB.append(ms(fb - g.start))
                    afterFirstByte.append(ms(t1 - fb))
                }
            }
            try await Task.sleep(for: gap)
        }
        for c in opened { try await cache.ensure(c, range: ByteRange(0, c.info.size), priority: .preload) }
        roundRates.append(Double(totalBytes) / (ContinuousClock.now - started).seconds / 1e6)
        for g in store.all() where !demandedGets.contains("\(g.name)@\(g.lowerBound)") {
            if let end = g.end, g.count == chunkSize { preloadChunkTime.append(ms(end - g.start)) }
        }
        for c in opened { await cache.close(c) }
        await cache.shutdown()
        try? fm.removeItem(atPath: dir)
    }

    let line: [String: Any] = [
        "tool": "weightfs-bench demand", "prefix": url.description, "objects": objects.count, "bytes": totalBytes,
        "concurrency": options.concurrency, "chunk_size": chunkSize, "rounds": round,
        "idle_chunk_fetch_ms": summary(idleFetch), "idle_chunk_ttfb_ms": summary(idleFetchTTFB),
        "idle_demand_read_ms": summary(idleDemand),
        "demand_read_ms": summary(latency),
        "demand_queue_wait_ms": summary(queueWait), "demand_get_ms": summary(getTime), "demand_get_ttfb_ms": summary(getTTFB),
        "demand_after_first_byte_ms": summary(afterFirstByte),
        "preload_chunk_get_ms": summary(preloadChunkTime),
        "preload_progress_at_read": summary(progressAtRead),
        "preload_MBps_per_round": roundRates, "peak_rss_bytes": peakRSSBytes(),
    ]
    let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}
