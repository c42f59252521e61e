"""Convert color-coded label rasters to class indices and back.

- ``color2index RGB.tif --palette FILE --out OUT.tif``: RGB(A) label raster -> uint8 class raster
  with a color table and the class map in the ``GEOSEG_CLASSES`` tag. Pixels that are nodata in
  the input (all bands equal to its nodata, or alpha 0) become 255. Colors missing from the
  palette are an error that lists each color with its pixel count over the whole raster.
- ``index2color LABEL.tif [--palette FILE] --out RGB.tif``: class raster -> RGBA for viewing
  (alpha 0 on nodata). Colors come from ``--palette``, else the raster's ``GEOSEG_CLASSES`` tag,
  else its color table, else the default palette.

Both read and write block by block (bounded memory) and keep the georeferencing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp

from geoseg.errors import BandCountError, InvalidParameterError, PaletteError
from geoseg.io.atomic import atomic_output, check_output
from geoseg.io.classes import (
    CLASSES_TAG,
    IGNORE_INDEX,
    ClassInfo,
    ClassMap,
    classes_from_tags,
    classes_to_tag,
    color_to_index,
    index_to_color,
    load_palette,
)
from geoseg.io.profiles import tiled_profile
from geoseg.io.raster import gdal_env, open_scene, read_window
from geoseg.io.styles import write_label_styles

#: Rows (and columns) of pixels converted at a time.
BLOCK = 1024


def _blocks(height: int, width: int, block: int = BLOCK):
    for r in range(0, height, block):
        for c in range(0, width, block):
            yield rasterio.windows.Window(c, r, min(block, width - c), min(block, height - r))


def _pack(rgb: np.ndarray) -> np.ndarray:
    return (rgb[0].astype(np.uint32) << 16) | (rgb[1].astype(np.uint32) << 8) | rgb[2].astype(np.uint32)


def color2index(rgb_path: str | os.PathLike, palette: str | os.PathLike | ClassMap, out_path: str | os.PathLike,
                overwrite: bool = False) -> Path:
    """Convert a color-coded label raster to a uint8 class raster (nodata 255, color table).

    Args:
        rgb_path: 3-band (RGB) or 4-band (RGBA) uint8 raster.
        palette: palette file or class map (color -> class index).
        out_path: output GeoTIFF (tiled, deflate), written atomically, with its GDAL/QGIS
            side-cars (``.aux.xml`` category names, ``.qml`` style; :mod:`geoseg.io.styles`).
        overwrite: replace an existing output.

    Raises:
        BandCountError: fewer than 3 bands.
        PaletteError: colors not in the palette (each listed with its pixel count).
        OutputExistsError: output exists and ``overwrite`` is False.
    """
    classes = palette if isinstance(palette, ClassMap) else load_palette(palette)
    info = open_scene(rgb_path)
    out = Path(out_path)
    if info.count < 3:
        raise BandCountError(f"{info.path}: a color-coded label needs 3 bands (RGB), found {info.count}")
    check_output(out, overwrite=overwrite)
    keys = np.array(sorted({(r << 16) | (g << 8) | b for r, g, b in (*classes.colors, *classes.ignore_colors)}),
                    dtype=np.uint32)  # ignore colours (VOC border, ...) read as 255
    missing: dict[int, int] = {}
    prof = tiled_profile(info.width, info.height, 1, "uint8", info.crs, info.transform, IGNORE_INDEX)
    with gdal_env(), rasterio.open(info.path) as src, atomic_output(out) as tmp:
        alpha = src.count >= 4 and src.colorinterp[3] == ColorInterp.alpha
        with rasterio.open(tmp, "w", **prof) as dst:
            for win in _blocks(src.height, src.width):
                data = read_window(src, [1, 2, 3, 4] if alpha else [1, 2, 3], win)
                void = (data[3] == 0) if alpha else np.zeros(data.shape[1:], bool)
                if src.nodata is not None:
                    void |= (data[:3] == src.nodata).all(axis=0)
                rgb = data[:3]
                packed = _pack(rgb)
                unknown = ~np.isin(packed, keys) & ~void
                if unknown.any():
                    vals, counts = np.unique(packed[unknown], return_counts=True)
                    for v, c in zip(vals.tolist(), counts.tolist()):
                        missing[v] = missing.get(v, 0) + c
                    continue  # keep counting over the whole raster, then fail once
                if missing:
                    continue
                idx = np.full(void.shape, IGNORE_INDEX, dtype=np.uint8)
                if (~void).any():
                    idx[~void] = color_to_index(rgb[:, ~void][:, None, :], classes, str(info.path))[0]
                dst.write(idx, 1, window=win)
            if missing:
                ranked = sorted(missing.items(), key=lambda kv: -kv[1])
                listed = ", ".join(f"({v >> 16},{(v >> 8) & 255},{v & 255}): {c} px" for v, c in ranked[:10])
                more = f" and {len(ranked) - 10} more" if len(ranked) > 10 else ""
                raise PaletteError(f"{info.path}: {len(ranked)} color(s) not in the palette: {listed}{more}")
            dst.write_colormap(1, classes.colormap())
            dst.set_band_description(1, "class")
            dst.update_tags(**{CLASSES_TAG: classes_to_tag(classes)})
    write_label_styles(out, classes)  # QGIS and GDAL show the class names and colours
    return out


def label_classes(ds: rasterio.io.DatasetReader, palette: str | os.PathLike | None = None) -> ClassMap:
    """Classes of a label raster: ``palette``, else its tag, else its color table, else defaults."""
    if palette is not None:
        return load_palette(palette)
    tagged = classes_from_tags(ds.tags()) or classes_from_tags(ds.tags(1))
    if tagged is not None:
        return tagged
    try:
        cmap = ds.colormap(1)
    except ValueError:  # no color table
        cmap = None
    if cmap:
        return ClassMap(tuple(ClassInfo(i, f"class_{i}", tuple(rgba[:3])) for i, rgba in sorted(cmap.items())
                              if i != IGNORE_INDEX and rgba[3] > 0))
    return ClassMap.default(256)


def index2color(label_path: str | os.PathLike, out_path: str | os.PathLike,
                palette: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Convert a class raster to an RGBA uint8 raster for viewing (alpha 0 on nodata).

    Raises:
        BandCountError: the input has more than one band.
        OutputExistsError: output exists and ``overwrite`` is False.
    """
    info = open_scene(label_path)
    out = Path(out_path)
    if info.count != 1:
        raise BandCountError(f"{info.path}: expected a single-band class raster, found {info.count} bands")
    if info.dtype not in ("uint8", "int8", "uint16", "int16", "uint32", "int32"):
        raise InvalidParameterError(f"{info.path}: expected an integer class raster, found {info.dtype}")
    check_output(out, overwrite=overwrite)
    nodata = info.nodata if info.nodata is not None else IGNORE_INDEX
    prof = tiled_profile(info.width, info.height, 4, "uint8", info.crs, info.transform, None)
    prof.update(photometric="RGB", alpha="YES")  # band 4 is a real alpha band: QGIS shows nodata transparent
    with gdal_env(), rasterio.open(info.path) as src, atomic_output(out) as tmp:
        classes = label_classes(src, palette)
        with rasterio.open(tmp, "w", **prof) as dst:
            for win in _blocks(src.height, src.width):
                idx = read_window(src, 1, win)
                void = (idx == nodata) | (idx < 0) | (idx > 255)
                rgb = index_to_color(np.where(void, 0, idx).astype(np.uint8), classes)
                alpha = np.where(void, 0, 255).astype(np.uint8)
                dst.write(np.concatenate([rgb, alpha[None]]), window=win)
            dst.update_tags(**{CLASSES_TAG: classes_to_tag(classes)})
    return out
