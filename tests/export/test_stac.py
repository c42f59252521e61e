"""``geoseg export --format stac``: an MLM STAC Item valid against the stored MLM v1.5.2 schema, offline.

What is validated: the whole item against the MLM extension schema (its Item branch: required
``mlm:*`` fields, input/output structures, value scaling, band references, classes through the
classification v1.1.0 schema, data types through the raster v1.1.0 schema, the model asset's role
and artifact type). The referenced extension schemas are served from ``tests/data/stac`` by a
``referencing`` registry, so nothing is downloaded. The STAC Item core schema is not stored; the
core fields an Item needs are asserted below.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

from export_factories import MINMAX, zoo_bundle  # noqa: E402

from geoseg.cli.export import main as export_main  # noqa: E402
from geoseg.export.stac import MLM_SCHEMA, stac_item  # noqa: E402
from geoseg.io.bundle import load_bundle  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "stac"
SCHEMAS = {
    MLM_SCHEMA: "mlm-v1.5.2.schema.json",
    "https://stac-extensions.github.io/classification/v1.1.0/schema.json": "classification-v1.1.0.schema.json",
    "https://stac-extensions.github.io/processing/v1.1.0/schema.json": "processing-v1.1.0.schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json": "raster-v1.1.0.schema.json",
}


def _validator():
    from referencing.jsonschema import DRAFT7

    resources = []
    for uri, name in SCHEMAS.items():
        contents = json.loads((DATA / name).read_text())
        resource = referencing.Resource.from_contents(contents, default_specification=DRAFT7)
        resources.append((uri, resource))
        resources.append((uri + "#", resource))

    def retrieve_nothing(uri):  # any other reference is a test failure, never a download
        raise referencing.exceptions.NoSuchResource(ref=uri)

    registry = referencing.Registry(retrieve=retrieve_nothing).with_resources(resources)
    schema = json.loads((DATA / SCHEMAS[MLM_SCHEMA]).read_text())
    return jsonschema.Draft7Validator(schema, registry=registry)


def _errors(item):
    return sorted(e.message for e in _validator().iter_errors(item))


def test_item_is_valid_mlm_and_describes_the_bundle(unet_bundle_dir, tmp_path):
    out = tmp_path / "item.json"
    assert export_main([str(unet_bundle_dir), "--format", "stac", "--out", str(out), "--quiet"]) == 0
    item = json.loads(out.read_text())
    assert _errors(item) == []
    # STAC Item core fields (the core schema is not stored)
    assert item["type"] == "Feature" and item["stac_version"] == "1.1.0" and item["id"] == "unet"
    assert "geometry" in item and isinstance(item["links"], list) and item["properties"]["datetime"]
    props = item["properties"]
    meta = json.loads((unet_bundle_dir / "geoseg.json").read_text())
    (inp,) = props["mlm:input"]
    assert inp["bands"] == ["red", "green", "blue", "nir"]
    assert inp["input"]["shape"] == [-1, 32, 32, 4]
    assert inp["value_scaling"] == [{"type": "z-score", "mean": m, "stddev": s}
                                    for m, s in zip(meta["normalization"]["mean"], meta["normalization"]["std"])]
    (output,) = props["mlm:output"]
    assert output["result"]["shape"] == [-1, 32, 32, 3]
    assert [(c["value"], c["name"], c["color_hint"]) for c in output["classification:classes"]] == [
        (0, "background", "000000"), (1, "building", "DC143C"), (2, "tree", "008000")]
    assert props["mlm:hyperparameters"]["tile_size"] == 32 and props["mlm:hyperparameters"]["stride"] == 16
    assert props["mlm:framework"] == "Keras" and props["mlm:architecture"] == "unet"
    assets = item["assets"]
    assert (out.parent / assets["model"]["href"]).resolve() == (unet_bundle_dir / "model.keras").resolve()
    assert (out.parent / assets["metadata"]["href"]).resolve() == (unet_bundle_dir / "geoseg.json").resolve()


def test_schema_check_is_not_empty(unet_bundle_dir, tmp_path):
    item = stac_item(load_bundle(unet_bundle_dir, load_model=False), tmp_path / "item.json")
    broken = copy.deepcopy(item)
    del broken["properties"]["mlm:input"]
    assert any("mlm:input" in e for e in _errors(broken))
    broken = copy.deepcopy(item)
    broken["properties"]["mlm:output"][0]["classification:classes"][0]["color_hint"] = "red"
    assert _errors(broken)
    broken = copy.deepcopy(item)
    del broken["properties"]["bands"]  # named input bands must be described somewhere
    assert _errors(broken)


def test_minmax_binary_item(tmp_path):
    classes = [{"index": 0, "name": "background", "color": [0, 0, 0]}, {"index": 1, "name": "road", "color": [9, 9, 9]}]
    bundle = load_bundle(zoo_bundle(tmp_path, "unet", tile=32, classes=classes, norm=MINMAX, activation="sigmoid"),
                         load_model=False)
    item = stac_item(bundle, tmp_path / "x.json")
    assert _errors(item) == []
    props = item["properties"]
    assert props["mlm:input"][0]["value_scaling"][0] == {"type": "min-max", "minimum": 10.0, "maximum": 240.0}
    assert "clipped to [0, 1]" in props["mlm:input"][0]["description"]
    assert props["mlm:output"][0]["result"]["shape"][-1] == 1 and props["mlm:hyperparameters"]["threshold"] == 0.5
