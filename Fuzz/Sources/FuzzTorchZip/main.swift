// Fuzz target: torch.save zip archives (zip directory, CRC-32, the pickle interpreter, storages).
// Any input must give a StateDict or a CheckpointError; a trap, sanitizer report or hang is a bug.

@testable import Checkpoint
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorchZip(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    // Only zip inputs reach this reader through readCheckpoint; others are the other targets' business.
    guard size >= 4, let data, data[0] == 0x50, data[1] == 0x4b else { return 0 }
    ScratchFile.write(data, size)
    _ = try? readCheckpoint(path: ScratchFile.path)
    return 0
}

runLibFuzzer(fuzzTorchZip)
