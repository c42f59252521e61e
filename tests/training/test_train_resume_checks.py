"""What ``train`` refuses before the first step: a resume with changed options, a dataset with a missing,
unreadable or mismatched patch file, and a second run into a folder another run is writing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from geoseg.cli.train import main
from geoseg.errors import DatasetError, InvalidParameterError, OutputLockedError
from geoseg.io.atomic import LOCK_FILE
from geoseg.io.lock import acquire_lock
from geoseg.training import TrainConfig, fit
from geoseg.training.callbacks import read_state


def _cfg(ds, out, **kw) -> TrainConfig:
    base = dict(dataset=str(ds), out=str(out), epochs=2, batch_size=4, lr=0.01, seed=1, quiet=True,
                tensorboard=False)
    base.update(kw)
    return TrainConfig(**base)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture
def checkpointed(tiny_dataset, model_fn, tmp_path):
    """A run stopped after its first epoch (2 planned): its dataset and bundle folder."""
    import keras

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    ds, out = tiny_dataset(), tmp_path / "bundle"
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg(ds, out), model_fn=model_fn, callbacks=[Stop()])
    assert read_state(out / "checkpoints")["epoch"] == 1
    return ds, out


def test_resume_refuses_changed_options_listing_each(checkpointed, model_fn, tmp_path):
    ds, out = checkpointed
    before = (out / "checkpoints" / "state.json").read_text()
    changed = dict(lr=0.02, batch_size=2, loss="ce", seed=7, model_args={"filters": 4})
    with pytest.raises(InvalidParameterError) as info:
        fit(_cfg(ds, out, resume=True, **changed), model_fn=model_fn)
    msg = str(info.value)
    assert "\n" not in msg and "state.json" in msg and "--overwrite" in msg
    for shown in ("lr: 0.01 before, 0.02 now", "batch-size: 4 before, 2 now", "loss: 'ce+dice' before, 'ce' now",
                  "seed: 1 before, 7 now", "model-args: {} before, {'filters': 4} now"):
        assert shown in msg, (shown, msg)
    assert "epochs" not in msg and "quiet" not in msg  # only what changed
    # Refused before anything was touched: the checkpoint is as it was, no bundle written.
    assert (out / "checkpoints" / "state.json").read_text() == before and not (out / "geoseg.json").exists()

    # A copy of the dataset elsewhere is the same dataset; other patches are not.
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("index.csv", "dataset.json"):
        (moved / name).write_bytes((ds / name).read_bytes())
    for sub in ("images", "labels"):
        (moved / sub).symlink_to(ds / sub)
    meta = json.loads((moved / "dataset.json").read_text())
    meta["statistics"]["mean"][0] += 1.0
    (moved / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(InvalidParameterError, match=r"dataset: 'index.csv \+ dataset.json sha256 \w+' before"):
        fit(_cfg(moved, out, resume=True), model_fn=model_fn)

    # Options that do not change the result may differ.
    res = fit(_cfg(ds, out, resume=True, quiet=False, cache=False, tensorboard=True, debug_samples=1),
              model_fn=model_fn)
    assert res.epochs == 2
    meta = json.loads((out / "geoseg.json").read_text())
    assert meta["training"]["config"]["lr"] == 0.01 and meta["training"]["config"]["seed"] == 1


def test_resume_refusal_through_the_cli(checkpointed, capsys):
    ds, out = checkpointed
    assert main([str(ds), "--out", str(out), "--resume", "--epochs", "2", "--batch-size", "4", "--lr", "0.5",
                 "--seed", "1", "--quiet"]) == 1
    msg = _one_line_error(capsys)
    assert "--resume with other parameters" in msg and "lr: 0.01 before, 0.5 now" in msg


def _break(ds, case: str):
    """Damage one training patch of dataset ``ds`` in the way ``case`` names; return the damaged file."""
    img = ds / "images" / "scene_r0_c64.tif"
    lab = ds / "labels" / "scene_r0_c64.tif"
    if case == "missing_image":
        img.unlink()
        return img
    if case == "missing_label":
        lab.unlink()
        return lab
    if case == "not_a_raster":
        img.write_bytes(b"this is not a GeoTIFF")
        return img
    if case == "empty_file":
        lab.write_bytes(b"")
        return lab
    if case in ("band_count", "tile_size", "dtype"):
        with rasterio.open(img) as src:
            data, prof = src.read(), src.profile
        if case == "band_count":
            data = data[:3]
        elif case == "tile_size":
            data = data[:, :16, :16]
        else:
            data = data.astype("float32")
        prof.update(count=data.shape[0], height=data.shape[1], width=data.shape[2], dtype=data.dtype.name)
        with rasterio.open(img, "w", **prof) as dst:
            dst.write(data)
        return img
    raise AssertionError(case)


EXPECT = {
    "missing_image": "patch file missing",
    "missing_label": "patch file missing",
    "not_a_raster": "patch file unreadable",
    "empty_file": "patch file unreadable",
    "band_count": "expected 4 band(s) of 32x32 px, uint8, found 3 band(s) of 32x32 px, uint8",
    "tile_size": "expected 4 band(s) of 32x32 px, uint8, found 4 band(s) of 16x16 px, uint8",
    "dtype": "expected 4 band(s) of 32x32 px, uint8, found 4 band(s) of 32x32 px, float32",
}


@pytest.mark.parametrize("case", sorted(EXPECT))
def test_bad_patch_file_is_named_before_training(case, tiny_dataset, tmp_path, capsys):
    ds = tiny_dataset()
    bad = _break(ds, case)
    out = tmp_path / "bundle"
    assert main([str(ds), "--out", str(out), "--model", "unet", "--model-args", "encoder_depth=2,encoder_filters=4",
                 "--epochs", "1", "--quiet"]) == 1
    msg = _one_line_error(capsys)
    assert EXPECT[case] in msg and str(bad) in msg and "index.csv" in msg, msg
    assert not out.exists()  # refused before the output folder was made (or left behind)


def test_every_bad_patch_is_counted_and_npy_headers_are_checked(tiny_dataset, tmp_path):
    from geoseg.training.data import check_patch_files, load_dataset

    ds = tiny_dataset(fmt="npy")
    info = load_dataset(ds)
    check_patch_files(info, info.rows)  # a good .npy dataset passes
    np.save(ds / "images" / "scene_r0_c32.npy", np.zeros((4, 32, 31), np.uint8))
    (ds / "labels" / "scene_r0_c96.npy").unlink()
    (ds / "labels" / "scene_r0_c128.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DatasetError) as info_err:
        check_patch_files(info, info.rows)
    msg = str(info_err.value)
    assert "scene_r0_c32.npy" in msg and "found 4 band(s) of 31x32 px" in msg
    assert "(and 2 more bad patch file(s)" in msg


def test_second_run_into_a_locked_folder_is_refused(tiny_dataset, model_fn, tmp_path, capsys):
    ds, out = tiny_dataset(), tmp_path / "bundle"
    out.mkdir()
    holder = acquire_lock(out, "geoseg train")  # another run, live, writing into out
    try:
        with pytest.raises(OutputLockedError, match=r"in use by another run \(geoseg train, pid \d+"):
            fit(_cfg(ds, out), model_fn=model_fn)
        assert main([str(ds), "--out", str(out), "--resume", "--quiet"]) == 1
        assert "is in use by another run" in _one_line_error(capsys)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # the other run's folder untouched
    finally:
        holder.release()
    res = fit(_cfg(ds, out, epochs=1), model_fn=model_fn)  # free again
    assert res.epochs == 1 and not (out / LOCK_FILE).exists()
