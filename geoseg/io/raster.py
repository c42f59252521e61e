"""Open and validate rasters; the small records that carry pixels with their georeferencing.

Array convention: rasterio's band-first ``(C, H, W)`` on the I/O side; models consume
channel-last ``(H, W, C)`` and convert at their boundary.

Inputs are local files, folders, globs, or GDAL names and URLs (``/vsicurl/``, ``/vsis3/``,
``/vsizip/``, ``https://``, ``s3://``: :mod:`geoseg.io.remote`); a GDAL name exists when GDAL
opens it, whatever the local file system says.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import array_bounds

from geoseg.errors import (
    AlignmentError,
    BandCountError,
    InputNotFoundError,
    MissingGeoreferenceError,
    UnreadableRasterError,
)
from geoseg.io.remote import GdalPath, as_path, is_gdal_name

#: GDAL block cache cap in MB. GDAL's default (5% of RAM) is over 1 GB on a 24 GB machine;
#: window-by-window readers and writers need only a few blocks, so memory stays flat.
DEFAULT_GDAL_CACHE_MB = 64

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2", ".png", ".jpg", ".jpeg")


@contextlib.contextmanager
def gdal_env(cache_mb: int = DEFAULT_GDAL_CACHE_MB, **options) -> Iterator[None]:
    """A rasterio/GDAL environment with a bounded block cache (``cache_mb`` megabytes)."""
    # rasterio hands an int GDAL_CACHEMAX to GDALSetCacheMax64, which counts bytes, not MB.
    with rasterio.Env(GDAL_CACHEMAX=int(cache_mb) * 2**20, GDAL_NUM_THREADS=options.pop("num_threads", 1), **options):
        yield


def grid_bounds(height: int, width: int, transform: Affine) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a ``height x width`` pixel grid, in CRS units (south-up grids too)."""
    x0, y0, x1, y1 = array_bounds(height, width, transform)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


@dataclass(frozen=True)
class SceneInfo:
    """What geoseg needs to know about a raster, read once from its header.

    Attributes:
        path: the file, or the GDAL name (:class:`~geoseg.io.remote.GdalPath`) of a remote one.
        width, height: size in pixels.
        count: number of bands.
        dtype: numpy dtype name of the bands (``"uint8"``, ``"uint16"``, ``"float32"``...).
        crs: coordinate reference system, or None when the file has none.
        transform: affine pixel -> CRS transform (identity when the file has none).
        nodata: the nodata value, or None.
        block_shape: (rows, cols) of the internal blocks of band 1.
        descriptions: band descriptions (None where a band has none).
        driver: GDAL driver short name (``GTiff``, ``JPEG``, ``PNG``, ``VRT``...).
        has_georeference: True when the file carries a CRS and a non-identity transform.
    """

    path: Path | GdalPath
    width: int
    height: int
    count: int
    dtype: str
    crs: CRS | None
    transform: Affine
    nodata: float | None
    block_shape: tuple[int, int] = (256, 256)
    descriptions: tuple[str | None, ...] = field(default=())
    driver: str = ""

    @property
    def has_georeference(self) -> bool:
        return self.crs is not None and self.transform != Affine.identity()

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in CRS units."""
        return grid_bounds(self.height, self.width, self.transform)


def open_scene(path: str | os.PathLike, require_georeference: bool = False) -> SceneInfo:
    """Read a raster header and validate it.

    Args:
        path: raster file, GDAL name (``/vsicurl/...``, ``/vsizip/...``) or URL (``https://``, ``s3://``).
        require_georeference: refuse a raster without CRS or geotransform.

    Raises:
        InputNotFoundError: no such file (a GDAL name or URL: GDAL cannot open it).
        UnreadableRasterError: GDAL cannot open it as a raster.
        MissingGeoreferenceError: ``require_georeference`` and no CRS/transform.
    """
    p = as_path(path)
    if isinstance(p, GdalPath):
        pass  # no local file to look at: opening it below tells whether it exists
    elif not p.exists():
        raise InputNotFoundError(f"no such file: {p}")
    elif p.is_dir():
        raise UnreadableRasterError(f"expected a raster file, found a folder: {p}")
    try:
        with _quiet_georeference(), rasterio.open(p) as ds:  # photos: said once per run (io.photos)
            info = SceneInfo(
                path=p,
                width=ds.width,
                height=ds.height,
                count=ds.count,
                dtype=ds.dtypes[0],
                crs=ds.crs,
                transform=ds.transform,
                nodata=ds.nodata,
                block_shape=tuple(ds.block_shapes[0]) if ds.block_shapes else (256, 256),
                descriptions=tuple(ds.descriptions),
                driver=ds.driver,
            )
    except RasterioIOError as exc:
        if isinstance(p, GdalPath):
            raise InputNotFoundError(f"cannot open {p} with GDAL ({_short(exc)})") from None
        raise UnreadableRasterError(f"not a readable raster: {p} ({_short(exc)}){_stac_hint(p)}") from None
    if require_georeference and not info.has_georeference:
        missing = "CRS" if info.crs is None else "geotransform"
        raise MissingGeoreferenceError(f"raster has no {missing}: {p}")
    return info


def check_gdal_name(name: str) -> None:
    """Raise unless GDAL opens ``name`` (a ``/vsi*`` name; existence of remote data is known only so).

    Raises:
        InputNotFoundError: GDAL cannot open it; the message gives GDAL's reason.
    """
    try:
        with _quiet_georeference(), rasterio.open(name):
            pass
    except RasterioIOError as exc:
        raise InputNotFoundError(f"cannot open {name} with GDAL ({_short(exc)})") from None


@contextlib.contextmanager
def _quiet_georeference() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def _stac_hint(path: Path | GdalPath) -> str:
    """A hint for a STAC item given as a scene without ``--assets``."""
    if isinstance(path, GdalPath) or path.suffix.lower() != ".json" or path.stat().st_size > 2**24:
        return ""
    with contextlib.suppress(ValueError, OSError):
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and "stac_version" in doc and isinstance(doc.get("assets"), dict):
            return f"; it is a STAC item: choose its assets with --assets ({', '.join(doc['assets'])})"
    return ""


def _short(exc: BaseException) -> str:
    """First line of an exception message, without the path repeated by GDAL."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def read_window(ds, indexes: int | Sequence[int] | None = None, window=None, *,
                source: str | os.PathLike | None = None, **kwargs) -> np.ndarray:
    """``ds.read(indexes, window=window, **kwargs)``, a failing read turned into one user error.

    Every pixel read of a command goes through here, so a file whose header is intact but whose
    data is cut off or corrupt (a half-copied COG) ends the run with one line naming the file and
    the window, never a GDAL traceback; callers remove what they wrote (atomic outputs).

    Args:
        ds: an open rasterio dataset (or ``WarpedVRT``).
        indexes: 1-based band(s), as for ``DatasetReader.read``; None reads all.
        window: a ``rasterio.windows.Window`` in pixels; None reads the whole raster (or ``out_shape``).
        source: the file named in the message (default ``ds.name``; give it for a ``WarpedVRT``).
        **kwargs: passed on (``boundless``, ``fill_value``, ``out_shape``, ``resampling``...).

    Raises:
        UnreadableRasterError: GDAL could not read the pixels.
    """
    try:
        return ds.read(indexes, window=window, **kwargs)
    except rasterio.errors.RasterioError as exc:  # a failed read: GDAL's reason is the cause
        reason: BaseException = exc.__cause__ or exc.__context__ or exc
    except Exception as exc:
        if not type(exc).__name__.startswith("CPLE_"):  # GDAL errors that rasterio raises as they are
            raise
        reason = exc
    where = "its pixels" if window is None else (
        f"window col {int(window.col_off)}, row {int(window.row_off)}, {int(window.width)} x {int(window.height)} px")
    raise UnreadableRasterError(f"{source or ds.name}: cannot read {where} (file cut off or corrupt?): "
                                f"{_gdal_reason(reason)}") from None


def _gdal_reason(exc: BaseException) -> str:
    """GDAL's own words for a failed read, short (``TIFFReadEncodedTile() failed.``)."""
    text = _short(exc)
    if ", band " in text and ": " in text:  # "scene.tif, band 1: IReadBlock failed at ...": file named already
        text = text.split(": ", 1)[1]
    return text[:200]


def check_bands(info: SceneInfo, bands: Sequence[int] | None) -> list[int]:
    """Validate a 1-based band selection against a raster; None means all bands.

    Raises:
        BandCountError: a band index is outside 1..count.
    """
    if bands is None:
        return list(range(1, info.count + 1))
    bad = [b for b in bands if b < 1 or b > info.count]
    if bad:
        raise BandCountError(
            f"band(s) {','.join(map(str, bad))} requested but {info.path} has {info.count} band(s)"
        )
    return list(bands)


def check_same_grid(a: SceneInfo, b: SceneInfo, tolerance: float = 1e-6) -> None:
    """Raise unless two rasters share CRS, size and transform (within ``tolerance`` pixels).

    Raises:
        AlignmentError: grids differ; the message says how.
    """
    if (a.crs or None) != (b.crs or None):
        raise AlignmentError(f"CRS differs: {a.path} is {crs_name(a.crs)}, {b.path} is {crs_name(b.crs)}")
    if (a.width, a.height) != (b.width, b.height):
        raise AlignmentError(
            f"size differs: {a.path} is {a.width}x{a.height}, {b.path} is {b.width}x{b.height} pixels"
        )
    if not a.transform.almost_equals(b.transform, precision=tolerance * max(abs(a.transform.a), 1e-12)):
        raise AlignmentError(f"transform differs: {a.path} {tuple(a.transform)[:6]} vs "
                             f"{b.path} {tuple(b.transform)[:6]}")


def same_grid(a: SceneInfo, b: SceneInfo) -> bool:
    """True when two rasters share CRS, size and transform."""
    try:
        check_same_grid(a, b)
    except AlignmentError:
        return False
    return True


def crs_name(crs: CRS | None) -> str:
    """Short name of a CRS for messages: ``EPSG:32633``, else the start of its PROJ string, or ``no CRS``."""
    if crs is None:
        return "no CRS"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()[:60]


def expand_inputs(items: Sequence[str | os.PathLike],
                  suffixes: Sequence[str] = RASTER_SUFFIXES) -> list[Path | GdalPath]:
    """Expand files, folders (their rasters, sorted), globs and GDAL names into a list of paths.

    A GDAL name or URL (:mod:`geoseg.io.remote`) is kept as a :class:`GdalPath` and checked by
    opening it: with GDAL's raster drivers when its suffix is a raster one (or unknown), else
    with its vector drivers (pyogrio).

    Raises:
        InputNotFoundError: an item matches nothing, or GDAL cannot open a GDAL name.
    """
    out: list[Path | GdalPath] = []
    for item in items:
        if is_gdal_name(item):
            name = GdalPath(as_path(item))
            if name.suffix.lower() in suffixes and name.suffix.lower() not in RASTER_SUFFIXES:
                _check_vector_name(name)
            else:
                check_gdal_name(name)
            out.append(name)
            continue
        s = str(item)
        p = Path(s)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in suffixes and q.is_file())
            if not found:
                raise InputNotFoundError(f"no rasters ({', '.join(suffixes)}) in folder: {p}")
            out.extend(found)
        elif any(ch in s for ch in "*?["):
            found = sorted(Path(q) for q in glob.glob(s, recursive=True))
            if not found:
                raise InputNotFoundError(f"glob matched nothing: {s}")
            out.extend(found)
        else:
            if not p.exists():
                raise InputNotFoundError(f"no such file: {p}")
            out.append(p)
    return out


def _check_vector_name(name: GdalPath) -> None:
    import pyogrio
    import pyogrio.errors

    try:
        pyogrio.read_info(str(name))
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputNotFoundError(f"cannot open {name} with GDAL ({_short(exc)})") from None


def valid_mask(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """``(H, W)`` bool: True unless the pixel equals ``nodata`` in every band of ``data`` (C, H, W).

    NaN counts as nodata for float data whatever ``nodata`` is.
    """
    if data.dtype.kind == "f":
        invalid = np.isnan(data).all(axis=0)
        if nodata is not None and not np.isnan(nodata):
            invalid |= (data == nodata).all(axis=0)
        return ~invalid
    if nodata is None:
        return np.ones(data.shape[1:], dtype=bool)
    return ~(data == nodata).all(axis=0)
