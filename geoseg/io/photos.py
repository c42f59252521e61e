"""Photos: JPEG and PNG images without georeferencing, read and written in pixel coordinates.

A folder of ``.jpg``/``.png`` photos is a set of scenes like any other (``expand_inputs``
lists them); they have no CRS and an identity transform, so geoseg reads them on their own
pixel grid, says so once per run (:func:`photo_notice`), and writes their labels as paletted
PNG images (``<stem>_label.png``, palette = class colours, 255 = ignore, transparent) that any
image viewer shows. Dataset readers (VOC-style folders of photos and PNG masks) use
:func:`read_image` and :func:`write_label_png` from here.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from geoseg.errors import UnreadableRasterError
from geoseg.io.atomic import atomic_output
from geoseg.io.classes import ClassMap
from geoseg.io.raster import SceneInfo, gdal_env

log = logging.getLogger("geoseg.io")

#: GDAL drivers and file suffixes of photos.
PHOTO_DRIVERS = ("JPEG", "PNG")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def is_photo(info: SceneInfo) -> bool:
    """True for a JPEG or PNG image without georeferencing (outputs are PNG label images)."""
    return info.driver in PHOTO_DRIVERS and not info.has_georeference


def photo_notice(infos: Sequence[SceneInfo]) -> int:
    """Log, once for all of them, that photos carry no georeferencing; return how many there are."""
    photos = [i for i in infos if is_photo(i)]
    if photos:
        first = photos[0].path
        log.warning("%d photo(s) (JPEG/PNG, e.g. %s) carry no georeferencing: read in pixel coordinates, "
                    "labels written as <stem>_label.png", len(photos), first)
    return len(photos)


def read_image(path: str | os.PathLike, bands: Sequence[int] | None = None) -> np.ndarray:
    """All pixels of an image as ``(C, H, W)`` (JPEG, PNG or any GDAL raster), without georeference warnings.

    Raises:
        UnreadableRasterError: GDAL cannot read it.
    """
    try:
        with warnings.catch_warnings(), gdal_env(), rasterio.open(path) as ds:
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            out: np.ndarray = ds.read(list(bands) if bands else None)
    except RasterioIOError as exc:
        raise UnreadableRasterError(f"not a readable image: {path} ({str(exc).splitlines()[0]})") from None
    return out


def write_label_png(path: str | os.PathLike, label: np.ndarray, classes: ClassMap) -> Path:
    """Write class indices ``(H, W)`` uint8 as a paletted PNG (palette = class colours, 255 transparent).

    Args:
        path: the ``.png`` file, written atomically.
        label: class indices, 255 = ignore.
        classes: colours of the palette.
    """
    label = np.asarray(label, dtype=np.uint8)
    prof = {"driver": "PNG", "width": label.shape[1], "height": label.shape[0], "count": 1, "dtype": "uint8"}
    with atomic_output(path) as tmp, warnings.catch_warnings(), gdal_env():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **prof) as ds:
            ds.write(label, 1)
            ds.write_colormap(1, classes.colormap())
    return Path(path)
