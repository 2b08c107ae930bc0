// Models: the twenty released presets, `unified_{convnext,swin,halo,pvt,dcn_v3}_{micro,tiny,small,base}`,
// with the dims, depths, heads and block settings of the study's model factories
// (classification/models/model_factory/*.py of STM-Evaluation). Drop-path rates do not matter at
// inference and are left out.

/// Released architectures by name.
public enum Presets {
    /// The four model scales.
    public static let scales = ["micro", "tiny", "small", "base"]

    /// All preset names, family by family.
    public static var names: [String] {
        Family.allCases.flatMap { f in scales.map { "unified_\(f.presetName)_\($0)" } }
    }

    /// The preset called `name`, or nil.
    public static func named(_ name: String) -> ArchConfig? {
        for f in Family.allCases {
            for s in scales where "unified_\(f.presetName)_\(s)" == name {
                var c = config(f, s)
                c.name = name
                return c
            }
        }
        return nil
    }

    private static func doubling(_ base: Int) -> [Int] { (0..<4).map { base << $0 } }

    static func config(_ family: Family, _ scale: String) -> ArchConfig {
        switch family {
        case .convnext:
            let (dims, depths): ([Int], [Int]) = {
                switch scale {
                case "micro": return ([32, 64, 128, 256], [3, 3, 8, 3])
                case "tiny": return ([96, 192, 384, 768], [2, 2, 9, 2])
                case "small": return ([96, 192, 384, 768], [2, 2, 24, 2])
                default: return ([128, 256, 512, 1024], [2, 2, 24, 2])
                }
            }()
            return ArchConfig(family: .convnext, dims: dims, depths: depths, block_kwargs: BlockSettings())
        case .swin, .halo:
            let (dims, depths, heads): ([Int], [Int], [Int]) = {
                switch scale {
                case "micro": return (doubling(32), [2, 2, 9, 2], [1, 2, 4, 8])
                case "tiny": return (doubling(96), [2, 2, 6, 2], [3, 6, 12, 24])
                case "small": return (doubling(96), [2, 2, 18, 2], [3, 6, 12, 24])
                default: return (doubling(128), [2, 2, 18, 2], [4, 8, 16, 32])
                }
            }()
            let settings = family == .swin
                ? BlockSettings(num_heads: heads, window_size: 7)
                : BlockSettings(num_heads: heads, block_size: 7, halo_size: 3, pos_embed_type: "query_related")
            return ArchConfig(family: family, dims: dims, depths: depths, block_kwargs: settings)
        case .pvt:
            let (dims, depths, mlp): ([Int], [Int], [Double]) = {
                switch scale {
                case "micro": return ([32, 64, 160, 256], [2, 2, 3, 2], [8, 8, 4, 4])
                case "tiny": return ([64, 128, 320, 512], [3, 4, 9, 3], [8, 8, 4, 4])
                case "small": return ([64, 128, 320, 512], [3, 4, 21, 3], [8, 8, 4, 4])
                default: return ([64, 128, 320, 512], [3, 8, 45, 3], [4, 4, 4, 4])
                }
            }()
            return ArchConfig(family: .pvt, dims: dims, depths: depths,
                              block_kwargs: BlockSettings(num_heads: [1, 2, 5, 8], mlp_ratios: mlp, qkv_bias: true, sr_ratios: [8, 4, 2, 1]))
        case .dcnv3:
            let (dims, depths, heads): ([Int], [Int], [Int]) = {
                switch scale {
                case "micro": return (doubling(32), [2, 2, 9, 2], [2, 4, 8, 16])
                case "tiny": return (doubling(64), [4, 4, 18, 4], [4, 8, 16, 32])
                case "small": return (doubling(80), [4, 4, 21, 4], [5, 10, 20, 40])
                default: return (doubling(112), [4, 4, 21, 4], [7, 14, 28, 56])
                }
            }()
            return ArchConfig(family: .dcnv3, dims: dims, depths: depths,
                              block_kwargs: BlockSettings(num_heads: heads, deform_points: 9, kernel_size: 3, deform_padding: true))
        }
    }
}
