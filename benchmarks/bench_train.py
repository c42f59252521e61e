"""Training throughput: input pipeline alone, model alone on cached tensors, and the full loop.

For each model (U-Net, DeepLab v3+) at ``--size`` x ``--size`` x 4 bands, batch ``--batch-size``:

1. pipeline: batches/s of the training ``tf.data`` pipeline (memmap cache, augmentation,
   normalization, batching) with no model;
2. model: steps/s of ``model.fit`` on one batch held in memory (``Dataset.from_tensors(...).repeat()``),
   i.e. the model's own speed with a free input;
3. full: steps/s of ``model.fit`` on the real pipeline, as ``geoseg.train`` runs it
   (same loss, metrics, optimizer and schedule).

The model is built, compiled and fed as ``geoseg.train`` does it: under the strategy of
:func:`geoseg.training.device.training_strategy` (on a GPU the next batch is copied onto the device
during the current step), with ``--precision`` and ``--jit-compile``. It prints the device, images/s,
the ratio full / model (target >= 0.9 on a GPU with ``--precision mixed``: the accelerator never
waits on input), peak RSS and, with a GPU, peak device memory per model. Each timed phase runs
after a warm-up epoch (graph tracing, first reads).

    python benchmarks/bench_train.py --quick                        # CPU-sized: 64 px tiles, few steps
    python benchmarks/bench_train.py --precision mixed              # 512 px, batch 8, on a GPU
    python benchmarks/bench_train.py --quick --models unet --model-args encoder_depth=3,encoder_filters=16 \
        --jit-compile on                                            # XLA on/off on a small U-Net
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def make_dataset(root: Path, size: int) -> Path:
    from geoseg.apps.sample import make_sample
    from geoseg.cli.tile import main as tile_main

    sample = make_sample(root / "sample", size=4 * size, seed=1)
    ds = root / "dataset"
    rc = tile_main([str(sample.scene), "--labels", str(sample.labels), "--classes", str(sample.classes),
                    "--size", str(size), "--stride", str(size), "--split", "random", "--val-fraction", "0.25",
                    "--out", str(ds), "--quiet"])
    if rc != 0:
        raise SystemExit(f"tiling failed ({rc})")
    return ds


class EpochTimer:
    def __new__(cls):
        import keras

        class _T(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self.t0)

        return _T()


def bench_model(name: str, backbone: str | None, ds_dir: Path, size: int, batch: int, steps: int,
                precision: str = "float32", jit_compile: str = "auto", repeats: int = 2,
                pipeline_only: bool = False, model_args: dict | None = None) -> dict:
    import keras
    import tensorflow as tf

    from geoseg.models import get_model
    from geoseg.runtime.tensorflow import peak_memory_mb, reset_memory_peak, visible_gpus
    from geoseg.training.data import PatchReader, cache_arrays, load_dataset, normalization_for
    from geoseg.training.device import JIT_VALUES, policy_name, resolve_precision, training_strategy
    from geoseg.training.losses import SegmentationLoss, class_weights_from_counts
    from geoseg.training.metrics import segmentation_metrics
    from geoseg.training.pipeline import make_tf_dataset
    from geoseg.training.schedules import make_schedule

    info = load_dataset(ds_dir)
    rows = [r for r in info.rows if r["split"] == "train"]
    arrays = cache_arrays(PatchReader(info, rows), "train")
    norm = normalization_for(info, "meanstd")
    train_ds = make_tf_dataset(arrays, norm, info.nodata, batch, training=True, augment=True, seed=0)

    # 1. input pipeline alone
    it = iter(train_ds)
    for _ in range(2):
        next(it)
    n_pipe = steps * 4
    t0 = time.perf_counter()
    for _ in range(n_pipe):
        x, y = next(it)
    pipe_sps = n_pipe / (time.perf_counter() - t0)
    del it
    if pipeline_only:
        return {"model": "(input pipeline)", "params_m": 0.0, "pipeline_sps": pipe_sps, "model_sps": float("nan"),
                "full_sps": float("nan"), "ratio": float("nan"), "batch": batch, "rss_mb": peak_rss_mb(),
                "device_mb": None, "jit": "-"}

    gpus = visible_gpus()
    keras.mixed_precision.set_global_policy(policy_name(resolve_precision(precision, gpus)))
    reset_memory_peak(gpus)
    k = info.num_classes
    with training_strategy(gpus).scope():
        model = get_model(name, k, input_shape=(size, size, len(info.bands)), backbone=backbone,
                          **(model_args or {}))
        cw = class_weights_from_counts(info.meta["class_counts"]["train"], "auto").tolist()
        model.compile(optimizer=keras.optimizers.Adam(make_schedule("cosine", 1e-3, 10, steps, 1)),
                      loss=SegmentationLoss("ce+dice", class_weights=cw),
                      metrics=segmentation_metrics(k, 255, info.classes.names), jit_compile=JIT_VALUES[jit_compile])
    params = model.count_params()

    def timed_fit(data) -> float:
        gc.collect()  # drop the previous fit's iterator so its prefetch threads stop competing
        timer = EpochTimer()
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
        return steps / timer.times[-1]

    # 2. model alone on one cached batch (it goes through the same strategy iterator, so on a GPU
    # its copy to the device overlaps the previous step); 3. full loop on the real pipeline.
    # Warm-up first (tracing, first reads), then alternate the two so that load from other
    # processes on a shared machine hits both alike; keep the best repeat of each.
    cached = tf.data.Dataset.from_tensors((x, y)).repeat()
    for data in (cached, train_ds):
        model.fit(data, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    model_sps = full_sps = 0.0
    for _ in range(repeats):
        model_sps = max(model_sps, timed_fit(cached))
        full_sps = max(full_sps, timed_fit(train_ds))
    jit = bool(model.jit_compile)
    keras.mixed_precision.set_global_policy("float32")
    return {"model": name + (f"/{backbone}" if backbone else ""), "params_m": params / 1e6,
            "pipeline_sps": pipe_sps, "model_sps": model_sps, "full_sps": full_sps,
            "ratio": full_sps / model_sps, "batch": batch, "rss_mb": peak_rss_mb(),
            "device_mb": peak_memory_mb(gpus), "jit": "on" if jit else "off"}


def main(argv=None) -> int:
    from geoseg.training.config import JIT_COMPILE, PRECISIONS, parse_model_args

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="CPU-sized run: --size 64, --steps 3, DeepLab v3+ on mobilenetv2")
    p.add_argument("--size", type=int, default=512, help="tile side in pixels")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="timed steps per phase (pipeline: 4x as many batches)")
    p.add_argument("--repeats", type=int, default=2, help="alternating timed repeats per phase (best kept)")
    p.add_argument("--models", default="unet,deeplabv3plus")
    p.add_argument("--model-args", default=None, metavar="JSON|k=v,...",
                   help="builder arguments of the U-Net (as geoseg train --model-args)")
    p.add_argument("--pipeline-only", action="store_true", help="measure the input pipeline alone (no model)")
    p.add_argument("--backbone", default="resnet50v2", help="DeepLab v3+ backbone")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="mixed: float16 compute (GPU; float32 with a warning on CPU)")
    p.add_argument("--mixed-precision", dest="precision", action="store_const", const="mixed",
                   help="same as --precision mixed")
    p.add_argument("--jit-compile", choices=JIT_COMPILE, default="auto", help="XLA (as geoseg train)")
    p.add_argument("--work", default=None, help="folder for the sample dataset (default: a temp folder)")
    a = p.parse_args(argv)
    if a.quick:
        a.size, a.steps, a.backbone = 64, 3, "mobilenetv2"
    unet_args = parse_model_args(a.model_args)

    from geoseg.runtime.tensorflow import visible_gpus
    from geoseg.training.device import device_description

    gpus = visible_gpus()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work or tmp)
        t0 = time.perf_counter()
        ds = make_dataset(work, a.size)
        print(f"device: {device_description(gpus)}  tile: {a.size}x{a.size}x4  batch: {a.batch_size}  "
              f"steps: {a.steps} x {a.repeats}  precision: {a.precision}  jit-compile: {a.jit_compile}  "
              f"(dataset built in {time.perf_counter() - t0:.1f} s)", flush=True)
        print(f"{'model':<24}{'params':>8}{'pipeline':>24}{'model alone':>24}{'full loop':>24}"
              f"{'full/model':>12}{'XLA':>5}{'peak RSS':>11}{'peak GPU':>11}", flush=True)
        for name in (["-"] if a.pipeline_only else a.models.split(",")):
            r = bench_model(name, a.backbone if name.startswith("deeplab") else None, ds, a.size, a.batch_size,
                            a.steps, a.precision, a.jit_compile, a.repeats, a.pipeline_only,
                            unet_args if name == "unet" else None)
            b = r["batch"]

            def fmt(sps, b=b):
                return f"{sps:7.2f} st/s {sps * b:7.1f} im/s"

            gpu_mb = "-" if r["device_mb"] is None else f"{r['device_mb']:.0f} MB"
            print(f"{r['model']:<24}{r['params_m']:7.1f}M{fmt(r['pipeline_sps']):>24}{fmt(r['model_sps']):>24}"
                  f"{fmt(r['full_sps']):>24}{r['ratio']:12.2f}{r['jit']:>5}{r['rss_mb']:8.0f} MB{gpu_mb:>11}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
