import Foundation
@testable import ObjectStore
import Testing

struct ResponseCheckTests {
    @Test func contentRangeParsing() {
        #expect(parseContentRange("bytes 0-99/1000") == ByteRange(0, 100))
        #expect(parseContentRange("bytes 5-5/*") == ByteRange(5, 6))
        #expect(parseContentRange("bytes */1000") == nil)
        #expect(parseContentRange("bytes 9-3/10") == nil)
        #expect(parseContentRange("items 0-1/2") == nil)
    }

    @Test func mediaResponsesMustMatchTheAskedRangeAndGeneration() throws {
        let range = ByteRange(100, 200)
        let g = Generation(5)
        let ok = HTTPResponseHead(status: 206, headers: ["content-range": "bytes 100-199/1000", "x-goog-generation": "5"])
        try GCSStore.checkMediaHead(ok, range: range, generation: g, location: "gs://b/o")
        let shifted = HTTPResponseHead(status: 206, headers: ["content-range": "bytes 101-200/1000"])
        #expect(throws: StoreError.self) { try GCSStore.checkMediaHead(shifted, range: range, generation: g, location: "gs://b/o") }
        let otherGen = HTTPResponseHead(status: 206, headers: ["content-range": "bytes 100-199/1000", "x-goog-generation": "6"])
        #expect(throws: StoreError.objectChanged(location: "gs://b/o", expected: g, found: Generation(6))) {
            try GCSStore.checkMediaHead(otherGen, range: range, generation: g, location: "gs://b/o")
        }
        let ignoredRange = HTTPResponseHead(status: 200, headers: ["content-length": "1000"])
        #expect(throws: StoreError.self) { try GCSStore.checkMediaHead(ignoredRange, range: range, generation: g, location: "gs://b/o") }
        let wholeObject = HTTPResponseHead(status: 200, headers: ["content-length": "1000"])
        try GCSStore.checkMediaHead(wholeObject, range: ByteRange(0, 1000), generation: g, location: "gs://b/o")
    }

    @Test func storeURLs() throws {
        let gs = try StoreURL("gs://bucket/models/llama/")
        #expect(gs.path == "models/llama/")
        #expect(try StoreURL("gs://bucket").path == "")
        #expect(try StoreURL("file:///data/x").path == "data/x")
        #expect(throws: StoreError.self) { try StoreURL("s3://bucket/x") }
        #expect(throws: StoreError.self) { try StoreURL("gs:///x") }
        #expect(throws: StoreError.self) { try StoreURL("file://relative/x") }
    }

    @Test func percentEncodingOfObjectNames() {
        #expect(percentEncode("a b/c#d?e%f+g") == "a%20b%2Fc%23d%3Fe%25f%2Bg")
        #expect(percentEncode("模") == "%E6%A8%A1")
        #expect(percentEncode("AZaz09-._~") == "AZaz09-._~")
    }
}
