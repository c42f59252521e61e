"""Writing the sample scene: ``scene.tif``, ``labels.tif``, ``labels.gpkg`` and ``classes.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from geoseg import __version__
from geoseg.apps.sample.classes import BAND_NAMES, DEFAULT_ORIGIN, GAIN, SAMPLE_CLASSES
from geoseg.apps.sample.layout import Layout, make_layout
from geoseg.apps.sample.render import render_block
from geoseg.errors import InvalidParameterError
from geoseg.io.atomic import atomic_output, check_output
from geoseg.io.classes import IGNORE_INDEX, classes_to_tag
from geoseg.io.profiles import tiled_profile
from geoseg.io.raster import gdal_env
from geoseg.io.styles import write_label_styles
from geoseg.io.vector import write_vector


@dataclass(frozen=True)
class SampleFiles:
    """Paths written by :func:`make_sample`."""

    scene: Path
    labels: Path
    polygons: Path
    classes: Path


def make_sample(out_dir: str | os.PathLike, size: int = 2048, bands: int = 4, dtype: str = "uint8", seed: int = 0,
                crs: str = "EPSG:32633", pixel_size: float = 0.5, overwrite: bool = False, *,
                block_size: int = 1024) -> SampleFiles:
    """Write the sample scene, its labels (raster and polygons) and its class map.

    Args:
        out_dir: output folder (created).
        size: scene width and height in pixels.
        bands: number of bands (1..; 4 = red, green, blue, nir; more adds plausible extra bands).
        dtype: ``"uint8"`` (0..255) or ``"uint16"`` (reflectance x 10000).
        seed: everything is a function of the seed (and the size).
        crs: a projected CRS; the scene's top-left corner is at :data:`DEFAULT_ORIGIN` in it.
        pixel_size: pixel size in CRS units (meters). Object sizes are in pixels, so the scene
            looks the same whatever the pixel size.
        overwrite: replace existing outputs.
        block_size: pixels per side of the blocks rendered and written at a time (memory bound).

    Returns:
        The paths of the four files.

    Raises:
        InvalidParameterError: bad size, bands, dtype, pixel size or CRS.
        OutputExistsError: an output exists and ``overwrite`` is False.
    """
    crs_obj = check_sample_options(size, bands, dtype, crs, pixel_size)
    out = Path(out_dir)
    files = SampleFiles(out / "scene.tif", out / "labels.tif", out / "labels.gpkg", out / "classes.json")
    for p in (files.scene, files.labels, files.polygons, files.classes):
        check_output(p, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)

    transform = Affine(pixel_size, 0.0, DEFAULT_ORIGIN[0], 0.0, -pixel_size, DEFAULT_ORIGIN[1])
    layout = make_layout(size, seed)
    _write_rasters(files, layout, size, bands, dtype, seed, crs_obj, transform, block_size)
    crs_geoms = shapely.transform(layout.geoms, lambda xy: np.c_[transform * (xy[:, 0], xy[:, 1])])
    names = np.array([SAMPLE_CLASSES.names[c] for c in layout.class_ids], dtype=object)
    write_vector(files.polygons, crs_geoms, {"class_id": layout.class_ids.astype(np.int32), "class_name": names},
                 crs=crs_obj, layer="labels", geometry_type="Polygon")
    with atomic_output(files.classes) as tmp:
        SAMPLE_CLASSES.save(tmp)
    write_label_styles(files.labels, SAMPLE_CLASSES)  # class names and colours in QGIS and gdalinfo
    return files


def check_sample_options(size: int, bands: int, dtype: str, crs: str, pixel_size: float) -> CRS:
    """Check :func:`make_sample`'s options without touching any file; return the parsed CRS.

    Raises:
        InvalidParameterError: size under 64 px, no band, unknown dtype, pixel size <= 0, or a
            CRS that is unknown or not projected.
    """
    if size < 64:
        raise InvalidParameterError(f"--size must be >= 64 px, got {size}")
    if bands < 1:
        raise InvalidParameterError(f"--bands must be >= 1, got {bands}")
    if dtype not in GAIN:
        raise InvalidParameterError(f"--dtype must be one of {', '.join(GAIN)}, got {dtype!r}")
    if not pixel_size > 0:
        raise InvalidParameterError(f"--pixel-size must be > 0, got {pixel_size}")
    try:
        crs_obj = CRS.from_user_input(crs)
    except Exception:  # rasterio raises CRSError, pyproj-like messages; one line is enough
        raise InvalidParameterError(f"--crs: not a CRS: {crs!r}") from None
    if not crs_obj.is_projected:
        raise InvalidParameterError(f"--crs must be a projected CRS (meters), got {crs}")
    return crs_obj


def _write_rasters(files: SampleFiles, layout: Layout, size: int, bands: int, dtype: str, seed: int,
                   crs: CRS, transform: Affine, block_size: int) -> None:
    """Render and write ``scene.tif`` and ``labels.tif`` block by block (``block_size`` px squares)."""
    tree = shapely.STRtree(layout.geoms)
    shadow_tree = shapely.STRtree(layout.shadows)
    bldg_tree = shapely.STRtree(layout.buildings)
    img_prof = tiled_profile(size, size, bands, dtype, crs, transform, nodata=0, compress="deflate")
    if bands >= 3:
        img_prof["photometric"] = "RGB"  # QGIS shows true color by default; band 4+ are extra samples
    lab_prof = tiled_profile(size, size, 1, "uint8", crs, transform, nodata=IGNORE_INDEX, compress="deflate")
    gain, top = GAIN[dtype], np.iinfo(dtype).max
    names = [BAND_NAMES[i] if i < len(BAND_NAMES) else f"band{i + 1}" for i in range(bands)]
    params = {"seed": seed, "size": size, "bands": bands, "dtype": dtype, "geoseg_version": __version__}
    block = max(64, int(block_size))
    with gdal_env(num_threads="ALL_CPUS"), atomic_output(files.scene) as tmp_img, \
            atomic_output(files.labels) as tmp_lab:
        with rasterio.open(tmp_img, "w", **img_prof) as img, rasterio.open(tmp_lab, "w", **lab_prof) as lab:
            for r0 in range(0, size, block):
                for c0 in range(0, size, block):
                    h, w = min(block, size - r0), min(block, size - c0)
                    labels, refl = render_block(layout, tree, shadow_tree, bldg_tree, r0, c0, h, w, bands, seed)
                    dn = np.clip(np.rint(refl * gain), 1, top).astype(dtype)  # 0 is nodata
                    win = Window(c0, r0, w, h)
                    img.write(dn, window=win)
                    lab.write(labels, 1, window=win)
            img.descriptions = tuple(names)
            if bands >= 3:
                img.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue] + \
                    [ColorInterp.undefined] * (bands - 3)
            img.update_tags(GEOSEG_SAMPLE=json.dumps(params))
            lab.write_colormap(1, SAMPLE_CLASSES.colormap())
            lab.set_band_description(1, "class")
            lab.update_tags(GEOSEG_CLASSES=classes_to_tag(SAMPLE_CLASSES),
                            CLASS_NAMES=",".join(SAMPLE_CLASSES.names), GEOSEG_SAMPLE=json.dumps(params))
