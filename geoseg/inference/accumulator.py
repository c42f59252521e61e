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

import numpy as np


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


class StripAccumulator:
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
        self.tile = int(tile)
        self.width = int(width)
        self.out_width = int(out_width if out_width is not None else width)
        self.num_classes = int(num_classes)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.base = int(start)
        self.emit_rows = (int(emit[0]), int(emit[1]))
        self._next_emit = self.emit_rows[0]
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

    def advance(self, row: int) -> Iterator[RowBlock]:
        """Finish every row above grid row ``row`` (the next window's top); yield those to emit."""
        row = int(row)
        while self.base < row:
            n = min(row - self.base, self.tile)
            yield from self._emit(n)
            self._shift(n)

    def finish(self) -> Iterator[RowBlock]:
        """Finish all remaining rows up to the end of the emitted range."""
        yield from self.advance(max(self.emit_rows[1], self.base))

    def _emit(self, n: int) -> Iterator[RowBlock]:
        lo = max(self.base, self._next_emit)
        hi = min(self.base + n, self.emit_rows[1])
        if hi <= lo:
            return
        a, b = lo - self.base, hi - self.base
        wsum = self.wsum[a:b, : self.out_width]
        covered = wsum > 0
        valid = self.valid[a:b, : self.out_width] & covered
        # Multiplying by 1/wsum in float64 errs by ~1e-16, far below float32 rounding, so agreeing
        # windows still give their exact float32 value back; rows without windows become 0.
        inv = np.divide(1.0, wsum, out=np.zeros_like(wsum), where=covered)
        prob = np.empty((b - a, self.out_width, self.num_classes), dtype=np.float32)
        np.multiply(self.acc[a:b, : self.out_width], inv[..., None], out=prob, casting="unsafe")
        self._next_emit = hi
        yield RowBlock(row=lo, prob=prob, valid=valid)

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
        self.base += n
