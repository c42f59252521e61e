"""Label raster -> polygons, block by block, with polygons that cross block seams merged.

The raster is read in strips of ``block_size`` rows, each strip in blocks of ``block_size``
columns, and each block is polygonized with ``rasterio.features.shapes`` (4-connectivity) in
pixel coordinates, where block seams lie on integer coordinates and shared edges match
exactly. Pieces of one class that share a seam edge of positive length (not just a corner:
that is 4-connectivity again) are unioned. A merged polygon still touching the strip's bottom
seam waits for the next strip; every other polygon is final and is written out. So the result
equals polygonizing the whole raster at once, while memory holds one block of pixels and the
polygons along one strip (it grows with the raster width, never with its area).

Final polygons are moved to CRS coordinates, filtered by area, optionally simplified
(topology-preserving, per polygon) and written with ``class_id``, ``class_name`` and ``area``
in square metres whatever the CRS (:mod:`geoseg.convert.areas`). GeoPackage, FlatGeobuf and
GeoParquet keep the raster's CRS; GeoJSON is written in EPSG:4326 (lon/lat) as RFC 7946 asks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import shapes
from rasterio.windows import Window

from geoseg.convert.areas import areas_m2, needs_equal_area, unit_factor
from geoseg.errors import InvalidParameterError
from geoseg.io.atomic import atomic_output, check_output
from geoseg.io.classes import IGNORE_INDEX, ClassMap, classes_from_tags, load_palette
from geoseg.io.geoparquet import GeoParquetWriter, require_pyarrow
from geoseg.io.raster import gdal_env, open_scene, read_window
from geoseg.io.vector import reproject_geometries

#: Output drivers by file suffix; features are written strip by strip (OGR append, Parquet row groups).
DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".fgb": "FlatGeobuf",
           ".parquet": "Parquet", ".geoparquet": "Parquet"}
#: Attributes of every polygon and their types.
FIELDS = {"class_id": "int32", "class_name": "object", "area": "float64"}
#: Densification step of geographic / Mercator polygons before measuring them, in pixels.
AREA_SEGMENT_PX = 8
WGS84 = CRS.from_epsg(4326)


def raster_classes(ds: rasterio.io.DatasetReader) -> ClassMap | None:
    """The class map stored in a label raster's ``GEOSEG_CLASSES`` tag (dataset or band 1), or None."""
    return classes_from_tags(ds.tags()) or classes_from_tags(ds.tags(1))


def class_names(label_path: str | os.PathLike, palette: str | os.PathLike | None = None) -> dict[int, str]:
    """Class index -> name: from ``palette``, else the raster's tag, else ``class_<i>``."""
    if palette is not None:
        cmap = load_palette(palette)
    else:
        with rasterio.open(label_path) as ds:
            cmap = raster_classes(ds)
    names = {i: f"class_{i}" for i in range(256)}
    if cmap is not None:
        names.update({c.index: c.name for c in cmap.classes})
    return names


def iter_polygons(label_path: str | os.PathLike, classes: Sequence[int] | None = None,
                  block_size: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield final polygons strip by strip, in pixel coordinates (x = column, y = row).

    Args:
        label_path: single-band class raster (integer values 0..255).
        classes: class values to polygonize; None = every value except 0 (background) and nodata
            (the raster's nodata, else 255).
        block_size: block side in pixels; memory holds one block and one strip's polygons.

    Yields:
        ``(geometries, class_ids)``: shapely Polygons (N,) and their class values (N,) int.
    """
    if block_size < 2:
        raise InvalidParameterError(f"--block-size must be >= 2 px, got {block_size}")
    with gdal_env(), rasterio.open(label_path) as ds:
        nodata = int(ds.nodata) if ds.nodata is not None and float(ds.nodata).is_integer() else IGNORE_INDEX
        wanted = np.zeros(256, dtype=bool)
        if classes is None:
            wanted[1:] = True
            if 0 <= nodata < 256:
                wanted[nodata] = False
        else:
            bad = [c for c in classes if not 0 <= c < 256]
            if bad:
                raise InvalidParameterError(f"--classes: values must be 0..255, got {bad}")
            wanted[list(classes)] = True
        height, width = ds.height, ds.width
        pending = np.array([], dtype=object)
        pending_cls = np.array([], dtype=np.int64)
        for y0 in range(0, height, block_size):
            y1 = min(height, y0 + block_size)
            geoms, cls = [pending], [pending_cls]
            for x0 in range(0, width, block_size):
                x1 = min(width, x0 + block_size)
                data = read_window(ds, 1, Window(x0, y0, x1 - x0, y1 - y0))
                g, c = _block_pieces(data, wanted, x0, y0)
                geoms.append(g)
                cls.append(c)
            merged, merged_cls = _merge(np.concatenate(geoms), np.concatenate(cls))
            maxy = shapely.bounds(merged)[:, 3] if len(merged) else np.zeros(0)
            waiting = (maxy >= y1) & (y1 < height)
            pending, pending_cls = merged[waiting], merged_cls[waiting]
            if (~waiting).any():
                yield merged[~waiting], merged_cls[~waiting]


def _block_pieces(data: np.ndarray, wanted: np.ndarray, x0: int, y0: int) -> tuple[np.ndarray, np.ndarray]:
    """Polygons of one block in pixel coordinates and their classes."""
    if data.dtype.kind not in "ui" or data.dtype.itemsize > 2:
        data = data.astype(np.int32)
    valid = (data >= 0) & (data < 256)
    mask = np.zeros(data.shape, dtype=bool)
    mask[valid] = wanted[data[valid]]
    if not mask.any():
        return np.array([], dtype=object), np.array([], dtype=np.int64)
    if data.dtype == np.int8:
        data = data.astype(np.int16)
    out = list(shapes(data, mask=mask, connectivity=4, transform=Affine.translation(x0, y0)))
    geoms = np.array([shapely.geometry.shape(g) for g, _ in out], dtype=object)
    return geoms, np.array([int(v) for _, v in out], dtype=np.int64)


def _merge(geoms: np.ndarray, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union same-class pieces that share an edge (a seam segment of positive length)."""
    n = len(geoms)
    if n < 2:
        return geoms, cls
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    keep = (a < b) & (cls[a] == cls[b])
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return geoms, cls
    # Pieces of one component meet only at points (4-connectivity); across a seam they share a segment.
    shared = shapely.length(shapely.intersection(geoms[a], geoms[b])) > 0
    a, b = a[shared], b[shared]
    if len(a) == 0:
        return geoms, cls
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(a.tolist(), b.tolist()):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(n)])
    out_g, out_c = [], []
    for r in np.unique(roots):
        members = np.flatnonzero(roots == r)
        if len(members) == 1:
            out_g.append(geoms[r])
        else:
            # Seam vertices are collinear after the union; tolerance 0 removes exactly those.
            out_g.append(shapely.simplify(shapely.union_all(geoms[members]), 0.0, preserve_topology=False))
        out_c.append(cls[r])
    out = np.array(out_g, dtype=object)
    parts, index = shapely.get_parts(out, return_index=True)  # a union of edge-sharing pieces is one polygon
    return parts, np.asarray(out_c, dtype=np.int64)[index]


def to_crs_coordinates(geoms: np.ndarray, transform: Affine) -> np.ndarray:
    """Pixel (column, row) coordinates -> CRS coordinates with the raster's affine transform."""
    return shapely.transform(geoms, lambda xy: np.column_stack(transform * (xy[:, 0], xy[:, 1])))


def vectorize(label_path: str | os.PathLike, out_path: str | os.PathLike, classes: Sequence[int] | None = None,
              simplify: float = 0, min_area: float = 0, block_size: int = 1024, overwrite: bool = False, *,
              palette: str | os.PathLike | None = None, driver: str | None = None) -> int:
    """Polygonize a label raster into a vector file.

    Args:
        label_path: single-band class raster.
        out_path: output file; GeoPackage unless the suffix (``.geojson``, ``.json``, ``.fgb``,
            ``.parquet``) or ``driver`` says otherwise.
        classes: class values to keep; None = all but background (0) and nodata.
        simplify: topology-preserving simplification tolerance in CRS units (0 = exact pixel edges).
            Each polygon is simplified on its own, so edges shared by neighbours may drift apart
            by up to the tolerance.
        min_area: drop polygons smaller than this, in square metres (CRS units squared for a
            raster without CRS); measured before simplification.
        block_size: block side in pixels (memory bound).
        overwrite: replace an existing output.
        palette: palette file for class names (else the raster's ``GEOSEG_CLASSES`` tag, else ``class_<i>``).
        driver: ``GPKG``, ``GeoJSON``, ``FlatGeobuf`` or ``Parquet`` (GeoParquet 1.1, needs pyarrow).

    Returns:
        The number of features written. Attributes: ``class_id`` (int), ``class_name``,
        ``area`` (square metres of the written geometry, on the ground: see
        :mod:`geoseg.convert.areas`). Coordinates: the raster's CRS; GeoJSON: EPSG:4326 (RFC 7946).

    Raises:
        InputNotFoundError, UnreadableRasterError: bad input raster.
        InvalidParameterError: negative tolerance/area, multi-band raster, unknown driver,
            GeoParquet without pyarrow.
        OutputExistsError: output exists and ``overwrite`` is False.
    """
    info = open_scene(label_path)
    out = Path(out_path)
    if simplify < 0:
        raise InvalidParameterError(f"--simplify must be >= 0 (CRS units), got {simplify}")
    if min_area < 0:
        raise InvalidParameterError(f"--min-area must be >= 0 (square metres), got {min_area}")
    if info.count != 1:
        raise InvalidParameterError(f"{info.path}: expected a single-band label raster, found {info.count} bands")
    if info.dtype.startswith("float") or info.dtype.startswith("complex"):
        raise InvalidParameterError(f"{info.path}: expected an integer class raster, found {info.dtype}")
    drv = driver or DRIVERS.get(out.suffix.lower())
    if drv not in DRIVERS.values():
        raise InvalidParameterError(
            f"cannot write {out}: use a .gpkg, .geojson, .fgb or .parquet file, or --format gpkg/geojson/fgb/parquet")
    if drv == "Parquet":
        require_pyarrow()
    check_output(out, overwrite=overwrite)
    names = class_names(label_path, palette)
    crs = info.crs
    out_crs = WGS84 if drv == "GeoJSON" and crs is not None else crs
    exact_pixel_area = abs(info.transform.determinant) * unit_factor(crs) ** 2  # planar CRSs: exact
    step = AREA_SEGMENT_PX * max(abs(info.transform.a), abs(info.transform.e), abs(info.transform.b))
    written = 0
    with atomic_output(out) as tmp, _open_sink(tmp, drv, out.stem, out_crs) as sink:
        for px_geoms, cls in iter_polygons(label_path, classes, block_size):
            geoms = to_crs_coordinates(px_geoms, info.transform)
            if min_area > 0:
                sizes = (areas_m2(geoms, crs, info.bounds, step) if needs_equal_area(crs)
                         else shapely.area(px_geoms) * exact_pixel_area)
                geoms, cls = geoms[sizes >= min_area], cls[sizes >= min_area]
            if simplify > 0:
                geoms = shapely.simplify(geoms, simplify, preserve_topology=True)
            if not len(geoms):
                continue
            area = areas_m2(geoms, crs, info.bounds, step)
            if out_crs is not None and crs is not None and out_crs != crs:
                geoms = reproject_geometries(geoms, crs, out_crs)
            sink.write(geoms, {"class_id": cls.astype(np.int32),
                               "class_name": np.array([names[int(c)] for c in cls], dtype=object),
                               "area": area})
            written += len(geoms)
    return written


class _OgrSink:
    """Features appended to an OGR layer strip by strip (an empty layer with the schema if none)."""

    def __init__(self, path: Path, driver: str, layer: str, crs: CRS | None):
        self.path, self.driver, self.crs = path, driver, crs
        self.options: dict[str, Any] = {} if driver == "GeoJSON" else {"layer": layer}
        self.created = False

    def write(self, geoms: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        import pyogrio.raw

        extra = dict(self.options)
        if self.driver == "GeoJSON" and self.crs is not None and not self.created:
            extra["layer_options"] = {"RFC7946": "YES"}  # lon/lat, right-hand rings, no 'crs' member
        pyogrio.raw.write(self.path, shapely.to_wkb(geoms) if len(geoms) else np.array([], dtype=object),
                          [columns[f] for f in FIELDS], list(FIELDS), driver=self.driver, geometry_type="Polygon",
                          crs=self.crs.to_wkt() if self.crs is not None else None, append=self.created, **extra)
        self.created = True

    def __enter__(self) -> _OgrSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self.created:  # still a valid, empty layer with the right schema
            empty = np.array([], dtype=object)
            self.write(empty, {"class_id": np.array([], np.int32), "class_name": empty,
                               "area": np.array([], np.float64)})


def _open_sink(path: Path, driver: str, layer: str, crs: CRS | None) -> _OgrSink | GeoParquetWriter:
    if driver == "Parquet":
        return GeoParquetWriter(path, FIELDS, crs)
    return _OgrSink(path, driver, layer, crs)
