"""The model side of prediction: a compiled forward pass and test-time augmentation.

``Forward`` maps a batch ``(N, tile, tile, C)`` float32 to probabilities ``(N, tile, tile, K)``
float32: softmax over K classes, or ``K = 1`` for a binary model (the sigmoid probability of
class 1; blending, TTA and the writers keep that one channel, see :mod:`geoseg.inference.writers`).
The Keras model is traced once into a ``tf.function`` with an unknown batch dimension, so the
last (short) batch does not retrace and each call costs only the model itself. With ``tta`` the
batch is predicted under the 8 dihedral transforms (4 rotations x optional flip), each
prediction is mapped back to the original frame and the 8 are averaged (float64 sum, so
identical predictions average to themselves exactly).

``OnnxForward`` is the same pass over an exported ONNX file (:mod:`geoseg.io.onnx_model`) run
by onnxruntime, without TensorFlow; :func:`make_forward` picks one by the bundle's model file.
The reader hands every forward the same normalized windows (nodata and NaN set to 0 after
normalization); the ONNX graph takes raw band values and normalizes inside, so ``OnnxForward``
maps the windows back with :func:`denormalize` (exact up to float32 rounding, ~1e-7 relative)
and the graph's own normalization reproduces them.
"""

from __future__ import annotations

import numpy as np

from geoseg.errors import BundleError
from geoseg.io.bundle import Bundle, model_input_channels
from geoseg.runtime.tensorflow import import_tensorflow

#: (rotations by 90 degrees, flip left-right) for the 8 dihedral transforms.
DIHEDRAL = tuple((k, flip) for flip in (False, True) for k in range(4))


def dihedral(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Apply a dihedral transform to ``(N, H, W, C)``: flip columns first, then rotate ``k`` x 90 degrees."""
    if flip:
        x = x[:, :, ::-1]
    return np.rot90(x, k, axes=(1, 2))


def inverse_dihedral(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Undo :func:`dihedral` on ``(N, H, W, C)``."""
    x = np.rot90(x, -k, axes=(1, 2))
    if flip:
        x = x[:, :, ::-1]
    return x


def make_forward(bundle: Bundle, bands: int, tta: bool = False) -> Forward | OnnxForward:
    """The forward pass of a bundle: :class:`OnnxForward` for an exported ``.onnx`` file, else :class:`Forward`.

    Args:
        bundle: the bundle (a folder, or an ``.onnx`` file read by :func:`geoseg.io.bundle.load_bundle`).
        bands: C, the input channels read from the scene.
        tta: average the 8 dihedral transforms.
    """
    if bundle.is_onnx:
        return OnnxForward(bundle.model, bundle.tile_size, bands, bundle.output_channels, bundle.normalization,
                           tta=tta, source=str(bundle.directory))
    return Forward(bundle.model, bundle.tile_size, bands, bundle.output_channels, tta=tta,
                   source=str(bundle.directory))


def denormalize(x: np.ndarray, norm: dict | None) -> np.ndarray:
    """Invert :func:`geoseg.io.normalization.normalize` on ``(..., C)`` float32 (same 1e-6 floors).

    ``minmax`` values are already clipped to [0, 1], so their inverse lands inside ``[min, max]``
    and the clip inside the graph leaves them alone.
    """
    x = np.asarray(x, dtype=np.float32)
    if norm is None:
        return x
    if norm.get("method", "meanstd") == "meanstd":
        a, b = np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)
        return x * np.maximum(b, 1e-6) + a
    a, b = np.asarray(norm["min"], np.float32), np.asarray(norm["max"], np.float32)
    return x * np.maximum(b - a, 1e-6) + a


class _Batched:
    """The TTA loop and output check shared by both forward passes; subclasses define ``_run``."""

    tile: int
    channels: int
    tta: bool
    source: str
    _checked: bool = False

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _call(self, x: np.ndarray) -> np.ndarray:
        y = self._run(np.ascontiguousarray(x, dtype=np.float32))
        if not self._checked:
            if y.shape[1:] != (self.tile, self.tile, self.channels):
                raise BundleError(
                    f"model of {self.source} outputs shape {tuple(y.shape[1:])}, expected "
                    f"({self.tile}, {self.tile}, {self.channels}) (tile, tile, output channels of the bundle)"
                )
            self._checked = True
        return y.astype(np.float32, copy=False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``(N, tile, tile, C)`` float32 -> ``(N, tile, tile, K)`` float32 probabilities."""
        if len(x) == 0:
            return np.zeros((0, self.tile, self.tile, self.channels), dtype=np.float32)
        if not self.tta:
            return self._call(x)
        total = None
        for k, flip in DIHEDRAL:
            y = inverse_dihedral(self._call(dihedral(x, k, flip)), k, flip).astype(np.float64)
            total = y if total is None else total + y
        return (total / len(DIHEDRAL)).astype(np.float32)


class OnnxForward(_Batched):
    """Batched forward pass of an exported ONNX model (onnxruntime, no TensorFlow), optional TTA.

    Args:
        model: an :class:`~geoseg.io.onnx_model.OnnxModel` (raw values in, normalization inside).
        tile: window size in pixels.
        bands: C, the number of input channels fed to the model.
        channels: K, output channels expected from the record (classes, 1 for a binary model).
        norm: the normalization the reader applied (inverted before the graph, see the module doc).
        tta: average the 8 dihedral transforms.
        source: name of the file for error messages.
    """

    def __init__(self, model, tile: int, bands: int, channels: int, norm: dict | None, tta: bool = False,
                 source: str = "model"):
        self.model = model
        self.tile = int(tile)
        self.bands = int(bands)
        self.channels = int(channels)
        self.norm = norm
        self.tta = bool(tta)
        self.source = source
        expected = model_input_channels(model)
        if expected is not None and expected != self.bands:
            raise BundleError(f"ONNX model {source} expects {expected} input band(s), but its metadata "
                              f"reads {self.bands} band(s) from the scene")

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.model(denormalize(x, self.norm))


class Forward(_Batched):
    """Batched model forward pass with optional 8-fold TTA.

    Args:
        model: a ``keras.Model`` mapping ``(N, tile, tile, C)`` to ``(N, tile, tile, K)``.
        tile: window size in pixels.
        bands: C, the number of input channels fed to the model.
        channels: K, the output channels expected from the bundle (its classes, 1 for a binary
            model); checked against the model output.
        tta: average the 8 dihedral transforms.
        source: name of the bundle for error messages.
    """

    def __init__(self, model, tile: int, bands: int, channels: int, tta: bool = False, source: str = "model"):
        tf = import_tensorflow()

        self.model = model
        self.tile = int(tile)
        self.bands = int(bands)
        self.channels = int(channels)
        self.tta = bool(tta)
        self.source = source
        expected = model_input_channels(model)
        if expected is not None and expected != self.bands:
            raise BundleError(f"model of {source} expects {expected} input band(s), but its geoseg.json "
                              f"reads {self.bands} band(s) from the scene")
        spec = tf.TensorSpec((None, self.tile, self.tile, self.bands), tf.float32)
        self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def _run(self, x: np.ndarray) -> np.ndarray:
        y = self._fn(x)
        if isinstance(y, (list, tuple)):
            y = y[0]
        return np.asarray(y)
