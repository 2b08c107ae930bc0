// stm-analyze: checks on a loaded model before any analysis runs. Weights that hold NaN or infinite
// values make every number an analysis prints meaningless (a classification of "nan%", ERF maps that
// are all skipped), so they get one warning naming the tensors, and the analyses refuse them unless
// --allow-nonfinite is given.

import Checkpoint
import Foundation
import Models

/// The tensors of `loaded`'s checkpoint that hold NaN or infinite values, as "name (k of n)" texts.
func nonFiniteTensorNames(_ loaded: LoadedModel) -> [String] {
    guard let state = loaded.state else { return [] }
    return state.nonFiniteTensors.map { bad in "\(bad.name) (\(bad.count) of \(state[bad.name]?.count ?? 0))" }
}

/// Warns once when the checkpoint's weights are not all finite and, unless `allow`, refuses the model.
/// `analysis` names what would be computed (for the error line).
func checkFiniteWeights(_ loaded: LoadedModel, allow: Bool, analysis: String) throws {
    let bad = nonFiniteTensorNames(loaded)
    guard !bad.isEmpty, let path = loaded.checkpoint else { return }
    let shown = bad.prefix(6).joined(separator: ", ") + (bad.count > 6 ? ", and \(bad.count - 6) more" : "")
    warn("\(path): \(bad.count) tensor\(bad.count == 1 ? " holds" : "s hold") NaN or infinite values: \(shown)")
    if !allow {
        throw CLIError("\(path): the checkpoint's weights are not all finite, so \(analysis) would give NaN (hint: the file is damaged or its training diverged; --allow-nonfinite runs it anyway)")
    }
}

/// A clause blaming the checkpoint when its weights are not all finite ("" when they are).
func nonFiniteWeightsClause(_ loaded: LoadedModel) -> String {
    let bad = nonFiniteTensorNames(loaded)
    guard !bad.isEmpty, let path = loaded.checkpoint else { return "" }
    return "; the cause is the checkpoint \(path), whose weights hold NaN or infinite values (\(bad.prefix(3).joined(separator: ", "))\(bad.count > 3 ? ", ..." : ""))"
}
