import Foundation
import ObjectStore

/// A node of the mounted tree: a directory (implicit in object names) or a file (one object).
public struct Inode: Sendable {
    public let number: UInt64
    public let name: String
    public let parent: UInt64
    public let object: ObjectInfo?
    /// Children sorted by name (directories only).
    public fileprivate(set) var children: [(name: String, inode: UInt64)] = []
    public var isDirectory: Bool { object == nil }
}

/// The directory tree of a listing: `/`-separated object names under a prefix become nested
/// directories. Inode numbers are assigned in sorted path order, so they are stable for the
/// same listing. Immutable after construction: safe to read from every FUSE thread.
///
/// Names are bytes throughout (GCS names are byte strings): two names that Swift's `String`
/// calls equal (NFC `café` and NFD `café`) are two files, each reachable by its own bytes.
public struct InodeTable: Sendable {
    public static let rootInode: UInt64 = 1
    public private(set) var nodes: [Inode]  // index = inode number - 1
    private var lookupTable: [UInt64: [[UInt8]: UInt64]] = [:]
    /// Names that could not be mounted (a file and a directory of the same name, empty parts).
    public private(set) var skipped: [String] = []

    public init(objects: [ObjectInfo], prefix: String) {
        nodes = [Inode(number: Self.rootInode, name: "", parent: Self.rootInode, object: nil)]
        var directories: [[UInt8]: UInt64] = [[]: Self.rootInode]
        let prefixBytes = Array(prefix.utf8)
        for object in objects.sorted(by: { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }) {
            let name = Array(object.name.utf8)
            guard name.starts(with: prefixBytes) else { continue }
            let relative = name[prefixBytes.count...]
            let parts = relative.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map { Array($0) }
            let dot = Array(".".utf8), dotDot = Array("..".utf8)
            guard !relative.isEmpty, !parts.contains(where: { $0.isEmpty || $0 == dot || $0 == dotDot }) else {
                skipped.append(object.name)
                continue
            }
            var parent = Self.rootInode
            var path: [UInt8] = []
            var ok = true
            for dir in parts.dropLast() {
                path += path.isEmpty ? dir : [UInt8(ascii: "/")] + dir
                if let existing = directories[path] {
                    parent = existing
                } else if lookupTable[parent]?[dir] != nil {
                    ok = false  // a file already has this name
                    break
                } else {
                    parent = add(name: dir, parent: parent, object: nil)
                    directories[path] = parent
                }
            }
            guard ok, lookupTable[parent]?[parts.last!] == nil else {
                skipped.append(object.name)
                continue
            }
            _ = add(name: parts.last!, parent: parent, object: object)
        }
        for i in nodes.indices where nodes[i].isDirectory {
            nodes[i].children.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        }
    }

    private mutating func add(name: [UInt8], parent: UInt64, object: ObjectInfo?) -> UInt64 {
        let number = UInt64(nodes.count + 1)
        let text = String(decoding: name, as: UTF8.self)
        nodes.append(Inode(number: number, name: text, parent: parent, object: object))
        nodes[Int(parent - 1)].children.append((text, number))
        lookupTable[parent, default: [:]][name] = number
        return number
    }

    public subscript(_ inode: UInt64) -> Inode? {
        inode >= 1 && inode <= UInt64(nodes.count) ? nodes[Int(inode - 1)] : nil
    }

    /// The child of `parent` whose name is exactly these bytes.
    public func lookup(parent: UInt64, name: some Sequence<UInt8>) -> Inode? {
        lookupTable[parent]?[Array(name)].flatMap { self[$0] }
    }

    public func lookup(parent: UInt64, name: String) -> Inode? { lookup(parent: parent, name: name.utf8) }

    public var fileCount: Int { nodes.filter { !$0.isDirectory }.count }
    public var totalBytes: Int64 { nodes.reduce(0) { $0 + ($1.object?.size ?? 0) } }
}
