// Fuzz target: legacy (pre-1.6) torch.save files: five pickles, then raw storages.
// Any input must give a StateDict or a CheckpointError; a trap, sanitizer report or hang is a bug.

@testable import Checkpoint
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLegacyTorch(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard size > 0, let data else { return 0 }
    ScratchFile.write(data, size)
    guard let file = try? MappedFile(path: ScratchFile.path), isLegacyTorchFile(file.bytes), data[0] == 0x80 else { return 0 }
    _ = try? LegacyTorchFile.read(file)
    return 0
}

runLibFuzzer(fuzzLegacyTorch)
