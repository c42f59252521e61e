"""Benchmark whole-scene prediction (``geoseg.inference``) against the pure model and a naive baseline.

For each scene size and tile size, on the synthetic sample scene (``geoseg.sample``, 4 bands,
uint8) with a small U-Net (random weights, 5 classes), stride = tile / 2, batch 8:

- ``forward``: the model alone on the same number of windows (batches already in memory):
  the lower limit of any implementation.
- ``geoseg``: ``predict_scene`` end to end (read, normalize, predict, blend, encode, write the
  label and uint8 probability GeoTIFFs).
- ``naive``: the seed-style implementation: whole scene in memory, one ``model.predict`` call per
  tile, full-scene float32 accumulators, whole-array writes.

Each phase runs in a fresh child process, so its peak RSS (``ru_maxrss``) is its own. Printed:
seconds, overhead ratio ``total / forward``, scene pixels per second, peak RSS (and, as "base",
the RSS of the same process after loading TensorFlow and the model, before predicting).

    .venv/bin/python benchmarks/bench_predict.py                       # size 2048, tile 256, tall scenes
    .venv/bin/python benchmarks/bench_predict.py --quick               # size 1024, tall scenes up to 4096
    .venv/bin/python benchmarks/bench_predict.py --sizes 4096 8192 16384 --tiles 256 512 --no-naive-above 4096
    .venv/bin/python benchmarks/bench_predict.py --sizes --heights --wide 20000    # RSS of a 20000 px wide scene
    .venv/bin/python benchmarks/bench_predict.py --onnx --sizes 1024 --heights     # ONNX vs Keras path

``--onnx`` adds, per size and tile, the same prediction through the bundle exported with ``geoseg
export --format onnx`` (onnxruntime, no TensorFlow) next to the Keras bundle, each in a fresh
process: start-up (imports, bundle/model load, first batch of one window), then ``predict_scene``
end to end on the same scene, tile and stride; labels of the two runs are compared.

``--device`` measures the device path (``--accumulate device``, :mod:`geoseg.inference.device`) on
the GPU when one is visible, else on TensorFlow's CPU device (and says so): for the small U-Net
and DeepLab v3+ (``--deeplab-backbone``, default resnet101) at ``--device-tile`` 512 on a
``--size`` (default 16384) px square scene, stride tile/2, batch from device memory (8 on CPU)
unless ``--device-batch``: the pure model throughput on pre-staged device tensors (windows/s and
Mpx/s of windows), ``predict_scene`` end to end (model tracing included) with ``--accumulate host``
and ``device``, their ratio to the model (target >= 0.85 on a GPU), peak host RSS and peak device memory.

    .venv/bin/python benchmarks/bench_predict.py --sizes --heights --device                  # on a GPU
    .venv/bin/python benchmarks/bench_predict.py --sizes --heights --device --size 1024      # on CPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CLASSES = ["background", "building", "road", "vegetation", "water"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_scene(work: Path, size: int) -> Path:
    from geoseg.apps.sample import make_sample

    folder = work / f"sample_{size}"
    scene = folder / "scene.tif"
    if not scene.exists():
        files = make_sample(folder, size=size, overwrite=True)
        scene = Path(files.scene)
    else:
        scene = next(p for p in folder.glob("*.tif") if "label" not in p.name)
    return scene


def make_mosaic_scene(work: Path, width: int, height: int, side: int = 1024) -> Path:
    """A ``width x height`` scene tiling the sample scene of side ``side`` in both directions."""
    import rasterio
    from rasterio.windows import Window

    from geoseg.io.profiles import tiled_profile

    path = work / f"mosaic_{width}x{height}.tif"
    if path.exists():
        return path
    with rasterio.open(make_scene(work, side)) as src:
        tile = src.read()
        prof = tiled_profile(width, height, src.count, src.dtypes[0], src.crs, src.transform, src.nodata)
        with rasterio.open(path, "w", **prof) as dst:
            for row in range(0, height, side):
                for col in range(0, width, side):
                    h, w = min(side, height - row), min(side, width - col)
                    dst.write(tile[:, :h, :w], window=Window(col, row, w, h))
    return path


def make_bundle(work: Path, tile: int, filters: int, depth: int) -> Path:
    import keras

    from geoseg.io.bundle import save_bundle
    from geoseg.models import get_model

    d = work / f"unet_f{filters}_d{depth}_t{tile}"
    if not (d / "geoseg.json").exists():
        keras.utils.set_random_seed(0)
        model = get_model("unet", len(CLASSES), input_shape=(tile, tile, 4), encoder_filters=filters,
                          encoder_depth=depth)
        norm = {"method": "meanstd", "mean": [100.0] * 4, "std": [50.0] * 4}
        save_bundle(model, d, CLASSES, tile, normalization=norm, stride=tile // 2, bands=[1, 2, 3, 4],
                    overwrite=True)
    return d


# -- phases (each in its own process) ------------------------------------------------------------

def phase_forward(bundle_dir: str, scene: str, batch: int) -> dict:
    """Pure model time on as many windows as the scene has (a few real batches, cycled)."""
    from geoseg.inference.forward import Forward
    from geoseg.inference.reader import ScenePlan, iter_window_batches
    from geoseg.io.bundle import load_bundle
    from geoseg.io.raster import open_scene

    bundle = load_bundle(bundle_dir)
    info = open_scene(scene)
    plan = ScenePlan.create(info.height, info.width, bundle.tile_size, bundle.stride)
    n = plan.count()
    batches = []
    for b in iter_window_batches(scene, plan, [1, 2, 3, 4], bundle.normalization, batch):
        batches.append(b.data)
        if len(batches) == 4:
            break
    fwd = Forward(bundle.model, bundle.tile_size, 4, bundle.num_classes)
    fwd(batches[0])  # trace once, like the first batch of a real run
    calls = math.ceil(n / batch)
    t0 = time.perf_counter()
    for i in range(calls):
        fwd(batches[i % len(batches)])
    return {"seconds": time.perf_counter() - t0, "windows": n, "rss_mb": _rss_mb()}


def phase_geoseg(bundle_dir: str, scene: str, batch: int, out: str) -> dict:
    from geoseg.inference import predict_scene
    from geoseg.io.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    base = _rss_mb()
    t0 = time.perf_counter()
    res = predict_scene(bundle, scene, out, batch_size=batch, overwrite=True, progress=False)
    return {"seconds": time.perf_counter() - t0, "windows": res.windows, "rss_mb": _rss_mb(), "base_rss_mb": base}


def phase_naive(bundle_dir: str, scene: str, batch: int, out: str) -> dict:
    """Seed style: whole scene in memory, one predict call per tile, full-scene accumulators."""
    import numpy as np
    import rasterio

    from geoseg.io.bundle import load_bundle
    from geoseg.io.normalization import normalize
    from geoseg.io.profiles import tiled_profile
    from geoseg.io.windows import axis_offsets

    bundle = load_bundle(bundle_dir)
    model, t, s = bundle.model, bundle.tile_size, bundle.stride
    base = _rss_mb()
    t0 = time.perf_counter()
    with rasterio.open(scene) as ds:
        img = ds.read([1, 2, 3, 4])
        prof = ds.profile
    x = normalize(np.moveaxis(img, 0, -1), bundle.normalization)
    h, w = x.shape[:2]
    acc = np.zeros((h, w, bundle.num_classes), np.float32)
    cnt = np.zeros((h, w), np.float32)
    for r in axis_offsets(h, t, s):
        for c in axis_offsets(w, t, s):
            p = model.predict(x[None, r:r + t, c:c + t], verbose=0)[0]
            acc[r:r + t, c:c + t] += p
            cnt[r:r + t, c:c + t] += 1
    prob = acc / cnt[..., None]
    label = prob.argmax(-1).astype(np.uint8)
    Path(out).mkdir(parents=True, exist_ok=True)
    lp = tiled_profile(w, h, 1, "uint8", prof["crs"], prof["transform"], 255)
    with rasterio.open(Path(out) / "naive_label.tif", "w", **lp) as dst:
        dst.write(label, 1)
    pp = tiled_profile(w, h, bundle.num_classes, "uint8", prof["crs"], prof["transform"], 255)
    with rasterio.open(Path(out) / "naive_prob.tif", "w", **pp) as dst:
        dst.write(np.moveaxis(np.clip(np.rint(prob * 255), 0, 254).astype(np.uint8), -1, 0))
    return {"seconds": time.perf_counter() - t0, "rss_mb": _rss_mb(), "base_rss_mb": base}


def phase_export(bundle_dir: str, out: str) -> dict:
    from geoseg.export.onnx import export_onnx
    from geoseg.io.bundle import load_bundle

    t0 = time.perf_counter()
    res = export_onnx(load_bundle(bundle_dir), out, overwrite=True)
    return {"seconds": time.perf_counter() - t0, "max_abs_diff": res["max_abs_diff"]}


def phase_engine(model: str, scene: str, batch: int, out: str) -> dict:
    """Start-up (imports, model load, first one-window batch) and ``predict_scene`` of a bundle or ``.onnx``."""
    t0 = time.perf_counter()
    import numpy as np

    from geoseg.inference import predict_scene
    from geoseg.inference.forward import make_forward
    from geoseg.io.bundle import load_bundle

    bundle = load_bundle(model)
    make_forward(bundle, 4)(np.zeros((1, bundle.tile_size, bundle.tile_size, 4), np.float32))
    startup = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = predict_scene(bundle, scene, out, batch_size=batch, overwrite=True, progress=False)
    return {"startup": startup, "seconds": time.perf_counter() - t1, "windows": res.windows, "rss_mb": _rss_mb(),
            "tensorflow": "tensorflow" in sys.modules}


def label_agreement(a: Path, b: Path) -> float:
    import numpy as np
    import rasterio

    with rasterio.open(a) as da, rasterio.open(b) as db:
        return float(np.mean(da.read(1) == db.read(1)))


def _device_peak_mb() -> float | None:
    """Peak device memory of the GPU the model runs on (``GPU:0``), in MiB; None without a GPU."""
    from geoseg.runtime.tensorflow import peak_memory_mb, visible_gpus

    return peak_memory_mb(visible_gpus()[:1])


def phase_devmodel(bundle_dir: str, scene: str, batch: int, precision: str) -> dict:
    """Pure model throughput: ``Forward.device`` on one pre-staged device batch, as many windows as the scene."""
    import numpy as np
    import tensorflow as tf

    from geoseg.inference.forward import Forward
    from geoseg.inference.reader import ScenePlan
    from geoseg.io.bundle import load_bundle
    from geoseg.io.raster import open_scene

    bundle = load_bundle(bundle_dir)
    info = open_scene(scene)
    t = bundle.tile_size
    n = ScenePlan.create(info.height, info.width, t, bundle.stride).count()
    fwd = Forward(bundle.model, t, 4, bundle.num_classes, precision=precision)
    batch = batch or fwd.batch_size()
    x = tf.identity(np.random.default_rng(0).normal(0, 1, (batch, t, t, 4)).astype(np.float32))
    float(tf.reduce_sum(fwd.device(x)))  # trace and warm up
    calls = math.ceil(n / batch)
    t0 = time.perf_counter()
    last = None
    for _ in range(calls):
        last = fwd.device(x)
    float(tf.reduce_sum(last))  # wait for the device
    sec = time.perf_counter() - t0
    return {"seconds": sec, "windows": calls * batch, "batch": batch, "rss_mb": _rss_mb(),
            "device_mb": _device_peak_mb(), "mpx": calls * batch * t * t / sec / 1e6}


def phase_devgeoseg(bundle_dir: str, scene: str, batch: int, out: str, accumulate: str, precision: str) -> dict:
    from geoseg.inference import predict_scene
    from geoseg.io.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    opts = dict(batch_size=batch or None, overwrite=True, progress=False, accumulate=accumulate, precision=precision)
    t0 = time.perf_counter()
    res = predict_scene(bundle, scene, out, **opts)
    return {"seconds": time.perf_counter() - t0, "windows": res.windows, "rss_mb": _rss_mb(),
            "device_mb": _device_peak_mb()}


def make_model_bundle(work: Path, name: str, tile: int, args: argparse.Namespace) -> Path:
    """The small U-Net of :func:`make_bundle`, or DeepLab v3+ (random weights) at ``tile``."""
    if name == "unet":
        return make_bundle(work, tile, args.filters, args.depth)
    import keras

    from geoseg.io.bundle import save_bundle
    from geoseg.models import get_model

    d = work / f"deeplabv3plus_{args.deeplab_backbone}_t{tile}"
    if not (d / "geoseg.json").exists():
        keras.utils.set_random_seed(0)
        model = get_model("deeplabv3plus", len(CLASSES), input_shape=(tile, tile, 4), backbone=args.deeplab_backbone)
        norm = {"method": "meanstd", "mean": [100.0] * 4, "std": [50.0] * 4}
        save_bundle(model, d, CLASSES, tile, normalization=norm, stride=tile // 2, bands=[1, 2, 3, 4], overwrite=True)
    return d


def device_section(args: argparse.Namespace, work: Path) -> None:
    """Model alone on device tensors vs geoseg end to end (host and device accumulation)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    where = (f"GPU {tf.config.experimental.get_device_details(gpus[0]).get('device_name', gpus[0].name)}" if gpus
             else "CPU (no GPU visible; GPU figures still to be measured)")
    scene = make_mosaic_scene(work, args.size, args.size)
    tile = args.device_tile
    print(f"\n# device path on {where}: scene {args.size} px, tile {tile}, stride {tile // 2}, precision "
          f"{args.precision}, batch {args.device_batch or 'auto'}; ratio = geoseg windows/s / model windows/s")
    print(f"{'model':>14} {'path':>7} {'batch':>5} {'windows':>7} {'seconds':>8} {'win/s':>7} {'Mpx/s':>7} "
          f"{'ratio':>5} {'RSS MB':>7} {'dev MB':>7}")
    for name in ("unet", "deeplabv3plus"):
        bundle = make_model_bundle(work, name, tile, args)
        label = name if name == "unet" else f"dlv3+{args.deeplab_backbone}"
        m = run_phase("devmodel", bundle, scene, args.device_batch, args.precision)
        rate = m["windows"] / m["seconds"]
        rows = [("model", m, m["mpx"], 1.0)]
        for acc in ("host", "device"):
            g = run_phase("devgeoseg", bundle, scene, args.device_batch, work / f"out_dev_{acc}", acc,
                          args.precision)
            rows.append((acc, g, args.size * args.size / g["seconds"] / 1e6, g["windows"] / g["seconds"] / rate))
        for path, r, mpx, ratio in rows:
            dev = f"{r['device_mb']:7.0f}" if r.get("device_mb") is not None else f"{'-':>7}"
            print(f"{label:>14} {path:>7} {m['batch']:>5} {r['windows']:>7} {r['seconds']:8.2f} "
                  f"{r['windows'] / r['seconds']:7.1f} {mpx:7.2f} {ratio:5.2f} {r['rss_mb']:7.0f} {dev}", flush=True)


PHASES = {"forward": phase_forward, "geoseg": phase_geoseg, "naive": phase_naive, "export": phase_export,
          "engine": phase_engine, "devmodel": phase_devmodel, "devgeoseg": phase_devgeoseg}


def run_phase(name: str, *args) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[2048], help="scene sizes (px a side)")
    ap.add_argument("--heights", type=int, nargs="*", default=[1024, 4096, 16384],
                    help="heights of tall scenes (width --tall-width) for peak RSS vs height (geoseg only)")
    ap.add_argument("--tall-width", type=int, default=1024)
    ap.add_argument("--wide", type=int, nargs="*", default=[],
                    help="widths of 1024-row scenes for peak RSS vs width (geoseg only), e.g. 20000")
    ap.add_argument("--tiles", type=int, nargs="+", default=[256], help="tile sizes (px)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--filters", type=int, default=8, help="U-Net encoder_filters (small: 8)")
    ap.add_argument("--depth", type=int, default=3, help="U-Net encoder_depth (small: 3)")
    ap.add_argument("--no-naive-above", type=int, default=4096, help="skip the naive baseline above this size")
    ap.add_argument("--quick", action="store_true", help="size 1024 and tile 256 only")
    ap.add_argument("--work", default="/tmp/geoseg-bench-predict", help="scratch folder (scenes are cached)")
    ap.add_argument("--onnx", action="store_true", help="also time the exported ONNX model against the Keras bundle")
    ap.add_argument("--device", action="store_true", help="device-path section (GPU when visible, else CPU)")
    ap.add_argument("--size", type=int, default=16384, help="--device: scene size in px a side (shrink on CPU)")
    ap.add_argument("--device-tile", type=int, default=512, help="--device: tile size (px)")
    ap.add_argument("--device-batch", type=int, default=0, help="--device: batch (0: from device memory, 8 on CPU)")
    ap.add_argument("--precision", choices=("float32", "mixed"), default="float32", help="--device: model precision")
    ap.add_argument("--deeplab-backbone", default="resnet101", help="--device: DeepLab v3+ backbone")
    ap.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        name, *rest = args.phase
        rest = [int(v) if v.isdigit() else v for v in rest]
        print(json.dumps(PHASES[name](*rest)))
        return
    if args.quick:
        args.sizes, args.tiles, args.heights = [1024], [256], [1024, 4096]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"# bench_predict: U-Net small (filters {args.filters}, depth {args.depth}), 5 classes, 4-band uint8 "
          f"sample scene, stride tile/2, batch {args.batch_size}, cpus {os.cpu_count()}")
    header = (f"{'size':>6} {'tile':>4} {'windows':>7} {'forward s':>9} {'geoseg s':>8} {'ratio':>5} "
              f"{'Mpx/s':>6} {'RSS MB':>7} {'(base)':>6} {'naive s':>8} {'naive RSS':>9} {'speedup':>7}")
    print(header)
    for size in args.sizes:
        scene = make_scene(work, size)
        for tile in args.tiles:
            bundle = make_bundle(work, tile, args.filters, args.depth)
            fwd = run_phase("forward", bundle, scene, args.batch_size)
            geo = run_phase("geoseg", bundle, scene, args.batch_size, work / "out")
            naive = None
            if size <= args.no_naive_above:
                naive = run_phase("naive", bundle, scene, args.batch_size, work / "out_naive")
            ratio = geo["seconds"] / fwd["seconds"]
            mpx = size * size / geo["seconds"] / 1e6
            ns = f"{naive['seconds']:8.1f} {naive['rss_mb']:9.0f} {naive['seconds'] / geo['seconds']:6.2f}x" \
                if naive else f"{'-':>8} {'-':>9} {'-':>7}"
            print(f"{size:>6} {tile:>4} {fwd['windows']:>7} {fwd['seconds']:9.1f} {geo['seconds']:8.1f} "
                  f"{ratio:5.2f} {mpx:6.2f} {geo['rss_mb']:7.0f} {geo['base_rss_mb']:6.0f} {ns}", flush=True)
    if args.onnx:
        onnx_section(args, work)
    if args.device:
        device_section(args, work)
    if args.heights:
        tile = args.tiles[0]
        bundle = make_bundle(work, tile, args.filters, args.depth)
        print(f"\n# peak RSS vs scene height (width {args.tall_width}, tile {tile}, geoseg only)")
        print(f"{'height':>7} {'windows':>7} {'geoseg s':>8} {'RSS MB':>7} {'(base)':>6}")
        for height in args.heights:
            scene = make_mosaic_scene(work, args.tall_width, height)
            geo = run_phase("geoseg", bundle, scene, args.batch_size, work / "out_tall")
            print(f"{height:>7} {geo['windows']:>7} {geo['seconds']:8.1f} {geo['rss_mb']:7.0f} "
                  f"{geo['base_rss_mb']:6.0f}",
                  flush=True)
    if args.wide:
        tile = args.tiles[0]
        bundle = make_bundle(work, tile, args.filters, args.depth)
        print(f"\n# peak RSS vs scene width (height 1024, tile {tile}, geoseg only)")
        print(f"{'width':>7} {'windows':>7} {'geoseg s':>8} {'RSS MB':>7} {'(base)':>6}")
        for width in args.wide:
            scene = make_mosaic_scene(work, width, 1024)
            geo = run_phase("geoseg", bundle, scene, args.batch_size, work / "out_wide")
            print(f"{width:>7} {geo['windows']:>7} {geo['seconds']:8.1f} {geo['rss_mb']:7.0f} "
                  f"{geo['base_rss_mb']:6.0f}",
                  flush=True)


def onnx_section(args: argparse.Namespace, work: Path) -> None:
    """Keras bundle vs its ONNX export through ``predict_scene``: start-up and throughput."""
    import onnxruntime

    print(f"\n# ONNX (onnxruntime {onnxruntime.__version__}, CPU) vs Keras: fresh process each; start-up = imports "
          "+ model load + first 1-window batch; predict = predict_scene end to end")
    print(f"{'size':>6} {'tile':>4} {'path':>5} {'startup s':>9} {'predict s':>9} {'Mpx/s':>6} {'RSS MB':>7} "
          f"{'TF loaded':>9} {'labels equal':>12}")
    for size in args.sizes:
        scene = make_scene(work, size)
        for tile in args.tiles:
            bundle = make_bundle(work, tile, args.filters, args.depth)
            onnx_path = work / f"{bundle.name}.onnx"
            run_phase("export", bundle, onnx_path)
            rows = {}
            for name, model in (("keras", bundle), ("onnx", onnx_path)):
                rows[name] = run_phase("engine", model, scene, args.batch_size, work / f"out_{name}")
            same = label_agreement(work / "out_keras" / f"{scene.stem}_label.tif",
                                   work / "out_onnx" / f"{scene.stem}_label.tif")
            for name, r in rows.items():
                print(f"{size:>6} {tile:>4} {name:>5} {r['startup']:9.2f} {r['seconds']:9.1f} "
                      f"{size * size / r['seconds'] / 1e6:6.2f} {r['rss_mb']:7.0f} {str(r['tensorflow']):>9} "
                      f"{same * 100:11.4f}%", flush=True)


if __name__ == "__main__":
    main()
