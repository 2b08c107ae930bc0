// Rendering: the error type of the Rendering module: one line naming what failed (a font file, a colour
// map name, a figure's input) and the problem, with a hint where one helps. PNG write failures surface as
// Imaging's `ImagingError` unchanged.

@_exported import Diagnostics

/// Errors of this module: one line naming the subject and the problem (see Diagnostics).
public typealias RenderingError = ToolError
