"""Evaluation throughput and peak memory: geoseg's streaming evaluator vs whole-array baselines.

Writes a prediction and a label raster (N x N uint8, tiled, deflate) and times, each in a fresh
process so that peak RSS is its own:

- ``geoseg``: ``geoseg.evaluation.evaluate`` (window by window, bounded memory);
- ``geoseg-warped``: the same with the label on a 2x coarser grid (WarpedVRT, nearest);
- ``numpy-whole``: read both rasters whole, one ``np.bincount`` (the usual script);
- ``sklearn-whole``: read both whole, ``sklearn.metrics.confusion_matrix`` (the reference).

Usage: python benchmarks/bench_evaluate.py [--size 8192] [--classes 6] [--quick] [--methods geoseg,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def make_inputs(folder: Path, size: int, classes: int) -> tuple[Path, Path, Path]:
    import rasterio
    from affine import Affine

    from geoseg.io.profiles import tiled_profile

    t = Affine(0.5, 0, 500000.0, 0, -0.5, 4649776.0)
    prof = tiled_profile(size, size, 1, "uint8", "EPSG:32633", t, 255)
    coarse_prof = tiled_profile(size // 2, size // 2, 1, "uint8", "EPSG:32633",
                                Affine(1.0, 0, 500000.0, 0, -1.0, 4649776.0), 255)
    rng = np.random.default_rng(0)
    paths = folder / "pred.tif", folder / "label.tif", folder / "label_coarse.tif"
    with rasterio.open(paths[0], "w", **prof) as p, rasterio.open(paths[1], "w", **prof) as lab, \
            rasterio.open(paths[2], "w", **coarse_prof) as lc:
        step = 1024
        for r in range(0, size, step):
            h = min(step, size - r)
            rows = np.arange(r, r + h)[:, None] // 64
            cols = np.arange(size)[None, :] // 80
            truth = ((rows + cols) % classes).astype(np.uint8)
            noise = rng.random(truth.shape) < 0.2
            pred = np.where(noise, rng.integers(0, classes, truth.shape), truth).astype(np.uint8)
            win = rasterio.windows.Window(0, r, size, h)
            p.write(pred, 1, window=win)
            lab.write(truth, 1, window=win)
            lc.write(truth[::2, ::2], 1, window=rasterio.windows.Window(0, r // 2, size // 2, h // 2))
    return paths


def run_method(method: str, pred: str, label: str, coarse: str, classes: int) -> dict:
    import psutil
    import rasterio
    from sklearn.metrics import confusion_matrix

    from geoseg.evaluation import evaluate

    proc = psutil.Process()
    base = proc.memory_info().rss  # after imports: count only the work's memory
    # Sampled, not ru_maxrss: Linux keeps ru_maxrss across exec, so a big parent would leak into it.
    peak, done = [base], threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    if method.startswith("geoseg"):
        res = evaluate(pred, coarse if method == "geoseg-warped" else label, classes)
        cm = res.confusion
    else:
        with rasterio.open(pred) as a, rasterio.open(label) as b:
            p, t = a.read(1), b.read(1)
        if method == "numpy-whole":
            cm = np.bincount(t.ravel().astype(np.intp) * classes + p.ravel(), minlength=classes * classes)
            cm = cm.reshape(classes, classes)
        else:
            cm = confusion_matrix(t.ravel(), p.ravel(), labels=list(range(classes)))
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    return {"method": method, "seconds": seconds, "peak_mb": (peak[0] - base) / 2**20, "trace": int(np.trace(cm))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8192, help="raster side in pixels")
    ap.add_argument("--classes", type=int, default=6)
    ap.add_argument("--quick", action="store_true", help="2048 px side, for a smoke run")
    ap.add_argument("--methods", default="sklearn-whole,numpy-whole,geoseg,geoseg-warped",
                    help="comma-separated subset (the first one is the baseline of the ratios)")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--paths", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        print(json.dumps(run_method(args.run, *args.paths, args.classes)))
        return
    size = 2048 if args.quick else args.size
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = make_inputs(Path(tmp), size, args.classes)
        print(f"inputs: {size}x{size} uint8, {args.classes} classes, tiled 512 deflate "
              f"(written in {time.perf_counter() - t0:.1f} s)")
        results = []
        for method in args.methods.split(","):
            out = subprocess.run([sys.executable, __file__, "--run", method, "--classes", str(args.classes),
                                  "--paths", *map(str, paths)], capture_output=True, text=True, check=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = results[0]
    mpx = size * size / 1e6
    print(f"{'method':<15}{'seconds':>9}{'Mpx/s':>9}{'  speed vs ' + base['method']:>24}{'peak RSS MB':>13}")
    for r in results:
        print(f"{r['method']:<15}{r['seconds']:>9.2f}{mpx / r['seconds']:>9.1f}{base['seconds'] / r['seconds']:>23.1f}x"
              f"{r['peak_mb']:>13.0f}")
    same = {r["trace"] for r in results if r["method"] != "geoseg-warped"}
    print("confusion matrices agree:", len(same) == 1)


if __name__ == "__main__":
    main()
