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

from geoseg.errors import BundleError, InvalidParameterError
from geoseg.io.bundle import Bundle, model_input_channels
from geoseg.runtime.tensorflow import PRECISIONS, import_tensorflow, memory_info, reset_memory_peak, visible_gpus

#: Windows per model call on CPU (and with ONNX) when ``--batch-size`` is not given.
DEFAULT_BATCH = 8

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


def make_forward(bundle: Bundle, bands: int, tta: bool = False, precision: str = "float32",
                 xla: bool = False) -> Forward | OnnxForward:
    """The forward pass of a bundle: :class:`OnnxForward` for an exported ``.onnx`` file, else :class:`Forward`.

    Args:
        bundle: the bundle (a folder, or an ``.onnx`` file read by :func:`geoseg.io.bundle.load_bundle`).
        bands: C, the input channels read from the scene.
        tta: average the 8 dihedral transforms.
        precision: ``float32`` or ``mixed`` (Keras models only, see :class:`Forward`).
        xla: compile the model with XLA (Keras models only).

    Raises:
        InvalidParameterError: ``mixed`` or ``xla`` with an ONNX model.
    """
    if bundle.is_onnx:
        if precision != "float32" or xla:
            raise InvalidParameterError(f"--precision {precision} / --xla apply to Keras bundles; "
                                        f"{bundle.directory} is an ONNX model (run by onnxruntime)")
        return OnnxForward(bundle.model, bundle.tile_size, bands, bundle.output_channels, bundle.normalization,
                           tta=tta, source=str(bundle.directory))
    return Forward(bundle.model, bundle.tile_size, bands, bundle.output_channels, tta=tta,
                   source=str(bundle.directory), precision=precision, xla=xla)


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

    def batch_size(self) -> int:
        """Windows per call when ``--batch-size`` is not given: 8 (CPU)."""
        return DEFAULT_BATCH

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_output(self, shape: tuple) -> None:
        """Refuse, on the first call, a model output that is not ``(N, tile, tile, K)``."""
        if not self._checked:
            if tuple(shape[1:]) != (self.tile, self.tile, self.channels):
                raise BundleError(
                    f"model of {self.source} outputs shape {tuple(shape[1:])}, expected "
                    f"({self.tile}, {self.tile}, {self.channels}) (tile, tile, output channels of the bundle)"
                )
            self._checked = True

    def _call(self, x: np.ndarray) -> np.ndarray:
        y = self._run(np.ascontiguousarray(x, dtype=np.float32))
        self._check_output(y.shape)
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
    """Batched model forward pass with optional 8-fold TTA, on the host (numpy) or the device.

    ``precision="mixed"`` runs a copy of the model whose layers compute in float16 on a GPU and
    in bfloat16 on CPU (float32 variables; the last layer, usually the softmax, stays float32);
    outputs differ from float32 by the 8 (bfloat16) or 11 (float16) significant bits. On CPU
    bfloat16 was 1.5x faster than float32 on an AVX512_BF16 machine (small U-Net, tile 512;
    benchmarks/README.md), slower on CPUs without it; ``xla`` was 2x slower there (off by default).

    Args:
        model: a ``keras.Model`` mapping ``(N, tile, tile, C)`` to ``(N, tile, tile, K)``.
        tile: window size in pixels.
        bands: C, the number of input channels fed to the model.
        channels: K, the output channels expected from the bundle (its classes, 1 for a binary
            model); checked against the model output.
        tta: average the 8 dihedral transforms.
        source: name of the bundle for error messages.
        precision: ``float32`` or ``mixed``.
        xla: trace the model with ``jit_compile=True``.
    """

    def __init__(self, model, tile: int, bands: int, channels: int, tta: bool = False, source: str = "model",
                 precision: str = "float32", xla: bool = False):
        tf = import_tensorflow()

        self.tile = int(tile)
        self.bands = int(bands)
        self.channels = int(channels)
        self.tta = bool(tta)
        self.source = source
        self.precision = precision
        self._batch: int | None = None
        expected = model_input_channels(model)
        if expected is not None and expected != self.bands:
            raise BundleError(f"model of {source} expects {expected} input band(s), but its geoseg.json "
                              f"reads {self.bands} band(s) from the scene")
        if precision not in PRECISIONS:
            raise InvalidParameterError(f"--precision {precision!r} is not known; choose from {', '.join(PRECISIONS)}")
        if precision == "mixed":
            model = mixed_copy(model, "mixed_float16" if visible_gpus() else "mixed_bfloat16")
        self.model = model
        spec = tf.TensorSpec((None, self.tile, self.tile, self.bands), tf.float32)

        def run(x):
            y = model(x, training=False)
            if isinstance(y, (list, tuple)):
                y = y[0]
            return tf.cast(y, tf.float32)

        self._fn = tf.function(run, input_signature=[spec], jit_compile=bool(xla) or None)
        self._tf = tf

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(x))

    def device(self, x):
        """``(N, tile, tile, C)`` float32 (numpy or tensor) -> ``(N, tile, tile, K)`` float32 tensor on the device.

        TTA runs with ``tf.image.rot90`` / ``tf.reverse`` and sums in float64 like :meth:`__call__`,
        so both give the same values.
        """
        tf = self._tf
        x = tf.convert_to_tensor(x, tf.float32)
        if x.shape[0] == 0:
            return tf.zeros((0, self.tile, self.tile, self.channels), tf.float32)
        if not self.tta:
            return self._checked_device(x)
        total = None
        for k, flip in DIHEDRAL:
            xt = tf.image.rot90(tf.reverse(x, [2]) if flip else x, k)
            y = tf.image.rot90(self._checked_device(xt), -k % 4)
            y = tf.cast(tf.reverse(y, [2]) if flip else y, tf.float64)
            total = y if total is None else total + y
        return tf.cast(total / len(DIHEDRAL), tf.float32)

    def _checked_device(self, x):
        y = self._fn(x)
        self._check_output(tuple(y.shape))
        return y

    def batch_size(self) -> int:
        """Windows per call when ``--batch-size`` is not given: 8 on CPU, from free memory on a GPU.

        Measured once with two probe batches (1 and 2 windows, see :func:`device_batch_size`).
        """
        if self._batch is None:
            self._batch = DEFAULT_BATCH
            gpus = visible_gpus()
            if gpus:
                self._batch = self._probe_batch(gpus[:1])
        return self._batch

    def _probe_batch(self, gpu: list) -> int:
        """Batch size from the device memory of a 1- and a 2-window call on ``gpu`` (``[GPU:0]``, the model's)."""
        infos = []  # (current, peak) bytes after each probe
        for n in (1, 2):
            reset_memory_peak(gpu)
            self.device(np.zeros((n, self.tile, self.tile, self.bands), np.float32)).numpy()
            infos.append(memory_info(gpu))
        total = gpu_total_memory()
        if total is None or None in infos:
            return DEFAULT_BATCH
        (_, peak1), (current, peak2) = infos
        acc = self.tile * self.tile * (self.channels + 2) * 8  # device accumulator bytes per window column strip
        return device_batch_size(total - current, peak2 - peak1, acc)


def device_batch_size(free_bytes: int, per_window_bytes: int, extra_bytes: int = 0, fraction: float = 0.5,
                      cap: int = 256) -> int:
    """Windows per model call that fit in device memory.

    ``batch = clamp(floor(fraction * (free - extra) / per_window), 1, cap)``, where
    ``per_window`` is the growth of the peak device memory from a 1-window to a 2-window probe
    batch (activations, TTA copies and the batch's float64 updates: everything that scales with
    the batch) and ``extra`` the memory the run needs besides (the strip accumulator). Half the
    free memory leaves room for allocator fragmentation and the prefetched input batches.

    Args:
        free_bytes: device memory not in use (bytes).
        per_window_bytes: device bytes per window of a batch (<= 0: unknown, gives 8).
        extra_bytes: other device bytes the run will hold (bytes).
        fraction: share of the free memory given to the batch.
        cap: largest batch returned (more windows per call no longer speeds up the model).
    """
    if per_window_bytes <= 0:
        return DEFAULT_BATCH
    room = fraction * max(0, int(free_bytes) - int(extra_bytes))
    return int(max(1, min(cap, room // int(per_window_bytes))))


def gpu_total_memory() -> int | None:
    """Memory in bytes of the first GPU TensorFlow sees (``nvidia-smi``), None when it cannot be asked.

    ``nvidia-smi`` numbers GPUs physically and ignores ``CUDA_VISIBLE_DEVICES``; a worker started
    with ``CUDA_VISIBLE_DEVICES=2`` (one GPU per dask worker) sees physical GPU 2 as its first, so
    the first entry of that variable (an index or a UUID, both accepted by ``--id``) is asked.
    """
    import os
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    first = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0].strip() or "0"
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits", f"--id={first}"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return int(float(out.strip().splitlines()[0]) * 2**20)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def mixed_copy(model, policy: str):
    """A copy of ``model`` (same weights) whose layers compute in ``policy``; the last layer stays float32."""
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    layers = _all_layers(clone)
    for layer in layers[:-1]:
        if not isinstance(layer, keras.layers.InputLayer):
            layer.dtype_policy = policy
    return clone


def _all_layers(model) -> list:
    out = []
    for layer in model.layers:
        out.extend(_all_layers(layer) if hasattr(layer, "layers") else [layer])
    return out
