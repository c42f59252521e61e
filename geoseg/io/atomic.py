"""Atomic outputs: write to a temporary sibling, rename when complete; check an output place first.

A killed run never leaves a file under its final name that is only half written, so
``--resume`` can trust any final-named file it finds; its temporary files
(``<stem>.tmp-<8 hex><suffix>``) are removed by the next run into the same place
(:func:`remove_stale_temps`, under the folder's lock, :mod:`geoseg.io.lock`).
Every command checks its output place with :func:`check_writable` before any work starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from geoseg.errors import OutputExistsError, OutputNotWritableError

TMP_MARK = ".tmp-"
#: A temporary name made by :func:`temp_sibling` (with or without a GDAL side-car suffix).
_TMP_NAME = re.compile(re.escape(TMP_MARK) + r"[0-9a-f]{8}(?:\.|$)")
#: The lock file of a folder being written (:mod:`geoseg.io.lock`): bookkeeping, not an output.
LOCK_FILE = ".geoseg.lock"


def temp_sibling(path: str | os.PathLike) -> Path:
    """A unique temporary name in the same folder as ``path`` (same filesystem, so rename is atomic).

    The original suffix is kept at the end so that GDAL picks the right driver from it.
    """
    path = Path(path)
    return path.with_name(f"{path.stem}{TMP_MARK}{uuid.uuid4().hex[:8]}{path.suffix}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``path``, on failure delete it.

    GDAL side-car files written next to the temporary file (``.aux.xml``, ``.ovr``) are
    renamed or removed with it.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final)
    try:
        yield tmp
    except BaseException:
        _remove_with_sidecars(tmp)
        raise
    os.replace(tmp, final)
    for side in (".aux.xml", ".ovr", ".msk"):
        extra = tmp.with_name(tmp.name + side)
        if extra.exists():
            os.replace(extra, final.with_name(final.name + side))


def _remove_with_sidecars(tmp: Path) -> None:
    for p in (tmp, *(tmp.with_name(tmp.name + s) for s in (".aux.xml", ".ovr", ".msk"))):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def is_temp_name(name: str) -> bool:
    """True for a name made by :func:`temp_sibling` (``scene_label.tmp-1a2b3c4d.tif``, or its side-car)."""
    return _TMP_NAME.search(name) is not None


def remove_stale_temps(folder: str | os.PathLike, recursive: bool = True) -> int:
    """Delete temporary files a killed run left in ``folder``; return how many.

    Only names made by :func:`temp_sibling` are touched. Call it while holding the folder's
    lock (:func:`geoseg.io.lock.output_lock`), so that no live run's temporary files go.

    Args:
        folder: the output folder (missing: nothing to do).
        recursive: also in its sub-folders (a dataset's ``images/``, ``labels/``).
    """
    root = Path(folder)
    if not root.is_dir():
        return 0
    n = 0
    for p in (root.rglob(f"*{TMP_MARK}*") if recursive else root.glob(f"*{TMP_MARK}*")):
        if is_temp_name(p.name) and p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                n += 1
    return n


def check_writable(path: str | os.PathLike, folder: bool = True, option: str = "--out") -> None:
    """Refuse an output place that cannot be written, before any work starts; nothing is left behind.

    Walks up to the nearest existing folder and creates (then deletes) a probe file there, so a
    read-only place, a missing permission or a file standing where a folder is needed is found
    whatever the user's privileges.

    Args:
        path: the output folder (``folder=True``) or file.
        folder: whether ``path`` is a folder (else a file).
        option: the option that named it, for the message.

    Raises:
        OutputNotWritableError: ``path`` (or a folder above it) is a file where a folder is
            needed, ``path`` is a folder where a file is needed, or the place is not writable.
    """
    p = Path(path)
    if p.exists() and folder and not p.is_dir():
        raise OutputNotWritableError(f"{option} {p}: a file is there; expected a folder")
    if p.is_dir() and not folder:
        raise OutputNotWritableError(f"{option} {p}: a folder is there; expected a file")
    place = p if (folder and p.is_dir()) else p.parent
    probe_dir = Path(os.path.abspath(place))
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise OutputNotWritableError(f"{option} {p}: {probe_dir} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".geoseg-probe-", dir=probe_dir)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.errno in (errno.ENOENT, errno.EROFS, errno.EACCES, errno.EPERM):
            why = f"cannot create files there ({why})"
        raise OutputNotWritableError(f"{option} {p}: {probe_dir} is not writable: {why}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_output(path: str | os.PathLike, overwrite: bool = False, resume: bool = False) -> None:
    """Refuse an existing output unless ``overwrite`` or ``resume`` is set (a folder's lock file aside).

    Raises:
        OutputExistsError: ``path`` exists (non-empty folder or file) and neither flag is set.
    """
    p = Path(path)
    exists = p.is_file() or (p.is_dir() and any(q.name != LOCK_FILE for q in p.iterdir()))
    if exists and not (overwrite or resume):
        raise OutputExistsError(f"output exists: {p} (use --overwrite to replace it or --resume to continue)")
