"""Learning-rate schedules: values at key steps."""

from __future__ import annotations

import math

import pytest

from geoseg.errors import InvalidParameterError
from geoseg.training.schedules import WarmupSchedule, make_schedule


def _lr(s, step):
    return float(s(step))


def test_warmup_then_cosine():
    s = make_schedule("cosine", 0.1, epochs=10, steps_per_epoch=10, warmup_epochs=1)  # W=10, T=100
    assert _lr(s, 0) == pytest.approx(0.01)
    assert _lr(s, 9) == pytest.approx(0.1)
    assert _lr(s, 10) == pytest.approx(0.1)
    assert _lr(s, 55) == pytest.approx(0.001 + 0.099 * 0.5, rel=1e-5)  # half-way: mid value
    assert _lr(s, 100) == pytest.approx(0.001, rel=1e-4)


@pytest.mark.parametrize("name,step,expect", [
    ("constant", 73, 0.1),
    ("poly", 0, 0.1),
    ("poly", 50, 0.001 + 0.099 * 0.5 ** 0.9),
    ("poly", 100, 0.001),
    ("exponential", 20, 0.1 * 0.9 ** 2),  # decay_steps = steps per epoch = 10
    ("step", 49, 0.1),
    ("step", 50, 0.01),
    ("step", 75, 0.001),
    ("cosine_restarts", 0, 0.1),
    # cycle length 100 / 3: a restart just after step 33.3
    ("cosine_restarts", 34, 0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi * (34 - 100 / 3) / (100 / 3)))),
    ("cosine_restarts", 33, 0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi * 33 / (100 / 3)))),
])
def test_schedule_values(name, step, expect):
    s = make_schedule(name, 0.1, epochs=10, steps_per_epoch=10, warmup_epochs=0)
    assert _lr(s, step) == pytest.approx(expect, rel=1e-4)


def test_schedule_roundtrips_config_and_rejects_unknown():
    s = WarmupSchedule("poly", 0.05, 200, 20)
    t = WarmupSchedule(**s.get_config())
    assert [_lr(s, i) for i in (0, 19, 20, 150)] == [_lr(t, i) for i in (0, 19, 20, 150)]
    with pytest.raises(InvalidParameterError, match="--schedule"):
        WarmupSchedule("linear", 0.1, 10)
