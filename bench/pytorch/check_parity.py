"""Parity check of bench/pytorch/unified.py against the reference fixtures in ../shared/reference.

For each nano fixture (convnext, swin, halo, pvt, dcnv3) it builds the model from F_nano.json, loads
F_nano.pth with load_state_dict(strict=True), runs `input` from F_nano_expected.safetensors and compares
logits, stage1..4 (NCHW, after the stage norm) and erf_grad_stage1..4 with the tolerances of the
fixture README: max |a - b| <= 1e-3 * max|ref| + 1e-4 for logits and stages, relative L2 <= 1e-3 for
ERF maps. It also checks that the buffers the model computes itself (Swin relative-position indices and
shift masks) equal the ones stored in the checkpoint. Prints a table; exits 1 on any failure.

Left out: logits_batch2 and the four-image ERF means (their inputs are not stored in the fixtures).

Shape key: C channels, H height, W width.
Usage: check_parity.py [--reference DIR]  (default: ../shared/reference from the repository root)
"""

import argparse
import json
import os
import struct
import sys
import warnings

sys.dont_write_bytecode = True  # keep the repository free of __pycache__
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # numpy is not needed

import torch  # noqa: E402

from unified import build_from_fixture  # noqa: E402

FAMILIES = ("convnext", "swin", "halo", "pvt", "dcnv3")
DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}


class FixtureError(Exception):
    """A missing or malformed fixture file (one-line message naming the file)."""


def read_safetensors(path):
    """All tensors of a safetensors file as {name: tensor} (8-byte header length, JSON header, raw data)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise FixtureError(f"{path}: cannot read ({e.strerror}); is ../shared/reference present?") from None
    if len(raw) < 8:
        raise FixtureError(f"{path}: truncated (no header length)")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise FixtureError(f"{path}: header length {n} runs past the end of the file")
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError:
        raise FixtureError(f"{path}: header is not valid JSON") from None
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise FixtureError(f"{path}: tensor {name} has unsupported dtype {info.get('dtype')}")
        start, end = info["data_offsets"]
        shape = info["shape"]
        count = 1
        for s in shape:
            count *= s
        if not (0 <= start <= end <= len(data)) or end - start != count * torch.empty(0, dtype=dtype).element_size():
            raise FixtureError(f"{path}: tensor {name} has inconsistent offsets {start}..{end} for shape {shape}")
        t = torch.frombuffer(bytearray(data[start:end]), dtype=dtype) if count else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(shape)
    return out


def load_checkpoint(path):
    """The state dict under key `model` of a torch.save archive (other entries are ignored)."""
    import argparse as _argparse
    torch.serialization.add_safe_globals([_argparse.Namespace])
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FixtureError(f"{path}: not found; is ../shared/reference present?") from None
    except Exception as e:  # corrupt archive
        raise FixtureError(f"{path}: cannot load ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise FixtureError(f"{path}: no 'model' state dict in the archive")
    return obj["model"]


def erf_map(model, image, stage):
    """[H, W] ERF contribution map: relu of d(sum_c relu(y[0, c, H//2, W//2]))/d(input), summed over channels."""
    x = image.clone().requires_grad_(True)
    y = model.forward_stages(x, upto=stage)[-1]
    score = torch.relu(y[0, :, y.shape[2] // 2, y.shape[3] // 2]).sum()
    (grad,) = torch.autograd.grad(score, x)
    return torch.relu(grad)[0].sum(0)


def check_family(ref_dir, fam):
    """List of (quantity, error, limit, ok) for one family."""
    with open(os.path.join(ref_dir, f"{fam}_nano.json")) as f:
        arch = json.load(f)
    model = build_from_fixture(arch).eval()
    state = load_checkpoint(os.path.join(ref_dir, f"{fam}_nano.pth"))
    rows = []
    own = model.state_dict()
    for key, buf in model.named_buffers():
        if ("relative_position_index" in key or "attn_mask" in key) and key in state:
            same = torch.equal(own[key].to(state[key].dtype), state[key])
            rows.append((f"buffer {key}", 0.0 if same else 1.0, 0.0, same))
    model.load_state_dict(state, strict=True)
    for p in model.parameters():
        p.requires_grad_(False)
    exp = read_safetensors(os.path.join(ref_dir, f"{fam}_nano_expected.safetensors"))
    x = exp["input"]
    with torch.no_grad():
        stages = model.forward_stages(x)
        logits = model(x)
    for name, got in [("logits", logits)] + [(f"stage{i + 1}", s) for i, s in enumerate(stages)]:
        ref = exp[name]
        if got.shape != ref.shape:
            rows.append((name, float("inf"), 0.0, False))
            continue
        err = (got - ref).abs().max().item()
        lim = 1e-3 * ref.abs().max().item() + 1e-4
        rows.append((name, err, lim, err <= lim))
    for s in range(1, 5):
        ref = exp[f"erf_grad_stage{s}"]
        got = erf_map(model, x, s)
        err = ((got - ref).norm() / ref.norm()).item()
        rows.append((f"erf_grad_stage{s}", err, 1e-3, err <= 1e-3))
    return rows


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_ref = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "reference"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", default=default_ref, help="folder with the *_nano fixtures")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    failures = 0
    print(f"{'family':9} {'quantity':44} {'error':>11} {'limit':>11}  result")
    for fam in FAMILIES:
        try:
            rows = check_family(args.reference, fam)
        except (FixtureError, OSError, ValueError, KeyError, RuntimeError) as e:
            print(f"{fam:9} {'(could not run)':44} {'':>11} {'':>11}  FAIL: {str(e).splitlines()[0]}")
            failures += 1
            continue
        for name, err, lim, ok in rows:
            failures += not ok
            print(f"{fam:9} {name:44} {err:11.3e} {lim:11.3e}  {'ok' if ok else 'FAIL'}")
    print("parity: all passed" if failures == 0 else f"parity: {failures} check(s) FAILED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
