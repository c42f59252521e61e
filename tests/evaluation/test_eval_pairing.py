"""Pairing predictions with labels: explicit lists by position, folders by name, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from geoseg.errors import InputNotFoundError, InvalidParameterError
from geoseg.evaluation import pair_inputs, pair_key

from factories import write_raster


def _touch_rasters(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        write_raster(folder / n, np.zeros((4, 4), np.uint8))
    return folder


def test_pair_key_strips_role_suffixes():
    assert pair_key("out/scene_label.tif") == "scene"
    assert pair_key("labels/scene-gt.tif") == "scene"
    assert pair_key("scene_PRED.tif") == "scene"
    assert pair_key("scene.tif") == "scene"
    assert pair_key("label.tif") == "label"  # nothing left to strip


def test_folders_pair_by_name_not_order(tmp_path):
    # listing orders differ: b sorts before c on one side only by key, never by position
    preds = _touch_rasters(tmp_path / "pred", ["zeta_label.tif", "alpha_label.tif", "alpha_prob.tif"])
    labels = _touch_rasters(tmp_path / "labels", ["alpha.tif", "zeta_gt.tif"])
    pairs = pair_inputs([preds], [labels])
    assert [(p.prediction.name, p.label.name) for p in pairs] == [
        ("alpha_label.tif", "alpha.tif"), ("zeta_label.tif", "zeta_gt.tif")]


def test_unpaired_files_are_listed(tmp_path):
    preds = _touch_rasters(tmp_path / "pred", ["a_label.tif", "b_label.tif", "c_label.tif"])
    labels = _touch_rasters(tmp_path / "labels", ["a.tif", "c.tif", "d.tif"])
    with pytest.raises(InputNotFoundError) as info:
        pair_inputs([preds], [labels])
    msg = str(info.value)
    assert "prediction(s) without a label" in msg and "b_label.tif" in msg
    assert "label(s) without a prediction" in msg and "d.tif" in msg
    assert "a_label.tif" not in msg


def test_duplicate_keys_refused(tmp_path):
    preds = _touch_rasters(tmp_path / "pred", ["a_label.tif", "a_pred.tif"])
    labels = _touch_rasters(tmp_path / "labels", ["a.tif"])
    with pytest.raises(InvalidParameterError, match="share a name key"):
        pair_inputs([preds], [labels])


def test_explicit_lists_pair_by_position(tmp_path):
    d = _touch_rasters(tmp_path, ["p1.tif", "p2.tif", "x.tif", "y.tif"])
    pairs = pair_inputs([d / "p1.tif", d / "p2.tif"], [d / "y.tif", d / "x.tif"])
    assert [(p.prediction.name, p.label.name) for p in pairs] == [("p1.tif", "y.tif"), ("p2.tif", "x.tif")]
    with pytest.raises(InvalidParameterError, match="2 prediction.*1 label"):
        pair_inputs([d / "p1.tif", d / "p2.tif"], [d / "x.tif"])
    with pytest.raises(InputNotFoundError, match="no such file"):
        pair_inputs([d / "missing.tif"], [d / "x.tif"])


def test_one_vector_label_serves_every_prediction(tmp_path):
    d = _touch_rasters(tmp_path, ["p1.tif", "p2.tif"])
    (d / "region.gpkg").write_bytes(b"")  # existence is all pairing needs
    pairs = pair_inputs([d / "p1.tif", d / "p2.tif"], [d / "region.gpkg"])
    assert [p.label.name for p in pairs] == ["region.gpkg", "region.gpkg"]
    assert all(p.label_is_vector for p in pairs)


def test_one_vector_label_serves_a_prediction_folder(tmp_path):
    d = _touch_rasters(tmp_path / "pred", ["a_label.tif", "b_label.tif", "b_prob.tif"])
    (tmp_path / "region.geojson").write_bytes(b"")
    pairs = pair_inputs([d], [tmp_path / "region.geojson"])
    assert [(p.prediction.name, p.label.name) for p in pairs] == [("a_label.tif", "region.geojson"),
                                                                    ("b_label.tif", "region.geojson")]
