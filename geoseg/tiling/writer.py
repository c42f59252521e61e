"""Write one patch (image or label) atomically, as GeoTIFF or .npy.

A GeoTIFF patch carries the window's own transform, the scene CRS and nodata
(:func:`geoseg.io.profiles.patch_profile`); a label patch is uint8 with nodata 255 and the
class color table. ``.npy`` patches hold only pixels: ``(C, H, W)`` images, ``(H, W)``
labels; their georeferencing lives in the dataset index.

:class:`PatchWriter` writes the patches of one task: through GDAL, or, once a GDAL-written
patch has been matched byte for byte, by copying GDAL's file with new tiles and tie point
(:mod:`geoseg.tiling.tiff`), which skips GDAL's per-file header work.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from geoseg.io.atomic import atomic_output
from geoseg.io.profiles import patch_profile
from geoseg.io.raster import read_window
from geoseg.tiling.tiff import TiffTemplate, template_from_gdal

FORMATS = ("tif", "npy")


def patch_path(folder: str | os.PathLike, kind: str, patch_id: str, fmt: str) -> Path:
    """``folder/images/<id>.<fmt>`` (``kind="images"``) or ``folder/labels/<id>.<fmt>``."""
    return Path(folder) / kind / f"{patch_id}.{fmt}"


def write_patch(path: str | os.PathLike, data: np.ndarray, transform: Affine, crs: CRS | None,
                nodata: float | None, fmt: str = "tif", compress: str | None = None,
                colormap: dict[int, tuple[int, int, int, int]] | None = None) -> Path:
    """Write a patch atomically (temporary sibling renamed when complete).

    Args:
        path: destination file (suffix ``.tif`` or ``.npy``).
        data: ``(C, H, W)`` image or ``(H, W)`` label array.
        transform: the window's own affine transform (scene transform shifted by the offset).
        crs: scene CRS.
        nodata: nodata value written in the GeoTIFF header (255 for labels).
        fmt: ``"tif"`` or ``"npy"``.
        compress: ``none``, ``deflate``, ``zstd`` or ``lzw`` (GeoTIFF only).
        colormap: GDAL color table for single-band label patches.
    """
    path = Path(path)
    with atomic_output(path) as tmp:
        if fmt == "npy":
            with open(tmp, "wb") as fh:
                np.save(fh, data, allow_pickle=False)
        else:
            arr = data if data.ndim == 3 else data[None]
            prof = patch_profile(arr.shape[2], arr.shape[1], arr.shape[0], arr.dtype.name, crs, transform,
                                 nodata, compress=None if compress in (None, "none") else compress)
            with rasterio.open(tmp, "w", **prof) as ds:
                if colormap is not None and arr.shape[0] == 1 and arr.dtype == np.uint8:
                    # before the pixels: GDAL then writes one directory ahead of the tiles, as for image
                    # patches (after them, it rewrites the directory at the end of the file)
                    ds.write_colormap(1, colormap)
                ds.write(arr)
    return path


class PatchWriter:
    """Writes the patches of one task that share size, type, CRS, nodata, options and colour table.

    The first uncompressed GeoTIFF patch is written by GDAL and kept as a template; the second
    is written by GDAL too and compared with the template's rendering of it; when they are
    byte-identical, the rest are rendered from the template (same bytes, about a fifth of the
    time), else every patch goes through GDAL. Not thread-safe: one writer per thread.

    Args:
        crs, nodata, fmt, compress, colormap: as for :func:`write_patch`.
    """

    def __init__(self, crs: CRS | None, nodata: float | None, fmt: str = "tif", compress: str | None = None,
                 colormap: dict[int, tuple[int, int, int, int]] | None = None) -> None:
        self.crs, self.nodata, self.fmt, self.compress, self.colormap = crs, nodata, fmt, compress, colormap
        self._light = fmt == "tif" and compress in (None, "none")
        self._template: TiffTemplate | None = None
        self._checked = False
        self.rendered = 0  # patches written from the template

    def write(self, path: str | os.PathLike, data: np.ndarray, transform: Affine) -> Path:
        """Write ``data`` (``(C, H, W)``, any strides, or ``(H, W)``) at ``path`` atomically."""
        if self._template is not None and self._checked:
            hwc = _hwc(data)
            if hwc.shape == self._template.shape and hwc.dtype.name == self._template.dtype:
                chunks = self._template.chunks(hwc, transform)
                with atomic_output(path) as tmp, open(tmp, "wb") as fh:
                    for chunk in chunks:
                        fh.write(chunk)
                self.rendered += 1
                return Path(path)
        out = write_patch(path, data, transform, self.crs, self.nodata, fmt=self.fmt, compress=self.compress,
                          colormap=self.colormap)
        if self._light and not self._checked:
            self._learn(out, data, transform)
        return out

    def _learn(self, path: Path, data: np.ndarray, transform: Affine) -> None:
        hwc = _hwc(data)
        blob = path.read_bytes()
        if self._template is None:
            self._template = template_from_gdal(blob, hwc.shape, hwc.dtype.name, transform)
            if self._template is None:
                self._light = False
            return
        same = hwc.shape == self._template.shape and hwc.dtype.name == self._template.dtype
        self._checked = same and self._template.render(hwc, transform) == blob
        if not self._checked:
            self._template, self._light = None, False


def _hwc(data: np.ndarray) -> np.ndarray:
    """The ``(H, W, C)`` view of a ``(C, H, W)`` image or ``(H, W)`` label patch (no copy)."""
    return data[:, :, None] if data.ndim == 2 else data.transpose(1, 2, 0)


def read_patch_file(path: str | os.PathLike) -> np.ndarray:
    """Read back a patch written by :func:`write_patch`: ``(C, H, W)`` or ``(H, W)`` for npy labels."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    with rasterio.open(path) as ds:
        return read_window(ds)
