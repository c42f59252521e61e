"""Foundation: raster records, class maps, atomic outputs, CLI plumbing, bundles, normalization."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geoseg.cli.common import CommandParser, apply_config, make_main
from geoseg.errors import (
    AlignmentError,
    BandCountError,
    BundleError,
    ConfigError,
    InputNotFoundError,
    MissingGeoreferenceError,
    OutputExistsError,
    PaletteError,
    UnreadableRasterError,
)
from geoseg.io.atomic import atomic_output, check_output, remove_stale_temps
from geoseg.io.classes import ClassMap, color_to_index, index_to_color, load_palette
from geoseg.io.normalization import from_statistics, normalize
from geoseg.io.raster import check_bands, check_same_grid, expand_inputs, open_scene, valid_mask

ROOT = Path(__file__).resolve().parents[2]


def test_open_scene_reads_header(make_raster):
    p = make_raster(height=30, width=40, bands=3, dtype="uint16", nodata=0)
    info = open_scene(p, require_georeference=True)
    assert (info.width, info.height, info.count, info.dtype, info.nodata) == (40, 30, 3, "uint16", 0)
    assert info.crs.to_epsg() == 32633
    minx, miny, maxx, maxy = info.bounds
    assert (maxx - minx, maxy - miny) == (20.0, 15.0)


def test_open_scene_errors(tmp_path, make_raster):
    with pytest.raises(InputNotFoundError, match="no such file"):
        open_scene(tmp_path / "missing.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(UnreadableRasterError, match="bad.tif"):
        open_scene(bad)
    from affine import Affine

    p = make_raster("nocrs.tif", crs=None, transform=Affine.identity())
    with pytest.raises(MissingGeoreferenceError, match="no CRS"):
        open_scene(p, require_georeference=True)


def test_band_and_grid_checks(make_raster):
    a = open_scene(make_raster("a.tif", bands=4))
    with pytest.raises(BandCountError, match="band\\(s\\) 5 requested"):
        check_bands(a, [1, 5])
    assert check_bands(a, None) == [1, 2, 3, 4]
    b = open_scene(make_raster("b.tif", width=81))
    with pytest.raises(AlignmentError, match="size differs"):
        check_same_grid(a, b)


def test_expand_inputs(tmp_path, make_raster):
    make_raster("x1.tif"), make_raster("x2.tif")
    assert [p.name for p in expand_inputs([tmp_path])] == ["x1.tif", "x2.tif"]
    assert [p.name for p in expand_inputs([str(tmp_path / "x*.tif")])] == ["x1.tif", "x2.tif"]
    with pytest.raises(InputNotFoundError, match="glob matched nothing"):
        expand_inputs([str(tmp_path / "nope*.tif")])


def test_valid_mask_needs_all_bands_nodata():
    d = np.array([[[0, 1]], [[0, 0]]], dtype=np.uint8)
    assert valid_mask(d, 0).tolist() == [[False, True]]
    f = np.array([[[np.nan, 1.0]]], dtype=np.float32)
    assert valid_mask(f, None).tolist() == [[False, True]]


def test_palette_round_trip(tmp_path):
    cm = ClassMap.from_names(["bg", "building", "road"])
    cm.save(tmp_path / "p.json")
    assert load_palette(tmp_path / "p.json") == cm
    (tmp_path / "p.txt").write_text("# idx,name,r,g,b\n0,bg,0,0,0\n1,building,255,0,0\n")
    pal = load_palette(tmp_path / "p.txt")
    idx = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    rgb = index_to_color(idx, pal)
    np.testing.assert_array_equal(color_to_index(rgb, pal), idx)
    rgb[:, 0, 0] = (1, 2, 3)
    with pytest.raises(PaletteError, match=r"1 color\(s\) not in the palette: \(1,2,3\): 1 px"):
        color_to_index(rgb, pal)


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done"
    with pytest.raises(OutputExistsError, match="--overwrite"):
        check_output(target)
    check_output(target, overwrite=True)
    (tmp_path / "x.tmp-1234abcd.tif").write_text("")
    assert remove_stale_temps(tmp_path) == 1


def test_config_rejects_unknown_keys_listing_valid_ones():
    p = CommandParser()
    p.add_argument("--size", type=int, default=1)
    p.add_argument("--out")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) sise; valid keys: .*size"):
        apply_config(p, {"sise": 3})
    apply_config(p, {"size": 3})
    assert p.parse_args([]).size == 3
    assert p.parse_args(["--size", "5"]).size == 5


def test_make_main_maps_user_errors(capsys):
    import argparse

    def build():
        return argparse.ArgumentParser()

    def run(args):
        raise BandCountError("scene.tif has 3 bands, expected 4")

    assert make_main(build, run)([]) == 1
    err = capsys.readouterr().err
    assert err == "error: scene.tif has 3 bands, expected 4\n"


def test_normalization():
    x = np.array([[[2.0, 10.0]]])  # (1, 1, 2) H, W, C
    n = normalize(x, {"method": "meanstd", "mean": [1, 0], "std": [1, 10]})
    np.testing.assert_allclose(n[0, 0], [1.0, 1.0])
    n = normalize(x, from_statistics({"p2": [0, 0], "p98": [4, 5]}, "percentile"))
    np.testing.assert_allclose(n[0, 0], [0.5, 1.0])
    with pytest.raises(BandCountError):
        normalize(x, {"method": "meanstd", "mean": [1], "std": [1]})


def test_bundle_meta_errors(tmp_path):
    from geoseg.io.bundle import read_bundle_meta

    with pytest.raises(InputNotFoundError):
        read_bundle_meta(tmp_path / "none")
    (tmp_path / "b").mkdir()
    with pytest.raises(BundleError, match="no geoseg.json"):
        read_bundle_meta(tmp_path / "b")
    (tmp_path / "b" / "geoseg.json").write_text("{broken")
    with pytest.raises(BundleError, match="corrupt"):
        read_bundle_meta(tmp_path / "b")
    (tmp_path / "b" / "geoseg.json").write_text(json.dumps({"classes": [], "tile_size": 64}))
    with pytest.raises(BundleError, match="no model.keras"):
        read_bundle_meta(tmp_path / "b")


def test_import_geoseg_does_not_import_tensorflow():
    code = ("import sys, geoseg, geoseg.cli, geoseg.io.raster, geoseg.io.windows, geoseg.io.bundle;"
            "sys.exit(1 if 'tensorflow' in sys.modules or 'keras' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_console_script_lists_commands():
    out = subprocess.run([sys.executable, "-m", "geoseg", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "tile" in out.stdout and "predict" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "geoseg", "nope"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "unknown command" in bad.stderr


def test_output_profiles():
    from affine import Affine

    from geoseg.io.profiles import FAST_LEVEL, cog_options, patch_profile, tiled_profile

    t = tiled_profile(1000, 800, 5, "uint8", None, Affine.identity(), 255, compress="deflate")
    got = (t["tiled"], t["blockxsize"], t["compress"], t["zlevel"], t["predictor"])
    assert got == (True, 512, "DEFLATE", FAST_LEVEL, 2)
    assert tiled_profile(10, 10, 1, "float32", None, Affine.identity(), None, compress="zstd")["predictor"] == 3
    assert "compress" not in tiled_profile(10, 10, 1, "uint8", None, Affine.identity(), None, compress="none")
    assert cog_options("zstd")["level"] == FAST_LEVEL and cog_options("lzw")["compress"] == "LZW"
    p = patch_profile(512, 512, 4, "uint8", None, Affine.identity(), 0)
    assert p["tiled"] and "compress" not in p  # uncompressed patches by default (GDAL's default)
