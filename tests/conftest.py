"""Factory fixtures for tiny georeferenced rasters, and the gpu/data skips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

from factories import DEFAULT_CRS, DEFAULT_TRANSFORM, SHARED_DATA, write_raster


@pytest.fixture
def make_raster(tmp_path):
    """Factory: ``make_raster(name, height=64, width=80, bands=4, dtype="uint8", nodata=None, seed=0,
    crs=..., transform=..., data=None)`` writes a random raster to ``tmp_path`` and returns its path."""

    def _make(name="scene.tif", height=64, width=80, bands=4, dtype="uint8", nodata=None, seed=0,
              crs=DEFAULT_CRS, transform=DEFAULT_TRANSFORM, data=None, **profile):
        if data is None:
            rng = np.random.default_rng(seed)
            info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
            hi = min(info.max, 1000) if info else 1.0
            data = (rng.random((bands, height, width)) * hi).astype(dtype)
            if nodata is not None:
                data = np.where(data == nodata, data + 1 if info is None or nodata < info.max else data - 1, data)
        return write_raster(tmp_path / name, np.asarray(data), crs=crs, transform=transform, nodata=nodata, **profile)

    return _make


def _has_gpu() -> bool:
    try:
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    needs_gpu = [i for i in items if "gpu" in i.keywords]
    if needs_gpu and not _has_gpu():
        skip = pytest.mark.skip(reason="needs a GPU; none visible")
        for item in needs_gpu:
            item.add_marker(skip)
    if not SHARED_DATA.exists():
        skip = pytest.mark.skip(reason=f"real data folder absent: {SHARED_DATA}")
        for item in items:
            if "data" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def shared_data() -> Path:
    """Path of ../shared/data (tests using it are marked ``data`` and skip when it is absent)."""
    return SHARED_DATA
