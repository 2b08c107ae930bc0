// Models: parameters and modules. A module's stored property names are the segments of its
// checkpoint keys (`norm1`, `attn`, `gamma_1`, arrays for numbered children such as `stages.0.1`),
// so the key of every parameter follows from the module tree by reflection, and loading is a short,
// strict loop over those keys (see `Loading.swift`). Buffers that are recomputed rather than loaded
// (`relative_position_index`, `attn_mask`, `num_batches_tracked`) are not parameters.

import Checkpoint
import TensorCore

/// How an untrained parameter is initialised (the reference's `_init_weights` rules).
public enum ParameterInit: Sendable {
    case zeros
    case ones
    case constant(Float)
    /// Normal with this standard deviation, truncated to [-2, 2] (timm's `trunc_normal_` bounds).
    case truncatedNormal(std: Float)
    /// Normal with this standard deviation, untruncated (`torch.randn * std`).
    case normal(std: Float)
    /// Layer scale: the model's `layer_scale_init_value`.
    case layerScale
}

/// One learnable tensor (or loaded buffer) in the checkpoint's own layout and shape.
public final class Parameter: @unchecked Sendable {
    /// Shape as stored in the checkpoint (PyTorch order).
    public let shape: [Int]
    /// Rule for untrained models.
    public let initializer: ParameterInit
    /// Current value, checkpoint layout. Zeros until loaded or initialised.
    public internal(set) var tensor: Tensor

    public init(_ shape: [Int], init initializer: ParameterInit) {
        self.shape = shape
        self.initializer = initializer
        tensor = Tensor.zeros(shape)
    }

    /// The values as an array (checkpoint layout).
    public var values: [Float] { tensor.values }

    /// Sets the value (checkpoint layout, `count` values) and freezes it; modules holding the
    /// parameter must then be prepared again (`Module.prepareAll`).
    public func assign(_ values: [Float]) {
        tensor = Tensor(shape: shape, values: values).frozen()
    }

    /// Element count.
    public var count: Int { elementCount(shape) }
}

/// A node of the model tree. Conformers get key paths from their stored property names; a module
/// whose keys differ from its properties overrides `members`.
public protocol Module: AnyObject {
    /// (key segment, value) for each parameter, child module or array of children.
    var members: [(String, Any)] { get }
    /// Called after parameters are loaded or initialised: derive kernel layouts and caches here.
    func prepare()
}

extension Module {
    public var members: [(String, Any)] {
        Mirror(reflecting: self).children.compactMap { child in child.label.map { ($0, child.value) } }
    }

    public func prepare() {}

    /// Every parameter below this module with its full key, in declaration order.
    public func namedParameters(prefix: String = "") -> [(String, Parameter)] {
        var out: [(String, Parameter)] = []
        collect(prefix: prefix, into: &out)
        return out
    }

    func collect(prefix: String, into out: inout [(String, Parameter)]) {
        for (name, value) in members {
            visitMember(value, key: prefix + name, into: &out)
        }
    }

    /// Calls `prepare()` on this module and every module below it (children first).
    public func prepareAll() {
        for (_, value) in members { forEachModule(value) { $0.prepareAll() } }
        prepare()
    }

    /// Total number of parameter elements (BatchNorm running statistics included, as PyTorch's
    /// `state_dict` would count them? No: like `sum(p.numel() for p in model.parameters())`, buffers excluded).
    public var parameterCount: Int {
        namedParameters().filter { !isBufferKey($0.0) }.reduce(0) { $0 + $1.1.count }
    }
}

private func visitMember(_ value: Any, key: String, into out: inout [(String, Parameter)]) {
    if let p = value as? Parameter {
        out.append((key, p))
    } else if let m = value as? Module {
        m.collect(prefix: key + ".", into: &out)
    } else if let list = value as? [Module] {
        for (i, m) in list.enumerated() { m.collect(prefix: "\(key).\(i).", into: &out) }
    } else if let list = value as? [[Module]] {
        for (i, row) in list.enumerated() {
            for (j, m) in row.enumerated() { m.collect(prefix: "\(key).\(i).\(j).", into: &out) }
        }
    } else {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional, let inner = mirror.children.first?.value {
            visitMember(inner, key: key, into: &out)
        }
    }
}

private func forEachModule(_ value: Any, _ f: (Module) -> Void) {
    if let m = value as? Module { f(m) }
    else if let list = value as? [Module] { list.forEach(f) }
    else if let list = value as? [[Module]] { list.joined().forEach(f) }
    else {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional, let inner = mirror.children.first?.value { forEachModule(inner, f) }
    }
}

/// Keys of loaded buffers that PyTorch does not count as parameters.
func isBufferKey(_ key: String) -> Bool {
    key.hasSuffix("running_mean") || key.hasSuffix("running_var")
}

/// Keys of buffers that checkpoints carry but the toolkit recomputes or does not need.
public func isRecomputedBufferKey(_ key: String) -> Bool {
    key.hasSuffix("relative_position_index") || key.hasSuffix("attn_mask") || key.hasSuffix("num_batches_tracked")
}
