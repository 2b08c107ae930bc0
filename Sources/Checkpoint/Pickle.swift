// Checkpoint: a pickle interpreter (protocols 0-5) that never imports or runs anything. It is a stack
// machine over the opcodes of Python's pickle format; GLOBAL and STACK_GLOBAL yield symbolic references
// (module, name), and only the handful of callables that `torch.save` uses for tensors and state dicts
// are given meaning: `torch._utils._rebuild_tensor(_v2/_v3)`, `_rebuild_parameter(_with_state)`,
// `torch._tensor._rebuild_from_type_v2`, `collections.OrderedDict`, the storage classes and dtypes.
// Every other call or instantiation (e.g. `argparse.Namespace`, or a malicious `os.system`) becomes an
// opaque value that remembers only its name; REDUCE, NEWOBJ and BUILD on such values never fail.
// Left out: out-of-band buffers (protocol 5 NEXT_BUFFER gives an opaque value), the copyreg extension
// registry (EXT1/2/4 give opaque values), Python-level semantics such as set equality or attribute state.
// Corrupt input (unknown opcode, stack underflow, truncation, bad lengths) throws a `CheckpointError`.

import Foundation

/// A storage named by a persistent id `('storage', storage_type, key, location, numel)`.
struct StorageReference {
    /// The archive record `data/<key>` holding the bytes.
    var key: String
    /// The storage class as written, e.g. `torch.FloatStorage` or `torch.UntypedStorage`.
    var typeName: String
    /// The element type, or nil for storage classes this reader cannot decode (complex, quantised).
    var dtype: DType?
    /// Elements of `dtype` in the storage (bytes for `torch.UntypedStorage`).
    var numel: Int
    /// The device tag, e.g. `cpu` or `cuda:0` (informative only: everything is read to the CPU).
    var location: String
}

/// A tensor as `torch._utils._rebuild_tensor_v2` describes it: a strided view into a storage.
struct TensorReference {
    var storage: StorageReference
    /// The tensor's element type (the storage's, except for `_rebuild_tensor_v3`, which names it).
    var dtype: DType?
    /// Offset of element [0, 0, ...] in the storage, in elements of `dtype`.
    var offset: Int
    var shape: [Int]
    /// Element strides, one per dimension.
    var stride: [Int]
}

/// A Python tuple (immutable). `depth` counts nested tuples only: it is bounded so that releasing
/// a tuple never recurses too deeply. Lists and dicts are released without recursion (see `Unpickler`).
struct PickleTuple {
    var items: [PickleValue]
    var depth: Int
}

/// A Python list or set (mutable and shared, as Python objects are, so that memoised references alias).
final class PickleList {
    var items: [PickleValue] = []
}

/// A Python dict or OrderedDict, in insertion order; string and integer keys are found by hashing.
final class PickleDict {
    enum Key: Hashable { case string(String), int(Int) }
    private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    private var index: [Key: Int] = [:]

    /// Sets `key` to `value`, replacing an earlier value of an equal string or integer key.
    func set(_ key: PickleValue, _ value: PickleValue) {
        let hashKey: Key?
        switch key {
        case .string(let s): hashKey = .string(s)
        case .int(let i): hashKey = .int(i)
        default: hashKey = nil
        }
        if let hashKey, let at = index[hashKey] {
            entries[at].value = value
        } else {
            if let hashKey { index[hashKey] = entries.count }
            entries.append((key, value))
        }
    }

    /// Drops every entry (used to tear down object graphs without recursion).
    func removeAll() {
        entries.removeAll()
        index.removeAll()
    }

    /// The value of a string key.
    subscript(_ key: String) -> PickleValue? {
        index[.string(key)].map { entries[$0].value }
    }
}

/// A value of the pickle machine.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer too large for `Int`; only its size in bytes is kept.
    case bigInt(byteCount: Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple(PickleTuple)
    case list(PickleList)
    case set(PickleList)
    case dict(PickleDict)
    /// A symbolic reference made by GLOBAL / STACK_GLOBAL: nothing is imported.
    case global(module: String, name: String)
    case storage(StorageReference)
    case tensor(TensorReference)
    /// Anything else: the result of calling or instantiating something this reader does not know.
    case opaque(String)

    /// Nesting depth of tuples (0 for everything else).
    var depth: Int {
        if case .tuple(let t) = self { return t.depth }
        return 0
    }

    /// A one-line description, e.g. `int 300`, `dict (3 entries)`, `argparse.Namespace (opaque, not loaded)`.
    var summary: String {
        switch self {
        case .none: return "None"
        case .bool(let b): return "bool \(b ? "True" : "False")"
        case .int(let i): return "int \(i)"
        case .bigInt(let n): return "int (\(n)-byte integer)"
        case .float(let x): return "float \(x)"
        case .string(let s):
            let flat = s.replacingOccurrences(of: "\n", with: "\\n")
            return flat.count > 60 ? "str '\(flat.prefix(57))...'" : "str '\(flat)'"
        case .bytes(let b): return "bytes (\(b.count))"
        case .tuple(let t): return "tuple (\(counted(t.items.count, "item")))"
        case .list(let l): return "list (\(counted(l.items.count, "item")))"
        case .set(let l): return "set (\(counted(l.items.count, "item")))"
        case .dict(let d):
            let tensors = d.entries.filter { if case .tensor = $0.value { return true } else { return false } }.count
            let entries = counted(d.entries.count, "entry", plural: "entries")
            return tensors > 0 ? "dict (\(entries), \(counted(tensors, "tensor")))" : "dict (\(entries))"
        case .global(let m, let n): return "reference to \(m).\(n) (not imported)"
        case .storage(let s): return "storage \(s.typeName) '\(s.key)'"
        case .tensor(let t): return "tensor \(t.shape) \(t.dtype?.rawValue ?? t.storage.typeName)"
        case .opaque(let name): return "\(name) (opaque, not loaded)"
        }
    }
}

/// "1 item", "3 items".
private func counted(_ n: Int, _ singular: String, plural: String? = nil) -> String {
    "\(n) \(n == 1 ? singular : plural ?? singular + "s")"
}

/// The pickle stack machine. `run()` interprets the whole pickle and returns the object it builds.
struct Unpickler {
    private let data: UnsafeRawBufferPointer
    private let path: String
    private let entryName: String
    private var position = 0
    private var opcodeStart = 0
    private var stack: [PickleValue] = []
    private var metastack: [[PickleValue]] = []
    private var memo: [Int: PickleValue] = [:]
    /// Every list, set and dict made, so that `releaseContainers()` can empty them one by one.
    private var lists: [PickleList] = []
    private var dicts: [PickleDict] = []
    /// Every storage a persistent id named, by key (the legacy format needs the element sizes of all).
    private(set) var storages: [String: StorageReference] = [:]

    /// Bytes read so far: after `run()`, the length of the pickle up to and including its STOP.
    var consumed: Int { position }

    /// Deepest tuple nesting accepted (real checkpoints nest fewer than ten levels).
    static let maxDepth = 1000

    /// - Parameters:
    ///   - data: the pickle bytes.
    ///   - path: the file, for error messages.
    ///   - entryName: the pickle's name inside the file (e.g. `archive/data.pkl`), for error messages.
    init(data: UnsafeRawBufferPointer, path: String, entryName: String) {
        self.data = data
        self.path = path
        self.entryName = entryName
    }

    /// Empties every list, set and dict the machine made. Call it once the result has been used:
    /// a hostile pickle can nest lists a million deep through memo references (or make cycles), and
    /// releasing such a graph the ordinary way would recurse once per level and overflow the stack.
    mutating func releaseContainers() {
        for list in lists { list.items.removeAll() }
        for dict in dicts { dict.removeAll() }
        lists.removeAll()
        dicts.removeAll()
        stack.removeAll()
        metastack.removeAll()
        memo.removeAll()
    }

    private mutating func newList() -> PickleList {
        let list = PickleList()
        lists.append(list)
        return list
    }

    private mutating func newDict() -> PickleDict {
        let dict = PickleDict()
        dicts.append(dict)
        return dict
    }

    private func corrupt(_ problem: String) -> CheckpointError {
        CheckpointError(path, "corrupt pickle in \(entryName): \(problem) at byte \(opcodeStart)",
                        hint: "the checkpoint is damaged; re-save it with torch.save")
    }

    // MARK: reading the byte stream

    private mutating func take(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= data.count - position else {
            throw corrupt("data ends inside an opcode's argument (wanted \(count) bytes, \(data.count - position) left)")
        }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: data[position..<(position + count)])
    }

    private mutating func byte() throws -> UInt8 { try take(1)[0] }
    private mutating func u16() throws -> Int { Int(try take(2).le16(0)) }
    private mutating func u32() throws -> Int { Int(try take(4).le32(0)) }
    private mutating func i32() throws -> Int { Int(Int32(bitPattern: try take(4).le32(0))) }
    private mutating func u64() throws -> Int {
        let v = try take(8).le64(0)
        guard v <= UInt64(data.count) else { throw corrupt("length \(v) exceeds the pickle's size") }
        return Int(v)
    }

    /// A text argument up to (not including) the next newline.
    private mutating func line() throws -> String {
        var end = position
        while end < data.count, data[end] != 0x0a { end += 1 }
        guard end < data.count else { throw corrupt("data ends inside a text argument") }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: data[position..<end]), as: UTF8.self)
        position = end + 1
        return text
    }

    private mutating func text(_ count: Int) throws -> String {
        String(decoding: try take(count), as: UTF8.self)
    }

    // MARK: the stacks

    private mutating func push(_ value: PickleValue) throws {
        guard value.depth <= Self.maxDepth else { throw corrupt("tuples nested deeper than \(Self.maxDepth) levels") }
        stack.append(value)
    }

    private mutating func pop() throws -> PickleValue {
        guard let value = stack.popLast() else { throw corrupt("stack underflow") }
        return value
    }

    private func top() throws -> PickleValue {
        guard let value = stack.last else { throw corrupt("stack underflow") }
        return value
    }

    /// Everything pushed since the last MARK, restoring the stack below it.
    private mutating func popMark() throws -> [PickleValue] {
        guard let below = metastack.popLast() else { throw corrupt("stack underflow (no MARK)") }
        let items = stack
        stack = below
        return items
    }

    private func tuple(_ items: [PickleValue]) -> PickleValue {
        .tuple(PickleTuple(items: items, depth: 1 + (items.map(\.depth).max() ?? 0)))
    }

    private func memoKey(_ text: String) throws -> Int {
        guard let k = Int(text.trimmingCharacters(in: .whitespaces)) else { throw corrupt("memo key '\(text)' is not a number") }
        return k
    }

    private mutating func memoGet(_ key: Int) throws {
        guard let value = memo[key] else { throw corrupt("memo key \(key) was never stored") }
        stack.append(value)
    }

    private mutating func memoPut(_ key: Int) throws {
        guard key >= 0 else { throw corrupt("negative memo key") }
        memo[key] = try top()
    }

    // MARK: the machine

    /// Interprets the pickle up to STOP and returns the object it built.
    mutating func run() throws -> PickleValue {
        while true {
            opcodeStart = position
            guard position < data.count else { throw corrupt("data ends without a STOP opcode (truncated)") }
            let opcode = data[position]
            position += 1
            switch opcode {
            case 0x80:  // PROTO
                let version = try byte()
                guard version <= 5 else { throw corrupt("pickle protocol \(version) is newer than 5") }
            case 0x95:  // FRAME: only a hint for buffered readers
                _ = try take(8)
            case 0x2e:  // STOP
                return try pop()
            case 0x28:  // MARK
                metastack.append(stack)
                stack = []
            case 0x30:  // POP
                if stack.isEmpty { _ = try popMark() } else { stack.removeLast() }
            case 0x31:  // POP_MARK
                _ = try popMark()
            case 0x32:  // DUP
                stack.append(try top())

            // Scalars.
            case 0x4e: stack.append(.none)  // NONE
            case 0x88: stack.append(.bool(true))  // NEWTRUE
            case 0x89: stack.append(.bool(false))  // NEWFALSE
            case 0x4b: stack.append(.int(Int(try byte())))  // BININT1
            case 0x4d: stack.append(.int(try u16()))  // BININT2
            case 0x4a: stack.append(.int(try i32()))  // BININT
            case 0x49:  // INT (text; "00"/"01" are False/True)
                let t = try line()
                if t == "00" { stack.append(.bool(false)) } else if t == "01" { stack.append(.bool(true)) } else { stack.append(try decimal(t)) }
            case 0x4c:  // LONG (text, optional trailing L)
                var t = try line()
                if t.hasSuffix("L") { t.removeLast() }
                stack.append(try decimal(t))
            case 0x8a:  // LONG1
                let n = Int(try byte())
                stack.append(littleEndianInteger(try take(n)))
            case 0x8b:  // LONG4
                let n = try i32()
                guard n >= 0 else { throw corrupt("LONG4 with negative length") }
                stack.append(littleEndianInteger(try take(n)))
            case 0x46:  // FLOAT (text)
                let t = try line()
                guard let x = Double(t.trimmingCharacters(in: .whitespaces)) else { throw corrupt("FLOAT '\(t)' is not a number") }
                stack.append(.float(x))
            case 0x47:  // BINFLOAT (big-endian double)
                let raw = try take(8)
                var bits: UInt64 = 0
                for b in raw { bits = bits << 8 | UInt64(b) }
                stack.append(.float(Double(bitPattern: bits)))

            // Strings and bytes.
            case 0x58: stack.append(.string(try text(try u32())))  // BINUNICODE
            case 0x8c: stack.append(.string(try text(Int(try byte()))))  // SHORT_BINUNICODE
            case 0x8d: stack.append(.string(try text(try u64())))  // BINUNICODE8
            case 0x56: stack.append(.string(unescapeRawUnicode(try line())))  // UNICODE (raw-unicode-escape)
            case 0x53: stack.append(.string(try quotedString(try line())))  // STRING (quoted text)
            case 0x54:  // BINSTRING
                let n = try i32()
                guard n >= 0 else { throw corrupt("BINSTRING with negative length") }
                stack.append(.string(try text(n)))
            case 0x55: stack.append(.string(try text(Int(try byte()))))  // SHORT_BINSTRING
            case 0x42: stack.append(.bytes(Array(try take(try u32()))))  // BINBYTES
            case 0x43: stack.append(.bytes(Array(try take(Int(try byte())))))  // SHORT_BINBYTES
            case 0x8e, 0x96: stack.append(.bytes(Array(try take(try u64()))))  // BINBYTES8, BYTEARRAY8
            case 0x97: stack.append(.opaque("out-of-band pickle buffer"))  // NEXT_BUFFER: no buffers are supplied
            case 0x98: _ = try top()  // READONLY_BUFFER: no change for our purposes

            // Containers.
            case 0x29: stack.append(tuple([]))  // EMPTY_TUPLE
            case 0x74: try push(tuple(try popMark()))  // TUPLE
            case 0x85:  // TUPLE1
                let a = try pop()
                try push(tuple([a]))
            case 0x86:  // TUPLE2
                let b = try pop(), a = try pop()
                try push(tuple([a, b]))
            case 0x87:  // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                try push(tuple([a, b, c]))
            case 0x5d: stack.append(.list(newList()))  // EMPTY_LIST
            case 0x6c:  // LIST
                let list = newList()
                append(try popMark(), to: list)
                try push(.list(list))
            case 0x7d: stack.append(.dict(newDict()))  // EMPTY_DICT
            case 0x64:  // DICT
                let dict = newDict()
                try setItems(try popMark(), in: dict)
                try push(.dict(dict))
            case 0x8f: stack.append(.set(newList()))  // EMPTY_SET
            case 0x91:  // FROZENSET
                let set = newList()
                append(try popMark(), to: set)
                try push(.set(set))
            case 0x61:  // APPEND
                let value = try pop()
                try appendTo(try top(), [value], opcode: "APPEND")
            case 0x65:  // APPENDS
                let items = try popMark()
                try appendTo(try top(), items, opcode: "APPENDS")
            case 0x90:  // ADDITEMS
                let items = try popMark()
                try appendTo(try top(), items, opcode: "ADDITEMS")
            case 0x73:  // SETITEM
                let value = try pop(), key = try pop()
                try setItemsOf(try top(), [key, value])
            case 0x75:  // SETITEMS
                let items = try popMark()
                try setItemsOf(try top(), items)

            // Memo.
            case 0x67: try memoGet(try memoKey(try line()))  // GET
            case 0x68: try memoGet(Int(try byte()))  // BINGET
            case 0x6a: try memoGet(try u32())  // LONG_BINGET
            case 0x70: try memoPut(try memoKey(try line()))  // PUT
            case 0x71: try memoPut(Int(try byte()))  // BINPUT
            case 0x72: try memoPut(try u32())  // LONG_BINPUT
            case 0x94: try memoPut(memo.count)  // MEMOIZE

            // References, calls and objects: symbolic only.
            case 0x63:  // GLOBAL
                let module = try line(), name = try line()
                stack.append(.global(module: module, name: name))
            case 0x93:  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case .string(let m) = module, case .string(let n) = name else {
                    throw corrupt("STACK_GLOBAL needs two strings")
                }
                stack.append(.global(module: m, name: n))
            case 0x52:  // REDUCE
                let args = try pop(), callable = try pop()
                try push(try call(callable, args))
            case 0x81:  // NEWOBJ
                let args = try pop(), cls = try pop()
                try push(try call(cls, args))
            case 0x92:  // NEWOBJ_EX
                _ = try pop()  // keyword arguments
                let args = try pop(), cls = try pop()
                try push(try call(cls, args))
            case 0x69:  // INST
                let module = try line(), name = try line()
                try push(try call(.global(module: module, name: name), tuple(try popMark())))
            case 0x6f:  // OBJ
                let items = try popMark()
                guard let cls = items.first else { throw corrupt("OBJ without a class") }
                try push(try call(cls, tuple(Array(items.dropFirst()))))
            case 0x62:  // BUILD: the state (e.g. a Namespace's fields, an OrderedDict's _metadata) is not needed
                _ = try pop()
                _ = try top()
            case 0x51:  // BINPERSID
                try push(persistentLoad(try pop()))
            case 0x50:  // PERSID
                try push(persistentLoad(.string(try line())))
            case 0x82: stack.append(.opaque("copyreg extension \(try byte())"))  // EXT1
            case 0x83: stack.append(.opaque("copyreg extension \(try u16())"))  // EXT2
            case 0x84: stack.append(.opaque("copyreg extension \(try i32())"))  // EXT4
            default:
                throw corrupt("unknown opcode 0x\(String(opcode, radix: 16, uppercase: true))")
            }
        }
    }

    // MARK: opcode helpers

    private func decimal(_ text: String) throws -> PickleValue {
        let t = text.trimmingCharacters(in: .whitespaces)
        if let v = Int(t) { return .int(v) }
        let digits = t.hasPrefix("-") || t.hasPrefix("+") ? t.dropFirst() : Substring(t)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw corrupt("'\(text)' is not an integer") }
        return .bigInt(byteCount: digits.count * 10 / 24 + 1)
    }

    /// A little-endian two's-complement integer of any length (LONG1/LONG4).
    private func littleEndianInteger(_ raw: UnsafeRawBufferPointer) -> PickleValue {
        guard let last = raw.last else { return .int(0) }
        let fill: UInt8 = last & 0x80 != 0 ? 0xff : 0
        // Bytes past the eighth must only repeat the sign for the value to fit in Int.
        if raw.count > 8 {
            let signOfLow = raw[7] & 0x80 != 0 ? UInt8(0xff) : 0
            guard raw[8...].allSatisfy({ $0 == fill }), signOfLow == fill else { return .bigInt(byteCount: raw.count) }
        }
        var bits: UInt64 = 0
        for i in 0..<8 { bits |= UInt64(i < raw.count ? raw[i] : fill) << (8 * UInt64(i)) }
        return .int(Int(Int64(bitPattern: bits)))
    }

    private func quotedString(_ text: String) throws -> String {
        guard text.count >= 2, let q = text.first, q == text.last, q == "'" || q == "\"" else {
            throw corrupt("STRING argument is not quoted")
        }
        return String(text.dropFirst().dropLast())
    }

    /// Decodes the `\uXXXX` and `\UXXXXXXXX` escapes of Python's raw-unicode-escape codec.
    private func unescapeRawUnicode(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var out = ""
        var scalars = Array(text.unicodeScalars)[...]
        while let c = scalars.popFirst() {
            if c == "\\", let kind = scalars.first, kind == "u" || kind == "U" {
                let width = kind == "u" ? 4 : 8
                let hex = String(String.UnicodeScalarView(scalars.dropFirst().prefix(width)))
                if hex.count == width, let code = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(code) {
                    out.unicodeScalars.append(scalar)
                    scalars = scalars.dropFirst(1 + width)
                    continue
                }
            }
            out.unicodeScalars.append(c)
        }
        return out
    }

    private func append(_ items: [PickleValue], to list: PickleList) {
        list.items.append(contentsOf: items)
    }

    private func appendTo(_ target: PickleValue, _ items: [PickleValue], opcode: String) throws {
        switch target {
        case .list(let list), .set(let list): append(items, to: list)
        case .opaque: break  // e.g. a custom list subclass: its contents are not needed
        default: throw corrupt("\(opcode) to \(target.summary), which is not a list or set")
        }
    }

    private func setItems(_ items: [PickleValue], in dict: PickleDict) throws {
        guard items.count % 2 == 0 else { throw corrupt("odd number of items for a dict") }
        var i = 0
        while i < items.count {
            dict.set(items[i], items[i + 1])
            i += 2
        }
    }

    private func setItemsOf(_ target: PickleValue, _ items: [PickleValue]) throws {
        switch target {
        case .dict(let dict): try setItems(items, in: dict)
        case .opaque: guard items.count % 2 == 0 else { throw corrupt("odd number of items for a dict") }
        default: throw corrupt("SETITEM on \(target.summary), which is not a dict")
        }
    }

    // MARK: the few callables that mean something

    /// Applies `callable` to `args` symbolically: recognised torch and collections callables build
    /// tensors and dicts, anything else gives an opaque value. Nothing is ever imported or executed.
    private mutating func call(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let module, let name) = callable else {
            switch callable {
            case .opaque(let what): return .opaque("result of calling \(what)")
            default: return .opaque("result of calling a \(callable.summary)")
            }
        }
        let arguments: [PickleValue]
        if case .tuple(let t) = args { arguments = t.items } else { arguments = [] }
        switch (module, name) {
        case ("collections", "OrderedDict"):
            let dict = newDict()
            // OrderedDict([(key, value), ...]) as older protocols write it.
            if let first = arguments.first {
                let pairs: [PickleValue]
                switch first {
                case .list(let l): pairs = l.items
                case .tuple(let t): pairs = t.items
                default: pairs = []
                }
                for pair in pairs {
                    if case .tuple(let kv) = pair, kv.items.count == 2 { dict.set(kv.items[0], kv.items[1]) }
                }
            }
            return .dict(dict)
        case ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_tensor_v2"):
            return try rebuildTensor(arguments, function: name, explicitDType: nil)
        case ("torch._utils", "_rebuild_tensor_v3"):
            guard arguments.count >= 7, case .global(let m, let n) = arguments[6], let dtype = Self.dtype(module: m, name: n) else {
                if arguments.count >= 7, case .global(let m, let n) = arguments[6] {
                    return .opaque("tensor of unsupported dtype \(m).\(n)")
                }
                throw corrupt("_rebuild_tensor_v3 called without a dtype")
            }
            return try rebuildTensor(arguments, function: name, explicitDType: dtype)
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            guard let data = arguments.first else { throw corrupt("\(name) called without a tensor") }
            if case .tensor = data { return data }
            return .opaque("torch.nn.Parameter of \(data.summary)")
        case ("torch._tensor", "_rebuild_from_type_v2"), ("torch.tensor", "_rebuild_from_type_v2"):
            // (function, tensor subclass, arguments, state): build the plain tensor.
            guard arguments.count >= 3 else { throw corrupt("_rebuild_from_type_v2 called with \(arguments.count) arguments") }
            return try call(arguments[0], arguments[2])
        case ("copyreg", "_reconstructor"), ("copyreg", "__newobj__"), ("copy_reg", "_reconstructor"):
            // copyreg._reconstructor(cls, base, state): an instance of cls, named by its class.
            if case .global(let m, let n)? = arguments.first { return .opaque("\(m).\(n)") }
            return .opaque("\(module).\(name)")
        default:
            return .opaque("\(module).\(name)")
        }
    }

    /// `_rebuild_tensor(storage, storage_offset, size, stride)` and the v2/v3 forms, whose extra
    /// arguments (requires_grad, backward hooks, dtype, metadata) change nothing in the values.
    private func rebuildTensor(_ a: [PickleValue], function: String, explicitDType: DType?) throws -> PickleValue {
        guard a.count >= 4 else { throw corrupt("\(function) called with \(a.count) arguments") }
        guard case .storage(let storage) = a[0] else {
            if case .opaque(let what) = a[0] { return .opaque("tensor over \(what)") }
            throw corrupt("\(function) called with a \(a[0].summary) instead of a storage")
        }
        guard case .int(let offset) = a[1], offset >= 0 else { throw corrupt("\(function) called with a bad storage offset") }
        guard let shape = Self.integers(a[2]), let stride = Self.integers(a[3]), shape.count == stride.count,
              shape.allSatisfy({ $0 >= 0 }), stride.allSatisfy({ $0 >= 0 }) else {
            throw corrupt("\(function) called with a malformed size or stride")
        }
        return .tensor(TensorReference(storage: storage, dtype: explicitDType ?? storage.dtype,
                                       offset: offset, shape: shape, stride: stride))
    }

    private static func integers(_ value: PickleValue) -> [Int]? {
        let items: [PickleValue]
        switch value {
        case .tuple(let t): items = t.items
        case .list(let l): items = l.items
        default: return nil
        }
        var out: [Int] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard case .int(let v) = item else { return nil }
            out.append(v)
        }
        return out
    }

    /// `('storage', storage_type, key, location, numel)` becomes a storage reference; any other
    /// persistent id becomes an opaque value. Storages are remembered by key.
    private mutating func persistentLoad(_ pid: PickleValue) -> PickleValue {
        // The zip format writes 5 items; the legacy format a sixth, the view metadata (None).
        guard case .tuple(let t) = pid, t.items.count == 5 || (t.items.count == 6 && { if case .none = t.items[5] { return true } else { return false } }()),
              let tag = Self.text(t.items[0]), tag == "storage",
              let key = Self.text(t.items[2]) ?? { if case .int(let k) = t.items[2] { return String(k) } else { return nil } }(),
              case .int(let numel) = t.items[4], numel >= 0 else {
            return .opaque("persistent object \(pid.summary)")
        }
        let location = Self.text(t.items[3]) ?? "?"
        guard case .global(let module, let name) = t.items[1] else {
            return .opaque("storage of unknown type \(t.items[1].summary)")
        }
        let dtype = Self.storageDType(module: module, name: name) ?? Self.dtype(module: module, name: name)
        let storage = StorageReference(key: key, typeName: "\(module).\(name)", dtype: dtype, numel: numel, location: location)
        storages[key] = storage
        return .storage(storage)
    }

    private static func text(_ value: PickleValue) -> String? {
        switch value {
        case .string(let s): return s
        case .bytes(let b): return String(decoding: b, as: UTF8.self)
        default: return nil
        }
    }

    /// Element type of a storage class (`torch.FloatStorage`, `torch.cuda.HalfStorage`, `torch.UntypedStorage`, ...).
    static func storageDType(module: String, name: String) -> DType? {
        guard module == "torch" || module.hasPrefix("torch.") else { return nil }
        switch name {
        case "FloatStorage": return .float32
        case "HalfStorage": return .float16
        case "BFloat16Storage": return .bfloat16
        case "DoubleStorage": return .float64
        case "LongStorage": return .int64
        case "IntStorage": return .int32
        case "ShortStorage": return .int16
        case "CharStorage": return .int8
        case "ByteStorage", "UntypedStorage": return .uint8
        case "BoolStorage": return .bool
        default: return nil
        }
    }

    /// Element type of a dtype object (`torch.float32`, `torch.half`, ...).
    static func dtype(module: String, name: String) -> DType? {
        guard module == "torch" else { return nil }
        switch name {
        case "float32", "float": return .float32
        case "float16", "half": return .float16
        case "bfloat16": return .bfloat16
        case "float64", "double": return .float64
        case "int64", "long": return .int64
        case "int32", "int": return .int32
        case "int16", "short": return .int16
        case "int8": return .int8
        case "uint8": return .uint8
        case "bool": return .bool
        default: return nil
        }
    }
}
