"""Tiny georeferenced raster factories shared by the tests (import as ``from factories import ...``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

#: UTM 33N, 0.5 m pixels, origin at a real place (non-identity transform).
DEFAULT_CRS = CRS.from_epsg(32633)
DEFAULT_TRANSFORM = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4649776.0)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_raster(path: Path, data: np.ndarray, crs=DEFAULT_CRS, transform=DEFAULT_TRANSFORM, nodata=None,
                 **profile) -> Path:
    """Write ``data`` (C, H, W) or (H, W) as a GeoTIFF and return its path."""
    if data.ndim == 2:
        data = data[None]
    prof = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
            "dtype": data.dtype.name, "crs": crs, "transform": transform, "nodata": nodata}
    prof.update(profile)
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(data)
    return path
