import ChunkCache
import Testing

struct PriorityTests {
    /// Each priority names itself (its description once called itself without end, and a
    /// failed expectation that printed a cache crashed the test process).
    @Test func prioritiesDescribeThemselves() {
        #expect(FetchPriority.allCases.map(\.description) == ["preload", "readahead", "plan", "demand"])
        #expect("\(FetchPriority.demand)" == "demand")
    }
}
