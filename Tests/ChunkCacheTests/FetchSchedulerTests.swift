import ObjectStore
import Testing

@testable import ChunkCache

/// The cache's scheduling decisions, without I/O and with the clock passed in.
struct FetchSchedulerTests {
    let t0 = ContinuousClock.now
    static let key = CacheKey(store: "gs://b", name: "m/model.safetensors", generation: Generation(1))

    func ref(_ chunk: Int) -> ChunkRef { ChunkRef(key: Self.key, chunk: chunk) }

    /// A queue model: which priority each chunk is queued at now (what the actor's entry states say).
    final class Queued {
        var at: [Int: FetchPriority] = [:]
        func isCurrent(_ r: ChunkRef, _ p: FetchPriority) -> Bool { at[r.chunk] == p }
    }

    func enqueue(_ s: inout FetchScheduler, _ q: Queued, _ chunk: Int, _ p: FetchPriority) {
        q.at[chunk] = p
        s.enqueue(ref(chunk), p)
    }

    func next(_ s: inout FetchScheduler, _ q: Queued) -> (Int, FetchPriority)? {
        guard let (r, p) = s.next(isCurrent: q.isCurrent) else { return nil }
        q.at[r.chunk] = nil  // in flight now
        return (r.chunk, p)
    }

    func expectNext(_ s: inout FetchScheduler, _ q: Queued, _ expected: (Int, FetchPriority)?, _ comment: Comment? = nil,
                    sourceLocation: SourceLocation = #_sourceLocation) {
        let got = next(&s, q)
        #expect(got?.0 == expected?.0 && got?.1 == expected?.1, "got \(String(describing: got))", sourceLocation: sourceLocation)
    }

    @Test func demandGoesFirstAndHasSlotsOfItsOwn() {
        var s = FetchScheduler(concurrency: 2, demandReserve: 1, lull: .milliseconds(250), now: t0)
        let q = Queued()
        for c in 0..<3 { enqueue(&s, q, c, .plan) }
        enqueue(&s, q, 10, .preload)
        enqueue(&s, q, 7, .demand)
        expectNext(&s, q, (7, .demand))
        expectNext(&s, q, (0, .plan))
        expectNext(&s, q, nil, "both regular slots are taken")
        enqueue(&s, q, 8, .demand)
        expectNext(&s, q, (8, .demand), "a demand chunk takes the reserved slot")
        enqueue(&s, q, 9, .demand)
        expectNext(&s, q, nil, "the reserve is used up too")
        #expect(s.running == 3)
        s.released()
        s.released()
        expectNext(&s, q, (9, .demand))
        s.released()
        expectNext(&s, q, (1, .plan))
        s.released()
        expectNext(&s, q, (2, .plan))
        s.released()
        expectNext(&s, q, (10, .preload), "background work last")
    }

    @Test func noRegularSlotWhileSyncsLagBehind() {
        var s = FetchScheduler(concurrency: 2, demandReserve: 4, lull: .milliseconds(250), now: t0)
        let q = Queued()
        enqueue(&s, q, 0, .readahead)
        enqueue(&s, q, 1, .demand)
        s.awaitingSync()
        s.awaitingSync()
        expectNext(&s, q, (1, .demand), "demand reads still start")
        expectNext(&s, q, nil, "2 chunks await their fdatasync: a crash must lose at most 2 x concurrency")
        s.recorded()
        expectNext(&s, q, (0, .readahead))
    }

    @Test func raisedOrFetchedQueueEntriesAreSkipped() {
        var s = FetchScheduler(concurrency: 4, demandReserve: 0, lull: .milliseconds(250), now: t0)
        let q = Queued()
        enqueue(&s, q, 0, .preload)
        enqueue(&s, q, 1, .preload)
        enqueue(&s, q, 0, .demand)  // raised: its preload entry is stale
        q.at[1] = nil  // fetched by someone else meanwhile
        expectNext(&s, q, (0, .demand))
        expectNext(&s, q, nil)
        #expect(s.running == 1)
    }

    @Test func consumedQueueEntriesAreDropped() {
        var s = FetchScheduler(concurrency: 1, demandReserve: 0, lull: .milliseconds(250), now: t0)
        let q = Queued()
        for c in 0..<10_000 { enqueue(&s, q, c, .preload) }
        for c in 0..<9_000 {
            expectNext(&s, q, (c, .preload))
            s.released()
        }
        #expect(s.queuedCount == 1_000)
    }

    @Test func aDeferredRestWaitsForALullInDemandReads() {
        var s = FetchScheduler(concurrency: 2, demandReserve: 2, lull: .milliseconds(250), now: t0)
        let q = Queued()
        enqueue(&s, q, 3, .demand)
        _ = next(&s, q)
        s.urgentStarted(now: t0)
        s.urgentEnded(now: t0 + .milliseconds(10))
        let k = DeferredKey(entry: ObjectIdentifier(q), chunk: 3)
        let r1 = s.deferRest(k)
        #expect(!r1, "no reader wants the rest: it waits")
        #expect(s.running == 0, "and holds no slot meanwhile")
        let early = s.admitDeferred(now: t0 + .milliseconds(100))
        #expect(early.start.isEmpty && early.lookAgain == t0 + .milliseconds(260))
        // Another demand read starts: the lull begins again after it.
        s.urgentStarted(now: t0 + .milliseconds(200))
        let r2 = s.admitDeferred(now: t0 + .milliseconds(300))
        #expect(r2.start.isEmpty)
        s.urgentEnded(now: t0 + .milliseconds(320))
        let r3 = s.admitDeferred(now: t0 + .milliseconds(500))
        #expect(r3.start.isEmpty)
        let late = s.admitDeferred(now: t0 + .milliseconds(570))
        #expect(late.start == [k] && late.lookAgain == nil)
        #expect(s.running == 1)
    }

    @Test func aDeferredRestWaitsForARegularSlot() {
        var s = FetchScheduler(concurrency: 1, demandReserve: 2, lull: .milliseconds(250), now: t0)
        let q = Queued()
        let k = DeferredKey(entry: ObjectIdentifier(q), chunk: 0)
        enqueue(&s, q, 0, .demand)
        enqueue(&s, q, 1, .plan)
        _ = next(&s, q)
        let r4 = s.deferRest(k)
        #expect(!r4)
        expectNext(&s, q, (1, .plan))
        let r5 = s.admitDeferred(now: t0 + .seconds(1))
        #expect(r5.start.isEmpty, "the one regular slot is busy")
        s.released()
        let r6 = s.admitDeferred(now: t0 + .seconds(1))
        #expect(r6.start == [k])
    }

    @Test func aReaderOfTheRestStartsItAtOnce() {
        var s = FetchScheduler(concurrency: 2, demandReserve: 2, lull: .milliseconds(250), now: t0)
        let q = Queued()
        let a = DeferredKey(entry: ObjectIdentifier(q), chunk: 0), b = DeferredKey(entry: ObjectIdentifier(q), chunk: 1)
        enqueue(&s, q, 0, .demand)
        enqueue(&s, q, 1, .demand)
        _ = next(&s, q)
        _ = next(&s, q)
        // Asked for while the read's own GET still runs: the rest follows it without waiting.
        let r7 = s.wantRest(a, fetching: true)
        #expect(!r7)
        let r8 = s.deferRest(a)
        #expect(r8, "goes on at once, keeping its slot")
        #expect(s.running == 2)
        // Asked for once deferred: it starts now, taking a slot again.
        let r9 = s.deferRest(b)
        #expect(!r9)
        #expect(s.running == 1)
        let r10 = s.wantRest(b, fetching: true)
        #expect(r10)
        #expect(s.running == 2 && s.deferred.isEmpty)
        // A request for a chunk whose fetch already ended changes nothing.
        let moot = s.wantRest(DeferredKey(entry: ObjectIdentifier(q), chunk: 9), fetching: false)
        #expect(!moot)
    }

    @Test func restsOfEvictedEntriesAreLetGo() {
        var s = FetchScheduler(concurrency: 2, demandReserve: 2, lull: .milliseconds(250), now: t0)
        let kept = Queued(), evicted = Queued()
        let a = DeferredKey(entry: ObjectIdentifier(kept), chunk: 0), b = DeferredKey(entry: ObjectIdentifier(evicted), chunk: 0)
        enqueue(&s, kept, 0, .demand)
        _ = next(&s, kept)
        enqueue(&s, evicted, 0, .demand)
        _ = next(&s, evicted)
        s.urgentStarted(now: t0)
        let r11 = s.deferRest(a)
        let r12 = s.deferRest(b)
        #expect(!r11 && !r12)
        let early = s.wantRest(DeferredKey(entry: ObjectIdentifier(evicted), chunk: 5), fetching: true)
        #expect(!early)
        let released = s.releaseDeferred(keeping: { $0 == ObjectIdentifier(kept) })
        #expect(released == [b])
        #expect(s.deferred == [a])
        #expect(s.running == 1, "the released rest holds a slot until its task ends")
    }
}
