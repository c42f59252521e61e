"""Quick-look PNG: scene (RGB), ground truth and prediction side by side, downsampled on read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from geoseg.io.atomic import atomic_output
from geoseg.io.classes import IGNORE_INDEX, ClassMap, index_to_color


def _read_small(path, bands, max_side: int, resampling: Resampling) -> np.ndarray:
    with rasterio.open(path) as ds:
        scale = max(ds.width, ds.height) / max_side
        shape = (len(bands), max(1, int(ds.height / max(scale, 1))), max(1, int(ds.width / max(scale, 1))))
        return ds.read(bands, out_shape=shape, resampling=resampling)


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) any dtype -> (H, W, 3) uint8 with a 2-98 percentile stretch per band."""
    out = np.empty(rgb.shape[1:] + (3,), dtype=np.uint8)
    for i in range(3):
        lo, hi = np.percentile(rgb[i], (2, 98))
        out[..., i] = np.clip((rgb[i].astype(np.float32) - lo) / max(hi - lo, 1e-6) * 255, 0, 255)
    return out


def _colorize(label: np.ndarray, classes: ClassMap) -> np.ndarray:
    rgb = np.moveaxis(index_to_color(label, classes), 0, -1)
    rgb[label == IGNORE_INDEX] = 255
    return rgb


def quicklook(scene: str | os.PathLike, truth: str | os.PathLike | None, pred: str | os.PathLike,
              out_png: str | os.PathLike, classes: ClassMap | str | os.PathLike | None = None,
              max_side: int = 768) -> Path:
    """Write a PNG with the scene, the ground truth (if any) and the prediction side by side.

    Args:
        classes: a ClassMap, or a bundle ``geoseg.json`` / palette path giving names and colors.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if classes is None or isinstance(classes, ClassMap):
        cmap = classes
    else:
        doc = json.loads(Path(classes).read_text())
        cmap = ClassMap.from_json(doc["classes"])
    with rasterio.open(scene) as ds:
        bands = [1, 2, 3] if ds.count >= 3 else [1, 1, 1]
    panels = [("scene", _stretch(_read_small(scene, bands, max_side, Resampling.average)))]
    pred_arr = _read_small(pred, [1], max_side, Resampling.nearest)[0]
    if cmap is None:
        cmap = ClassMap.default(int(pred_arr[pred_arr != IGNORE_INDEX].max(initial=0)) + 1)
    if truth is not None:
        panels.append(("ground truth", _colorize(_read_small(truth, [1], max_side, Resampling.nearest)[0], cmap)))
    panels.append(("prediction", _colorize(pred_arr, cmap)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5.4))
    for ax, (title, img) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    handles = [Patch(color=np.array(c.color) / 255, label=c.name) for c in cmap.classes]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    with atomic_output(out_png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(out_png)
