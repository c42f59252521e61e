"""The model side of prediction: a compiled forward pass and test-time augmentation.

``Forward`` maps a batch ``(N, tile, tile, C)`` float32 to probabilities ``(N, tile, tile, K)``
float32: softmax over K classes, or ``K = 1`` for a binary model (the sigmoid probability of
class 1; blending, TTA and the writers keep that one channel, see :mod:`geoseg.inference.writers`).
The Keras model is traced once into a ``tf.function`` with an unknown batch dimension, so the
last (short) batch does not retrace and each call costs only the model itself. With ``tta`` the
batch is predicted under the 8 dihedral transforms (4 rotations x optional flip), each
prediction is mapped back to the original frame and the 8 are averaged (float64 sum, so
identical predictions average to themselves exactly).
"""

from __future__ import annotations

import numpy as np

from geoseg.errors import BundleError
from geoseg.io.bundle import model_input_channels
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


class Forward:
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
        self._checked = False

    def _call(self, x: np.ndarray) -> np.ndarray:
        y = self._fn(np.ascontiguousarray(x, dtype=np.float32))
        if isinstance(y, (list, tuple)):
            y = y[0]
        y = np.asarray(y)
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

