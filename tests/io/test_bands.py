"""Band selection: numbers, names (descriptions, then colour interpretation), alpha bands left out."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from geoseg.errors import BandCountError
from geoseg.io.bands import alpha_bands, parse_band_spec, select_bands
from geoseg.io.raster import open_scene

from factories import write_raster


def _scene(tmp_path, name="s.tif", bands=4, fourth=None, interp=None, descriptions=None, **profile):
    data = np.random.default_rng(0).integers(0, 200, size=(bands, 40, 48)).astype(np.uint8)
    if fourth is not None:
        data[3] = fourth
    path = write_raster(tmp_path / name, data, tiled=True, blockxsize=16, blockysize=16, **profile)
    with rasterio.open(path, "r+") as ds:
        if interp:
            ds.colorinterp = interp
        for i, d in enumerate(descriptions or [], 1):
            ds.set_band_description(i, d)
    return open_scene(path)


def test_alpha_by_colour_interpretation_and_by_constant_255(tmp_path, caplog):
    mask = np.full((40, 48), 255, np.uint8)
    mask[:5] = 0
    rgba = _scene(tmp_path, "rgba.tif", fourth=mask, photometric="MINISBLACK",
                  interp=[ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha])
    assert alpha_bands(rgba) == {4: "colour interpretation alpha"}
    const = _scene(tmp_path, "const.tif", fourth=255, photometric="MINISBLACK")
    assert alpha_bands(const) == {4: "constant 255"}
    caplog.set_level(logging.WARNING, logger="geoseg.bands")
    assert select_bands(const, None) == [1, 2, 3]
    assert len(caplog.records) == 1 and "band 4 (constant 255)" in caplog.records[0].getMessage()
    assert select_bands(const, (1, 2, 3, 4)) == [1, 2, 3, 4]  # named: kept
    # nearly saturated but not a constant 255: a real band
    nir = _scene(tmp_path, "nir.tif", fourth=254, photometric="MINISBLACK")
    assert alpha_bands(nir) == {} and select_bands(nir, None) == [1, 2, 3, 4]


def test_bands_by_description_then_colour_interpretation(tmp_path):
    info = _scene(tmp_path, interp=[ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined],
                  descriptions=["Red", "Green", "Blue", "NIR"])
    assert select_bands(info, parse_band_spec("nir,RED, green")) == [4, 1, 2]
    bare = _scene(tmp_path, "bare.tif", interp=[ColorInterp.blue, ColorInterp.green, ColorInterp.red,
                                                ColorInterp.undefined])
    assert select_bands(bare, ("red", 4, "blue")) == [3, 4, 1]
    with pytest.raises(BandCountError, match=r"no band named 'swir' .*1: - \(blue\)"):
        select_bands(bare, ("swir",))
    with pytest.raises(BandCountError, match="band 5 requested but .* has 4 band"):
        select_bands(bare, (5,))
    assert parse_band_spec("1, 3,2") == (1, 3, 2) and parse_band_spec(["red", 2]) == ("red", 2)
    assert parse_band_spec(None) is None


def test_alpha_interpretation_with_real_values_is_a_band(tmp_path):
    # GDAL marks band 4 of a plain 4-band uint8 GeoTIFF as alpha; holding varied values, it is a real band.
    info = _scene(tmp_path, "rgbn.tif")
    with rasterio.open(info.path) as ds:
        assert ds.colorinterp[3] == ColorInterp.alpha
    assert alpha_bands(info) == {} and select_bands(info, None) == [1, 2, 3, 4]
    mask = np.where(np.arange(40 * 48).reshape(40, 48) % 7 == 0, 0, 255).astype(np.uint8)
    assert alpha_bands(_scene(tmp_path, "mask.tif", fourth=mask)) == {4: "colour interpretation alpha"}
