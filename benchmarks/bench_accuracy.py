"""Accuracy on unseen ground: train on 60 % of a scene's columns, score the other 40 %.

For each scene (the SpaceNet-4 clip in ``../shared/data/`` when present, and the synthetic
sample scene of :func:`geoseg.apps.sample.make_sample`), each fold and each recipe:

1. write a polygon covering the training columns (fold ``left``: the left ``--train-fraction``
   of the columns, the issue's split; fold ``right``: the right ``--train-fraction``, the
   mirrored split) and tile only inside it (``geoseg tile --aoi`` with :data:`TILE`);
2. train with the defaults, setting only ``--model``, ``--model-args`` and ``--time-budget``
   (or ``--epochs``);
3. predict the whole scene (``geoseg predict``) and compare the label raster with the
   rasterized truth on the unseen columns only;
4. with ``--reference``: train and score the plain-Keras script of
   ``bench_accuracy_reference.py`` on the same split, for the same budget, on the same machine.

Printed per run: foreground (building) IoU, mIoU and overall accuracy (OA) of the model and of
the all-background (majority) baseline, the predicted vs true foreground share, the training
wall time and the 1-minute load average at the start and end of the run. Nothing is written
into the repository.

    python benchmarks/bench_accuracy.py --scenes sn4 --reference          # both folds, 10 min budget
    python benchmarks/bench_accuracy.py --budget 3m --recipes unet --scenes sn4 --folds left --seeds 0,1
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
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SN4_SCENE = DATA / ("SN4_buildings_train_AOI_6_Atlanta_nadir10_catid_1030010003993E00_PS-RGBNIR_"
                   "732701_3729639_clipped.tif")
SN4_LABELS = DATA / "SN4_buildings_train_AOI_6_Atlanta_geojson_buildings_732701_3729639.geojson"

#: Recipes: only the model, its arguments and the budget differ from the defaults.
RECIPES = {
    # 3 levels, 16 filters at the top (0.48 M parameters), batch norm after every conv: without
    # it the same U-Net fits the training area far more slowly (building IoU on the training
    # patches 0.56 vs 0.79 after the same 11 epochs; benchmarks/README.md).
    "unet": {"model": "unet", "model_args": {"encoder_depth": 3, "encoder_filters": 16, "batch_norm": True}},
    # mobilenetv2 at width 0.5 with a 96-channel separable ASPP/decoder: 1.45 M parameters (the
    # zoo default, width 1 and 256 channels, has 13.4 M and takes 4 s per 64 px batch on 2 cores).
    "deeplab": {"model": "deeplabv3plus", "backbone": "mobilenetv2",
                "model_args": {"encoder_kwargs": {"alpha": 0.5}, "decoder_filters": 96, "decoder_separable": True}},
}


#: How the training area is tiled (``geoseg tile`` options; the pipeline's ``tile`` section).
TILE = {"mode": "random", "size": 128, "count": 600, "split": "random", "val-fraction": 0.1}


def train_polygon(scene: Path, fraction: float, fold: str, out: Path) -> tuple[Path, slice]:
    """Write a GeoJSON polygon over the training columns of ``fold`` (``left`` or ``right``).

    Returns:
        (path, the unseen columns as a slice in pixels).
    """
    import rasterio

    with rasterio.open(scene) as ds:
        cut = int(math.ceil(fraction * ds.width))
        width, height, t = ds.width, ds.height, ds.transform
        crs = ds.crs.to_string()
    c0, c1, unseen = (0, cut, slice(cut, None)) if fold == "left" else (width - cut, width, slice(0, width - cut))
    x0, y0 = t * (c0, 0)
    x1, y1 = t * (c1, height)
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    fc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": crs}},
          "features": [{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}
    out.write_text(json.dumps(fc))
    return out, unseen


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


def load() -> float:
    """1-minute load average of the machine."""
    return os.getloadavg()[0]


def tile_fold(name: str, scene: Path, labels: Path, classes: str, bands: str | None, burn_value: int | None,
              fold: str, fraction: float, work: Path, tile: dict) -> tuple[Path, slice]:
    """Tile the training columns of ``fold`` once per work folder; returns (dataset, unseen columns)."""
    from geoseg.cli.tile import main as tile_main

    aoi, unseen = train_polygon(scene, fraction, fold, work / f"{name}-{fold}-aoi.geojson")
    ds = work / f"{name}-{fold}-dataset"
    if not (ds / "dataset.json").exists():
        args = [str(scene), "--labels", str(labels), "--classes", classes, "--aoi", str(aoi), "--out", str(ds),
                "--quiet", "--workers", "1"]
        for k, v in tile.items():
            args += [f"--{k}"] + ([] if v is True else [str(v)])
        if bands:
            args += ["--bands", bands]
        if burn_value is not None:
            args += ["--burn-value", str(burn_value)]
        if tile_main(args) != 0:
            raise SystemExit(f"tiling {scene} failed")
    return ds, unseen


def run_one(name: str, scene: Path, labels: Path, ds: Path, unseen: slice, fold: str, burn_value: int | None,
            recipe: str, budget: str | None, epochs: int | None, seed: int, work: Path, extra: dict) -> dict:
    import rasterio

    from geoseg.cli.predict import main as predict_main
    from geoseg.training import TrainConfig, fit

    run_dir = work / f"{name}-{fold}-{recipe}-s{seed}"
    rec = dict(RECIPES[recipe])
    cfg = {**rec, "dataset": str(ds), "out": str(run_dir / "bundle"), "seed": seed, "tensorboard": False,
           "quiet": True, "overwrite": True, **extra}
    if budget:
        cfg["time_budget"] = budget
    if epochs:
        cfg["epochs"] = epochs
    load0 = load()
    t0 = time.perf_counter()
    res = fit(TrainConfig.from_dict(cfg))
    train_s = time.perf_counter() - t0
    load1 = load()
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
    m = scores(truth[:, unseen], pred[:, unseen], k)
    b = scores(truth[:, unseen], np.zeros_like(pred[:, unseen]), k)
    params = res.model.count_params() if res.model is not None else 0
    summary = meta.get("training", {})
    return {"scene": name, "fold": fold, "recipe": recipe, "seed": seed, "params": params, "model": m, "baseline": b,
            "train_s": train_s, "load": (load0, load1),
            "epochs": f"{res.epochs} ({res.best_epoch}, {summary.get('stopped_by', 'epochs')})"}


def run_reference(name: str, scene: Path, labels: Path, bands: str | None, burn_value: int | None, fold: str,
                  unseen: slice, fraction: float, seed: int, budget_s: float) -> dict:
    """The plain-Keras script of ``bench_accuracy_reference.py`` on the same split."""
    import rasterio
    from bench_accuracy_reference import train_and_predict

    with rasterio.open(scene) as src:
        image = src.read([int(b) for b in bands.split(",")] if bands else None).transpose(1, 2, 0)
    truth = truth_raster(scene, labels, burn_value)
    k = int(truth[truth != 255].max()) + 1
    width = truth.shape[1]
    cut = int(math.ceil(fraction * width))
    cols = (0, cut) if fold == "left" else (width - cut, width)
    load0 = load()
    r = train_and_predict(image, np.where(truth == 255, 0, truth), cols, budget_s, seed, classes=max(k, 2))
    load1 = load()
    m = scores(truth[:, unseen], r["pred"][:, unseen], max(k, 2))
    b = scores(truth[:, unseen], np.zeros_like(truth[:, unseen]), max(k, 2))
    return {"scene": name, "fold": fold, "recipe": "plain Keras reference", "seed": seed, "params": r["params"],
            "model": m, "baseline": b, "train_s": r["train_s"], "load": (load0, load1),
            "epochs": f"{r['steps']} steps"}


def fmt_row(r: dict) -> str:
    m, b = r["model"], r["baseline"]
    fg = m["iou"][1] if len(m["iou"]) > 1 else float("nan")
    return (f"| {r['scene']} | {r['fold']} | {r['recipe']} | {r['params'] / 1e6:.2f} M | {r['seed']} | {fg:.3f} | "
            f"{m['miou']:.3f} | {m['oa']:.4f} | {b['oa']:.4f} | "
            f"{100 * m['fg_pred']:.1f} / {100 * m['fg_true']:.1f} % | "
            f"{r['epochs']} | {r['train_s']:.0f} | {r['load'][0]:.1f} / {r['load'][1]:.1f} |")


HEADER = ("| scene | fold (trained on) | recipe | params | seed | fg IoU | mIoU | OA | base OA | fg pred / true "
          "| epochs (best, stop) | train s | load start / end |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", default="sn4,sample", help="comma-separated: sn4, sample")
    p.add_argument("--folds", default="left,right",
                   help="comma-separated: left (train on the left --train-fraction: the issue's split), "
                        "right (mirrored)")
    p.add_argument("--recipes", default="unet", help=f"comma-separated: {', '.join(RECIPES)}")
    p.add_argument("--reference", action="store_true",
                   help="also run the plain-Keras reference script (bench_accuracy_reference.py) on each split")
    p.add_argument("--budget", default="10m", help="training time budget per run (s/m/h); '' to use --epochs")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seeds", default="0")
    p.add_argument("--train-fraction", type=float, default=0.6)
    p.add_argument("--sample-size", type=int, default=512, help="synthetic scene side in pixels")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra TrainConfig field (for experiments; the published figures use none)")
    p.add_argument("--tile-set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a tiling option of TILE (for experiments; the published figures use none)")
    p.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one)")
    a = p.parse_args(argv)
    import yaml

    extra = {k.replace("-", "_"): yaml.safe_load(v) for k, v in (s.split("=", 1) for s in a.set)}
    tile = {**TILE, **{k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in a.tile_set)}}
    import tensorflow as tf

    from geoseg import __version__
    from geoseg.training.config import parse_duration

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {load():.1f}; "
          f"geoseg {__version__}, TensorFlow {tf.__version__}, Python {platform.python_version()}; tile {tile}"
          + (f"; train {extra}" if extra else ""))
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
                scenes.append(("sn4", SN4_SCENE, SN4_LABELS, "background,building", "1,2,3", 1))
            elif s == "sample":
                from geoseg.apps.sample import make_sample

                smp = make_sample(work / "sample", size=a.sample_size, seed=3, overwrite=True)
                scenes.append(("sample", smp.scene, smp.labels, str(smp.classes), None, None))
        for name, scene, labels, classes, bands, burn in scenes:
            for fold in a.folds.split(","):
                ds, unseen = tile_fold(name, scene, labels, classes, bands, burn, fold, a.train_fraction, work, tile)
                for seed in (int(s) for s in a.seeds.split(",")):
                    for recipe in a.recipes.split(","):
                        r = run_one(name, scene, labels, ds, unseen, fold, burn, recipe, a.budget or None, a.epochs,
                                    seed, work, extra)
                        rows.append(r)
                        print(fmt_row(r), flush=True)
                    if a.reference:
                        budget_s = parse_duration(a.budget) if a.budget else rows[-1]["train_s"]
                        r = run_reference(name, scene, labels, bands, burn, fold, unseen, a.train_fraction, seed,
                                          float(budget_s))
                        rows.append(r)
                        print(fmt_row(r), flush=True)
    print(f"\nload average at the end: {load():.1f}")
    print(HEADER)
    for r in rows:
        print(fmt_row(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
