"""Eager PyTorch baseline of the STM-Evaluation "unified" MetaArch, for timing against stm-analyze.

One stem, three stride-2 transitions, four stages of one block family each, a LayerNorm after every
stage, then conv_head (1x1 conv, BatchNorm, GELU, ratio 1.5), global average pooling and a linear head.
The five block families are U-DWConv ("convnext"), Swin windows ("swin"), HaloNet blocks ("halo"),
PVT spatial-reduction attention ("pvt") and DCNv3 with the pure-PyTorch grid_sample core ("dcnv3").

Written from the facts of the published code (layer order, parameter names and shapes, tensor layouts,
LayerNorm epsilons, masks, relative-position schemes) as plain eager modules, in the layouts the
published blocks use, with no extra optimisation, so that its speed stands for the published code's.
State-dict keys match the released checkpoints, so `load_state_dict(strict=True)` works on them.

Left out: drop-path and dropout (inference only), activation checkpointing, checkpoint resizing of
position tables (the fixtures and presets use the training resolution 224), the other stems and block
variants of the study, and the CUDA DCNv3 kernel.

Shape key: B batch, C channels, H height, W width, N tokens (H*W), M heads, D channels per head,
P sampling points, K keys per query, nb blocks, bs block side, ws window side.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

FAMILIES = ("convnext", "swin", "halo", "pvt", "dcnv3")


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over C of a [B, C, H, W] tensor (permutes to channels-last and back, as published)."""

    def __init__(self, channels, eps=1e-6):
        super().__init__(channels, eps=eps)

    def forward(self, x):
        y = F.layer_norm(x.permute(0, 2, 3, 1).contiguous(), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2).contiguous()


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 on the last axis."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Stem(nn.Module):
    """Two stride-2 3x3 convs (width dim/2 then dim), LayerNorm2d after each, GELU between: [B,3,S,S] -> [B,dim,S/4,S/4]."""

    def __init__(self, dim):
        super().__init__()
        half = dim // 2
        self.stem = nn.Sequential(
            nn.Conv2d(3, half, 3, stride=2, padding=1), LayerNorm2d(half), nn.GELU(),
            nn.Conv2d(half, dim, 3, stride=2, padding=1), LayerNorm2d(dim))

    def forward(self, x):
        return self.stem(x)


class Downsample(nn.Module):
    """Stride-2 3x3 conv without bias, then LayerNorm2d: [B,Cin,H,W] -> [B,Cout,H/2,W/2]."""

    def __init__(self, cin, cout):
        super().__init__()
        self.reduction = nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), LayerNorm2d(cout))

    def forward(self, x):
        return self.reduction(x)


# ---------------------------------------------------------------- U-DWConv (convnext), NCHW in and out

class ConvNeXtBlock(nn.Module):
    """Norm -> 1x1 -> 7x7 depth-wise -> 1x1 token mixer and a channels-last MLP, each with layer scale and residual."""

    def __init__(self, dim, layer_scale, kernel_size=7):
        super().__init__()
        self.dw_norm = LayerNorm2d(dim)
        self.dw_input_proj = nn.Conv2d(dim, dim, 1)
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.dw_out_proj = nn.Conv2d(dim, dim, 1)
        self.gamma_1 = nn.Parameter(torch.full((1, dim, 1, 1), layer_scale))
        self.pw_norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma_2 = nn.Parameter(torch.full((1, 1, 1, dim), layer_scale))

    def forward(self, x):  # [B,C,H,W]
        x = x + self.gamma_1 * self.dw_out_proj(self.dwconv(self.dw_input_proj(self.dw_norm(x))))
        x = x.permute(0, 2, 3, 1).contiguous()  # [B,H,W,C]
        x = x + self.gamma_2 * self.pwconv2(self.act(self.pwconv1(self.pw_norm(x))))
        return x.permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------- Swin, NCHW in and out

def window_relative_index(ws):
    """[ws*ws, ws*ws] index into the (2ws-1)^2 bias table for every (query, key) pair of a window."""
    ys, xs = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # [2, N]
    rel = coords[:, :, None] - coords[:, None, :] + (ws - 1)  # [2, N, N], shifted to >= 0
    return rel[0] * (2 * ws - 1) + rel[1]


def shifted_window_mask(side, ws, shift):
    """[nW, N, N] additive mask (0 or -100) that keeps attention inside each region of a cyclically shifted map."""
    region = torch.zeros(side, side)
    bounds = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    label = 0
    for hs in bounds:
        for wsl in bounds:
            region[hs, wsl] = label
            label += 1
    windows = region.view(side // ws, ws, side // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.where(diff != 0, torch.tensor(-100.0), torch.tensor(0.0))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ws x ws windows with a learned relative-position bias per head."""

    def __init__(self, dim, heads, ws):
        super().__init__()
        self.heads = heads
        self.ws = ws
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        self.register_buffer("relative_position_index", window_relative_index(ws))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask):  # x [B*nW, N, C], mask [nW, N, N] or None
        bw, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # [B*nW,M,N,D]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(-1, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(-1, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(bw, n, -1))


class SwinBlock(nn.Module):
    """(Shifted-)window attention and MLP, LayerNorm2d before each, layer scale and residual after each."""

    def __init__(self, dim, layer_scale, side, heads, window_size, depth_index):
        super().__init__()
        ws = window_size
        shift = 0 if depth_index % 2 == 0 else ws // 2
        if side <= ws:  # one window covers the map: no partition and no shift
            ws, shift = side, 0
        self.ws, self.shift = ws, shift
        self.norm1 = LayerNorm2d(dim)
        self.attn = WindowAttention(dim, heads, ws)
        self.gamma_1 = nn.Parameter(torch.full((dim,), layer_scale))
        self.norm2 = LayerNorm2d(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma_2 = nn.Parameter(torch.full((dim,), layer_scale))
        self.register_buffer("attn_mask", shifted_window_mask(side, ws, shift) if shift > 0 else None)

    def forward(self, x):  # [B,C,H,W]
        b, c, h, w = x.shape
        ws = self.ws
        y = self.norm1(x).permute(0, 2, 3, 1).contiguous()  # [B,H,W,C]
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        win = y.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        win = self.attn(win, self.attn_mask)
        y = win.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + (self.gamma_1 * y).permute(0, 3, 1, 2).contiguous()
        y = self.mlp(self.norm2(x).permute(0, 2, 3, 1).contiguous())
        return x + (self.gamma_2 * y).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------- HaloNet, NHWC in and out (stage-level transposes)

def relative_to_absolute(q, table):
    """Query-related relative logits along one axis.

    q [R, L, bs, D] (bs query positions along the axis), table [2*win-1, D] -> [R, L, bs, win], where
    entry (i, j) is q_i . table[j - i + win - 1]; done with the pad-and-reshape skew trick.
    """
    r, l, bs, _ = q.shape
    rel = table.shape[0]
    win = (rel + 1) // 2
    x = (q @ table.transpose(0, 1)).reshape(-1, bs, rel)  # [R*L, bs, rel]
    x = F.pad(x, [0, 1]).flatten(1)  # rows of rel+1
    x = F.pad(x, [0, rel - bs]).reshape(-1, bs + 1, rel)
    return x[:, :bs, win - 1:].reshape(r, l, bs, win)


class QueryRelatedPosEmbed(nn.Module):
    """Per-query relative-position logits [B, M, nb, bs*bs, win*win] from separate height and width tables."""

    def __init__(self, bs, win, head_dim):
        super().__init__()
        self.bs = bs
        self.height_rel = nn.Parameter(torch.randn(2 * win - 1, head_dim) * head_dim ** -0.5)
        self.width_rel = nn.Parameter(torch.randn(2 * win - 1, head_dim) * head_dim ** -0.5)

    def forward(self, q):  # [B, M, nb, bs*bs, D]
        b, m, nb, _, d = q.shape
        bs = self.bs
        qg = q.reshape(-1, bs, bs, d)  # [R, qy, qx, D]
        win = (self.width_rel.shape[0] + 1) // 2
        lw = relative_to_absolute(qg, self.width_rel)  # [R, qy, qx, kx]
        lh = relative_to_absolute(qg.transpose(1, 2), self.height_rel)  # [R, qx, qy, ky]
        # logits[R, qy, qx, ky, kx] = lh[R, qx, qy, ky] + lw[R, qy, qx, kx]
        logits = lh.permute(0, 2, 1, 3).unsqueeze(-1).expand(-1, -1, -1, -1, win) \
            + lw.unsqueeze(3).expand(-1, -1, -1, win, -1)
        return logits.reshape(b, m, nb, bs * bs, win * win)


class HaloAttention(nn.Module):
    """Blocked local attention: bs x bs query blocks attend to (bs+2*halo)^2 windows; zero-padded keys are masked out."""

    def __init__(self, dim, heads, block_size, halo_size):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.bs = block_size
        self.halo = halo_size
        self.win = block_size + 2 * halo_size
        self.kv = nn.Conv2d(dim, 2 * dim, 1, bias=False)
        self.q = nn.Linear(dim, dim, bias=False)
        self.pos_embed = QueryRelatedPosEmbed(block_size, self.win, self.head_dim)
        self.proj = nn.Linear(dim, dim)
        self._mask_key = None
        self._mask = None

    def padding_mask(self, h, w, device):
        """[1, nb, 1, win*win], True where a key lies in the zero padding (computed once per map size)."""
        if self._mask_key != (h, w):
            ones = F.pad(torch.ones(1, 1, h, w, device=device), [self.halo] * 4)
            ones = ones.unfold(2, self.win, self.bs).unfold(3, self.win, self.bs)
            self._mask = ~ones.reshape(1, -1, 1, self.win * self.win).bool()
            self._mask_key = (h, w)
        return self._mask

    def forward(self, x):  # [B,H,W,C]
        b, h, w, c = x.shape
        bs, m, d, win = self.bs, self.heads, self.head_dim, self.win
        nh, nw = h // bs, w // bs
        nb = nh * nw
        q = self.q(x).reshape(b, nh, bs, nw, bs, m, d).permute(0, 5, 1, 3, 2, 4, 6).contiguous()
        q = q.reshape(b, m, nb, bs * bs, d)
        kv = F.pad(self.kv(x.permute(0, 3, 1, 2).contiguous()), [self.halo] * 4)  # [B, 2C, H+2h, W+2h]
        kv = kv.unfold(2, win, bs).unfold(3, win, bs)  # [B, 2C, nh, nw, win, win]
        kv = kv.reshape(b, m, 2 * d, nb, win * win).permute(0, 1, 3, 4, 2).contiguous()  # [B, M, nb, K, 2D]
        k, v = torch.split(kv, [d, d], dim=-1)
        attn = (q * self.scale) @ k.transpose(-1, -2) + self.pos_embed(q)  # [B, M, nb, bs*bs, K]
        attn.masked_fill_(self.padding_mask(h, w, x.device), -torch.finfo(attn.dtype).max)
        out = attn.softmax(dim=-1) @ v  # [B, M, nb, bs*bs, D]
        out = out.reshape(b, m, nh, nw, bs, bs, d).permute(0, 2, 4, 3, 5, 1, 6).reshape(b, h, w, c)
        return self.proj(out)


class HaloBlock(nn.Module):
    """Halo attention and MLP on channels-last maps, LayerNorm (eps 1e-5) before each, layer scale and residual after."""

    def __init__(self, dim, layer_scale, heads, block_size, halo_size):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = HaloAttention(dim, heads, block_size, halo_size)
        self.gamma_1 = nn.Parameter(torch.full((1, 1, 1, dim), layer_scale))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma_2 = nn.Parameter(torch.full((1, 1, 1, dim), layer_scale))

    def forward(self, x):  # [B,H,W,C]
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        return x + self.gamma_2 * self.mlp(self.norm2(x))


# ---------------------------------------------------------------- PVT, NCHW in and out

class SRAttention(nn.Module):
    """Global attention whose keys and values come from a map shrunk by a stride-sr conv + LayerNorm (sr > 1)."""

    def __init__(self, dim, heads, sr):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr
        if sr > 1:
            self.sr = nn.Conv2d(dim, dim, sr, stride=sr)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x, h, w):  # [B,N,C]
        b, n, c = x.shape
        m = self.heads
        q = self.q(x).reshape(b, n, m, c // m).permute(0, 2, 1, 3)
        src = x
        if self.sr_ratio > 1:
            src = self.sr(x.permute(0, 2, 1).reshape(b, c, h, w)).reshape(b, c, -1).permute(0, 2, 1)
            src = self.norm(src)
        k, v = self.kv(src).reshape(b, -1, 2, m, c // m).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class PvtBlock(nn.Module):
    """Spatial-reduction attention and MLP on tokens, LayerNorm (eps 1e-5) before each; the stage's first block adds pos_embed."""

    def __init__(self, dim, layer_scale, side, heads, sr, mlp_ratio, first):
        super().__init__()
        if first:
            self.pos_embed = nn.Parameter(torch.zeros(1, dim, side, side))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        else:
            self.pos_embed = None
        self.gamma_1 = nn.Parameter(torch.full((dim,), layer_scale))
        self.gamma_2 = nn.Parameter(torch.full((dim,), layer_scale))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SRAttention(dim, heads, sr)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):  # [B,C,H,W]
        b, c, h, w = x.shape
        if self.pos_embed is not None:
            x = x + self.pos_embed
        t = x.flatten(2).permute(0, 2, 1).contiguous()  # [B,N,C]
        t = t + self.gamma_1 * self.attn(self.norm1(t), h, w)
        t = t + self.gamma_2 * self.mlp(self.norm2(t))
        return t.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------- DCNv3, NCHW in and out (permuted views)

def deform_reference_points(h, w, pad):
    """[1, N, 1, 2] (x, y) sampling centres of the N = h*w pixels, normalised to the padded map (h+2p, w+2p)."""
    hp, wp = h + 2 * pad, w + 2 * pad
    ys, xs = torch.meshgrid(torch.linspace(pad + 0.5, hp - pad - 0.5, h),
                            torch.linspace(pad + 0.5, wp - pad - 0.5, w), indexing="ij")
    return torch.stack((xs.reshape(-1) / wp, ys.reshape(-1) / hp), -1)[None, :, None]


def deform_sample(value, shape, locations, weights):
    """grid_sample core of multi-scale deformable attention (one level).

    value [B, Hp*Wp, M, D], shape (Hp, Wp), locations [B, N, M, P, 2] in [0, 1] (x, y),
    weights [B, N, M, P] -> [B, N, M*D]. Bilinear sampling, zeros outside, align_corners=False.
    """
    b, _, m, d = value.shape
    n, p = locations.shape[1], locations.shape[3]
    hp, wp = shape
    v = value.flatten(2).transpose(1, 2).reshape(b * m, d, hp, wp)
    grid = (2 * locations - 1).transpose(1, 2).flatten(0, 1)  # [B*M, N, P, 2]
    sampled = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # [B*M, D, N, P]
    out = (sampled * weights.transpose(1, 2).reshape(b * m, 1, n, p)).sum(-1)  # [B*M, D, N]
    return out.view(b, m * d, n).transpose(1, 2).contiguous()


class DeformAttention(nn.Module):
    """DCNv3 mixer: values from a 1x1 projection, offsets and softmax weights from a depth-wise conv query."""

    def __init__(self, dim, heads, points, kernel_size, padding):
        super().__init__()
        self.heads, self.points = heads, points
        self.pad = int(math.sqrt(points) // 2) if padding else 0
        self.dw_conv = nn.Sequential(nn.Conv2d(dim, dim, kernel_size, padding=(kernel_size - 1) // 2, groups=dim),
                                     _ChannelsLastNorm(dim), nn.GELU())
        self.sampling_offsets = nn.Linear(dim, heads * points * 2)
        self.attention_weights = nn.Linear(dim, heads * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        # Base kernel grid [1, 1, M, 1, P, 2]; the published grid lists (row offset, column offset) pairs
        # row-major and adds them to the (x, y) learned offsets as they are.
        k = int(math.sqrt(points))
        axis = torch.linspace(-(k // 2), k // 2, k)
        a, c = torch.meshgrid(axis, axis, indexing="ij")
        base = torch.stack((a, c), -1).reshape(1, 1, 1, 1, points, 2).expand(1, 1, heads, 1, points, 2)
        self.register_buffer("grid", base.contiguous(), persistent=False)

    def forward(self, x, h, w, ref):  # x [B,N,C] from an h x w map, ref [1, N, 1, 2]
        b, n, c = x.shape
        p, m = self.pad, self.heads
        hp, wp = h + 2 * p, w + 2 * p
        query = self.dw_conv(x.permute(0, 2, 1).reshape(b, c, h, w)).permute(0, 2, 3, 1).reshape(b, n, c)
        value = self.value_proj(x)
        if p:
            value = F.pad(value.reshape(b, h, w, c), [0, 0, p, p, p, p]).reshape(b, -1, c)
        value = value.reshape(b, -1, m, c // m)
        offsets = self.sampling_offsets(query).reshape(b, n, m, 1, self.points, 2)
        weights = F.softmax(self.attention_weights(query).reshape(b, n, m, self.points), -1)
        normaliser = torch.tensor([wp, hp], dtype=x.dtype, device=x.device)
        loc = ref[:, :, None, :, None, :] + (self.grid + offsets) / normaliser  # [B, N, M, 1, P, 2]
        out = deform_sample(value, (hp, wp), loc[:, :, :, 0].contiguous(), weights)
        return self.output_proj(out)


class _ChannelsLastNorm(nn.Module):
    """LayerNorm (eps 1e-5) over C of [B,C,H,W] via a channels-last view (parameter names norm.weight/bias)."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class DCNv3Block(nn.Module):
    """Deformable attention and MLP on channels-last views, LayerNorm (eps 1e-5) before each, layer scale and residual."""

    def __init__(self, dim, layer_scale, heads, points, kernel_size, padding):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = DeformAttention(dim, heads, points, kernel_size, padding)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma1 = nn.Parameter(torch.full((dim,), layer_scale))
        self.gamma2 = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x, ref):  # x [B,C,H,W], ref [1, H*W, 1, 2]
        b, c, h, w = x.shape
        x = x.permute(0, 2, 3, 1)  # [B,H,W,C] view
        y = self.attn(self.norm1(x).reshape(b, h * w, c), h, w, ref).reshape(b, h, w, c)
        x = x + self.gamma1 * y
        x = x + self.gamma2 * self.mlp(self.norm2(x))
        return x.permute(0, 3, 1, 2)


# ---------------------------------------------------------------- the meta architecture

class MetaArch(nn.Module):
    """Stem, transitions, stages of one block family, stage norms, conv_head and head.

    `family` is one of FAMILIES; `settings` holds the family's block settings with the keys of the
    study's factories (num_heads, window_size, block_size, halo_size, mlp_ratios, sr_ratios,
    deform_points, kernel_size, deform_padding).
    """

    def __init__(self, family, dims, depths, settings, num_classes=1000, img_size=224,
                 head_ratio=1.5, layer_scale=1e-6):
        super().__init__()
        if family not in FAMILIES:
            raise ValueError(f"unknown block family {family!r}; expected one of {', '.join(FAMILIES)}")
        self.family = family
        self.img_size = img_size
        self.downsample_layers = nn.ModuleList([Stem(dims[0])] + [Downsample(dims[i], dims[i + 1]) for i in range(3)])
        self.stages = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            side = img_size // 4 // 2 ** i
            self.stages.append(nn.ModuleList([self._block(family, dim, layer_scale, settings, i, j, side)
                                              for j in range(depth)]))
        self.stage_norms = nn.ModuleList([LayerNorm2d(d) for d in dims])
        width = int(dims[-1] * head_ratio)
        self.conv_head = nn.Sequential(nn.Conv2d(dims[-1], width, 1, bias=False), nn.BatchNorm2d(width), nn.GELU())
        self.head = nn.Linear(width, num_classes)
        if family == "dcnv3":
            pad = int(math.sqrt(settings["deform_points"]) // 2) if settings.get("deform_padding", True) else 0
            for i in range(4):
                side = img_size // 4 // 2 ** i
                self.register_buffer(f"ref{i}", deform_reference_points(side, side, pad), persistent=False)

    @staticmethod
    def _block(family, dim, ls, s, stage, j, side):
        if family == "convnext":
            return ConvNeXtBlock(dim, ls)
        if family == "swin":
            return SwinBlock(dim, ls, side, s["num_heads"][stage], s["window_size"], j)
        if family == "halo":
            return HaloBlock(dim, ls, s["num_heads"][stage], s["block_size"], s["halo_size"])
        if family == "pvt":
            return PvtBlock(dim, ls, side, s["num_heads"][stage], s["sr_ratios"][stage], s["mlp_ratios"][stage], j == 0)
        return DCNv3Block(dim, ls, s["num_heads"][stage], s["deform_points"], s["kernel_size"],
                          s.get("deform_padding", True))

    def forward_stages(self, x, upto=4):
        """Stage outputs [B, C_i, H_i, W_i] (NCHW, after the stage norm) for stages 1..upto."""
        outs = []
        for i in range(upto):
            x = self.downsample_layers[i](x)
            if self.family == "halo":
                x = x.permute(0, 2, 3, 1).contiguous()
                for blk in self.stages[i]:
                    x = blk(x)
                x = x.permute(0, 3, 1, 2).contiguous()
            elif self.family == "dcnv3":
                ref = getattr(self, f"ref{i}")
                for blk in self.stages[i]:
                    x = blk(x, ref)
            else:
                for blk in self.stages[i]:
                    x = blk(x)
            x = self.stage_norms[i](x)
            outs.append(x)
        return outs

    def forward(self, x):
        """Logits [B, num_classes] of images [B, 3, S, S]."""
        x = self.conv_head(self.forward_stages(x)[-1])
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def init_weights(model):
    """The published initialisation: conv and linear weights truncated-normal (std 0.02), biases zero."""
    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(mod.weight, std=0.02)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
    return model


def _doubling(base):
    return [base * 2 ** i for i in range(4)]


def preset_config(name):
    """(family, dims, depths, settings) of a released preset `unified_{family}_{micro,tiny,small,base}`."""
    scales = ("micro", "tiny", "small", "base")
    for fam, stem in (("convnext", "convnext"), ("swin", "swin"), ("halo", "halo"), ("pvt", "pvt"), ("dcnv3", "dcn_v3")):
        prefix = f"unified_{stem}_"
        if name.startswith(prefix) and name[len(prefix):] in scales:
            scale = name[len(prefix):]
            break
    else:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESET_NAMES)}")
    if fam == "convnext":
        dims, depths = {"micro": ([32, 64, 128, 256], [3, 3, 8, 3]), "tiny": (_doubling(96), [2, 2, 9, 2]),
                        "small": (_doubling(96), [2, 2, 24, 2]), "base": (_doubling(128), [2, 2, 24, 2])}[scale]
        return fam, dims, depths, {}
    if fam in ("swin", "halo"):
        dims, depths, heads = {"micro": (_doubling(32), [2, 2, 9, 2], [1, 2, 4, 8]),
                               "tiny": (_doubling(96), [2, 2, 6, 2], [3, 6, 12, 24]),
                               "small": (_doubling(96), [2, 2, 18, 2], [3, 6, 12, 24]),
                               "base": (_doubling(128), [2, 2, 18, 2], [4, 8, 16, 32])}[scale]
        if fam == "swin":
            return fam, dims, depths, {"num_heads": heads, "window_size": 7}
        return fam, dims, depths, {"num_heads": heads, "block_size": 7, "halo_size": 3, "pos_embed_type": "query_related"}
    if fam == "pvt":
        dims, depths, mlp = {"micro": ([32, 64, 160, 256], [2, 2, 3, 2], [8, 8, 4, 4]),
                             "tiny": ([64, 128, 320, 512], [3, 4, 9, 3], [8, 8, 4, 4]),
                             "small": ([64, 128, 320, 512], [3, 4, 21, 3], [8, 8, 4, 4]),
                             "base": ([64, 128, 320, 512], [3, 8, 45, 3], [4, 4, 4, 4])}[scale]
        return fam, dims, depths, {"num_heads": [1, 2, 5, 8], "mlp_ratios": mlp, "qkv_bias": True, "sr_ratios": [8, 4, 2, 1]}
    dims, depths, heads = {"micro": (_doubling(32), [2, 2, 9, 2], [2, 4, 8, 16]),
                           "tiny": (_doubling(64), [4, 4, 18, 4], [4, 8, 16, 32]),
                           "small": (_doubling(80), [4, 4, 21, 4], [5, 10, 20, 40]),
                           "base": (_doubling(112), [4, 4, 21, 4], [7, 14, 28, 56])}[scale]
    return fam, dims, depths, {"num_heads": heads, "deform_points": 9, "kernel_size": 3, "deform_padding": True}


PRESET_NAMES = [f"unified_{stem}_{scale}" for stem in ("convnext", "swin", "halo", "pvt", "dcn_v3")
                for scale in ("micro", "tiny", "small", "base")]


def build_preset(name, layer_scale=1.0):
    """An untrained preset with the published initialisation and every layer-scale gamma = `layer_scale`."""
    fam, dims, depths, settings = preset_config(name)
    return init_weights(MetaArch(fam, dims, depths, settings, layer_scale=layer_scale))


def build_from_fixture(arch):
    """The model described by a fixture JSON object (keys family, dims, depths, block_kwargs, ...)."""
    return MetaArch(arch["family"], arch["dims"], arch["depths"], arch.get("block_kwargs", {}),
                    num_classes=arch.get("num_classes", 1000), img_size=arch.get("img_size", 224),
                    head_ratio=arch.get("extra_transform_ratio", 1.5))
