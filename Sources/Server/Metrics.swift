import Engine
import Foundation
import Prometheus
import Synchronization

/// `/metrics` with vLLM's names and types (label `model_name`), from swift-prometheus's
/// registry: gauges and counters are brought up to date from the engine at each scrape,
/// histograms are recorded as requests go.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let labels: [(String, String)]
    private let running: Gauge, waiting: Gauge, kvUsage: Gauge
    private let promptTokens: Counter, generationTokens: Counter, preemptions: Counter
    private let prefixQueries: Counter, prefixHits: Counter
    private let success: [FinishReason: Counter]
    let ttft: DurationHistogram, interToken: DurationHistogram, e2e: DurationHistogram, queueTime: DurationHistogram
    /// weightfs's own: whether the model's weights are all local, and bytes fetched.
    private let weightsReady: Gauge
    private let kvWaste: Gauge
    private let bytesFetched: Counter, bytesFromCache: Gauge, fetchRate: Gauge
    /// The engine's steps by kind (`StepStatistics`): count, tokens, sequences, forward and loop seconds.
    private let stepCounters: [(kind: String, steps: Counter, tokens: Counter, sequences: Counter, forward: Counter, loop: Counter)]
    private let last = Mutex<(counters: SchedulerCounters, fetched: Int64, steps: StepStatistics)>((SchedulerCounters(), 0, StepStatistics()))

    init(modelName: String) {
        labels = [("model_name", modelName)]
        running = registry.makeGauge(name: "vllm:num_requests_running", labels: labels, help: "Number of requests in model execution batches.")
        waiting = registry.makeGauge(name: "vllm:num_requests_waiting", labels: labels, help: "Number of requests waiting to be processed.")
        kvUsage = registry.makeGauge(name: "vllm:kv_cache_usage_perc", labels: labels, help: "KV-cache usage. 1 means 100 percent usage.")
        promptTokens = registry.makeCounter(name: "vllm:prompt_tokens_total", labels: labels, help: "Number of prefill tokens processed.")
        generationTokens = registry.makeCounter(name: "vllm:generation_tokens_total", labels: labels, help: "Number of generation tokens processed.")
        preemptions = registry.makeCounter(name: "vllm:num_preemptions_total", labels: labels, help: "Cumulative number of preemption from the engine.")
        prefixQueries = registry.makeCounter(name: "vllm:prefix_cache_queries_total", labels: labels, help: "Prefix cache queries, in terms of number of queried tokens.")
        prefixHits = registry.makeCounter(name: "vllm:prefix_cache_hits_total", labels: labels, help: "Prefix cache hits, in terms of number of cached tokens.")
        var success: [FinishReason: Counter] = [:]
        for reason in [FinishReason.stop, .length, .abort] {
            success[reason] = registry.makeCounter(name: "vllm:request_success_total", labels: labels + [("finished_reason", reason.rawValue)],
                                                   help: "Count of successfully processed requests.")
        }
        self.success = success
        let latency: [Duration] = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560].map { .milliseconds(Int64($0 * 1000)) }
        ttft = registry.makeDurationHistogram(name: "vllm:time_to_first_token_seconds", labels: labels, buckets: latency,
                                              help: "Histogram of time to first token in seconds.")
        interToken = registry.makeDurationHistogram(name: "vllm:inter_token_latency_seconds", labels: labels, buckets: latency,
                                                    help: "Histogram of inter-token latency in seconds.")
        e2e = registry.makeDurationHistogram(name: "vllm:e2e_request_latency_seconds", labels: labels, buckets: latency,
                                             help: "Histogram of e2e request latency in seconds.")
        queueTime = registry.makeDurationHistogram(name: "vllm:request_queue_time_seconds", labels: labels, buckets: latency,
                                                   help: "Histogram of time spent in WAITING phase for request.")
        kvWaste = registry.makeGauge(name: "weightfs_kv_cache_waste_perc", labels: labels,
                                     help: "KV slots of running requests' blocks that hold no token, as a share of their slots.")
        weightsReady = registry.makeGauge(name: "weightfs_weights_ready", labels: labels, help: "1 once every weight of the model is local.")
        bytesFetched = registry.makeCounter(name: "weightfs_bytes_fetched_total", labels: labels, help: "Bytes of the model fetched from the store by this process.")
        bytesFromCache = registry.makeGauge(name: "weightfs_cache_hit_bytes", labels: labels,
                                            help: "Bytes of the model's shards already in the local cache at start (not fetched again).")
        fetchRate = registry.makeGauge(name: "weightfs_fetch_bytes_per_second", labels: labels,
                                       help: "Bytes fetched per second from the start of the load until every weight arrived (or now).")
        let registry = registry, labels = labels
        stepCounters = ["decode", "mixed"].map { kind in
            let l = labels + [("kind", kind)]
            return (kind,
                    registry.makeCounter(name: "weightfs_engine_steps_total", labels: l,
                                         help: "Engine steps run: decode (one new token per sequence) or mixed (with prompt or recomputed tokens)."),
                    registry.makeCounter(name: "weightfs_engine_step_tokens_total", labels: l, help: "Tokens computed by engine steps."),
                    registry.makeCounter(name: "weightfs_engine_step_sequences_total", labels: l, help: "Sequences carried by engine steps."),
                    registry.makeCounter(name: "weightfs_engine_forward_seconds_total", labels: l, help: "Seconds of engine steps spent in the forward pass."),
                    registry.makeCounter(name: "weightfs_engine_step_seconds_total", labels: l,
                                         help: "Seconds of engine steps in all (scheduling, forward pass, sampling, streaming)."))
        }
    }

    /// Brings gauges and counters up to date, then renders the text format.
    func render(engine: EngineSnapshot, weightsAreReady: Bool, weights: WeightsSnapshot) -> String {
        let fetched = weights.bytesFetched
        running.set(to: Double(engine.running))
        waiting.set(to: Double(engine.waiting))
        kvUsage.set(to: engine.kvUsage)
        kvWaste.set(to: engine.kvWaste)
        weightsReady.set(to: weightsAreReady ? 1 : 0)
        bytesFromCache.set(to: Double(weights.bytesFromCache))
        fetchRate.set(to: weights.fetchBytesPerSecond)
        for (name, loaded) in weights.groups {
            // The registry hands back the same gauge for the same name and labels.
            registry.makeGauge(name: "weightfs_weight_group_loaded", labels: labels + [("group", name)],
                               help: "1 once all bytes of the weight group (embeddings, layer N, final norm, lm_head) are local.").set(to: loaded ? 1 : 0)
        }
        last.withLock { last in
            let c = engine.counters, p = last.counters
            promptTokens.increment(by: Int64(c.promptTokens - p.promptTokens))
            generationTokens.increment(by: Int64(c.generationTokens - p.generationTokens))
            preemptions.increment(by: Int64(c.preemptions - p.preemptions))
            prefixQueries.increment(by: Int64(c.prefixCacheQueries - p.prefixCacheQueries))
            prefixHits.increment(by: Int64(c.prefixCacheHits - p.prefixCacheHits))
            bytesFetched.increment(by: max(0, fetched - last.fetched))
            for counters in stepCounters {
                let now = counters.kind == "decode" ? engine.steps.decode : engine.steps.mixed
                let was = counters.kind == "decode" ? last.steps.decode : last.steps.mixed
                counters.steps.increment(by: Int64(now.steps - was.steps))
                counters.tokens.increment(by: Int64(now.tokens - was.tokens))
                counters.sequences.increment(by: Int64(now.sequences - was.sequences))
                counters.forward.increment(by: now.forwardSeconds - was.forwardSeconds)
                counters.loop.increment(by: now.loopSeconds - was.loopSeconds)
            }
            last = (c, max(fetched, last.fetched), engine.steps)
        }
        return registry.emitToString()
    }

    /// A request that ended, with its reason (`abort`: its client went away or the server stopped).
    func finished(_ reason: FinishReason) { success[reason]?.increment() }
}

/// What `/metrics` reads from the engine at a scrape.
struct EngineSnapshot: Sendable {
    var running: Int
    var waiting: Int
    var kvUsage: Double
    var kvWaste: Double = 0
    var counters: SchedulerCounters
    var steps = StepStatistics()
}
