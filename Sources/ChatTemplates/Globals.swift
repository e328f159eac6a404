import Foundation

/// The functions every template sees: jinja2's `range`, `dict`, `namespace`, and the two
/// transformers adds, `raise_exception(message)` and `strftime_now(format)`.
enum Globals {
    /// jinja2's sandbox refuses larger ranges.
    static let maxRange = 100_000

    static func make(now: Date) -> [String: PyValue] {
        var g: [String: PyValue] = [:]
        g["range"] = .function(Function("range", range))
        g["namespace"] = .function(Function("namespace") { args, kwargs in
            let ns = Namespace()
            for a in args {
                for pair in try mappingPairs(a, "namespace") { ns.attributes.set(pair.key, pair.value) }
            }
            for (k, v) in kwargs { ns.attributes.set(.string(k), v) }
            return .namespace(ns)
        })
        g["dict"] = .function(Function("dict") { args, kwargs in
            guard args.count <= 1 else { throw RenderError.runtime("dict expected at most 1 argument, got \(args.count)") }
            var d = Dict()
            if let a = args.first { for pair in try mappingPairs(a, "dict") { d.set(pair.key, pair.value) } }
            for (k, v) in kwargs { d.set(.string(k), v) }
            return .dict(d)
        })
        g["raise_exception"] = .function(Function("raise_exception") { args, kwargs in
            let a = try bindArguments("raise_exception", ["message"], required: 1, args, kwargs)
            throw RenderError(.raised, a[0]!.str)
        })
        g["strftime_now"] = .function(Function("strftime_now") { args, kwargs in
            let a = try bindArguments("strftime_now", ["format"], required: 1, args, kwargs)
            return .string(try strftime(try Methods.requireString(a[0], "strftime_now"), now))
        })
        for name in ["lipsum", "cycler", "joiner"] {
            g[name] = .function(Function(name) { _, _ in throw RenderError.unsupported("the Jinja global '\(name)()' is not supported") })
        }
        return g
    }

    /// Key/value pairs of a mapping or of a sequence of pairs (what `dict(x)` accepts).
    static func mappingPairs(_ v: PyValue, _ function: String) throws -> [(key: PyValue, value: PyValue)] {
        switch v {
        case .dict(let d): return d.items
        case .namespace(let ns): return ns.attributes.items
        default:
            return try v.iterate().map { pair in
                let kv = try pair.iterate()
                guard kv.count == 2 else { throw RenderError.runtime("\(function)(): sequence elements must have length 2") }
                return (kv[0], kv[1])
            }
        }
    }

    static func range(_ args: [PyValue], _ kwargs: [(name: String, value: PyValue)]) throws -> PyValue {
        guard kwargs.isEmpty else { throw RenderError.runtime("range() takes no keyword arguments") }
        let ints = try args.map { try Methods.requireInt($0, "range") }
        var start = 0, stop = 0, step = 1
        switch ints.count {
        case 1: stop = ints[0]
        case 2: (start, stop) = (ints[0], ints[1])
        case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
        default: throw RenderError.runtime("range expected 1 to 3 arguments, got \(ints.count)")
        }
        guard step != 0 else { throw RenderError.runtime("range() arg 3 must not be zero") }
        // Estimated in floating point first, so that extreme bounds cannot overflow.
        let estimate = (Double(stop) - Double(start)) / Double(step)
        guard estimate <= Double(maxRange) + 1 else {
            throw RenderError.runtime("Range too big. The sandbox blocks ranges larger than MAX_RANGE (\(maxRange)).")
        }
        let count = estimate <= 0 ? 0 : step > 0 ? (stop - start + step - 1) / step : (start - stop - step - 1) / -step
        guard count <= maxRange else {
            throw RenderError.runtime("Range too big. The sandbox blocks ranges larger than MAX_RANGE (\(maxRange)).")
        }
        return .list((0..<count).map { .int(start + $0 * step) })
    }

    private static let weekdays = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    private static let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                                 "October", "November", "December"]

    /// Python's `datetime.now().strftime(format)` in the C locale, local time, for the
    /// directives chat templates use (glibc's `%-d` style unpadded forms included).
    static func strftime(_ format: String, _ date: Date) throws -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone.current
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday, .nanosecond], from: date)
        let year = c.year!, month = c.month!, day = c.day!, hour = c.hour!, minute = c.minute!, second = c.second!
        let weekday = (c.weekday! + 5) % 7  // Monday = 0
        let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date) ?? 1
        func pad(_ v: Int, _ width: Int, _ unpadded: Bool) -> String {
            let s = String(v)
            return unpadded ? s : String(repeating: "0", count: max(0, width - s.count)) + s
        }
        var out = ""
        var chars = Array(format.unicodeScalars)[...]
        while let ch = chars.popFirst() {
            guard ch == "%" else {
                out.unicodeScalars.append(ch)
                continue
            }
            var unpadded = false
            if chars.first == "-" {
                unpadded = true
                chars.removeFirst()
            }
            guard let d = chars.popFirst() else {
                out += "%"
                break
            }
            switch d {
            case "a": out += weekdays[weekday].prefix(3)
            case "A": out += weekdays[weekday]
            case "b", "h": out += months[month - 1].prefix(3)
            case "B": out += months[month - 1]
            case "d": out += pad(day, 2, unpadded)
            case "e": out += unpadded ? String(day) : (day < 10 ? " " : "") + String(day)
            case "m": out += pad(month, 2, unpadded)
            case "y": out += pad(year % 100, 2, unpadded)
            case "Y": out += String(year)
            case "H": out += pad(hour, 2, unpadded)
            case "I": out += pad(hour % 12 == 0 ? 12 : hour % 12, 2, unpadded)
            case "p": out += hour < 12 ? "AM" : "PM"
            case "M": out += pad(minute, 2, unpadded)
            case "S": out += pad(second, 2, unpadded)
            case "f": out += pad((c.nanosecond ?? 0) / 1000, 6, false)
            case "j": out += pad(dayOfYear, 3, unpadded)
            case "w": out += String((weekday + 1) % 7)
            case "u": out += String(weekday + 1)
            case "D": out += pad(month, 2, false) + "/" + pad(day, 2, false) + "/" + pad(year % 100, 2, false)
            case "F": out += String(year) + "-" + pad(month, 2, false) + "-" + pad(day, 2, false)
            case "T": out += pad(hour, 2, false) + ":" + pad(minute, 2, false) + ":" + pad(second, 2, false)
            case "R": out += pad(hour, 2, false) + ":" + pad(minute, 2, false)
            case "z", "Z": break  // datetime.now() is naive: empty, as in Python
            case "n": out += "\n"
            case "t": out += "\t"
            case "%": out += "%"
            default:
                throw RenderError.unsupported("strftime directive '%\(unpadded ? "-" : "")\(d)' is not supported")
            }
        }
        return out
    }
}
