"""PASCAL VOC folders: ``JPEGImages/``, ``SegmentationClass/`` and ``ImageSets/Segmentation/``.

A VOC root pairs each photo ``JPEGImages/<id>.jpg`` with ``SegmentationClass/<id>.png``: a
paletted PNG whose pixel values are the class indices (255 = border/void, read as ignore), or
an RGB PNG coloured with the VOC palette (read with ``--palette voc``). When
``ImageSets/Segmentation/train.txt`` and ``val.txt`` exist they list the images of each split
(ids, one a line) and only those images are used; otherwise every image with a label PNG is.
Photos carry no georeferencing: patches are in pixel coordinates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from geoseg.errors import InputNotFoundError
from geoseg.io.lists import read_id_list

IMAGES = "JPEGImages"
LABELS = "SegmentationClass"
SETS = Path("ImageSets") / "Segmentation"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class VocLayout:
    """A VOC root's image/label pairs and split lists.

    Attributes:
        root: the VOC folder.
        images: photos, sorted by id.
        labels: the label PNG of each photo, same order.
        val: ids listed in ``val.txt`` (None without split lists).
        train: ids listed in ``train.txt`` (None without split lists).
    """

    root: Path
    images: tuple[Path, ...]
    labels: tuple[Path, ...]
    train: frozenset[str] | None = None
    val: frozenset[str] | None = None

    @property
    def has_lists(self) -> bool:
        return self.train is not None and self.val is not None


def is_voc_root(path: str | os.PathLike) -> bool:
    """True for a folder holding ``JPEGImages/`` and ``SegmentationClass/``."""
    p = Path(path)
    return p.is_dir() and (p / IMAGES).is_dir() and (p / LABELS).is_dir()


def read_voc(root: str | os.PathLike) -> VocLayout:
    """Pair the photos and labels of a VOC root (see the module docstring).

    Raises:
        InputNotFoundError: a listed id has no photo or no label PNG (the first ten named), or
            the root pairs nothing.
    """
    root = Path(root)
    photos = {p.stem: p for p in sorted((root / IMAGES).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in sorted((root / LABELS).iterdir()) if p.suffix.lower() == ".png"}
    train_txt, val_txt = root / SETS / "train.txt", root / SETS / "val.txt"
    train = val = None
    if train_txt.is_file() and val_txt.is_file():
        train, val = frozenset(read_id_list(train_txt)), frozenset(read_id_list(val_txt))
        ids = sorted(train | val)
        missing = [i for i in ids if i not in photos or i not in masks]
        if missing:
            raise InputNotFoundError(
                f"VOC root {root}: {len(missing)} id(s) of {SETS}/train.txt|val.txt lack a photo in {IMAGES}/ "
                f"or a PNG in {LABELS}/: {', '.join(missing[:10])}")
    else:
        ids = sorted(set(photos) & set(masks))
    if not ids:
        raise InputNotFoundError(f"VOC root {root}: no photo of {IMAGES}/ has a label PNG in {LABELS}/")
    return VocLayout(root=root, images=tuple(photos[i] for i in ids), labels=tuple(masks[i] for i in ids),
                     train=train, val=val)
