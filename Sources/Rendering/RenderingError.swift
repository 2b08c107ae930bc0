// Rendering: the error type of the Rendering module: one line naming what failed (a font file, a colour
// map name, a figure's input) and the problem, with a hint where one helps. PNG write failures surface as
// Imaging's `ImagingError` unchanged.

/// A rendering failure: one line naming the subject and the problem.
public struct RenderingError: Error, CustomStringConvertible, Sendable {
    /// What failed: a file path, a colour-map name or a figure input.
    public var subject: String
    /// What went wrong.
    public var problem: String
    /// How to fix it, when known.
    public var hint: String?

    /// An error about `subject`.
    public init(_ subject: String, _ problem: String, hint: String? = nil) {
        self.subject = subject
        self.problem = problem
        self.hint = hint
    }

    public var description: String {
        var s = "\(subject): \(problem)"
        if let hint { s += " (hint: \(hint))" }
        return s
    }
}
