// stm-analyze: entry point. Parses the command line, runs the subcommand, and turns every failure
// into one line on stderr and exit status 1 (help and --version exit 0); a tripped check (CheckTripped)
// exits with status 2.

import ArgumentParser
import Checkpoint
import Foundation
import Imaging
import Models
import Rendering
import TensorCore

// OpenBLAS is only bench's yardstick: give it its fastest kernels there.
if CommandLine.arguments.dropFirst().first == "bench" { BLASInfo.restartWithFastKernelsIfNeeded() }

do {
    var command = try STMAnalyze.parseAsRoot()
    try command.run()
} catch let tripped as CheckTripped {
    // The run worked; a check it was asked to make failed.
    FileHandle.standardError.write(Data(("stm-analyze: check tripped: " + tripped.description + "\n").utf8))
    exit(CheckTripped.exitStatus)
} catch {
    let code = STMAnalyze.exitCode(for: error)
    if code == .success {
        STMAnalyze.exit(withError: error)  // --help, --version
    }
    let message: String
    switch error {
    case let e as ToolError: message = e.description
    case let e as CLIError: message = e.description
    default: message = STMAnalyze.message(for: error) + " (see 'stm-analyze help')"
    }
    FileHandle.standardError.write(Data(("stm-analyze: error: " + message.replacingOccurrences(of: "\n", with: " ") + "\n").utf8))
    exit(1)
}
