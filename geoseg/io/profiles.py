"""Named GeoTIFF output profiles, in one place.

- ``patch_profile``: a training patch (small, striped or tiled, uncompressed by default).
- ``tiled_profile``: a whole-scene output, tiled 512x512 and compressed, BIGTIFF if needed.
- ``cog_options``: creation options of GDAL's COG driver for Cloud-Optimized output.
"""

from __future__ import annotations

from affine import Affine
from rasterio.crs import CRS

#: Compression names accepted by --compress, mapped to GDAL's.
COMPRESSIONS = {"none": None, "deflate": "DEFLATE", "zstd": "ZSTD", "lzw": "LZW"}


#: Compression level of whole-scene outputs: level 1 writes DEFLATE ~3x and ZSTD ~5x faster
#: than GDAL's defaults (6 and 9) for files ~15 % larger; prediction writes while the model
#: runs, so on CPU the level is paid in wall time (see benchmarks/README.md, Prediction).
FAST_LEVEL = 1


def _compress(name: str | None, level: int | None = None) -> dict:
    if name is None or name == "none":
        return {}
    key = COMPRESSIONS.get(name.lower(), name.upper())
    opts = {"compress": key}
    if key in ("DEFLATE", "ZSTD", "LZW"):
        opts["predictor"] = 2  # horizontal differencing: integer rasters compress far better
    if level is not None and key == "DEFLATE":
        opts["zlevel"] = level
    elif level is not None and key == "ZSTD":
        opts["zstd_level"] = level
    return opts


def patch_profile(width: int, height: int, count: int, dtype: str, crs: CRS | None, transform: Affine,
                  nodata: float | None, compress: str | None = None) -> dict:
    """Profile of one training patch: GTiff, the window's own transform, the scene CRS and nodata."""
    prof = {
        "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype,
        "crs": crs, "transform": transform, "nodata": nodata,
    }
    if width % 16 == 0 and height % 16 == 0 and width >= 256 and height >= 256:
        prof.update(tiled=True, blockxsize=256, blockysize=256)
    prof.update(_compress(compress))
    if compress and dtype.startswith("float"):
        prof["predictor"] = 3
    return prof


def tiled_profile(width: int, height: int, count: int, dtype: str, crs: CRS | None, transform: Affine,
                  nodata: float | None, compress: str = "deflate", block: int = 512,
                  level: int | None = FAST_LEVEL) -> dict:
    """Profile of a whole-scene output: tiled, compressed (``level`` for DEFLATE/ZSTD; None = GDAL's
    default), BIGTIFF when it might exceed 4 GB."""
    prof = {
        "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype,
        "crs": crs, "transform": transform, "nodata": nodata,
        "tiled": True, "blockxsize": block, "blockysize": block, "bigtiff": "IF_SAFER",
        "interleave": "pixel" if count <= 4 else "band",
    }
    prof.update(_compress(compress, level))
    if compress and dtype.startswith("float"):
        prof["predictor"] = 3
    return prof


def cog_options(compress: str = "deflate", block: int = 512, resampling: str = "nearest") -> dict:
    """Creation options for ``gdal.Translate``/``rasterio.shutil.copy`` with the COG driver."""
    opts = {"driver": "COG", "blocksize": block, "overview_resampling": resampling.upper(), "bigtiff": "IF_SAFER"}
    if compress and compress != "none":
        opts["compress"] = COMPRESSIONS.get(compress.lower(), compress.upper())
        if opts["compress"] in ("DEFLATE", "ZSTD"):
            opts["level"] = FAST_LEVEL
    return opts
