// Fuzz support: the checkpoint readers map files, so each input is written to one scratch file per
// process (in $TMPDIR, /dev/shm when it exists, else /tmp) and read back from there.

import Foundation

/// A file that holds the current fuzz input.
public enum ScratchFile {
    /// The scratch file's path, unique to this process.
    public static let path: String = {
        let dir = ProcessInfo.processInfo.environment["TMPDIR"]
            ?? (FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : "/tmp")
        return "\(dir)/stm-fuzz-\(getpid()).bin"
    }()

    /// Replaces the scratch file's contents with `count` bytes at `data`.
    public static func write(_ data: UnsafePointer<UInt8>?, _ count: Int) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "cannot write \(path)")
        var done = 0
        while done < count, let data {
            let n = Foundation.write(fd, data + done, count - done)
            precondition(n > 0, "cannot write \(path)")
            done += n
        }
        close(fd)
    }
}

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// Runs libFuzzer's driver (its command-line flags, corpus folders, -runs, -max_total_time) on
/// `testOneInput`. Each target's main.swift calls this, so the executable has an ordinary Swift entry
/// point and libFuzzer's own `main` is not needed.
public func runLibFuzzer(_ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}
