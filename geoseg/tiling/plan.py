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
from geoseg.io.bands import select_bands
from geoseg.io.classes import ClassMap, load_palette
from geoseg.io.label_source import VECTOR_SUFFIXES, Grid, LabelSource, is_vector
from geoseg.io.label_values import AUTO
from geoseg.io.labels import resolve_labels
from geoseg.io.photos import is_photo, photo_notice
from geoseg.io.raster import RASTER_SUFFIXES, SceneInfo, expand_inputs, open_scene
from geoseg.io.voc import LABELS as VOC_LABELS
from geoseg.io.voc import VocLayout, is_voc_root, read_voc
from geoseg.io.windows import padded_shape, random_windows, stride_windows, window_bounds
from geoseg.tiling.config import TileConfig, label_rules, parse_classes
from geoseg.tiling.split import match_val_scenes, split_windows

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
    bands: tuple[int, ...] = ()  # 1-based bands read (alpha bands left out unless --bands names them)


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
    from geoseg.io.vector import read_vector, reproject_geometries

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
    scene_items, label_items, voc = voc_inputs(cfg)
    scenes = expand_inputs(scene_items)
    label_paths = pair_labels(scene_items, label_items, scenes)
    classes = parse_classes(cfg.classes)
    palette = load_palette(cfg.palette) if cfg.palette else None
    classes = _auto_classes(cfg, label_paths) if _is_auto(cfg.classes) else classes
    rules = label_rules(cfg, _names_by_index(classes or palette))
    warned: set[Path] = set()  # vector files whose skipped/repaired features were reported
    stems = Counter(p.stem for p in scenes)
    dup = [s for s, n in stems.items() if n > 1]
    if dup:
        raise InvalidParameterError(f"scenes share a file name ({', '.join(dup)}); patch ids would collide")
    held_out = _held_out(cfg, scenes, voc)
    plans: list[ScenePlan] = []
    dropped: Counter = Counter()
    first: SceneInfo | None = None
    first_bands: list[int] = []
    for i, (path, lab) in enumerate(zip(scenes, label_paths)):
        need_geo = bool(cfg.aoi) or (lab is not None and is_vector(lab))
        info = open_scene(path, require_georeference=need_geo)
        bands = select_bands(info, cfg.bands)
        if first is None:
            first, first_bands = info, bands
        elif info.dtype != first.dtype:
            raise BandCountError(f"scene {path} is {info.dtype} but {first.path} is {first.dtype}; "
                                 "all scenes of a dataset need the same data type")
        elif len(bands) != len(first_bands):
            raise BandCountError(f"scene {path} has {info.count} band(s) but {first.path} has {first.count}; "
                                 "select the same bands with --bands")
        if not info.has_georeference and not is_photo(info):  # photos: one notice below
            log.warning("scene %s has no CRS/geotransform: patches will carry pixel coordinates only", path)
        shape, wins = _windows_for(cfg, info, i)
        source = resolve_labels(lab, Grid.of(info, shape), rules, palette=palette,
                                warned=warned) if lab is not None else None
        if cfg.balance is not None and source is not None:
            wins = _balanced(cfg, info, shape, source, i)
        if cfg.aoi:
            keep = _aoi_filter(cfg.aoi, info, wins)
            dropped["aoi"] += keep.count(False)
            wins = [w for w, k in zip(wins, keep) if k]
        ids = _window_ids(path.stem, wins)
        splits = split_windows(wins, shape, cfg.split, cfg.val_fraction, cfg.seed + i, block=cfg.block_size,
                               scene=str(path), held_out=held_out[i])
        dropped["split"] += splits.count(None)
        plans.append(ScenePlan(info=info, name=str(path), labels=source, shape=shape, windows=wins, ids=ids,
                               splits=splits, bands=tuple(bands)))
    photo_notice([p.info for p in plans])
    return plans, classes, palette, dropped


def voc_inputs(cfg: TileConfig) -> tuple[Sequence[str], Sequence[str], VocLayout | None]:
    """Scene and label items of a run: a single VOC root (:mod:`geoseg.io.voc`) becomes its photos and
    label PNGs; anything else is taken as given.

    Raises:
        InvalidParameterError: ``--labels`` given with a VOC root (it brings its own), or
            ``--split lists`` without a VOC root holding split lists.
    """
    voc = read_voc(cfg.scenes[0]) if len(cfg.scenes) == 1 and is_voc_root(cfg.scenes[0]) else None
    if voc is not None and cfg.labels:
        raise InvalidParameterError(f"{cfg.scenes[0]} is a VOC root: its labels are {voc.root / VOC_LABELS}; "
                                    "leave out --labels (or give the JPEGImages folder with --labels instead)")
    if cfg.split == "lists" and (voc is None or not voc.has_lists):
        raise InvalidParameterError(
            "--split lists needs a VOC root with ImageSets/Segmentation/train.txt and val.txt, got "
            + ", ".join(cfg.scenes[:3]))
    if voc is None:
        return cfg.scenes, cfg.labels, None
    log.info("VOC root %s: %d photo(s) with labels%s", voc.root, len(voc.images),
             " (split from ImageSets/Segmentation lists)" if cfg.split == "lists" else "")
    return [str(p) for p in voc.images], [str(p) for p in voc.labels], voc


def _held_out(cfg: TileConfig, scenes: Sequence[Path], voc: VocLayout | None) -> list[bool | None]:
    """Per scene: True = validation, False = training, None = split by windows (``--split``)."""
    if cfg.split == "lists" and voc is not None and voc.val is not None:
        if cfg.val_scenes:
            raise InvalidParameterError("give either --split lists or --val-scenes, not both")
        return [p.stem in voc.val for p in scenes]
    return list(match_val_scenes(cfg.val_scenes, scenes)) if cfg.val_scenes else [None] * len(scenes)


def _is_auto(spec: str | None) -> bool:
    return bool(spec) and spec.strip().lower() == AUTO


def _auto_classes(cfg: TileConfig, label_paths: Sequence[Path | None]) -> ClassMap | None:
    """``--classes auto``: background + the sorted distinct texts of the vector attribute; None when
    the labels hold class numbers (the class list then follows the label values)."""
    from geoseg.io.label_vectors import auto_classes

    vectors = [p for p in label_paths if p is not None and is_vector(p)]
    names = auto_classes(vectors, label_rules(cfg, None)) if vectors else None
    return ClassMap.from_names(list(names)) if names else None


def _names_by_index(classes: ClassMap | None) -> tuple[str, ...] | None:
    """Class names by index (gaps as ""), for text class attributes."""
    if classes is None or not len(classes):
        return None
    names = [""] * classes.num_classes
    for c in classes.classes:
        names[c.index] = c.name
    return tuple(names)


def _balanced(cfg: TileConfig, info: SceneInfo, shape: tuple[int, int], source: LabelSource,
              scene_index: int) -> list[Window]:
    """``--balance``: random windows with the requested foreground share (see :mod:`geoseg.tiling.balance`)."""
    from geoseg.tiling.balance import balanced_windows

    accept = (lambda ws: _aoi_filter(cfg.aoi, info, ws)) if cfg.aoi else None
    return balanced_windows(shape[0], shape[1], cfg.size, cfg.count, float(cfg.balance), source,
                            [cfg.seed, scene_index, 0xBA1A], accept=accept, scene=str(info.path))


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


