"""Quick-look PNG: scene, ground truth and prediction side by side, with a legend of class names.

Any scene size: every raster is read once at no more than ``max_side`` pixels a side with a
decimated ``out_shape`` read (GDAL uses the overviews when there are any), bands averaged,
labels with nearest neighbour. The scene shows three bands (``bands``: numbers or names, by
default red/green/blue by colour interpretation or description, else bands 1-3; one band is
shown in grey) stretched per band between two percentiles of its valid pixels; nodata and
label value 255 are white. Class names and colours come from ``classes`` (a class map, a
palette file, a bundle's ``geoseg.json`` or a ``dataset.json``), else the label raster's
``GEOSEG_CLASSES`` tag, else defaults.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NodataShadowWarning

from geoseg.errors import InvalidParameterError
from geoseg.io.atomic import atomic_output
from geoseg.io.bands import select_bands
from geoseg.io.classes import IGNORE_INDEX, ClassMap, classes_from_tags, index_to_color, load_palette
from geoseg.io.raster import SceneInfo, open_scene, read_window

#: Panel side in pixels of the PNG (at 100 dpi), and the legend strip's height.
PANEL_PX = 500
LEGEND_PX = 60
#: Legends list at most this many classes (those present in the panels first).
MAX_LEGEND = 24


def _small_shape(info: SceneInfo, max_side: int) -> tuple[int, int]:
    """``(rows, cols)`` of a decimated read: the raster shrunk to at most ``max_side`` a side."""
    scale = max(1.0, max(info.width, info.height) / max_side)
    return max(1, round(info.height / scale)), max(1, round(info.width / scale))


def default_display_bands(info: SceneInfo) -> list[int]:
    """Red, green, blue by colour interpretation or description when the scene says so; else 1, 2, 3 (or 1)."""
    with rasterio.open(info.path) as ds:
        interp = list(ds.colorinterp)
    descs = [(d or "").strip().lower() for d in info.descriptions]
    found = []
    for name, ci in (("red", ColorInterp.red), ("green", ColorInterp.green), ("blue", ColorInterp.blue)):
        b = next((i + 1 for i, d in enumerate(descs) if d == name), None)
        b = b or next((i + 1 for i, c in enumerate(interp) if c == ci), None)
        found.append(b)
    if all(found):
        return [int(b) for b in found if b]
    return [1, 2, 3] if info.count >= 3 else [1]


def read_scene(path: str | os.PathLike, bands: Sequence[int | str] | None = None, max_side: int = 768,
               stretch: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
    """The scene as an ``(H, W, 3)`` uint8 picture, at most ``max_side`` pixels a side.

    Args:
        path: the scene.
        bands: 1 or 3 bands, by number or name (:func:`geoseg.io.bands.select_bands`); None: RGB if known.
        max_side: longest side of the read in pixels.
        stretch: lower and upper percentiles (0..100) mapped to 0 and 255, per band, over valid pixels.

    Raises:
        InvalidParameterError: not 1 or 3 bands, or a bad stretch.
        BandCountError: a band that the scene does not have.
    """
    lo_pct, hi_pct = stretch
    if not 0 <= lo_pct < hi_pct <= 100:
        raise InvalidParameterError(f"--stretch: expected 0 <= LOW < HIGH <= 100 (percentiles), got {lo_pct},{hi_pct}")
    info = open_scene(path)
    chosen = select_bands(info, bands) if bands else default_display_bands(info)
    if len(chosen) not in (1, 3):
        raise InvalidParameterError(f"--bands: choose 1 or 3 bands to show, got {len(chosen)} ({chosen})")
    with warnings.catch_warnings(), rasterio.open(info.path) as ds:
        warnings.simplefilter("ignore", NodataShadowWarning)  # a 4th band marked alpha: nodata decides, as wanted
        data = read_window(ds, chosen, out_shape=(len(chosen), *_small_shape(info, max_side)),
                           resampling=Resampling.average, masked=True)
    out = np.full(data.shape[1:] + (3,), 255, dtype=np.uint8)
    mask = np.ma.getmaskarray(data).any(axis=0)
    if data.dtype.kind == "f":
        mask |= ~np.isfinite(np.ma.getdata(data)).all(axis=0)
    for i in range(len(chosen)):
        band = np.ma.getdata(data[i]).astype(np.float64)
        valid = band[~mask]
        lo, hi = np.percentile(valid, (lo_pct, hi_pct)) if valid.size else (0.0, 1.0)
        scaled = np.clip((band - lo) / max(hi - lo, 1e-12) * 255, 0, 255).astype(np.uint8)
        for c in ([0, 1, 2] if len(chosen) == 1 else [i]):
            out[..., c] = np.where(mask, 255, scaled)
    return out


def read_label(path: str | os.PathLike, max_side: int = 768) -> tuple[np.ndarray, ClassMap | None]:
    """Class indices ``(H, W)`` uint8 (nearest neighbour, at most ``max_side`` a side) and the raster's class map."""
    info = open_scene(path)
    with rasterio.open(info.path) as ds:
        label = read_window(ds, 1, out_shape=_small_shape(info, max_side), resampling=Resampling.nearest)
        tagged = classes_from_tags(ds.tags()) or classes_from_tags(ds.tags(1))
        nodata = ds.nodata
    if nodata is not None and nodata != IGNORE_INDEX:
        label = np.where(label == nodata, IGNORE_INDEX, label)
    return np.clip(label, 0, 255).astype(np.uint8), tagged


def load_classes(source: ClassMap | str | os.PathLike | None) -> ClassMap | None:
    """A class map from a ClassMap, a palette file, a bundle ``geoseg.json`` or a ``dataset.json``."""
    if source is None or isinstance(source, ClassMap):
        return source
    path = Path(source)
    if path.suffix.lower() == ".json":
        doc = json.loads(path.read_text()) if path.is_file() else None
        if isinstance(doc, dict) and isinstance(doc.get("classes"), list):
            return ClassMap.from_json(doc["classes"])
    return load_palette(path)


def _colorize(label: np.ndarray, classes: ClassMap) -> np.ndarray:
    rgb = np.moveaxis(index_to_color(label, classes), 0, -1)
    rgb[label == IGNORE_INDEX] = 255
    return rgb


def quicklook(scene: str | os.PathLike | None, truth: str | os.PathLike | None, pred: str | os.PathLike | None,
              out_png: str | os.PathLike, classes: ClassMap | str | os.PathLike | None = None,
              max_side: int = 768, bands: Sequence[int | str] | None = None,
              stretch: tuple[float, float] = (2.0, 98.0)) -> Path:
    """Write a PNG with the scene, the ground truth and the prediction (any of them) side by side.

    Args:
        scene, truth, pred: rasters to show (None: no panel); at least one.
        out_png: the PNG, written atomically; ``PANEL_PX`` x (``PANEL_PX`` + ``LEGEND_PX``) pixels
            per panel (the legend strip only with a label panel).
        classes: names and colours (see :func:`load_classes`); default: the label rasters' tag.
        max_side: longest side of each raster read, in pixels.
        bands, stretch: see :func:`read_scene`.

    Raises:
        InvalidParameterError: nothing to show, or bad bands/stretch.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if scene is None and truth is None and pred is None:
        raise InvalidParameterError("quicklook: give a scene, --labels or --pred (nothing to show)")
    cmap = load_classes(classes)
    panels: list[tuple[str, np.ndarray]] = []
    if scene is not None:
        panels.append(("scene", read_scene(scene, bands, max_side, stretch)))
    labels: list[tuple[str, np.ndarray]] = []
    for title, path in (("ground truth", truth), ("prediction", pred)):
        if path is not None:
            label, tagged = read_label(path, max_side)
            cmap = cmap or tagged
            labels.append((title, label))
    present = sorted({int(v) for _, a in labels for v in np.unique(a) if v != IGNORE_INDEX})
    if cmap is None:
        cmap = ClassMap.default(max(present, default=0) + 1)
    panels.extend((title, _colorize(label, cmap)) for title, label in labels)
    legend_px = LEGEND_PX if labels else 0
    fig = plt.figure(figsize=(PANEL_PX * len(panels) / 100, (PANEL_PX + legend_px) / 100), dpi=100)
    bottom = legend_px / (PANEL_PX + legend_px)
    for n, (title, img) in enumerate(panels):
        ax = fig.add_axes((n / len(panels) + 0.01, bottom + 0.01, 1 / len(panels) - 0.02, 1 - bottom - 0.08))
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    if labels:
        shown = [c for c in cmap.classes if c.index in present] or list(cmap.classes)
        shown += [c for c in cmap.classes if c not in shown and len(cmap.classes) <= MAX_LEGEND]
        shown = sorted(shown, key=lambda c: c.index)[:MAX_LEGEND]
        handles = [Patch(facecolor=np.array(c.color) / 255, edgecolor="black", linewidth=0.5, label=c.name)
                   for c in shown]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False,
                   handlelength=2.5, handleheight=1.5)
    with atomic_output(out_png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(out_png)
