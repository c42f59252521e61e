"""Serializable custom layers shared by the model zoo (all shapes (N, H, W, C), channels last).

Every layer here registers itself with Keras under the ``geoseg`` package when this module is
imported (``import geoseg.models`` does that), so ``.keras`` files that use them load back.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="geoseg")
class ResizeLike(keras.layers.Layer):
    """Resize ``x`` to the spatial size of a reference tensor: ``[x, ref] -> (N, H_ref, W_ref, C_x)``.

    Works with dynamic sizes (the size is read from ``ref`` at run time), so one layer serves any
    input tile size; the output keeps the layer's compute dtype (mixed precision friendly).

    Args:
        interpolation: ``"bilinear"`` (default) or ``"nearest"``, as in ``keras.ops.image.resize``.
    """

    def __init__(self, interpolation: str = "bilinear", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interpolation = interpolation

    def call(self, inputs):
        x, ref = inputs
        shape = ops.shape(ref)
        y = ops.image.resize(x, (shape[1], shape[2]), interpolation=self.interpolation,
                             data_format="channels_last")
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        x, ref = input_shape
        return (x[0], ref[1], ref[2], x[3])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "interpolation": self.interpolation}


@keras.saving.register_keras_serializable(package="geoseg")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """Average-pool ``(N, H, W, C)`` into a fixed ``(N, bins_h, bins_w, C)`` grid, for any H, W.

    Bin ``i`` of an axis of length ``L`` covers pixels ``[floor(i L / b), ceil((i + 1) L / b))``
    (the PyTorch ``AdaptiveAvgPool2d`` rule: bins overlap by at most one pixel when ``b`` does
    not divide ``L``). Box sums come from an integral image in float32, so the cost does not
    grow with the number of bins and dynamic sizes work.

    Args:
        output_size: bins per axis, an int or ``(bins_h, bins_w)``.
    """

    def __init__(self, output_size: int | tuple[int, int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(int(v) for v in output_size)

    def call(self, x):
        shape = ops.shape(x)
        xf = ops.cast(x, "float32")
        integral = ops.cumsum(ops.cumsum(xf, axis=1), axis=2)
        integral = ops.pad(integral, [[0, 0], [1, 0], [1, 0], [0, 0]])
        hs, he = _bin_edges(shape[1], self.output_size[0])
        ws, we = _bin_edges(shape[2], self.output_size[1])
        rows = ops.take(integral, he, axis=1) - ops.take(integral, hs, axis=1)
        box = ops.take(rows, we, axis=2) - ops.take(rows, ws, axis=2)
        area = ops.cast((he - hs)[:, None] * (we - ws)[None, :], "float32")
        return ops.cast(box / area[None, :, :, None], self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[3])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "output_size": list(self.output_size)}


def _bin_edges(length, bins: int):
    """Start (inclusive) and end (exclusive) pixel of each of ``bins`` adaptive bins over ``length``."""
    i = ops.arange(bins, dtype="int32")
    length = ops.cast(length, "int32")
    start = ops.floor_divide(i * length, bins)
    end = ops.floor_divide((i + 1) * length + bins - 1, bins)
    return start, end
