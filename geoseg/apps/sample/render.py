"""Rendering the sample scene block by block: labels burned from the layout, reflectance from
class spectra modulated by noise fields defined on the global pixel grid.

Noise is a hash of the pixel position and the seed, so a block's pixels do not depend on the
block size or position: blocks agree at their seams and memory stays bounded for any scene size.
"""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize

from geoseg.apps.sample.classes import BACKGROUND, BUILDING, GRASS, SHADOW, SOIL, SPECTRA, TEXTURE
from geoseg.apps.sample.layout import Layout


def hash01(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) float32 from integer coordinates (a murmur3-style finalizer; wraps mod 2**32)."""
    h = (a.astype(np.int64).astype(np.uint32) * np.uint32(0x8DA6B343)) ^ (
        b.astype(np.int64).astype(np.uint32) * np.uint32(0xD8163841)) ^ np.uint32(salt & 0xFFFFFFFF)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def value_noise(rows: np.ndarray, cols: np.ndarray, cell: float, salt: int) -> np.ndarray:
    """Smooth value noise in [0, 1), ``(len(rows), len(cols))``, lattice spacing ``cell`` px."""
    def axis(v):
        x = v / cell
        i = np.floor(x).astype(np.int64)
        f = (x - i).astype(np.float32)
        return i, f * f * (3 - 2 * f)

    iy, fy = axis(rows)
    ix, fx = axis(cols)
    ly = np.arange(iy.min(), iy.max() + 2)
    lx = np.arange(ix.min(), ix.max() + 2)
    lattice = hash01(ly[:, None], lx[None, :], salt)
    jx = ix - lx[0]
    along = lattice[:, jx] * (1 - fx) + lattice[:, jx + 1] * fx  # (lattice rows, W): cheap
    jy = iy - ly[0]
    return along[jy] * (1 - fy)[:, None] + along[jy + 1] * fy[:, None]


def fbm(rows, cols, cells: tuple[float, ...], salt: int) -> np.ndarray:
    """Sum of value-noise octaves (weights halve with the cell size), rescaled to about [0, 1]."""
    total = np.zeros((len(rows), len(cols)), dtype=np.float32)
    norm = 0.0
    for k, cell in enumerate(cells):
        wgt = 0.5 ** k
        total += wgt * value_noise(rows, cols, cell, salt + 7919 * k)
        norm += wgt
    return total / norm


def render_block(layout: Layout, tree: shapely.STRtree, shadow_tree: shapely.STRtree, bldg_tree: shapely.STRtree,
                  r0: int, c0: int, h: int, w: int, bands: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(h, w)`` uint8 and reflectance ``(bands, h, w)`` float32 of one block.

    Args:
        layout: the scene's objects; ``tree``, ``shadow_tree`` and ``bldg_tree`` are STRtrees of
            its ``geoms``, ``shadows`` and ``buildings``.
        r0, c0: row and column of the block's top-left pixel in the scene.
        h, w: block height and width in pixels.
        bands: output band count (see :func:`_extra_bands`).
        seed: noise seed.
    """
    halo = 1  # for the 3x3 optical blur; pixels come from the global grid, so blocks agree at seams
    hh, ww = h + 2 * halo, w + 2 * halo
    tr = Affine.translation(c0 - halo, r0 - halo)
    box = shapely.box(c0 - halo, r0 - halo, c0 + w + halo, r0 + h + halo)
    idx = np.sort(tree.query(box))  # sorted: keep the burn order (later shapes win)
    shapes = list(zip(layout.geoms[idx], layout.class_ids[idx].tolist()))
    labels = rasterize(shapes, out_shape=(hh, ww), transform=tr, fill=BACKGROUND, dtype="uint8") if shapes \
        else np.zeros((hh, ww), np.uint8)
    bidx = bldg_tree.query(box)
    bid = rasterize(list(zip(layout.buildings[bidx], (bidx + 1).tolist())), out_shape=(hh, ww), transform=tr,
                    fill=0, dtype="int32") if len(bidx) else np.zeros((hh, ww), np.int32)
    sidx = shadow_tree.query(box)
    shadow = rasterize(((g, 1) for g in layout.shadows[sidx]), out_shape=(hh, ww), transform=tr, fill=0,
                       dtype="uint8").astype(bool) if len(sidx) else np.zeros((hh, ww), bool)
    shadow &= labels != BUILDING

    rows = np.arange(r0 - halo, r0 + h + halo, dtype=np.float64)
    cols = np.arange(c0 - halo, c0 + w + halo, dtype=np.float64)
    salt = (seed * 1_000_003) & 0xFFFFFFFF
    mix = np.clip((fbm(rows, cols, (400, 200, 100, 50), salt + 11) - 0.3) * 2.5, 0, 1)  # soil <-> grass
    mid = fbm(rows, cols, (32, 16, 8), salt + 23) - 0.5
    fine = 0.6 * value_noise(rows, cols, 3, salt + 37) + 0.4 * value_noise(rows, cols, 2, salt + 41) - 0.5
    grain = hash01(rows.astype(np.int64)[:, None], cols.astype(np.int64)[None, :], salt + 53) - 0.5

    modulation = 1 + 2 * TEXTURE[labels, 0] * mid + 2 * TEXTURE[labels, 1] * fine
    in_bldg = np.nonzero(bid)
    if len(in_bldg[0]):
        b = bid[in_bldg] - 1
        ax = layout.axis[b]
        across = (cols[in_bldg[1]] + 0.5 - ax[:, 0]) * ax[:, 2] + (rows[in_bldg[0]] + 0.5 - ax[:, 1]) * ax[:, 3]
        plane = np.where(layout.gable[b] & (across < 0), 0.8, 1.0).astype(np.float32)
    refl = np.empty((4, hh, ww), dtype=np.float32)
    for k in range(4):
        band = SPECTRA[labels, k]
        band = np.where(labels == BACKGROUND, SOIL[k] + (GRASS[k] - SOIL[k]) * mix, band)
        if len(in_bldg[0]):
            band[in_bldg] = layout.roof[b, k] * plane
        band = band * modulation + 0.012 * grain
        band[shadow] *= SHADOW[k]
        refl[k] = band
    refl = _blur_crop(refl)  # halo == 1
    return labels[halo:-halo, halo:-halo], _extra_bands(refl, bands)


def _blur_crop(x: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur (the optics' softness) of ``(C, H, W)``, minus a 1-px border."""
    y = x[..., :-2, :] + x[..., 2:, :]
    y *= 0.25
    y += 0.5 * x[..., 1:-1, :]
    z = y[..., :-2] + y[..., 2:]
    z *= 0.25
    z += 0.5 * y[..., 1:-1]
    return z


def _extra_bands(refl: np.ndarray, bands: int) -> np.ndarray:
    """``(bands, H, W)`` from red, green, blue, nir: the first ``bands`` of them, or spectral-like mixes."""
    if bands <= 4:
        return refl[:bands]
    r, g, b, n = refl
    extra = [
        r + 0.55 * (n - r),        # red edge: between red and nir
        0.65 * r + 0.3 * n,        # swir1: soil bright, vegetation mid, water near zero
        0.8 * r + 0.1 * n,         # swir2
        0.8 * b + 0.1 * g + 0.02,  # coastal aerosol
    ]
    rng = np.random.default_rng(12345)  # fixed weights: extra bands are the same for every seed
    while len(extra) < bands - 4:
        wts = rng.dirichlet(np.ones(4)).astype(np.float32)
        extra.append(wts[0] * r + wts[1] * g + wts[2] * b + wts[3] * n)
    return np.concatenate([refl, np.stack(extra[: bands - 4])])

