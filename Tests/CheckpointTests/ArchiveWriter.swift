// Test support: a tiny writer of `torch.save`-style archives, so that the tests can build checkpoints
// with exactly the features they exercise (dtypes, views, shared storages, odd objects, corruption)
// without torch. `Pickler` emits protocol-2 opcodes the way CPython's pickler lays out the objects that
// torch saves (GLOBAL + argument tuple + REDUCE, BINPERSID for storages, memo PUT/GET for repeats);
// `zipStored` writes a zip archive of stored entries with torch's 64-byte data alignment and zip64 end
// records. It leaves out everything the reader does not need (compression, timestamps, file modes).

import Foundation

/// A storage record to be written as `data/<key>`.
struct FakeStorage {
    var key: String
    /// Storage class name under `torch`, e.g. `FloatStorage`, or `UntypedStorage`.
    var storageClass: String
    var numel: Int
}

/// A tensor as `_rebuild_tensor_v2` describes it (or v3 when `v3DType` names a `torch` dtype).
struct FakeTensor {
    var storage: FakeStorage
    var offset = 0
    var shape: [Int]
    var stride: [Int]
    var v3DType: String? = nil
    var asParameter = false

    /// A contiguous row-major tensor over the whole storage.
    init(storage: FakeStorage, shape: [Int]) {
        self.storage = storage
        self.shape = shape
        var s = 1
        var strides: [Int] = []
        for d in shape.reversed() { strides.insert(s, at: 0); s *= d }
        self.stride = strides
    }

    init(storage: FakeStorage, offset: Int, shape: [Int], stride: [Int]) {
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.stride = stride
    }
}

/// Python objects the writer can pickle.
indirect enum Py {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case str(String)
    case tuple([Py])
    case list([Py])
    case dict([(String, Py)])
    /// `collections.OrderedDict` as torch state dicts are: REDUCE of an empty tuple, SETITEMS, then
    /// BUILD with a `_metadata` attribute dict.
    case orderedDict([(String, Py)])
    case tensor(FakeTensor)
    /// `module.name(*args)` by REDUCE, then BUILD with `state` when given.
    case reduce(module: String, name: String, args: [Py], state: Py?)
    /// `module.name.__new__(cls)` by NEWOBJ, then BUILD with `state`.
    case newobj(module: String, name: String, state: Py?)
    /// Raw opcodes, emitted as they are.
    case raw([UInt8])
}

/// Emits protocol-2 pickles with a memo, like CPython's `pickle.Pickler`.
struct Pickler {
    private(set) var bytes: [UInt8] = [0x80, 0x02]
    private var memoOfText: [String: Int] = [:]
    private var memoCount = 0

    static func pickle(_ object: Py) -> [UInt8] {
        var p = Pickler()
        p.write(object)
        p.bytes.append(0x2e)  // STOP
        return p.bytes
    }

    private mutating func u32(_ v: Int) {
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }

    private mutating func put() {
        if memoCount < 256 {
            bytes += [0x71, UInt8(memoCount)]  // BINPUT
        } else {
            bytes.append(0x72)  // LONG_BINPUT
            u32(memoCount)
        }
        memoCount += 1
    }

    private mutating func get(_ index: Int) {
        if index < 256 {
            bytes += [0x68, UInt8(index)]  // BINGET
        } else {
            bytes.append(0x6a)  // LONG_BINGET
            u32(index)
        }
    }

    /// Text-valued objects (strings, globals) are memoised by value, as CPython does by identity.
    private mutating func memoised(_ id: String, _ emit: (inout Pickler) -> Void) {
        if let index = memoOfText[id] { get(index); return }
        emit(&self)
        memoOfText[id] = memoCount
        put()
    }

    mutating func global(_ module: String, _ name: String) {
        memoised("global \(module) \(name)") { p in
            p.bytes.append(0x63)  // GLOBAL
            p.bytes += Array("\(module)\n\(name)\n".utf8)
        }
    }

    mutating func write(_ object: Py) {
        switch object {
        case .none: bytes.append(0x4e)
        case .bool(let b): bytes.append(b ? 0x88 : 0x89)
        case .int(let v):
            if v >= 0 && v < 256 {
                bytes += [0x4b, UInt8(v)]  // BININT1
            } else if v >= 0 && v < 65536 {
                bytes += [0x4d, UInt8(v & 0xff), UInt8(v >> 8)]  // BININT2
            } else if v >= Int(Int32.min) && v <= Int(Int32.max) {
                bytes.append(0x4a)  // BININT
                u32(v)
            } else {
                bytes += [0x8a, 8]  // LONG1
                for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
            }
        case .float(let x):
            bytes.append(0x47)  // BINFLOAT, big-endian
            for i in (0..<8).reversed() { bytes.append(UInt8(truncatingIfNeeded: x.bitPattern >> (8 * UInt64(i)))) }
        case .str(let s):
            memoised("str \(s)") { p in
                let utf8 = Array(s.utf8)
                p.bytes.append(0x58)  // BINUNICODE
                p.u32(utf8.count)
                p.bytes += utf8
            }
        case .tuple(let items):
            switch items.count {
            case 0: bytes.append(0x29)
            case 1...3:
                for item in items { write(item) }
                bytes.append([0x85, 0x86, 0x87][items.count - 1])
            default:
                bytes.append(0x28)  // MARK
                for item in items { write(item) }
                bytes.append(0x74)  // TUPLE
            }
            put()
        case .list(let items):
            bytes.append(0x5d)  // EMPTY_LIST
            put()
            if !items.isEmpty {
                bytes.append(0x28)
                for item in items { write(item) }
                bytes.append(0x65)  // APPENDS
            }
        case .dict(let pairs):
            bytes.append(0x7d)  // EMPTY_DICT
            put()
            setItems(pairs)
        case .orderedDict(let pairs):
            global("collections", "OrderedDict")
            bytes.append(0x29)  // EMPTY_TUPLE
            bytes.append(0x52)  // REDUCE
            put()
            setItems(pairs)
            // The `_metadata` attribute torch attaches to state dicts.
            write(.dict([("_metadata", .dict([("", .dict([("version", .int(1))]))]))]))
            bytes.append(0x62)  // BUILD
        case .tensor(let t):
            if t.asParameter { global("torch._utils", "_rebuild_parameter") }
            global("torch._utils", t.v3DType == nil ? "_rebuild_tensor_v2" : "_rebuild_tensor_v3")
            bytes.append(0x28)  // MARK
            writePersistentID(t.storage)
            write(.int(t.offset))
            write(.tuple(t.shape.map { .int($0) }))
            write(.tuple(t.stride.map { .int($0) }))
            write(.bool(false))
            writeEmptyOrderedDict()
            if let dtype = t.v3DType { global("torch", dtype) }
            bytes.append(0x74)  // TUPLE
            put()
            bytes.append(0x52)  // REDUCE
            put()
            if t.asParameter {
                // _rebuild_parameter(data, requires_grad, backward_hooks), data already on the stack.
                write(.bool(true))
                writeEmptyOrderedDict()
                bytes.append(0x87)  // TUPLE3
                put()
                bytes.append(0x52)  // REDUCE
                put()
            }
        case .reduce(let module, let name, let args, let state):
            global(module, name)
            write(.tuple(args))
            bytes.append(0x52)  // REDUCE
            put()
            if let state {
                write(state)
                bytes.append(0x62)  // BUILD
            }
        case .newobj(let module, let name, let state):
            global(module, name)
            bytes.append(0x29)  // EMPTY_TUPLE
            bytes.append(0x81)  // NEWOBJ
            put()
            if let state {
                write(state)
                bytes.append(0x62)  // BUILD
            }
        case .raw(let raw):
            bytes += raw
        }
    }

    private mutating func setItems(_ pairs: [(String, Py)]) {
        guard !pairs.isEmpty else { return }
        bytes.append(0x28)  // MARK
        for (k, v) in pairs {
            write(.str(k))
            write(v)
        }
        bytes.append(0x75)  // SETITEMS
    }

    /// `('storage', torch.<Class>, key, 'cpu', numel)` followed by BINPERSID.
    private mutating func writePersistentID(_ s: FakeStorage) {
        bytes.append(0x28)  // MARK
        write(.str("storage"))
        global("torch", s.storageClass)
        write(.str(s.key))
        write(.str("cpu"))
        write(.int(s.numel))
        bytes.append(0x74)  // TUPLE
        put()
        bytes.append(0x51)  // BINPERSID
    }

    /// `collections.OrderedDict()`, as torch writes the backward-hooks argument.
    private mutating func writeEmptyOrderedDict() {
        global("collections", "OrderedDict")
        bytes += [0x29, 0x52]  // EMPTY_TUPLE, REDUCE
        put()
    }
}

// MARK: - zip

private let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

func crc32(_ data: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in data { c = crcTable[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
    return c ^ 0xFFFF_FFFF
}

private extension Array where Element == UInt8 {
    mutating func le16(_ v: Int) { append(UInt8(v & 0xff)); append(UInt8((v >> 8) & 0xff)) }
    mutating func le32(_ v: Int) { for i in 0..<4 { append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func le64(_ v: Int) { for i in 0..<8 { append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
}

/// Options for `zipStored`.
struct ZipOptions {
    /// Write the zip64 end record and locator (torch always does).
    var zip64End = true
    /// Put sizes and offsets in zip64 extra fields, with 0xFFFFFFFF in the central directory.
    var zip64Fields = false
    /// The compression method recorded for entries (the data is written as is).
    var method = 0
}

/// A zip archive of stored entries, data aligned to 64 bytes through local extra fields as torch does.
func zipStored(_ files: [(String, [UInt8])], options: ZipOptions = ZipOptions()) -> [UInt8] {
    var out: [UInt8] = []
    var central: [UInt8] = []
    for (name, data) in files {
        let nameBytes = Array(name.utf8)
        let offset = out.count
        let unpadded = offset + 30 + nameBytes.count
        var pad = (64 - unpadded % 64) % 64
        if pad > 0 && pad < 4 { pad += 64 }
        out.le32(0x0403_4b50)
        out.le16(20); out.le16(0); out.le16(options.method); out.le16(0); out.le16(0)
        out.le32(Int(crc32(data))); out.le32(data.count); out.le32(data.count)
        out.le16(nameBytes.count); out.le16(pad)
        out += nameBytes
        if pad > 0 {
            out.le16(0xCAFE); out.le16(pad - 4)  // an ignorable padding field
            out += [UInt8](repeating: 0x5a, count: pad - 4)
        }
        out += data

        central.le32(0x0201_4b50)
        central.le16(45); central.le16(45); central.le16(0); central.le16(options.method); central.le16(0); central.le16(0)
        central.le32(Int(crc32(data)))
        if options.zip64Fields {
            central.le32(0xFFFF_FFFF); central.le32(0xFFFF_FFFF)
        } else {
            central.le32(data.count); central.le32(data.count)
        }
        central.le16(nameBytes.count); central.le16(options.zip64Fields ? 28 : 0); central.le16(0)
        central.le16(0); central.le16(0); central.le32(0)
        central.le32(options.zip64Fields ? 0xFFFF_FFFF : offset)
        central += nameBytes
        if options.zip64Fields {
            central.le16(1); central.le16(24)
            central.le64(data.count); central.le64(data.count); central.le64(offset)
        }
    }
    let directoryOffset = out.count
    out += central
    if options.zip64End {
        let recordOffset = out.count
        out.le32(0x0606_4b50); out.le64(44); out.le16(45); out.le16(45); out.le32(0); out.le32(0)
        out.le64(files.count); out.le64(files.count); out.le64(central.count); out.le64(directoryOffset)
        out.le32(0x0706_4b50); out.le32(0); out.le64(recordOffset); out.le32(1)
    }
    out.le32(0x0605_4b50); out.le16(0); out.le16(0)
    out.le16(files.count); out.le16(files.count)
    out.le32(central.count); out.le32(options.zip64End ? 0xFFFF_FFFF : directoryOffset); out.le16(0)
    return out
}

/// A whole `torch.save`-style archive: `<prefix>/data.pkl`, `<prefix>/byteorder`, `<prefix>/data/<key>`.
func torchArchive(_ object: Py, storages: [(String, [UInt8])], prefix: String = "archive",
                  byteorder: String? = "little", pickle: [UInt8]? = nil, options: ZipOptions = ZipOptions()) -> [UInt8] {
    var files: [(String, [UInt8])] = [("\(prefix)/data.pkl", pickle ?? Pickler.pickle(object))]
    if let byteorder { files.append(("\(prefix)/byteorder", Array(byteorder.utf8))) }
    for (key, data) in storages { files.append(("\(prefix)/data/\(key)", data)) }
    files.append(("\(prefix)/version", Array("3\n".utf8)))
    return zipStored(files, options: options)
}

// MARK: - storage bytes

func float32Bytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt32($0))) } }
}

func float64Bytes(_ values: [Double]) -> [UInt8] {
    values.flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt64($0))) } }
}

func uint16Bytes(_ values: [UInt16]) -> [UInt8] {
    values.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] }
}

func int64Bytes(_ values: [Int64]) -> [UInt8] {
    values.flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * Int64($0))) } }
}

func int32Bytes(_ values: [Int32]) -> [UInt8] {
    values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * Int32($0))) } }
}
