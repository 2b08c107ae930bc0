"""Fixtures for Tests/TensorCoreTests/AttentionVariantTests.swift: the attention activations and the
depth-wise attention of "Interpret Vision Transformers as ConvNets with Dynamic Convolutions",
written here from their formulas as a short PyTorch module (float64), independently of the Swift
kernels. For each case: the inputs, the output, and the input gradients of sum(out * w).

Run: python make_fixtures.py > attention_variants.json   (torch, CPU build is enough)
"""
import json
import torch

torch.manual_seed(13)
DT = torch.float64


class VariantAttention(torch.nn.Module):
    """act(q k^T / sqrt(C_h) + bias) v per head; absent keys (mask < 0) weigh 0 for non-softmax."""

    def __init__(self, activation, keys, head_dim, scale_reading="keys"):
        super().__init__()
        self.activation = activation
        self.divisor = keys if scale_reading == "keys" else head_dim
        if activation.startswith("layernorm"):
            self.logit_norm = torch.nn.LayerNorm(keys, eps=1e-5, dtype=DT)

    def forward(self, q, k, v, bias, mask):
        # q [B, Hd, Lq, Dk], k [B, Hd, Lk, Dk], v [B, Hd, Lk, Dv], bias [Hd, Lq, Lk], mask [B, Lq, Lk]
        s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + bias
        present = (mask >= 0)[:, None]
        if self.activation == "softmax":
            a = torch.softmax(s + mask[:, None], dim=-1)
        elif self.activation in ("scale", "scale-relu"):
            a = (torch.relu(s) if self.activation == "scale-relu" else s) / self.divisor
            a = torch.where(present, a, torch.zeros_like(a))
        else:
            # LayerNorm over the present logits of each query, then the affine of size N.
            m = present.to(DT)
            cnt = m.sum(-1, keepdim=True)
            mu = (s * m).sum(-1, keepdim=True) / cnt
            var = (((s - mu) * m) ** 2).sum(-1, keepdim=True) / cnt
            y = (s - mu) / torch.sqrt(var + self.logit_norm.eps) * self.logit_norm.weight + self.logit_norm.bias
            if self.activation == "layernorm-relu":
                y = torch.relu(y)
            a = torch.where(present, y, torch.zeros_like(y))
        return a @ v


def depthwise(q, k, p, mask):
    """o_i = q_i * mean_{j present} k_j + sum_{j present} p^h_ij k_j. q, k [B, L, C]; p [Hd, L, L]."""
    b, l, c = q.shape
    hd = p.shape[0]
    present = (mask >= 0).to(DT)                      # [B, L, L]
    avg = present / present.sum(-1, keepdim=True)
    kbar = avg @ k                                    # [B, L, C]
    kh = k.reshape(b, l, hd, c // hd).transpose(1, 2)  # [B, Hd, L, Dh]
    pos = (p[None] * present[:, None]) @ kh            # [B, Hd, L, Dh]
    return q * kbar + pos.transpose(1, 2).reshape(b, l, c)


def flat(t):
    return [float("%.7g" % x) for x in t.detach().reshape(-1).tolist()]


def tok(t):
    """[B, Hd, L, D] -> [B, L, Hd*D], the Swift op's layout (heads merged in the columns), flattened."""
    return flat(t.transpose(1, 2).reshape(t.shape[0], t.shape[2], -1))


def rand(*shape):
    return torch.randn(*shape, dtype=DT)


B, HD, LQ, LK, DK, DV = 2, 2, 2, 3, 2, 2
q, k, v = rand(B, HD, LQ, DK), rand(B, HD, LK, DK), rand(B, HD, LK, DV)
bias = 0.5 * rand(HD, LQ, LK)
no_mask = torch.zeros(B, LQ, LK, dtype=DT)
mask = no_mask.clone()
mask[1, :, 0] = -100.0   # sequence 1 cannot see key 0
mask[1, 1, 2] = -100.0   # nor query 1 key 2
cases = []
for act in ["softmax", "scale", "scale-relu", "layernorm", "layernorm-relu"]:
    for masked in [False, True]:
        for reading in (["keys", "head_dim"] if act == "scale" else ["keys"]):
            mod = VariantAttention(act, LK, DK, reading)
            if act.startswith("layernorm"):
                with torch.no_grad():
                    mod.logit_norm.weight.copy_(1 + 0.3 * rand(LK))
                    mod.logit_norm.bias.copy_(0.2 * rand(LK))
            qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
            m = mask if masked else no_mask
            out = mod(qq, kk, vv, bias, m)
            # w = linspace(-1, 1) laid out as the Swift op's output [B, Lq, Hd*Dv]
            w = torch.linspace(-1, 1, out.numel(), dtype=DT).reshape(B, LQ, HD, DV).transpose(1, 2)
            (out * w).sum().backward()
            case = {"activation": act, "scale": reading, "masked": masked,
                    "out": tok(out), "dq": tok(qq.grad), "dk": tok(kk.grad), "dv": tok(vv.grad)}
            if act.startswith("layernorm"):
                case["ln_weight"] = flat(mod.logit_norm.weight)
                case["ln_bias"] = flat(mod.logit_norm.bias)
            cases.append(case)

# Depth-wise: B 2, L 3, C 4, 2 heads.
L, C = 3, 4
dq_, dk_ = rand(B, L, C), rand(B, L, C)
pos = 0.5 * rand(HD, L, L)
dmask = torch.zeros(B, L, L, dtype=DT)
dmask[1, 0, 2] = -100.0
dmask[1, 2, 0] = -100.0
dw = []
for masked in [False, True]:
    qq, kk = dq_.clone().requires_grad_(), dk_.clone().requires_grad_()
    out = depthwise(qq, kk, pos, dmask if masked else torch.zeros_like(dmask))
    w = torch.linspace(-1, 1, out.numel(), dtype=DT).reshape(out.shape)
    (out * w).sum().backward()
    dw.append({"masked": masked, "out": flat(out), "dq": flat(qq.grad), "dk": flat(kk.grad)})

print(json.dumps({
    "note": "made by make_fixtures.py (PyTorch %s, float64); tensors row-major" % torch.__version__,
    "attention": {"B": B, "heads": HD, "Lq": LQ, "Lk": LK, "Dk": DK, "Dv": DV,
                  "q": tok(q), "k": tok(k), "v": tok(v), "bias": flat(bias), "mask": flat(mask), "cases": cases},
    "depthwise": {"B": B, "heads": HD, "L": L, "C": C, "q": flat(dq_), "k": flat(dk_), "position": flat(pos),
                  "mask": flat(dmask), "cases": dw},
}, separators=(",", ":")))
