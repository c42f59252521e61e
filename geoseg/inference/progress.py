"""A per-scene progress bar: windows done / total and scene pixels per second."""

from __future__ import annotations

import time

from geoseg.runtime.progress import progress_bar


class SceneProgress:
    """Progress bar over the windows of one scene (:func:`geoseg.runtime.progress.progress_bar`;
    none with ``enabled=False``).

    Args:
        name: label shown before the bar (the scene file name).
        total: windows to predict (including windows skipped because they are entirely nodata).
        pixels: scene pixels covered by the run (for the pixels/s figure).
        enabled: False for ``--quiet``.
    """

    def __init__(self, name: str, total: int, pixels: int, enabled: bool = True) -> None:
        self.total = int(total)
        self.pixels = int(pixels)
        self.done = 0
        self._start = time.perf_counter()
        self._bar = progress_bar(self.total, "win", name, enabled, leave=True, dynamic_ncols=True, mininterval=0.5)

    def update(self, windows: int) -> None:
        self.done += int(windows)
        if windows:  # a NoBar (enabled=False) ignores both calls
            self._bar.update(int(windows))
            self._bar.set_postfix_str(f"{self.pixels_per_second():,.0f} px/s", refresh=False)

    def pixels_per_second(self) -> float:
        """Scene pixels per second so far, assuming windows progress uniformly over the scene."""
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        return self.pixels * (self.done / max(self.total, 1)) / elapsed

    def close(self) -> None:
        self._bar.close()
