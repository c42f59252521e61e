"""One line per epoch where Keras's bar does not fit (a pipe, or a time-budgeted run)."""

from __future__ import annotations

import io

from geoseg.training.progress import EpochLines, use_epoch_lines


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_epoch_lines_only_without_a_terminal_or_with_a_budget():
    assert use_epoch_lines(False, io.StringIO()) is True
    assert use_epoch_lines(False, _Tty()) is False
    assert use_epoch_lines(True, _Tty()) is True


def test_epoch_lines_show_the_current_plan_and_the_scores():
    out = io.StringIO()
    plan = {"n": 12}
    cb = EpochLines(lambda: plan["n"], stream=out)
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 0.41234, "val_miou": 0.5, "iou_building": 0.3})
    plan["n"] = 9
    cb.on_epoch_end(1, {"loss": 0.3})
    first, second = out.getvalue().splitlines()
    assert first.startswith("epoch 1/12 (planned)") and "loss 0.4123" in first and "val_miou 0.5" in first
    assert "iou_building" not in first
    assert second.startswith("epoch 2/9 (planned)")
    fixed = io.StringIO()
    EpochLines(5, stream=fixed).on_epoch_end(4, {})
    assert fixed.getvalue().startswith("epoch 5/5  ")
