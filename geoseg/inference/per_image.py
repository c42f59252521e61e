"""``--mode per_image``: resize the whole scene to one tile, predict once, resize back.

Probabilities are resized bilinearly (pixel centres aligned), labels with nearest neighbour from
the tile-resolution labels (argmax, or ``p >= threshold`` for a binary model), so
``label == argmax(prob)`` holds at model resolution. Output is produced strip by strip of
``block_rows`` rows, so memory is bounded by one tile and one strip whatever the scene size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from geoseg.inference.options import PredictOptions
from geoseg.inference.writers import LABEL_NODATA, encode, label_bands
from geoseg.io.bundle import Bundle
from geoseg.io.normalization import normalize
from geoseg.io.raster import SceneInfo, gdal_env, read_window, valid_mask


def iter_per_image_rows(forward, bundle: Bundle, info: SceneInfo, bands: Sequence[int], opts: PredictOptions,
                        block_rows: int) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Predict a scene at one tile's resolution and yield its rows at full resolution.

    Args:
        forward: the bundle's forward pass (``(1, tile, tile, C) -> (1, tile, tile, K)``).
        bundle: the bundle (tile size, normalization).
        info: the scene.
        bands: 1-based scene bands, model order.
        opts: resolved options (``prob_dtype``, ``write_prob``, ``threshold``).
        block_rows: rows per yielded strip (pixels).

    Yields:
        ``(row, label (n, W) uint8, prob (K, n, W) or None)`` encoded for the writers.
    """
    tile = bundle.tile_size
    with gdal_env(), rasterio.open(info.path) as ds:
        small = read_window(ds, list(bands), out_shape=(len(bands), tile, tile), resampling=Resampling.bilinear)
        x = normalize(np.moveaxis(small, 0, -1)[None], bundle.normalization)
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        p = forward(x)[0]  # (tile, tile, K)
        label_small = label_bands(np.moveaxis(p, -1, 0), opts.threshold)
        col_i0, col_i1, col_f = linear_index(info.width, tile)
        col_near = nearest_index(info.width, tile)
        for a in range(0, info.height, block_rows):
            b = min(a + block_rows, info.height)
            i0, i1, f = linear_index(info.height, tile, a, b)
            rows = p[i0] * (1 - f)[:, None, None] + p[i1] * f[:, None, None]        # (n, tile, K)
            prob = rows[:, col_i0] * (1 - col_f)[None, :, None] + rows[:, col_i1] * col_f[None, :, None]
            valid = valid_mask(read_window(ds, list(bands), Window(0, a, info.width, b - a)), ds.nodata)
            label = label_small[nearest_index(info.height, tile, a, b)][:, col_near]
            label[~valid] = LABEL_NODATA
            out = None
            if opts.write_prob:
                _, out = encode(prob.astype(np.float32), valid, opts.prob_dtype, True, opts.threshold)
            yield a, label, out


def linear_index(n_out: int, n_in: int, first: int = 0, stop: int | None = None):
    """Bilinear source indices and weights for output pixels ``[first, stop)`` (half-pixel centres).

    Returns:
        ``(i0, i1, f)``: output pixel ``j`` is ``(1 - f[j]) * src[i0[j]] + f[j] * src[i1[j]]``.
    """
    stop = n_out if stop is None else stop
    src = (np.arange(first, stop) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def nearest_index(n_out: int, n_in: int, first: int = 0, stop: int | None = None) -> np.ndarray:
    """Nearest source index of output pixels ``[first, stop)`` (half-pixel centres)."""
    stop = n_out if stop is None else stop
    return np.minimum(((np.arange(first, stop) + 0.5) * (n_in / n_out)).astype(int), n_in - 1)
