"""GeoParquet output (``--format parquet``), written in row groups as features arrive.

The GDAL in the pyogrio wheels has no Parquet driver, so the file is written with pyarrow
(the optional extra ``geoseg[parquet]``) following GeoParquet 1.1: a WKB ``geometry`` column,
and the file metadata key ``geo`` = ``{"version", "primary_column", "columns": {"geometry":
{"encoding": "WKB", "geometry_types", "crs" (PROJJSON, or null when unknown), "bbox"}}}``.
GDAL >= 3.8 (Parquet driver), geopandas, DuckDB and QGIS read it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import shapely
from rasterio.crs import CRS

from geoseg.errors import InvalidParameterError

GEOPARQUET_VERSION = "1.1.0"


def require_pyarrow() -> Any:
    """``pyarrow.parquet``, or a user error saying how to install it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidParameterError("GeoParquet output needs pyarrow: pip install 'geoseg[parquet]' "
                                    "(or write .gpkg / .geojson / .fgb)") from None
    return pq


class GeoParquetWriter:
    """Append polygons with attributes to a GeoParquet file, one row group per :meth:`write`.

    Args:
        path: the ``.parquet`` file (written as given; wrap in ``atomic_output`` for atomicity).
        fields: attribute name -> numpy dtype name (``int32``, ``float64``, ``object`` = string).
        crs: CRS of the coordinates (None: unknown, ``crs: null`` in the metadata).
        geometry_type: the single geometry type written (``Polygon``).
    """

    def __init__(self, path: str | os.PathLike, fields: dict[str, str], crs: CRS | None,
                 geometry_type: str = "Polygon"):
        pq = require_pyarrow()
        import pyarrow as pa

        self._pa = pa
        types = {"int32": pa.int32(), "int64": pa.int64(), "float64": pa.float64(), "object": pa.string()}
        self.fields = dict(fields)
        self.schema = pa.schema([pa.field(n, types[t]) for n, t in fields.items()]
                                + [pa.field("geometry", pa.binary())])
        self.crs = crs
        self.geometry_type = geometry_type
        self._bbox = [np.inf, np.inf, -np.inf, -np.inf]
        # No stored Arrow schema: pyarrow would read its (creation-time) metadata instead of the
        # ``geo`` key added at close, which carries the bounding box of everything written.
        self._writer = pq.ParquetWriter(str(Path(path)), self.schema, store_schema=False)

    def write(self, geometries: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        """Append one row group: shapely geometries (N,) and each field's values (N,)."""
        if len(geometries) == 0:
            return
        b = shapely.total_bounds(geometries)
        self._bbox = [min(self._bbox[0], b[0]), min(self._bbox[1], b[1]),
                      max(self._bbox[2], b[2]), max(self._bbox[3], b[3])]
        arrays = [self._pa.array(np.asarray(columns[n]).tolist(), type=self.schema.field(n).type)
                  for n in self.fields]
        arrays.append(self._pa.array(list(shapely.to_wkb(geometries)), type=self._pa.binary()))
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self.schema))

    def geo_metadata(self) -> dict[str, Any]:
        """The ``geo`` file metadata (GeoParquet 1.1)."""
        column: dict[str, Any] = {"encoding": "WKB", "geometry_types": [self.geometry_type],
                                  "crs": self.crs.to_dict(projjson=True) if self.crs is not None else None}
        if np.isfinite(self._bbox).all():
            column["bbox"] = [float(v) for v in self._bbox]
        return {"version": GEOPARQUET_VERSION, "primary_column": "geometry", "columns": {"geometry": column}}

    def close(self) -> None:
        self._writer.add_key_value_metadata({"geo": json.dumps(self.geo_metadata())})
        self._writer.close()

    def __enter__(self) -> GeoParquetWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self._writer.close()
