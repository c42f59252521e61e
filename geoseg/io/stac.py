"""A STAC item as a scene: chosen assets stacked into one multi-band input by a GDAL VRT.

``geoseg tile item.json --assets red,green,blue,nir`` picks each name among the item's assets
(by asset key, or by the ``common_name``/``name`` of an asset's ``eo:bands`` / ``bands``
entries) and writes the equivalent of ``gdalbuildvrt -separate``: one VRT band per name, in
the order given, each a window onto its asset's file (a COG, local or remote). Reads are then
ordinary windowed reads of the VRT: GDAL fetches only the blocks a window needs.

The VRT's grid is the union of the assets' bounds at the finest pixel size among them
(coarser bands are resampled with nearest neighbour, as ``gdalbuildvrt -resolution highest``
does); all assets must share one CRS and be north-up. Band data types are promoted to a
common one (numpy's rules). The VRT is written to ``<item folder>/.geoseg/<assets>/<item id>.vrt``
(a temporary folder when that cannot be written), so outputs are named after the item id.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import AlignmentError, InputNotFoundError, InvalidParameterError
from geoseg.io.atomic import atomic_output
from geoseg.io.raster import crs_name, open_scene
from geoseg.io.remote import gdal_name, is_gdal_name

#: numpy dtype name -> GDAL data type name.
GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
              "int32": "Int32", "float32": "Float32", "float64": "Float64"}


@dataclass(frozen=True)
class AssetBand:
    """One band of the stacked scene: ``band`` (1-based) of the raster ``href`` (a GDAL name), named ``name``."""

    name: str
    href: str
    band: int


def is_stac_item(path: str | os.PathLike) -> bool:
    """True for a local JSON file holding a STAC Item (``type: Feature``, ``stac_version``, ``assets``)."""
    p = Path(path)
    if is_gdal_name(path) or p.suffix.lower() != ".json" or not p.is_file() or p.stat().st_size > 2**24:
        return False
    try:
        doc = json.loads(p.read_text())
    except (ValueError, OSError):
        return False
    return isinstance(doc, dict) and doc.get("type") == "Feature" and "stac_version" in doc \
        and isinstance(doc.get("assets"), dict)


def read_item(path: str | os.PathLike) -> dict[str, Any]:
    """The STAC item in a local JSON file.

    Raises:
        InputNotFoundError: no such file.
        InvalidParameterError: not a STAC item.
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"no such STAC item file: {p}")
    if not is_stac_item(p):
        raise InvalidParameterError(f"{p}: expected a STAC item (JSON with type Feature, stac_version and assets)")
    doc: dict[str, Any] = json.loads(p.read_text())
    return doc


def _href(item_path: Path, href: str) -> str:
    """An asset href as a GDAL name: URLs mapped (``https://`` -> ``/vsicurl/``), relative paths from the item."""
    if href.startswith("file://"):
        href = href[len("file://"):]
    if is_gdal_name(href):
        return gdal_name(href)
    p = Path(href)
    return str(p if p.is_absolute() else (item_path.parent / p).resolve())


def _band_entries(asset: dict[str, Any]) -> list[dict[str, Any]]:
    """An asset's band descriptions: STAC 1.1 ``bands`` or the eo extension's ``eo:bands``."""
    entries = asset.get("bands") or asset.get("eo:bands") or []
    return [e for e in entries if isinstance(e, dict)]


def _band_names(entry: dict[str, Any]) -> set[str]:
    names = {entry.get("name"), entry.get("common_name"), entry.get("eo:common_name")}
    return {str(n).lower() for n in names if n}


def select_assets(item: dict[str, Any], item_path: str | os.PathLike, names: Sequence[str]) -> list[AssetBand]:
    """The bands named by ``names``, in that order.

    A name matches an asset key (all the asset's bands: ``visual`` gives 3) or, failing that,
    a band entry's ``common_name`` or ``name`` (``red`` finds the asset ``B04`` whose
    ``eo:bands`` says ``common_name: red``). Matching ignores case.

    Raises:
        InvalidParameterError: a name matches nothing; the message lists what there is.
    """
    assets: dict[str, dict[str, Any]] = item.get("assets", {})
    path = Path(item_path)
    out: list[AssetBand] = []
    for raw in names:
        name = raw.strip()
        key = next((k for k in assets if k.lower() == name.lower()), None)
        if key is not None:
            entries = _band_entries(assets[key])
            href = _href(path, str(assets[key]["href"]))
            if len(entries) <= 1:
                out.append(AssetBand(name, href, 1))
            else:
                out.extend(AssetBand(str(e.get("common_name") or e.get("name") or f"{key}_{i + 1}"), href, i + 1)
                           for i, e in enumerate(entries))
            continue
        found = [(k, i) for k, a in assets.items() for i, e in enumerate(_band_entries(a))
                 if name.lower() in _band_names(e)]
        if not found:
            common = sorted({n for a in assets.values() for e in _band_entries(a) for n in _band_names(e)})
            raise InvalidParameterError(
                f"--assets: {name!r} is neither an asset nor a band of STAC item {path}; assets: "
                f"{', '.join(assets) or '(none)'}" + (f"; band names: {', '.join(common)}" if common else ""))
        k, i = found[0]
        out.append(AssetBand(name, _href(path, str(assets[k]["href"])), i + 1))
    return out


def build_vrt(bands: Sequence[AssetBand]) -> str:
    """The XML of a VRT stacking ``bands`` (``gdalbuildvrt -separate -resolution highest``).

    Raises:
        InputNotFoundError, UnreadableRasterError: an asset cannot be opened.
        AlignmentError: assets in different CRSs, or rotated.
    """
    infos = {b.href: open_scene(b.href) for b in bands}
    first = infos[bands[0].href]
    for info in infos.values():
        if (info.crs or None) != (first.crs or None):
            raise AlignmentError(f"STAC assets differ in CRS: {first.path} is {crs_name(first.crs)}, "
                                 f"{info.path} is {crs_name(info.crs)}; stack assets of one CRS")
        if info.transform.b != 0 or info.transform.d != 0 or info.transform.e >= 0:
            raise AlignmentError(f"STAC asset {info.path} is rotated or south-up; only north-up assets are stacked")
    res_x = min(abs(i.transform.a) for i in infos.values())
    res_y = min(abs(i.transform.e) for i in infos.values())
    left = min(i.bounds[0] for i in infos.values())
    top = max(i.bounds[3] for i in infos.values())
    right = max(i.bounds[2] for i in infos.values())
    bottom = min(i.bounds[1] for i in infos.values())
    width, height = round((right - left) / res_x), round((top - bottom) / res_y)
    dtype = np.result_type(*[np.dtype(infos[b.href].dtype) for b in bands]).name
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    if first.crs is not None:
        ET.SubElement(root, "SRS").text = first.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(v) for v in (left, res_x, 0.0, top, 0.0, -res_y))
    for n, b in enumerate(bands, 1):
        info = infos[b.href]
        node = ET.SubElement(root, "VRTRasterBand", dataType=GDAL_TYPES.get(dtype, "Float64"), band=str(n))
        ET.SubElement(node, "Description").text = b.name
        if info.nodata is not None:
            ET.SubElement(node, "NoDataValue").text = repr(float(info.nodata))
        src = ET.SubElement(node, "ComplexSource" if info.nodata is not None else "SimpleSource")
        ET.SubElement(src, "SourceFilename", relativeToVRT="0").text = str(b.href)
        ET.SubElement(src, "SourceBand").text = str(b.band)
        ET.SubElement(src, "SrcRect", xOff="0", yOff="0", xSize=str(info.width), ySize=str(info.height))
        x0, _, _, y1 = info.bounds
        ET.SubElement(src, "DstRect", xOff=repr((x0 - left) / res_x), yOff=repr((top - y1) / res_y),
                      xSize=repr(info.width * abs(info.transform.a) / res_x),
                      ySize=repr(info.height * abs(info.transform.e) / res_y))
        if info.nodata is not None:
            ET.SubElement(src, "NODATA").text = repr(float(info.nodata))
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def stac_scene(item_path: str | os.PathLike, assets: Sequence[str], folder: str | os.PathLike | None = None) -> Path:
    """Write the VRT stacking ``assets`` of a STAC item and return its path.

    Args:
        item_path: local STAC item JSON.
        assets: asset keys or band names (see :func:`select_assets`), in band order.
        folder: where the VRT goes; default ``<item folder>/.geoseg/<assets>/`` (else a temporary folder).

    Returns:
        ``<folder>/<item id>.vrt``, a scene for every geoseg command.

    Raises:
        see :func:`read_item`, :func:`select_assets`, :func:`build_vrt`.
    """
    item_path = Path(item_path)
    item = read_item(item_path)
    names = [a for a in assets if a.strip()]
    if not names:
        raise InvalidParameterError(f"--assets: name at least one asset of STAC item {item_path} "
                                    f"({', '.join(item['assets'])})")
    xml = build_vrt(select_assets(item, item_path, names))
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(item.get("id") or item_path.stem))
    key = "+".join(n.strip() for n in names)
    key = "".join(ch if ch.isalnum() or ch in "-_+" else "_" for ch in key)[:80]
    candidates = [Path(folder)] if folder is not None else [
        item_path.parent / ".geoseg" / key,
        Path(tempfile.gettempdir()) / "geoseg-stac" / hashlib.sha1(str(item_path.resolve()).encode()).hexdigest()[:12]
        / key,
    ]
    error: OSError | None = None
    for place in candidates:
        out = place / f"{stem}.vrt"
        try:
            if not (out.is_file() and out.read_text() == xml):  # unchanged: keep it (other runs may read it)
                with atomic_output(out) as tmp:
                    tmp.write_text(xml)
            return out
        except OSError as exc:
            error = exc
    raise InvalidParameterError(f"cannot write the VRT of STAC item {item_path}: {error}")


def resolve_stac_items(items: Sequence[str | os.PathLike], assets: Sequence[str] | None) -> list[str]:
    """Scene arguments with each STAC item replaced by its stacked VRT (:func:`stac_scene`).

    Raises:
        InvalidParameterError: ``assets`` given but no item is a STAC item, or a STAC item
            without ``assets``.
    """
    out: list[str] = []
    found = False
    for item in items:
        if is_stac_item(item):
            found = True
            if not assets:
                names = ", ".join(read_item(item)["assets"])
                raise InvalidParameterError(f"{item} is a STAC item: choose its assets with --assets ({names})")
            out.append(str(stac_scene(item, assets)))
        else:
            out.append(os.fspath(item))
    if assets and not found:
        raise InvalidParameterError("--assets applies to STAC items (JSON files); no scene is one: "
                                    + ", ".join(map(str, items[:5])))
    return out



def parse_assets(text: str | Sequence[str] | None) -> list[str] | None:
    """``"red,green,blue"`` (or a YAML list) -> ``["red", "green", "blue"]``; None stays None."""
    if text is None or text == "":
        return None
    items = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    return [t.strip() for t in items if t.strip()] or None
