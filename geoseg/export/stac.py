"""``geoseg export --format stac``: a STAC Item with the Machine Learning Model (MLM) extension.

The item (STAC 1.1.0, MLM :data:`MLM_SCHEMA`) describes a bundle without loading its model:

- ``mlm:input``: one input ``image`` of shape ``[-1, tile, tile, C]`` (``batch, height, width,
  bands``) float32, the bundle's bands by name (described in the item's STAC 1.1 ``bands``), and
  ``value_scaling``: ``z-score`` (mean, stddev) or ``min-max`` per band (the geoseg minmax also
  clips to [0, 1], said in the input's description), or null for raw values;
- ``mlm:output``: ``probs`` ``[-1, tile, tile, K]`` (``class``), with ``classification:classes``
  (index, name, colour); a binary model has K = 1 (the probability of class 1);
- ``mlm:hyperparameters``: tile size and stride (pixels), blending, threshold (binary);
- ``mlm:framework`` Keras (version of the installed package), architecture and arguments;
- assets: ``model.keras`` (role ``mlm:model``) and ``geoseg.json`` (role ``metadata``), with
  hrefs relative to the item's folder when the item is written inside the bundle.

``geometry`` is the lon/lat bounding box of the training scenes when the bundle's
``dataset.json`` is still readable, else null (a model usable anywhere).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from geoseg import __version__
from geoseg.errors import OutputExistsError
from geoseg.export.resolution import training_scenes
from geoseg.io.atomic import atomic_output
from geoseg.io.bundle import META_FILE, MODEL_FILE, Bundle

MLM_SCHEMA = "https://stac-extensions.github.io/mlm/v1.5.2/schema.json"
CLASSIFICATION_SCHEMA = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
STAC_VERSION = "1.1.0"


def _version(package: str) -> str | None:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return None


def _value_scaling(norm: dict | None) -> list[dict[str, Any]] | None:
    if norm is None:
        return None
    if norm.get("method", "meanstd") == "meanstd":
        return [{"type": "z-score", "mean": float(m), "stddev": float(s)} for m, s in zip(norm["mean"], norm["std"])]
    return [{"type": "min-max", "minimum": float(a), "maximum": float(b)} for a, b in zip(norm["min"], norm["max"])]


def _band_names(bundle: Bundle, count: int) -> list[str]:
    names = bundle.meta.get("band_names")
    bands = bundle.bands or list(range(1, count + 1))
    if names and len(names) == count:
        return [str(n) for n in names]
    return [f"band_{b}" for b in bands]


def _band_count(bundle: Bundle) -> int:
    for source in (bundle.normalization or {}, bundle.input_stats or {}):
        for key in ("mean", "min"):
            if source.get(key) is not None:
                return len(source[key])
    if bundle.bands:
        return len(bundle.bands)
    from geoseg.io.bundle import model_input_channels

    channels = model_input_channels(bundle.model)  # loads the model: only when the record says nothing
    if channels is None:
        raise ValueError(f"cannot tell the input band count of {bundle.directory}")
    return channels


def _footprint(bundle: Bundle) -> tuple[dict | None, list[float] | None]:
    """Lon/lat bounding box (GeoJSON polygon, bbox) of the training scenes, or (None, None)."""
    from rasterio.transform import Affine, array_bounds
    from rasterio.warp import transform_bounds

    boxes = []
    for scene in training_scenes(bundle):
        try:
            west, south, east, north = array_bounds(scene["height"], scene["width"], Affine(*scene["transform"][:6]))
            boxes.append(transform_bounds(scene["crs"], "EPSG:4326", west, south, east, north))
        except (ValueError, KeyError, TypeError):
            continue
    if not boxes:
        return None, None
    w, s = min(b[0] for b in boxes), min(b[1] for b in boxes)
    e, n = max(b[2] for b in boxes), max(b[3] for b in boxes)
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    return {"type": "Polygon", "coordinates": [ring]}, [w, s, e, n]


def _href(target: Path, item_dir: Path) -> str:
    try:
        return os.path.relpath(target.resolve(), item_dir.resolve())
    except ValueError:  # another drive (Windows)
        return target.resolve().as_uri()


def stac_item(bundle: Bundle, item_path: str | os.PathLike) -> dict[str, Any]:
    """The MLM STAC Item (a JSON-ready dict) of a Keras bundle, for writing at ``item_path``.

    Args:
        bundle: the bundle (its model is not loaded when ``geoseg.json`` names the bands).
        item_path: where the item will be written (asset hrefs are relative to its folder).
    """
    meta = bundle.meta
    tile, count = bundle.tile_size, _band_count(bundle)
    names = _band_names(bundle, count)
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {"name": str(meta.get("model", "model"))}
    classes = [{"value": int(c["index"]), "name": str(c["name"]), "description": f"class {c['index']}: {c['name']}",
                "color_hint": "".join(f"{int(v):02X}" for v in c.get("color", (0, 0, 0))[:3])}
               for c in meta["classes"]]
    input_stats = bundle.input_stats or {}
    norm = bundle.normalization
    how = {None: "raw band values", "meanstd": "(x - mean) / stddev per band",
           "minmax": "(x - minimum) / (maximum - minimum) per band, clipped to [0, 1]"}
    description = (f"Band values of the scene ({input_stats.get('dtype', 'any')} pixels) as float32, scaled by "
                   f"{how[None if norm is None else norm.get('method', 'meanstd')]}; non-finite values become 0 after "
                   f"scaling. geoseg predicts overlapping windows of {tile} px at a stride of {bundle.stride} px.")
    hyper: dict[str, Any] = {"tile_size": tile, "stride": bundle.stride, "blend": "mean",
                             "output_channels": bundle.output_channels, "ignore_index": meta.get("ignore_index", 255)}
    if bundle.binary:
        hyper["threshold"] = 0.5
    arguments = model.get("arguments") or {}
    if arguments:
        hyper["model_arguments"] = json.loads(json.dumps(arguments, default=str))
    geometry, bbox = _footprint(bundle)
    stamp = datetime.fromtimestamp((bundle.directory / META_FILE).stat().st_mtime, tz=timezone.utc)
    item_dir = Path(item_path).parent
    dtype = input_stats.get("dtype")
    properties: dict[str, Any] = {
        "datetime": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "description": f"geoseg {__version__} semantic segmentation model {model.get('name', 'model')} "
                       f"({len(classes)} classes, {count} bands, {tile} px tiles)",
        "mlm:name": f"{bundle.directory.name}",
        "mlm:architecture": str(model.get("name", "model")),
        "mlm:tasks": ["semantic-segmentation"],
        "mlm:framework": "Keras",
        "mlm:batch_size_suggestion": 8,
        "mlm:accelerator": None,
        "bands": [{"name": n, **({"data_type": dtype} if dtype else {})} for n in names],
        "mlm:input": [{
            "name": "image",
            "description": description,
            "bands": names,
            "input": {"shape": [-1, tile, tile, count], "dim_order": ["batch", "height", "width", "bands"],
                      "data_type": "float32"},
            "value_scaling": _value_scaling(norm),
            "resize_type": None,
        }],
        "mlm:output": [{
            "name": "probs",
            "description": ("probability of class 1 (binary sigmoid model); label = p >= threshold" if bundle.binary
                            else "softmax probability per class; label = argmax"),
            "tasks": ["semantic-segmentation"],
            "result": {"shape": [-1, tile, tile, bundle.output_channels],
                       "dim_order": ["batch", "height", "width", "class"], "data_type": "float32"},
            "classification:classes": classes,
        }],
        "mlm:hyperparameters": hyper,
    }
    version = _version("keras")
    if version:
        properties["mlm:framework_version"] = version
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [MLM_SCHEMA, CLASSIFICATION_SCHEMA],
        "id": bundle.directory.name,
        "geometry": geometry,
        **({"bbox": bbox} if bbox else {}),
        "properties": properties,
        "assets": {
            "model": {"href": _href(bundle.directory / MODEL_FILE, item_dir), "title": "Keras model",
                      "type": "application/octet-stream; framework=keras", "roles": ["mlm:model"],
                      "mlm:artifact_type": "tf.keras.Model.save"},
            "metadata": {"href": _href(bundle.directory / META_FILE, item_dir), "title": "geoseg bundle record",
                         "type": "application/json", "roles": ["metadata"]},
        },
        "links": [],
    }


def export_stac(bundle: Bundle, out: str | os.PathLike, *, overwrite: bool = False) -> dict[str, Any]:
    """Write the MLM STAC Item of a bundle as JSON at ``out``.

    Raises:
        OutputExistsError: ``out`` exists and ``overwrite`` is False.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"output exists: {out} (use --overwrite to replace it)")
    item = stac_item(bundle, out)
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(item, indent=2) + "\n")
    return {"path": out, "item": item}
