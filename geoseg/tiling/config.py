"""Tiling options: :class:`TileConfig` (field names = the CLI's long option names) and their checks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from geoseg.errors import InvalidParameterError, UsageError
from geoseg.io.classes import ClassMap, parse_class_spec
from geoseg.io.label_values import AUTO, LabelRules
from geoseg.io.windows import check_stride
from geoseg.tiling import writer
from geoseg.tiling.split import SPLITS

MODES = ("stride", "random")
#: How ``--workers N`` runs on this machine: ``auto`` (processes for many small patches, else
#: threads: :func:`geoseg.tiling.tiler.local_processes`), ``threads`` or ``processes``.
POOLS = ("auto", "threads", "processes")

#: Config fields that do not change the dataset (how it is computed, not what).
_RUN_ONLY = ("out", "workers", "pool", "scheduler", "overwrite", "resume", "quiet", "batch_size", "cache_mb")


@dataclass(frozen=True)
class TileConfig:
    """Everything ``python -m geoseg.tile`` accepts; field names are the long option names.

    Sizes, strides and offsets are in pixels. ``labels`` holds one entry per scene (same order),
    folders/globs (paired by file stem), or a single vector file for every scene.
    """

    scenes: tuple[str, ...]
    out: str
    labels: tuple[str, ...] = ()
    mode: str = "stride"
    size: int = 256
    stride: int | None = None
    count: int = 100
    seed: int = 0
    classes: str | None = None
    palette: str | None = None
    label_field: str | None = None
    burn_value: int | None = None
    ignore_value: float | None = 255
    labels_crs: str | None = None
    aoi: str | None = None
    max_nodata: float = 1.0
    min_labeled: float = 0.0
    bands: tuple[int | str, ...] | None = None  # 1-based numbers and/or band names; None: all but alpha
    val_fraction: float = 0.2
    split: str = "random"
    block_size: int | None = None
    val_scenes: str | None = None  # comma-separated file-name globs of scenes held out for validation
    balance: float | None = None  # random mode: share of windows holding a non-background label
    pad: bool = False
    allow_gaps: bool = False
    format: str = "tif"
    compress: str = "none"
    workers: int = 1
    pool: str = "auto"  # how local workers run: POOLS
    scheduler: str | None = None
    batch_size: int | None = None
    overwrite: bool = False
    resume: bool = False
    quiet: bool = False
    cache_mb: int = 64

    @property
    def effective_stride(self) -> int:
        return int(self.stride) if self.stride is not None else int(self.size)

    def parameters(self) -> dict[str, Any]:
        """The options that determine the dataset (recorded in dataset.json, checked by --resume)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in _RUN_ONLY}
        out["scenes"], out["labels"] = list(self.scenes), list(self.labels)
        out["bands"] = list(self.bands) if self.bands is not None else None
        out["stride"] = self.effective_stride if self.mode == "stride" else None
        if self.mode == "stride":
            out.pop("count")
        for key in ("val_scenes", "balance"):  # recorded only when used: older datasets stay identical
            if out.get(key) is None:
                out.pop(key, None)
        return out


def validate_config(cfg: TileConfig) -> None:
    """Check option values that need no file (fails before anything is read).

    Raises:
        InvalidParameterError: an option is out of range or inconsistent with another.
    """
    if not cfg.scenes:
        raise InvalidParameterError("no scene given")
    if cfg.mode not in MODES:
        raise InvalidParameterError(f"--mode must be one of {', '.join(MODES)}, got {cfg.mode!r}")
    if cfg.size <= 0:
        raise InvalidParameterError(f"--size must be > 0 pixels, got {cfg.size}")
    if cfg.mode == "stride":
        check_stride(cfg.size, cfg.effective_stride, cfg.allow_gaps)
    elif cfg.count <= 0:
        raise InvalidParameterError(f"--count must be > 0 in random mode, got {cfg.count}")
    if cfg.split not in SPLITS:
        raise InvalidParameterError(f"--split must be one of {', '.join(SPLITS)}, got {cfg.split!r}")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise InvalidParameterError(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
    if cfg.block_size is not None and cfg.block_size <= 0:
        raise InvalidParameterError(f"--block-size must be > 0 pixels, got {cfg.block_size}")
    if cfg.val_scenes is not None and cfg.split == "spatial":
        raise InvalidParameterError("give either --split spatial or --val-scenes (whole scenes held out), not both")
    if cfg.balance is not None:
        if cfg.mode != "random":
            raise InvalidParameterError("--balance needs --mode random (it chooses among random windows)")
        if not cfg.labels:
            raise InvalidParameterError("--balance needs --labels (it counts label pixels per window)")
        if not 0.0 <= cfg.balance <= 1.0:
            raise InvalidParameterError(f"--balance must be a share in [0, 1], got {cfg.balance}")
    if not 0.0 <= cfg.max_nodata <= 1.0:
        raise InvalidParameterError(f"--max-nodata must be in [0, 1], got {cfg.max_nodata}")
    if not 0.0 <= cfg.min_labeled <= 1.0:
        raise InvalidParameterError(f"--min-labeled must be in [0, 1], got {cfg.min_labeled}")
    if cfg.min_labeled > 0 and not cfg.labels:
        raise InvalidParameterError("--min-labeled needs --labels")
    if cfg.format not in writer.FORMATS:
        raise InvalidParameterError(f"--format must be one of {', '.join(writer.FORMATS)}, got {cfg.format!r}")
    from geoseg.io.profiles import COMPRESSIONS

    if cfg.compress not in COMPRESSIONS:
        raise InvalidParameterError(f"--compress must be one of {', '.join(COMPRESSIONS)}, got {cfg.compress!r}")
    if cfg.overwrite and cfg.resume:
        raise UsageError("--overwrite and --resume exclude each other")
    if cfg.workers < 1:
        raise InvalidParameterError(f"--workers must be >= 1, got {cfg.workers}")
    if cfg.pool not in POOLS:
        raise InvalidParameterError(f"--pool must be one of {', '.join(POOLS)}, got {cfg.pool!r}")
    if cfg.label_field and cfg.burn_value is not None:
        raise InvalidParameterError("give either --label-field or --burn-value, not both")
    label_rules(cfg, None)  # burn value range, --labels-crs
    if cfg.classes and cfg.classes.strip().lower() == AUTO and cfg.palette:
        raise InvalidParameterError("--classes auto takes class names from the labels; --palette already names them")


def label_rules(cfg: TileConfig, class_names: tuple[str, ...] | None) -> LabelRules:
    """The label value rules of a tiling run (``class_names``: for text attributes).

    Raises:
        InvalidParameterError: a burn value outside 0..254, or a --labels-crs PROJ does not know.
    """
    from geoseg.io.label_vectors import labels_crs

    rules = LabelRules(label_field=cfg.label_field, burn_value=cfg.burn_value, class_names=class_names,
                       ignore_value=cfg.ignore_value, labels_crs=cfg.labels_crs)
    labels_crs(rules)
    return rules


def parse_classes(spec: str | None) -> ClassMap | None:
    """``--classes``: a palette file (JSON or ``index,name,r,g,b`` lines), a named palette (``voc``,
    ``cityscapes``, ``potsdam``, ``vaihingen``: :mod:`geoseg.io.palettes`) or comma-separated names."""
    if not spec or spec.strip().lower() == AUTO:  # auto: names come from the labels (see plan_scenes)
        return None
    return parse_class_spec(spec)


