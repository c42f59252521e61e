"""Where and how training runs: distribution strategy, precision and XLA (``--precision``, ``--jit-compile``).

Input staging. Keras' TensorFlow trainer hands every dataset given to ``model.fit`` to the model's
distribution strategy (``strategy.experimental_distribute_dataset``). The default strategy (no
``strategy.scope()``) returns the dataset unchanged: the step function then copies each batch from
host to device when it starts, so the device waits for the copy. ``OneDeviceStrategy`` and
``MirroredStrategy`` return a distributed dataset whose iterator (``OwnedMultiDeviceIterator``)
copies the next batch onto the device while the current step runs (one batch per device, on top
of the host-side ``prefetch`` of :mod:`geoseg.training.pipeline`). So training on one GPU builds
the model under ``OneDeviceStrategy("/gpu:0")`` and on several under ``MirroredStrategy``; a CPU
run keeps the default strategy (there is no copy to hide).

Precision. ``mixed`` sets Keras' ``mixed_float16`` policy: float16 compute, float32 variables;
``model.compile`` then wraps the optimizer in a ``LossScaleOptimizer`` (dynamic loss scaling).
The zoo's last layers (``logits``, ``probs``) compute in float32, so the loss and the metrics see
float32; :func:`check_float32_output` refuses a ``model_fn`` model whose output is float16.

XLA. ``--jit-compile auto`` is Keras' own choice, which is off on CPU-only machines, under any
distribution strategy (so on GPU too, with the strategies above) and while TensorFlow's op
determinism is on (seeded CPU runs). ``on`` asks for it on a GPU (on CPU it warns and stays off:
:func:`resolve_jit`); Keras still falls back to off, with a warning, when a layer cannot be compiled.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from geoseg.errors import ModelConfigError

log = logging.getLogger(__name__)

#: ``--jit-compile`` value -> ``model.compile(jit_compile=...)``.
JIT_VALUES: dict[str, bool | str] = {"auto": "auto", "on": True, "off": False}


def training_strategy(gpus: list[Any]) -> Any:
    """The strategy to build and train the model under (see the module doc).

    Args:
        gpus: the visible GPUs (:func:`geoseg.runtime.tensorflow.visible_gpus`).

    Returns:
        ``MirroredStrategy`` over several GPUs, ``OneDeviceStrategy("/gpu:0")`` on one (both stage
        the next batch on the device during the current step), the default strategy without a GPU.
    """
    import tensorflow as tf

    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    if gpus:
        return tf.distribute.OneDeviceStrategy("/gpu:0")
    return tf.distribute.get_strategy()


def resolve_precision(requested: str, gpus: list[Any]) -> str:
    """The precision a run uses: ``mixed`` only with a GPU; otherwise ``float32`` (warning when
    ``mixed`` was asked for: float16 on CPU is emulated and slower)."""
    if requested == "mixed" and not gpus:
        log.warning("--precision mixed needs a GPU and none is visible: training in float32")
        return "float32"
    return requested


def resolve_jit(requested: str, gpus: list[Any]) -> bool | str:
    """``model.compile``'s ``jit_compile`` for ``--jit-compile``: ``auto`` -> ``"auto"`` (Keras decides),
    ``off`` -> False, ``on`` -> True with a GPU; without one, False with a warning (seeded CPU runs
    keep TensorFlow's op determinism on, which Keras does not combine with XLA; XLA was also
    measured 1.75x slower on CPU, ``benchmarks/README.md``, "Training")."""
    if requested == "on" and not gpus:
        log.warning("--jit-compile on needs a GPU (CPU runs are deterministic, which excludes XLA): training "
                    "without XLA")
        return False
    return JIT_VALUES[requested]


def policy_name(precision: str) -> str:
    """The Keras dtype policy of a precision: ``mixed`` -> ``mixed_float16``, else ``float32``."""
    return "mixed_float16" if precision == "mixed" else "float32"


def check_float32_output(model: Any) -> None:
    """Refuse a model whose output is not float32 (under mixed precision the softmax/sigmoid must run
    in float32: give the last activation layer ``dtype="float32"``).

    Raises:
        ModelConfigError: an output tensor of another dtype.
    """
    for out in model.outputs:
        dtype = str(getattr(out, "dtype", "float32"))
        if dtype != "float32":
            raise ModelConfigError(f"model {model.name!r} outputs {dtype} under mixed precision; its last layer must "
                                   "compute in float32 (e.g. keras.layers.Activation('softmax', dtype='float32'))")


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def device_description(gpus: list[Any]) -> str:
    """``"NVIDIA H100 80GB HBM3 x1"`` (GPU names from TensorFlow) or ``"CPU (2 cores: <model>)"``."""
    import tensorflow as tf

    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return f"{names[0]} x{len(gpus)}" if len(set(names)) == 1 else ", ".join(names)
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    return f"CPU ({cpu_count()} cores{': ' + model if model else ''})"
