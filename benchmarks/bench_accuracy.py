"""Accuracy on unseen ground: train on the left 60 % of a scene, score the right 40 %.

For each scene (the SpaceNet-4 clip in ``../shared/data/`` when present, and the synthetic
sample scene of :func:`geoseg.apps.sample.make_sample`) and each recipe:

1. write a polygon covering the left ``--train-fraction`` of the scene's columns (a GeoJSON in
   a temporary folder) and tile only inside it (``geoseg tile --aoi``: random 128 px windows,
   random 10 % validation split);
2. train with the defaults, setting only ``--model``, ``--model-args`` and ``--time-budget``
   (or ``--epochs``);
3. predict the whole scene (``geoseg predict``) and compare the label raster with the
   rasterized truth on the right part only (columns ``>= ceil(train_fraction * width)``).

Printed per run: building (foreground) IoU, mIoU and overall accuracy (OA) of the model and of
the all-background (majority) baseline, their ratios, the predicted vs true foreground share
and the wall time of training. Nothing is written into the repository.

    python benchmarks/bench_accuracy.py                      # both recipes, 10 min budget each
    python benchmarks/bench_accuracy.py --budget 3m --recipes unet --scenes sn4 --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SN4_SCENE = DATA / ("SN4_buildings_train_AOI_6_Atlanta_nadir10_catid_1030010003993E00_PS-RGBNIR_"
                   "732701_3729639_clipped.tif")
SN4_LABELS = DATA / "SN4_buildings_train_AOI_6_Atlanta_geojson_buildings_732701_3729639.geojson"

#: Recipes: only the model, its arguments and the budget differ from the defaults.
RECIPES = {
    "unet": {"model": "unet", "model_args": {"encoder_depth": 3, "encoder_filters": 16}},
    # mobilenetv2 at width 0.5 with a 96-channel separable ASPP/decoder: 1.45 M parameters (the
    # zoo default, width 1 and 256 channels, has 13.4 M and takes 4 s per 64 px batch on 2 cores).
    "deeplab": {"model": "deeplabv3plus", "backbone": "mobilenetv2",
                "model_args": {"encoder_kwargs": {"alpha": 0.5}, "decoder_filters": 96, "decoder_separable": True}},
}


def left_polygon(scene: Path, fraction: float, out: Path) -> tuple[Path, int]:
    """Write a GeoJSON polygon over the left ``fraction`` of the scene's columns.

    Returns:
        (path, first unseen column in pixels).
    """
    import rasterio

    with rasterio.open(scene) as ds:
        cut = int(math.ceil(fraction * ds.width))
        t = ds.transform
        x0, y0 = t * (0, 0)
        x1, y1 = t * (cut, ds.height)
        crs = ds.crs.to_string()
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    fc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": crs}},
          "features": [{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}
    out.write_text(json.dumps(fc))
    return out, cut


def truth_raster(scene: Path, labels: Path, burn_value: int | None) -> np.ndarray:
    """Class indices ``(H, W)`` of the scene: a label raster read as is, or polygons burned with ``burn_value``."""
    import rasterio
    from rasterio.features import rasterize

    with rasterio.open(scene) as ds:
        shape, transform = (ds.height, ds.width), ds.transform
    if labels.suffix.lower() in (".tif", ".tiff"):
        with rasterio.open(labels) as lab:
            return lab.read(1)
    geoms = [f["geometry"] for f in json.loads(labels.read_text())["features"] if f.get("geometry")]
    return rasterize([(g, burn_value) for g in geoms], out_shape=shape, transform=transform, fill=0, dtype="uint8")


def scores(truth: np.ndarray, pred: np.ndarray, k: int, ignore: int = 255) -> dict:
    ok = truth != ignore
    cm = np.bincount(truth[ok].astype(np.int64) * k + pred[ok].astype(np.int64), minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return {"iou": iou, "miou": float(np.nanmean(iou)), "oa": float(tp.sum() / max(cm.sum(), 1)),
            "fg_pred": float((pred[ok] > 0).mean()), "fg_true": float((truth[ok] > 0).mean())}


def run_one(name: str, scene: Path, labels: Path, classes: str, bands: str | None, burn_value: int | None,
            recipe: str, budget: str | None, epochs: int | None, seed: int, fraction: float, work: Path,
            count: int, extra: dict) -> dict:
    import rasterio

    from geoseg.cli.predict import main as predict_main
    from geoseg.cli.tile import main as tile_main
    from geoseg.training import TrainConfig, fit

    run_dir = work / f"{name}-{recipe}-s{seed}"
    aoi, cut = left_polygon(scene, fraction, work / f"{name}-aoi.geojson")
    ds = work / f"{name}-dataset"
    if not (ds / "dataset.json").exists():
        args = [str(scene), "--labels", str(labels), "--classes", classes, "--mode", "random", "--size", "128",
                "--count", str(count), "--split", "random", "--val-fraction", "0.1", "--aoi", str(aoi),
                "--out", str(ds), "--quiet", "--workers", "1"]
        if bands:
            args += ["--bands", bands]
        if burn_value is not None:
            args += ["--burn-value", str(burn_value)]
        if tile_main(args) != 0:
            raise SystemExit(f"tiling {scene} failed")
    rec = dict(RECIPES[recipe])
    cfg = {**rec, "dataset": str(ds), "out": str(run_dir / "bundle"), "seed": seed, "tensorboard": False,
           "quiet": True, "overwrite": True, **extra}
    if budget:
        cfg["time_budget"] = budget
    if epochs:
        cfg["epochs"] = epochs
    t0 = time.perf_counter()
    res = fit(TrainConfig.from_dict(cfg))
    train_s = time.perf_counter() - t0
    pred_dir = run_dir / "pred"
    if predict_main([str(scene), "--model", str(res.bundle), "--out", str(pred_dir), "--no-prob", "--quiet",
                     "--overwrite", "--workers", "1"]) != 0:
        raise SystemExit("prediction failed")
    label_file = next(p for p in pred_dir.glob("*.tif") if "prob" not in p.name)
    with rasterio.open(label_file) as src:
        pred = src.read(1)
    truth = truth_raster(scene, labels, burn_value)
    meta = json.loads((res.bundle / "geoseg.json").read_text())
    k = int(meta["num_classes"])
    unseen = (slice(None), slice(cut, None))
    m = scores(truth[unseen], pred[unseen], k)
    b = scores(truth[unseen], np.zeros_like(pred[unseen]), k)
    params = res.model.count_params() if res.model is not None else 0
    summary = meta.get("training", {})
    return {"scene": name, "recipe": recipe, "seed": seed, "params": params, "model": m, "baseline": b,
            "train_s": train_s, "epochs": res.epochs, "best_epoch": res.best_epoch,
            "stopped": summary.get("stopped_by", "early" if res.stopped_early else "epochs")}


def fmt_row(r: dict) -> str:
    m, b = r["model"], r["baseline"]
    fg = m["iou"][1] if len(m["iou"]) > 1 else float("nan")
    return (f"| {r['scene']} | {r['recipe']} | {r['params'] / 1e6:.2f} M | {r['seed']} | {fg:.3f} | {m['miou']:.3f} "
            f"(x{m['miou'] / b['miou']:.2f}) | {m['oa']:.4f} | {b['oa']:.4f} (x{m['oa'] / b['oa']:.3f}) | "
            f"{100 * m['fg_pred']:.1f} / {100 * m['fg_true']:.1f} % | "
            f"{r['epochs']} ({r['best_epoch']}, {r['stopped']}) "
            f"| {r['train_s']:.0f} |")


HEADER = ("| scene | recipe | params | seed | fg IoU | mIoU (vs base) | OA | base OA (ratio) | fg pred / true "
          "| epochs (best, stop) | train s |\n|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", default="sn4,sample", help="comma-separated: sn4, sample")
    p.add_argument("--recipes", default="unet,deeplab", help=f"comma-separated: {', '.join(RECIPES)}")
    p.add_argument("--budget", default="10m", help="training time budget per run (s/m/h); '' to use --epochs")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seeds", default="0")
    p.add_argument("--train-fraction", type=float, default=0.6)
    p.add_argument("--sample-size", type=int, default=512, help="synthetic scene side in pixels")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra TrainConfig field (for experiments; the published figures use none)")
    p.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one)")
    a = p.parse_args(argv)
    import yaml

    extra = {k.replace("-", "_"): yaml.safe_load(v) for k, v in (s.split("=", 1) for s in a.set)}
    import tensorflow as tf

    from geoseg import __version__

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"geoseg {__version__}, TensorFlow {tf.__version__}, Python {platform.python_version()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_acc_") as tmp:
        work = Path(a.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        scenes = []
        for s in a.scenes.split(","):
            if s == "sn4":
                if not SN4_SCENE.exists():
                    print(f"skipping sn4: {SN4_SCENE} not found")
                    continue
                scenes.append(("sn4", SN4_SCENE, SN4_LABELS, "background,building", "1,2,3", 1, 600))
            elif s == "sample":
                from geoseg.apps.sample import make_sample

                smp = make_sample(work / "sample", size=a.sample_size, seed=3, overwrite=True)
                scenes.append(("sample", smp.scene, smp.labels, str(smp.classes), None, None, 600))
        for name, scene, labels, classes, bands, burn, count in scenes:
            for recipe in a.recipes.split(","):
                for seed in (int(s) for s in a.seeds.split(",")):
                    r = run_one(name, scene, labels, classes, bands, burn, recipe, a.budget or None, a.epochs, seed,
                                a.train_fraction, work, count, extra)
                    rows.append(r)
                    print(fmt_row(r), flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    print(HEADER)
    for r in rows:
        print(fmt_row(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
