"""The one progress-bar factory of the package (tiling, prediction, evaluation).

:func:`progress_bar` returns a tqdm bar when the bar is to be shown and a :class:`NoBar`
otherwise, so callers update and close it without checking. tqdm is imported only when a bar is
shown: its imports cost about 13 ms that a ``--quiet`` run does without. A shown bar is created
with ``disable=None``: no bar at all when stderr is not a terminal (a log file or a pipe gets no
carriage returns), and ``leave=False`` unless the caller asks otherwise.
"""

from __future__ import annotations

from typing import Any, Protocol


class ProgressBar(Protocol):
    """What callers use of a bar (a subset of ``tqdm.tqdm``)."""

    def update(self, n: int = 1) -> Any:
        """Advance the bar by ``n`` units."""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any:
        """Text shown after the bar (e.g. ``"1,234 px/s"``)."""

    def close(self) -> Any:
        """Remove (or, with ``leave=True``, finish) the bar; idempotent."""


class NoBar:
    """A bar that shows nothing: what :func:`progress_bar` returns when the bar is not shown."""

    def update(self, n: int = 1) -> None:
        """Nothing to advance."""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


def progress_bar(total: int, unit: str, desc: str, show: bool = True, **tqdm_kwargs: Any) -> ProgressBar:
    """A progress bar over ``total`` units, or a :class:`NoBar` when ``show`` is False.

    Args:
        total: units to count (windows, pixels, ...).
        unit: the unit's name shown by tqdm (``"win"``, ``"px"``).
        desc: label shown before the bar.
        show: False (``--quiet``) gives a :class:`NoBar` without importing tqdm.
        **tqdm_kwargs: further ``tqdm.tqdm`` options (``mininterval``, ``dynamic_ncols``,
            ``unit_scale``, ``leave``, ...); they override the defaults ``disable=None`` and
            ``leave=False``.

    Returns:
        A ``tqdm.tqdm`` bar, which shows nothing when stderr is not a terminal; or a :class:`NoBar`.
    """
    if not show:
        return NoBar()
    from tqdm import tqdm  # type: ignore[import-untyped]  # only when shown: 13 ms of imports

    options: dict[str, Any] = {"disable": None, "leave": False, **tqdm_kwargs}
    bar: ProgressBar = tqdm(total=total, unit=unit, desc=desc, **options)
    return bar
