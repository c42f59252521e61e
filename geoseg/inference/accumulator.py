"""Streaming accumulation of weighted window predictions, a strip of rows at a time.

Windows arrive in row-major order (:func:`geoseg.io.windows.stride_windows`). When the
next window starts at grid row ``r``, every row above ``r`` has received all the windows that
will ever cover it: those rows are *finished*, normalized (``p = sum(w p) / sum(w)``) and handed
out, and the buffer shifts up. So the buffer never holds more than one window height of rows
(``tile`` rows x grid width x classes), whatever the scene height.

Sums are kept in float64: with float32 inputs the normalized value then rounds back to the exact
float32 input when all windows agree (an identity model reproduces its input bit for bit).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

#: What an accumulator hands out for finished rows.
Rows = TypeVar("Rows")


@dataclass(frozen=True)
class RowBlock:
    """Finished rows of a prediction.

    Attributes:
        row: first scene row of the block (pixels).
        prob: ``(n, W, K)`` float32 blended probabilities (0 where not valid).
        valid: ``(n, W)`` bool; False where the scene is nodata or no window was predicted.
    """

    row: int
    prob: np.ndarray
    valid: np.ndarray

    @property
    def height(self) -> int:
        return int(self.valid.shape[0])


class RowWindow(Generic[Rows]):
    """Which rows are finished and which of them are handed out: the bookkeeping of both
    accumulators (this module's, on the host, and :class:`geoseg.inference.device.DeviceAccumulator`).

    The buffer holds ``tile`` rows starting at grid row ``base``. :meth:`advance` finishes the
    rows above the next window's top row ``n`` at a time (at most ``tile``): the part of them
    inside ``emit`` (and not handed out yet) goes to :meth:`_finished`, then :meth:`_shift` drops
    the ``n`` rows from the buffer.

    Args:
        tile: rows held (the window height in pixels).
        start: grid row of the first window that will be added.
        emit: ``(first, stop)`` scene rows to hand out.
    """

    def __init__(self, tile: int, start: int, emit: tuple[int, int]):
        self.tile = int(tile)
        self.base = int(start)
        self.emit_rows = (int(emit[0]), int(emit[1]))
        self._next_emit = self.emit_rows[0]

    def advance(self, row: int) -> Iterator[Rows]:
        """Finish every row above grid row ``row`` (the next window's top); yield those to emit."""
        row = int(row)
        while self.base < row:
            n = min(row - self.base, self.tile)
            lo = max(self.base, self._next_emit)
            hi = min(self.base + n, self.emit_rows[1])
            if lo < hi:
                block = self._finished(lo, lo - self.base, hi - self.base)
                self._next_emit = hi
                yield block
            self._shift(n)
            self.base += n

    def finish(self) -> Iterator[Rows]:
        """Finish all remaining rows up to the end of the emitted range."""
        yield from self.advance(max(self.emit_rows[1], self.base))

    def add_batch(self, rows: np.ndarray, cols: np.ndarray, pred: Any, valid: Any) -> Iterator[Rows]:
        """Add a batch of windows ``pred (N, tile, tile, K)`` at grid ``(rows[i], cols[i])``, in order.

        Rows must be non-decreasing; before each new window row the rows it finishes are yielded.
        ``pred`` and ``valid`` (``(N, tile, tile)`` bool) are numpy arrays or device tensors, as the
        accumulator keeps its sums.
        """
        rows = np.asarray(rows)
        i, n = 0, len(rows)
        while i < n:
            r = int(rows[i])
            j = i + int(np.searchsorted(rows[i:], r, side="right"))
            if r != self.base:
                yield from self.advance(r)
            self._add_row(r, cols[i:j], pred[i:j], valid[i:j])
            i = j

    def _add_row(self, row: int, cols: np.ndarray, pred: Any, valid: Any) -> None:
        """Add windows of one window row (grid row ``row`` = the base row), in order."""
        raise NotImplementedError

    def _finished(self, row: int, a: int, b: int) -> Rows:
        """Buffer rows ``[a, b)`` (scene rows from ``row``), finished, in the form handed out."""
        raise NotImplementedError

    def _shift(self, n: int) -> None:
        """Drop the first ``n`` buffer rows; the rest move up, the freed rows are cleared."""
        raise NotImplementedError


class StripAccumulator(RowWindow[RowBlock]):
    """Weighted sums for the rows still covered by pending windows.

    Args:
        width: grid width in pixels (scene width, or the padded width for scenes narrower than a tile).
        num_classes: K, the model's output channels.
        tile: window height in pixels: the number of rows the buffer holds.
        weights: ``(tile, tile)`` weight window, or None for uniform weights (``mean``).
        start: grid row of the first window that will be added.
        emit: ``(first, stop)`` scene rows to hand out; rows outside are accumulated but dropped
            (the halo of a strip, the padding of a scene shorter than a tile).
        out_width: columns to hand out (the scene width; padding columns are dropped).
    """

    def __init__(self, width: int, num_classes: int, tile: int, weights: np.ndarray | None, start: int,
                 emit: tuple[int, int], out_width: int | None = None):
        super().__init__(tile, start, emit)
        self.width = int(width)
        self.out_width = int(out_width if out_width is not None else width)
        self.num_classes = int(num_classes)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.acc = np.zeros((self.tile, self.width, self.num_classes), dtype=np.float64)
        self.wsum = np.zeros((self.tile, self.width), dtype=np.float64)
        self.valid = np.zeros((self.tile, self.width), dtype=bool)

    @property
    def allocated_rows(self) -> int:
        """Rows held in memory: one window height, independent of the scene height."""
        return int(self.acc.shape[0])

    def add(self, row: int, col: int, pred: np.ndarray, valid: np.ndarray) -> None:
        """Add one window's prediction ``(h, w, K)`` at grid position ``(row, col)``.

        ``row`` must equal the current base row: call :meth:`advance` before the first window of
        each new window row.
        """
        h, w = pred.shape[:2]
        r = int(row) - self.base
        if r != 0 or h > self.tile:
            raise RuntimeError(f"window at row {row} does not start at the accumulator base {self.base}")
        cs = slice(int(col), int(col) + w)
        if self.weights is None:
            self.acc[:h, cs] += pred
            self.wsum[:h, cs] += 1.0
        else:
            self.acc[:h, cs] += pred * self.weights[:h, :w, None]
            self.wsum[:h, cs] += self.weights[:h, :w]
        self.valid[:h, cs] |= valid

    def _add_row(self, row: int, cols: np.ndarray, pred: Any, valid: Any) -> None:
        for k in range(len(cols)):  # one window at a time, in order: the sums do not depend on batching
            self.add(row, int(cols[k]), pred[k], valid[k])

    def _finished(self, row: int, a: int, b: int) -> RowBlock:
        wsum = self.wsum[a:b, : self.out_width]
        covered = wsum > 0
        valid = self.valid[a:b, : self.out_width] & covered
        # Multiplying by 1/wsum in float64 errs by ~1e-16, far below float32 rounding, so agreeing
        # windows still give their exact float32 value back; rows without windows become 0.
        inv = np.divide(1.0, wsum, out=np.zeros_like(wsum), where=covered)
        prob = np.empty((b - a, self.out_width, self.num_classes), dtype=np.float32)
        np.multiply(self.acc[a:b, : self.out_width], inv[..., None], out=prob, casting="unsafe")
        return RowBlock(row=row, prob=prob, valid=valid)

    def _shift(self, n: int) -> None:
        # Move the unfinished rows to the top and clear the rest: a memmove of at most tile rows
        # per window row, negligible next to the model.
        keep = self.tile - n
        for buf in (self.acc, self.wsum, self.valid):
            # Copy in chunks of n rows: source and target never overlap, so numpy needs no
            # temporary copy of the whole kept part (which would double the buffer's peak).
            for i in range(0, keep, n):
                k = min(n, keep - i)
                buf[i:i + k] = buf[i + n:i + n + k]
            buf[keep:] = 0
