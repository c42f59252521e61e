"""Label values -> class indices: the rules every label source follows.

One set of rules for tiling and evaluation (:mod:`geoseg.io.labels` applies them):

- class indices are ``0..254``; ``255`` (:data:`~geoseg.io.classes.IGNORE_INDEX`) means "no
  label / ignore" in every array geoseg produces;
- the ``ignore_value`` (``--ignore-value``, default 255) of a raster or a vector attribute,
  and a raster's nodata, become 255, never a class;
- numeric vector attributes are class indices (whole numbers); text attributes are class
  names, matched case-insensitively against ``--classes`` (``--classes auto``: the sorted
  distinct texts, after ``background`` = 0);
- null attributes are skipped (counted, one warning per file by the caller);
- any other value (negative, fractional, above 254, text not in the class list) is refused
  with the values found and how many pixels or features hold them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoseg.errors import InvalidParameterError, LabelValueError, VectorLabelError
from geoseg.io.classes import IGNORE_INDEX

#: Attribute names tried, in order, when a vector source has neither a field nor a burn value.
DEFAULT_LABEL_FIELDS = ("class_id", "class", "label", "class_index")

#: ``--classes auto``: class names taken from the label attribute.
AUTO = "auto"

#: Name of class 0 when class names come from the labels.
BACKGROUND = "background"


@dataclass(frozen=True)
class LabelRules:
    """How label values become class indices (picklable; the same for every scene of a run).

    Attributes:
        label_field: vector attribute holding class indices or names; None tries
            :data:`DEFAULT_LABEL_FIELDS` unless ``burn_value`` is given.
        burn_value: class index burned for every polygon instead of an attribute.
        class_names: class names in index order, for text attributes (matched case-insensitively).
        ignore_value: label value (raster pixel or vector attribute) meaning "ignore"; None: none.
        labels_crs: CRS of vector coordinates (``--labels-crs``), overriding the file's.
        vector_fill: class of pixels outside every polygon (0 = background, 255 = unlabeled).
    """

    label_field: str | None = None
    burn_value: int | None = None
    class_names: tuple[str, ...] | None = None
    ignore_value: float | None = IGNORE_INDEX
    labels_crs: str | None = None
    vector_fill: int = 0

    def __post_init__(self) -> None:
        if self.label_field and self.burn_value is not None:
            raise InvalidParameterError("give either --label-field or --burn-value, not both")
        if self.burn_value is not None and not 0 <= int(self.burn_value) < IGNORE_INDEX:
            raise InvalidParameterError(f"--burn-value must be a class index in 0..{IGNORE_INDEX - 1}, "
                                        f"got {self.burn_value}")
        if not 0 <= int(self.vector_fill) <= IGNORE_INDEX:
            raise InvalidParameterError(f"--vector-fill must be a class index in 0..{IGNORE_INDEX - 1} or "
                                        f"{IGNORE_INDEX} (unlabeled), got {self.vector_fill}")


def choose_field(fields: Sequence[str], rules: LabelRules, path: Path) -> str | None:
    """The attribute to read from a vector file with ``fields``; None when burning a fixed value.

    Raises:
        VectorLabelError: the named attribute is missing, or no default name is present.
    """
    if rules.burn_value is not None:
        return None
    if rules.label_field:
        if rules.label_field not in fields:
            raise VectorLabelError(f"{path}: no attribute {rules.label_field!r}; attributes are: "
                                   f"{', '.join(fields) or '(none)'}")
        return rules.label_field
    lower = {f.lower(): f for f in fields}
    found = next((lower[f] for f in DEFAULT_LABEL_FIELDS if f in lower), None)
    if found is None:
        raise VectorLabelError(f"{path}: give --label-field (attributes are: {', '.join(fields) or '(none)'}) or "
                               f"--burn-value; no attribute is named {' / '.join(DEFAULT_LABEL_FIELDS)}")
    return found


def is_text(raw: np.ndarray) -> bool:
    """True when an attribute column holds text (object or unicode dtype with a string in it)."""
    if raw.dtype.kind == "U":
        return True
    return raw.dtype.kind == "O" and any(isinstance(v, str) for v in raw)


def _is_null(v: object) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def attribute_to_index(raw: np.ndarray, field: str, path: Path, rules: LabelRules) -> np.ndarray:
    """Map a vector attribute column ``(N,)`` to class indices ``(N,)`` int64.

    Returns:
        ``0..254`` class indices, ``255`` where the value is ``rules.ignore_value``, ``-1``
        where the value is null (the feature is skipped).

    Raises:
        VectorLabelError: fractional numbers, or text without class names to match it to.
        LabelValueError: values outside ``0..254`` or text not among the class names; the
            message lists them with the number of features holding each.
    """
    if is_text(raw):
        return _text_to_index(raw, field, path, rules)
    if raw.dtype.kind == "O":  # all nulls or numbers stored as objects
        raw = np.array([np.nan if _is_null(v) else v for v in raw], dtype=np.float64)
    if raw.dtype.kind == "b":
        raw = raw.astype(np.int64)
    if raw.dtype.kind not in "iuf":
        raise VectorLabelError(f"{path}: attribute {field!r} holds {raw.dtype} values; expected class indices "
                               "(whole numbers) or class names")
    nulls = np.isnan(raw) if raw.dtype.kind == "f" else np.zeros(raw.shape, bool)
    vals = raw[~nulls]
    frac = vals != np.round(vals)
    if frac.any():
        raise VectorLabelError(f"{path}: attribute {field!r} must hold whole class indices, found "
                               f"{np.unique(vals[frac])[:5].tolist()}")
    out = np.where(nulls, -1, np.nan_to_num(raw)).astype(np.int64)
    if rules.ignore_value is not None:
        out[~nulls & (raw == rules.ignore_value)] = IGNORE_INDEX
    bad = ~nulls & ((out < 0) | (out > IGNORE_INDEX))
    if bad.any():
        raise LabelValueError(f"{path}: attribute {field!r} holds {_counts(out[bad], 'feature')}; class indices "
                              f"are 0..{IGNORE_INDEX - 1} ({_ignore_text(rules)})")
    return out


def _text_to_index(raw: np.ndarray, field: str, path: Path, rules: LabelRules) -> np.ndarray:
    nulls = np.array([_is_null(v) for v in raw], bool)
    text = np.array(["" if n else str(v).strip() for v, n in zip(raw, nulls)], dtype=object)
    if rules.class_names is None:
        sample = ", ".join(repr(t) for t in list(dict.fromkeys(text[~nulls].tolist()))[:5])
        raise VectorLabelError(f"{path}: attribute {field!r} holds text values ({sample}); name the classes with "
                               "--classes background,NAME1,NAME2,... (matched case-insensitively) or --classes auto")
    lookup = {n.lower(): i for i, n in enumerate(rules.class_names)}
    if rules.ignore_value is not None:
        lookup.setdefault(_number_text(rules.ignore_value), IGNORE_INDEX)
    out = np.full(len(raw), -1, np.int64)
    unknown: list[str] = []
    for k, t in enumerate(text):
        if nulls[k]:
            continue
        idx = lookup.get(t.lower())
        if idx is None:
            unknown.append(t)
        else:
            out[k] = idx
    if unknown:
        raise LabelValueError(f"{path}: attribute {field!r} holds {_counts(np.array(unknown, dtype=object), 'feature')}"
                              f" not among the classes ({', '.join(rules.class_names)}); add them to --classes "
                              "or use --classes auto")
    return out


def distinct_texts(raw: np.ndarray) -> set[str]:
    """Distinct non-null text values of an attribute column (stripped)."""
    return {str(v).strip() for v in raw if not _is_null(v) and str(v).strip()}


def auto_class_names(texts: set[str], ignore_value: float | None = IGNORE_INDEX) -> tuple[str, ...]:
    """``--classes auto``: ``background`` then the sorted distinct texts (case-insensitive, first spelling kept).

    A text equal to ``background`` (any case) stays class 0; one equal to the ignore value is left out.
    """
    ignore = _number_text(ignore_value) if ignore_value is not None else None
    seen: dict[str, str] = {}
    for t in sorted(texts, key=lambda s: (s.lower(), s)):
        if t.lower() not in (BACKGROUND, ignore):
            seen.setdefault(t.lower(), t)
    names = (BACKGROUND, *seen.values())
    if len(names) > IGNORE_INDEX:
        raise LabelValueError(f"--classes auto found {len(names) - 1} distinct class names; at most "
                              f"{IGNORE_INDEX - 1} classes fit a uint8 label")
    return names


def raster_to_index(raw: np.ndarray, path: Path, nodata: float | None, ignore_value: float | None) -> np.ndarray:
    """Map class-raster values ``(H, W)`` to uint8 class indices, 255 at nodata and ``ignore_value``.

    Raises:
        LabelValueError: values that are neither ``0..254`` nor ignored; the message lists them
            with their pixel counts in this window.
    """
    ignored = np.zeros(raw.shape, bool)
    for v in (nodata, ignore_value):
        if v is not None:
            ignored |= np.isnan(raw) if (raw.dtype.kind == "f" and np.isnan(v)) else raw == v
    if raw.dtype == np.uint8:
        out = raw.copy()
    else:
        if raw.dtype.kind == "f":
            ignored |= np.isnan(raw)
        bad = ~ignored & ((raw < 0) | (raw > IGNORE_INDEX) | (raw != np.floor(raw)))
        if bad.any():
            raise LabelValueError(f"label raster {path} holds {_counts(raw[bad], 'px')}; class indices are "
                                  f"0..{IGNORE_INDEX - 1} (255, nodata and --ignore-value = ignore)")
        out = np.where(ignored, 0, raw).astype(np.uint8)
    out[ignored] = IGNORE_INDEX
    return np.asarray(out, np.uint8)


def check_class_counts(counts: Sequence[int] | np.ndarray, num_classes: int, class_names: Sequence[str],
                       where: str) -> None:
    """Refuse labels holding class indices beyond the class list.

    Args:
        counts: pixels per class index (index ``i`` = pixels of class ``i``; 255 excluded).
        num_classes: number of classes in the list.
        class_names: their names, for the message.
        where: what was counted (e.g. ``"the labels of scene.tif"``) and where the list came from.

    Raises:
        LabelValueError: listing each value beyond the list with its pixel count.
    """
    counts = np.asarray(counts, np.int64)
    extra = {i: int(c) for i, c in enumerate(counts) if i >= num_classes and c > 0}
    if extra:
        listed = ", ".join(f"{v} ({c} px)" for v, c in extra.items())
        raise LabelValueError(f"{where} hold class value(s) {listed} beyond the {num_classes} classes "
                              f"({', '.join(class_names)}); name them in --classes, or mark them with "
                              "--ignore-value")


def _counts(values: np.ndarray, unit: str) -> str:
    vals, counts = np.unique(values, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    shown = ", ".join(f"{_fmt(vals[i])} ({counts[i]} {unit})" for i in order[:10])
    more = f" and {len(vals) - 10} more" if len(vals) > 10 else ""
    return f"value(s) {shown}{more}"


def _fmt(v: object) -> str:
    if isinstance(v, str):
        return repr(v)
    f = float(v)  # type: ignore[arg-type]  # numpy scalars of a label array
    return str(int(f)) if f.is_integer() else f"{f:g}"


def _number_text(v: float) -> str:
    f = float(v)
    return str(int(f)) if f.is_integer() else f"{f:g}"


def _ignore_text(rules: LabelRules) -> str:
    if rules.ignore_value is None:
        return "255 = ignore"
    return f"{_number_text(rules.ignore_value)} = ignore (--ignore-value)"
