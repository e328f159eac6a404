import ObjectStore

/// A queued chunk: the entry's key and the chunk's index.
struct ChunkRef: Hashable, Sendable {
    let key: CacheKey
    let chunk: Int
}

/// A demand chunk whose read's own bytes have arrived and whose rest waits (holding no slot):
/// the entry by identity (an entry evicted and made again is another one) and the chunk.
struct DeferredKey: Hashable, Sendable {
    let entry: ObjectIdentifier
    let chunk: Int
}

/// The chunk cache's scheduling decisions as a value, with no I/O and no clock of its own (the
/// time is passed in): which queued chunk starts next under the fetch-slot limits, and when the
/// deferred rest of a demand chunk may start. `ChunkCache` (the actor) performs what it decides:
/// it owns the entries, the tasks and the continuations.
///
/// Slots: `concurrency` regular slots, plus `demandReserve` that only demand chunks may take
/// (a demand read starts at once even when background work fills every regular slot); no
/// regular slot is handed out while `concurrency` fetched chunks still await their group
/// `fdatasync` (a crash then loses at most `2 × concurrency` chunks).
///
/// Deferred rests: a demand chunk whose read's own part has arrived gives up its slot
/// (`deferRest`); its rest starts when demand reads have paused for `lull` and a regular slot is
/// free (`admitDeferred`), or at once when a reader needs bytes of it (`wantRest`).
struct FetchScheduler {
    let concurrency: Int
    let demandReserve: Int
    let lull: Duration

    /// Fetches holding a slot now (GETs, a verification, a deferred rest once admitted).
    private(set) var running = 0
    /// Fetched chunks whose bytes await their group `fdatasync` and record.
    private(set) var awaitingDurability = 0
    /// Per priority (by raw value): the queue and the position of its head.
    private var queues: [[(ChunkRef)]] = Array(repeating: [], count: FetchPriority.allCases.count)
    private var heads: [Int] = Array(repeating: 0, count: FetchPriority.allCases.count)
    /// Demand chunks whose read's own GET is running, and when the last one started or ended.
    private var urgentRunning = 0
    private var lastUrgent: ContinuousClock.Instant
    /// Rests waiting for their turn, oldest first.
    private(set) var deferred: [DeferredKey] = []
    /// Chunks whose rest a reader asked for before their read's own GET ended.
    private var restWanted: Set<DeferredKey> = []

    init(concurrency: Int, demandReserve: Int, lull: Duration, now: ContinuousClock.Instant) {
        self.concurrency = concurrency
        self.demandReserve = demandReserve
        self.lull = lull
        lastUrgent = now
    }

    // MARK: queues and slots

    /// Queues `ref` at `priority` (the caller has checked it is not queued at least as high).
    mutating func enqueue(_ ref: ChunkRef, _ priority: FetchPriority) {
        queues[priority.rawValue].append(ref)
    }

    /// The most urgent queued chunk that a free slot may start, now holding that slot; queue
    /// entries `isCurrent` rejects (raised to another priority, fetched, evicted) are dropped.
    mutating func next(isCurrent: (ChunkRef, FetchPriority) -> Bool) -> (ChunkRef, FetchPriority)? {
        let regular = running < concurrency && awaitingDurability < concurrency
        guard regular || running < concurrency + demandReserve else { return nil }
        for p in FetchPriority.allCases.reversed() where regular || p == .demand {
            var head = heads[p.rawValue]
            defer { heads[p.rawValue] = head; compact(p) }
            while head < queues[p.rawValue].count {
                let ref = queues[p.rawValue][head]
                head += 1
                if isCurrent(ref, p) {
                    running += 1
                    return (ref, p)
                }
            }
        }
        return nil
    }

    /// Drops the consumed head of a long queue, so memory follows what is still queued.
    private mutating func compact(_ p: FetchPriority) {
        let head = heads[p.rawValue], count = queues[p.rawValue].count
        guard head > 4096, head * 2 > count else { return }
        queues[p.rawValue].removeFirst(head)
        heads[p.rawValue] = 0
    }

    /// Queue entries not yet consumed (some may be stale), for tests and memory bounds.
    var queuedCount: Int { zip(queues, heads).reduce(0) { $0 + $1.0.count - $1.1 } }

    /// A fetch holding a slot ended (fetched, failed, verified or abandoned).
    mutating func released() { running -= 1 }

    /// A fetched chunk awaits its group `fdatasync`; `recorded` when it is durable.
    mutating func awaitingSync() { awaitingDurability += 1 }
    mutating func recorded() { awaitingDurability -= 1 }

    // MARK: deferred rests

    mutating func urgentStarted(now: ContinuousClock.Instant) {
        urgentRunning += 1
        lastUrgent = now
    }

    mutating func urgentEnded(now: ContinuousClock.Instant) {
        urgentRunning -= 1
        lastUrgent = now
    }

    /// A demand chunk's read's own part arrived: returns true if its rest goes on at once (a
    /// reader asked for it meanwhile; the slot is kept), else its slot is given up and the rest
    /// waits for `admitDeferred` or `wantRest`.
    mutating func deferRest(_ key: DeferredKey) -> Bool {
        if restWanted.remove(key) != nil { return true }
        running -= 1
        deferred.append(key)
        return false
    }

    /// A reader needs bytes of `key`'s rest: returns true when the rest was deferred and may
    /// start now (it holds a slot again); otherwise, while its read's own GET runs
    /// (`fetching`), the rest will go on without waiting when that GET ends.
    mutating func wantRest(_ key: DeferredKey, fetching: Bool) -> Bool {
        guard let i = deferred.firstIndex(of: key) else {
            if fetching { restWanted.insert(key) }
            return false
        }
        deferred.remove(at: i)
        running += 1
        return true
    }

    /// The chunk's fetch ended: a request for its rest is moot.
    mutating func forgetRest(_ key: DeferredKey) { restWanted.remove(key) }

    /// The deferred rests that may start now (each now holding a slot): demand reads have paused
    /// for `lull` and regular slots are free. `lookAgain` is when that may change, if any wait.
    mutating func admitDeferred(now: ContinuousClock.Instant) -> (start: [DeferredKey], lookAgain: ContinuousClock.Instant?) {
        guard !deferred.isEmpty else { return ([], nil) }
        let lullStart = lastUrgent + lull
        guard urgentRunning == 0, now >= lullStart else {
            return ([], urgentRunning == 0 ? lullStart : now + lull)
        }
        var start: [DeferredKey] = []
        while !deferred.isEmpty, running < concurrency, awaitingDurability < concurrency {
            running += 1
            start.append(deferred.removeFirst())
        }
        return (start, nil)
    }

    /// Rests of entries `isLive` rejects (evicted) stop waiting: returned to be let go (each
    /// holding a slot, which its task gives back when it ends as abandoned).
    mutating func releaseDeferred(keeping isLive: (ObjectIdentifier) -> Bool) -> [DeferredKey] {
        var released: [DeferredKey] = []
        deferred.removeAll { key in
            guard !isLive(key.entry) else { return false }
            running += 1
            released.append(key)
            return true
        }
        restWanted = restWanted.filter { isLive($0.entry) }
        return released
    }
}
