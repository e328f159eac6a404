/// A class of problem found in a file, and what a user does about it.
public protocol FileProblemKind: Hashable, Sendable {
    /// What to do about a problem of this kind; ends every message.
    var advice: String { get }
    /// What kind of file, when its name alone does not say (`tokenizer`); starts every message.
    static var subject: String? { get }
}

extension FileProblemKind {
    public static var subject: String? { nil }
}

/// The one shape of every file-parsing error in weightfs (safetensors headers and indexes,
/// config.json, tokenizer files): the file, where it applies the tensor and the field (a JSON
/// path), what is wrong with what was found (`message`), and what to do (the kind's `advice`).
public struct FileError<K: FileProblemKind>: Error, Sendable, Equatable, CustomStringConvertible {
    public typealias Kind = K
    public var kind: Kind
    /// The file's name (a shard, `config.json`, `tokenizer.json`), or a directory or store URL
    /// for problems of the whole model.
    public var file: String
    public var tensor: String?
    public var field: String?
    public var message: String

    public init(_ kind: Kind, file: String, tensor: String? = nil, field: String? = nil, _ message: String) {
        self.kind = kind
        self.file = file
        self.tensor = tensor
        self.field = field
        self.message = message
    }

    /// `file: tensor "t", field "f"`, as much of it as applies.
    public var location: String {
        var location = file
        if let tensor { location += ": tensor \"\(tensor)\"" }
        if let field, !field.isEmpty { location += tensor == nil ? ": field \"\(field)\"" : ", field \"\(field)\"" }
        return location
    }

    public var description: String {
        (Kind.subject.map { "\($0): " } ?? "") + "\(location): \(message) (\(kind.advice))"
    }
}

/// An error that is only its message, already written for the user (the CLI's refusals, a
/// mount that could not be made).
public struct MessageError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
