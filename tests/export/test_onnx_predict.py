"""``geoseg predict --model FILE.onnx``: onnxruntime, no TensorFlow, same outputs and tags as the Keras bundle."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import rasterio

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")

from export_factories import MINMAX, zoo_bundle

from geoseg.cli.predict import main as predict_main
from geoseg.errors import BundleError
from geoseg.export.onnx import export_onnx
from geoseg.io.bundle import load_bundle


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.tags(), ds.profile


def _scene(make_raster):
    """uint8, 4 bands, nodata 0 with a nodata block, not a multiple of the tile (edge windows snap back)."""
    rng = np.random.default_rng(5)
    data = rng.integers(1, 256, (4, 70, 53), dtype=np.uint8)
    data[:, 10:30, 5:20] = 0
    return make_raster("scene.tif", data=data, nodata=0)


def _compare(keras_out, onnx_out, stem="scene", binary=False):
    pk, tk, prof_k = _read(keras_out / f"{stem}_prob.tif")
    po, to, prof_o = _read(onnx_out / f"{stem}_prob.tif")
    lk, _, _ = _read(keras_out / f"{stem}_label.tif")
    lo, tlo, _ = _read(onnx_out / f"{stem}_label.tif")
    assert prof_k["transform"] == prof_o["transform"] and prof_k["crs"] == prof_o["crs"]
    assert np.array_equal(np.isnan(pk), np.isnan(po))
    valid = ~np.isnan(pk)
    assert float(np.max(np.abs(pk[valid] - po[valid]))) <= 1e-4
    # labels equal except where the top two probabilities (or p and the threshold) are within 1e-4: ties
    if binary:
        near = np.abs(pk[0] - 0.5) <= 1e-4
    else:
        top = np.sort(np.nan_to_num(pk), axis=0)
        near = (top[-1] - top[-2]) <= 1e-4
    assert np.array_equal(lk[0][~near], lo[0][~near])
    assert (lk[0] == 255).sum() == (lo[0] == 255).sum() > 0
    differing = {k for k in set(tk) | set(to) if tk.get(k) != to.get(k)}
    assert differing == {"GEOSEG_BUNDLE"}, differing  # the model's file name; everything else is the same
    assert tlo["GEOSEG_CLASSES"] == _read(keras_out / f"{stem}_label.tif")[1]["GEOSEG_CLASSES"]


def test_predict_onnx_equals_keras_without_tensorflow(unet_bundle_dir, unet_onnx, make_raster, tmp_path):
    scene = _scene(make_raster)
    args = [str(scene), "--prob-dtype", "float32", "--blend", "gaussian", "--batch-size", "3", "--quiet"]
    assert predict_main(["--model", str(unet_bundle_dir), *args, "--out", str(tmp_path / "keras")]) == 0
    code = textwrap.dedent(f"""
        import sys
        from geoseg.cli.predict import main
        rc = main(["--model", {str(unet_onnx)!r}, *{args!r}, "--out", {str(tmp_path / "onnx")!r}])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        assert not loaded, loaded
        sys.exit(rc)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    _compare(tmp_path / "keras", tmp_path / "onnx")


def test_predict_onnx_binary_with_tta(tmp_path, make_raster):
    classes = [{"index": 0, "name": "background", "color": [0, 0, 0]}, {"index": 1, "name": "road", "color": [9, 9, 9]}]
    bundle_dir = zoo_bundle(tmp_path, "unet", tile=32, classes=classes, norm=MINMAX, activation="sigmoid")
    onnx_path = tmp_path / "binary.onnx"
    export_onnx(load_bundle(bundle_dir), onnx_path)
    scene = _scene(make_raster)
    args = [str(scene), "--prob-dtype", "float32", "--tta", "--threshold", "0.4", "--quiet"]
    assert predict_main(["--model", str(bundle_dir), *args, "--out", str(tmp_path / "keras")]) == 0
    assert predict_main(["--model", str(onnx_path), *args, "--out", str(tmp_path / "onnx")]) == 0
    prob, tags, _ = _read(tmp_path / "onnx" / "scene_prob.tif")
    assert prob.shape[0] == 1 and tags["GEOSEG_THRESHOLD"] == "0.4" and tags["GEOSEG_TTA"] == "yes"
    _compare(tmp_path / "keras", tmp_path / "onnx", binary=True)


def test_onnx_record_is_the_bundle_record(unet_bundle_dir, unet_onnx):
    keras_bundle, onnx_bundle = load_bundle(unet_bundle_dir, load_model=False), load_bundle(unet_onnx, load_model=False)
    assert onnx_bundle.is_onnx and not keras_bundle.is_onnx
    for attr in ("classes", "tile_size", "stride", "bands", "normalization", "output_channels", "binary",
                 "input_stats"):
        assert getattr(onnx_bundle, attr) == getattr(keras_bundle, attr), attr
    assert onnx_bundle.model.input_shape == (None, None, None, 4)


def test_foreign_onnx_file_is_refused(tmp_path, unet_onnx, capsys, make_raster):
    import onnx

    proto = onnx.load(str(unet_onnx))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "foreign.onnx"))
    with pytest.raises(BundleError, match="has no 'geoseg' metadata"):
        load_bundle(tmp_path / "foreign.onnx")
    scene = make_raster("s.tif", bands=4)
    assert predict_main(["--model", str(tmp_path / "foreign.onnx"), str(scene), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.slow
def test_predict_onnx_on_dask_workers_equals_one_process(unet_onnx, make_raster, tmp_path):
    from geoseg.inference import predict_scenes

    scene = _scene(make_raster)
    one = predict_scenes(unet_onnx, [scene], tmp_path / "one", progress=False, prob_dtype="float32")[0]
    two = predict_scenes(unet_onnx, [scene], tmp_path / "two", workers=2, strip_rows=32, progress=False,
                         prob_dtype="float32")[0]
    for a, b in ((one.prob, two.prob), (one.label, two.label)):
        assert np.array_equal(_read(a)[0], _read(b)[0], equal_nan=True)
