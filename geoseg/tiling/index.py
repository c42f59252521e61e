"""The dataset index: ``index.csv`` + ``footprints.gpkg``, and the run journal for ``--resume``.

One row per patch (docs/design.md, "Dataset folder")::

    id, scene, split, row_off, col_off, width, height, minx, miny, maxx, maxy, crs,
    nodata_fraction, labeled_fraction, image, label, count_0 .. count_{K-1}

While a run is in progress, finished rows are appended to ``.journal.jsonl`` in the dataset
folder (first line: the run parameters). A killed run leaves it behind; ``--resume`` reads it
(and a finished ``index.csv``) to skip patches already written and listed.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine

from geoseg.errors import DatasetError
from geoseg.io.atomic import atomic_output
from geoseg.io.run_record import check_same_parameters

INDEX_FILE = "index.csv"
FOOTPRINTS_FILE = "footprints.gpkg"
JOURNAL_FILE = ".journal.jsonl"
SPLIT_FILE = "split.gpkg"
SPLITS = ("train", "val")
#: Patch ids of each split, one per line (``geoseg train --train-list/--val-list`` reads them).
LIST_FILES = {"train": "train.txt", "val": "val.txt"}

BASE_COLUMNS = ("id", "scene", "split", "row_off", "col_off", "width", "height", "minx", "miny", "maxx", "maxy",
                "crs", "nodata_fraction", "labeled_fraction", "image", "label")
INT_COLUMNS = ("row_off", "col_off", "width", "height")
FLOAT_COLUMNS = ("minx", "miny", "maxx", "maxy", "nodata_fraction", "labeled_fraction")


def columns(num_classes: int) -> list[str]:
    """Index columns for ``num_classes`` classes."""
    return [*BASE_COLUMNS, *(f"count_{k}" for k in range(num_classes))]


def _cells(row: dict[str, Any], num_classes: int) -> list[Any]:
    counts = list(row.get("counts", []))
    counts += [0] * (num_classes - len(counts))
    return [row[c] for c in BASE_COLUMNS] + counts[:num_classes]


def write_index(folder: str | os.PathLike, rows: Sequence[dict[str, Any]], num_classes: int) -> None:
    """Write ``index.csv`` and ``footprints.gpkg`` atomically.

    Args:
        folder: dataset folder.
        rows: patch rows (keys of :data:`BASE_COLUMNS` plus ``counts``: pixels per class).
        num_classes: number of ``count_k`` columns.
    """
    folder = Path(folder)
    with atomic_output(folder / INDEX_FILE) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(columns(num_classes))
            for row in rows:
                w.writerow(_cells(row, num_classes))
    write_footprints(folder / FOOTPRINTS_FILE, rows, num_classes)


def load_writers() -> None:
    """Import the GeoPackage writer (pyogrio) ahead of :func:`write_index` / :func:`write_split_areas`:
    a run whose patches are tiled elsewhere (workers) calls this while it waits for them (about
    0.05 s of imports off the run's serial end)."""
    import pyogrio  # noqa: F401  # geoseg.io.vector imports it on first use
    import shapely.affinity  # noqa: F401

    import geoseg.io.vector  # noqa: F401


def write_lists(folder: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> list[Path]:
    """Write ``train.txt`` and ``val.txt``: the ids of each split's patches, in index order (always both)."""
    from geoseg.io.lists import write_id_list

    return [write_id_list(Path(folder) / name, (r["id"] for r in rows if r["split"] == split))
            for split, name in LIST_FILES.items()]


def write_footprints(path: Path, rows: Sequence[dict[str, Any]], num_classes: int) -> None:
    """One polygon per patch (window bounds, scene CRS); one layer per CRS (``footprints[_<epsg>]``)."""
    from geoseg.io.vector import write_vector

    by_crs: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_crs.setdefault(row["crs"], []).append(row)
    if not by_crs:
        by_crs[""] = []
    cols = columns(num_classes)
    with atomic_output(path) as tmp:
        for n, (crs, group) in enumerate(by_crs.items()):
            layer = "footprints" if len(by_crs) == 1 else f"footprints_{_crs_tag(crs)}"
            geoms = shapely.box([r["minx"] for r in group], [r["miny"] for r in group],
                                [r["maxx"] for r in group], [r["maxy"] for r in group]) if group else []
            table = [_cells(r, num_classes) for r in group]
            attrs = {}
            for j, c in enumerate(cols):
                vals = [t[j] for t in table]
                if c in INT_COLUMNS or c.startswith("count_"):
                    attrs[c] = np.asarray(vals, dtype=np.int64)
                elif c in FLOAT_COLUMNS:
                    attrs[c] = np.asarray(vals, dtype=np.float64)
                else:
                    attrs[c] = np.asarray(vals, dtype=object)
            write_vector(tmp, geoms, attrs, crs=crs or None, layer=layer, driver="GPKG",
                         geometry_type="Polygon", append=n > 0)


def write_split_areas(path: Path, areas: Mapping[tuple[str, str], shapely.Geometry],
                      scenes: Mapping[str, tuple[Affine, str]]) -> None:
    """``split.gpkg``: per split a layer (``train``, ``val``) with one feature per scene, the union of
    that split's windows, in the scene CRS (layers ``<split>_<epsg>`` when scenes differ in CRS).

    Args:
        path: output file.
        areas: ``(scene, split) ->`` union of the windows in scene pixel coordinates (x = column,
            y = row), as :func:`geoseg.tiling.split.split_areas` returns.
        scenes: scene name -> (affine transform, CRS text) mapping pixels to the scene CRS.

    Attributes of each feature: ``scene``, ``split``.
    """
    from shapely.affinity import affine_transform

    from geoseg.io.vector import write_vector

    crs_of = {name: crs for name, (_, crs) in scenes.items()}
    crss = list(dict.fromkeys(crs_of[name] for name in scenes)) or [""]
    with atomic_output(path) as tmp:
        n = 0
        for crs in crss:
            for split in SPLITS:
                names = [name for name in scenes if crs_of[name] == crs and (name, split) in areas]
                geoms = []
                for name in names:
                    t = scenes[name][0]
                    geoms.append(affine_transform(areas[(name, split)], [t.a, t.b, t.d, t.e, t.c, t.f]))
                layer = split if len(crss) == 1 else f"{split}_{_crs_tag(crs)}"
                attrs = {"scene": np.asarray(names, dtype=object), "split": np.asarray([split] * len(names), object)}
                write_vector(tmp, geoms, attrs, crs=crs or None, layer=layer, driver="GPKG",
                             geometry_type="MultiPolygon", append=n > 0)
                n += 1


def _crs_tag(crs: str) -> str:
    return crs.split(":", 1)[1] if crs.upper().startswith("EPSG:") else str(abs(hash(crs)) % 10**8)


def read_index(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of ``index.csv`` with typed values and ``counts`` (list of class pixel counts).

    Raises:
        DatasetError: the file is missing or lacks index columns.
    """
    path = Path(folder) / INDEX_FILE
    if not path.exists():
        raise DatasetError(f"no {INDEX_FILE} in dataset folder {Path(folder)}")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in BASE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}")
        count_cols = [c for c in reader.fieldnames if c.startswith("count_")]
        rows = []
        for rec in reader:
            row: dict[str, Any] = {c: rec[c] for c in BASE_COLUMNS}
            for c in INT_COLUMNS:
                row[c] = int(row[c])
            for c in FLOAT_COLUMNS:
                row[c] = float(row[c])
            row["counts"] = [int(rec[c]) for c in count_cols]
            rows.append(row)
    return rows


class Journal:
    """Append-only record of finished rows during a run (``.journal.jsonl``).

    The first line holds the run parameters; ``--resume`` refuses a journal or dataset made
    with other parameters, since mixing them would not give the dataset either run would.
    """

    def __init__(self, folder: str | os.PathLike, parameters: dict[str, Any]) -> None:
        self.path = Path(folder) / JOURNAL_FILE
        self.parameters = parameters
        self._fh = None

    def load(self) -> list[dict[str, Any]]:
        """Rows recorded by an interrupted run with the same parameters (a torn last line is ignored).

        Raises:
            InvalidParameterError: the journal was written with other parameters.
        """
        if not self.path.exists():
            return []
        rows = []
        with open(self.path) as fh:
            for n, line in enumerate(fh):
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the last line of a killed run may be cut short
                if n == 0:
                    check_same_parameters(rec.get("parameters", {}), self.parameters, self.path)
                elif "id" in rec:
                    rows.append(rec)
        return rows

    def open(self, rows: Iterable[dict[str, Any]] = ()) -> None:
        """Start a fresh journal holding ``rows`` (kept from an interrupted run)."""
        with atomic_output(self.path) as tmp, open(tmp, "w") as fh:
            fh.write(json.dumps({"parameters": self.parameters}) + "\n")
            for row in rows:
                fh.write(json.dumps(row) + "\n")
        self._fh = open(self.path, "a")

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()

    def close(self, remove: bool = False) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if remove and self.path.exists():
            self.path.unlink()
