"""Atomic outputs: write to a temporary sibling, rename when complete.

A killed run never leaves a file under its final name that is only half written, so
``--resume`` can trust any final-named file it finds.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from geoseg.errors import OutputExistsError

TMP_MARK = ".tmp-"


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


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete temporary files a killed run left in ``folder`` (recursively); return how many."""
    n = 0
    for p in Path(folder).rglob(f"*{TMP_MARK}*"):
        if p.is_file():
            p.unlink()
            n += 1
    return n


def check_output(path: str | os.PathLike, overwrite: bool = False, resume: bool = False) -> None:
    """Refuse an existing output unless ``overwrite`` or ``resume`` is set.

    Raises:
        OutputExistsError: ``path`` exists (non-empty folder or file) and neither flag is set.
    """
    p = Path(path)
    exists = p.is_file() or (p.is_dir() and any(p.iterdir()))
    if exists and not (overwrite or resume):
        raise OutputExistsError(f"output exists: {p} (use --overwrite to replace it or --resume to continue)")
