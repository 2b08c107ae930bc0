// Analysis: the ERF's pictures. One heatmap per stage and one row of all stages on a shared scale,
// of the scaled, normalised mean map (so every figure spans 0 to 1 and figures of different models
// share one colour scale), titled with the model and the stage's ERF@0.5; and the overlay of a map on
// its image. Drawing itself is Rendering's; writing files is the CLI's.

import Imaging
import Rendering

/// The title of a stage panel, e.g. "stage 4  ERF@0.5 = 0.362" (">" when the threshold was not reached).
public func erfStageLabel(_ stage: ERFStage) -> String {
    guard let half = stage.ratios.first(where: { $0.threshold == 0.5 }) ?? stage.ratios.first else { return "stage \(stage.stage)" }
    return "stage \(stage.stage)  ERF@\(half.threshold) = \(half.reached ? "" : ">")\(String(format: "%.3f", half.sideRatio))"
}

/// The colour-bar caption for a scaling.
public func erfScalingLabel(_ scaling: ERFScaling) -> String {
    switch scaling {
    case .log: return "log10(contribution + 1), normalised"
    case .power(let p): return "contribution^\(p), normalised"
    }
}

/// The heatmap of one stage of `result`, titled "<model>: <stage label>".
public func erfStageFigure(_ stage: ERFStage, of result: ERFResult, model: String, colormap: Colormap) throws -> HeatmapFigure {
    let side = result.settings.size
    let map = try ScalarMap(height: side, width: side, values: normalisedMap(stage.mean, scaling: result.settings.scaling))
    var fig = HeatmapFigure(map: map, title: "\(model): \(erfStageLabel(stage))", colormap: colormap, valueRange: 0...1)
    fig.colorbarLabel = erfScalingLabel(result.settings.scaling)
    return fig
}

/// All stages of `result` side by side on the shared 0-1 scale.
public func erfStageRowFigure(_ result: ERFResult, model: String, colormap: Colormap) throws -> StageRowFigure {
    let side = result.settings.size
    let panels = try result.stages.map { stage in
        (map: try ScalarMap(height: side, width: side, values: normalisedMap(stage.mean, scaling: result.settings.scaling)),
         title: erfStageLabel(stage))
    }
    let n = result.images.count
    var row = StageRowFigure(panels: panels,
                                 title: "\(model): effective receptive fields (\(n) image\(n == 1 ? "" : "s"), \(side) px, \(result.settings.resize.rawValue))",
                                 colormap: colormap, valueRange: 0...1)
    row.colorbarLabel = erfScalingLabel(result.settings.scaling)
    return row
}

/// A stage's map blended over the image it came from (jet, 0.8 map / 0.2 image, as the study's
/// single-image script does), titled with the model and stage, with a colour bar. `image` is the
/// network input (already resized).
public func erfTitledOverlayFigure(_ stage: ERFStage, of result: ERFResult, image: Image8, model: String) throws -> TitledOverlayFigure {
    TitledOverlayFigure(overlay: try erfOverlayFigure(stage, of: result, image: image),
                        title: "\(model): \(erfStageLabel(stage))", colorbarLabel: erfScalingLabel(result.settings.scaling))
}

/// A stage's map blended over the image it came from (jet, 0.8 map / 0.2 image, as the study's
/// single-image script does). `image` is the network input (already resized).
public func erfOverlayFigure(_ stage: ERFStage, of result: ERFResult, image: Image8) throws -> OverlayFigure {
    let side = result.settings.size
    let map = try ScalarMap(height: side, width: side, values: normalisedMap(stage.mean, scaling: result.settings.scaling))
    return try OverlayFigure(map: map, image: image, colormap: try Colormap.named("jet"), valueRange: 0...1)
}
