"""PyTorch baseline timings of one unified preset, for `make bench` to set beside stm-analyze's own.

Builds the untrained preset from unified.py (torch.manual_seed(0), the published initialisation,
layer-scale gamma = 1 so that every block matters and no denormal values slow the arithmetic down),
and measures on 224 x 224 random inputs, after one warm-up run each, the median of --repeats runs of:

- erf_stage4_ms: ms per image for the stage-4 ERF map: forward to stage 4 only (no head), scalar
  sum_c relu(y[b, c, H//2, W//2]) summed over the batch, torch.autograd.grad to the input, relu, sum over
  channels. Parameters have requires_grad False (only the input gradient is computed), as an ERF script
  that freezes the model does; `param_grad: false` in the JSON says so.
- erf_all_stages_ms: ms per image for the four stage maps from ONE forward to stage 4 that keeps the
  four stage outputs, then four autograd.grad calls (retain_graph on the first three).
- forward_b1_ips, forward_large_ips: full forward to logits under torch.inference_mode, images/s at
  batch 1 and at --large-batch (median of --large-repeats runs).
- sgemm_gflops: a 1024^3 float32 torch.mm with the same threads, measured before any mode switch.
- erf_peak_rss_bytes (after the ERF runs) and peak_rss_bytes (at the end): getrusage ru_maxrss * 1024.

--mode lossless is PyTorch's best float32 CPU mode: oneDNN matmuls kept at full float32 precision
(torch.backends.mkldnn.matmul.fp32_precision = "ieee", where that attribute exists; never "bf16", which
rounds matmul inputs to bfloat16 and so is not lossless), torch.compile'd forward functions, and inductor
freezing (parameters folded as constants and weights prepacked for oneDNN) for the inference forward.
torch._functorch.config.donated_buffer = False lets the all-stages ERF run repeated backward passes over
one compiled graph. A compile or first-run failure is recorded in the JSON ("compile_error") and the run
continues in eager mode. Left out: CUDA, channels_last conversions, any hand-optimisation.

Shape key: B batch, S input side (224), C channels, H height, W width.
Usage: bench_torch.py --preset NAME [--threads N] [--repeats R] [--large-batch B] [--mode eager|lossless]
                      [--erf-batch E] [--large-repeats L] [--json PATH|-]
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings

sys.dont_write_bytecode = True  # keep the repository free of __pycache__
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # numpy is not needed

import torch  # noqa: E402

from unified import PRESET_NAMES, build_preset  # noqa: E402


def median_seconds(fn, repeats):
    """Median wall time of `repeats` calls of fn after one warm-up call."""
    fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sgemm_gflops(repeats=10):
    """float32 1024 x 1024 x 1024 matrix-product rate in GFLOP/s (2*n^3 flops per product)."""
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(1024, 1024, generator=gen)
    b = torch.randn(1024, 1024, generator=gen)
    out = torch.empty(1024, 1024)
    t = median_seconds(lambda: torch.mm(a, b, out=out), repeats)
    return 2 * 1024 ** 3 / t / 1e9


def peak_rss_bytes():
    """Peak resident set size of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def centre_scores(stage_out):
    """sum over batch and channels of relu(y[b, c, H//2, W//2]) for y [B, C, H, W]."""
    h, w = stage_out.shape[2], stage_out.shape[3]
    return torch.relu(stage_out[:, :, h // 2, w // 2]).sum()


def erf_maps(stages_fn, image, stages):
    """[B, H, W] contribution maps of the listed stages (1-based) from one forward."""
    x = image.detach().clone().requires_grad_(True)
    outs = stages_fn(x, max(stages))
    maps = []
    for i, s in enumerate(stages):
        (g,) = torch.autograd.grad(centre_scores(outs[s - 1]), x, retain_graph=i < len(stages) - 1)
        maps.append(torch.relu(g).sum(1))
    return maps


def parse_args(argv):
    ap = argparse.ArgumentParser(description="PyTorch eager/compiled baseline timings of one unified preset.")
    ap.add_argument("--preset", required=True, help="one of: " + ", ".join(PRESET_NAMES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--large-batch", type=int, default=32)
    ap.add_argument("--large-repeats", type=int, default=None,
                    help="timed runs at the large batch (default: max(1, repeats - 1))")
    ap.add_argument("--erf-batch", type=int, default=1, help="images per ERF pass (times are per image)")
    ap.add_argument("--mode", choices=("eager", "lossless"), default="eager")
    ap.add_argument("--json", default="-", help="output path, or - for stdout")
    args = ap.parse_args(argv)
    if args.preset not in PRESET_NAMES:
        ap.error(f"unknown preset {args.preset!r}; expected one of {', '.join(PRESET_NAMES)}")
    for name in ("threads", "repeats", "large_batch", "erf_batch"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.json != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        ap.error(f"--json {args.json}: the folder does not exist")
    if args.large_repeats is None:
        args.large_repeats = max(1, args.repeats - 1)
    elif args.large_repeats < 1:
        ap.error("--large-repeats must be at least 1")
    return args


def write_json(result, path):
    """Write the result to stdout or atomically (temp file + rename) to `path`."""
    text = json.dumps(result, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".bench_torch.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        sys.exit(f"bench_torch.py: cannot write {path}: {e.strerror}")


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already fixed by an earlier parallel call; only intra-op threads matter here

    result = {"preset": args.preset, "mode": args.mode, "threads": args.threads, "torch_version": torch.__version__,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "repeats": args.repeats,
              "large_batch": args.large_batch, "large_repeats": args.large_repeats, "erf_batch": args.erf_batch,
              "input_size": 224, "layer_scale": 1.0, "param_grad": False}
    result["sgemm_gflops"] = round(sgemm_gflops(), 2)

    torch.manual_seed(0)
    model = build_preset(args.preset, layer_scale=1.0).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    result["params"] = sum(p.numel() for p in model.parameters())

    stages_fn = model.forward_stages
    forward_fn = model
    if args.mode == "lossless":
        mm = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
        if mm is not None and hasattr(mm, "fp32_precision"):
            mm.fp32_precision = "ieee"  # float32 arithmetic: lossless
            result["mkldnn_matmul_fp32_precision"] = mm.fp32_precision
        else:
            result["mkldnn_matmul_fp32_precision"] = "unavailable"
        try:
            import torch._inductor.config as inductor_config
            inductor_config.freezing = True  # applies to graphs compiled without grad: the inference forward
            result["inductor_freezing"] = True
            # The all-stages ERF runs several backward passes over one compiled graph (retain_graph),
            # which compiled backwards allow only without donated buffers.
            import torch._functorch.config as functorch_config
            functorch_config.donated_buffer = False
            stages_c = torch.compile(model.forward_stages)
            forward_c = torch.compile(model)
            probe = torch.randn(args.erf_batch, 3, 224, 224)
            erf_maps(stages_c, probe, [4])  # compiles forward + backward to stage 4
            erf_maps(stages_c, probe, [1, 2, 3, 4])
            with torch.inference_mode():
                forward_c(probe)
            stages_fn, forward_fn = stages_c, forward_c
            result["compiled"] = True
        except Exception as e:  # inductor or compiler failure: record it and time eager instead
            result["compiled"] = False
            result["compile_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:500]

    gen = torch.Generator().manual_seed(7)
    x_erf = torch.randn(args.erf_batch, 3, 224, 224, generator=gen)
    t4 = median_seconds(lambda: erf_maps(stages_fn, x_erf, [4]), args.repeats)
    t_all = median_seconds(lambda: erf_maps(stages_fn, x_erf, [1, 2, 3, 4]), args.repeats)
    result["erf_stage4_ms"] = round(1000 * t4 / args.erf_batch, 3)
    result["erf_all_stages_ms"] = round(1000 * t_all / args.erf_batch, 3)
    result["erf_peak_rss_bytes"] = peak_rss_bytes()

    x1 = torch.randn(1, 3, 224, 224, generator=gen)
    xl = torch.randn(args.large_batch, 3, 224, 224, generator=gen)
    with torch.inference_mode():
        f1 = median_seconds(lambda: forward_fn(x1), args.repeats)
        fl = median_seconds(lambda: forward_fn(xl), args.large_repeats)
    result["forward_b1_ips"] = round(1 / f1, 3)
    result["forward_large_ips"] = round(args.large_batch / fl, 3)
    result["peak_rss_bytes"] = peak_rss_bytes()
    write_json(result, args.json)


if __name__ == "__main__":
    main()
