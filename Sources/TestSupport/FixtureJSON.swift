import Foundation
import JSON

/// A fixture's JSON, every member kept (as tokenizer.json and config.json are read).
public func readJSON(_ url: URL) throws -> JSON.Value {
    try JSON.parse(Array(try Data(contentsOf: url)), duplicateKeys: .keep)
}

/// Lenient accessors for reading fixtures in tests: a missing member or a wrong kind gives an
/// empty value, which the test's own expectations then catch.
extension Optional where Wrapped == JSON.Value {
    public subscript(_ key: String) -> JSON.Value? { self?[key] }
    public var stringValue: String { self?.stringValue ?? "<missing>" }
    public var arrayValue: [JSON.Value] { self?.arrayValue ?? [] }
    public var intArray: [Int] { self?.intArray ?? [] }
    public var stringArray: [String] { self?.stringArray ?? [] }
    public var floats: [Float] { self?.floats ?? [] }
    public var doubleValue: Double? { if case .number(let n)? = self { return n.double } else { return nil } }
}

extension JSON.Value {
    public var stringValue: String { if case .string(let s) = self { return s } else { return "<not a string>" } }
    public var arrayValue: [JSON.Value] { if case .array(let a) = self { return a } else { return [] } }
    public var intArray: [Int] { arrayValue.compactMap { if case .number(let n) = $0 { return n.integer.map { Int($0) } } else { return nil } } }
    public var stringArray: [String] { arrayValue.map(\.stringValue) }
    public var floats: [Float] { arrayValue.compactMap { if case .number(let n) = $0 { return Float(n.double) } else { return nil } } }
}
