"""A per-scene progress bar: windows done / total and scene pixels per second."""

from __future__ import annotations

import sys
import time


class SceneProgress:
    """tqdm bar over the windows of one scene (disabled with ``enabled=False``).

    Args:
        name: label shown before the bar (the scene file name).
        total: windows to predict (including windows skipped because they are entirely nodata).
        pixels: scene pixels covered by the run (for the pixels/s figure).
        enabled: False for ``--quiet``.
    """

    def __init__(self, name: str, total: int, pixels: int, enabled: bool = True):
        self.total = int(total)
        self.pixels = int(pixels)
        self.done = 0
        self._start = time.perf_counter()
        self._bar = None
        if enabled:
            from tqdm import tqdm

            # disable=None: no bar when stderr is not a terminal (a log file gets no carriage returns)
            self._bar = tqdm(total=self.total, desc=name, unit="win", file=sys.stderr, leave=True,
                             dynamic_ncols=True, mininterval=0.5, disable=None)

    def update(self, windows: int) -> None:
        self.done += int(windows)
        if self._bar is not None and windows:
            self._bar.update(int(windows))
            self._bar.set_postfix_str(f"{self.pixels_per_second():,.0f} px/s", refresh=False)

    def pixels_per_second(self) -> float:
        """Scene pixels per second so far, assuming windows progress uniformly over the scene."""
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        return self.pixels * (self.done / max(self.total, 1)) / elapsed

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
