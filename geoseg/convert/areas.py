"""Polygon areas in square metres, whatever the CRS of their coordinates.

- A projected CRS that keeps areas to within a fraction of a percent over a scene (UTM, national
  grids, equal-area projections): the planar area, times the square of the CRS's linear unit
  in metres (feet -> m).
- A geographic CRS (degrees), or Mercator / Web Mercator (EPSG:3857, whose areas grow as
  ``1 / cos² latitude``: x4 at 60°): the polygons are densified (long pixel edges follow
  parallels and meridians, curved in any equal-area map), reprojected to a Lambert azimuthal
  equal-area projection on the WGS 84 ellipsoid centred on the scene, and measured there.
  LAEA is equal-area everywhere, so only the densification step bounds the error.
- No CRS (photos): the planar area in CRS units (pixels when the transform is the identity).
"""

from __future__ import annotations

import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import transform as transform_points

from geoseg.io.vector import reproject_geometries

#: PROJ projection names whose planar areas are far from true (Mercator family).
NON_EQUAL_AREA = ("merc", "webmerc")


def needs_equal_area(crs: CRS | None) -> bool:
    """True when planar areas in ``crs`` are not areas on the ground (geographic or Mercator CRS)."""
    if crs is None:
        return False
    if crs.is_geographic:
        return True
    try:
        return str(crs.to_dict().get("proj", "")) in NON_EQUAL_AREA
    except CRSError:
        return False


def equal_area_crs(crs: CRS, bounds: tuple[float, float, float, float]) -> CRS:
    """A Lambert azimuthal equal-area CRS (WGS 84 ellipsoid, metres) centred on ``bounds`` (in ``crs``)."""
    x = (bounds[0] + bounds[2]) / 2
    y = (bounds[1] + bounds[3]) / 2
    lon, lat = transform_points(crs, CRS.from_epsg(4326), [x], [y])
    return CRS.from_proj4(f"+proj=laea +lat_0={lat[0]:.8f} +lon_0={lon[0]:.8f} +x_0=0 +y_0=0 "
                          "+ellps=WGS84 +units=m +no_defs")


def unit_factor(crs: CRS | None) -> float:
    """Metres per unit of a projected CRS (1 for metres; 1 when unknown or without CRS)."""
    if crs is None or crs.is_geographic:
        return 1.0
    try:
        return float(crs.linear_units_factor[1])
    except CRSError:
        return 1.0


def areas_m2(geoms: np.ndarray, crs: CRS | None, bounds: tuple[float, float, float, float],
             max_segment: float) -> np.ndarray:
    """Areas in square metres of polygons in ``crs`` coordinates.

    Args:
        geoms: shapely polygons (N,), coordinates in ``crs``.
        crs: their CRS (None: planar areas in CRS units).
        bounds: the scene's ``(minx, miny, maxx, maxy)`` in ``crs``: the centre of the projection.
        max_segment: densification step in ``crs`` units for geographic/Mercator CRSs (a few
            pixels: keeps straight pixel edges close to the curves they are on the ground).

    Returns:
        float64 (N,) square metres (CRS units squared without CRS).
    """
    if len(geoms) == 0:
        return np.zeros(0, dtype=np.float64)
    if crs is None or not needs_equal_area(crs):
        return np.asarray(shapely.area(geoms), dtype=np.float64) * unit_factor(crs) ** 2
    dense = shapely.segmentize(geoms, max_segment) if max_segment > 0 else geoms
    projected = reproject_geometries(dense, crs, equal_area_crs(crs, bounds))
    return np.asarray(shapely.area(projected), dtype=np.float64)
