"""``geoseg export`` / ``python -m geoseg.export``: outputs, defaults, one ``error:`` line on user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("tf2onnx")
ort = pytest.importorskip("onnxruntime")

from geoseg.__main__ import main as geoseg_main  # noqa: E402


def test_geoseg_export_onnx_default_path_and_resolution_from_dataset(unet_bundle_dir, tmp_path, capsys):
    import shutil

    bundle = tmp_path / "mybundle"
    shutil.copytree(unet_bundle_dir, bundle)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "dataset.json").write_text(json.dumps({"scenes": [
        {"path": "s.tif", "width": 100, "height": 80, "crs": "EPSG:32633",
         "transform": [0.25, 0, 500000, 0, -0.25, 4649776]}]}))
    meta = json.loads((bundle / "geoseg.json").read_text())
    meta["training"] = {"dataset": str(dataset)}
    (bundle / "geoseg.json").write_text(json.dumps(meta))
    assert geoseg_main(["export", str(bundle)]) == 0
    out = tmp_path / "mybundle.onnx"
    assert "dynamic height/width" in capsys.readouterr().err
    props = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert json.loads(props["resolution"]) == 25.0  # 0.25 m pixels in cm
    # exists: refused without --overwrite, with one error line
    assert geoseg_main(["export", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: output exists:") and err.count("\n") == 1
    assert geoseg_main(["export", str(bundle), "--overwrite", "--resolution", "-3"]) == 1
    assert "--resolution must be > 0" in capsys.readouterr().err
    assert geoseg_main(["export", str(out), "--format", "stac"]) == 1
    assert "already an ONNX file" in capsys.readouterr().err


def test_python_m_geoseg_export_help_and_missing_bundle(tmp_path):
    run = subprocess.run([sys.executable, "-m", "geoseg.export", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "--format {onnx,savedmodel,stac}" in run.stdout
    run = subprocess.run([sys.executable, "-m", "geoseg.export", str(tmp_path / "nope")], capture_output=True,
                         text=True)
    assert run.returncode == 1 and run.stderr.startswith("error: no such bundle")
    listing = subprocess.run([sys.executable, "-m", "geoseg", "--help"], capture_output=True, text=True).stdout
    assert "export" in listing
