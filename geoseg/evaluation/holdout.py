"""Restrict a label raster to the windows of one dataset split (e.g. the spatial validation area).

Used to score a whole-scene prediction on the held-out area only: pixels outside the chosen
windows become 255 (ignored by evaluation). Works block by block, so any scene size is fine.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from geoseg.io.atomic import atomic_output
from geoseg.io.classes import IGNORE_INDEX
from geoseg.errors import DatasetError
from geoseg.io.raster import gdal_env


def windows_of_split(index_csv: str | os.PathLike, scene: str | os.PathLike, split: str) -> list[Window]:
    """Windows (scene pixels) of the patches of ``scene`` in ``split``, read from a dataset index.

    Raises:
        DatasetError: the index is missing.
    """
    p = Path(index_csv)
    if not p.exists():
        raise DatasetError(f"no dataset index: {p}")
    stem = Path(scene).stem
    out = []
    with p.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] == split and Path(row["scene"]).stem == stem:
                out.append(Window(int(row["col_off"]), int(row["row_off"]), int(row["width"]), int(row["height"])))
    return out


def mask_outside_windows(label_path: str | os.PathLike, windows: list[Window], out_path: str | os.PathLike,
                         block_rows: int = 512) -> Path:
    """Copy a 1-band label raster, setting every pixel outside ``windows`` to 255.

    Processed in strips of ``block_rows`` rows; the output keeps the grid, CRS and color table.
    """
    with gdal_env(), rasterio.open(label_path) as src:
        prof = src.profile.copy()
        prof.update(count=1, dtype="uint8", nodata=IGNORE_INDEX, tiled=True, blockxsize=256, blockysize=256,
                    compress="deflate")
        try:
            cmap = src.colormap(1)
        except ValueError:
            cmap = None
        with atomic_output(out_path) as tmp, rasterio.open(tmp, "w", **prof) as dst:
            for r0 in range(0, src.height, block_rows):
                h = min(block_rows, src.height - r0)
                strip = Window(0, r0, src.width, h)
                data = src.read(1, window=strip)
                keep = np.zeros(data.shape, dtype=bool)
                for w in windows:
                    rr0, rr1 = max(int(w.row_off), r0), min(int(w.row_off + w.height), r0 + h)
                    if rr0 < rr1:
                        keep[rr0 - r0:rr1 - r0, int(w.col_off):int(w.col_off + w.width)] = True
                dst.write(np.where(keep, data, IGNORE_INDEX).astype(np.uint8), 1, window=strip)
            if cmap:
                dst.write_colormap(1, cmap)
    return Path(out_path)
