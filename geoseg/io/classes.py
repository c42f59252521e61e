"""Class maps: index <-> name <-> color, and palette files.

A palette file is JSON::

    {"classes": [{"index": 0, "name": "background", "color": [0, 0, 0]}, ...]}

or a text/CSV file with one class a line: ``index,name,r,g,b`` (``#`` starts a comment).
The same class map is stored in ``dataset.json`` and in a bundle's ``geoseg.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import InputNotFoundError, PaletteError
from geoseg.io.palettes import PALETTES

#: Label value that means "no label / ignore" in every geoseg label raster.
IGNORE_INDEX = 255

#: Colours for classes without a name that says one: Okabe-Ito's colour-blind-safe set (black
#: first, for background), then Paul Tol's "muted" scheme; further classes get generated colours.
DEFAULT_COLORS = [
    (0, 0, 0), (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
    (213, 94, 0), (204, 121, 167),
    (51, 34, 136), (136, 204, 238), (68, 170, 153), (17, 119, 51), (153, 153, 51), (221, 204, 119),
    (204, 102, 119), (136, 34, 85), (170, 68, 153), (221, 221, 221),
]

#: Conventional colours of common land-cover class names (words of the name, singular, lower case).
NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    **dict.fromkeys(("background", "bg", "unlabeled", "unlabelled", "void", "nodata", "none", "other",
                     "clutter"), (0, 0, 0)),
    **dict.fromkeys(("building", "house", "roof", "rooftop", "built", "urban", "settlement"), (220, 30, 30)),
    **dict.fromkeys(("road", "street", "highway", "impervious", "pavement", "parking", "railway", "rail"),
                    (128, 128, 128)),
    **dict.fromkeys(("water", "river", "lake", "sea", "ocean", "pond", "reservoir", "stream"), (30, 110, 220)),
    **dict.fromkeys(("forest", "tree", "wood", "woodland"), (20, 110, 40)),
    **dict.fromkeys(("vegetation", "shrub", "shrubland", "park"), (60, 170, 60)),
    **dict.fromkeys(("grass", "grassland", "meadow", "lawn", "pasture"), (140, 210, 100)),
    **dict.fromkeys(("crop", "cropland", "agriculture", "farmland", "field"), (235, 200, 60)),
    **dict.fromkeys(("bare", "soil", "barren", "dirt", "sand", "earth"), (160, 110, 60)),
    **dict.fromkeys(("wetland", "marsh", "swamp"), (0, 150, 160)),
    **dict.fromkeys(("snow", "ice", "glacier"), (235, 245, 255)),
    **dict.fromkeys(("cloud",), (250, 250, 250)),
    **dict.fromkeys(("shadow",), (50, 50, 50)),
    **dict.fromkeys(("car", "vehicle", "truck"), (255, 140, 0)),
}


def named_color(name: str) -> tuple[int, int, int] | None:
    """The conventional colour of a class name (``"Low vegetation"`` -> green), or None.

    The name is split into words (non-alphanumerics separate them) and a trailing plural ``s``
    is dropped; the first word found in :data:`NAMED_COLORS` decides.
    """
    words = "".join(ch if ch.isalnum() else " " for ch in name.lower()).split()
    for word in words:
        for key in (word, word[:-1] if word.endswith("s") else word):
            if key in NAMED_COLORS:
                return NAMED_COLORS[key]
    return None


def _palette_color(n: int) -> tuple[int, int, int]:
    """The n-th colour of :data:`DEFAULT_COLORS`, continued by golden-angle hues past its end."""
    if n < len(DEFAULT_COLORS):
        return DEFAULT_COLORS[n]
    import colorsys

    k = n - len(DEFAULT_COLORS)
    r, g, b = colorsys.hsv_to_rgb((k * 0.618033988749895) % 1.0, 0.55 + 0.45 * ((k // 7) % 2), 0.5 + 0.5 * (k % 3) / 2)
    return (round(r * 255), round(g * 255), round(b * 255))


def default_colors(names: list[str],
                   fixed: dict[int, tuple[int, int, int]] | None = None) -> list[tuple[int, int, int]]:
    """Display colours for classes ``0..n-1`` named ``names``, all distinct.

    A class in ``fixed`` (an explicit palette colour) keeps it. A name with a conventional
    colour (:func:`named_color`: building red, road grey, water blue, vegetation green, bare
    soil brown, background black...) gets it unless another class already has it; every other
    class gets the next unused colour of the colour-blind-safe :data:`DEFAULT_COLORS` sequence
    (from its index on, so ``class_0`` is black).

    Args:
        names: class names, index order.
        fixed: class index -> colour given explicitly; never changed, never reused.
    """
    out: dict[int, tuple[int, int, int]] = dict(fixed or {})
    used = set(out.values())
    for i, name in enumerate(names):  # conventional colours first, so they win over the palette
        color = named_color(name)
        if i not in out and color is not None and color not in used:
            out[i] = color
            used.add(color)
    n = 0
    for i in range(len(names)):
        if i not in out:
            n = max(n, i)
            while _palette_color(n) in used:
                n += 1
            out[i] = _palette_color(n)
            used.add(out[i])
    return [out[i] for i in range(len(names))]


@dataclass(frozen=True)
class ClassInfo:
    """One class: its label value, name and display color (r, g, b in 0..255)."""

    index: int
    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True)
class ClassMap:
    """An ordered set of classes with indices 0..n-1 (gaps allowed but unusual).

    ``ignore_colors``: colours of colour-coded label rasters that read as :data:`IGNORE_INDEX`
    (VOC's border, Cityscapes' unused labels; see :mod:`geoseg.io.palettes`); not stored in JSON.
    """

    classes: tuple[ClassInfo, ...]
    ignore_colors: tuple[tuple[int, int, int], ...] = ()

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def num_classes(self) -> int:
        """Number of model outputs: the largest index plus one."""
        return max(c.index for c in self.classes) + 1 if self.classes else 0

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def colors(self) -> list[tuple[int, int, int]]:
        return [c.color for c in self.classes]

    @classmethod
    def from_names(cls, names: list[str]) -> ClassMap:
        """Classes 0..n-1 with default colors (:func:`default_colors`)."""
        return cls(tuple(ClassInfo(i, n, c) for i, (n, c) in enumerate(zip(names, default_colors(names)))))

    @classmethod
    def default(cls, num_classes: int) -> ClassMap:
        """``class_0 .. class_{n-1}`` with default colors."""
        return cls.from_names([f"class_{i}" for i in range(num_classes)])

    def to_json(self) -> list[dict[str, Any]]:
        return [{"index": c.index, "name": c.name, "color": list(c.color)} for c in self.classes]

    @classmethod
    def from_json(cls, items: list[dict[str, Any]]) -> ClassMap:
        indices = [int(it.get("index", i)) for i, it in enumerate(items)]
        names = {idx: str(it.get("name", f"class_{idx}")) for idx, it in zip(indices, items)}
        explicit = {idx: _rgb(it["color"]) for idx, it in zip(indices, items) if it.get("color") is not None}
        size = max(indices, default=-1) + 1  # indices are label values, 0..255
        colors = default_colors([names.get(i, f"class_{i}") for i in range(size)], explicit)
        out = [ClassInfo(idx, names[idx], colors[idx]) for idx in indices]
        return cls(tuple(sorted(out, key=lambda c: c.index)))

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """GDAL color table: index -> (r, g, b, 255); the ignore value is transparent black."""
        cmap = {c.index: (*c.color, 255) for c in self.classes}
        cmap[IGNORE_INDEX] = (0, 0, 0, 0)
        return cmap

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a JSON palette file."""
        Path(path).write_text(json.dumps({"classes": self.to_json()}, indent=2) + "\n")


def _rgb(value: Any) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in list(value)[:3])
    return (r, g, b)


def named_palette(name: str) -> ClassMap | None:
    """The class map of a named palette (``voc``, ``cityscapes``, ``potsdam``, ``vaihingen``), or None."""
    palette = PALETTES.get(name.strip().lower())
    if palette is None:
        return None
    return ClassMap(tuple(ClassInfo(i, n, c) for i, (n, c) in enumerate(zip(palette.names, palette.colors))),
                    palette.ignore_colors)


def load_palette(path: str | os.PathLike[str]) -> ClassMap:
    """Read a palette file (JSON or ``index,name,r,g,b`` lines), or a named palette when no such file exists.

    Raises:
        InputNotFoundError: no such file (nor palette name).
        PaletteError: the file cannot be parsed.
    """
    p = Path(path)
    if not p.exists():
        named = named_palette(str(path))
        if named is not None:
            return named
        raise InputNotFoundError(f"no such palette file: {p} (named palettes: {', '.join(PALETTES)})")
    text = p.read_text()
    try:
        if p.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
            doc = json.loads(text)
            items = doc["classes"] if isinstance(doc, dict) else doc
            return ClassMap.from_json(items)
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = [s.strip() for s in line.replace(";", ",").split(",")]
            if len(parts) != 5:
                raise PaletteError(f"{p}:{n}: expected 'index,name,r,g,b', found {line!r}")
            items.append({"index": int(parts[0]), "name": parts[1], "color": [int(v) for v in parts[2:]]})
        return ClassMap.from_json(items)
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        if isinstance(exc, PaletteError):
            raise
        raise PaletteError(f"cannot parse palette file {p}: {exc}") from None


def color_to_index(rgb: np.ndarray, classes: ClassMap, source: str = "label raster") -> np.ndarray:
    """Map an RGB label array ``(3, H, W)`` uint8 to class indices ``(H, W)`` uint8.

    Raises:
        PaletteError: colors not in the palette; the message lists them with pixel counts.
    """
    if rgb.shape[0] < 3:
        raise PaletteError(f"{source}: a color-coded label needs 3 bands, found {rgb.shape[0]}")
    packed = (rgb[0].astype(np.uint32) << 16) | (rgb[1].astype(np.uint32) << 8) | rgb[2].astype(np.uint32)
    ignore = [c for c in classes.ignore_colors if c not in set(classes.colors)]  # a class colour wins
    keys = np.array([(r << 16) | (g << 8) | b for (r, g, b) in classes.colors + ignore], dtype=np.uint32)
    values = np.array([c.index for c in classes.classes] + [IGNORE_INDEX] * len(ignore), dtype=np.uint8)
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    found = keys[pos] == packed
    if not found.all():
        bad, counts = np.unique(packed[~found], return_counts=True)
        listed = ", ".join(
            f"({v >> 16},{(v >> 8) & 255},{v & 255}): {c} px" for v, c in list(zip(bad.tolist(), counts.tolist()))[:10]
        )
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise PaletteError(f"{source}: {len(bad)} color(s) not in the palette: {listed}{more}")
    out: np.ndarray = values[pos].astype(np.uint8)
    return out


def index_to_color(index: np.ndarray, classes: ClassMap) -> np.ndarray:
    """Map class indices ``(H, W)`` to RGB ``(3, H, W)`` uint8; unknown indices become black.

    255 takes the first of ``classes.ignore_colors`` (VOC's border colour), if any.
    """
    lut = np.zeros((256, 3), dtype=np.uint8)
    if classes.ignore_colors:
        lut[IGNORE_INDEX] = classes.ignore_colors[0]
    for c in classes.classes:
        lut[c.index] = c.color
    return np.moveaxis(lut[index.astype(np.uint8)], -1, 0)


#: Raster tag holding a class map as a JSON list of ``{index, name, color}`` (label rasters).
CLASSES_TAG = "GEOSEG_CLASSES"


def classes_to_tag(classes: ClassMap) -> str:
    """The :data:`CLASSES_TAG` value for a class map (compact JSON)."""
    return json.dumps(classes.to_json(), separators=(",", ":"))


def classes_from_tags(tags: dict[str, str]) -> ClassMap | None:
    """The class map stored under :data:`CLASSES_TAG` in raster tags, or None when absent or unparsable."""
    text = tags.get(CLASSES_TAG)
    if not text:
        return None
    try:
        items = json.loads(text)
        return ClassMap.from_json(items["classes"] if isinstance(items, dict) else items)
    except (ValueError, TypeError, KeyError):
        return None


def parse_class_spec(spec: str) -> ClassMap:
    """``--classes``: a palette file (JSON or ``index,name,r,g,b`` lines), a named palette (``voc``,
    ``cityscapes``, ``potsdam``, ``vaihingen``: :mod:`geoseg.io.palettes`) or comma-separated names.

    Raises:
        PaletteError: an unreadable palette, or repeated names.
    """
    p = Path(spec)
    if p.is_file() or p.suffix.lower() in (".json", ".csv", ".txt") or named_palette(spec) is not None:
        return load_palette(spec)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if len({n.lower() for n in names}) != len(names):
        raise PaletteError(f"--classes has repeated names: {spec}")
    return ClassMap.from_names(names)
