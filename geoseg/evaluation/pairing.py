"""Pair prediction rasters with their labels: by position for explicit files, by name for folders.

Rules:

- A single explicit *vector* label file serves every prediction, whether the predictions are
  files, folders or globs (one GeoPackage of polygons for a whole region).
- Both sides are explicit files (no folder, no glob): paired in the order given; the two lists
  must have the same length.
- Otherwise (a folder or a glob on either side): paired by **key**, the file stem with a
  trailing role suffix removed (``_label``, ``_pred``, ``_prob``, ``_mask``, ``_gt``...), so
  ``pred/scene_label.tif`` pairs with ``labels/scene.tif`` or ``labels/scene_gt.gpkg``. Never
  by listing order. Any file left without a partner, or two files with the same key on one
  side, is an error that lists them.
- In prediction folders, the probability rasters ``*_prob.tif`` that ``geoseg.predict`` writes
  next to the class rasters are skipped: they hold probabilities, not classes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from geoseg.errors import InputNotFoundError, InvalidParameterError
from geoseg.io.atomic import TMP_MARK
from geoseg.io.raster import RASTER_SUFFIXES, expand_inputs
from geoseg.io.vector import DRIVERS

VECTOR_SUFFIXES = tuple(DRIVERS)

#: Role suffixes stripped from stems before comparing them (case-insensitive, ``_`` or ``-``).
ROLE_SUFFIXES = ("label", "labels", "pred", "prediction", "predictions", "prob", "probs", "proba",
                 "mask", "gt", "truth", "groundtruth", "ref", "reference", "classes", "class", "seg")

_ROLE_RE = re.compile(r"[_\-.](?:" + "|".join(ROLE_SUFFIXES) + r")$", re.IGNORECASE)
_PROB_RE = re.compile(r"[_\-](?:prob|probs|proba)$", re.IGNORECASE)


@dataclass(frozen=True)
class Pair:
    """One prediction raster and the label it is compared with.

    Attributes:
        prediction: class raster (1 band).
        label: class raster (1 band) or vector file.
        key: the shared name key (file stem without role suffix), or the prediction stem.
    """

    prediction: Path
    label: Path
    key: str

    @property
    def label_is_vector(self) -> bool:
        return is_vector(self.label)


def is_vector(path: str | os.PathLike) -> bool:
    """True for vector label files (``.gpkg``, ``.geojson``, ``.json``, ``.shp``, ``.fgb``)."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


def pair_key(path: str | os.PathLike) -> str:
    """File stem with one trailing role suffix removed: ``scene_label.tif`` -> ``scene``."""
    stem = Path(path).stem
    stripped = _ROLE_RE.sub("", stem)
    return stripped or stem


def _is_listing(item: str | os.PathLike) -> bool:
    s = str(item)
    return Path(s).is_dir() or any(ch in s for ch in "*?[")


def _expand(items: Sequence[str | os.PathLike], suffixes: Sequence[str], skip_prob: bool) -> list[Path]:
    out = []
    for item in items:
        found = expand_inputs([item], suffixes=suffixes)
        if _is_listing(item):
            found = [p for p in found if TMP_MARK not in p.name
                     and not (skip_prob and _PROB_RE.search(p.stem))]
            if not found:
                raise InputNotFoundError(f"no usable files in {item}")
        out.extend(found)
    return out


def pair_inputs(predictions: Sequence[str | os.PathLike], labels: Sequence[str | os.PathLike]) -> list[Pair]:
    """Pair predictions with labels (files, folders or globs on either side); see the module rules.

    Raises:
        InputNotFoundError: a path does not exist, a folder holds nothing usable, or files are
            left unpaired (all of them are listed).
        InvalidParameterError: explicit lists of different lengths, or duplicate keys.
    """
    if not predictions:
        raise InvalidParameterError("no prediction given")
    if not labels:
        raise InvalidParameterError("no label given (--labels)")
    by_name = any(_is_listing(i) for i in (*predictions, *labels))
    preds = _expand(predictions, RASTER_SUFFIXES, skip_prob=True)
    labs = _expand(labels, RASTER_SUFFIXES + VECTOR_SUFFIXES, skip_prob=False)

    if len(labels) == 1 and not _is_listing(labels[0]) and is_vector(labs[0]):
        return [Pair(p, labs[0], p.stem) for p in preds]
    if not by_name:
        if len(preds) != len(labs):
            raise InvalidParameterError(
                f"{len(preds)} prediction(s) but {len(labs)} label(s): explicit files pair in order and "
                "need equal counts (or give folders to pair by name)"
            )
        return [Pair(p, lab, p.stem) for p, lab in zip(preds, labs)]

    pred_keys = _keyed(preds, "prediction")
    lab_keys = _keyed(labs, "label")
    lonely_preds = sorted(str(pred_keys[k]) for k in pred_keys.keys() - lab_keys.keys())
    lonely_labs = sorted(str(lab_keys[k]) for k in lab_keys.keys() - pred_keys.keys())
    if lonely_preds or lonely_labs:
        parts = []
        if lonely_preds:
            parts.append(f"prediction(s) without a label: {', '.join(lonely_preds)}")
        if lonely_labs:
            parts.append(f"label(s) without a prediction: {', '.join(lonely_labs)}")
        raise InputNotFoundError(
            "unpaired files (pairing is by file name without _label/_pred/_prob suffixes): " + "; ".join(parts)
        )
    return [Pair(pred_keys[k], lab_keys[k], k) for k in sorted(pred_keys)]


def _keyed(paths: list[Path], side: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    clashes: dict[str, list[Path]] = {}
    for p in paths:
        k = pair_key(p)
        if k in out and out[k] != p:
            clashes.setdefault(k, [out[k]]).append(p)
        out[k] = p
    if clashes:
        listed = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in sorted(clashes.items()))
        raise InvalidParameterError(f"several {side} files share a name key, cannot pair them: {listed}")
    return out
