"""Tiling benchmark: geoseg.tile against the raw block-read limit and GDAL's gdal_retile.py.

Makes a ``SIZE x SIZE`` 4-band uint8 tiled GeoTIFF with the sample generator (cached in the
work folder), then reports in one run:

- the raw read limit: every block of the scene read once with rasterio (64 MB GDAL cache);
- ``python -m geoseg.tile`` (size 512, stride 512 and 256, no labels, uncompressed patches)
  with 1 and 2 workers: seconds, patches/s, MB/s of patch pixels written, peak RSS (sum over
  the process tree, sampled every 20 ms);
- ``gdal_retile.py -ps 512 512 [-overlap 256]`` on the same scene when it is installed
  (Debian: ``apt-get install gdal-bin python3-gdal``), and the ratios against it;
- ``--compress deflate|zstd|lzw`` at stride 512.

Usage::

    python benchmarks/bench_tile.py                 # 16384 px (the target size)
    python benchmarks/bench_tile.py --size 4096     # smaller, quicker
    python benchmarks/bench_tile.py --quick         # 2048 px, stride 512 only, no compression runs
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, float, float]:
    """Run a command; return (seconds, peak RSS in MB summed over its process tree, largest process,
    CPU seconds (user + sys) of the whole tree)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    peak = one = 0
    while proc.poll() is None:
        try:
            rss = [p.memory_info().rss for p in (ps, *ps.children(recursive=True))]
            peak, one = max(peak, sum(rss)), max(one, max(rss))
        except psutil.Error:
            pass
        time.sleep(0.02)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.read().decode()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return secs, peak / 2**20, one / 2**20, cpu


def raw_read(scene: Path) -> tuple[float, float]:
    """Seconds to read every block once, and MB of pixels read."""
    import rasterio

    from geoseg.io.raster import gdal_env

    t0 = time.perf_counter()
    nbytes = 0
    with gdal_env(64), rasterio.open(scene) as ds:
        for _, win in ds.block_windows(1):
            nbytes += ds.read(window=win).nbytes
    return time.perf_counter() - t0, nbytes / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=16384, help="scene side in pixels (default 16384)")
    ap.add_argument("--quick", action="store_true", help="2048 px, stride 512 only, no compression runs")
    ap.add_argument("--workdir", default=str(ROOT / "bench_out"), help="scratch folder (scene cached here)")
    ap.add_argument("--workers", default="1,2", help="worker counts to measure (default 1,2)")
    ap.add_argument("--strides", default="512,256", help="strides to measure at size 512 (default 512,256)")
    ap.add_argument("--compress", default="deflate,zstd,lzw",
                    help="compressions measured at stride 512 with the most workers ('' for none)")
    args = ap.parse_args()
    size = 2048 if args.quick else args.size
    strides = (512,) if args.quick else tuple(int(v) for v in args.strides.split(","))
    compressions = [] if args.quick else [c for c in args.compress.split(",") if c]
    workers = [int(w) for w in args.workers.split(",")]
    work = Path(args.workdir)
    sample_dir = work / f"sample_{size}"
    if not (sample_dir / "scene.tif").exists():
        from geoseg.apps.sample import make_sample

        t0 = time.perf_counter()
        make_sample(sample_dir, size=size, bands=4, dtype="uint8", seed=0)
        print(f"made {size}x{size} sample scene in {time.perf_counter() - t0:.1f} s")
    scene = sample_dir / "scene.tif"
    py = sys.executable
    print(f"scene: {scene} ({size}x{size} px, 4 bands uint8, {scene.stat().st_size / 2**20:.0f} MB on disk), "
          f"{os.cpu_count()} CPUs")

    cpu0 = time.process_time()
    raw_s, raw_mb = raw_read(scene)
    print(f"\nraw block read: {raw_s:.2f} s ({time.process_time() - cpu0:.1f} CPU s), {raw_mb / raw_s:.0f} MB/s "
          f"({raw_mb:.0f} MB of pixels)")
    retile = shutil.which("gdal_retile.py")
    gdal_py = "/usr/bin/python3"
    if retile is None:
        print("gdal_retile.py not found: no GDAL baseline (apt-get install gdal-bin python3-gdal)")

    header = (f"{'job':<34}{'s':>8}{'patches':>9}{'patch/s':>9}{'MB/s':>8}{'RSS MB':>8}{'1proc':>7}{'CPU s':>7}"
              f"{'xraw':>7}{'xretile':>9}")
    print("\n" + header + "\n" + "-" * len(header))
    for stride in strides:
        base = None
        if retile:
            out = work / "retile"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            cmd = [gdal_py, retile, "-q", "-ps", "512", "512", "-targetDir", str(out), str(scene)]
            if stride != 512:
                cmd[3:3] = ["-overlap", str(512 - stride)]
            secs, rss, one, cpu = run_measured(cmd)
            n = len(list(out.glob("*.tif")))
            mb = sum(p.stat().st_size for p in out.glob("*.tif")) / 2**20
            base = secs
            print(f"{f'gdal_retile.py stride {stride}':<34}{secs:>8.2f}{n:>9}{n / secs:>9.0f}{mb / secs:>8.0f}"
                  f"{rss:>8.0f}{one:>7.0f}{cpu:>7.1f}{secs / raw_s:>7.2f}{1.0:>9.2f}")
            shutil.rmtree(out, ignore_errors=True)
        jobs = [(w, "none") for w in workers]
        if stride == 512:
            jobs += [(max(workers), c) for c in compressions]
        for w, comp in jobs:
            out = work / "geoseg_ds"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [py, "-m", "geoseg.tile", str(scene), "--out", str(out), "--size", "512", "--stride", str(stride),
                   "--workers", str(w), "--compress", comp, "--quiet", "--val-fraction", "0"]
            secs, rss, one, cpu = run_measured(cmd)
            imgs = list((out / "images").glob("*.tif"))
            n = len(imgs)
            mb = n * 512 * 512 * 4 / 2**20
            disk = sum(p.stat().st_size for p in imgs) / 2**20
            label = f"geoseg stride {stride} w{w} {comp}" + (f" ({disk / 1024:.2f} GB)" if comp != "none" else "")
            ratio = f"{secs / base:>9.2f}" if base else f"{'n/a':>9}"
            print(f"{label:<34}{secs:>8.2f}{n:>9}{n / secs:>9.0f}{mb / secs:>8.0f}{rss:>8.0f}{one:>7.0f}{cpu:>7.1f}"
                  f"{secs / raw_s:>7.2f}{ratio}")
            shutil.rmtree(out, ignore_errors=True)
    print("\nRSS MB = peak RSS summed over the process tree (dask scheduler, nannies and workers included); "
          "1proc = largest single process; CPU s = user + sys of the whole process tree.\n"
          "xraw = time / raw block-read time; "
          "xretile = time / gdal_retile.py time at the same stride.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
