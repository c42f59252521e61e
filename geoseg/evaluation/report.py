"""Evaluation reports: printed table, ``report.json``, ``report.csv`` and ``confusion.png``.

``report.json``::

    {
      "format_version": 1, "geoseg_version": "0.1.0", "mode": "global" | "per_image",
      "num_classes": C, "classes": [{"index", "name", "color"}, ...],
      "ignore_index": 255, "ignore_background": false, "options": {...},
      "summary": {"overall_accuracy", "mean_iou", "mean_f1", "mean_precision", "mean_recall",
                  "kappa", "fw_iou", "pixels", "excluded_pixels"},
      "per_class": [{"index", "name", "precision", "recall", "f1", "iou", "support", "predicted"}, ...],
      "confusion_matrix": [[...], ...],          # C x C pixel counts, rows = truth, columns = prediction
      "confusion_matrix_axes": {"rows": "truth", "columns": "prediction"},
      "inputs": [{"prediction", "label", "label_kind", "alignment"}, ...],
      "per_image": [{"prediction", "label", "summary", "per_class", "confusion_matrix"}, ...]  # per_image mode
    }

Undefined values (NaN: classes absent from truth and prediction) are written as ``null``.
``report.csv`` has one row per class (``kind = class``), a ``mean`` row (means over the classes
present) and one ``summary`` row per scalar metric (its number in ``value``).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from geoseg import __version__
from geoseg.errors import InvalidParameterError, OutputExistsError
from geoseg.evaluation.evaluator import EvaluationResult
from geoseg.evaluation.metrics import PER_CLASS, SCALARS, Metrics
from geoseg.io.atomic import atomic_output

REPORT_FILES = ("report.json", "report.csv", "confusion.png")
FORMAT_VERSION = 1

_LABELS = {"overall_accuracy": "overall accuracy", "mean_iou": "mean IoU", "mean_f1": "mean F1",
           "mean_precision": "mean precision", "mean_recall": "mean recall", "kappa": "Cohen's kappa",
           "fw_iou": "frequency-weighted IoU"}


def _num(v: float | int | np.generic) -> float | int | None:
    """JSON-safe number: NaN -> None, numpy scalars -> Python."""
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _per_class(metrics: Metrics, names: list[str]) -> list[dict]:
    return [
        {"index": k, "name": names[k], **{m: _num(float(getattr(metrics, m)[k])) for m in PER_CLASS},
         "support": int(metrics.support[k]), "predicted": int(metrics.predicted[k])}
        for k in range(metrics.num_classes)
    ]


def _summary(metrics: Metrics, excluded: int) -> dict:
    out = {k: _num(v) for k, v in metrics.scalars().items()}
    out["excluded_pixels"] = int(excluded)
    return out


def to_dict(result: EvaluationResult) -> dict:
    """The JSON report as a dict (see the module docstring)."""
    names = result.classes.names
    doc = {
        "format_version": FORMAT_VERSION,
        "geoseg_version": __version__,
        "mode": result.mode,
        "num_classes": result.num_classes,
        "classes": result.classes.to_json(),
        "ignore_index": result.ignore_index,
        "ignore_background": result.ignore_background,
        "options": dict(result.options),
        "summary": _summary(result.metrics, result.excluded),
        "per_class": _per_class(result.metrics, names),
        "confusion_matrix": result.confusion.astype(np.int64).tolist(),
        "confusion_matrix_axes": {"rows": "truth", "columns": "prediction"},
        "inputs": [{"prediction": str(i.pair.prediction), "label": str(i.pair.label),
                    "label_kind": "vector" if i.pair.label_is_vector else "raster", "alignment": i.alignment}
                   for i in result.images],
    }
    if result.mode == "per_image":
        doc["per_image"] = [
            {"prediction": str(i.pair.prediction), "label": str(i.pair.label),
             "summary": _summary(i.metrics, i.excluded), "per_class": _per_class(i.metrics, names),
             "confusion_matrix": i.confusion.astype(np.int64).tolist()}
            for i in result.images
        ]
    return doc


def _fmt(v: float, digits: int = 4) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def format_table(result: EvaluationResult) -> str:
    """A plain-text table of per-class and summary metrics (and per-image lines in per_image mode)."""
    m = result.metrics
    names = [f"{c.index} {c.name}" for c in result.classes.classes]
    w = max(12, *(len(n) for n in names)) + 2
    lines = []
    if result.mode == "per_image":
        keyw = max(10, *(len(i.pair.key) for i in result.images)) + 2
        lines.append(f"{'image':<{keyw}}{'pixels':>14}{'OA':>9}{'mIoU':>9}{'mF1':>9}{'kappa':>9}")
        for i in result.images:
            im = i.metrics
            lines.append(f"{i.pair.key:<{keyw}}{im.pixels:>14,}{_fmt(im.overall_accuracy):>9}{_fmt(im.mean_iou):>9}"
                         f"{_fmt(im.mean_f1):>9}{_fmt(im.kappa):>9}")
        lines.append("")
        lines.append(f"per-class metrics averaged over {len(result.images)} image(s); pixel counts summed")
    header = f"{'class':<{w}}{'precision':>10}{'recall':>9}{'F1':>9}{'IoU':>9}{'truth px':>15}{'predicted px':>15}"
    lines += [header, "-" * len(header)]
    for k, name in enumerate(names):
        lines.append(f"{name:<{w}}{_fmt(m.precision[k]):>10}{_fmt(m.recall[k]):>9}{_fmt(m.f1[k]):>9}"
                     f"{_fmt(m.iou[k]):>9}{int(m.support[k]):>15,}{int(m.predicted[k]):>15,}")
    lines.append("-" * len(header))
    note = " (class 0 ignored)" if result.ignore_background else ""
    lines.append(f"{'mean' + note:<{w}}{_fmt(m.mean_precision):>10}{_fmt(m.mean_recall):>9}{_fmt(m.mean_f1):>9}"
                 f"{_fmt(m.mean_iou):>9}")
    lines.append("")
    lines.append(f"overall accuracy {_fmt(m.overall_accuracy)}   mean IoU {_fmt(m.mean_iou)}   "
                 f"mean F1 {_fmt(m.mean_f1)}   kappa {_fmt(m.kappa)}   fw IoU {_fmt(m.fw_iou)}")
    area = result.options.get("aoi") or (f"{result.options['dataset']} split {result.options.get('split')}"
                                         if result.options.get("dataset") else None)
    lines.append(f"pixels evaluated {m.pixels:,}   excluded {result.excluded:,} "
                 f"(nodata, ignore index {result.ignore_index}{', background' if result.ignore_background else ''}, "
                 f"outside labels{f', outside the area {area}' if area else ''})")
    return "\n".join(lines)


def check_report(folder: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse a folder that already holds a report, unless ``overwrite``.

    Raises:
        OutputExistsError: one of ``report.json``, ``report.csv``, ``confusion.png`` exists.
        InvalidParameterError: ``folder`` is a file.
    """
    if Path(folder).exists() and not Path(folder).is_dir():
        raise InvalidParameterError(f"--report {folder} is a file; expected a folder")
    found = [name for name in REPORT_FILES if (Path(folder) / name).exists()]
    if found and not overwrite:
        raise OutputExistsError(
            f"report exists in {folder} ({', '.join(found)}); use --overwrite to replace it"
        )


def write_json(result: EvaluationResult, path: str | os.PathLike) -> Path:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(to_dict(result), indent=2, allow_nan=False) + "\n")
    return Path(path)


def write_csv(result: EvaluationResult, path: str | os.PathLike) -> Path:
    m = result.metrics
    columns = ["kind", "index", "name", *PER_CLASS, "support", "predicted", "value"]
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(columns)
        for row in _per_class(m, result.classes.names):
            out.writerow(["class", row["index"], row["name"], *(_cell(row[k]) for k in PER_CLASS),
                          row["support"], row["predicted"], ""])
        out.writerow(["mean", "", "mean over classes present", _cell(m.mean_precision), _cell(m.mean_recall),
                      _cell(m.mean_f1), _cell(m.mean_iou), int(m.support.sum()), int(m.predicted.sum()), ""])
        for name in SCALARS:
            out.writerow(["summary", "", name, "", "", "", "", "", "", _cell(getattr(m, name))])
        out.writerow(["summary", "", "pixels", "", "", "", "", "", "", m.pixels])
        out.writerow(["summary", "", "excluded_pixels", "", "", "", "", "", "", result.excluded])
    return Path(path)


def _cell(v: float | None) -> str:
    v = _num(v)
    return "" if v is None else repr(float(v))


def plot_confusion(result: EvaluationResult, path: str | os.PathLike) -> Path:
    """Row-normalized confusion matrix (each truth row sums to 1) as a PNG, class names on the axes.

    Rows without truth pixels are drawn grey. Uses matplotlib's Agg canvas directly: no display,
    no pyplot global state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cm = result.confusion.astype(np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.full(cm.shape, np.nan), where=rows > 0)
    c = cm.shape[0]
    names = [f"{cl.index} {cl.name}" for cl in result.classes.classes]
    side = min(4.0 + 0.45 * c, 24.0)
    fig = Figure(figsize=(side + 1.2, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    import matplotlib

    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="#dddddd")
    img = ax.imshow(np.ma.masked_invalid(norm), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(img, ax=ax, fraction=0.046, pad=0.04, label="fraction of truth row")
    ax.set_xticks(range(c), labels=names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(c), labels=names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    m = result.metrics
    ax.set_title(f"OA {_fmt(m.overall_accuracy, 3)}  mIoU {_fmt(m.mean_iou, 3)}  kappa {_fmt(m.kappa, 3)}"
                 f"  ({m.pixels:,} px)", fontsize=10)
    if c <= 25:  # beyond that the numbers are unreadable anyway
        for t in range(c):
            for p in range(c):
                if not np.isnan(norm[t, p]):
                    ax.text(p, t, f"{norm[t, p]:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if norm[t, p] > 0.5 else "black")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def write_report(result: EvaluationResult, folder: str | os.PathLike, overwrite: bool = False) -> dict[str, Path]:
    """Write ``report.json``, ``report.csv`` and ``confusion.png`` into ``folder``, each atomically.

    Raises:
        OutputExistsError: a report is already there and ``overwrite`` is False.
    """
    folder = Path(folder)
    check_report(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "json": write_json(result, folder / "report.json"),
        "csv": write_csv(result, folder / "report.csv"),
        "png": plot_confusion(result, folder / "confusion.png"),
    }
