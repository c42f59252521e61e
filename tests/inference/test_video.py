"""Prediction on video: a synthetic clip with a moving red square through an identity bundle.

The identity bundle's 'probabilities' are the frame's RGB values, so the label is the argmax
channel: class 0 ("red") on the square, class 2 ("blue") on the blue background. The overlay is
checked against ``0.5 * frame + 0.5 * class colour`` computed here from the bundle's classes.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("imageio_ffmpeg", reason="extra 'video' not installed")

from geoseg.cli.predict import main
from geoseg.inference.video import colour_lut, overlay
from geoseg.io.video import open_video, video_writer

W, H, N, SQ = 64, 48, 10, 16
BACKGROUND = (20, 30, 200)
SQUARE = (220, 20, 30)
TOL = 24  # H.264 (YUV 4:2:0) levels of error, far below the colour differences checked


def square_at(i: int) -> tuple[int, int]:
    """(row, col) of the square's top-left corner in frame ``i``."""
    return 8 + i, 4 + 4 * i


def write_clip(path) -> None:
    with video_writer(path, fps=10) as w:
        for i in range(N):
            frame = np.empty((H, W, 3), np.uint8)
            frame[:] = BACKGROUND
            r, c = square_at(i)
            frame[r:r + SQ, c:c + SQ] = SQUARE
            w.append_data(frame)


def read_all(path):
    with open_video(path) as (src, frames):
        return src, np.stack(list(frames))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_clip(path)
    return path


def test_overlay_blend_is_exact():
    lut = np.zeros((256, 3), np.uint8)
    lut[1] = (100, 0, 50)
    frame = np.full((2, 2, 3), 200, np.uint8)
    label = np.array([[1, 255], [0, 1]], np.uint8)
    out = overlay(frame, label, lut, 0.5)
    assert out[0, 0].tolist() == [150, 100, 125]
    assert out[0, 1].tolist() == [200, 200, 200]  # 255: the frame is kept
    assert out[1, 0].tolist() == [100, 100, 100]


@pytest.mark.parametrize("mode, precision", [("stride", "float32"), ("per_image", "float32"), ("stride", "mixed")])
def test_predict_video_overlay(clip, identity_bundle_dir, tmp_path, monkeypatch, mode, precision):
    import geoseg.inference.video as video_mod
    from geoseg.io.bundle import load_bundle

    built = []
    real = video_mod.make_forward

    def spy(bundle, bands, tta, precision="float32", xla=False):
        built.append(precision)
        return real(bundle, bands, tta, precision, xla)

    monkeypatch.setattr(video_mod, "make_forward", spy)
    out = tmp_path / "pred"
    rc = main(["--model", str(identity_bundle_dir), str(clip), "--out", str(out), "--mode", mode,
               "--label-video", "--quiet", "--precision", precision])
    assert rc == 0
    assert built == [precision]  # --precision reaches the video's model
    src, frames = read_all(out / "clip_overlay.mp4")
    assert frames.shape == (N, H, W, 3)
    assert src.size == (W, H)
    _, labels = read_all(out / "clip_label.mp4")
    assert labels.shape == (N, H, W, 3)
    lut = colour_lut(load_bundle(identity_bundle_dir).classes).astype(float)
    expect_square = 0.5 * np.array(SQUARE) + 0.5 * lut[0]
    expect_background = 0.5 * np.array(BACKGROUND) + 0.5 * lut[2]
    assert np.abs(expect_square - expect_background).max() > 3 * TOL
    # the overlay must be told apart from the raw frame, or the checks below would prove nothing
    assert np.abs(expect_square - SQUARE).max() > 3 * TOL
    assert np.abs(expect_background - BACKGROUND).max() > 3 * TOL
    for i in range(N):
        r, c = square_at(i)
        centre = frames[i, r + 4:r + SQ - 4, c + 4:c + SQ - 4].reshape(-1, 3).mean(0)
        assert np.abs(centre - expect_square).max() < TOL, (i, centre, expect_square)
        far = frames[i, 40:, :].reshape(-1, 3).mean(0) if r + SQ < 40 else frames[i, :6].reshape(-1, 3).mean(0)
        assert np.abs(far - expect_background).max() < TOL, (i, far, expect_background)
        assert np.abs(labels[i, r + 8, c + 8] - lut[0]).max() < TOL


def test_existing_output_refused(clip, identity_bundle_dir, tmp_path, capsys):
    out = tmp_path / "pred"
    out.mkdir()
    (out / "clip_overlay.mp4").write_bytes(b"x")
    rc = main(["--model", str(identity_bundle_dir), str(clip), "--out", str(out), "--quiet"])
    assert rc == 1
    assert "clip_overlay.mp4" in capsys.readouterr().err
    assert (out / "clip_overlay.mp4").read_bytes() == b"x"


def test_needs_scene_or_camera(identity_bundle_dir, tmp_path, capsys):
    rc = main(["--model", str(identity_bundle_dir), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "--camera" in capsys.readouterr().err
