"""Synthetic sample scene: a plausible aerial image, its class raster and its polygons.

``python -m geoseg.sample OUT_DIR`` writes, deterministically from ``--seed``:

- ``scene.tif``: bands red, green, blue, nir (+ red-edge/SWIR-like extras with ``--bands > 4``),
  uint8 or uint16, tiled and deflate-compressed, UTM 33N (EPSG:32633) at 0.5 m, nodata 0.
- ``labels.tif``: uint8 class raster on the same grid, color table, class map in the
  ``GEOSEG_CLASSES`` tag, nodata 255.
- ``labels.gpkg``: one polygon per object (``class_id``, ``class_name``), in the scene CRS.
- ``classes.json``: the class map (:data:`SAMPLE_CLASSES`).

How it is built: the layout (roads, water, buildings, trees) is made of shapely geometries in
pixel coordinates. Each class is clipped by the classes above it in the priority order
building > road > water > vegetation > background, so the polygons do not overlap, and
``labels.tif`` is exactly those polygons rasterized. Pixels are then rendered block by block
from the labels and from noise fields defined on the global pixel grid (a hash of the pixel
position and the seed), so the result does not depend on the block size and memory stays
bounded for any scene size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.features import rasterize
from rasterio.windows import Window

from geoseg import __version__
from geoseg.atomic import atomic_output, check_output
from geoseg.classes import IGNORE_INDEX, ClassInfo, ClassMap, classes_to_tag
from geoseg.cli import add_common_options, make_main
from geoseg.errors import InvalidParameterError
from geoseg.profiles import tiled_profile
from geoseg.raster import gdal_env
from geoseg.vector import write_vector

BACKGROUND, BUILDING, ROAD, WATER, VEGETATION = range(5)

#: The sample's classes and display colors.
SAMPLE_CLASSES = ClassMap((
    ClassInfo(BACKGROUND, "background", (205, 190, 150)),
    ClassInfo(BUILDING, "building", (220, 40, 40)),
    ClassInfo(ROAD, "road", (128, 128, 128)),
    ClassInfo(WATER, "water", (30, 100, 220)),
    ClassInfo(VEGETATION, "vegetation", (40, 160, 60)),
))

#: Burn order, lowest priority first: a class is clipped by every class after it.
PRIORITY = (VEGETATION, WATER, ROAD, BUILDING)

#: Band names; bands past this list are called ``band<i>``.
BAND_NAMES = ("red", "green", "blue", "nir", "red_edge", "swir1", "swir2", "coastal")

#: Top-left corner of the scene in CRS units (UTM 33N: near Vienna).
DEFAULT_ORIGIN = (600000.0, 5340000.0)

#: Reflectance (0..1) of each class in red, green, blue, nir; background mixes soil and grass.
_SOIL = np.array([0.42, 0.36, 0.28, 0.38], dtype=np.float32)
_GRASS = np.array([0.21, 0.29, 0.15, 0.47], dtype=np.float32)
_SPECTRA = np.array([
    _SOIL,                                  # background (replaced by the soil/grass mix)
    [0.55, 0.53, 0.52, 0.50],               # building (replaced per roof)
    [0.30, 0.30, 0.31, 0.26],               # road: grey asphalt
    [0.05, 0.08, 0.10, 0.025],              # water: dark, little NIR
    [0.08, 0.17, 0.07, 0.55],               # vegetation: high NIR
], dtype=np.float32)
#: Texture amplitude per class: (medium scale 8-32 px, fine scale 2-3 px).
_TEXTURE = np.array([
    [0.22, 0.08],  # background
    [0.03, 0.05],  # building
    [0.05, 0.03],  # road
    [0.08, 0.02],  # water
    [0.30, 0.45],  # vegetation: crowns
], dtype=np.float32)
#: Roof reflectances (r, g, b, nir): light concrete, red tiles, dark grey, white, metal.
_ROOFS = np.array([
    [0.62, 0.60, 0.58, 0.55],
    [0.58, 0.30, 0.22, 0.45],
    [0.38, 0.38, 0.40, 0.36],
    [0.80, 0.80, 0.80, 0.72],
    [0.50, 0.55, 0.58, 0.50],
], dtype=np.float32)
#: Multiplier in shadow (blue scatters into shadows, so it dims least).
_SHADOW = np.array([0.42, 0.45, 0.55, 0.40], dtype=np.float32)
#: DN per unit reflectance.
_GAIN = {"uint8": 255.0 * 1.1, "uint16": 10000.0}


@dataclass(frozen=True)
class SampleFiles:
    """Paths written by :func:`make_sample`."""

    scene: Path
    labels: Path
    polygons: Path
    classes: Path


@dataclass(frozen=True)
class _Layout:
    """The scene's objects in pixel coordinates (x = column, y = row).

    Attributes:
        geoms: final (clipped, non-overlapping) object polygons, in burn order.
        class_ids: class of each polygon.
        buildings: building rectangles (also in ``geoms``), for roof rendering.
        roof: per building (N, 4) roof reflectance.
        axis: per building (N, 4) center x, center y, unit vector across the ridge (x, y).
        gable: per building, True when the roof has two planes.
        shadows: cast shadow polygons (not a class: they darken what they fall on).
    """

    geoms: np.ndarray
    class_ids: np.ndarray
    buildings: np.ndarray
    roof: np.ndarray
    axis: np.ndarray
    gable: np.ndarray
    shadows: np.ndarray


def make_sample(out_dir: str | os.PathLike, size: int = 2048, bands: int = 4, dtype: str = "uint8", seed: int = 0,
                crs: str = "EPSG:32633", pixel_size: float = 0.5, overwrite: bool = False, *,
                block_size: int = 1024) -> SampleFiles:
    """Write the sample scene, its labels (raster and polygons) and its class map.

    Args:
        out_dir: output folder (created).
        size: scene width and height in pixels.
        bands: number of bands (1..; 4 = red, green, blue, nir; more adds plausible extra bands).
        dtype: ``"uint8"`` (0..255) or ``"uint16"`` (reflectance x 10000).
        seed: everything is a function of the seed (and the size).
        crs: a projected CRS; the scene's top-left corner is at :data:`DEFAULT_ORIGIN` in it.
        pixel_size: pixel size in CRS units (meters). Object sizes are in pixels, so the scene
            looks the same whatever the pixel size.
        overwrite: replace existing outputs.
        block_size: pixels per side of the blocks rendered and written at a time (memory bound).

    Returns:
        The paths of the four files.

    Raises:
        InvalidParameterError: bad size, bands, dtype, pixel size or CRS.
        OutputExistsError: an output exists and ``overwrite`` is False.
    """
    if size < 64:
        raise InvalidParameterError(f"--size must be >= 64 px, got {size}")
    if bands < 1:
        raise InvalidParameterError(f"--bands must be >= 1, got {bands}")
    if dtype not in _GAIN:
        raise InvalidParameterError(f"--dtype must be one of {', '.join(_GAIN)}, got {dtype!r}")
    if not pixel_size > 0:
        raise InvalidParameterError(f"--pixel-size must be > 0, got {pixel_size}")
    try:
        crs_obj = CRS.from_user_input(crs)
    except Exception:  # rasterio raises CRSError, pyproj-like messages; one line is enough
        raise InvalidParameterError(f"--crs: not a CRS: {crs!r}") from None
    if not crs_obj.is_projected:
        raise InvalidParameterError(f"--crs must be a projected CRS (meters), got {crs}")
    out = Path(out_dir)
    files = SampleFiles(out / "scene.tif", out / "labels.tif", out / "labels.gpkg", out / "classes.json")
    for p in (files.scene, files.labels, files.polygons, files.classes):
        check_output(p, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)

    transform = Affine(pixel_size, 0.0, DEFAULT_ORIGIN[0], 0.0, -pixel_size, DEFAULT_ORIGIN[1])
    layout = _make_layout(size, seed)
    _write_rasters(files, layout, size, bands, dtype, seed, crs_obj, transform, block_size)
    crs_geoms = shapely.transform(layout.geoms, lambda xy: np.c_[transform * (xy[:, 0], xy[:, 1])])
    names = np.array([SAMPLE_CLASSES.names[c] for c in layout.class_ids], dtype=object)
    write_vector(files.polygons, crs_geoms, {"class_id": layout.class_ids.astype(np.int32), "class_name": names},
                 crs=crs_obj, layer="labels", geometry_type="Polygon")
    with atomic_output(files.classes) as tmp:
        SAMPLE_CLASSES.save(tmp)
    return files


# --------------------------------------------------------------------------------------------
# Layout: shapely geometries in pixel coordinates


def _rects(cx, cy, w, h, angle) -> np.ndarray:
    """Rotated rectangles (w along the angle, h across it) as a polygon array."""
    c, s = np.cos(angle), np.sin(angle)
    dx = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])[None, :]
    dy = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])[None, :]
    u, v = dx * w[:, None], dy * h[:, None]
    xs = cx[:, None] + u * c[:, None] - v * s[:, None]
    ys = cy[:, None] + u * s[:, None] + v * c[:, None]
    return shapely.polygons(np.stack([xs, ys], axis=-1))


def _blob(rng: np.random.Generator, cx: float, cy: float, radius: float, n: int = 72) -> shapely.Polygon:
    """A smooth irregular blob: a circle with a few random low harmonics on its radius."""
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 6):
        r += rng.uniform(0.04, 0.22) / (k - 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return shapely.Polygon(np.c_[cx + radius * r * np.cos(theta), cy + radius * r * np.sin(theta)])


def _wavy_line(rng: np.random.Generator, size: int, horizontal: bool, pos: float, amp: float,
               step: float = 128.0) -> shapely.LineString:
    """A line across the scene at ``pos`` with a gentle slope and a smooth meander of ``amp`` px."""
    t = np.arange(-step, size + 2 * step, step)
    slope = rng.uniform(-0.08, 0.08)
    phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(0.8, 2.0) * size
    off = pos + slope * (t - size / 2) + amp * np.sin(2 * np.pi * t / period + phase)
    return shapely.LineString(np.c_[t, off] if horizontal else np.c_[off, t])


def _make_layout(size: int, seed: int) -> _Layout:
    rng = np.random.default_rng([seed, 0x5A3])
    area = (size / 2048.0) ** 2  # object counts scale with the scene area
    scene_box = shapely.box(0, 0, size, size)

    # Roads: a loose grid of main roads across the scene, side streets branching off them.
    main: list[tuple[shapely.LineString, float]] = []
    n_main = max(1, round(size / 850))
    for horizontal in (True, False):
        gaps = size / n_main
        for i in range(n_main):
            pos = (i + rng.uniform(0.3, 0.7)) * gaps
            main.append((_wavy_line(rng, size, horizontal, pos, rng.uniform(0, 25)), rng.uniform(7, 10)))
    side: list[tuple[shapely.LineString, float]] = []
    for _ in range(max(2, round(7 * area))):
        line, _w = main[rng.integers(len(main))]
        d = rng.uniform(0.05, 0.95) * line.length
        p, q = line.interpolate(d), line.interpolate(min(d + 2.0, line.length))
        tx, ty = (q.x - p.x), (q.y - p.y)
        norm = math.hypot(tx, ty) or 1.0
        nx, ny = -ty / norm * rng.choice([-1, 1]), tx / norm
        length = rng.uniform(150, 450)
        end = (p.x + nx * length, p.y + ny * length)
        side.append((shapely.LineString([(p.x, p.y), end]), rng.uniform(5, 6.5)))
    roads_all = main + side
    road_lines = np.array([ln for ln, _ in roads_all], dtype=object)
    road_half = np.array([w for _, w in roads_all])
    roads = shapely.union_all(shapely.buffer(road_lines, road_half, quad_segs=4, cap_style="flat"))

    # Water: smooth lakes, sometimes a river.
    lakes = [_blob(rng, rng.uniform(0, size), rng.uniform(0, size), rng.uniform(50, 170))
             for _ in range(max(1, rng.poisson(1.6 * area)))]
    if rng.random() < 0.5 and size >= 512:
        river = _wavy_line(rng, size, bool(rng.random() < 0.5), rng.uniform(0.2, 0.8) * size, rng.uniform(40, 120))
        lakes.append(shapely.buffer(river, rng.uniform(14, 28), quad_segs=8))
    water = shapely.union_all(lakes)

    # Buildings: rows of houses along the roads, plus a few large scattered ones.
    cx, cy, w, h, ang = [], [], [], [], []
    for line, half in roads_all:
        for d in np.arange(rng.uniform(0, 30), line.length, rng.uniform(32, 55)):
            p, q = line.interpolate(d), line.interpolate(min(d + 2.0, line.length))
            tx, ty = q.x - p.x, q.y - p.y
            norm = math.hypot(tx, ty) or 1.0
            tx, ty = tx / norm, ty / norm
            for sgn in (-1, 1):
                if rng.random() > 0.7:
                    continue
                bw, bd = rng.uniform(16, 40), rng.uniform(16, 34)
                off = half + rng.uniform(6, 18) + bd / 2
                cx.append(p.x - ty * sgn * off)
                cy.append(p.y + tx * sgn * off)
                w.append(bw)
                h.append(bd)
                ang.append(math.atan2(ty, tx) + rng.normal(0, 0.03))
    n_big = max(1, round(10 * area))
    cx += list(rng.uniform(0, size, n_big))
    cy += list(rng.uniform(0, size, n_big))
    w += list(rng.uniform(40, 100, n_big))
    h += list(rng.uniform(30, 60, n_big))
    ang += list(rng.choice([0.0, np.pi / 2], n_big) + rng.normal(0, 0.05, n_big))
    cx, cy, w, h, ang = map(np.asarray, (cx, cy, w, h, ang))
    rects = _rects(cx, cy, w, h, ang)
    keep = ~shapely.intersects(shapely.buffer(rects, 3), roads) & ~shapely.intersects(shapely.buffer(rects, 4), water)
    keep &= shapely.intersects(rects, scene_box)
    keep = _non_overlapping(rects, keep, gap=3.0)
    rects, cx, cy, w, h, ang = rects[keep], cx[keep], cy[keep], w[keep], h[keep], ang[keep]

    # Vegetation: tree clusters (woods), street trees and scattered single trees.
    pts_x, pts_y, radii, group = [], [], [], []
    for k in range(max(1, round(6 * area))):
        ccx, ccy, rc = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(50, 200)
        n = int(min(160, (rc / 10) ** 2 * 0.6)) + 5
        rr = rc * np.sqrt(rng.random(n))
        th = rng.uniform(0, 2 * np.pi, n)
        pts_x += list(ccx + rr * np.cos(th))
        pts_y += list(ccy + rr * np.sin(th))
        radii += list(rng.uniform(7, 14, n))
        group += [k] * n
    for line, half in roads_all:
        if rng.random() < 0.35:
            ds = np.arange(rng.uniform(0, 20), line.length, rng.uniform(18, 30))
            pts = shapely.line_interpolate_point(line, ds)
            pts2 = shapely.line_interpolate_point(line, np.minimum(ds + 2.0, line.length))
            tx, ty = shapely.get_x(pts2) - shapely.get_x(pts), shapely.get_y(pts2) - shapely.get_y(pts)
            norm = np.hypot(tx, ty) + 1e-9
            off = half + 3.0
            sgn = rng.choice([-1, 1])
            pts_x += list(shapely.get_x(pts) - ty / norm * sgn * off)
            pts_y += list(shapely.get_y(pts) + tx / norm * sgn * off)
            radii += list(rng.uniform(4, 7, len(ds)))
            group += [-1] * len(ds)
    n_single = round(70 * area)
    pts_x += list(rng.uniform(0, size, n_single))
    pts_y += list(rng.uniform(0, size, n_single))
    radii += list(rng.uniform(4, 9, n_single))
    group += [-1] * n_single
    crowns = shapely.buffer(shapely.points(np.asarray(pts_x), np.asarray(pts_y)), np.asarray(radii), quad_segs=4)
    group = np.asarray(group)
    # Woods first (small unions), then everything: far cheaper than one union of all crowns.
    woods = [shapely.union_all(crowns[group == k]) for k in np.unique(group[group >= 0])]
    vegetation = shapely.get_parts(shapely.union_all(np.concatenate([woods, crowns[group < 0]])))

    # Clip each class by the classes above it, locally (per object, against the objects it
    # meets); one feature per connected part. Buildings already avoid roads and water.
    box_parts = lambda g: shapely.get_parts(shapely.intersection(g, scene_box))  # noqa: E731
    road_pieces = shapely.buffer(road_lines, road_half, quad_segs=4, cap_style="flat")
    per_class = {
        BUILDING: box_parts(rects),
        ROAD: box_parts(roads),
        WATER: box_parts(_clip(shapely.get_parts(water), road_pieces)),
        VEGETATION: box_parts(_clip(vegetation, np.concatenate([rects, road_pieces, shapely.get_parts(water)]))),
    }
    geoms, ids = [], []
    for cls in PRIORITY:
        parts = shapely.get_parts(per_class[cls])
        parts = parts[(shapely.get_type_id(parts) == 3) & (shapely.area(parts) >= 4.0)]
        geoms.append(parts)
        ids.append(np.full(len(parts), cls, dtype=np.uint8))

    # Roofs: a color per building, gabled when small; shadows cast to the north-west.
    nb = len(rects)
    roof = _ROOFS[rng.integers(len(_ROOFS), size=nb)] * rng.uniform(0.9, 1.08, (nb, 1)).astype(np.float32)
    long_is_w = w >= h
    across = np.where(long_is_w, ang + np.pi / 2, ang)
    axis = np.c_[cx, cy, np.cos(across), np.sin(across)].astype(np.float64)
    gable = (w * h < 1400) & (rng.random(nb) < 0.8)
    length = rng.uniform(4, 18, nb)  # shadow length in pixels (building height x sun angle)
    coords = shapely.get_coordinates(rects).reshape(nb, 5, 2)[:, :4] if nb else np.zeros((0, 4, 2))
    moved = coords + np.stack([-0.75 * length, -0.66 * length], axis=-1)[:, None, :]
    hulls = shapely.convex_hull(shapely.multipoints(np.concatenate([coords, moved], axis=1)))
    shadows = shapely.difference(hulls, rects) if nb else np.array([], dtype=object)
    return _Layout(
        geoms=np.concatenate(geoms), class_ids=np.concatenate(ids),
        buildings=rects, roof=roof, axis=axis, gable=gable, shadows=np.asarray(shadows, dtype=object),
    )


def _clip(parts: np.ndarray, cutters: np.ndarray) -> np.ndarray:
    """``parts`` minus the ``cutters`` that intersect each of them (a local difference)."""
    parts = np.asarray(parts, dtype=object).copy()
    if len(parts) == 0 or len(cutters) == 0:
        return parts
    pi, ci = shapely.STRtree(cutters).query(parts, predicate="intersects")
    order = np.argsort(pi, kind="stable")
    pi, ci = pi[order], ci[order]
    starts = np.flatnonzero(np.r_[True, pi[1:] != pi[:-1]]) if len(pi) else np.array([], int)
    for s0, s1 in zip(starts, np.r_[starts[1:], len(pi)]):
        parts[pi[s0]] = shapely.difference(parts[pi[s0]], shapely.union_all(cutters[ci[s0:s1]]))
    return parts


def _non_overlapping(rects: np.ndarray, keep: np.ndarray, gap: float) -> np.ndarray:
    """Greedy: keep a rectangle unless it comes within ``gap`` px of an earlier kept one."""
    keep = keep.copy()
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        return keep
    grown = shapely.buffer(rects[idx], gap / 2, quad_segs=1)
    tree = shapely.STRtree(grown)
    a, b = tree.query(grown, predicate="intersects")
    pairs = (a < b)
    conflicts: dict[int, list[int]] = {}
    for i, j in zip(a[pairs].tolist(), b[pairs].tolist()):
        conflicts.setdefault(j, []).append(i)
    alive = np.ones(len(idx), dtype=bool)
    for j in range(len(idx)):
        if any(alive[i] for i in conflicts.get(j, ())):
            alive[j] = False
    keep[idx[~alive]] = False
    return keep


# --------------------------------------------------------------------------------------------
# Rendering: noise fields on the global pixel grid, block by block


def _hash01(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) float32 from integer coordinates (a murmur3-style finalizer; wraps mod 2**32)."""
    h = (a.astype(np.int64).astype(np.uint32) * np.uint32(0x8DA6B343)) ^ (
        b.astype(np.int64).astype(np.uint32) * np.uint32(0xD8163841)) ^ np.uint32(salt & 0xFFFFFFFF)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def _value_noise(rows: np.ndarray, cols: np.ndarray, cell: float, salt: int) -> np.ndarray:
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
    lattice = _hash01(ly[:, None], lx[None, :], salt)
    jx = ix - lx[0]
    along = lattice[:, jx] * (1 - fx) + lattice[:, jx + 1] * fx  # (lattice rows, W): cheap
    jy = iy - ly[0]
    return along[jy] * (1 - fy)[:, None] + along[jy + 1] * fy[:, None]


def _fbm(rows, cols, cells: tuple[float, ...], salt: int) -> np.ndarray:
    """Sum of value-noise octaves (weights halve with the cell size), rescaled to about [0, 1]."""
    total = np.zeros((len(rows), len(cols)), dtype=np.float32)
    norm = 0.0
    for k, cell in enumerate(cells):
        wgt = 0.5 ** k
        total += wgt * _value_noise(rows, cols, cell, salt + 7919 * k)
        norm += wgt
    return total / norm


def _render_block(layout: _Layout, tree: shapely.STRtree, shadow_tree: shapely.STRtree, bldg_tree: shapely.STRtree,
                  r0: int, c0: int, h: int, w: int, bands: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(h, w)`` uint8 and reflectance ``(bands, h, w)`` float32 of one block."""
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
    mix = np.clip((_fbm(rows, cols, (400, 200, 100, 50), salt + 11) - 0.3) * 2.5, 0, 1)  # soil <-> grass
    mid = _fbm(rows, cols, (32, 16, 8), salt + 23) - 0.5
    fine = 0.6 * _value_noise(rows, cols, 3, salt + 37) + 0.4 * _value_noise(rows, cols, 2, salt + 41) - 0.5
    grain = _hash01(rows.astype(np.int64)[:, None], cols.astype(np.int64)[None, :], salt + 53) - 0.5

    modulation = 1 + 2 * _TEXTURE[labels, 0] * mid + 2 * _TEXTURE[labels, 1] * fine
    in_bldg = np.nonzero(bid)
    if len(in_bldg[0]):
        b = bid[in_bldg] - 1
        ax = layout.axis[b]
        across = (cols[in_bldg[1]] + 0.5 - ax[:, 0]) * ax[:, 2] + (rows[in_bldg[0]] + 0.5 - ax[:, 1]) * ax[:, 3]
        plane = np.where(layout.gable[b] & (across < 0), 0.8, 1.0).astype(np.float32)
    refl = np.empty((4, hh, ww), dtype=np.float32)
    for k in range(4):
        band = _SPECTRA[labels, k]
        band = np.where(labels == BACKGROUND, _SOIL[k] + (_GRASS[k] - _SOIL[k]) * mix, band)
        if len(in_bldg[0]):
            band[in_bldg] = layout.roof[b, k] * plane
        band = band * modulation + 0.012 * grain
        band[shadow] *= _SHADOW[k]
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


def _write_rasters(files: SampleFiles, layout: _Layout, size: int, bands: int, dtype: str, seed: int,
                   crs: CRS, transform: Affine, block_size: int) -> None:
    tree = shapely.STRtree(layout.geoms)
    shadow_tree = shapely.STRtree(layout.shadows)
    bldg_tree = shapely.STRtree(layout.buildings)
    img_prof = tiled_profile(size, size, bands, dtype, crs, transform, nodata=0, compress="deflate")
    if bands >= 3:
        img_prof["photometric"] = "RGB"  # QGIS shows true color by default; band 4+ are extra samples
    lab_prof = tiled_profile(size, size, 1, "uint8", crs, transform, nodata=IGNORE_INDEX, compress="deflate")
    gain, top = _GAIN[dtype], np.iinfo(dtype).max
    names = [BAND_NAMES[i] if i < len(BAND_NAMES) else f"band{i + 1}" for i in range(bands)]
    params = {"seed": seed, "size": size, "bands": bands, "dtype": dtype, "geoseg_version": __version__}
    block = max(64, int(block_size))
    with gdal_env(num_threads="ALL_CPUS"), atomic_output(files.scene) as tmp_img, \
            atomic_output(files.labels) as tmp_lab:
        with rasterio.open(tmp_img, "w", **img_prof) as img, rasterio.open(tmp_lab, "w", **lab_prof) as lab:
            for r0 in range(0, size, block):
                for c0 in range(0, size, block):
                    h, w = min(block, size - r0), min(block, size - c0)
                    labels, refl = _render_block(layout, tree, shadow_tree, bldg_tree, r0, c0, h, w, bands, seed)
                    dn = np.clip(np.rint(refl * gain), 1, top).astype(dtype)  # 0 is nodata
                    win = Window(c0, r0, w, h)
                    img.write(dn, window=win)
                    lab.write(labels, 1, window=win)
            img.descriptions = tuple(names)
            if bands >= 3:
                img.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue] + \
                    [ColorInterp.undefined] * (bands - 3)
            img.update_tags(GEOSEG_SAMPLE=json.dumps(params))
            lab.write_colormap(1, SAMPLE_CLASSES.colormap())
            lab.set_band_description(1, "class")
            lab.update_tags(GEOSEG_CLASSES=classes_to_tag(SAMPLE_CLASSES),
                            CLASS_NAMES=",".join(SAMPLE_CLASSES.names), GEOSEG_SAMPLE=json.dumps(params))


# --------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="geoseg sample",
        description="Write the synthetic sample scene (scene.tif), its class raster (labels.tif), "
                    "its polygons (labels.gpkg) and class map (classes.json) into OUT_DIR.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder")
    p.add_argument("--size", type=int, default=2048, help="width and height in pixels (default 2048)")
    p.add_argument("--bands", type=int, default=4, help="bands: 4 = red, green, blue, nir; more adds extras")
    p.add_argument("--dtype", choices=sorted(_GAIN), default="uint8", help="pixel type (default uint8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--crs", default="EPSG:32633", help="projected CRS (default EPSG:32633, UTM 33N)")
    p.add_argument("--pixel-size", type=float, default=0.5, help="pixel size in CRS units (default 0.5 m)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_common_options(p, out=False, resume=False)
    return p


def run(args: argparse.Namespace) -> int:
    files = make_sample(args.out_dir, size=args.size, bands=args.bands, dtype=args.dtype, seed=args.seed,
                        crs=args.crs, pixel_size=args.pixel_size, overwrite=args.overwrite)
    if not args.quiet:
        for p in (files.scene, files.labels, files.polygons, files.classes):
            print(p)
    return 0


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
