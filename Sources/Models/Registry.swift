// Models: the block registry. Maps each family to the function that builds one of its blocks from
// the model config and the block's place (stage, depth, resolution at the config's img_size).
// Adding a mixer means writing its block and registering it here.

import TensorCore

/// Where a block sits and what it is built from.
public struct BlockContext {
    public var config: ArchConfig
    /// Stage index, 0...3.
    public var stage: Int
    /// Index of the block within its stage.
    public var depth: Int
    /// Channels of the stage.
    public var dim: Int
    /// The stage's map side at `config.img_size` (img_size / 4 / 2^stage): what the checkpoint
    /// stores (PVT's position grid). Geometry (windows, shifts, padding) follows the running map instead.
    public var resolution: Int
    /// True for the detection backbone's form of the block (see the detection reference README).
    public var detection: Bool = false

    public var eps: Float { Float(config.layer_norm_eps) }
    public var settings: BlockSettings { config.block_kwargs }
}

/// A mixer block: x [N,H,W,C] -> [N,H,W,C].
public protocol Block: Module {
    func callAsFunction(_ x: Tensor) -> Tensor
}

/// Family -> block builder.
public enum BlockRegistry {
    public typealias Factory = (BlockContext) -> Block

    nonisolated(unsafe) private static var table: [Family: Factory] = [
        .convnext: { UnifiedConvNeXtBlock($0) },
        .swin: { SwinBlock($0) },
        .pvt: { PvtBlock($0) },
        .halo: { UnifiedHaloBlock($0) },
        .dcnv3: { DCNv3Block($0) },
    ]

    /// Registers (or replaces) the builder for a family.
    public static func register(_ family: Family, _ factory: @escaping Factory) { table[family] = factory }

    /// True when the family has a block.
    public static func supports(_ family: Family) -> Bool { table[family] != nil }

    static func factory(for family: Family) -> Factory {
        guard let f = table[family] else { preconditionFailure("no block registered for \(family.rawValue); check BlockRegistry.supports first") }
        return f
    }
}
