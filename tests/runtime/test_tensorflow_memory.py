"""Device-memory statistics of ``geoseg.runtime.tensorflow``: nothing / None without a GPU (and no
TensorFlow import for an empty GPU list), device names and sums checked against a fake TensorFlow,
and (GPU only) the real counters."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from geoseg.runtime import tensorflow as rt


def test_no_gpu_gives_none_without_importing_tensorflow():
    code = ("import sys; from geoseg.runtime.tensorflow import memory_info, peak_memory_mb, reset_memory_peak; "
            "reset_memory_peak([]); print(memory_info([]), peak_memory_mb([]), 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["None", "None", "False"]


class _FakeExperimental:
    """``tf.config.experimental`` of two GPUs with fixed statistics; records resets."""

    def __init__(self):
        self.reset: list[str] = []
        self.stats = {"GPU:0": {"current": 100, "peak": 3 * 2**20}, "GPU:1": {"current": 7, "peak": 2**19}}

    def reset_memory_stats(self, device):
        self.reset.append(device)

    def get_memory_info(self, device):
        return dict(self.stats[device])


def test_names_and_sums_against_a_fake_tensorflow(monkeypatch):
    exp = _FakeExperimental()
    monkeypatch.setattr(rt, "import_tensorflow", lambda: SimpleNamespace(config=SimpleNamespace(experimental=exp)))
    two = ["gpu0", "gpu1"]
    rt.reset_memory_peak(two)
    assert exp.reset == ["GPU:0", "GPU:1"]
    assert rt.memory_info(two) == (107, 3 * 2**20 + 2**19)
    assert rt.memory_info(two[:1]) == (100, 3 * 2**20)
    assert rt.peak_memory_mb(two) == pytest.approx(3.5)
    rt.reset_memory_peak(two[:1])
    assert exp.reset == ["GPU:0", "GPU:1", "GPU:0"]


def test_this_machine():
    gpus = rt.visible_gpus()
    if not gpus:
        rt.reset_memory_peak(gpus)
        assert rt.memory_info(gpus) is None and rt.peak_memory_mb(gpus) is None
        return
    tf = rt.import_tensorflow()
    rt.reset_memory_peak(gpus[:1])
    with tf.device("/GPU:0"):
        x = tf.ones((1024, 1024), tf.float32)  # 4 MiB
    current, peak = rt.memory_info(gpus[:1])
    assert peak >= current >= 4 * 2**20
    assert rt.peak_memory_mb(gpus[:1]) == pytest.approx(peak / 2**20)
    del x
