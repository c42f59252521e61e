"""Reading prediction windows: the window plan of a scene and batches of model-ready pixels.

"Where to cut" comes from :mod:`geoseg.io.windows` (the same grid as tiling); this module
reads those windows in row-major batches. Consecutive windows of one window row are read with a
single GDAL call (one region ``tile x (n - 1) * stride + tile``), so overlapping windows do not
read the same pixels twice and memory stays bounded by the batch, not the scene width.

A scene smaller than a tile (in either axis) is padded at the bottom/right up to one tile by
mirroring its pixels (the model sees plausible context); the padding is marked invalid and
cropped away when writing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from geoseg.io.normalization import normalize
from geoseg.io.raster import SceneInfo, gdal_env, read_window, valid_mask
from geoseg.io.windows import axis_offsets, padded_shape


@dataclass(frozen=True)
class ScenePlan:
    """The window grid of stride-mode prediction over one scene.

    Attributes:
        height, width: scene size in pixels.
        grid_height, grid_width: size after padding to at least one tile (pixels).
        tile: window size in pixels (square windows).
        stride: step between windows in pixels.
        rows, cols: window offsets along each axis (:func:`axis_offsets`, last one snapped).
    """

    height: int
    width: int
    grid_height: int
    grid_width: int
    tile: int
    stride: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @classmethod
    def create(cls, height: int, width: int, tile: int, stride: int) -> ScenePlan:
        gh, gw = padded_shape(height, width, tile)
        return cls(height, width, gh, gw, tile, stride,
                   tuple(axis_offsets(gh, tile, stride)), tuple(axis_offsets(gw, tile, stride)))

    @property
    def padded(self) -> bool:
        return (self.grid_height, self.grid_width) != (self.height, self.width)

    def window_rows(self, first: int = 0, stop: int | None = None) -> list[int]:
        """Row offsets of the windows that touch scene rows ``[first, stop)``.

        These are all the windows a strip of rows needs (its halo included), so a strip can be
        predicted without any other strip's results.
        """
        stop = self.height if stop is None else stop
        return [r for r in self.rows if r < stop and r + self.tile > first]

    def count(self, first: int = 0, stop: int | None = None) -> int:
        """Number of windows predicted for scene rows ``[first, stop)``."""
        return len(self.window_rows(first, stop)) * len(self.cols)

    def windows(self) -> list[Window]:
        """All windows, row-major (grid coordinates)."""
        return [Window(c, r, self.tile, self.tile) for r in self.rows for c in self.cols]


@dataclass(frozen=True)
class WindowBatch:
    """A batch of windows ready for the model.

    Attributes:
        rows, cols: ``(N,)`` grid offsets of the windows (pixels).
        data: ``(N, tile, tile, C)`` float32, normalized, in the bundle's band order.
        valid: ``(N, tile, tile)`` bool, False on nodata and padding.
        done: windows accounted for by this batch: its own plus the entirely-nodata windows
            skipped just before it (for progress reporting). A final batch may hold no windows.
    """

    rows: np.ndarray
    cols: np.ndarray
    data: np.ndarray
    valid: np.ndarray
    done: int

    def __len__(self) -> int:
        return int(self.rows.shape[0])


def iter_window_batches(path: str | Path, plan: ScenePlan, bands: Sequence[int], norm: dict | None,
                        batch_size: int, window_rows: Sequence[int] | None = None,
                        nodata: float | None = None) -> Iterator[WindowBatch]:
    """Read the windows of ``window_rows`` (default: all) in row-major batches of ``batch_size``.

    Windows whose pixels are all nodata are skipped (counted in ``done``). Non-finite values
    (NaN nodata in float scenes) are replaced by 0 after normalization so that they cannot
    spread through the model into valid pixels.
    """
    tile = plan.tile
    rows_todo = plan.rows if window_rows is None else window_rows
    with gdal_env(), rasterio.open(path) as ds:
        nodata = ds.nodata if nodata is None else nodata
        pending: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        skipped = 0
        for r in rows_todo:
            for group in _column_groups(plan.cols, batch_size):
                region, valid = _read_region(ds, bands, r, group[0], group[-1] + tile, plan, nodata)
                for c in group:
                    x = c - group[0]
                    v = valid[:, x:x + tile]
                    if not v.any():
                        skipped += 1
                        continue
                    pending.append((r, c, region[:, :, x:x + tile], v))
                    if len(pending) == batch_size:
                        yield _make_batch(pending, norm, skipped)
                        pending, skipped = [], 0
        if pending or skipped:
            yield _make_batch(pending, norm, skipped, tile=tile, bands=len(bands))


def _column_groups(cols: Sequence[int], n: int) -> Iterator[list[int]]:
    for i in range(0, len(cols), n):
        yield list(cols[i:i + n])


def _read_region(ds, bands: Sequence[int], row: int, col0: int, col1: int, plan: ScenePlan,
                 nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Read grid rows ``[row, row + tile)`` x cols ``[col0, col1)``; mirror-pad past the scene edge.

    Returns ``(C, tile, col1 - col0)`` pixels in the scene dtype and the ``(tile, n)`` valid mask.
    """
    tile = plan.tile
    r1, c1 = min(row + tile, plan.height), min(col1, plan.width)
    data = read_window(ds, list(bands), Window(col0, row, c1 - col0, r1 - row))
    valid = valid_mask(data, nodata)
    pad_r, pad_c = row + tile - r1, col1 - c1
    if pad_r or pad_c:
        data = np.pad(data, ((0, 0), (0, pad_r), (0, pad_c)), mode="symmetric")
        valid = np.pad(valid, ((0, pad_r), (0, pad_c)), constant_values=False)
    return data, valid


def _make_batch(items: list, norm: dict | None, skipped: int, tile: int = 0, bands: int = 0) -> WindowBatch:
    if not items:
        return WindowBatch(np.zeros(0, int), np.zeros(0, int), np.zeros((0, tile, tile, bands), np.float32),
                           np.zeros((0, tile, tile), bool), skipped)
    raw = np.stack([np.moveaxis(it[2], 0, -1) for it in items])  # (N, h, w, C), scene dtype
    data = normalize(raw, norm)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    return WindowBatch(
        rows=np.array([it[0] for it in items]), cols=np.array([it[1] for it in items]),
        data=np.ascontiguousarray(data, dtype=np.float32), valid=np.stack([it[3] for it in items]),
        done=len(items) + skipped,
    )


def scene_bands(info: SceneInfo, bands: Sequence[int] | None) -> list[int]:
    """The 1-based scene bands to read, in model order (all bands when the bundle names none)."""
    return list(bands) if bands else list(range(1, info.count + 1))
