#!/usr/bin/env python3
"""Engine speed and memory against scipy.ndimage and (when installed) OpenCV, in one run.

    pip install -e '.[bench]'          # adds opencv-python-headless
    python benchmarks/bench_engine.py            # full run (several minutes: ndimage is slow)
    python benchmarks/bench_engine.py --quick    # 1024x1024 workloads and the end-to-end run only

Every workload is float32 RGB (HWC), same-size output (stride 1 unless stated), replicate
border, correlation. Contenders are timed interleaved (A B C A B C ...) so that a busy machine
slows all of them alike; the table prints medians and the ratios that the targets are about.
Memory is the peak RSS of a fresh process per case, minus that of the same process doing
everything except the filtering (input and output arrays are allocated in both).
The end-to-end part times whole processes on a 4000x3000 RGB PNG made from a sample photo.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads: see convcli.cli.main

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convcli.engine import correlate, plan, plan_geometry  # noqa: E402


def gauss1d(k: int) -> np.ndarray:
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8  # OpenCV's sigma for a kernel size
    x = np.arange(k) - (k - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def kernels() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    r31 = rng.standard_normal((31, 31))
    r7 = rng.standard_normal((7, 7))
    return {
        "sobel 3x3": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float),
        "gaussian 5x5": np.outer(gauss1d(5), gauss1d(5)),
        "gaussian 15x15": np.outer(gauss1d(15), gauss1d(15)),
        "box 31x31": np.full((31, 31), 1 / 961),
        "dense 31x31": r31 / np.abs(r31).sum(),
        "dense 7x7": r7 / np.abs(r7).sum(),
    }


def workloads(quick: bool) -> list[tuple[str, int, str, int, str]]:
    """(label, size, kernel name, stride, dtype)"""
    rows = []
    sizes = [1024] if quick else [4096, 1024]
    for size in sizes:
        for name in ("sobel 3x3", "gaussian 5x5", "gaussian 15x15", "box 31x31", "dense 31x31"):
            rows.append((f"{size}x{size}, {name}", size, name, 1, "float32"))
    rows.append(("1024x1024, dense 7x7, stride 2", 1024, "dense 7x7", 2, "float32"))
    rows.append(("1024x1024 uint8, sobel 3x3", 1024, "sobel 3x3", 1, "uint8"))
    if not quick:
        rows.append(("4096x4096 uint8, gaussian 5x5", 4096, "gaussian 5x5", 1, "uint8"))
    return rows


def contenders(img: np.ndarray, k: np.ndarray, stride: int, with_ndimage: bool):
    """name -> zero-argument callable returning the (same-size or strided) result.

    The references filter at every pixel and subsample; convcli's 'same' padding at stride s
    (TensorFlow's rule) centres output u on input u*s + off, so they keep pixels off, off+s, ...
    """
    out = {"convcli": lambda: correlate(img, k, stride=stride, border="replicate")}
    before = plan_geometry(img.shape, k.shape, stride=stride, padding="same").padding[0][0]
    off = (k.shape[0] - 1) // 2 - before
    if with_ndimage:
        import scipy.ndimage as ndi

        def nd():
            res = ndi.correlate(img.astype(np.float32, copy=False), k[:, :, None].astype(np.float32), mode="nearest")
            return res[off::stride, off::stride] if stride > 1 else res

        out["ndimage"] = nd
    try:
        import cv2
    except ImportError:
        return out
    k32 = k.astype(np.float32)
    u, s, vt = np.linalg.svd(k)
    separable = s[1] <= 1e-7 * s[0] if len(s) > 1 else True

    def cv_f2d():
        res = cv2.filter2D(img, cv2.CV_32F, k32, borderType=cv2.BORDER_REPLICATE)
        return res[off::stride, off::stride] if stride > 1 else res

    out["opencv filter2D"] = cv_f2d
    if separable:
        col = (u[:, 0] * np.sqrt(s[0])).astype(np.float32)
        row = (vt[0] * np.sqrt(s[0])).astype(np.float32)

        def cv_sep():
            return cv2.sepFilter2D(img, cv2.CV_32F, row, col, borderType=cv2.BORDER_REPLICATE)

        out["opencv sepFilter2D"] = cv_sep
    return out


def time_interleaved(cands: dict, rounds: int, slow_limit: float) -> dict[str, float]:
    samples: dict[str, list[float]] = {n: [] for n in cands}
    for name, fn in cands.items():  # warm-up (first touch, plan caches, thread pools)
        t0 = time.perf_counter()
        fn()
        if time.perf_counter() - t0 > slow_limit:
            samples[name].append(time.perf_counter() - t0)
    for _ in range(rounds):
        for name, fn in cands.items():
            if len(samples[name]) and samples[name][0] > slow_limit:
                continue  # one sample of a very slow contender is enough
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {n: statistics.median(v) * 1e3 for n, v in samples.items()}


_MEM_SNIPPET = """
import os, sys
os.environ["OPENBLAS_NUM_THREADS"] = "1"
sys.path.insert(0, {root!r})
import numpy as np
from convcli.engine import correlate, plan
import benchmarks.bench_engine as b

def kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

k = b.kernels()[{kernel!r}]
rng = np.random.default_rng(0)
if {dtype!r} == "uint8":
    img = rng.integers(0, 256, size=({h}, {w}, 3), dtype=np.uint8)
else:
    img = rng.random(({h}, {w}, 3), dtype=np.float32)
# import and warm everything the measured call uses (its path: on a small image the
# planner may choose another, and importing scipy.fft would then count as the FFT's memory)
correlate(img[:64, :64], k, border="replicate", engine=plan(img.shape, k).path)
base = kib("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:  # restart the high-water mark here
    fh.write("5")
out = correlate(img, k, border="replicate")
print(base, kib("VmHWM"))
"""


def extra_memory_mib(size: int, kernel: str, dtype: str) -> float:
    """Peak resident memory during one correlate call, beyond what was resident before it
    (the input) and the output array it returns (Linux: VmHWM reset through clear_refs)."""
    code = _MEM_SNIPPET.format(root=str(ROOT), kernel=kernel, h=size, w=size, dtype=dtype)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    base, peak = (int(v) for v in res.stdout.strip().splitlines()[-1].split())
    out_bytes = size * size * 3 * 4
    return (peak - base) / 1024 - out_bytes / 2**20


def check_agreement(results: dict[str, np.ndarray]) -> float:
    ref = results["convcli"]
    span = float(np.max(np.abs(ref))) or 1.0
    worst = 0.0
    for name, arr in results.items():
        if name != "convcli":
            worst = max(worst, float(np.max(np.abs(arr.astype(np.float64) - ref))) / span)
    return worst


def end_to_end(tmp: Path, rounds: int) -> list[str]:
    """Whole processes on a 4000x3000 RGB PNG: read, Sobel-x 3x3, write PNG."""
    from PIL import Image

    src = tmp / "big.png"
    with Image.open(ROOT / "samples" / "astronaut.png") as im:
        im.convert("RGB").resize((4000, 3000), Image.LANCZOS).save(src, compress_level=6)
    convcli = shutil.which("convcli") or str(Path(sys.executable).parent / "convcli")
    # an installed wheel has its bytecode compiled by pip; an editable install may not (and
    # PYTHONDONTWRITEBYTECODE stops Python writing it): compile it once, as pip would
    import compileall

    compileall.compile_dir(str(ROOT / "convcli"), quiet=1)
    jobs: dict[str, list[str]] = {
        "convcli apply": [convcli, "apply", str(src), "-k", "sobel-x", "-o", str(tmp / "convcli.png"), "-q"],
        # the same pixels as OpenCV and ImageMagick write (negative values clipped to 0, not
        # |x|), for the file-size comparison
        "convcli apply --map clip": [convcli, "apply", str(src), "-k", "sobel-x", "--map", "clip",
                                     "-o", str(tmp / "convcli-clip.png"), "-q"],
    }
    try:
        import cv2  # noqa: F401

        script = (
            "import cv2, numpy as np\n"
            f"img = cv2.imread({str(src)!r})\n"
            "k = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)\n"
            "out = cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)\n"
            f"cv2.imwrite({str(tmp / 'opencv.png')!r}, out)\n"
        )
        jobs["opencv script"] = [sys.executable, "-c", script]
    except ImportError:
        pass
    magick = shutil.which("convert")
    if magick:
        probe = subprocess.run([magick, "-version"], capture_output=True, text=True)
        if "ImageMagick" not in probe.stdout:
            magick = None  # a stand-in, not ImageMagick
    if magick:
        jobs["imagemagick convert"] = [
            magick, str(src), "-define", "convolve:scale=1", "-morphology", "Convolve", "3x3: -1,0,1 -2,0,2 -1,0,1",
            str(tmp / "magick.png"),
        ]
    pil = (
        "from PIL import Image, ImageFilter\n"
        f"im = Image.open({str(src)!r})\n"
        "im.filter(ImageFilter.Kernel((3, 3), [-1, 0, 1, -2, 0, 2, -1, 0, 1], scale=1))"
        f".save({str(tmp / 'pillow.png')!r})\n"
    )
    jobs["pillow script"] = [sys.executable, "-c", pil]
    times: dict[str, list[float]] = {n: [] for n in jobs}
    env = {**os.environ}
    for _ in range(rounds):
        for name, cmd in jobs.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            times[name].append(time.perf_counter() - t0)
    outputs = {"convcli apply": "convcli.png", "convcli apply --map clip": "convcli-clip.png",
               "opencv script": "opencv.png",
               "imagemagick convert": "magick.png", "pillow script": "pillow.png"}
    base = statistics.median(times["convcli apply"])
    lines = ["| process | median s | convcli / this | PNG MB |", "|---|---|---|---|"]
    for name, t in times.items():
        med = statistics.median(t)
        size = (tmp / outputs[name]).stat().st_size / 1e6
        lines.append(f"| {name} | {med:.2f} | {base / med:.2f} | {size:.1f} |")
    if (tmp / "opencv.png").exists():
        import numpy as np

        with Image.open(tmp / "convcli-clip.png") as a, Image.open(tmp / "opencv.png") as b:
            same = float(np.mean(np.asarray(a) == np.asarray(b)))
        lines.append(f"\n`--map clip` output equal to OpenCV's, sample by sample: {100 * same:.4f}%")
    if magick:
        # ImageMagick's encoder on convcli's default output (|x|, both edge signs): the size
        # to compare that file with, pixel for pixel
        again = tmp / "magick-of-convcli.png"
        subprocess.run([magick, str(tmp / "convcli.png"), str(again)], check=True, capture_output=True)
        lines.append(f"\nImageMagick re-encoding convcli's default output: {again.stat().st_size / 1e6:.1f} MB "
                     f"(convcli's own: {(tmp / 'convcli.png').stat().st_size / 1e6:.1f} MB)")
    helpt = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([convcli, "--help"], check=True, capture_output=True)
        helpt.append(time.perf_counter() - t0)
    lines.append(f"\n`convcli --help`: {statistics.median(helpt):.3f} s (median of 5 whole processes)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1024x1024 workloads only, fewer rounds")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end process timings")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS measurements")
    ap.add_argument("--e2e-only", action="store_true", help="only the end-to-end process timings")
    args = ap.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    ks = kernels()
    try:
        import cv2

        cv_version = cv2.__version__
    except ImportError:
        cv_version = "not installed"
    import scipy

    print("# convcli engine benchmark\n")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"opencv {cv_version}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}\n")
    print("| workload | plan | convcli ms | OpenCV best ms | ndimage ms | convcli / OpenCV | ndimage / convcli "
          "| max rel. diff | extra MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(1)
    for label, size, kname, stride, dtype in [] if args.e2e_only else workloads(args.quick):
        k = ks[kname]
        if dtype == "uint8":
            img = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        else:
            img = rng.random((size, size, 3)).astype(np.float32)
        slow_nd = size >= 4096 and kname in ("gaussian 15x15", "box 31x31", "dense 31x31")
        cands = contenders(img, k, stride, with_ndimage=True)
        results = {n: f() for n, f in cands.items() if not (n == "ndimage" and slow_nd)}
        agree = check_agreement(results)
        del results
        if slow_nd:
            # one ndimage run takes 10-30 s here: time it once, outside the interleaving
            nd = cands.pop("ndimage")
            t0 = time.perf_counter()
            nd()
            nd_ms = (time.perf_counter() - t0) * 1e3
        times = time_interleaved(cands, rounds if size < 4096 else max(2, rounds - 2), slow_limit=5.0)
        if slow_nd:
            times["ndimage"] = nd_ms
        cv_best = min((v for n, v in times.items() if n.startswith("opencv")), default=float("nan"))
        ours = times["convcli"]
        p = plan(img.shape, k, stride=stride, dtype=img.dtype)
        mem = "" if args.no_memory or size < 4096 else f"{extra_memory_mib(size, kname, dtype):.0f}"
        print(f"| {label} | {p.path} | {ours:.1f} | {cv_best:.1f} | {times.get('ndimage', float('nan')):.0f} "
              f"| {ours / cv_best:.2f} | {times.get('ndimage', float('nan')) / ours:.1f} | {agree:.1e} | {mem} |",
              flush=True)
    if not args.no_e2e:
        print("\n## End to end: 4000x3000 RGB PNG, Sobel-x 3x3, PNG out\n")
        with tempfile.TemporaryDirectory() as d:
            for line in end_to_end(Path(d), 5):
                print(line, flush=True)


if __name__ == "__main__":
    main()
