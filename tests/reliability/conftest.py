"""The bad-input corpus of the reliability suite, built once per test session.

Tiny rasters (64 x 64 px, UTM 33N, 0.5 m, non-identity transform, nodata) and the broken
variants a user meets in practice: a Cloud-Optimized GeoTIFF cut off at half its size (header
intact, data missing), a file that is not a raster, label rasters with fractional, negative or
too large values, label rasters on no common ground, empty and attribute-less vector files, a
bundle whose model file is cut off, a plain file standing where a folder is needed.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import shapely
from affine import Affine

from factories import DEFAULT_TRANSFORM, write_raster

SIZE = 64
TILE = 32


def _scene_data(seed: int = 0, bands: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 256, (bands, SIZE, SIZE)).astype(np.uint8)  # 0 is nodata


def _class_data() -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return ((yy // 16 + xx // 16) % 3).astype(np.uint8)


def _cut_cog(src: Path, dst: Path) -> Path:
    """A COG copy of ``src`` cut off in the middle of its pixel blocks (a half-finished download or copy):
    the header opens and the first blocks read, the later ones cannot be read."""
    full = dst.with_name(dst.stem + "_full.tif")
    rasterio.shutil.copy(src, full, driver="COG", blocksize=16, compress="deflate", overviews="NONE")
    with rasterio.open(full) as ds:
        rows, cols = ds.height // 16, ds.width // 16
        offsets = sorted(int(ds.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1))
                         for r in range(rows) for c in range(cols))
    data = full.read_bytes()
    dst.write_bytes(data[: offsets[len(offsets) // 2]])
    full.unlink()
    return dst


def _keras_bundle(directory: Path) -> Path:
    """A real bundle: a 1x1 conv + softmax on 4 bands, 3 classes, tile 32, stride 16, minmax normalization."""
    from geoseg.runtime.tensorflow import import_tensorflow

    import_tensorflow()
    import keras

    from geoseg.io.bundle import save_bundle

    inp = keras.Input((TILE, TILE, 4))
    conv = keras.layers.Conv2D(3, 1, name="conv")
    model = keras.Model(inp, keras.layers.Softmax()(conv(inp)), name="tiny")
    rng = np.random.default_rng(1)
    conv.set_weights([rng.normal(0, 1, (1, 1, 4, 3)).astype("float32"), np.zeros(3, "float32")])
    norm = {"method": "minmax", "min": [0, 0, 0, 0], "max": [255, 255, 255, 255]}
    return save_bundle(model, directory, ["water", "forest", "urban"], TILE, normalization=norm, stride=TILE // 2,
                       bands=[1, 2, 3, 4])


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    """A real, loadable bundle (imports TensorFlow once per session)."""
    return _keras_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, bundle_dir) -> SimpleNamespace:
    """Paths of the corpus files by name (see the module docstring); every value is a ``str``."""
    with warnings.catch_warnings():  # files without georeference or CRS, on purpose
        warnings.simplefilter("ignore")
        return _corpus(tmp_path_factory.mktemp("corpus"), bundle_dir)


def _corpus(d: Path, bundle_dir: Path) -> SimpleNamespace:
    from geoseg.io.vector import write_vector

    c: dict[str, Path] = {}
    tiled = {"tiled": True, "blockxsize": 16, "blockysize": 16}
    c["scene"] = write_raster(d / "scene.tif", _scene_data(), nodata=0, **tiled)
    c["scene3"] = write_raster(d / "scene3.tif", _scene_data(bands=3), nodata=0)
    c["scene_u16"] = write_raster(d / "scene_u16.tif", _scene_data().astype(np.uint16) * 200, nodata=0)
    c["tiny_scene"] = write_raster(d / "tiny_scene.tif", _scene_data()[:, :16, :16], nodata=0)
    c["labels"] = write_raster(d / "labels.tif", _class_data(), nodata=255, **tiled)
    c["pred"] = c["labels"]  # a class raster standing for a prediction
    c["scene_cut"] = _cut_cog(c["scene"], d / "scene_cut.tif")
    c["labels_cut"] = _cut_cog(c["labels"], d / "labels_cut.tif")
    # one band: no alpha-band probe reads it up front, so tiling fails in the middle of writing patches
    c["scene1_cut"] = _cut_cog(write_raster(d / "scene1.tif", _scene_data(bands=1), nodata=0), d / "scene1_cut.tif")
    c["garbage"] = d / "garbage.tif"
    c["garbage"].write_bytes(b"II*\x00 this is not a TIFF, only its first bytes")
    c["labels_float"] = write_raster(d / "labels_float.tif", _class_data().astype(np.float32) + 0.5)
    c["labels_negative"] = write_raster(d / "labels_negative.tif", _class_data().astype(np.int16) - 3)
    c["labels_300"] = write_raster(d / "labels_300.tif", _class_data().astype(np.uint16) * 300)
    c["labels_2band"] = write_raster(d / "labels_2band.tif", np.stack([_class_data()] * 2))
    c["labels_rgb"] = write_raster(d / "labels_rgb.tif", np.stack([_class_data() * 100] * 3))
    far = Affine(0.5, 0.0, 100000.0, 0.0, -0.5, 1000000.0)
    c["labels_far"] = write_raster(d / "labels_far.tif", _class_data(), transform=far)
    c["labels_bare"] = write_raster(d / "labels_bare.tif", _class_data()[:40, :40], crs=None,
                                    transform=Affine.identity())
    c["palette"] = d / "palette.json"
    c["palette"].write_text(json.dumps([{"index": 0, "name": "ground", "color": [0, 0, 0]},
                                        {"index": 1, "name": "tree", "color": [100, 100, 100]}]))
    x0, y1 = DEFAULT_TRANSFORM.c, DEFAULT_TRANSFORM.f
    boxes = [shapely.box(x0 + 2, y1 - 20, x0 + 14, y1 - 2), shapely.box(x0 + 16, y1 - 30, x0 + 30, y1 - 18)]
    c["vector"] = write_vector(d / "labels.gpkg", boxes, {"class_id": np.array([1, 2])}, crs="EPSG:32633")
    c["vector_text"] = write_vector(d / "labels_text.gpkg", boxes, {"kind": np.array(["tree", "house"], object)},
                                    crs="EPSG:32633")
    c["vector_noattr"] = write_vector(d / "labels_noattr.gpkg", boxes, {"area": np.array([1.0, 2.0])},
                                      crs="EPSG:32633")
    c["vector_empty"] = d / "empty.geojson"
    c["vector_empty"].write_text('{"type": "FeatureCollection", "features": []}')
    c["vector_garbage"] = d / "garbage.gpkg"
    c["vector_garbage"].write_bytes(b"not a GeoPackage")
    # UTM coordinates in a GeoJSON without "crs" member (read as lon/lat)
    c["vector_utm_geojson"] = write_vector(d / "utm.geojson", boxes, {"class_id": np.array([1, 2])})
    c["afile"] = d / "afile"
    c["afile"].write_text("a plain file where a folder is expected\n")
    c["empty_dir"] = d / "empty_dir"
    c["empty_dir"].mkdir()
    # bundles
    c["bundle"] = bundle_dir
    c["bundle_cut"] = d / "bundle_cut"
    shutil.copytree(bundle_dir, c["bundle_cut"])
    model = c["bundle_cut"] / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    c["bundle_nojson"] = d / "bundle_nojson"
    shutil.copytree(bundle_dir, c["bundle_nojson"])
    (c["bundle_nojson"] / "geoseg.json").unlink()
    c["bundle_badjson"] = d / "bundle_badjson"
    shutil.copytree(bundle_dir, c["bundle_badjson"])
    (c["bundle_badjson"] / "geoseg.json").write_text("{ not json")
    c["bundle_stats"] = d / "bundle_stats"
    shutil.copytree(bundle_dir, c["bundle_stats"])
    meta = json.loads((c["bundle_stats"] / "geoseg.json").read_text())
    meta["input"] = {"dtype": "uint8", "min": [1.0] * 4, "max": [255.0] * 4}
    (c["bundle_stats"] / "geoseg.json").write_text(json.dumps(meta))
    # a finished output to be refused without --overwrite
    c["existing_dir"] = d / "existing"
    c["existing_dir"].mkdir()
    (c["existing_dir"] / "index.csv").write_text("id\n")
    c["existing_tif"] = write_raster(d / "existing.tif", _class_data())
    # configuration and pipeline files
    c["cfg_unknown"] = d / "unknown_key.yaml"
    c["cfg_unknown"].write_text("bogus_key: 1\n")
    c["cfg_bad_value"] = d / "bad_value.yaml"
    c["cfg_bad_value"].write_text("size: abc\n")
    c["cfg_not_yaml"] = d / "not_yaml.yaml"
    c["cfg_not_yaml"].write_text("size: [1, 2\n")
    ins = f"inputs:\n  scenes: [{c['scene']}]\n  labels: [{c['labels']}]\n"
    skip = "predict: false\nevaluate: false\nvectorize: false\n"
    pipelines = {
        "pl_unknown_key": f"name: t\nout: OUT\n{ins}tile: {{bogus: 1}}\ntrain: false\n{skip}",
        "pl_bad_value": f"name: t\nout: OUT\n{ins}tile: {{size: abc}}\ntrain: false\n{skip}",
        "pl_no_inputs": f"name: t\nout: OUT\ntile: {{size: 32}}\ntrain: false\n{skip}",
        "pl_missing_scene": f"name: t\nout: OUT\ninputs:\n  scenes: [{d / 'absent.tif'}]\n"
                            f"  labels: [{c['labels']}]\ntile: {{size: 32}}\ntrain: false\n{skip}",
        "pl_cut_scene": f"name: t\nout: OUT\ninputs:\n  scenes: [{c['scene_cut']}]\n  labels: [{c['labels']}]\n"
                        f"tile: {{size: 16}}\ntrain: false\n{skip}",
    }
    for name, text in pipelines.items():
        c[name] = d / f"{name}.yaml"
        c[name].write_text(text)
    c["absent"] = d / "absent.tif"
    return SimpleNamespace(**{k: str(v) for k, v in c.items()})
