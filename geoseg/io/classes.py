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

#: Label value that means "no label / ignore" in every geoseg label raster.
IGNORE_INDEX = 255

#: Colors for classes without one (a qualitative palette, index order).
DEFAULT_COLORS = [
    (0, 0, 0), (230, 25, 75), (128, 128, 128), (0, 130, 200), (60, 180, 75), (255, 225, 25),
    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195),
    (128, 128, 0), (255, 215, 180), (0, 0, 128),
]


@dataclass(frozen=True)
class ClassInfo:
    """One class: its label value, name and display color (r, g, b in 0..255)."""

    index: int
    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True)
class ClassMap:
    """An ordered set of classes with indices 0..n-1 (gaps allowed but unusual)."""

    classes: tuple[ClassInfo, ...]

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
        """Classes 0..n-1 with default colors."""
        return cls(tuple(ClassInfo(i, n, DEFAULT_COLORS[i % len(DEFAULT_COLORS)]) for i, n in enumerate(names)))

    @classmethod
    def default(cls, num_classes: int) -> ClassMap:
        """``class_0 .. class_{n-1}`` with default colors."""
        return cls.from_names([f"class_{i}" for i in range(num_classes)])

    def to_json(self) -> list[dict[str, Any]]:
        return [{"index": c.index, "name": c.name, "color": list(c.color)} for c in self.classes]

    @classmethod
    def from_json(cls, items: list[dict[str, Any]]) -> ClassMap:
        out = []
        for i, it in enumerate(items):
            idx = int(it.get("index", i))
            r, g, b = (int(v) for v in list(it.get("color", DEFAULT_COLORS[idx % len(DEFAULT_COLORS)]))[:3])
            out.append(ClassInfo(idx, str(it.get("name", f"class_{idx}")), (r, g, b)))
        return cls(tuple(sorted(out, key=lambda c: c.index)))

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """GDAL color table: index -> (r, g, b, 255); the ignore value is transparent black."""
        cmap = {c.index: (*c.color, 255) for c in self.classes}
        cmap[IGNORE_INDEX] = (0, 0, 0, 0)
        return cmap

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a JSON palette file."""
        Path(path).write_text(json.dumps({"classes": self.to_json()}, indent=2) + "\n")


def load_palette(path: str | os.PathLike[str]) -> ClassMap:
    """Read a palette file (JSON or ``index,name,r,g,b`` lines).

    Raises:
        InputNotFoundError: no such file.
        PaletteError: the file cannot be parsed.
    """
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"no such palette file: {p}")
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
    keys = np.array([(r << 16) | (g << 8) | b for (r, g, b) in classes.colors], dtype=np.uint32)
    values = np.array([c.index for c in classes.classes], dtype=np.uint8)
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
    """Map class indices ``(H, W)`` to RGB ``(3, H, W)`` uint8; unknown indices become black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
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
