"""``--debug-samples N``: per epoch, a PNG of what the model was fed and what it now predicts.

``OUT/debug/epoch_<epoch>.png`` (``<epoch>`` 1-based, 3 digits) holds the first ``N`` training
samples of that epoch exactly as the model received them (after augmentation and normalization),
one sample per row, three panels per row:

1. the image: bands 1-3 as RGB (one band: grey), each band stretched from its 2nd to its 98th
   percentile over the ``N`` samples (so the brightness / contrast jitter stays visible);
2. the label: each labelled pixel in its class colour, unlabelled / nodata pixels (``ignore_index``)
   as the image dimmed to grey;
3. the prediction of the model at the end of that epoch: each pixel in the colour of its class.

Panels are the patch pixels enlarged by a whole factor (nearest neighbour: no blended colours),
with a title line above and the epoch and class legend below. Layout in pixels: :class:`GridLayout`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from geoseg.io.atomic import atomic_output
from geoseg.io.classes import ClassMap

DEBUG_DIR = "debug"
#: Panels are enlarged to at least this many pixels a side.
MIN_PANEL = 128
GAP = 4
HEADER = 18
LEGEND_LINE = 18
BACKGROUND = 255
PANELS = ("image", "label", "prediction")


def debug_png(folder: Path, epoch: int) -> Path:
    """The PNG of ``epoch`` (1-based)."""
    return Path(folder) / f"epoch_{epoch:03d}.png"


@dataclass(frozen=True)
class GridLayout:
    """Where things are in a debug PNG (pixels, rows from the top).

    Attributes:
        rows: samples (one per row of panels).
        scale: enlargement of the patch pixels.
        panel_h, panel_w: panel size (patch size times ``scale``).
        legend_lines: lines of the class legend below the panels.
    """

    rows: int
    scale: int
    panel_h: int
    panel_w: int
    legend_lines: int = 1

    @classmethod
    def of(cls, rows: int, tile_h: int, tile_w: int, legend_lines: int = 1) -> GridLayout:
        scale = max(1, math.ceil(MIN_PANEL / max(tile_h, tile_w)))
        return cls(rows, scale, tile_h * scale, tile_w * scale, legend_lines)

    @property
    def width(self) -> int:
        return len(PANELS) * self.panel_w + (len(PANELS) - 1) * GAP

    @property
    def grid_height(self) -> int:
        return self.rows * self.panel_h + (self.rows - 1) * GAP

    @property
    def height(self) -> int:
        return HEADER + self.grid_height + GAP + self.legend_lines * LEGEND_LINE

    def panel(self, row: int, col: int) -> tuple[slice, slice]:
        """Row and column slices of panel ``col`` (0 image, 1 label, 2 prediction) of sample ``row``."""
        top, left = HEADER + row * (self.panel_h + GAP), col * (self.panel_w + GAP)
        return slice(top, top + self.panel_h), slice(left, left + self.panel_w)


def color_lut(classes: ClassMap) -> np.ndarray:
    """``(256, 3)`` uint8: class index -> its colour (unknown values grey)."""
    lut = np.full((256, 3), 128, np.uint8)
    for c in classes.classes:
        lut[c.index] = c.color
    return lut


def stretch_rgb(images: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` float -> ``(N, H, W, 3)`` uint8: bands 1-3 (or band 1 as grey), each scaled from its
    2nd..98th percentile over all samples to 0..255."""
    bands = images[..., :3] if images.shape[-1] >= 3 else np.repeat(images[..., :1], 3, axis=-1)
    bands = bands.astype(np.float64)
    lo = np.percentile(bands, 2, axis=(0, 1, 2))
    hi = np.percentile(bands, 98, axis=(0, 1, 2))
    scaled = (bands - lo) / np.maximum(hi - lo, 1e-12)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def render_grid(images: np.ndarray, labels: np.ndarray, preds: np.ndarray, classes: ClassMap,
                ignore_index: int, title: str = "") -> np.ndarray:
    """The debug picture as ``(height, width, 3)`` uint8 (see module doc and :class:`GridLayout`).

    Args:
        images: ``(N, H, W, C)`` the samples as fed (any scale).
        labels: ``(N, H, W)`` class indices, ``ignore_index`` where unknown.
        preds: ``(N, H, W)`` predicted class indices.
        classes: names and colours.
        ignore_index: the "no label" value of ``labels``.
        title: text put before the class legend (e.g. the epoch).
    """
    n, h, w = labels.shape
    lut = color_lut(classes)
    legend = _legend_items(classes, title)
    width = GridLayout.of(n, h, w).width
    lines = _flow(legend, width)
    lay = GridLayout.of(n, h, w, legend_lines=len(lines))
    out = np.full((lay.height, lay.width, 3), BACKGROUND, np.uint8)
    rgb = stretch_rgb(images)
    grey = (rgb.astype(np.uint16).sum(-1) // 6).astype(np.uint8)  # the image at half brightness, grey
    for i in range(n):
        lab = labels[i].astype(np.int64)
        known = lab != ignore_index
        lab_rgb = np.where(known[..., None], lut[np.where(known, lab, 0)], grey[i][..., None])
        for col, panel in enumerate((rgb[i], lab_rgb, lut[np.clip(preds[i], 0, 255)])):
            rs, cs = lay.panel(i, col)
            out[rs, cs] = np.repeat(np.repeat(panel, lay.scale, 0), lay.scale, 1)
    names = dict(enumerate(PANELS))
    names[0] = "image (bands 1-3)" if images.shape[-1] >= 3 else "image (band 1)"
    for col, name in names.items():
        _paste(out, _text(name), 2, col * (lay.panel_w + GAP) + 2, right=(col + 1) * lay.panel_w + col * GAP)
    top = HEADER + lay.grid_height + GAP
    for k, line in enumerate(lines):
        x = 2
        for swatch, label in line:
            _paste(out, swatch, top + k * LEGEND_LINE + 3, x)
            _paste(out, label, top + k * LEGEND_LINE + 1, x + swatch.shape[1] + 3)
            x += swatch.shape[1] + 3 + label.shape[1] + 10
    return out


def write_debug_png(path: Path, picture: np.ndarray) -> None:
    """Write ``picture`` ``(H, W, 3)`` uint8 as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.image

    with atomic_output(path) as tmp:
        matplotlib.image.imsave(tmp, picture, format="png")


def _legend_items(classes: ClassMap, title: str) -> list[tuple[np.ndarray, np.ndarray]]:
    items = [(np.full((12, 0, 3), BACKGROUND, np.uint8), _text(title))] if title else []
    for c in classes.classes:
        swatch = np.zeros((12, 12, 3), np.uint8)
        swatch[1:-1, 1:-1] = c.color  # a dark frame keeps a white class visible
        items.append((swatch, _text(c.name)))
    return items


def _flow(items: list[tuple[np.ndarray, np.ndarray]], width: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    lines: list[list[tuple[np.ndarray, np.ndarray]]] = [[]]
    x = 2
    for swatch, label in items:
        need = swatch.shape[1] + 3 + label.shape[1] + 10
        if lines[-1] and x + need > width:
            lines.append([])
            x = 2
        lines[-1].append((swatch, label))
        x += need
    return lines


def _text(text: str, size_px: int = 11) -> np.ndarray:
    """``text`` in black on white as ``(h, w, 3)`` uint8, cropped to its ink (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(0.1 + 0.08 * len(text) * size_px / 11, 0.16), dpi=100, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    fig.text(0.0, 0.5, text, fontsize=size_px * 72 / 100, va="center", ha="left", color="black")
    canvas.draw()
    arr = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    ink = np.flatnonzero((arr < 250).any(axis=(0, 2)))
    return arr[:, : ink[-1] + 2] if ink.size else arr[:, :1]


def _paste(out: np.ndarray, patch: np.ndarray, top: int, left: int, right: int | None = None) -> None:
    right = out.shape[1] if right is None else min(right, out.shape[1])
    h = min(patch.shape[0], out.shape[0] - top)
    w = min(patch.shape[1], right - left)
    if h > 0 and w > 0:
        out[top:top + h, left:left + w] = np.minimum(out[top:top + h, left:left + w], patch[:h, :w])


class DebugSamples(keras.callbacks.Callback):
    """Writes ``folder/epoch_<epoch>.png`` after every epoch (see module doc).

    Args:
        folder: where the PNGs go (``OUT/debug``).
        fed: ``fed(epoch)`` -> ``(x (N, H, W, C), y (N, H, W))``, the first samples the model was
            fed in ``epoch`` (0-based), rebuilt from the seeded pipeline (the training stream is not
            touched, so a run with and without this callback trains identically).
        classes: names and colours.
        ignore_index: the "no label" value of ``y``.
    """

    def __init__(self, folder: Path, fed: Callable[[int], tuple[np.ndarray, np.ndarray]], classes: ClassMap,
                 ignore_index: int):
        super().__init__()
        self.folder, self.fed, self.classes, self.ignore_index = Path(folder), fed, classes, int(ignore_index)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        x, y = self.fed(epoch)
        probs = np.asarray(self.model(x, training=False))
        preds = (probs[..., 0] >= 0.5).astype(np.int64) if probs.shape[-1] == 1 else probs.argmax(-1)
        picture = render_grid(x, y, preds, self.classes, self.ignore_index, title=f"epoch {epoch + 1}:")
        self.folder.mkdir(parents=True, exist_ok=True)
        write_debug_png(debug_png(self.folder, epoch + 1), picture)
