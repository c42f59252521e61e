"""Which bands of a scene to read: ``--bands`` by number or name, and alpha bands left out by default.

- ``--bands 1,2,3`` selects 1-based band numbers; ``--bands red,green,nir`` selects by name:
  band descriptions first (case-insensitive), then colour interpretation (``red``, ``green``,
  ``blue``, ``alpha``, ``gray``...). Numbers and names may be mixed.
- Without ``--bands``, every band is read except alpha bands: a band whose colour
  interpretation is alpha and that holds a 0/255 mask, or one that is a constant 255 on a
  decimated (overview) read, as the 4th band of many pan-sharpened RGB products is (see
  :func:`alpha_bands`). Each left-out band is reported with a logging warning.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, Resampling

from geoseg.errors import BandCountError
from geoseg.io.raster import SceneInfo, read_window

log = logging.getLogger("geoseg.bands")

#: Side of the decimated read used to spot constant-255 bands, in pixels.
PROBE_SIZE = 64

BandSpec = Sequence[int | str]


def parse_band_spec(text: str | Sequence[int | str] | None) -> tuple[int | str, ...] | None:
    """``"1,2,3"``, ``"red,green,nir"`` (or a YAML list) -> ``(1, 2, 3)`` / ``("red", "green", "nir")``.

    Numbers become ints, anything else stays a (stripped) name; None or ``""`` stays None.
    """
    if text is None or text == "":
        return None
    items = list(text) if isinstance(text, (list, tuple)) else str(text).split(",")
    out: list[int | str] = []
    for item in items:
        s = str(item).strip()
        if not s:
            continue
        out.append(int(s) if s.lstrip("-").isdigit() else s)
    if not out:
        raise argparse.ArgumentTypeError(f"expected band numbers or names separated by commas, got {text!r}")
    return tuple(out)


def band_colorinterp(info: SceneInfo) -> tuple[ColorInterp, ...]:
    """Colour interpretation of each band of a raster."""
    with rasterio.open(info.path) as ds:
        return tuple(ds.colorinterp)


def alpha_bands(info: SceneInfo) -> dict[int, str]:
    """1-based alpha bands of a raster -> why (``"colour interpretation alpha"`` or ``"constant 255"``).

    Looked at on a decimated read of about ``PROBE_SIZE`` x ``PROBE_SIZE`` pixels (GDAL uses the
    overviews when there are any). A band is alpha when:

    - its colour interpretation is alpha and it holds a mask (only 0 and 255, or the dtype's
      maximum). GDAL marks the 4th band of any 4-band uint8 GeoTIFF written without
      ``photometric`` as alpha, so the values decide: a near-infrared band so marked is kept;
    - or (rasters of more than one band) it is a constant 255, as the 4th band of many
      pan-sharpened RGB products is.

    A band whose description names it (anything but ``alpha``) is never taken for alpha.
    """
    out: dict[int, str] = {}
    if info.count < 2:
        return out
    with rasterio.open(info.path) as ds:
        scale = max(1, max(ds.height, ds.width) // PROBE_SIZE)
        shape = (max(1, ds.height // scale), max(1, ds.width // scale))
        for i, ci in enumerate(ds.colorinterp, 1):
            desc = (ds.descriptions[i - 1] or "").strip().lower()
            if desc and desc != "alpha":
                continue
            probe = read_window(ds, i, out_shape=shape, resampling=Resampling.nearest)
            top = np.iinfo(probe.dtype).max if probe.dtype.kind in "ui" else 255
            if ci == ColorInterp.alpha and np.isin(probe, (0, 255, top)).all():
                out[i] = "colour interpretation alpha"
            elif probe.size and np.all(probe == 255):
                out[i] = "constant 255"
    return out


def select_bands(info: SceneInfo, spec: BandSpec | None) -> list[int]:
    """The 1-based bands to read from a scene.

    Args:
        info: the scene header.
        spec: band numbers and/or names (see the module docstring); None: all but alpha bands.

    Raises:
        BandCountError: a number outside ``1..count``, or a name no band carries (the message
            lists each band's description and colour interpretation).
    """
    if spec is None:
        alpha = alpha_bands(info)
        keep = [b for b in range(1, info.count + 1) if b not in alpha]
        if not keep:
            return list(range(1, info.count + 1))
        for b, why in alpha.items():
            log.warning("%s: band %d (%s) looks like an alpha band and is left out; name it in --bands to keep it",
                        info.path.name, b, why)
        return keep
    names = _band_names(info)
    out: list[int] = []
    for item in spec:
        if isinstance(item, (int, np.integer)):
            if not 1 <= int(item) <= info.count:
                raise BandCountError(f"band {item} requested but {info.path} has {info.count} band(s)")
            out.append(int(item))
            continue
        key = str(item).strip().lower()
        match = next((b for b, (desc, _) in names.items() if desc == key), None)
        if match is None:
            match = next((b for b, (_, ci) in names.items() if ci == key), None)
        if match is None:
            listed = ", ".join(f"{b}: {d or '-'} ({ci})" for b, (d, ci) in names.items())
            raise BandCountError(f"no band named {item!r} in {info.path}; bands (description, colour "
                                 f"interpretation) are {listed}")
        out.append(match)
    return out


def _band_names(info: SceneInfo) -> dict[int, tuple[str, str]]:
    interp = band_colorinterp(info)
    descs = list(info.descriptions) + [None] * (info.count - len(info.descriptions))
    return {b: ((descs[b - 1] or "").strip().lower(), interp[b - 1].name.lower()) for b in range(1, info.count + 1)}
