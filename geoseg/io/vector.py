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

from geoseg.io.atomic import atomic_output
from geoseg.errors import InputNotFoundError, VectorLabelError

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

    p = Path(path)
    if not p.exists():
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
        geometry_type = kinds[0] if len(kinds) == 1 else ("MultiPolygon" if set(kinds) <= {"Polygon", "MultiPolygon"} else "Unknown")
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
