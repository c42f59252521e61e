"""The dataset folder of a tiling run: clear it (``--overwrite``), read what an interrupted run
left (``--resume``), and undo a failed run.

``--overwrite`` does not delete the previous patches before the run starts: their folders
(``images/``, ``labels/``: one file per patch, thousands of unlinks) are renamed aside
(:data:`OLD_PREFIX`, inside the dataset folder) and deleted on a background thread while the
new patches are tiled; :func:`prepare_output` returns that deletion, and the run waits for it
before it returns (and before it releases the folder's lock). A run killed meanwhile leaves the
renamed folder behind; the next run into the folder deletes it the same way.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geoseg.io.atomic import check_output, remove_stale_temps
from geoseg.runtime.threads import BackgroundConsumer
from geoseg.tiling import index as index_mod
from geoseg.tiling.config import TileConfig

DATASET_FILE = "dataset.json"
#: Patch folders of a dataset.
PATCH_FOLDERS = ("images", "labels")
#: Files of a dataset besides the patch folders and dataset.json.
INDEX_FILES = (index_mod.INDEX_FILE, index_mod.FOOTPRINTS_FILE, index_mod.SPLIT_FILE, index_mod.JOURNAL_FILE,
               *index_mod.LIST_FILES.values())
#: Name prefix of a previous run's patch folder renamed aside by ``--overwrite`` (being deleted).
OLD_PREFIX = ".geoseg-old-"


class Removal:
    """Folders being deleted on a background thread; :meth:`wait` (idempotent) blocks until they are gone."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self._consumer: BackgroundConsumer | None = None
        if folders:
            self._consumer = BackgroundConsumer(functools.partial(shutil.rmtree, ignore_errors=True),
                                                depth=len(folders), name="geoseg-remove")
            for folder in folders:
                self._consumer.submit(folder)

    def wait(self) -> None:
        """Wait until every folder is deleted (errors are ignored: a leftover is retried next run)."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()


def prepare_output(cfg: TileConfig, out: Path) -> tuple[list[dict[str, Any]], Removal]:
    """Check/clear the output folder (call it holding the folder's lock).

    Returns:
        The rows an interrupted run left (``--resume``; else empty), and the deletion of the
        previous patch folders (``--overwrite``) still running on a background thread.

    Raises:
        OutputExistsError: the folder holds a dataset and neither ``overwrite`` nor ``resume`` is set.
        InvalidParameterError: ``--resume`` of a dataset or journal made with other parameters.
    """
    check_output(out, overwrite=cfg.overwrite, resume=cfg.resume)
    old: list[Path] = sorted(out.glob(OLD_PREFIX + "*")) if out.is_dir() else []  # left by a killed run
    if cfg.overwrite and out.exists():
        for name in PATCH_FOLDERS:
            old += _move_aside(out / name)
        _remove_index_files(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)  # before the deletion starts: it walks the folders moved aside too
    removal = Removal(old)
    if not cfg.resume:
        return [], removal
    params = cfg.parameters()
    rows: list[dict[str, Any]] = []
    meta = out / DATASET_FILE
    if meta.exists():
        index_mod.check_same_parameters(json.loads(meta.read_text()).get("parameters", {}), params, meta)
        rows = index_mod.read_index(out) if (out / index_mod.INDEX_FILE).exists() else []
    rows += index_mod.Journal(out, params).load()
    kept = {}
    for row in rows:
        if (out / row["image"]).exists() and (not row["label"] or (out / row["label"]).exists()):
            kept[row["id"]] = row
    return list(kept.values()), removal


def _move_aside(folder: Path) -> list[Path]:
    """Rename ``folder`` to a fresh :data:`OLD_PREFIX` name beside it (to be deleted); [] when there is
    none. Where the rename fails (another file system), the folder is deleted here and now."""
    if not folder.exists():
        return []
    aside = folder.with_name(f"{OLD_PREFIX}{folder.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(folder, aside)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return []
    return [aside]


def remove_failed_run(out: Path, created: bool) -> None:
    """Undo what a failed (not resumed) run wrote, so that the next run into ``out`` is not refused."""
    if created:
        shutil.rmtree(out, ignore_errors=True)
        return
    for name in PATCH_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)
    _remove_index_files(out)
    remove_stale_temps(out)


def _remove_index_files(out: Path) -> None:
    """Delete the dataset's files besides the patch folders (index, lists, GeoPackages, journal, dataset.json)."""
    for name in (*INDEX_FILES, DATASET_FILE):
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
