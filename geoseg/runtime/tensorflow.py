"""Importing TensorFlow without its start-up chatter on stderr.

``import tensorflow`` prints absl/oneDNN/CUDA lines from C++ straight to file descriptor 2
before any log level applies ("All log messages before absl::InitializeLog() ...", "oneDNN
custom operations are on", "Could not find cuda drivers", and at the first device query
"failed call to cuInit"), even with ``TF_CPP_MIN_LOG_LEVEL=2``. :func:`import_tensorflow`
imports TensorFlow and Keras and queries the devices once with file descriptor 2 pointed at
``/dev/null``, then restores it, so every later message (and geoseg's own ``error:`` line) is
written as usual. With verbose logging (``-v``) nothing is hidden.

``TF_ENABLE_ONEDNN_OPTS`` is left alone on purpose: turning oneDNN off changes model outputs in
the last float32 bit (checked on a conv + batch-norm + softmax model), so predictions would no
longer match those of earlier runs.

Call it wherever TensorFlow is first imported on a run path (bundle loading, the forward pass,
training); it is idempotent and cheap once TensorFlow is loaded.

The GPU probe and TensorFlow's device-memory statistics live here too, for training and prediction
alike: :func:`visible_gpus`, :func:`reset_memory_peak`, :func:`memory_info`, :func:`peak_memory_mb`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

#: ``--precision`` of training and prediction: ``mixed`` = reduced-precision compute (float16 on a
#: GPU), float32 variables and outputs.
PRECISIONS = ("float32", "mixed")

_lock = threading.Lock()
_imported = False


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    """Point file descriptor 2 at ``/dev/null`` (C/C++ writes included), restoring it on exit."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def import_tensorflow(verbose: bool | None = None) -> ModuleType:
    """Import TensorFlow (and Keras) once, quietly unless ``verbose``; return the ``tensorflow`` module.

    Args:
        verbose: show TensorFlow's start-up messages. None: verbose when the ``geoseg`` logger
            is at DEBUG (the CLIs' ``-v``).

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` (only when unset) so TensorFlow's later C++ lines stay off too
    (e.g. "oneDNN supports DT_UINT8 only on platforms with AVX-512", logged as an error at the
    first training step although nothing failed; real failures still raise Python exceptions),
    and lowers the ``absl`` and ``tensorflow`` Python loggers to ERROR when nobody has configured them.
    """
    global _imported
    with _lock:
        if _imported:
            return sys.modules["tensorflow"]
        if verbose is None:
            verbose = logging.getLogger("geoseg").isEnabledFor(logging.DEBUG)
        if verbose:
            import tensorflow as tf
        else:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            with stderr_to_devnull():
                import keras  # noqa: F401  (imports TensorFlow too: both under the redirect)
                import tensorflow as tf

                tf.config.list_physical_devices()  # cuInit and driver probing print here
            for name in ("absl", "tensorflow"):
                logger = logging.getLogger(name)
                if logger.level == logging.NOTSET:
                    logger.setLevel(logging.ERROR)
        _imported = True
        return tf


def visible_gpus() -> list[Any]:
    """The GPUs TensorFlow sees (``tf.config.list_physical_devices("GPU")``); imports it quietly.

    The one GPU probe of the package: training picks its distribution strategy and precision from
    it, prediction its accumulation path, precision and batch size.
    """
    return list(import_tensorflow().config.list_physical_devices("GPU"))


def reset_memory_peak(gpus: Sequence[Any]) -> None:
    """Restart TensorFlow's peak-memory counter of the GPUs ``GPU:0`` .. ``GPU:<len(gpus) - 1>``.

    Args:
        gpus: the GPUs to reset, by position: :func:`visible_gpus`, or its first ones. Empty
            (no GPU): nothing is done and TensorFlow is not imported.
    """
    if not gpus:
        return
    tf = import_tensorflow()
    for i in range(len(gpus)):
        tf.config.experimental.reset_memory_stats(f"GPU:{i}")


def memory_info(gpus: Sequence[Any]) -> tuple[int, int] | None:
    """Device memory TensorFlow holds on the GPUs ``GPU:0`` .. ``GPU:<len(gpus) - 1>``, summed.

    Args:
        gpus: the GPUs to ask, by position: :func:`visible_gpus`, or its first ones.

    Returns:
        ``(current, peak)`` in bytes, the peak since the last :func:`reset_memory_peak` (or the
        start); None without a GPU.
    """
    if not gpus:
        return None
    tf = import_tensorflow()
    infos = [tf.config.experimental.get_memory_info(f"GPU:{i}") for i in range(len(gpus))]
    return sum(int(m["current"]) for m in infos), sum(int(m["peak"]) for m in infos)


def peak_memory_mb(gpus: Sequence[Any]) -> float | None:
    """Peak device memory TensorFlow allocated on the GPUs since the last :func:`reset_memory_peak`,
    in MiB (2**20 bytes) summed over the devices; None without a GPU."""
    info = memory_info(gpus)
    return None if info is None else info[1] / 2**20
