#!/usr/bin/env python3
"""A first convolution layer on a photo: convcli's conv2d against PyTorch and a naive SciPy loop.

    pip install -e '.[torch]'                 # optional: adds torch (CPU build) for the comparison
    python benchmarks/bench_conv2d.py         # under a minute on 2 idle cores (the naive loop is slow)
    python benchmarks/bench_conv2d.py --rounds 21 --naive-rounds 3

The layer is ResNet's first: 64 filters of 7x7 over RGB, stride 2, zero padding 3, with bias,
on a 1024x1024 RGB photo (``samples/astronaut.png`` enlarged with Pillow's bicubic filter),
scaled to 0..1, float32: 512x512x64 outputs, 2.47 G multiply-adds.

Contenders, timed interleaved (A B C A B C ...) so that a busy machine slows all of them alike:

* ``convcli``: ``convcli.engine.conv2d`` on the (H, W, 3) array, giving (H', W', 64);
  BLAS limited to one thread, the engine's own threads on every core (as the CLI runs).
* ``torch``: ``torch.nn.functional.conv2d`` on a (1, 3, H, W) tensor made beforehand, giving
  (1, 64, H', W'), with torch's default threads (one per core); skipped when torch is missing.
* ``naive``: a Python loop over the 64 x 3 channel pairs of ``scipy.ndimage.correlate``
  (full resolution, then every second sample): what a per-channel tool does.

Before timing, every result is checked against the naive one. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads: see convcli.cli.main

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convcli.engine import conv2d, conv2d_geometry, default_threads, plan_layer  # noqa: E402


def photo(size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(ROOT / "samples" / "astronaut.png") as img:
        big = img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32) / np.float32(255)


def layer(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((64, 3, 7, 7)) / np.sqrt(3 * 49)).astype(np.float32)
    b = (rng.standard_normal(64) * 0.1).astype(np.float32)
    return w, b


def contenders(x: np.ndarray, w: np.ndarray, b: np.ndarray, threads: int) -> dict:
    """name -> zero-argument callable returning (H', W', 64) as a NumPy array (conversion untimed)."""
    out = {"convcli": lambda: conv2d(x, w, b, stride=2, padding=3, border="zero", threads=threads)}

    def naive() -> np.ndarray:
        import scipy.ndimage as ndi

        maps = []
        for o in range(w.shape[0]):
            acc = np.zeros(x.shape[:2], np.float32)
            for c in range(w.shape[1]):
                acc += ndi.correlate(x[:, :, c], w[o, c], mode="constant", cval=0.0)
            # a 7x7 window centred on pixel 2u, as padding 3 at stride 2 gives
            maps.append(acc[::2, ::2] + b[o])
        return np.stack(maps, axis=2)

    out["naive"] = naive
    try:
        import torch
    except ImportError:
        return out
    torch.set_num_threads(threads)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
    wt, bt = torch.from_numpy(w), torch.from_numpy(b)
    box = {}

    def run_torch():
        with torch.no_grad():
            box["y"] = torch.nn.functional.conv2d(xt, wt, bt, stride=2, padding=3)
        return box["y"]

    out["torch"] = run_torch
    out["_torch_to_hwc"] = lambda: box["y"][0].permute(1, 2, 0).numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=9, help="timed rounds of convcli and torch")
    ap.add_argument("--naive-rounds", type=int, default=1, help="timed rounds of the naive loop (about 20 s each)")
    ap.add_argument("--threads", type=int, default=default_threads())
    args = ap.parse_args()

    x = photo(args.size)
    w, b = layer()
    g = conv2d_geometry(x.shape, w.shape, stride=2, padding=3)
    plan = plan_layer(g.output, w.shape, 1, (2, 2), (1, 1), np.dtype(np.float32), args.threads)
    cands = contenders(x, w, b, args.threads)
    to_hwc = cands.pop("_torch_to_hwc", None)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores ({default_threads()} usable), "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}, Python {platform.python_version()}, "
          f"NumPy {np.__version__}")
    if "torch" in cands:
        import torch

        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    else:
        print("torch: not installed (pip install -e '.[torch]'); comparing with the naive loop only")
    print(f"layer: 64x3x7x7 + bias, stride 2, padding 3, on {args.size}x{args.size}x3 float32 -> "
          f"{g.output[0]}x{g.output[1]}x64; {g.params:,} parameters, {g.macs:,} MACs")
    print(f"convcli plan: {plan.describe()}")

    # correctness first (and warm-up: first touch, thread pools, BLAS buffers); the naive loop's
    # run here is also its first timed round
    samples: dict[str, list[float]] = {n: [] for n in cands}
    results = {}
    for name, fn in cands.items():
        t0 = time.perf_counter()
        y = fn()
        if name == "naive":
            samples[name].append(time.perf_counter() - t0)
        results[name] = to_hwc() if name == "torch" and to_hwc is not None else y
    ref = results["naive"].astype(np.float64)
    span = float(np.max(np.abs(ref)))
    for name, y in results.items():
        err = float(np.max(np.abs(np.asarray(y, np.float64) - ref)))
        print(f"check: {name:8s} shape {tuple(np.shape(y))}, max |difference| from naive {err:.2e} "
              f"({err / span:.1e} of the largest value)")
        assert err <= 1e-4 * span, name

    for r in range(args.rounds):
        for name, fn in cands.items():
            if name == "naive" and r + 1 >= args.naive_rounds:
                continue
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)

    med = {n: statistics.median(s) for n, s in samples.items() if s}
    print()
    print(f"{'contender':10s} {'median':>10s} {'min':>10s} {'runs':>5s}  {'GMAC/s':>7s}")
    for name, s in samples.items():
        if s:
            print(f"{name:10s} {1e3 * med[name]:8.1f} ms {1e3 * min(s):8.1f} ms {len(s):5d}  "
                  f"{g.macs / med[name] / 1e9:7.2f}")
    print()
    if "torch" in med:
        print(f"convcli / torch: {med['convcli'] / med['torch']:.2f}x the time "
              f"(min/min {min(samples['convcli']) / min(samples['torch']):.2f}x)")
    print(f"naive / convcli: {med['naive'] / med['convcli']:.1f}x the time")


if __name__ == "__main__":
    main()
