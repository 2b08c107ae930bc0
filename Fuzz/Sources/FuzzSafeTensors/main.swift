// Fuzz target: safetensors files (header length, JSON header, dtypes, shapes and offsets).
// Any input must give tensors or a CheckpointError; a trap, sanitizer report or hang is a bug.

import FuzzSupport
import Checkpoint

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    _ = try? SafeTensors.parse(Array(UnsafeBufferPointer(start: data, count: size)), path: "fuzz.safetensors")
    return 0
}

runLibFuzzer(fuzzSafeTensors)
