"""``evaluate()``: predictions + labels -> confusion matrix and metrics, streamed window by window.

Modes:

- ``global``: one confusion matrix summed over every pixel of every pair; metrics from it.
- ``per_image``: metrics of each pair, then averaged over the pairs (NaN-ignoring, see
  :func:`geoseg.evaluation.metrics.average_metrics`); the summed matrix is still reported.

Restricting the area (``aoi`` polygons, or the ``split`` windows of a tiled ``dataset``): each
read window is masked in memory with the area (pixel-centre rule, see
:mod:`geoseg.evaluation.area`); pixels outside count as excluded, exactly as if their label were
the ignore index.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoseg.errors import DatasetError, InvalidParameterError, LabelValueError, NoOverlapError
from geoseg.evaluation.area import Area, AreaMask, read_area
from geoseg.evaluation.confusion import ClassValueError, ConfusionMatrix
from geoseg.evaluation.metrics import Metrics, average_metrics, compute_metrics
from geoseg.evaluation.pairing import Pair, pair_inputs, pair_key
from geoseg.evaluation.reader import DEFAULT_MAX_PIXELS, PairReader, open_prediction
from geoseg.io.classes import CLASSES_TAG, IGNORE_INDEX, ClassMap, classes_from_tags, parse_class_spec
from geoseg.io.label_values import LabelRules
from geoseg.io.labels import open_label_raster
from geoseg.io.raster import gdal_env
from geoseg.runtime.progress import progress_bar

log = logging.getLogger("geoseg.evaluation")

MODES = ("global", "per_image")

PathLike = str | os.PathLike


@dataclass(frozen=True)
class ImageResult:
    """Result of one prediction/label pair.

    Attributes:
        pair: the files compared.
        confusion: ``(C, C)`` pixel counts, rows = truth.
        metrics: metrics of ``confusion``.
        excluded: pixels skipped (nodata, ignored, outside the label).
        alignment: how the label met the prediction grid (``same grid``, ``warped (nearest)``, ``rasterized``).
    """

    pair: Pair
    confusion: np.ndarray
    metrics: Metrics
    excluded: int
    alignment: str


@dataclass(frozen=True)
class EvaluationResult:
    """Everything an evaluation produced.

    Attributes:
        mode: ``"global"`` or ``"per_image"``.
        classes: class map with exactly ``num_classes`` entries (index order).
        confusion: ``(C, C)`` pixel counts summed over all pairs, rows = truth, columns = prediction.
        metrics: global mode: metrics of ``confusion``; per_image mode: average of ``images`` metrics.
        images: one result per pair, in pairing order.
        options: the settings used (ignore index, background, vector options, ...).
    """

    mode: str
    classes: ClassMap
    confusion: np.ndarray
    metrics: Metrics
    images: tuple[ImageResult, ...]
    ignore_index: int | None = IGNORE_INDEX
    ignore_background: bool = False
    options: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return int(self.confusion.shape[0])

    @property
    def excluded(self) -> int:
        return sum(i.excluded for i in self.images)


def resolve_classes(classes: ClassMap | Sequence[str] | PathLike | None, num_classes: int | None,
                    prediction: PathLike | None = None) -> ClassMap:
    """The class map of an evaluation: from ``classes`` (map, names, palette file or ``"a,b,c"``),
    else the prediction's ``GEOSEG_CLASSES`` tag, else ``class_0..``; padded to ``num_classes``.

    Raises:
        InvalidParameterError: no way to know the number of classes, or classes beyond ``num_classes``.
    """
    cmap: ClassMap | None = None
    source = "--classes"
    if isinstance(classes, ClassMap):
        cmap = classes
    elif isinstance(classes, (str, os.PathLike)):
        text = str(classes)
        cmap = parse_class_spec(text)
        source = f"--classes {text}"
    elif classes is not None:
        cmap = ClassMap.from_names([str(n) for n in classes])
    elif prediction is not None:
        cmap = _classes_from_tag(prediction)
        source = f"the {CLASSES_TAG} tag of {prediction}"
    if num_classes is None:
        if cmap is None or not len(cmap):
            raise InvalidParameterError(
                "--num-classes is required (the prediction carries no class list; or give --classes)"
            )
        num_classes = cmap.num_classes
    if int(num_classes) < 1:
        raise InvalidParameterError(f"--num-classes must be >= 1, got {num_classes}")
    num_classes = int(num_classes)
    if cmap is None:
        return ClassMap.default(num_classes)
    if cmap.num_classes > num_classes:
        raise InvalidParameterError(
            f"{source} defines {cmap.num_classes} classes ({', '.join(cmap.names)}) but --num-classes is {num_classes}"
        )
    known = {c.index: c for c in cmap.classes}
    default = ClassMap.default(num_classes).classes
    return ClassMap(tuple(known.get(i, default[i]) for i in range(num_classes)))


def _classes_from_tag(path: PathLike) -> ClassMap | None:
    import rasterio

    with rasterio.open(path) as ds:
        tags, band_tags = ds.tags(), ds.tags(1)
    cmap = classes_from_tags(tags) or classes_from_tags(band_tags)
    if cmap is None and (CLASSES_TAG in tags or CLASSES_TAG in band_tags):  # damaged: fall back, don't stop
        log.warning("ignoring unreadable %s tag of %s", CLASSES_TAG, path)
    return cmap


def evaluate(predictions: PathLike | Sequence[PathLike], labels: PathLike | Sequence[PathLike],
             num_classes: int | None = None, mode: str = "global", ignore_index: int | None = IGNORE_INDEX,
             ignore_background: bool = False, classes: ClassMap | Sequence[str] | PathLike | None = None,
             label_field: str | None = None, burn_value: int | None = None, vector_fill: int = 0,
             max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = False, aoi: PathLike | Area | None = None,
             dataset: PathLike | None = None, split: str = "val",
             labels_crs: str | None = None) -> EvaluationResult:
    """Compare prediction rasters with labels, streaming both window by window.

    Args:
        predictions: class rasters (1 band): files, folders or globs.
        labels: label rasters or vector files, paired with ``predictions`` (see
            :mod:`geoseg.evaluation.pairing`).
        num_classes: number of classes; None takes it from ``classes`` or the prediction's tag.
        mode: ``"global"`` or ``"per_image"``.
        ignore_index: label value (and prediction nodata) left out of the matrix.
        ignore_background: also leave out pixels whose truth is class 0, and class 0 from the means.
        classes: class names: a :class:`ClassMap`, a list, a palette file or ``"a,b,c"``.
        label_field: vector attribute with class values (default: ``class_id``/``class``/``label``).
        burn_value: class value burnt for every polygon instead of ``label_field``.
        vector_fill: class of pixels outside every polygon (0 = background; 255 = unlabeled).
        max_pixels: pixels per read window (memory bound).
        progress: show a progress bar.
        aoi: score only pixels inside these polygons: an :class:`Area` or ``"FILE[:layer]"``
            (any CRS, reprojected to each prediction's CRS; e.g. ``"dataset/split.gpkg:val"``).
        dataset: score only the area of the ``split`` windows of this tiled dataset
            (``DIR/index.csv``), matched to each prediction by scene name.
        split: the dataset split scored with ``dataset`` (default ``"val"``: the held-out area).
        labels_crs: CRS of vector label coordinates, overriding the file's (``--labels-crs``).

    Raises:
        GeoSegError subclasses for every input problem: missing files, unpaired files, bad band
        counts, no overlap, class values >= ``num_classes``, nothing left to evaluate.
    """
    if mode not in MODES:
        raise InvalidParameterError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if label_field is not None and burn_value is not None:
        raise InvalidParameterError("--label-field and --burn-value exclude each other; give one")
    if aoi is not None and dataset is not None:
        raise InvalidParameterError("--aoi and --dataset exclude each other; give one")
    preds = [predictions] if isinstance(predictions, (str, os.PathLike)) else list(predictions)
    labs = [labels] if isinstance(labels, (str, os.PathLike)) else list(labels)
    pairs = pair_inputs(preds, labs)
    # Check every header first, so a bad file late in the list fails before hours of reading.
    sizes = []
    masks: list[AreaMask | None] = []
    areas = _area_finder(aoi, dataset, split)
    for pair in pairs:
        info = open_prediction(pair.prediction)
        sizes.append(info.width * info.height)
        if not pair.label_is_vector:
            open_label_raster(pair.label)
        area = areas(pair) if areas is not None else None
        masks.append(None if area is None else area.on_grid(info.crs, info.transform, info.width, info.height))
    _check_area_overlap(pairs, masks)
    cmap = resolve_classes(classes, num_classes, pairs[0].prediction)
    c = cmap.num_classes
    exclude = (0,) if ignore_background else ()
    # Truth is read by the label reader tiling uses; label values equal to ignore_index become "no label".
    named = tuple(cmap.names) != tuple(ClassMap.default(c).names)  # text attributes need real names
    rules = LabelRules(label_field=label_field, burn_value=burn_value,
                       class_names=tuple(cmap.names) if named else None, ignore_value=ignore_index,
                       labels_crs=labels_crs, vector_fill=vector_fill)
    warned: set[Path] = set()  # one warning per vector file about skipped/repaired features

    bar = progress_bar(sum(sizes), "px", "evaluate", progress, unit_scale=True)
    images = []
    try:
        with gdal_env():
            for pair, mask in zip(pairs, masks):
                cm = ConfusionMatrix(c, ignore_index, ignore_background)
                with PairReader(pair, rules, max_pixels=max_pixels, warned=warned) as reader:
                    for block in reader:
                        valid = block.valid if mask is None else block.valid & mask(block.window)
                        try:
                            cm.update(block.truth, block.pred, valid,
                                      origin=(int(block.window.row_off), int(block.window.col_off)))
                        except ClassValueError as exc:
                            raise _class_value_error(exc, pair, reader, cm) from None
                        bar.update(block.pred.size)
                    images.append(ImageResult(pair, cm.matrix, compute_metrics(cm.matrix, exclude), cm.excluded,
                                              reader.alignment))
                log.info("%s vs %s: %d px counted, %d excluded (%s)", pair.prediction, pair.label, cm.total,
                         cm.excluded, reader.alignment)
    finally:
        bar.close()

    total = np.sum([i.confusion for i in images], axis=0)
    if total.sum() == 0:
        raise NoOverlapError(
            "no pixel to evaluate: every pixel is prediction nodata, unlabeled (ignore index "
            f"{ignore_index}){', background' if ignore_background else ''}, outside the labels"
            f"{' or outside the evaluated area' if areas is not None else ''}"
        )
    if mode == "global":
        metrics = compute_metrics(total, exclude)
    else:
        counted = [i.metrics for i in images if i.metrics.pixels > 0]
        for i in images:
            if i.metrics.pixels == 0:
                log.warning("%s: no pixel to evaluate; left out of the per-image average", i.pair.prediction)
        metrics = average_metrics(counted)
    options = {"label_field": label_field, "burn_value": burn_value, "vector_fill": vector_fill,
               "labels_crs": labels_crs}
    if aoi is not None:
        options["aoi"] = aoi.source if isinstance(aoi, Area) else str(aoi)
    if dataset is not None:
        options.update(dataset=str(dataset), split=split)
    return EvaluationResult(mode=mode, classes=cmap, confusion=total, metrics=metrics, images=tuple(images),
                            ignore_index=ignore_index, ignore_background=ignore_background, options=options)


def _class_value_error(exc: ClassValueError, pair: Pair, reader: PairReader, cm: ConfusionMatrix) -> LabelValueError:
    values = ", ".join(map(str, exc.values))
    row, col = exc.position
    ignore = f"; {cm.ignore_index} = ignore" if cm.ignore_index is not None else ""
    expected = f"expected 0..{cm.num_classes - 1} for --num-classes {cm.num_classes}{ignore}"
    if exc.side == "truth":
        what = f"label {pair.label}"
        if pair.label_is_vector:
            src = f"attribute {reader.label_field!r}" if reader.label_field else "--burn-value"
            what += f" ({src})"
    else:
        what = f"prediction {pair.prediction}"
    return LabelValueError(
        f"{what} holds class value(s) {values} ({expected}); first at row {row}, col {col} of {pair.prediction}"
    )


def _area_finder(aoi: PathLike | Area | None, dataset: PathLike | None,
                 split: str) -> Callable[[Pair], Area | None] | None:
    """Pair -> the area to score in it (None: no restriction)."""
    if aoi is not None:
        area = aoi if isinstance(aoi, Area) else read_area(aoi)
        return lambda pair: area
    if dataset is None:
        return None
    from geoseg.evaluation.holdout import scene_names, split_areas

    by_scene = split_areas(dataset, split)
    scenes = scene_names(dataset)

    def find(pair: Pair) -> Area | None:
        keys = (pair_key(pair.prediction), pair.key, pair.prediction.stem, pair_key(pair.label), pair.label.stem)
        for key in keys:
            if key in by_scene:
                return by_scene[key]
        if any(key in scenes for key in keys):  # a scene without any window of that split: nothing to score
            return Area(np.empty(0, dtype=object), None, f"{dataset} (split {split!r}: no window of this scene)")
        raise DatasetError(
            f"prediction {pair.prediction} matches no scene of dataset {dataset} "
            f"(tried {', '.join(dict.fromkeys(keys))}; "
            f"scenes are: {', '.join(scenes[:10])}{' ...' if len(scenes) > 10 else ''})"
        )

    return find


def _check_area_overlap(pairs: Sequence[Pair], masks: Sequence[AreaMask | None]) -> None:
    """Refuse an area that overlaps no prediction; warn for each prediction it misses."""
    bound = [(p, m) for p, m in zip(pairs, masks) if m is not None]
    if not bound:
        return
    if all(m.empty for _, m in bound):
        raise NoOverlapError(
            f"the evaluated area {bound[0][1].source} overlaps no prediction "
            f"({', '.join(str(p.prediction) for p, _ in bound[:5])}{' ...' if len(bound) > 5 else ''})"
        )
    for pair, mask in bound:
        if mask.empty:
            log.warning("%s lies outside the evaluated area %s: nothing of it is scored", pair.prediction, mask.source)
