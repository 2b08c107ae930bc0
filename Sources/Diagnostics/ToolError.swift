// Diagnostics: the one error type every library of stm-analyze throws for bad input. Its text is a
// single line, "subject: problem (hint: ...)", naming the file, option or value at fault, so the
// command line can print it as it is. Each library exposes it under its own name (CheckpointError,
// ImagingError, ModelError, RenderingError, InvarianceError) for readable call sites.

/// A failure caused by the user's input: one line naming the subject and the problem, with a hint.
public struct ToolError: Error, CustomStringConvertible, Sendable {
    /// What failed: a file path, an option, a colour-map name, a key.
    public var subject: String
    /// What is wrong with it.
    public var problem: String
    /// How to fix it, when there is something to say.
    public var hint: String?

    /// An error about `subject`.
    public init(_ subject: String, _ problem: String, hint: String? = nil) {
        self.subject = subject
        self.problem = problem
        self.hint = hint
    }

    /// The subject when it is a file (the same value).
    public var path: String { subject }

    /// "subject: problem (hint: ...)", one line.
    public var description: String {
        "\(subject): \(problem)" + (hint.map { " (hint: \($0))" } ?? "")
    }
}
