"""Id lists: text files with one id per line (patch ids of a dataset, image ids of a VOC split).

Reading strips whitespace, skips blank lines and ``#`` comments, and keeps the first
whitespace-separated token of a line (VOC's per-class lists read ``<id> <flag>``). Order is kept
and duplicates are dropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from geoseg.errors import InputNotFoundError, InvalidParameterError
from geoseg.io.atomic import atomic_output


def read_id_list(path: str | os.PathLike) -> list[str]:
    """The ids of a list file, in file order, without duplicates.

    Raises:
        InputNotFoundError: no such file.
        InvalidParameterError: the file holds no id.
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"id list not found: {p}")
    ids: dict[str, None] = {}
    for line in p.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            ids.setdefault(text.split()[0], None)
    if not ids:
        raise InvalidParameterError(f"id list {p} holds no id (expected one id per line)")
    return list(ids)


def write_id_list(path: str | os.PathLike, ids: Iterable[str]) -> Path:
    """Write ids one per line (atomically); an empty iterable gives an empty file."""
    with atomic_output(path) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return Path(path)
