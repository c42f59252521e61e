"""Planning a tiling run in the main process: pair scenes with labels, validate every input and
decide every window, patch id and split from the headers, the seed and pure window maths (no
pixel is read, so the plan does not depend on the number of workers)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from rasterio.windows import Window

from geoseg.errors import BandCountError, InvalidParameterError, NoOverlapError, SceneTooSmallError
from geoseg.io.classes import ClassMap, load_palette
from geoseg.io.labels import VECTOR_SUFFIXES, LabelSource, is_vector, resolve_labels
from geoseg.io.raster import RASTER_SUFFIXES, SceneInfo, check_bands, expand_inputs, open_scene
from geoseg.io.windows import padded_shape, random_windows, stride_windows, window_bounds
from geoseg.tiling.config import TileConfig, parse_classes
from geoseg.tiling.split import BLOCK_WINDOWS, random_split, spatial_split

log = logging.getLogger("geoseg.tiling")


@dataclass
class ScenePlan:
    info: SceneInfo
    name: str
    labels: LabelSource | None
    shape: tuple[int, int]
    windows: list[Window]
    ids: list[str]
    splits: list[str | None]


def pair_labels(scene_items: Sequence[str], label_items: Sequence[str], scenes: Sequence[Path]) -> list[Path | None]:
    """One label path per scene: same order, by file stem for folders/globs, or one vector for all.

    Raises:
        InvalidParameterError: counts differ, or scenes have no label with their stem.
    """
    if not label_items:
        return [None] * len(scenes)
    labels = expand_inputs(label_items, suffixes=(*RASTER_SUFFIXES, *VECTOR_SUFFIXES))
    if len(labels) == 1 and len(scenes) > 1 and is_vector(labels[0]):
        return [labels[0]] * len(scenes)

    def patterned(items: Sequence[str]) -> bool:
        return any(Path(s).is_dir() or any(ch in str(s) for ch in "*?[") for s in items)

    if patterned(scene_items) or patterned(label_items):
        by_stem: dict[str, Path] = {}
        for p in labels:
            by_stem.setdefault(p.stem, p)
        missing = [s for s in scenes if s.stem not in by_stem]
        if missing:
            stems = {s.stem for s in scenes}
            extra = [p for p in labels if p.stem not in stems]
            raise InvalidParameterError(
                "scenes and labels do not pair by file stem: scenes without labels: "
                + ", ".join(str(s) for s in missing[:10])
                + ("; labels without scene: " + ", ".join(str(p) for p in extra[:10]) if extra else ""))
        return [by_stem[s.stem] for s in scenes]
    if len(labels) != len(scenes):
        raise InvalidParameterError(f"{len(scenes)} scene(s) but {len(labels)} label file(s); give one --labels "
                                    "entry per scene in the same order, or folders paired by file stem")
    return list(labels)


def _windows_for(cfg: TileConfig, info: SceneInfo, scene_index: int) -> tuple[tuple[int, int], list[Window]]:
    h, w = info.shape
    if h < cfg.size or w < cfg.size:
        if not cfg.pad:
            raise SceneTooSmallError(f"scene {info.path} is {w}x{h} px, smaller than --size {cfg.size} "
                                     "(use --pad to pad it with nodata)")
        h, w = padded_shape(h, w, cfg.size)
    if cfg.mode == "stride":
        return (h, w), stride_windows(h, w, cfg.size, cfg.effective_stride, cfg.allow_gaps)
    rng = np.random.default_rng([cfg.seed, scene_index])
    return (h, w), random_windows(h, w, cfg.size, cfg.count, rng)


def _aoi_filter(aoi_path: str, info: SceneInfo, windows: list[Window]) -> list[bool]:
    from geoseg.io.labels import reproject_geometries
    from geoseg.io.vector import read_vector

    if info.crs is None:
        from geoseg.errors import MissingGeoreferenceError

        raise MissingGeoreferenceError(f"scene {info.path} has no CRS; --aoi {aoi_path} cannot be placed on it")
    data = read_vector(aoi_path)
    geoms = data.geometries[~(shapely.is_missing(data.geometries) | shapely.is_empty(data.geometries))]
    if data.crs is not None and data.crs != info.crs and len(geoms):
        geoms = reproject_geometries(geoms, data.crs, info.crs)
    area = shapely.union_all(geoms)
    scene_box = shapely.box(*info.bounds)
    if area.is_empty or not area.intersects(scene_box):
        raise NoOverlapError(f"--aoi {aoi_path} does not overlap scene {info.path} (scene bounds "
                             f"{tuple(round(v, 3) for v in info.bounds)})")
    shapely.prepare(area)
    boxes = shapely.box(*np.array([window_bounds(wi, info.transform) for wi in windows]).T) if windows else []
    return list(shapely.covers(area, boxes)) if windows else []


def plan_scenes(cfg: TileConfig) -> tuple[list[ScenePlan], ClassMap | None, ClassMap | None, Counter]:
    """Open and validate every input and decide every window, id and split (no pixel read)."""
    scenes = expand_inputs(cfg.scenes)
    label_paths = pair_labels(cfg.scenes, cfg.labels, scenes)
    classes = parse_classes(cfg.classes)
    palette = load_palette(cfg.palette) if cfg.palette else None
    stems = Counter(p.stem for p in scenes)
    dup = [s for s, n in stems.items() if n > 1]
    if dup:
        raise InvalidParameterError(f"scenes share a file name ({', '.join(dup)}); patch ids would collide")
    plans: list[ScenePlan] = []
    dropped: Counter = Counter()
    first: SceneInfo | None = None
    for i, (path, lab) in enumerate(zip(scenes, label_paths)):
        need_geo = bool(cfg.aoi) or (lab is not None and is_vector(lab))
        info = open_scene(path, require_georeference=need_geo)
        bands = check_bands(info, cfg.bands)
        if first is None:
            first = info
        elif info.dtype != first.dtype:
            raise BandCountError(f"scene {path} is {info.dtype} but {first.path} is {first.dtype}; "
                                 "all scenes of a dataset need the same data type")
        elif len(bands) != len(check_bands(first, cfg.bands)):
            raise BandCountError(f"scene {path} has {info.count} band(s) but {first.path} has {first.count}; "
                                 "select the same bands with --bands")
        if not info.has_georeference:
            log.warning("scene %s has no CRS/geotransform: patches will carry pixel coordinates only", path)
        shape, wins = _windows_for(cfg, info, i)
        source = resolve_labels(lab, info, shape, palette=palette, label_field=cfg.label_field,
                                burn_value=cfg.burn_value) if lab is not None else None
        if cfg.aoi:
            keep = _aoi_filter(cfg.aoi, info, wins)
            dropped["aoi"] += keep.count(False)
            wins = [w for w, k in zip(wins, keep) if k]
        ids = _window_ids(path.stem, wins)
        if cfg.split == "spatial":
            block = cfg.block_size or BLOCK_WINDOWS * cfg.size
            splits = spatial_split(wins, shape[0], shape[1], block, cfg.val_fraction, cfg.seed + i)
        else:
            splits = random_split(len(wins), cfg.val_fraction, cfg.seed + i)
        dropped["split"] += splits.count(None)
        plans.append(ScenePlan(info=info, name=str(path), labels=source, shape=shape, windows=wins, ids=ids,
                                splits=splits))
    return plans, classes, palette, dropped


def _window_ids(stem: str, windows: Sequence[Window]) -> list[str]:
    seen: Counter = Counter()
    out = []
    for w in windows:
        base = f"{stem}_r{int(w.row_off)}_c{int(w.col_off)}"
        n = seen[base]
        seen[base] += 1
        out.append(base if n == 0 else f"{base}_{n}")
    return out


def crs_text(info: SceneInfo) -> str:
    if info.crs is None:
        return ""
    epsg = info.crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else info.crs.to_wkt()


