"""GDAL dataset names that are not local files: ``/vsicurl/``, ``/vsis3/``, ``/vsizip/``... and URLs.

GDAL reads rasters through its virtual file systems; geoseg accepts those names as they are
and maps URL forms onto them:

==========================  ==========================================
given                        opened by GDAL as
==========================  ==========================================
``https://host/a.tif``       ``/vsicurl/https://host/a.tif``
``http://host/a.tif``        ``/vsicurl/http://host/a.tif``
``s3://bucket/key.tif``      ``/vsis3/bucket/key.tif``
``gs://bucket/key.tif``      ``/vsigs/bucket/key.tif``
``az://container/key.tif``   ``/vsiaz/container/key.tif``
``/vsi.../...``              itself (``/vsizip/a.zip/b.tif``, ``/vsicurl/...``)
==========================  ==========================================

Such a name must not go through :class:`pathlib.Path` or ``os.path.abspath`` (both fold the
``//`` of ``https://``), so it travels as a :class:`GdalPath`: a ``str`` with the few
``Path`` attributes geoseg uses (``name``, ``stem``, ``suffix``, ``resolve()``). Whether it
exists is decided by opening it (:func:`geoseg.io.raster.open_scene`), not by the local
file system. Credentials and network options are GDAL's own configuration (``AWS_*``,
``GDAL_HTTP_*`` environment variables).
"""

from __future__ import annotations

import os
from pathlib import Path

#: URL scheme -> GDAL virtual file system prefix; the http(s) prefixes keep the whole URL.
URL_PREFIXES = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/", "az": "/vsiaz/"}


class GdalPath(str):
    """A GDAL dataset name that is not a local path (``/vsicurl/https://...``), kept verbatim.

    A ``str`` (rasterio and GDAL open it as given) with the ``Path`` attributes geoseg uses on
    scene and label paths. ``name`` is the last path component without a URL query.
    """

    __slots__ = ()

    @property
    def name(self) -> str:
        return self.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        name = self.name
        return name[name.rfind("."):] if "." in name.lstrip(".") else ""

    @property
    def stem(self) -> str:
        suffix = self.suffix
        return self.name[: -len(suffix)] if suffix else self.name

    def resolve(self) -> GdalPath:
        """Itself: a GDAL name is already absolute."""
        return self

    absolute = resolve

    def is_dir(self) -> bool:
        return False

    def as_posix(self) -> str:
        return str(self)

    def __fspath__(self) -> str:
        return str.__str__(self)


def is_gdal_name(item: str | os.PathLike[str]) -> bool:
    """True for ``/vsi*`` names and URLs GDAL reads (``http(s)``, ``s3``, ``gs``, ``az``)."""
    if isinstance(item, GdalPath):
        return True
    if isinstance(item, Path):
        return False
    text = os.fspath(item)
    if text.startswith("/vsi"):
        return True
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in URL_PREFIXES


def gdal_name(item: str | os.PathLike[str]) -> str:
    """The GDAL name of a URL (``https://h/a.tif`` -> ``/vsicurl/https://h/a.tif``); others unchanged."""
    text = os.fspath(item)
    scheme, sep, rest = text.partition("://")
    if sep and scheme.lower() in URL_PREFIXES:
        prefix = URL_PREFIXES[scheme.lower()]
        return prefix + text if prefix == "/vsicurl/" else prefix + rest
    return text


def as_path(item: str | os.PathLike[str]) -> Path | GdalPath:
    """A local path as :class:`~pathlib.Path`, a GDAL name or URL as :class:`GdalPath` (URLs mapped)."""
    if is_gdal_name(item):
        return GdalPath(gdal_name(item))
    return Path(item)


def absolute(item: str | os.PathLike[str]) -> Path | GdalPath:
    """An absolute local path, or the GDAL name unchanged (for paths handed to worker processes)."""
    path = as_path(item)
    return path if isinstance(path, GdalPath) else Path(os.path.abspath(path))
