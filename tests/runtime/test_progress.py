"""``geoseg.runtime.progress.progress_bar``: a tqdm bar when shown (none on a non-terminal stderr),
a no-op bar otherwise, and tqdm not imported by a run that shows no bar."""

from __future__ import annotations

import io
import subprocess
import sys

from tqdm import tqdm

from geoseg.runtime.progress import NoBar, progress_bar


def test_not_shown_gives_a_no_op_bar():
    bar = progress_bar(10, "win", "tiling", show=False)
    assert isinstance(bar, NoBar)
    assert bar.update(3) is None
    assert bar.update() is None
    assert bar.set_postfix_str("5 px/s", refresh=False) is None
    bar.close()
    bar.close()


def test_not_shown_does_not_import_tqdm():
    code = ("import sys; from geoseg.runtime.progress import progress_bar; "
            "progress_bar(5, 'px', 'evaluate', False).update(5); print('tqdm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_shown_bar_counts_updates_with_the_callers_options():
    out = io.StringIO()
    bar = progress_bar(10, "px", "evaluate", True, disable=False, file=out, unit_scale=True, mininterval=0.5)
    assert isinstance(bar, tqdm)
    bar.update(3)
    bar.update(4)
    bar.set_postfix_str("1 px/s", refresh=False)
    assert bar.n == 7 and bar.total == 10
    assert (bar.unit, bar.desc, bar.unit_scale, bar.mininterval, bar.leave) == ("px", "evaluate", True, 0.5, False)
    bar.close()
    assert out.getvalue().startswith("\revaluate:")  # drawn, then cleared on close (leave=False)
    assert out.getvalue().endswith("\r")


def test_shown_bar_is_silent_when_the_stream_is_not_a_terminal():
    out = io.StringIO()  # isatty() is False: disable=None turns the bar off
    bar = progress_bar(4, "win", "tiling", True, file=out)
    assert isinstance(bar, tqdm) and bar.disable
    bar.update(4)
    bar.close()
    assert out.getvalue() == ""


def test_leave_can_be_asked_for():
    bar = progress_bar(2, "win", "scene.tif", True, disable=False, file=io.StringIO(), leave=True)
    assert bar.leave is True
    bar.close()
