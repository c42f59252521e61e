"""Scene vs bundle input checks: dtype and value range against the training statistics."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import rasterio

from geoseg.errors import InputMismatchError, InvalidParameterError
from geoseg.inference import checks, predict_scene
from geoseg.io.bundle import load_bundle, save_bundle

TILE = 32
UINT8_STATS = {"dtype": "uint8", "min": [0, 0, 0], "max": [255, 255, 255], "p2": [5, 5, 5], "p98": [250, 250, 250]}
FLOAT_STATS = {"dtype": "float32", "min": [0.0, 0.0, 0.0], "max": [1.0, 1.0, 1.0]}


def _identity_model(bands: int):
    from geoseg.runtime.tensorflow import import_tensorflow

    import_tensorflow()
    import keras

    inp = keras.Input((TILE, TILE, bands))
    return keras.Model(inp, keras.layers.Identity()(inp), name="identity")


@pytest.fixture(scope="session")
def stats_bundles(tmp_path_factory):
    """Identity bundles on 3 bands with uint8 and float32 training statistics."""
    root = tmp_path_factory.mktemp("bundles")
    return {name: save_bundle(_identity_model(3), root / name, ["a", "b", "c"], TILE, input_stats=stats)
            for name, stats in (("uint8", UINT8_STATS), ("float32", FLOAT_STATS))}


def test_input_stats_are_stored_in_geoseg_json(stats_bundles):
    meta = json.loads((stats_bundles["uint8"] / "geoseg.json").read_text())
    assert meta["input"] == {"dtype": "uint8", "min": [0.0] * 3, "max": [255.0] * 3, "p2": [5.0] * 3,
                             "p98": [250.0] * 3}
    assert load_bundle(stats_bundles["float32"], load_model=False).input_stats["dtype"] == "float32"


@pytest.mark.parametrize("stats,match", [
    ({"dtype": "uint8", "min": [0, 0], "max": [255, 255, 255]}, "min has 2 value"),
    ({"dtype": "uint8", "min": [0, 0, 0]}, "missing \\['max'\\]"),
    ({"dtype": "nonsense", "min": [0, 0, 0], "max": [1, 1, 1]}, "not a numpy dtype"),
    ({"dtype": "uint8", "min": [0, 9, 0], "max": [1, 1, 1]}, "min > max for model band\\(s\\) \\[2\\]"),
    ({"dtype": "uint8", "min": [0, 0, 0], "max": [1, 1, 1], "mean": [0, 0, 0]}, "unknown key"),
])
def test_malformed_input_stats_are_refused(tmp_path, stats, match):
    with pytest.raises(InvalidParameterError, match=match):
        save_bundle(_identity_model(3), tmp_path / "b", ["a", "b", "c"], TILE, input_stats=stats)
    assert not (tmp_path / "b" / "geoseg.json").exists()


def test_uint16_scene_is_refused_by_a_uint8_bundle(stats_bundles, make_raster, tmp_path):
    scene = make_raster("wide.tif", height=40, width=40, bands=3, dtype="uint16")
    with pytest.raises(InputMismatchError) as exc:
        predict_scene(stats_bundles["uint8"], scene, tmp_path / "out", progress=False)
    msg = str(exc.value)
    assert str(scene) in msg and "band 1" in msg and "dtype uint16" in msg and "trained on uint8" in msg
    assert "--allow-input-mismatch" in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()


def test_float_scene_with_ten_times_the_range_is_refused(stats_bundles, make_raster, tmp_path):
    data = np.random.default_rng(0).random((3, 40, 40)).astype("float32")
    data[1] *= 10  # band 2 only
    scene = make_raster("bright.tif", data=data)
    with pytest.raises(InputMismatchError, match=r"band 2: values p2..p98 .* far from the training range 0..1"):
        predict_scene(stats_bundles["float32"], scene, tmp_path / "out", progress=False)


def test_median_outside_the_training_range_is_refused(stats_bundles, make_raster, tmp_path):
    # p2..p98 = 1.2..1.8 lies within lo - r..hi + r = -1..2, but the median (1.5) is above the maximum 1
    data = (1.2 + 0.6 * np.random.default_rng(1).random((3, 40, 40))).astype("float32")
    with pytest.raises(InputMismatchError, match="median 1.5"):
        predict_scene(stats_bundles["float32"], make_raster("shifted.tif", data=data), tmp_path / "o", progress=False)


def test_scene_in_the_training_range_is_accepted(stats_bundles, make_raster, tmp_path):
    data = np.random.default_rng(2).random((3, 40, 40)).astype("float32")
    data[:, :5] = np.nan  # nodata and NaN are left out of the statistics
    scene = make_raster("ok.tif", data=data, nodata=-9999.0)
    res = predict_scene(stats_bundles["float32"], scene, tmp_path / "out", prob_dtype="float32", progress=False)
    with rasterio.open(res.prob) as ds:
        assert np.array_equal(ds.read(), data, equal_nan=True)
    u8 = make_raster("ok8.tif", height=40, width=40, bands=3, dtype="uint8")
    assert predict_scene(stats_bundles["uint8"], u8, tmp_path / "out8", progress=False).label.exists()


def test_override_predicts_with_a_warning(stats_bundles, make_raster, tmp_path, caplog):
    scene = make_raster("wide.tif", height=40, width=40, bands=3, dtype="uint16")  # values up to 1000
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        res = predict_scene(stats_bundles["uint8"], scene, tmp_path / "out", allow_input_mismatch=True,
                            progress=False)
    assert res.label.exists()
    text = caplog.text
    assert "dtype uint16" in text and "training range 0..255" in text and "--allow-input-mismatch" in text


def test_cli_refuses_with_one_error_line_and_accepts_the_override(stats_bundles, make_raster, tmp_path, capsys,
                                                                   caplog):
    from geoseg.cli.predict import main

    scene = make_raster("wide.tif", height=40, width=40, bands=3, dtype="uint16")
    argv = ["--model", str(stats_bundles["uint8"]), str(scene), "--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: scene ") and err.count("\n") == 1 and "--allow-input-mismatch" in err
    with caplog.at_level(logging.WARNING, logger="geoseg"):
        assert main(argv + ["--allow-input-mismatch"]) == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4  # the dtype once, the range of each of the 3 bands
    assert (tmp_path / "out" / "wide_label.tif").exists()


def test_sample_of_a_large_scene_reads_only_its_sample_windows(make_raster, monkeypatch):
    monkeypatch.setattr(checks, "SAMPLE_SIDE", 50)
    data = np.random.default_rng(3).integers(1, 200, (1, 300, 260)).astype("uint8")
    data[0, :20] = 0
    path = make_raster("big.tif", data=data, nodata=0)
    wins = checks.sample_windows(300, 260)
    assert len(wins) == checks.SAMPLE_GRID ** 2
    expected = np.concatenate([data[0, w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width].ravel()
                               for w in wins])
    with rasterio.open(path) as ds:
        got = checks.sample_band(ds, 1)
    assert np.array_equal(got, expected[expected != 0].astype(np.float64))
    for w in wins:  # inside the scene, evenly spread
        assert 0 <= w.row_off <= 300 - w.height and 0 <= w.col_off <= 260 - w.width


def test_sample_of_a_scene_with_overviews_is_a_decimated_read(make_raster, monkeypatch):
    monkeypatch.setattr(checks, "SAMPLE_SIDE", 50)
    data = np.full((1, 200, 100), 7, dtype="uint8")
    path = make_raster("ov.tif", data=data)
    with rasterio.open(path, "r+") as ds:
        ds.build_overviews([2, 4])
    with rasterio.open(path) as ds:
        got = checks.sample_band(ds, 1)
    assert got.size == 50 * 25 and (got == 7).all()
