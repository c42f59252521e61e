"""Train/validation splits of a scene's windows, decided up front from geometry and a seed.

- ``random``: a seeded permutation of the windows; ``round(fraction * n)`` of them go to val
  (at least one of each split when ``n >= 2`` and ``fraction > 0``).
- ``spatial`` (automatic grid): validation is one rectangle of windows anchored at a scene
  corner, its edges on window edges, so it is a strip across the scene (one boundary) or a
  corner block (two boundaries). Every candidate rectangle is scored from 2-D cumulative window
  counts (no loop over candidates): ``val`` = windows inside it, ``train`` = windows clear of
  the bounding box of the validation windows, the rest dropped. Candidates need both splits
  non-empty and ``|val / (val + train) - fraction| <= SHARE_TOLERANCE``; the one with the
  fewest dropped windows plus windows off target (``|val - fraction * (val + train)|``) wins.
  The seed orders the four corners; the first corner with a candidate is used, and none at all
  raises :class:`~geoseg.errors.SceneTooSmallError` naming the alternatives. Finally a dropped
  window that shares no pixel with any validation window is given back to training (random
  windows; on a stride grid the box is exactly the union of the validation windows).
- ``spatial`` with ``block`` (``--block-size``): the scene is cut into square blocks of
  ``block`` pixels drawn (seeded) into validation until the windows inside validation blocks
  reach ``fraction``; a window straddling both kinds of block is dropped. An empty split is
  refused; a share off by more than :data:`SHARE_TOLERANCE` is logged (an explicit choice).
- ``--val-scenes``: whole scenes (file-name globs) are validation, the others training.

A dropped window is ``None``. In every mode no training window shares a pixel with a
validation window, overlapping strides included.
"""

from __future__ import annotations

import fnmatch
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import shapely
from rasterio.windows import Window

from geoseg.errors import DatasetError, InvalidParameterError, SceneTooSmallError

log = logging.getLogger("geoseg.tiling")

#: ``lists``: whole images by the VOC split lists (decided in :func:`geoseg.tiling.plan.voc_inputs`).
SPLITS = ("random", "spatial", "lists")

#: Largest accepted gap between the requested and the planned validation share of a scene.
SHARE_TOLERANCE = 0.1

#: Candidate rectangle edges per axis (random-mode windows have many distinct edges).
MAX_EDGES = 512


def split_windows(windows: Sequence[Window], shape: tuple[int, int], split: str, fraction: float, seed: int,
                  block: int | None = None, scene: str = "scene", held_out: bool | None = None) -> list[str | None]:
    """The split of every window of one scene (``None``: dropped so that no pixel leaks).

    Args:
        windows: windows of the scene (pixels).
        shape: ``(height, width)`` of the (padded) scene in pixels.
        split: ``"random"`` or ``"spatial"``.
        fraction: requested validation share.
        seed: split seed of this scene.
        block: ``--block-size`` in pixels (spatial only; None: automatic grid).
        scene: scene name for error messages.
        held_out: ``--val-scenes`` decision for this scene (None: not used).
    """
    if held_out is not None:
        return ["val" if held_out else "train"] * len(windows)
    if split == "lists":
        raise InvalidParameterError(f"--split lists: scene {scene} is in no split list")
    if split == "spatial":
        if block is not None:
            return block_split(windows, shape[0], shape[1], block, fraction, seed, scene)
        return spatial_split(windows, shape[0], shape[1], fraction, seed, scene)
    return random_split(len(windows), fraction, seed)


def random_split(n: int, fraction: float, seed: int) -> list[str]:
    """``"train"``/``"val"`` for ``n`` windows: ``round(fraction * n)`` val (clipped to ``1..n-1``), seeded."""
    _check_fraction(fraction)
    n_val = int(round(fraction * n))
    if fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng([seed, 0x5117]).permutation(n)
    out = ["train"] * n
    for i in order[:n_val]:
        out[int(i)] = "val"
    return out


def spatial_split(windows: Sequence[Window], height: int, width: int, fraction: float, seed: int,
                  scene: str = "scene") -> list[str | None]:
    """Assign windows to ``"train"``, ``"val"`` or ``None`` with one corner rectangle of validation.

    Args:
        windows: windows of one scene (pixels).
        height, width: scene size in pixels (padded size with ``--pad``).
        fraction: requested share of kept windows in validation (0..1).
        seed: orders the corners the validation rectangle may start from.
        scene: scene name for error messages.

    Raises:
        SceneTooSmallError: no rectangle gives a validation share within :data:`SHARE_TOLERANCE`
            of ``fraction`` with both splits non-empty.
    """
    _check_fraction(fraction)
    n = len(windows)
    if fraction == 0 or n == 0:
        return ["train"] * n
    shares = []
    # The seed orders the corners; the first corner with a feasible rectangle is used.
    for corner in np.random.default_rng([seed, 0x5BA7]).permutation(4):
        r0, c0, r1, c1 = _oriented(windows, height, width, int(corner))
        ys, xs, n_val, n_train = _rectangle_counts(r0, c0, r1, c1)
        kept = n_val + n_train
        share = np.divide(n_val, kept, out=np.zeros(kept.shape), where=kept > 0)
        both = (n_val > 0) & (n_train > 0)
        ok = both & (np.abs(share - fraction) <= SHARE_TOLERANCE + 1e-9)
        if ok.any():
            cost = np.abs(n_val - fraction * kept) + (n - kept)
            a, b = divmod(int(np.argmin(np.where(ok, cost, np.inf))), xs.size)
            is_val = (r1 <= ys[a]) & (c1 <= xs[b])
            is_train = _clear_of(is_val, r0, c0, r1, c1)
            n_v, n_t = int(is_val.sum()), int(is_train.sum())
            if abs(n_v / (n_v + n_t) - fraction) > SHARE_TOLERANCE + 1e-9:  # (random windows only) keep the box
                is_train = (r0 >= r1[is_val].max()) | (c0 >= c1[is_val].max())
            return ["val" if v else ("train" if t else None) for v, t in zip(is_val, is_train)]
        shares.append(share[both])
    raise _too_small(scene, height, width, n, fraction, np.concatenate(shares))


def _rectangle_counts(r0: np.ndarray, c0: np.ndarray, r1: np.ndarray,
                      c1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validation and training window counts of every rectangle ``[0, ys[a]) x [0, xs[b])``.

    Returns ``(ys, xs, n_val, n_train)``: candidate edges (pixels) and ``(len(ys), len(xs))``
    counts. ``n_val``: windows inside the rectangle; ``n_train``: windows not intersecting the
    bounding box of those (every window starts at >= 0, so "intersects" is "starts before both
    box ends"). Two 2-D cumulative sums, no loop over windows or candidates.
    """
    n = r0.size
    ys, xs = _edges(r1), _edges(c1)
    # Cell (a, b): windows whose ends first fit under edge a (rows) and edge b (cols).
    inside = np.zeros((ys.size, xs.size), np.int64)
    np.add.at(inside, (np.searchsorted(ys, r1), np.searchsorted(xs, c1)), 1)
    n_val = inside.cumsum(0).cumsum(1)
    # Bounding box of the validation windows of each candidate: the largest occupied cell indices.
    occ = inside > 0
    ka = np.maximum.accumulate(np.maximum.accumulate(np.where(occ, np.arange(ys.size)[:, None], -1), 0), 1)
    kb = np.maximum.accumulate(np.maximum.accumulate(np.where(occ, np.arange(xs.size)[None, :], -1), 0), 1)
    starts = np.zeros((ys.size + 1, xs.size + 1), np.int64)
    np.add.at(starts, (np.searchsorted(ys, r0, side="right"), np.searchsorted(xs, c0, side="right")), 1)
    hit = np.zeros((ys.size + 1, xs.size + 1), np.int64)
    hit[1:, 1:] = starts[:-1, :-1].cumsum(0).cumsum(1)  # hit[a + 1, b + 1]: starts < ys[a] and < xs[b]
    return ys, xs, n_val, n - hit[ka + 1, kb + 1]


def _clear_of(is_val: np.ndarray, r0: np.ndarray, c0: np.ndarray, r1: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """Windows that are not validation and share no pixel with any validation window.

    Only windows meeting the bounding box of the validation windows are compared with each of
    them (for a stride grid the box is their union, so none is; random windows leave gaps).
    """
    box_r, box_c = r1[is_val].max(), c1[is_val].max()
    clear = ~is_val & ((r0 >= box_r) | (c0 >= box_c))
    near = np.flatnonzero(~is_val & ~clear)
    vr0, vc0, vr1, vc1 = r0[is_val], c0[is_val], r1[is_val], c1[is_val]
    for chunk in np.array_split(near, max(1, near.size * vr0.size // 4_000_000)):
        hit = ((r0[chunk, None] < vr1) & (vr0 < r1[chunk, None]) & (c0[chunk, None] < vc1)
               & (vc0 < c1[chunk, None])).any(axis=1)
        clear[chunk[~hit]] = True
    return clear


def _oriented(windows: Sequence[Window], height: int, width: int, corner: int) -> tuple[np.ndarray, ...]:
    """Window starts and ends (pixels) mirrored so that ``corner`` (0..3) becomes the top left."""
    r0 = np.array([int(w.row_off) for w in windows], np.int64)
    c0 = np.array([int(w.col_off) for w in windows], np.int64)
    r1 = r0 + np.array([int(w.height) for w in windows], np.int64)
    c1 = c0 + np.array([int(w.width) for w in windows], np.int64)
    if corner & 1:
        r0, r1 = height - r1, height - r0
    if corner & 2:
        c0, c1 = width - c1, width - c0
    return r0, c0, r1, c1


def _edges(ends: np.ndarray) -> np.ndarray:
    """Candidate rectangle edges: the distinct window ends, thinned evenly to :data:`MAX_EDGES`."""
    u = np.unique(ends)
    if u.size > MAX_EDGES:
        u = u[np.unique(np.linspace(0, u.size - 1, MAX_EDGES).round().astype(int))]
    return u


def _too_small(scene: str, height: int, width: int, n: int, fraction: float,
               shares: np.ndarray) -> SceneTooSmallError:
    closest = (f"the closest possible share is {100 * shares.flat[np.argmin(np.abs(shares - fraction))]:.0f} %"
               if shares.size else "no grid keeps windows in both splits")
    return SceneTooSmallError(
        f"--split spatial cannot hold out {100 * fraction:.0f} % ± {100 * SHARE_TOLERANCE:.0f} % of the {n} "
        f"window(s) of scene {scene} ({width}x{height} px): {closest}; use --split random, a smaller --size or "
        "--stride, another --val-fraction, or --val-scenes to hold out whole scenes")


def block_span(window: Window, block: int) -> tuple[int, int, int, int]:
    """Inclusive block index ranges ``(r0, r1, c0, c1)`` that a window (pixels) touches."""
    r, c = int(window.row_off), int(window.col_off)
    h, w = int(window.height), int(window.width)
    return max(r, 0) // block, max(r + h - 1, 0) // block, max(c, 0) // block, max(c + w - 1, 0) // block


def block_split(windows: Sequence[Window], height: int, width: int, block: int, fraction: float,
                seed: int, scene: str = "scene") -> list[str | None]:
    """Assign windows to ``"train"``, ``"val"`` or ``None`` (dropped) by whole square blocks.

    Args:
        windows: windows of one scene (pixels).
        height, width: scene size in pixels.
        block: block side in pixels (``--block-size``).
        fraction: target share of windows in validation (0..1).
        seed: seed of the block draw.
        scene: scene name for error messages.

    Raises:
        InvalidParameterError: ``block`` is not positive, or the blocks leave a split empty
            (a share off the request by more than :data:`SHARE_TOLERANCE` is only logged).
    """
    _check_fraction(fraction)
    if block <= 0:
        raise InvalidParameterError(f"--block-size must be > 0 pixels, got {block}")
    n = len(windows)
    if fraction == 0 or n == 0:
        return ["train"] * n
    nbr, nbc = -(-height // block), -(-width // block)
    spans = [block_span(w, block) for w in windows]
    is_val = np.zeros((nbr, nbc), bool)
    target = fraction * n
    order = np.random.default_rng([seed, 0x5BA7]).permutation(nbr * nbc)

    touching: dict[int, list[int]] = {}
    for i, (r0, r1, c0, c1) in enumerate(spans):
        for br in range(r0, r1 + 1):
            for bc in range(c0, c1 + 1):
                touching.setdefault(br * nbc + bc, []).append(i)
    inside = 0
    for k in order:
        is_val[k // nbc, k % nbc] = True
        # Only windows touching the new block can have become entirely validation.
        for i in touching.get(int(k), []):
            r0, r1, c0, c1 = spans[i]
            if is_val[r0:r1 + 1, c0:c1 + 1].all():
                inside += 1
        if inside >= target:
            break
    out: list[str | None] = []
    for s in spans:
        touched = is_val[s[0]:s[1] + 1, s[2]:s[3] + 1]
        out.append("val" if touched.all() else ("train" if not touched.any() else None))
    n_val, n_train = out.count("val"), out.count("train")
    share = n_val / max(1, n_val + n_train)
    if not n_val or not n_train:
        raise InvalidParameterError(
            f"--block-size {block} gives scene {scene} ({width}x{height} px) {n_train} training and {n_val} "
            f"validation window(s); use a smaller --block-size, or leave it out to let --split spatial "
            "choose the grid")
    if abs(share - fraction) > SHARE_TOLERANCE + 1e-9:  # an explicit override: say so, do not refuse
        log.warning("--block-size %d holds out %.0f %% of the kept windows of scene %s (--val-fraction %s); "
                    "leave --block-size out to let --split spatial choose the grid", block, 100 * share, scene,
                    fraction)
    return out


def match_val_scenes(pattern: str, scenes: Sequence[Path]) -> list[bool]:
    """Which scenes ``--val-scenes`` holds out: comma-separated globs on the file name (or stem).

    Raises:
        InvalidParameterError: the pattern matches no scene, or every scene.
    """
    globs = [g.strip() for g in pattern.split(",") if g.strip()]
    if not globs:
        raise InvalidParameterError(f"--val-scenes {pattern!r} holds no file name pattern")
    held = [any(fnmatch.fnmatchcase(p.name, g) or fnmatch.fnmatchcase(p.stem, g) for g in globs) for p in scenes]
    names = ", ".join(p.name for p in scenes[:8]) + (", ..." if len(scenes) > 8 else "")
    if not any(held):
        raise InvalidParameterError(f"--val-scenes {pattern!r} matches none of the scenes ({names})")
    if all(held):
        raise InvalidParameterError(f"--val-scenes {pattern!r} matches every scene ({names}); "
                                    "leave at least one scene for training")
    return held


def check_kept_split(rows: Sequence[dict], want_val: bool, fraction: float | None, dropped: Mapping[str, int],
                     where: Path) -> None:
    """Refuse a dataset whose training, or requested validation, split is empty after the patch filters.

    Args:
        rows: the index rows written (``scene``, ``split``).
        want_val: a validation split was requested (``--val-fraction > 0`` or ``--val-scenes``).
        fraction: requested share to compare each scene's kept share with (a warning when off
            by more than :data:`SHARE_TOLERANCE`); None: not compared.
        dropped: windows dropped per reason (for the message).
        where: dataset folder (for the message).

    Raises:
        DatasetError: a split is empty.
    """
    n = Counter(r["split"] for r in rows)
    filters = ", ".join(f"{dropped[k]} by {k}" for k in ("nodata", "labeled") if dropped.get(k)) or "none"
    for split, wanted in (("train", True), ("val", want_val)):
        if wanted and not n[split]:
            raise DatasetError(
                f"no {'training' if split == 'train' else 'validation'} patch is left in {where} ({n['train']} "
                f"training, {n['val']} validation; windows dropped by the filters: {filters}); loosen --max-nodata "
                "/ --min-labeled, tile more windows (--count, --stride), choose other --val-scenes, or give "
                "--val-fraction 0 to tile without validation")
    if fraction is None:
        return
    per_scene: dict[str, Counter] = {}
    for r in rows:
        per_scene.setdefault(r["scene"], Counter())[r["split"]] += 1
    for scene, c in per_scene.items():
        share = c["val"] / (c["val"] + c["train"])
        if abs(share - fraction) > SHARE_TOLERANCE + 1e-9:
            log.warning("scene %s: the patch filters left %.0f %% of its %d patches in validation "
                        "(--val-fraction %s)", scene, 100 * share, c["val"] + c["train"], fraction)


def split_areas(rows: Sequence[dict]) -> dict[tuple[str, str], shapely.Geometry]:
    """Union of each (scene, split)'s windows in scene pixel coordinates (x = column, y = row).

    Integer window boxes, so the union is exact; map it to the CRS with the scene transform.
    """
    boxes: dict[tuple[str, str], list[tuple[int, int, int, int]]] = {}
    for r in rows:
        c, ro = int(r["col_off"]), int(r["row_off"])
        boxes.setdefault((r["scene"], r["split"]), []).append((c, ro, c + int(r["width"]), ro + int(r["height"])))
    out = {}
    for key, b in boxes.items():
        arr = np.asarray(b, np.float64)
        out[key] = shapely.union_all(shapely.box(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]))
    return out


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction < 1.0:
        raise InvalidParameterError(f"--val-fraction must be in [0, 1), got {fraction}")
