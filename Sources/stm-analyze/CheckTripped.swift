// stm-analyze: the "a check tripped" outcome: the run itself succeeded (its outputs are written), but a
// regression check it was asked to make failed. main.swift turns it into exit status 2, so CI can tell it
// from status 1, "could not run".

/// A regression check that failed; exit status 2.
struct CheckTripped: Error, CustomStringConvertible {
    /// The process exit status of a tripped check.
    static let exitStatus: Int32 = 2
    /// One line saying which check tripped and by how much.
    var description: String
    init(_ description: String) { self.description = description }
}
