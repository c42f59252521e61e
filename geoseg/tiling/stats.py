"""Per-band streaming statistics over the valid pixels of training patches.

Integer bands of up to 16 bits are counted in an exact histogram, so mean, std, min, max and
the 2nd/98th percentiles do not depend on the order in which patches arrive (one worker or
many, resumed or not). Other types use a running (count, mean, M2) merge (Chan et al.) and a
seeded reservoir sample for the percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Reservoir size per band for float (and 32-bit integer) data.
RESERVOIR_SIZE = 100_000
#: Pixels from which the 8-bit joint two-band histogram beats one 256-bin ``bincount`` per band
#: (measured: 0.9 against 0.4 ms for 256 x 256 x 4 pixels, 0.9 against 1.5 ms for 512 x 512 x 4).
JOINT_MIN_PIXELS = 1 << 17


@dataclass
class BandStats:
    """Mergeable per-band statistics accumulator.

    Attributes:
        dtype: numpy dtype name of the pixels.
        bands: number of bands C.
        seed: seed of the reservoir sampler (float types).
    """

    dtype: str
    bands: int
    seed: int = 0
    pixels: int = 0
    hist: np.ndarray | None = None  # (C, bins) int64 for <= 16-bit integers
    offset: int = 0
    n: np.ndarray = field(default=None)  # type: ignore[assignment]
    mean: np.ndarray = field(default=None)  # type: ignore[assignment]
    m2: np.ndarray = field(default=None)  # type: ignore[assignment]
    vmin: np.ndarray = field(default=None)  # type: ignore[assignment]
    vmax: np.ndarray = field(default=None)  # type: ignore[assignment]
    reservoir: list[np.ndarray] = field(default_factory=list)
    seen: int = 0

    def __post_init__(self) -> None:
        dt = np.dtype(self.dtype)
        if dt.kind in "iub" and dt.itemsize <= 2:
            info = np.iinfo(dt) if dt.kind != "b" else None
            lo, hi = (info.min, info.max) if info else (0, 1)
            self.offset = -int(lo)
            if self.hist is None:
                self.hist = np.zeros((self.bands, hi - lo + 1), dtype=np.int64)
        else:
            c = self.bands
            self.n = np.zeros(c, np.int64) if self.n is None else self.n
            self.mean = np.zeros(c) if self.mean is None else self.mean
            self.m2 = np.zeros(c) if self.m2 is None else self.m2
            self.vmin = np.full(c, np.inf) if self.vmin is None else self.vmin
            self.vmax = np.full(c, -np.inf) if self.vmax is None else self.vmax
            if not self.reservoir:
                self.reservoir = [np.empty(0) for _ in range(c)]

    @property
    def exact(self) -> bool:
        """True when a histogram is kept (integer data of up to 16 bits)."""
        return self.hist is not None

    def update(self, data: np.ndarray, valid: np.ndarray) -> None:
        """Add the valid pixels of a ``(C, H, W)`` patch (``valid`` is ``(H, W)`` bool)."""
        nvalid = int(valid.sum())
        if nvalid == 0:
            return
        self.pixels += nvalid
        all_valid = nvalid == valid.size
        if self.exact and self.hist.shape[1] == 256:
            if self._update_uint8_interleaved(data, None if all_valid else valid, nvalid):
                self.seen += 1
                return
            self._update_uint8([data[b].ravel() if all_valid else data[b][valid] for b in range(self.bands)])
            self.seen += 1
            return
        for b in range(self.bands):
            v = data[b].ravel() if all_valid else data[b][valid]
            if self.exact:
                idx = v.astype(np.int64) + self.offset if self.offset else v
                self.hist[b] += np.bincount(idx, minlength=self.hist.shape[1])
            else:
                v = v.astype(np.float64)
                v = v[np.isfinite(v)]
                if v.size == 0:
                    continue
                self._merge_moments(b, v.size, float(v.mean()), float(((v - v.mean()) ** 2).sum()),
                                    float(v.min()), float(v.max()))
                self._sample(b, v)
        self.seen += 1

    def _update_uint8(self, bands: list[np.ndarray]) -> None:
        """Histogram 8-bit bands two at a time: one ``bincount`` over ``a << 8 | b`` (65536 bins)
        counts as many elements as a single band, and its row and column sums are the two
        bands' histograms, so the patch is counted in half the passes (the tiler's hot path)."""
        b = 0
        while b + 1 < len(bands):
            joint = np.bincount((bands[b].astype(np.uint16) << 8) | bands[b + 1], minlength=65536)
            joint = joint.reshape(256, 256)
            self.hist[b] += joint.sum(axis=1)
            self.hist[b + 1] += joint.sum(axis=0)
            b += 2
        if b < len(bands):
            self.hist[b] += np.bincount(bands[b], minlength=256)

    def _update_uint8_interleaved(self, data: np.ndarray, valid: np.ndarray | None, nvalid: int) -> bool:
        """The joint two-band histograms of a ``(C, H, W)`` view of a pixel-interleaved ``(H, W, C)``
        buffer, C even: each pixel's bands ``2k, 2k+1`` read as one little-endian uint16 are already
        ``band(2k) + 256 * band(2k+1)``, with no shift, cast or copy (``nvalid``: the valid pixels,
        counted by the caller). False (nothing counted) for any other layout."""
        hwc = data.transpose(1, 2, 0)
        if self.bands % 2 or not hwc.flags.c_contiguous:
            return False
        if nvalid < JOINT_MIN_PIXELS:
            # Small patches: a 65536-bin joint histogram costs more to clear and sum than it saves.
            pixels = hwc.reshape(-1, self.bands) if valid is None else hwc[valid]
            for b in range(self.bands):
                self.hist[b] += np.bincount(pixels[:, b], minlength=256)
            return True
        pairs = hwc.view("<u2")  # (H, W, C / 2)
        if valid is not None:
            pairs = pairs[valid]
        pairs = pairs.reshape(-1, self.bands // 2)
        for k in range(self.bands // 2):
            joint = np.bincount(pairs[:, k], minlength=65536).reshape(256, 256)  # [band 2k+1, band 2k]
            self.hist[2 * k] += joint.sum(axis=0)
            self.hist[2 * k + 1] += joint.sum(axis=1)
        return True

    def _merge_moments(self, b: int, n: int, mean: float, m2: float, vmin: float, vmax: float) -> None:
        n0 = self.n[b]
        tot = n0 + n
        delta = mean - self.mean[b]
        self.mean[b] += delta * n / tot
        self.m2[b] += m2 + delta * delta * n0 * n / tot
        self.n[b] = tot
        self.vmin[b] = min(self.vmin[b], vmin)
        self.vmax[b] = max(self.vmax[b], vmax)

    def _sample(self, b: int, v: np.ndarray) -> None:
        # Keep each pixel with probability RESERVOIR_SIZE / n seen so far (approximate reservoir).
        rng = np.random.default_rng([self.seed, self.seen, b])
        res = self.reservoir[b]
        total = int(self.n[b])
        if total <= RESERVOIR_SIZE:
            self.reservoir[b] = np.concatenate([res, v])
            return
        take = max(1, int(round(v.size * RESERVOIR_SIZE / total)))
        pick = v[rng.choice(v.size, size=min(take, v.size), replace=False)]
        keep = rng.choice(res.size, size=max(0, RESERVOIR_SIZE - pick.size), replace=False)
        self.reservoir[b] = np.concatenate([res[np.sort(keep)], pick])

    def merge(self, other: BandStats) -> BandStats:
        """Fold ``other`` into this accumulator (in place) and return self."""
        self.pixels += other.pixels
        if self.exact:
            self.hist += other.hist
            return self
        for b in range(self.bands):
            if other.n[b]:
                self._merge_moments(b, int(other.n[b]), float(other.mean[b]), float(other.m2[b]),
                                    float(other.vmin[b]), float(other.vmax[b]))
                both = np.concatenate([self.reservoir[b], other.reservoir[b]])
                if both.size > RESERVOIR_SIZE:
                    rng = np.random.default_rng([self.seed, int(self.n[b]), b])
                    both = both[np.sort(rng.choice(both.size, size=RESERVOIR_SIZE, replace=False))]
                self.reservoir[b] = both
        return self

    def result(self) -> dict:
        """``{"mean", "std", "min", "max", "p2", "p98": [per band], "pixels": n}`` (None when no pixel)."""
        keys = ("mean", "std", "min", "max", "p2", "p98")
        if self.pixels == 0:
            return {**dict.fromkeys(keys), "pixels": 0}
        out: dict[str, list] = {k: [] for k in keys}
        for b in range(self.bands):
            if self.exact:
                h = self.hist[b]
                values = np.arange(h.size, dtype=np.float64) - self.offset
                n = h.sum()
                mean = float((h * values).sum() / n)
                var = float((h * (values - mean) ** 2).sum() / n)
                nz = np.nonzero(h)[0]
                cum = np.cumsum(h)
                p2 = float(values[np.searchsorted(cum, 0.02 * n)])
                p98 = float(values[np.searchsorted(cum, 0.98 * n)])
                vals = (mean, var ** 0.5, float(values[nz[0]]), float(values[nz[-1]]), p2, p98)
            else:
                n = self.n[b]
                res = self.reservoir[b]
                p2, p98 = (np.percentile(res, [2, 98]).tolist() if res.size else (float("nan"),) * 2)
                vals = (float(self.mean[b]), float((self.m2[b] / n) ** 0.5) if n else float("nan"),
                        float(self.vmin[b]), float(self.vmax[b]), float(p2), float(p98))
            for k, v in zip(keys, vals):
                out[k].append(float(f"{v:.9g}"))
        return {**out, "pixels": int(self.pixels)}
