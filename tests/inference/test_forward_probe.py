"""``Forward.batch_size`` on a GPU, run on any machine: the GPU probe and the device-memory statistics
(``geoseg.runtime.tensorflow``) are replaced by fakes, the two probe batches run the real model."""

from __future__ import annotations

import pytest

from geoseg.inference import forward as forward_mod
from geoseg.inference.forward import DEFAULT_BATCH, make_forward


class _FakeMemory:
    """Device statistics after each probe: ``(current, peak)`` bytes in turn; records what was asked."""

    def __init__(self, infos):
        self.infos = list(infos)
        self.resets: list[list[str]] = []
        self.asked: list[list[str]] = []

    def reset_memory_peak(self, gpus):
        self.resets.append(list(gpus))

    def memory_info(self, gpus):
        self.asked.append(list(gpus))
        return self.infos.pop(0)


def _patch(monkeypatch, memory, total, gpus=("gpu0", "gpu1")):
    monkeypatch.setattr(forward_mod, "visible_gpus", lambda: list(gpus))
    monkeypatch.setattr(forward_mod, "reset_memory_peak", memory.reset_memory_peak)
    monkeypatch.setattr(forward_mod, "memory_info", memory.memory_info)
    monkeypatch.setattr(forward_mod, "gpu_total_memory", lambda: total)


def test_batch_from_the_growth_of_the_peak_on_the_first_gpu(softmax_bundle, monkeypatch):
    fwd = make_forward(softmax_bundle, 4, False)  # tile 32, 3 classes
    # one window more: +10,000 bytes at the peak; 990,000 bytes in use after the probes
    memory = _FakeMemory([(500_000, 1_000_000), (990_000, 1_010_000)])
    _patch(monkeypatch, memory, total=2_000_000)
    # room = 0.5 * (total - current - accumulator), accumulator = 32 * 32 * (3 + 2) * 8 bytes
    expected = int(0.5 * (2_000_000 - 990_000 - 32 * 32 * 5 * 8) // 10_000)
    assert expected == 48
    assert fwd.batch_size() == expected
    assert memory.resets == [["gpu0"], ["gpu0"]] and memory.asked == [["gpu0"], ["gpu0"]]
    assert fwd.batch_size() == expected and len(memory.resets) == 2  # measured once


@pytest.mark.parametrize("total", [None, 10_000_000])
def test_default_batch_when_memory_cannot_be_asked(softmax_bundle, monkeypatch, total):
    fwd = make_forward(softmax_bundle, 4, False)
    infos = [(40, 1_000), (50, 101_000)] if total is None else [(40, 1_000), None]
    _patch(monkeypatch, _FakeMemory(infos), total=total)
    assert fwd.batch_size() == DEFAULT_BATCH


def test_no_gpu_asks_no_memory(softmax_bundle, monkeypatch):
    fwd = make_forward(softmax_bundle, 4, False)
    memory = _FakeMemory([])
    _patch(monkeypatch, memory, total=10_000_000, gpus=())
    assert fwd.batch_size() == DEFAULT_BATCH
    assert memory.resets == [] and memory.asked == []
