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
public struct InodeTable: Sendable {
    public static let rootInode: UInt64 = 1
    public private(set) var nodes: [Inode]  // index = inode number - 1
    private var lookupTable: [UInt64: [String: UInt64]] = [:]
    /// Names that could not be mounted (a file and a directory of the same name, empty parts).
    public private(set) var skipped: [String] = []

    public init(objects: [ObjectInfo], prefix: String) {
        nodes = [Inode(number: Self.rootInode, name: "", parent: Self.rootInode, object: nil)]
        var directories: [String: UInt64] = ["": Self.rootInode]
        for object in objects.sorted(by: { $0.name < $1.name }) {
            guard object.name.hasPrefix(prefix) else { continue }
            let relative = String(object.name.dropFirst(prefix.count))
            let parts = relative.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard !relative.isEmpty, !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
                skipped.append(object.name)
                continue
            }
            var parent = Self.rootInode
            var path = ""
            var ok = true
            for dir in parts.dropLast() {
                path = path.isEmpty ? dir : "\(path)/\(dir)"
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
        for i in nodes.indices where nodes[i].isDirectory { nodes[i].children.sort { $0.name < $1.name } }
    }

    private mutating func add(name: String, parent: UInt64, object: ObjectInfo?) -> UInt64 {
        let number = UInt64(nodes.count + 1)
        nodes.append(Inode(number: number, name: name, parent: parent, object: object))
        nodes[Int(parent - 1)].children.append((name, number))
        lookupTable[parent, default: [:]][name] = number
        return number
    }

    public subscript(_ inode: UInt64) -> Inode? {
        inode >= 1 && inode <= UInt64(nodes.count) ? nodes[Int(inode - 1)] : nil
    }

    public func lookup(parent: UInt64, name: String) -> Inode? {
        lookupTable[parent]?[name].flatMap { self[$0] }
    }

    public var fileCount: Int { nodes.filter { !$0.isDirectory }.count }
    public var totalBytes: Int64 { nodes.reduce(0) { $0 + ($1.object?.size ?? 0) } }
}
