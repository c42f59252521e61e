"""``--debug-samples N``: per epoch a PNG of N training samples as fed (image, label, prediction).

The label panels are checked against an independent reference: decoded back to class indices through
the class colours of dataset.json, each must be one of the 8 flips / quarter turns of a training
label patch read straight from its GeoTIFF (unlabelled and nodata pixels: the dimmed grey image).
"""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import rasterio

from geoseg.training import TrainConfig, fit
from geoseg.training.debug import HEADER, GridLayout

N = 3


def _cfg(ds, out, **kw) -> TrainConfig:
    base = dict(dataset=str(ds), out=str(out), epochs=2, batch_size=2, lr=0.01, seed=4, quiet=True,
                tensorboard=False)
    base.update(kw)
    return TrainConfig(**base)


def _dihedral(a: np.ndarray) -> list[np.ndarray]:
    return [np.rot90(b, k) for b in (a, np.fliplr(a)) for k in range(4)]


def _training_labels(ds) -> list[np.ndarray]:
    """Each training label patch with 255 where unlabelled or where the image is nodata in every band."""
    out = []
    for row in json_index(ds):
        if row["split"] != "train":
            continue
        with rasterio.open(ds / row["label"]) as src:
            lab = src.read(1)
        with rasterio.open(ds / row["image"]) as src:
            nodata = (src.read() == src.nodata).all(0)
        out.append(np.where(nodata, 255, lab))
    return out


def json_index(ds):
    import csv

    with open(ds / "index.csv", newline="") as f:
        return list(csv.DictReader(f))


def _decode(panel: np.ndarray, scale: int, colors: list[tuple[int, int, int]]) -> np.ndarray:
    """Class index per patch pixel from a panel (pixel centres); grey (r = g = b) -> 255; other colours -> -1."""
    px = panel[scale // 2::scale, scale // 2::scale].astype(int)
    out = np.full(px.shape[:2], -1)
    for k, c in enumerate(colors):
        out[(px == c).all(-1)] = k
    grey = (px[..., 0] == px[..., 1]) & (px[..., 1] == px[..., 2]) & (out == -1)
    out[grey] = 255
    return out


def test_debug_pngs_show_the_samples_fed(tiny_dataset, model_fn, tmp_path):
    ds = tiny_dataset()
    res = fit(_cfg(ds, tmp_path / "b", debug_samples=N), model_fn=model_fn)
    colors = [tuple(c["color"]) for c in json.loads((ds / "dataset.json").read_text())["classes"]]
    assert (0, 0, 0) in colors  # background is black: the grey test below must not take it for "no label"
    refs = [_dihedral(lab) for lab in _training_labels(ds)]

    files = sorted((res.bundle / "debug").iterdir())
    assert [f.name for f in files] == ["epoch_001.png", "epoch_002.png"]
    seen = []
    for f in files:
        png = matplotlib.image.imread(f)
        png = np.round(png[..., :3] * 255).astype(np.uint8)
        lay = GridLayout.of(N, 32, 32)  # 3 classes: a one-line legend
        assert png.shape == (lay.height, lay.width, 3)
        assert lay.height < HEADER + (N + 1) * lay.panel_h  # N rows of panels, no room for another
        for r in range(N):
            image = png[lay.panel(r, 0)]
            label = _decode(png[lay.panel(r, 1)], lay.scale, colors)
            pred = _decode(png[lay.panel(r, 2)], lay.scale, colors)
            assert image.std() > 10  # a picture, not a blank
            assert (pred >= 0).all() and (pred < len(colors)).all()  # every pixel a class colour
            # the label panel is a flip / quarter turn of one training label patch, colour for colour
            matches = [i for i, variants in enumerate(refs) if any(np.array_equal(label, v) for v in variants)]
            assert matches, (f.name, r)
            assert (label == 255).sum() >= 16 + 9  # the unlabelled corner and the nodata corner
            seen.append(matches[0])
    assert len(set(seen)) > 1  # different samples, not one repeated

    # Drawing the pictures did not change the training: same weights as a run without them.
    plain = fit(_cfg(ds, tmp_path / "plain"), model_fn=model_fn)
    assert all(np.array_equal(a, b) for a, b in zip(res.model.get_weights(), plain.model.get_weights()))
    assert not (tmp_path / "plain" / "debug").exists()
