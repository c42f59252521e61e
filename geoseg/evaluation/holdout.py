"""The held-out area of a tiled dataset: the union of the windows of one split, per scene.

:func:`split_areas` reads ``DIR/index.csv`` and returns, per scene, an
:class:`~geoseg.evaluation.area.Area` made of the window footprints (``minx, miny, maxx, maxy``
in the scene CRS) of the patches of that split; ``geoseg evaluate --dataset DIR --split val``
masks each evaluated window with it in memory (pixel-centre rule: exact on the scene grid).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import shapely
from rasterio.crs import CRS

from geoseg.errors import DatasetError
from geoseg.evaluation.area import Area

INDEX_FILE = "index.csv"


def _index_rows(dataset: str | os.PathLike, need: tuple[str, ...] = ("scene", "split")
                ) -> tuple[Path, list[dict[str, str]]]:
    """Rows of ``DIR/index.csv`` (``dataset`` may also name the csv itself), with the ``need`` columns."""
    p = Path(dataset)
    index = p if p.suffix.lower() == ".csv" else p / INDEX_FILE
    if not index.exists():
        raise DatasetError(f"no dataset index: {index} (expected the output folder of 'geoseg tile')")
    with index.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = set(need) - set(rows[0]) if rows else set()
    if missing:
        raise DatasetError(f"{index} lacks column(s) {', '.join(sorted(missing))}")
    return index, rows


def split_areas(dataset: str | os.PathLike, split: str) -> dict[str, Area]:
    """Per scene (file stem), the area covered by the windows of ``split`` in ``DIR/index.csv``.

    Scenes of the dataset without any window of ``split`` are absent from the result.

    Raises:
        DatasetError: no index, or no row of that split at all (the splits found are listed).
    """
    index, rows = _index_rows(dataset, ("scene", "split", "minx", "miny", "maxx", "maxy", "crs"))
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    crs: dict[str, str] = {}
    for row in rows:
        if row["split"] != split:
            continue
        stem = Path(row["scene"]).stem
        boxes.setdefault(stem, []).append(
            (float(row["minx"]), float(row["miny"]), float(row["maxx"]), float(row["maxy"])))
        crs.setdefault(stem, row["crs"])
    if not boxes:
        found = sorted({r["split"] for r in rows})
        raise DatasetError(f"{index} has no patch of split {split!r}; splits found: {', '.join(found) or '(none)'}")
    out = {}
    for stem, b in boxes.items():
        arr = np.asarray(b, dtype=np.float64)
        geoms = shapely.box(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
        out[stem] = Area(geometries=np.asarray(geoms, dtype=object),
                         crs=CRS.from_user_input(crs[stem]) if crs[stem] else None,
                         source=f"{index} (split {split!r}, scene {stem})")
    return out


def scene_names(dataset: str | os.PathLike) -> list[str]:
    """File stems of the scenes listed in ``DIR/index.csv``."""
    _, rows = _index_rows(dataset)
    return sorted({Path(r["scene"]).stem for r in rows})
