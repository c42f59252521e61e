"""The sample scene's layout: roads, water, buildings and trees as shapely geometries in pixel
coordinates (x = column, y = row), clipped so that no two objects overlap.

Each class is clipped by the classes above it in the priority order
building > road > water > vegetation > background (:data:`~geoseg.apps.sample.classes.PRIORITY`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from geoseg.apps.sample.classes import BUILDING, PRIORITY, ROAD, ROOFS, VEGETATION, WATER


@dataclass(frozen=True)
class Layout:
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


def make_layout(size: int, seed: int) -> Layout:
    """The objects of a ``size`` x ``size`` px scene, a pure function of ``size`` and ``seed``.

    Object counts scale with the scene area (relative to 2048 x 2048 px); object sizes are in
    pixels, so the layout does not depend on the pixel size.
    """
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
    roof = ROOFS[rng.integers(len(ROOFS), size=nb)] * rng.uniform(0.9, 1.08, (nb, 1)).astype(np.float32)
    long_is_w = w >= h
    across = np.where(long_is_w, ang + np.pi / 2, ang)
    axis = np.c_[cx, cy, np.cos(across), np.sin(across)].astype(np.float64)
    gable = (w * h < 1400) & (rng.random(nb) < 0.8)
    length = rng.uniform(4, 18, nb)  # shadow length in pixels (building height x sun angle)
    coords = shapely.get_coordinates(rects).reshape(nb, 5, 2)[:, :4] if nb else np.zeros((0, 4, 2))
    moved = coords + np.stack([-0.75 * length, -0.66 * length], axis=-1)[:, None, :]
    hulls = shapely.convex_hull(shapely.multipoints(np.concatenate([coords, moved], axis=1)))
    shadows = shapely.difference(hulls, rects) if nb else np.array([], dtype=object)
    return Layout(
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

