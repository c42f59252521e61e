"""``fit(config)``: dataset folder -> trained model -> bundle.

Steps: take the output folder's lock (one run per folder), validate the output folder and the
dataset (every patch file's header) and, with ``--resume``, that the options are those of the
checkpoint (all before TensorFlow is imported), seed, pick the strategy (one or several GPUs: the
next batch is staged on the device during the current step), precision (``--precision mixed``:
float16 compute on GPU) and XLA (``--jit-compile``; :mod:`geoseg.training.device`), open the splits (cached memmaps),
build and compile the model, optionally restore the last checkpoint (``--resume``, exact: see
:mod:`geoseg.training.resume`), train with checkpoints / early stopping / TensorBoard / history
files / curves / debug samples, restore the best weights, score the validation split and write
the bundle.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import (
    BundleError,
    InvalidParameterError,
    ModelConfigError,
    OutputExistsError,
)
from geoseg.io.atomic import LOCK_FILE, check_writable, remove_stale_temps
from geoseg.io.bundle import META_FILE, save_bundle
from geoseg.io.lock import output_lock
from geoseg.training.build import ModelFn, build_model, fast_batchnorm, make_optimizer, resolve_class_weights
from geoseg.training.config import TrainConfig
from geoseg.training.data import (
    DatasetInfo,
    check_patch_files,
    class_counts,
    load_dataset,
    normalization_for,
    open_split,
    split_rows,
)
from geoseg.training.resume import resume_state, run_parameters

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
DEBUG = "debug"
CURVES_PNG = "training_curves.png"
LOGS = "logs"
#: ``model.fit``'s epoch cap under ``--time-budget`` (the budget callback ends the run).
MAX_EPOCHS = 1_000_000



@dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes:
        bundle: the bundle folder.
        history: one dict of epoch logs per epoch (loss, val_loss, miou, val_miou, lr, ...).
        metrics: final validation metrics of the best weights (``val_loss``, ``miou``, ``oa``,
            ``f1``, ``iou`` per class name).
        epochs: epochs trained in all (including those before a resume).
        best_epoch: 1-based epoch of the best ``monitor`` value.
        stopped_early: early stopping ended the run.
        stopped_by: what ended the run: ``epochs``, ``early_stopping`` or ``time_budget``.
        seconds: wall-clock time of this call.
        model: the trained ``keras.Model`` (best weights).
    """

    bundle: Path
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    epochs: int
    best_epoch: int | None
    stopped_early: bool
    seconds: float
    stopped_by: str = "epochs"
    model: Any = field(default=None, repr=False)


def check_output_free(cfg: TrainConfig) -> Path:
    """Refuse a missing --out, or an existing non-empty one without --overwrite / --resume.

    Raises:
        InvalidParameterError: no --out.
        OutputExistsError: the folder holds files and neither --overwrite nor --resume is given.
    """
    if not cfg.out:
        raise InvalidParameterError("--out BUNDLE_DIR is required")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output exists and is a file, not a bundle folder: {out}")
    if out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()) and not (cfg.overwrite or cfg.resume):
        what = "a bundle" if (out / META_FILE).exists() else "files"
        raise OutputExistsError(f"output folder already holds {what}: {out} (use --overwrite to replace it "
                                "or --resume to continue)")
    return out


def prepare_output(cfg: TrainConfig) -> Path:
    """Check (and create) the output folder per --overwrite / --resume.

    Raises:
        InvalidParameterError: no --out.
        OutputExistsError: the folder holds files and neither --overwrite nor --resume is given.
        GeoSegError: the folder cannot be created or written.
    """
    out = check_output_free(cfg)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InvalidParameterError(f"--out {out} is not writable ({exc.strerror or exc})") from None
    if cfg.overwrite and not cfg.resume:
        for name in (CHECKPOINTS, LOGS, DEBUG):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in (HISTORY_CSV, HISTORY_JSON, CURVES_PNG):
            (out / name).unlink(missing_ok=True)
    for folder in (out, out / CHECKPOINTS, out / DEBUG):  # what a killed run was writing (we hold the lock)
        remove_stale_temps(folder, recursive=False)
    return out


def fit(config: TrainConfig | dict, *, model_fn: ModelFn | None = None,
        callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train on ``config.dataset`` and write a bundle to ``config.out`` (see module doc).

    Args:
        config: a :class:`TrainConfig` or a dict of its fields.
        model_fn: build the model with this instead of ``geoseg.models.get_model``.
        callbacks: extra Keras callbacks (run after geoseg's own).

    Raises:
        GeoSegError: any user error (dataset, options, output folder, weights).
        OutputLockedError: another run is writing into ``config.out``.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    t0 = time.perf_counter()
    if not cfg.out:
        raise InvalidParameterError("--out BUNDLE_DIR is required")
    check_writable(cfg.out)
    # One run per bundle folder: a second one stops at once, naming this one.
    with output_lock(cfg.out, "geoseg train"):
        return _locked_fit(cfg, model_fn, callbacks, t0)


def _locked_fit(cfg: TrainConfig, model_fn: ModelFn | None, callbacks: Sequence[Any], t0: float) -> TrainResult:
    check_output_free(cfg)  # the commonest rerun mistake first, before reading the dataset
    info = load_dataset(cfg.dataset)
    train_rows, val_rows = split_rows(info, cfg.val_from, cfg.val_fraction, cfg.train_list, cfg.val_list)
    check_patch_files(info, train_rows + val_rows)  # a missing or broken patch now, not mid-epoch
    state = resume_state(cfg, info, Path(cfg.out) / CHECKPOINTS)
    out = prepare_output(cfg)

    from geoseg.runtime.tensorflow import import_tensorflow, visible_gpus
    from geoseg.training.device import policy_name, resolve_precision

    tf = import_tensorflow()  # after every check: quietly (no absl/oneDNN/CUDA lines; -v keeps them)
    import keras

    gpus = visible_gpus()
    precision = resolve_precision(cfg.precision, gpus)  # warns when mixed is asked for without a GPU
    previous_policy = keras.config.dtype_policy()
    keras.utils.set_random_seed(cfg.seed)
    # Deterministic kernels make seeded CPU runs reproducible; on GPU some kernels have no
    # deterministic version and would raise, so GPU runs are seeded but not bitwise repeatable.
    # TensorFlow's public API can switch op determinism on but not off again: it stays on for
    # the rest of a process without GPUs (where it costs nothing measurable).
    if not gpus:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(policy_name(precision))
    try:
        return _fit(cfg, info, train_rows, val_rows, out, model_fn, callbacks, gpus, precision, t0, state)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _fit(cfg: TrainConfig, info: DatasetInfo, train_rows, val_rows, out: Path, model_fn, extra_callbacks,
         gpus, precision: str, t0: float, state: dict[str, Any] | None) -> TrainResult:
    import keras

    from geoseg.training.budget import TimeBudget
    from geoseg.training.callbacks import (
        CheckpointState,
        HistoryFiles,
        TrainingCurves,
        load_optimizer_state,
        prune_checkpoints,
    )
    from geoseg.training.device import check_float32_output, device_description, resolve_jit, training_strategy
    from geoseg.training.losses import SegmentationLoss
    from geoseg.training.metrics import segmentation_metrics
    from geoseg.training.pipeline import make_tf_dataset
    from geoseg.training.progress import EpochLines, use_epoch_lines
    from geoseg.training.sampling import patches_with, rare_classes
    from geoseg.training.schedules import make_schedule

    norm = normalization_for(info, cfg.normalization)
    cache_fallback = out / "cache"
    train_src = open_split(info, train_rows, "train", ignore_index=cfg.ignore_index, cache=cfg.cache,
                           fallback_dir=cache_fallback)
    val_src = open_split(info, val_rows, "val" if cfg.val_from is None else "holdout", ignore_index=cfg.ignore_index,
                         cache=cfg.cache, fallback_dir=cache_fallback)
    img0, _ = train_src.read(0)
    input_shape = tuple(int(v) for v in img0.shape)
    nodata = info.nodata
    counts = class_counts(train_rows, info.num_classes)
    if counts.sum() == 0:
        counts = np.asarray(info.meta.get("class_counts", {}).get("train") or np.zeros(info.num_classes))
    rare = rare_classes(counts)
    rare_mask = patches_with(train_rows, rare, getattr(train_src, "labels", None)) if cfg.balance else None
    steps = cfg.steps_per_epoch or math.ceil(len(train_src) / cfg.batch_size)
    initial_epoch = int(state["epoch"]) if state else 0

    def train_stream(epoch: int):
        """The training batches from the start of ``epoch`` (0-based) on, as an uninterrupted run has them."""
        return make_tf_dataset(train_src, norm, nodata, cfg.batch_size, training=True, augment=cfg.augment,
                               scale_crop=cfg.scale_crop, seed=cfg.seed, rare_mask=rare_mask, balance=cfg.balance,
                               start=epoch * steps * cfg.batch_size)

    train_ds = train_stream(initial_epoch)
    val_ds = make_tf_dataset(val_src, norm, nodata, cfg.batch_size, training=False)

    strategy = training_strategy(gpus)
    with strategy.scope():
        model, model_record = build_model(cfg, info.num_classes, input_shape, model_fn)
        if precision == "mixed":
            check_float32_output(model)
        if not cfg.weights:  # a resumed run too: the momentum is not in the checkpoint
            fast_batchnorm(model)
        out_channels = int(model.output_shape[-1])
        scored = 2 if out_channels == 1 else out_channels
        if scored != info.num_classes:
            raise ModelConfigError(f"model outputs {out_channels} channel(s) but the dataset has "
                                   f"{info.num_classes} classes")
        class_weights = resolve_class_weights(cfg, counts, scored)
        schedule = make_schedule(cfg.schedule, cfg.lr, cfg.epochs, steps, cfg.warmup_epochs)
        optimizer = make_optimizer(cfg, schedule)
        loss = SegmentationLoss(cfg.loss, class_weights=class_weights, ignore_index=cfg.ignore_index)
        metrics = segmentation_metrics(scored, cfg.ignore_index, info.classes.names)
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=resolve_jit(cfg.jit_compile, gpus))

    ckpt = out / CHECKPOINTS
    if state:
        files = state["files"]
        try:
            with strategy.scope():  # optimizer variables live where the model's do (GPU strategies)
                model.optimizer.build(model.trainable_variables)  # so the weights file's optimizer part loads quietly
                model.load_weights(ckpt / files["last_weights"])
                load_optimizer_state(model.optimizer, model, ckpt / files["last_optimizer"])
        except (OSError, ValueError, KeyError) as exc:
            raise BundleError(f"cannot resume from {ckpt}: {str(exc).splitlines()[0][:200]} "
                              "(use --overwrite to start again)") from None
        prune_checkpoints(ckpt, files)  # the files of an epoch that was cut short
    budgeted = cfg.time_budget is not None
    done = bool(state and (state.get("stopped_early") or (not budgeted and initial_epoch >= cfg.epochs)))
    # A resumed run's clock includes the training time before the interruption.
    started = t0 - float(state.get("seconds") or 0.0) if state else t0
    planned = state.get("planned_epochs") if state and budgeted else None

    ck = CheckpointState(ckpt, cfg.monitor, cfg.early_stopping_patience, state,
                         planned_epochs=planned if budgeted else cfg.epochs,
                         parameters=run_parameters(cfg, info), started=started)
    budget = None
    if budgeted:
        def on_plan(planned: int) -> None:
            ck.planned_epochs = planned

        budget = TimeBudget(cfg.time_budget, started, steps, schedule, initial_epoch, on_plan=on_plan)
        if planned:  # continue the interrupted run's plan: the LR schedule keeps its length
            budget.planned = int(planned)
            schedule.set_total_steps(int(planned) * steps)
    history = HistoryFiles(ck, out / HISTORY_CSV, out / HISTORY_JSON)
    history.write()  # in step with the checkpoint it continues from
    cbs = [ck, history, TrainingCurves(ck, out / CURVES_PNG)]
    if cfg.debug_samples:
        cbs.append(_debug_callback(cfg, info, out / DEBUG, train_stream))
    if cfg.tensorboard and _has_tensorboard():
        cbs.append(keras.callbacks.TensorBoard(log_dir=str(out / LOGS), write_graph=False, profile_batch=0))
    if budget is not None:  # after the epoch-end writers, so that it times them too
        cbs.append(budget)
    cbs.extend(extra_callbacks)
    keras_verbose: int | str = 0 if cfg.quiet else "auto"
    if not cfg.quiet and use_epoch_lines(budgeted):  # no bar in a pipe, no "Epoch 1/1000000"
        keras_verbose = 0
        cbs.append(EpochLines((lambda: budget.planned) if budgeted else cfg.epochs))
    if not done:
        model.fit(train_ds, validation_data=val_ds, epochs=MAX_EPOCHS if budgeted else cfg.epochs,
                  initial_epoch=initial_epoch,
                  steps_per_epoch=steps, callbacks=cbs, shuffle=False,  # the dataset shuffles itself
                  verbose=keras_verbose)
    log.info("training ended after %.1f s (%s epochs)", time.perf_counter() - t0, ck.epoch)
    if ck.best_weights is not None:
        model.load_weights(ck.best_weights)
    # The best epoch was validated with exactly these weights: reuse its scores (no second pass,
    # which a time budget would have to reserve) unless its row is missing.
    best_row = next((h for h in ck.history if h.get("epoch") == ck.best_epoch and "val_loss" in h), None)
    if best_row is not None:
        scores = {k[4:]: (float("nan") if v is None else v) for k, v in best_row.items() if k.startswith("val_")}
    else:
        scores = model.evaluate(val_ds, return_dict=True, verbose=0)
    metrics_out = _final_metrics(scores, info.classes.names, scored)

    bundle_model = model
    if keras.config.dtype_policy().name != "float32":  # ship float32: CPU prediction cannot use float16
        keras.mixed_precision.set_global_policy("float32")
        bundle_model, _ = build_model(_no_weights(cfg), info.num_classes, input_shape, model_fn)
        bundle_model.set_weights(model.get_weights())
    seconds = time.perf_counter() - t0
    stopped_by = "early_stopping" if ck.stopped_early else (
        "time_budget" if budget is not None and budget.stopped else "epochs")
    training = {
        "dataset": str(Path(cfg.dataset).resolve()),
        "config": {k: v for k, v in cfg.to_dict().items() if k not in ("overwrite", "resume", "quiet", "verbose")},
        "epochs": ck.epoch, "best_epoch": ck.best_epoch, "monitor": cfg.monitor, "best": ck.best,
        "stopped_early": ck.stopped_early, "stopped_by": stopped_by, "time_budget": cfg.time_budget,
        "planned_epochs": budget.planned if budget else cfg.epochs, "steps_per_epoch": steps,
        "train_patches": len(train_src),
        "val_patches": len(val_src), "class_weights": class_weights, "seconds": round(seconds, 1),
        "history": HISTORY_CSV, "history_json": HISTORY_JSON, "curves": CURVES_PNG,
        "device": device_description(gpus), "precision": precision, "jit_compile": bool(model.jit_compile),
    }
    save_bundle(bundle_model, out, info.classes, info.tile_size, norm, overwrite=True,
                model={"name": cfg.model if model_fn is None else model.name, "arguments": model_record},
                bands=info.bands or None,
                band_names=info.meta.get("band_names"), stride=max(1, info.tile_size // 2), nodata=info.nodata,
                ignore_index=cfg.ignore_index, dtype=info.meta.get("dtype"), training=training, metrics=metrics_out,
                input_stats=input_stats(info))
    return TrainResult(bundle=out, history=ck.history, metrics=metrics_out, epochs=ck.epoch, best_epoch=ck.best_epoch,
                       stopped_early=ck.stopped_early, seconds=time.perf_counter() - t0, stopped_by=stopped_by,
                       model=model)


def input_stats(info: DatasetInfo) -> dict[str, Any] | None:
    """What prediction needs to know about the input: the dataset dtype and per-band training
    pixel range (``min``, ``max``, ``p2``, ``p98`` from ``dataset.json`` statistics); None when
    the dataset records no dtype or no range."""
    stats = info.meta.get("statistics") or {}
    if not info.meta.get("dtype") or stats.get("min") is None or stats.get("max") is None:
        return None
    out = {"dtype": info.meta["dtype"], "min": stats["min"], "max": stats["max"]}
    out.update({k: stats[k] for k in ("p2", "p98") if stats.get(k) is not None})
    return out


def _debug_callback(cfg: TrainConfig, info: DatasetInfo, folder: Path, train_stream):
    """The ``--debug-samples`` callback: the first samples of each epoch, rebuilt from a second copy of
    the seeded training stream (the one the model trains on is not touched)."""
    from geoseg.training.debug import DebugSamples

    n = cfg.debug_samples

    def fed(epoch: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for x, y in train_stream(epoch).take(math.ceil(n / cfg.batch_size)):
            xs.append(x.numpy())
            ys.append(y.numpy())
        return np.concatenate(xs)[:n], np.concatenate(ys)[:n]

    return DebugSamples(folder, fed, info.classes, cfg.ignore_index)


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        log.warning("TensorBoard is not installed: no logs in %s (pip install tensorboard)", LOGS)
        return False
    return True


def _no_weights(cfg: TrainConfig) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, weights=None)


def _final_metrics(scores: dict[str, Any], names: list[str], k: int) -> dict[str, Any]:
    from geoseg.training.metrics import class_metric_names

    def num(v):
        v = float(v)
        return None if math.isnan(v) else round(v, 6)

    iou = {}
    for c, key in enumerate(class_metric_names(k, names)):
        name = names[c] if c < len(names) else str(c)
        iou[name] = num(scores.get(key, float("nan")))
    return {"val_loss": num(scores["loss"]), "miou": num(scores["miou"]), "oa": num(scores["oa"]),
            "f1": num(scores["f1"]), "iou": iou}


__all__ = ["TrainResult", "build_model", "fit"]
