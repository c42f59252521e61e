"""Vector I/O (GeoPackage, GeoJSON, Shapefile) through pyogrio, without geopandas.

Geometries travel as shapely 2 arrays; attributes as a dict of column -> numpy array.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.errors import CRSError

from geoseg.errors import CRSMismatchError, InputNotFoundError, VectorLabelError
from geoseg.io.atomic import atomic_output
from geoseg.io.raster import crs_name
from geoseg.io.remote import as_path

DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "ESRI Shapefile",
           ".fgb": "FlatGeobuf"}


@dataclass(frozen=True)
class VectorData:
    """Features read from a vector file.

    Attributes:
        geometries: shapely geometry array (N,).
        attributes: column name -> numpy array (N,).
        crs: the layer's CRS, or None when the file has none.
        path: source file.
    """

    geometries: np.ndarray
    attributes: dict[str, np.ndarray]
    crs: CRS | None
    path: Path


def read_vector(path: str | os.PathLike, columns: list[str] | None = None, layer: str | int | None = None,
                bbox: tuple[float, float, float, float] | None = None) -> VectorData:
    """Read features; ``bbox`` (in the file's CRS) filters them on read.

    Raises:
        InputNotFoundError: no such file.
        VectorLabelError: unreadable, or a requested column is missing (lists the ones there are).
    """
    import pyogrio
    import pyogrio.errors

    p = as_path(path)  # local files are checked here; GDAL names and URLs by opening them
    if isinstance(p, Path) and not p.exists():
        raise InputNotFoundError(f"no such vector file: {p}")
    try:
        info = pyogrio.read_info(p, layer=layer)
        have = list(info["fields"])
        if columns:
            missing = [c for c in columns if c not in have]
            if missing:
                raise VectorLabelError(
                    f"{p}: no attribute {', '.join(map(repr, missing))}; attributes are: {', '.join(have) or '(none)'}"
                )
        meta, _, wkb, fields = pyogrio.raw.read(p, layer=layer, columns=columns, bbox=bbox)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise VectorLabelError(f"not a readable vector file: {p} ({str(exc).splitlines()[0]})") from None
    geoms = shapely.from_wkb(wkb) if wkb is not None else np.array([], dtype=object)
    crs = CRS.from_user_input(meta["crs"]) if meta.get("crs") else None
    attrs = {name: np.asarray(values) for name, values in zip(meta["fields"], fields)}
    return VectorData(geometries=np.asarray(geoms, dtype=object), attributes=attrs, crs=crs, path=p)


@dataclass(frozen=True)
class VectorHeader:
    """What a vector file's first (or named) layer says about itself, without reading features.

    Attributes:
        path: the file.
        fields: attribute names.
        crs: the layer's CRS, or None (a GeoJSON without a ``crs`` member reports EPSG:4326).
        bounds: (minx, miny, maxx, maxy) of all features in the layer's CRS units, or None when empty.
        driver: OGR driver name (``"GPKG"``, ``"GeoJSON"``...).
        features: number of features.
    """

    path: Path
    fields: tuple[str, ...]
    crs: CRS | None
    bounds: tuple[float, float, float, float] | None
    driver: str
    features: int


def read_header(path: str | os.PathLike, layer: str | int | None = None) -> VectorHeader:
    """Read a vector layer's header (fields, CRS, total bounds).

    Raises:
        InputNotFoundError: no such file.
        VectorLabelError: not a readable vector file.
    """
    import pyogrio
    import pyogrio.errors

    p = as_path(path)  # local files are checked here; GDAL names and URLs by opening them
    if isinstance(p, Path) and not p.exists():
        raise InputNotFoundError(f"no such vector file: {p}")
    try:
        info = pyogrio.read_info(p, layer=layer, force_total_bounds=True)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise VectorLabelError(f"not a readable vector file: {p} ({str(exc).splitlines()[0]})") from None
    bounds = info.get("total_bounds")
    ok = bounds is not None and all(np.isfinite(bounds)) and info.get("features", 0) != 0
    return VectorHeader(path=p, fields=tuple(str(f) for f in info["fields"]),
                        crs=CRS.from_user_input(info["crs"]) if info.get("crs") else None,
                        bounds=tuple(float(v) for v in bounds) if ok else None,
                        driver=str(info.get("driver", "")), features=int(info.get("features", -1)))


def reproject_geometries(geoms: np.ndarray, src_crs: CRS, dst_crs: CRS) -> np.ndarray:
    """Reproject a shapely geometry array (all vertices in one ``rasterio.warp.transform`` call).

    Raises:
        CRSMismatchError: PROJ cannot transform between the two CRSs.
    """
    from rasterio.warp import transform

    def _tx(xy: np.ndarray) -> np.ndarray:
        xs, ys = transform(src_crs, dst_crs, xy[:, 0], xy[:, 1])
        return np.column_stack([xs, ys])

    try:
        return shapely.transform(geoms, _tx)
    except (CRSError, ValueError, RuntimeError) as exc:
        raise CRSMismatchError(f"cannot reproject geometries from {crs_name(src_crs)} to {crs_name(dst_crs)}: "
                               f"{str(exc).splitlines()[0]}") from None


def polygonal_parts(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repair invalid (e.g. self-intersecting) polygons with ``shapely.make_valid``, keeping polygonal parts.

    Args:
        geoms: shapely geometry array (N,).

    Returns:
        ``(geometries, repaired)``: the array with each invalid polygon replaced by its valid
        polygonal part (an empty polygon when nothing polygonal is left), and a bool (N,)
        mask of the geometries that were invalid.
    """
    invalid = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if not invalid.any():
        return geoms, invalid
    out = geoms.copy()
    for i in np.nonzero(invalid)[0]:
        fixed = shapely.make_valid(geoms[i])
        parts = [g for g in shapely.get_parts(fixed) if g.geom_type in ("Polygon", "MultiPolygon")]
        out[i] = shapely.union_all(parts) if parts else shapely.Polygon()
    return out, invalid


def write_vector(path: str | os.PathLike, geometries, attributes: dict[str, np.ndarray] | None = None,
                 crs: CRS | str | None = None, layer: str | None = None, driver: str | None = None,
                 geometry_type: str | None = None, append: bool = False) -> Path:
    """Write features atomically (GeoPackage, GeoJSON, Shapefile from the suffix, or ``driver``).

    Args:
        geometries: shapely geometries (sequence or array).
        attributes: column -> values, each of the same length as ``geometries``.
        crs: CRS of the coordinates.
        geometry_type: e.g. ``"Polygon"``, ``"MultiPolygon"``; inferred when None.
        append: add a layer / features to an existing file instead of writing a new one
            (not atomic; used for multi-layer GeoPackages).
    """
    import pyogrio

    p = Path(path)
    drv = driver or DRIVERS.get(p.suffix.lower(), "GPKG")
    geoms = np.asarray(geometries, dtype=object)
    attrs = attributes or {}
    fields = list(attrs)
    data = [np.asarray(attrs[f]) for f in fields]
    wkb = shapely.to_wkb(geoms) if len(geoms) else np.array([], dtype=object)
    if geometry_type is None:
        kinds = sorted({g.geom_type for g in geoms}) if len(geoms) else ["Polygon"]
        polygonal = set(kinds) <= {"Polygon", "MultiPolygon"}
        geometry_type = kinds[0] if len(kinds) == 1 else ("MultiPolygon" if polygonal else "Unknown")
    crs_text = None if crs is None else CRS.from_user_input(crs).to_wkt()
    kwargs = dict(layer=layer, driver=drv, geometry_type=geometry_type, crs=crs_text)
    if drv == "GeoJSON":
        kwargs.pop("layer")
    if append:
        pyogrio.raw.write(p, wkb, data, fields, append=True, **kwargs)
        return p
    with atomic_output(p) as tmp:
        pyogrio.raw.write(tmp, wkb, data, fields, **kwargs)
    return p
