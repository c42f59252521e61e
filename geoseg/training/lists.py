"""``--train-list`` / ``--val-list``: choose a dataset's training and validation patches by id.

A list file holds patch ids, one a line (``tile`` writes ``DATASET/train.txt`` and ``val.txt``;
format in :mod:`geoseg.io.lists`). A given list is exactly that split's patches, whatever their
``split`` in ``index.csv``; a split without a list keeps the index's patches of that split less
those the other list claims. Ids that are not in the index, or in both lists, are refused.
"""

from __future__ import annotations

import os

from geoseg.errors import DatasetError, InvalidParameterError
from geoseg.io.lists import read_id_list


def apply_id_lists(rows: list[dict], train_list: str | os.PathLike | None, val_list: str | os.PathLike | None,
                   index: str | os.PathLike = "index.csv") -> list[dict]:
    """The index rows with ``split`` set by the lists (rows in neither split are left out).

    Args:
        rows: ``index.csv`` rows (``id``, ``split``, ...).
        train_list: file of training patch ids, or None.
        val_list: file of validation patch ids, or None.
        index: the index file, for messages.

    Raises:
        DatasetError: a list names ids the index does not hold (the first ten named).
        InvalidParameterError: an id is in both lists.
        InputNotFoundError: a list file is missing.
    """
    if train_list is None and val_list is None:
        return rows
    known = {r["id"] for r in rows}
    listed: dict[str, set[str]] = {}
    for split, path in (("train", train_list), ("val", val_list)):
        if path is None:
            continue
        ids = read_id_list(path)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise DatasetError(f"--{split}-list {path}: {len(unknown)} id(s) not in {index}: "
                               + ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""))
        listed[split] = set(ids)
    both = sorted(listed.get("train", set()) & listed.get("val", set()))
    if both:
        raise InvalidParameterError(f"{len(both)} patch id(s) are in both --train-list {train_list} and "
                                    f"--val-list {val_list}: {', '.join(both[:10])}")
    claimed = set().union(*listed.values())
    out = []
    for r in rows:
        split = next((s for s, ids in listed.items() if r["id"] in ids), None)
        if split is None and r["split"] not in listed and r["id"] not in claimed:
            split = r["split"]
        if split is not None:
            out.append(r if split == r["split"] else {**r, "split": split})
    return out

