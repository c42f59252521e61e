"""Vector label sources: which CRS their coordinates are in, which features count, and their classes.

Rules (used through :func:`geoseg.io.labels.resolve_labels` and :class:`~geoseg.io.labels.LabelReader`):

- coordinates are in ``--labels-crs`` when given, else in the file's CRS, else (no CRS) in the
  grid's CRS (with a warning). A file whose coordinates lie far outside lon/lat ranges while
  read as lon/lat (a GeoJSON without a ``crs`` member is read as EPSG:4326) is refused with a
  hint to ``--labels-crs``;
- features with a null class attribute are skipped; invalid (self-intersecting) polygons are
  repaired with ``shapely.make_valid`` keeping their polygonal parts (skipped when none is
  left). Both are counted in one warning per file;
- attribute values become class indices by :func:`geoseg.io.label_values.attribute_to_index`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.errors import CRSError

from geoseg.errors import (
    CRSMismatchError,
    InvalidParameterError,
    MissingGeoreferenceError,
    NoOverlapError,
    VectorLabelError,
)
from geoseg.io.label_source import Grid, LabelSource, fmt_bounds
from geoseg.io.label_values import (
    LabelRules,
    attribute_to_index,
    auto_class_names,
    choose_field,
    distinct_texts,
    is_text,
)
from geoseg.io.raster import crs_name
from geoseg.io.vector import VectorHeader, polygonal_parts, read_header, read_vector, reproject_geometries

log = logging.getLogger("geoseg.labels")

#: How far outside [-180, 180] x [-90, 90] coordinates may lie before lon/lat is refused (degrees).
LONLAT_SLACK = 1.0


@dataclass(frozen=True)
class VectorFeatures:
    """Features of a vector source in the grid CRS, ready to burn.

    Attributes:
        geometries: shapely array (N,) in file order, in the grid CRS.
        values: uint8 (N,) class indices (255 = ignore).
        nulls: features skipped for a null class attribute.
        repaired: invalid polygons repaired.
        dropped: invalid geometries with no polygonal part left (skipped).
    """

    geometries: np.ndarray
    values: np.ndarray
    nulls: int = 0
    repaired: int = 0
    dropped: int = 0


def labels_crs(rules: LabelRules) -> CRS | None:
    """The ``--labels-crs`` CRS, or None.

    Raises:
        InvalidParameterError: not a CRS PROJ understands.
    """
    if not rules.labels_crs:
        return None
    try:
        return CRS.from_user_input(rules.labels_crs)
    except (CRSError, ValueError) as exc:
        raise InvalidParameterError(f"--labels-crs {rules.labels_crs!r} is not a CRS ({exc})") from None


def resolve_vector(path: Path, grid: Grid, rules: LabelRules, warned: set[Path]) -> LabelSource:
    """Validate a vector label file against ``grid`` (see :func:`geoseg.io.labels.resolve_labels`)."""
    ref = grid.info
    if ref.crs is None or not ref.has_georeference:
        missing = "CRS" if ref.crs is None else "geotransform"
        raise MissingGeoreferenceError(f"{ref.path} has no {missing}; vector labels {path} cannot be placed on it")
    header = read_header(path)
    check_not_empty(header)
    field = choose_field(header.fields, rules, path)
    vcrs = labels_crs(rules) or header.crs
    if vcrs is None:
        log.warning("vector labels %s have no CRS; assuming %s, the CRS of %s (else give --labels-crs)", path,
                    crs_name(ref.crs), ref.path)
    _check_lonlat(header, vcrs or ref.crs, rules)
    src = LabelSource(path=path, kind="vector", grid=grid, rules=rules, field=field,
                      vector_crs=vcrs if vcrs is not None and vcrs != ref.crs else None)
    feats = load_features(src, grid.bounds)
    if path not in warned:
        warned.add(path)
        _warn_counts(path, field, feats)
    if len(feats.geometries) == 0:
        hint = ""
        if header.crs is None or header.driver == "GeoJSON":
            hint = (f"; its coordinates were read as {crs_name(vcrs or ref.crs)}: if they are in another CRS, "
                    "give it with --labels-crs")
        bounds = f", file bounds {fmt_bounds(header.bounds)}" if header.bounds else ""
        raise NoOverlapError(f"vector labels {path} have no feature overlapping {ref.path} (bounds "
                             f"{fmt_bounds(grid.bounds)}, {crs_name(ref.crs)}{bounds}){hint}")
    return src


def check_not_empty(header: VectorHeader) -> None:
    """Refuse a vector label file without features (said so, not as a missing attribute).

    Raises:
        VectorLabelError: the layer holds no feature.
    """
    if header.features == 0:
        raise VectorLabelError(f"vector labels {header.path} are empty (no feature in the layer); expected "
                               "polygons with a class attribute")


def _check_lonlat(header: VectorHeader, crs: CRS, rules: LabelRules) -> None:
    b = header.bounds
    if b is None or not crs.is_geographic:
        return
    s = LONLAT_SLACK
    if b[0] >= -180 - s and b[2] <= 180 + s and b[1] >= -90 - s and b[3] <= 90 + s:
        return
    if rules.labels_crs:
        why = f"--labels-crs {rules.labels_crs} is lon/lat"
    elif header.crs is None:
        why = f"the file has no CRS and {crs_name(crs)} (assumed) is lon/lat"
    elif header.driver == "GeoJSON":
        why = "a GeoJSON without a 'crs' member is read as lon/lat (EPSG:4326)"
    else:
        why = f"the file's CRS {crs_name(crs)} is lon/lat"
    raise CRSMismatchError(f"vector labels {header.path}: coordinates {fmt_bounds(b)} lie far outside lon/lat "
                           f"ranges (-180..180, -90..90), but {why}; give the CRS of the coordinates with "
                           "--labels-crs (e.g. --labels-crs EPSG:32633)")


def load_features(src: LabelSource, bounds: tuple[float, float, float, float]) -> VectorFeatures:
    """Features of ``src`` intersecting ``bounds`` (grid CRS units), in the grid CRS, with class values.

    Raises:
        VectorLabelError, LabelValueError: see :func:`geoseg.io.label_values.attribute_to_index`.
        CRSMismatchError: the coordinates cannot be reprojected to the grid CRS.
    """
    from rasterio.warp import transform_bounds

    grid_crs = src.grid.crs
    bbox = tuple(bounds)
    if src.vector_crs is not None:
        try:
            bbox = transform_bounds(grid_crs, src.vector_crs, *bounds, densify_pts=21)
        except (CRSError, ValueError, RuntimeError) as exc:
            raise CRSMismatchError(f"cannot reproject vector labels {src.path} ({crs_name(src.vector_crs)}) to "
                                   f"{crs_name(grid_crs)}: {str(exc).splitlines()[0]}") from None
    data = read_vector(src.path, columns=[src.field] if src.field else [], bbox=tuple(bbox))
    geoms = data.geometries
    if src.field:
        values = attribute_to_index(data.attributes[src.field], src.field, src.path, src.rules)
    else:
        values = np.full(len(geoms), src.rules.burn_value, dtype=np.int64)
    nulls = values < 0
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms)) & ~nulls
    geoms, values = geoms[keep], values[keep]
    geoms, repaired = polygonal_parts(geoms)
    empty = shapely.is_empty(geoms)
    geoms, values = geoms[~empty], values[~empty]
    if src.vector_crs is not None and len(geoms):
        geoms = reproject_geometries(geoms, src.vector_crs, grid_crs)
    return VectorFeatures(geometries=geoms, values=values.astype(np.uint8), nulls=int(nulls.sum()),
                          repaired=int((repaired & ~empty).sum()), dropped=int(empty.sum()))


def _warn_counts(path: Path, field: str | None, feats: VectorFeatures) -> None:
    parts = []
    if feats.nulls:
        parts.append(f"{feats.nulls} feature(s) with a null {field!r} skipped")
    if feats.repaired:
        parts.append(f"{feats.repaired} invalid polygon(s) repaired")
    if feats.dropped:
        parts.append(f"{feats.dropped} invalid geometr{'y' if feats.dropped == 1 else 'ies'} without area skipped")
    if parts:
        log.warning("%s: %s", path.name, ", ".join(parts))


def auto_classes(paths: list[Path], rules: LabelRules) -> tuple[str, ...] | None:
    """``--classes auto`` for vector files: ``background`` + the sorted distinct texts of their attribute.

    Returns None when the attribute holds numbers (they are class indices already) or no file is a vector.

    Raises:
        VectorLabelError: the attribute is missing.
    """
    texts: set[str] = set()
    numeric = False
    for path in dict.fromkeys(paths):
        header = read_header(path)
        check_not_empty(header)
        field = choose_field(header.fields, rules, path)
        if field is None:
            numeric = True
            continue
        raw = read_vector(path, columns=[field]).attributes[field]
        if is_text(raw):
            texts |= distinct_texts(raw)
        elif len(raw):
            numeric = True
    if not texts:
        return None
    if numeric:
        raise InvalidParameterError("--classes auto: some label files hold class numbers and others class names; "
                                    "give the class names with --classes")
    return auto_class_names(texts, rules.ignore_value)
