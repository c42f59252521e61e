"""Session fixtures of the export tests: a small U-Net bundle and its ONNX export."""

from __future__ import annotations

import pytest
from export_factories import zoo_bundle


@pytest.fixture(scope="session")
def unet_bundle_dir(tmp_path_factory):
    """A small U-Net bundle: 4 bands, 3 classes, tile 32, stride 16, meanstd normalization."""
    return zoo_bundle(tmp_path_factory.mktemp("bundles"), "unet", tile=32)


@pytest.fixture(scope="session")
def unet_onnx(unet_bundle_dir, tmp_path_factory):
    from geoseg.export.onnx import export_onnx
    from geoseg.io.bundle import load_bundle

    out = tmp_path_factory.mktemp("onnx") / "unet.onnx"
    export_onnx(load_bundle(unet_bundle_dir), out)
    return out
