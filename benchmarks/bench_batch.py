"""A batch of real photos through convcli (-j 1, -j 2) and, when installed, ImageMagick.

The photos are made from the shipped samples (crops, flips and resizes of four photographs,
saved as PNG). The job is the same everywhere: the 5x5 binomial blur (1 4 6 4 1 outer
product, /256, ImageMagick: convolve:scale=! divides by the sum) with the edge pixel repeated at the border, written as 8-bit PNG. Prints the
wall time of each, the ratios, the total PNG size, and the largest pixel difference from
convcli's output.

    python benchmarks/bench_batch.py [--files 60] [--size 1200x900] [--rounds 3]

ImageMagick: ``apt-get install imagemagick``. Its ``mogrify`` runs the whole batch in one
process (with its own OpenMP threads); ``convert`` per file is what a shell loop does.
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

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
BINOMIAL = "1,4,6,4,1 4,16,24,16,4 6,24,36,24,6 4,16,24,16,4 1,4,6,4,1"


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sources = []
    for name in ("astronaut.png", "coffee.jpg", "chelsea.jpg", "camera.png"):
        with Image.open(ROOT / "samples" / name) as im:
            sources.append(im.convert("RGB"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        im = sources[i % len(sources)]
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        photo = im.crop((x, y, x + cw, y + ch)).resize(size, Image.LANCZOS)
        if i % 2:
            photo = ImageOps.mirror(photo)
        path = folder / f"photo{i:03d}.png"
        photo.save(path, compress_level=6)
        paths.append(path)
    return paths


def timed(cmd: list[str] | str, *, shell: bool = False) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def folder_bytes(folder: Path, names: list[str] | None = None) -> int:
    files = [folder / n for n in names] if names is not None else list(folder.glob("*.png"))
    return sum(p.stat().st_size for p in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--size", default="1200x900")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    convcli = shutil.which("convcli") or str(Path(sys.executable).parent / "convcli")
    real_magick = Path("/usr/bin/convert").exists() and shutil.which("mogrify")
    tmp = Path(tempfile.mkdtemp(prefix="convcli-batch-"))
    try:
        photos = make_photos(tmp / "in", args.files, size)
        outs = {name: tmp / name for name in ("j1", "j2", "mogrify", "convert")}
        cmd_convcli = [convcli, "apply", str(tmp / "in"), "-k", "gaussian-blur-5", "--border", "replicate",
                       "-q", "--name", "{stem}{ext}"]
        jobs: dict[str, object] = {
            "convcli -j 1": lambda: timed([*cmd_convcli, "-o", str(outs["j1"]), "-j", "1"]),
            "convcli -j 2": lambda: timed([*cmd_convcli, "-o", str(outs["j2"]), "-j", "2"]),
        }
        if real_magick:
            im_args = f"-define convolve:scale='!' -morphology Convolve '5x5: {BINOMIAL}'"
            outs["mogrify"].mkdir()
            jobs["ImageMagick mogrify"] = lambda: timed(
                f"mogrify -path {outs['mogrify']} -virtual-pixel edge {im_args} {tmp / 'in'}/*.png", shell=True)
            outs["convert"].mkdir()
            loop = (f"for f in {tmp / 'in'}/*.png; do convert \"$f\" -virtual-pixel edge {im_args} "
                    f"{outs['convert']}/$(basename \"$f\"); done")
            jobs["ImageMagick convert loop"] = lambda: timed(loop, shell=True)
        times: dict[str, list[float]] = {name: [] for name in jobs}
        for _ in range(args.rounds):  # interleaved, so that slow spells hit everyone alike
            for name, job in jobs.items():
                times[name].append(job())  # type: ignore[operator]
        best = {name: statistics.median(v) for name, v in times.items()}
        ref = best["convcli -j 2"]
        import numpy as _np

        def worst_diff(folder: Path) -> int:
            worst = 0
            for p in photos[:10]:
                a = _np.asarray(Image.open(outs["j2"] / p.name), dtype=_np.int16)
                b = _np.asarray(Image.open(folder / p.name).convert("RGB"), dtype=_np.int16)
                worst = max(worst, int(_np.abs(a - b).max()))
            return worst

        print("# convcli batch benchmark\n")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
        version = ""
        if real_magick:
            version = subprocess.run(["convert", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
        print(f"python {platform.python_version()}; {version or 'ImageMagick not installed'}")
        print(f"job: {args.files} PNG photos {size[0]}x{size[1]} RGB, 5x5 binomial blur, edge border, 8-bit PNG out;"
              f" median of {args.rounds} interleaved rounds\n")
        # every 4th photo comes from the gray camera.png: ImageMagick writes those as 1-channel PNG
        colour = [p.name for i, p in enumerate(photos) if i % 4 != 3]
        print("| job | seconds | files/s | time / convcli -j 2 | PNG MB out | of which colour photos |"
              " max pixel diff vs convcli |")
        print("|---|---|---|---|---|---|---|")
        folders = {"convcli -j 1": outs["j1"], "convcli -j 2": outs["j2"], "ImageMagick mogrify": outs["mogrify"],
                   "ImageMagick convert loop": outs["convert"]}
        for name, sec in best.items():
            folder = folders[name]
            diff = worst_diff(folder) if name != "convcli -j 2" else 0
            print(f"| {name} | {sec:.2f} | {args.files / sec:.1f} | {sec / ref:.2f} | "
                  f"{folder_bytes(folder) / 1e6:.1f} | {folder_bytes(folder, colour) / 1e6:.1f} | {diff} |")
        identical = all((outs["j1"] / p.name).read_bytes() == (outs["j2"] / p.name).read_bytes() for p in photos)
        print(f"\n-j 1 and -j 2 outputs byte-identical: {identical}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
