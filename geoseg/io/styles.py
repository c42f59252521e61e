"""What GDAL and QGIS read beside a raster: class names, attribute tables and layer styles.

GeoTIFF has no place for class names, so GDAL keeps them in its PAM side-car
``<raster>.aux.xml`` (read by every GDAL-based tool: ``gdalinfo`` lists them under
"Categories" and "GDAL Raster Attribute Table", QGIS >= 3.30 shows the table and offers it
as the layer's classification). QGIS also loads ``<raster stem>.qml`` beside a raster as the
layer's default style; geoseg writes one for each output:

- label rasters: a *paletted* renderer, one entry per class (value, colour, class name), and
  in the side-car GDAL category names (index = pixel value) and a thematic raster attribute
  table with the columns ``value`` (GFU_MinMax), ``class_name`` (GFU_Name), ``red``,
  ``green``, ``blue`` (GFU_Red/Green/Blue);
- probability rasters: a *single-band pseudocolor* ramp from 0 to 1 (GDAL's band scale, which
  QGIS applies, turns uint8 values into probabilities) of the band named in the style.

Formats: GDAL's ``gcore/gdal_rat.cpp`` (``GDALRasterAttributeTable::Serialize``) and
``gcore/gdalpamrasterband.cpp``; QGIS's ``.qml`` raster renderer elements.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from geoseg.io.atomic import atomic_output
from geoseg.io.classes import ClassMap

#: GDALRATFieldType and GDALRATFieldUsage codes (gdal.h).
GFT_INTEGER, GFT_STRING = 0, 2
GFU_NAME, GFU_MINMAX, GFU_RED, GFU_GREEN, GFU_BLUE = 2, 5, 6, 7, 8

#: Attribute-table columns of a label raster: (name, type, usage).
RAT_FIELDS = (("value", GFT_INTEGER, GFU_MINMAX), ("class_name", GFT_STRING, GFU_NAME),
              ("red", GFT_INTEGER, GFU_RED), ("green", GFT_INTEGER, GFU_GREEN), ("blue", GFT_INTEGER, GFU_BLUE))

#: A perceptually uniform ramp (viridis at 0, 0.25, 0.5, 0.75, 1) for probability rasters.
PROBABILITY_RAMP = ((0.0, "#440154"), (0.25, "#3b528b"), (0.5, "#21918c"), (0.75, "#5ec962"), (1.0, "#fde725"))


def pam_path(raster: str | os.PathLike) -> Path:
    """GDAL's PAM side-car of a raster: ``<raster>.aux.xml``."""
    p = Path(raster)
    return p.with_name(p.name + ".aux.xml")


def qml_path(raster: str | os.PathLike) -> Path:
    """The QGIS default-style file of a raster: ``<raster stem>.qml`` beside it."""
    return Path(raster).with_suffix(".qml")


def category_names(classes: ClassMap) -> list[str]:
    """GDAL category names: entry ``v`` names pixel value ``v`` (``""`` for values without a class)."""
    names = [""] * classes.num_classes
    for c in classes.classes:
        names[c.index] = c.name
    return names


def attribute_table(classes: ClassMap) -> ET.Element:
    """A thematic ``<GDALRasterAttributeTable>``: one row per class (value, name, red, green, blue)."""
    rat = ET.Element("GDALRasterAttributeTable", tableType="thematic")
    for i, (name, kind, usage) in enumerate(RAT_FIELDS):
        defn = ET.SubElement(rat, "FieldDefn", index=str(i))
        ET.SubElement(defn, "Name").text = name
        ET.SubElement(defn, "Type").text = str(kind)
        ET.SubElement(defn, "Usage").text = str(usage)
    for row_index, c in enumerate(classes.classes):
        row = ET.SubElement(rat, "Row", index=str(row_index))
        for value in (c.index, c.name, *c.color):
            ET.SubElement(row, "F").text = str(value)
    return rat


def write_label_pam(raster: str | os.PathLike, classes: ClassMap, band: int = 1) -> Path:
    """Put category names and an attribute table for ``band`` into ``<raster>.aux.xml``.

    Whatever else the side-car holds (metadata GDAL wrote there for a format that cannot store
    it) is kept; an earlier category list or table of that band is replaced.

    Returns:
        The side-car path.
    """
    path = pam_path(raster)
    root = ET.parse(path).getroot() if path.is_file() else ET.Element("PAMDataset")
    node = next((b for b in root.findall("PAMRasterBand") if b.get("band") == str(band)), None)
    if node is None:
        node = ET.SubElement(root, "PAMRasterBand", band=str(band))
    for old in node.findall("CategoryNames") + node.findall("GDALRasterAttributeTable"):
        node.remove(old)
    cats = ET.SubElement(node, "CategoryNames")
    for name in category_names(classes):
        ET.SubElement(cats, "Category").text = name
    node.append(attribute_table(classes))
    _write_xml(path, root)
    return path


def label_qml(classes: ClassMap, band: int = 1) -> str:
    """A QGIS style: paletted renderer of ``band``, one entry (value, colour, class name) per class."""
    root, pipe = _qml_root()
    renderer = ET.SubElement(pipe, "rasterrenderer", type="paletted", band=str(band), opacity="1",
                             alphaBand="-1", nodataColor="")
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    for c in classes.classes:
        ET.SubElement(palette, "paletteEntry", value=str(c.index), color="#{:02x}{:02x}{:02x}".format(*c.color),
                      alpha="255", label=c.name)
    _qml_tail(pipe, root)
    return _xml_text(root, doctype=True)


def probability_qml(band: int = 1, band_name: str = "", vmin: float = 0.0, vmax: float = 1.0,
                    ramp: Sequence[tuple[float, str]] = PROBABILITY_RAMP) -> str:
    """A QGIS style: single-band pseudocolor ramp of ``band`` from ``vmin`` to ``vmax`` (probability units).

    Args:
        band: 1-based band shown.
        band_name: class name of that band, used in the colour-ramp labels.
        vmin, vmax: values at the ends of the ramp, after GDAL's band scale and offset.
        ramp: (position 0..1, ``#rrggbb``) stops.
    """
    root, pipe = _qml_root()
    renderer = ET.SubElement(pipe, "rasterrenderer", type="singlebandpseudocolor", band=str(band), opacity="1",
                             alphaBand="-1", classificationMin=repr(vmin), classificationMax=repr(vmax),
                             nodataColor="")
    ET.SubElement(renderer, "rasterTransparency")
    origin = ET.SubElement(renderer, "minMaxOrigin")
    for tag, text in (("limits", "None"), ("extent", "WholeRaster"), ("statAccuracy", "Estimated")):
        ET.SubElement(origin, tag).text = text
    shader = ET.SubElement(ET.SubElement(renderer, "rastershader"), "colorrampshader", colorRampType="INTERPOLATED",
                           classificationMode="1", clip="0", minimumValue=repr(vmin), maximumValue=repr(vmax),
                           labelPrecision="2")
    prefix = f"{band_name} " if band_name else ""
    for pos, color in ramp:
        value = vmin + pos * (vmax - vmin)
        ET.SubElement(shader, "item", alpha="255", value=repr(value), label=f"{prefix}{value:.2f}", color=color)
    _qml_tail(pipe, root)
    return _xml_text(root, doctype=True)


def write_label_qml(raster: str | os.PathLike, classes: ClassMap) -> Path:
    """Write ``<raster stem>.qml``: QGIS's paletted style of a label raster (:func:`label_qml`)."""
    qml = qml_path(raster)
    with atomic_output(qml) as tmp:
        tmp.write_text(label_qml(classes))
    return qml


def write_label_styles(raster: str | os.PathLike, classes: ClassMap) -> list[Path]:
    """Write the PAM side-car (category names, attribute table) and the ``.qml`` of a label raster.

    Returns:
        The files written: ``<raster>.aux.xml`` and ``<raster stem>.qml``.
    """
    return [write_label_pam(raster, classes), write_label_qml(raster, classes)]


def write_probability_style(raster: str | os.PathLike, band: int = 1, band_name: str = "") -> Path:
    """Write ``<raster stem>.qml``: a 0..1 pseudocolor ramp of ``band`` (named ``band_name``)."""
    qml = qml_path(raster)
    with atomic_output(qml) as tmp:
        tmp.write_text(probability_qml(band, band_name))
    return qml


def _qml_root() -> tuple[ET.Element, ET.Element]:
    root = ET.Element("qgis", version="3.28.0", styleCategories="AllStyleCategories")
    return root, ET.SubElement(root, "pipe")


def _qml_tail(pipe: ET.Element, root: ET.Element) -> None:
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(root, "blendMode").text = "0"


def _xml_text(root: ET.Element, doctype: bool = False) -> str:
    ET.indent(root, space="  ")
    head = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" if doctype else ""
    return head + ET.tostring(root, encoding="unicode") + "\n"


def _write_xml(path: Path, root: ET.Element) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(_xml_text(root))
