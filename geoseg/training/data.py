"""Training input: a tiled dataset folder -> checked, cached patch pairs.

Reading: each patch pair is read once into an ``.npy`` memmap shard per split (``cache``), kept
in ``DATASET/.geoseg_cache/`` (or ``OUT/cache/`` when the dataset folder is read-only) under a
key that changes whenever the index or any patch file changes, so a rerun reuses it; or, without
the cache, straight from the GeoTIFF / ``.npy`` patches on every epoch. The ``tf.data``
pipeline over these sources is in :mod:`geoseg.training.pipeline`.

Shapes: an image patch is ``(H, W, C)`` in the dataset dtype and a label ``(H, W)`` uint8 class
indices, with ``ignore_index`` wherever the label is unknown or the image is nodata in every band.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import DatasetError, InputNotFoundError, UnreadableRasterError
from geoseg.io.atomic import atomic_output
from geoseg.io.classes import IGNORE_INDEX, ClassMap
from geoseg.io.normalization import from_statistics
from geoseg.io.raster import gdal_env, valid_mask

log = logging.getLogger(__name__)

CACHE_DIR = ".geoseg_cache"


@dataclass
class DatasetInfo:
    """A tiled dataset folder: its ``dataset.json`` and the rows of ``index.csv``."""

    root: Path
    meta: dict[str, Any]
    rows: list[dict[str, str]]

    @property
    def classes(self) -> ClassMap:
        items = self.meta.get("classes")
        return ClassMap.from_json(items) if items else ClassMap.default(int(self.meta["num_classes"]))

    @property
    def num_classes(self) -> int:
        return int(self.meta.get("num_classes") or self.classes.num_classes)

    @property
    def bands(self) -> list[int]:
        return list(self.meta.get("bands") or [])

    @property
    def tile_size(self) -> int:
        return int(self.meta.get("tile_size") or self.meta.get("parameters", {}).get("size"))

    @property
    def nodata(self) -> float | None:
        return self.meta.get("nodata")

    @property
    def label_ignore(self) -> int:
        """The value the dataset's label patches use for "no label" (255 from the tiler)."""
        return int(self.meta.get("ignore_index", IGNORE_INDEX))


def load_dataset(path: str | os.PathLike) -> DatasetInfo:
    """Open a dataset folder and check that it has labels and patches.

    Raises:
        InputNotFoundError: no such folder.
        DatasetError: ``dataset.json`` / ``index.csv`` missing or unreadable, no rows, no labels.
    """
    root = Path(path)
    if not root.exists():
        raise InputNotFoundError(f"no such dataset folder: {root}")
    if not root.is_dir():
        raise DatasetError(f"a dataset is a folder with index.csv and dataset.json, found a file: {root}")
    mf, idx = root / "dataset.json", root / "index.csv"
    for f in (mf, idx):
        if not f.exists():
            raise DatasetError(f"not a geoseg dataset (no {f.name}; create one with 'geoseg tile'): {root}")
    try:
        meta = json.loads(mf.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"corrupt {mf}: {exc}") from None
    for key in ("num_classes", "statistics"):
        if key not in meta:
            raise DatasetError(f"{mf} lacks key {key!r}")
    with idx.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise DatasetError(f"dataset has no patches (empty {idx})")
    missing = [c for c in ("id", "split", "image", "label") if c not in rows[0]]
    if missing:
        raise DatasetError(f"{idx} lacks column(s): {', '.join(missing)}")
    if not any(r.get("label") for r in rows):
        raise DatasetError(f"dataset has no label patches (tiled without labels?): {root}")
    info = DatasetInfo(root, meta, rows)
    if not info.tile_size:
        raise DatasetError(f"{mf} lacks 'tile_size'")
    return info


def split_rows(info: DatasetInfo, val_from: str | None = None,
               val_fraction: float = 0.2, train_list: str | None = None,
               val_list: str | None = None) -> tuple[list[dict], list[dict]]:
    """Training and validation rows of the index.

    Args:
        val_from: None uses the ``val`` split; ``"train"`` holds out a spatial block of the
            training patches (see :func:`spatial_holdout`) and ignores any ``val`` rows.
        val_fraction: held-out share with ``val_from="train"``.
        train_list, val_list: id list files deciding the splits (:mod:`geoseg.training.lists`).

    Raises:
        DatasetError: no training patches, or no validation patches and no ``val_from``; a list
            names ids the index does not hold.
    """
    from geoseg.training.lists import apply_id_lists

    rows = apply_id_lists(info.rows, train_list, val_list, info.root / "index.csv")
    train = [r for r in rows if r["split"] == "train" and r.get("label")]
    val = [r for r in rows if r["split"] == "val" and r.get("label")]
    if not train:
        raise DatasetError(f"dataset has no training patches (split=train) in {info.root / 'index.csv'}")
    if val_from == "train":
        return spatial_holdout(train, val_fraction)
    if not val:
        raise DatasetError(f"dataset has no validation patches (split=val) in {info.root / 'index.csv'}; "
                           "tile with a validation split or pass --val-from train")
    return train, val


def spatial_holdout(rows: list[dict], fraction: float) -> tuple[list[dict], list[dict]]:
    """Hold out the east ``fraction`` of each scene's patch columns for validation.

    Per scene, with ``x0``/``x1`` the smallest column offset and largest right edge (pixels)
    and ``cut = x1 - fraction * (x1 - x0)``: patches with ``col_off >= cut`` validate, patches
    with ``col_off + width <= cut`` train, and patches straddling ``cut`` are dropped, so that
    overlapping (stride < size) patches never put the same pixels on both sides.

    Raises:
        DatasetError: the holdout leaves either side empty.
    """
    by_scene: dict[str, list[dict]] = {}
    for r in rows:
        by_scene.setdefault(r.get("scene", ""), []).append(r)
    train, val = [], []
    for scene_rows in by_scene.values():
        x0 = min(int(r["col_off"]) for r in scene_rows)
        x1 = max(int(r["col_off"]) + int(r["width"]) for r in scene_rows)
        cut = x1 - fraction * (x1 - x0)
        for r in scene_rows:
            c, w = int(r["col_off"]), int(r["width"])
            if c >= cut:
                val.append(r)
            elif c + w <= cut:
                train.append(r)
    if not train or not val:
        raise DatasetError(f"--val-from train with --val-fraction {fraction} leaves {len(train)} training and "
                           f"{len(val)} validation patches; tile more patches or change --val-fraction")
    return train, val


def class_counts(rows: list[dict], num_classes: int) -> np.ndarray:
    """Pixels per class summed over ``rows`` (index columns ``count_k``), ``(K,)`` int64."""
    out = np.zeros(num_classes, np.int64)
    for r in rows:
        for k in range(num_classes):
            v = r.get(f"count_{k}")
            if v:
                out[k] += int(float(v))
    return out


def normalization_for(info: DatasetInfo, method: str) -> dict | None:
    """The normalization dict (see :mod:`geoseg.io.normalization`) for ``meanstd``/``percentile``/``none``."""
    if method == "none":
        return None
    try:
        return from_statistics(info.meta["statistics"], method)
    except KeyError as exc:
        raise DatasetError(f"{info.root / 'dataset.json'} statistics lack {exc} "
                           f"needed by --normalization {method}") from None


def _header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of a patch file from its header only: ``(C, H, W)`` for a GeoTIFF, the array's for ``.npy``.

    Raises:
        OSError, ValueError: missing or unreadable file (rasterio's errors are ``OSError`` subclasses).
    """
    if path.suffix == ".npy":
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
        return tuple(shape), np.dtype(dtype)
    import rasterio

    with rasterio.open(path) as ds:
        return (ds.count, ds.height, ds.width), np.dtype(ds.dtypes[0])


def _patch_problem(info: DatasetInfo, rel: str, label: bool) -> str | None:
    path = info.root / rel
    if not path.is_file():
        return f"patch file missing: {path}"
    try:
        shape, dtype = _header(path)
    except (OSError, ValueError) as exc:
        why = (str(exc).splitlines() or [""])[0].replace(f"'{path}' ", "")[:160]
        return f"patch file unreadable: {path} ({why or type(exc).__name__})"
    size = info.tile_size
    if label:
        ok = shape in ((size, size), (1, size, size)) and dtype.kind in "ui"
        want = f"1 band of {size}x{size} px, integer class values"
    else:
        bands = len(info.bands) or (shape[0] if len(shape) == 3 else 1)
        expected = info.meta.get("dtype")
        ok = (shape == (bands, size, size) or (bands == 1 and shape == (size, size))) and (
            expected is None or dtype == np.dtype(expected))
        want = f"{bands} band(s) of {size}x{size} px, {expected or 'any type'}"
    if ok:
        return None
    found = f"{shape[0] if len(shape) == 3 else 1} band(s) of {shape[-1]}x{shape[-2]} px, {dtype}"
    return f"patch file does not match dataset.json: {path} (expected {want}, found {found})"


def check_patch_files(info: DatasetInfo, rows: list[dict], workers: int | None = None) -> None:
    """Check every image and label patch of ``rows`` before training starts: present, opens, and its
    band count, size (``tile_size``) and image dtype are those of ``dataset.json``.

    Reads headers only (GeoTIFF tags, the ``.npy`` header), not pixels, so it takes about a
    millisecond per file.

    Raises:
        DatasetError: naming the first bad file (and how many more there are).
    """
    jobs = [(r[key], key == "label") for r in rows for key in ("image", "label") if r.get(key)]
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        problems = [p for p in pool.map(lambda job: _patch_problem(info, *job), jobs) if p]
    if problems:
        for p in problems[1:]:
            log.debug("%s", p)
        more = f" (and {len(problems) - 1} more bad patch file(s); -v lists them)" if len(problems) > 1 else ""
        raise DatasetError(f"{problems[0]}, listed in {info.root / 'index.csv'}{more}")


def _read_array(path: Path) -> tuple[np.ndarray, float | None]:
    """(data (C, H, W) or (H, W), nodata) of a GeoTIFF or ``.npy`` patch."""
    if not path.exists():
        raise DatasetError(f"patch listed in index.csv is missing: {path}")
    if path.suffix == ".npy":
        return np.load(path), None
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(path) as ds:
            return ds.read(), ds.nodata
    except RasterioIOError as exc:
        raise UnreadableRasterError(f"not a readable patch: {path} ({str(exc).splitlines()[0]})") from None


class PatchReader:
    """Reads one (image, label) pair: image ``(H, W, C)`` in the dataset dtype, label ``(H, W)`` uint8.

    Label values: the dataset's "no label" value and image nodata pixels become ``ignore_index``;
    any other value outside ``0..num_classes-1`` raises :class:`DatasetError`.
    """

    def __init__(self, info: DatasetInfo, rows: list[dict], ignore_index: int = IGNORE_INDEX):
        self.info, self.rows, self.ignore_index = info, rows, int(ignore_index)
        self.size = info.tile_size

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        row = self.rows[int(i)]
        img_path, lab_path = self.info.root / row["image"], self.info.root / row["label"]
        with gdal_env():
            img, img_nodata = _read_array(img_path)
            lab, _ = _read_array(lab_path)
        img = img[None] if img.ndim == 2 else img
        lab = lab[0] if lab.ndim == 3 else lab
        nb = len(self.info.bands) or img.shape[0]
        if img.shape != (nb, self.size, self.size):
            raise DatasetError(f"{img_path}: expected a patch of shape ({nb}, {self.size}, {self.size}) "
                               f"(bands, tile_size, tile_size from dataset.json), found {img.shape}")
        if lab.shape != (self.size, self.size):
            raise DatasetError(f"{lab_path}: expected a label of {self.size}x{self.size} pixels, found {lab.shape}")
        nodata = self.info.nodata if self.info.nodata is not None else img_nodata
        lab = lab.astype(np.uint8)
        lab = np.where(lab == self.info.label_ignore, self.ignore_index, lab).astype(np.uint8)
        lab[~valid_mask(img, nodata)] = self.ignore_index
        bad = (lab >= self.info.num_classes) & (lab != self.ignore_index)
        if bad.any():
            raise DatasetError(f"{lab_path} holds class {int(lab[bad].max())} but dataset.json defines "
                               f"{self.info.num_classes} classes (0..{self.info.num_classes - 1})")
        return np.ascontiguousarray(np.moveaxis(img, 0, -1)), lab


@dataclass
class PatchArrays:
    """A split as arrays: images ``(N, H, W, C)`` and labels ``(N, H, W)`` (memmaps or in memory)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        i = int(i)
        return np.asarray(self.images[i]), np.asarray(self.labels[i])


def _cache_key(info: DatasetInfo, rows: list[dict], ignore_index: int) -> str:
    h = hashlib.sha1()
    h.update(json.dumps([ignore_index, info.nodata, info.num_classes, info.tile_size, info.label_ignore]).encode())
    for r in rows:
        for rel in (r["image"], r["label"]):
            st = (info.root / rel).stat()
            h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def cache_arrays(reader: PatchReader, split: str, fallback_dir: Path | None = None,
                 workers: int | None = None) -> PatchArrays:
    """Read every pair once into memmap ``.npy`` shards and return them (reused when the key matches).

    Args:
        reader: the split's patch reader.
        split: name used in the shard file names.
        fallback_dir: shard folder when ``DATASET/.geoseg_cache`` is not writable.
        workers: reader threads (GDAL releases the GIL while decoding).
    """
    info = reader.info
    key = _cache_key(info, reader.rows, reader.ignore_index)
    folder = info.root / CACHE_DIR
    if not _writable(folder):
        if fallback_dir is None:
            raise DatasetError(f"cannot write the patch cache in {folder}; pass an output folder or disable the cache")
        folder = fallback_dir
        folder.mkdir(parents=True, exist_ok=True)
    img_f, lab_f = folder / f"{split}-{key}-images.npy", folder / f"{split}-{key}-labels.npy"
    if img_f.exists() and lab_f.exists():
        log.debug("reusing patch cache %s", img_f)
        return PatchArrays(np.load(img_f, mmap_mode="r"), np.load(lab_f, mmap_mode="r"))
    first_img, _ = reader.read(0)
    n = len(reader)
    with atomic_output(img_f) as ti, atomic_output(lab_f) as tl:
        shards = [np.lib.format.open_memmap(ti, mode="w+", dtype=first_img.dtype, shape=(n, *first_img.shape)),
                  np.lib.format.open_memmap(tl, mode="w+", dtype=np.uint8, shape=(n, reader.size, reader.size))]

        def fill(i: int) -> None:
            shards[0][i], shards[1][i] = reader.read(i)

        with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(fill, range(n)))
        for shard in shards:
            shard.flush()
        shards.clear()  # close the memmaps before the files are renamed into place
    return PatchArrays(np.load(img_f, mmap_mode="r"), np.load(lab_f, mmap_mode="r"))


def check_labels(reader: PatchReader, workers: int | None = None) -> None:
    """Read every pair once (without caching) to fail early on bad shapes or class values."""
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(reader.read, range(len(reader))))


def open_split(info: DatasetInfo, rows: list[dict], split: str, *, ignore_index: int, cache: bool,
               fallback_dir: Path | None) -> PatchReader | PatchArrays:
    """A readable source for ``rows``: cached memmap arrays, or a checked file reader."""
    reader = PatchReader(info, rows, ignore_index)
    if cache:
        return cache_arrays(reader, split, fallback_dir)
    check_labels(reader)
    return reader
