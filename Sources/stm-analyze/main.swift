// stm-analyze: entry point. Parses the command line, runs the subcommand, and turns every failure
// into one line on stderr and exit status 1 (help and --version exit 0); a check that tripped on a
// run's results (invariance --fail-below) exits with status 2.

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
    var command = try STMAnalyze.parseAsRoot(joiningNegativeValues(Array(CommandLine.arguments.dropFirst())))
    try command.run()
} catch let tripped as CheckTripped {
    // The run worked and wrote its outputs; a check on its results failed (see README, Exit statuses).
    FileHandle.standardError.write(Data(("stm-analyze: check failed: " + tripped.description + "\n").utf8))
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
    case let e as NSError where e.domain == NSCocoaErrorDomain || e.domain == NSPOSIXErrorDomain: message = describeFileError(e)
    default: message = STMAnalyze.message(for: error) + " (see 'stm-analyze help')"
    }
    FileHandle.standardError.write(Data(("stm-analyze: error: " + message.replacingOccurrences(of: "\n", with: " ") + "\n").utf8))
    exit(1)
}
