import CCurl
import Foundation
import Synchronization

/// Runs the process's HTTP transfers on a few libcurl event loops, each a multi handle driven
/// by its own thread; a transfer goes to the loop with the fewest in flight.
///
/// Why loops: a multi handle owns a connection cache, so keep-alive connections are reused
/// across requests, and N parallel transfers cost one thread, not N. Why more than one: a
/// response body streams to its sink on its loop's thread (CRC32C, block writes), so one loop
/// caps a process at one core's worth of bytes; on a 16-core node one loop moved half of what
/// Run:ai Model Streamer does (docs/BENCHMARKS.md). The count is `WEIGHTFS_CURL_THREADS`, by
/// default half the cores, at least 1 and at most 8. A transfer's callbacks all run on its
/// loop's thread, one after another; sinks of different transfers may run at the same time.
///
/// Urgent transfers (`HTTPRequest.urgentBytes`) hold the others to the same endpoint on every
/// loop: while one has not yet received its urgent bytes, every other transfer to its endpoint
/// stops reading its socket (`curl_easy_pause`), so a reader blocked on a few bytes does not
/// share the link and the CPU with a preload's many streams.
public final class CurlEngine: Sendable {
    public static let shared = CurlEngine(loops: CurlEngine.defaultLoopCount())

    private let loops: [CurlLoop]

    /// `WEIGHTFS_CURL_THREADS` (1…64), else half the cores, between 1 and 8.
    static func defaultLoopCount() -> Int {
        if let text = ProcessInfo.processInfo.environment["WEIGHTFS_CURL_THREADS"], let n = Int(text), n >= 1 { return min(n, 64) }
        return max(1, min(8, ProcessInfo.processInfo.activeProcessorCount / 2))
    }

    init(loops count: Int) {
        _ = wfs_curl_global_init()
        let board = UrgencyBoard()
        let loops = (0..<max(1, min(count, 64))).map { CurlLoop(index: $0, board: board) }
        board.loops = loops
        self.loops = loops
        for loop in loops { loop.start() }
    }

    /// How many event loops (threads) carry transfers.
    public var loopCount: Int { loops.count }

    /// Performs `request` on the least busy loop. `onHead` sees the response head before any
    /// body byte of a 2xx response and may reject it by throwing; `sink` then receives the body
    /// in order. Bodies of non-2xx responses are collected (up to 64 KiB) for error messages.
    func perform(_ request: HTTPRequest, onHead: (@Sendable (HTTPResponseHead) throws -> Void)?, sink: BodySink) async throws -> TransferOutcome {
        var chosen = loops[0]
        for loop in loops.dropFirst() where loop.load < chosen.load { chosen = loop }
        return try await chosen.perform(request, onHead: onHead, sink: sink)
    }
}

/// Which loops have an urgent transfer holding the others, and for which endpoints (scheme,
/// host and port: the link they share), so every loop pauses the transfers to those endpoints
/// while any loop's urgent bytes are awaited. Transfers to other endpoints go on (in one process
/// that is another store's link; in the tests, another test's emulator proxy).
final class UrgencyBoard: Sendable {
    /// One bit per loop that holds some endpoint: the fast path when nobody holds anything.
    let holders = Atomic<UInt64>(0)
    /// Per loop, the endpoints its urgent transfers hold.
    private let held = Mutex<[Int: Set<String>]>([:])
    /// Set once, before any loop starts.
    nonisolated(unsafe) var loops: [CurlLoop] = []

    /// Records the endpoints `loop` holds; returns every endpoint held by any loop. When that
    /// changes, the other loops are woken to pause or resume their transfers now.
    func update(loop index: Int, holds endpoints: Set<String>) -> Set<String> {
        let bit = UInt64(1) << UInt64(index)
        if endpoints.isEmpty && holders.load(ordering: .acquiring) == 0 { return [] }
        let (before, after) = held.withLock { table -> (Set<String>, Set<String>) in
            let before = table.values.reduce(into: Set<String>()) { $0.formUnion($1) }
            table[index] = endpoints.isEmpty ? nil : endpoints
            // The fast path's bit changes with the table, under the same lock.
            if endpoints.isEmpty { holders.bitwiseAnd(~bit, ordering: .releasing) } else { holders.bitwiseOr(bit, ordering: .releasing) }
            let after = table.values.reduce(into: Set<String>()) { $0.formUnion($1) }
            return (before, after)
        }
        if before != after {
            for loop in loops where loop.index != index { loop.wake() }
        }
        return after
    }
}

/// One libcurl multi handle and the thread that drives it.
final class CurlLoop: Sendable {
    let index: Int
    private let board: UrgencyBoard
    /// The multi handle is only touched on the loop thread (after init). C handle, hence the wrapper.
    private let multi: MultiHandle
    private let inbox = Mutex<[Op]>([])
    private let inFlight = Atomic<Int>(0)

    private enum Op {
        case add(Transfer)
        case cancel(Transfer)
    }

    init(index: Int, board: UrgencyBoard) {
        self.index = index
        self.board = board
        multi = MultiHandle(curl_multi_init())
        _ = wfs_multi_set_long(multi.raw, CURLMOPT_MAXCONNECTS, 256)
    }

    func start() {
        let thread = Thread { [self] in self.loop() }
        thread.name = "weightfs-curl-\(index)"
        thread.start()
    }

    /// Transfers submitted to this loop and not yet finished.
    var load: Int { inFlight.load(ordering: .relaxed) }

    func wake() { curl_multi_wakeup(multi.raw) }

    func perform(_ request: HTTPRequest, onHead: (@Sendable (HTTPResponseHead) throws -> Void)?, sink: BodySink) async throws -> TransferOutcome {
        let transfer = try Transfer(request: request, onHead: onHead, sink: sink)
        inFlight.wrappingAdd(1, ordering: .relaxed)
        defer { inFlight.wrappingSubtract(1, ordering: .relaxed) }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<TransferOutcome, Error>) in
                transfer.setContinuation(cont)
                submit(.add(transfer))
            }
        } onCancel: {
            submit(.cancel(transfer))
        }
    }

    private func submit(_ op: Op) {
        inbox.withLock { $0.append(op) }
        curl_multi_wakeup(multi.raw)
    }

    private func loop() {
        var active: [ObjectIdentifier: Transfer] = [:]
        var running: Int32 = 0
        while true {
            let ops = inbox.withLock { ops -> [Op] in
                let taken = ops
                ops.removeAll(keepingCapacity: true)
                return taken
            }
            for op in ops {
                switch op {
                case .add(let t):
                    if t.isCancelled {
                        t.finish(Result<TransferOutcome, Error>.failure(CancellationError()))
                        continue
                    }
                    let rc = curl_multi_add_handle(multi.raw, t.easy)
                    guard rc == CURLM_OK else {
                        let message = String(cString: curl_multi_strerror(rc))
                        t.finish(.failure(TransportError(code: Int(rc.rawValue), message: "curl_multi_add_handle: \(message)", bytesDelivered: 0)))
                        continue
                    }
                    active[ObjectIdentifier(t)] = t
                case .cancel(let t):
                    t.markCancelled()
                    if active.removeValue(forKey: ObjectIdentifier(t)) != nil {
                        curl_multi_remove_handle(multi.raw, t.easy)
                        t.finish(Result<TransferOutcome, Error>.failure(CancellationError()))
                    }
                }
            }
            curl_multi_perform(multi.raw, &running)
            var left: Int32 = 0
            while let msg = curl_multi_info_read(multi.raw, &left) {
                guard msg.pointee.msg == CURLMSG_DONE, let easy = msg.pointee.easy_handle else { continue }
                let code = msg.pointee.data.result
                var priv: UnsafeMutableRawPointer? = nil
                _ = wfs_easy_get_pointer(easy, CURLINFO_PRIVATE, &priv)
                curl_multi_remove_handle(multi.raw, easy)
                guard let priv else { continue }
                let t = Unmanaged<Transfer>.fromOpaque(priv).takeUnretainedValue()
                active.removeValue(forKey: ObjectIdentifier(t))
                t.complete(code: code)
            }
            let hold = applyUrgency(active)
            // While urgent bytes are awaited (here or on another loop), wake often: a held
            // transfer must be released when the urgent one's time is up even if no socket is ready.
            let holding = hold || active.values.contains { $0.isPausedByUrgency }
            curl_multi_poll(multi.raw, nil, 0, holding ? 20 : 1000, nil)
        }
    }

    /// Pauses every non-urgent transfer to an endpoint for which some urgent transfer on any loop
    /// still awaits its urgent bytes (within its time bound), and resumes them after. Returns
    /// whether any endpoint is held.
    private func applyUrgency(_ active: [ObjectIdentifier: Transfer]) -> Bool {
        let now = ContinuousClock.now
        var mine = Set<String>()
        for t in active.values where t.holdsOthers(now: now) { mine.insert(t.endpoint) }
        let held = board.update(loop: index, holds: mine)
        for t in active.values where !t.isUrgent {
            let hold = held.contains(t.endpoint)
            guard t.isPausedByUrgency != hold else { continue }
            if curl_easy_pause(t.easy, hold ? CURLPAUSE_RECV : CURLPAUSE_CONT) == CURLE_OK || !hold {
                t.isPausedByUrgency = hold
            }
        }
        return !held.isEmpty
    }
}


/// The multi handle, shared with the loop thread; all calls but `curl_multi_wakeup` happen there.
private struct MultiHandle: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
    init(_ raw: UnsafeMutableRawPointer?) {
        guard let raw else { fatalError("curl_multi_init failed: out of memory") }
        self.raw = raw
    }
}

/// Where a response body goes.
enum BodySink: Sendable {
    /// Collect up to `limit` bytes in memory.
    case buffer(limit: Int)
    /// Hand 2xx body bytes to the sink as they arrive.
    case stream(ByteSink)
}

/// What came back, before interpretation by a store.
struct TransferOutcome: Sendable {
    var head: HTTPResponseHead
    /// The collected body (buffer mode) or the error body of a non-2xx response (stream mode).
    var body: Data
    var bytesDelivered: Int64
}

/// Errors a callback raised inside a transfer: they abort it and surface as themselves.
struct CallbackAbort: Error {
    let error: Error
}

/// One request in flight. Mutable state is touched only on the loop thread (callbacks and
/// completion run there); `cancelled` is the one field other threads write, behind a lock.
final class Transfer: @unchecked Sendable {
    let easy: UnsafeMutableRawPointer
    private var headerList: UnsafeMutablePointer<curl_slist>? = nil
    private let onHead: (@Sendable (HTTPResponseHead) throws -> Void)?
    private let sink: BodySink
    private var continuation: CheckedContinuation<TransferOutcome, Error>? = nil
    private let cancelled = Mutex(false)
    private var uploadFD: Int32 = -1
    private var uploadData: Data? = nil
    private var uploadOffset = 0

    private var status = 0
    private var headers: [String: String] = [:]
    private var headChecked = false
    private var body = Data()
    private var delivered: Int64 = 0
    private var abortError: Error? = nil
    private let url: String
    /// The URL's scheme, host and port: urgency holds the transfers that share it.
    let endpoint: String
    /// Bytes of body this transfer must receive before others may resume (0: not urgent).
    private let urgentBytes: Int64
    private let urgentHold: Duration
    private let started = ContinuousClock.now
    /// Set by the loop thread when it paused this transfer for an urgent one.
    var isPausedByUrgency = false
    var isUrgent: Bool { urgentBytes > 0 }

    /// Whether this urgent transfer still holds the others (loop thread only).
    func holdsOthers(now: ContinuousClock.Instant) -> Bool {
        urgentBytes > 0 && continuation != nil && delivered < urgentBytes && now - started < urgentHold
    }

    init(request: HTTPRequest, onHead: (@Sendable (HTTPResponseHead) throws -> Void)?, sink: BodySink) throws {
        guard let easy = curl_easy_init() else { throw TransportError(code: -1, message: "curl_easy_init failed", bytesDelivered: 0) }
        self.easy = easy
        self.onHead = onHead
        self.sink = sink
        self.url = request.url
        self.endpoint = Self.endpoint(of: request.url)
        self.urgentBytes = request.urgentBytes
        self.urgentHold = request.urgentHold
        try configure(request)
    }

    deinit {
        curl_easy_cleanup(easy)
        if let headerList { curl_slist_free_all(headerList) }
        if uploadFD >= 0 { close(uploadFD) }
    }

    /// "http://127.0.0.1:8080" of "http://127.0.0.1:8080/storage/v1/…".
    static func endpoint(of url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        return String(url[..<(rest.firstIndex(of: "/") ?? url.endIndex)])
    }

    var isCancelled: Bool { cancelled.withLock { $0 } }
    func markCancelled() { cancelled.withLock { $0 = true } }

    func setContinuation(_ c: CheckedContinuation<TransferOutcome, Error>) { continuation = c }

    private func configure(_ r: HTTPRequest) throws {
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = wfs_easy_set_string(easy, CURLOPT_URL, r.url)
        _ = wfs_easy_set_pointer(easy, CURLOPT_PRIVATE, me)
        _ = wfs_easy_set_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = wfs_easy_set_long(easy, CURLOPT_HTTP_VERSION, Int(r.httpVersion == .http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1))
        _ = wfs_easy_set_long(easy, CURLOPT_BUFFERSIZE, 512 * 1024)
        _ = wfs_easy_set_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        _ = wfs_easy_set_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(r.connectTimeout.milliseconds))
        _ = wfs_easy_set_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1)
        _ = wfs_easy_set_long(easy, CURLOPT_LOW_SPEED_TIME, max(1, Int(r.stallTimeout.milliseconds / 1000)))
        if let total = r.totalTimeout { _ = wfs_easy_set_long(easy, CURLOPT_TIMEOUT_MS, Int(total.milliseconds)) }
        _ = wfs_easy_set_data_cb(easy, CURLOPT_WRITEFUNCTION, transferWrite)
        _ = wfs_easy_set_pointer(easy, CURLOPT_WRITEDATA, me)
        _ = wfs_easy_set_data_cb(easy, CURLOPT_HEADERFUNCTION, transferHeader)
        _ = wfs_easy_set_pointer(easy, CURLOPT_HEADERDATA, me)

        var list: UnsafeMutablePointer<curl_slist>? = nil
        for (name, value) in r.headers { list = curl_slist_append(list, "\(name): \(value)") }
        list = curl_slist_append(list, "Expect:")  // no 100-continue round trip
        headerList = list
        _ = wfs_easy_set_slist(easy, CURLOPT_HTTPHEADER, list)

        switch r.method {
        case "GET": break
        case "HEAD": _ = wfs_easy_set_long(easy, CURLOPT_NOBODY, 1)
        case "POST": _ = wfs_easy_set_long(easy, CURLOPT_POST, 1)
        default: _ = wfs_easy_set_string(easy, CURLOPT_CUSTOMREQUEST, r.method)
        }
        switch r.body {
        case .none:
            if r.method == "POST" || r.method == "PUT" { _ = wfs_easy_set_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, 0) }
        case .data(let d):
            uploadData = d
            try setUpload(size: Int64(d.count), method: r.method)
        case .file(let path):
            uploadFD = open(path, O_RDONLY | O_CLOEXEC)
            guard uploadFD >= 0 else { throw StoreError.local(path: path, errno: errno, operation: "open for upload") }
            var st = Glibc.stat()
            fstat(uploadFD, &st)
            try setUpload(size: Int64(st.st_size), method: r.method)
        }
    }

    private func setUpload(size: Int64, method: String) throws {
        if method == "POST" {
            _ = wfs_easy_set_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(size))
        } else {
            _ = wfs_easy_set_long(easy, CURLOPT_UPLOAD, 1)
            _ = wfs_easy_set_off(easy, CURLOPT_INFILESIZE_LARGE, curl_off_t(size))
        }
        _ = wfs_easy_set_data_cb(easy, CURLOPT_READFUNCTION, transferRead)
        _ = wfs_easy_set_pointer(easy, CURLOPT_READDATA, Unmanaged.passUnretained(self).toOpaque())
    }

    // MARK: loop-thread callbacks

    fileprivate func readUpload(into buf: UnsafeMutableRawBufferPointer) -> Int {
        if let d = uploadData {
            let n = min(buf.count, d.count - uploadOffset)
            d.withUnsafeBytes { src in
                buf.baseAddress!.copyMemory(from: src.baseAddress! + uploadOffset, byteCount: n)
            }
            uploadOffset += n
            return n
        }
        let n = read(uploadFD, buf.baseAddress, buf.count)
        return n < 0 ? Int(CURL_READFUNC_ABORT) : n
    }

    fileprivate func header(_ line: UnsafeRawBufferPointer) {
        let s = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if s.hasPrefix("HTTP/") {
            // A new response (after 100-continue or a redirect) starts over.
            let parts = s.split(separator: " ", maxSplits: 2)
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            headers = [:]
            return
        }
        guard let colon = s.firstIndex(of: ":") else { return }
        let name = s[..<colon].lowercased()
        let value = s[s.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        if let old = headers[name] { headers[name] = old + "," + value } else { headers[name] = value }
    }

    private var head: HTTPResponseHead { HTTPResponseHead(status: status, headers: headers) }

    /// Runs `onHead` once for a 2xx response; false aborts the transfer.
    private func checkHead() -> Bool {
        if headChecked { return abortError == nil }
        headChecked = true
        if (200..<300).contains(status), let onHead {
            do { try onHead(head) } catch {
                abortError = error
                return false
            }
        }
        return true
    }

    fileprivate func receive(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard checkHead() else { return 0 }
        switch sink {
        case .buffer(let limit):
            guard body.count + bytes.count <= limit else {
                abortError = TransportError(code: -2, message: "response body larger than \(limit) bytes", bytesDelivered: 0)
                return 0
            }
            body.append(contentsOf: bytes)
        case .stream(let sink):
            if (200..<300).contains(status) {
                do { try sink(bytes) } catch {
                    abortError = error
                    return 0
                }
                delivered += Int64(bytes.count)
            } else if body.count < 64 * 1024 {
                body.append(contentsOf: bytes.prefix(64 * 1024 - body.count))
            }
        }
        return bytes.count
    }

    /// The transfer left the multi handle with `code`.
    func complete(code: CURLcode) {
        if let abortError {
            finish(.failure(CallbackAbort(error: abortError)))
            return
        }
        if code == CURLE_OK {
            var responseCode = 0
            _ = wfs_easy_get_long(easy, CURLINFO_RESPONSE_CODE, &responseCode)
            if status == 0 { status = responseCode }
            guard checkHead() else {
                finish(.failure(CallbackAbort(error: abortError!)))
                return
            }
            finish(.success(TransferOutcome(head: head, body: body, bytesDelivered: delivered)))
        } else {
            let message = String(cString: curl_easy_strerror(code))
            finish(.failure(TransportError(code: Int(code.rawValue), message: message, bytesDelivered: delivered)))
        }
    }

    func finish(_ result: Result<TransferOutcome, Error>) {
        guard let c = continuation else { return }
        continuation = nil
        c.resume(with: result)
    }
}

private let transferWrite: wfs_curl_data_cb = { ptr, size, nmemb, userdata in
    let t = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
    return t.receive(UnsafeRawBufferPointer(start: ptr, count: size * nmemb))
}

private let transferHeader: wfs_curl_data_cb = { ptr, size, nmemb, userdata in
    let t = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
    t.header(UnsafeRawBufferPointer(start: ptr, count: size * nmemb))
    return size * nmemb
}

private let transferRead: wfs_curl_data_cb = { ptr, size, nmemb, userdata in
    let t = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
    return t.readUpload(into: UnsafeMutableRawBufferPointer(start: ptr, count: size * nmemb))
}

