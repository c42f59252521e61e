"""Uncompressed GeoTIFF patches written from a template GDAL made: the tiler's light write path.

Every patch of one run has the same size, bands, type, CRS, nodata and colour table; its file
differs from its neighbours' only in the pixel tiles and in the tie point (the window's
upper-left corner, in CRS units). Creating each file through GDAL spends about 1.2 ms per
patch on the header alone (CRS to GeoTIFF keys, directory, close). :class:`TiffTemplate`
keeps the bytes of one file GDAL wrote and makes the next ones by copying it, replacing the
tiles and the tie point.

It is used only where it is byte-identical to GDAL, and that is checked, not assumed: a
template is accepted (:func:`template_from_gdal`) only when the file is a classic
little-endian TIFF, uncompressed, tiled, one image, pixel-interleaved, tiles covering the patch
exactly, with a ModelTiepointTag holding the transform's corner; and the caller compares one
more GDAL-written patch with the template's rendering of it before using it for the rest
(:mod:`geoseg.tiling.writer`). Anything else goes through GDAL as before.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine

#: TIFF tags read here.
_TILE_WIDTH, _TILE_LENGTH, _TILE_OFFSETS, _TILE_BYTE_COUNTS = 322, 323, 324, 325
_COMPRESSION, _PLANAR_CONFIG, _SAMPLES, _STRIP_OFFSETS = 259, 284, 277, 273
_MODEL_TIEPOINT, _MODEL_TRANSFORMATION = 33922, 34264
#: Byte size of the TIFF field types that can hold the tags above.
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 7: 1, 11: 4, 12: 8, 16: 8}
_TYPE_CODE = {3: "H", 4: "I", 12: "d", 16: "Q"}


@dataclass(frozen=True)
class TiffTemplate:
    """The bytes of one GDAL-written patch, with where its tiles and tie point lie.

    Attributes:
        blob: the whole file as GDAL wrote it.
        shape: ``(H, W, C)`` of the patch in pixels and bands.
        dtype: numpy dtype name of the pixels.
        tile: ``(rows, cols)`` of one tile in pixels.
        offsets: byte offset of each tile in ``blob``, in TIFF order (row-major over tiles).
        tiepoint: byte offset of the tie point's X (followed by Y) in ``blob``.
    """

    blob: bytes
    shape: tuple[int, int, int]
    dtype: str
    tile: tuple[int, int]
    offsets: tuple[int, ...]
    tiepoint: int

    def render(self, data: np.ndarray, transform: Affine) -> bytes:
        """The file GDAL would write for ``data`` at ``transform`` (see :meth:`chunks`)."""
        return b"".join(self.chunks(data, transform))

    def chunks(self, data: np.ndarray, transform: Affine) -> list[bytes | bytearray | memoryview]:
        """The file GDAL would write for ``data`` at ``transform``, as pieces to write one after another.

        Args:
            data: ``(H, W, C)`` pixels (pixel-interleaved, any strides) of ``shape`` and ``dtype``.
            transform: the patch's own transform (only its corner ``c``, ``f`` may differ from the template's).
        """
        if data.shape != self.shape or data.dtype.name != self.dtype:
            raise ValueError(f"patch {data.shape} {data.dtype} does not fit the template {self.shape} {self.dtype}")
        th, tw = self.tile
        h, w, c = self.shape
        # (tile row, tile col, rows, cols, bands): each tile's pixels contiguous, tiles in TIFF order.
        tiles = np.ascontiguousarray(data.reshape(h // th, th, w // tw, tw, c).swapaxes(1, 2))
        flat = memoryview(tiles.reshape(-1).view(np.uint8).data)
        size = th * tw * c * tiles.itemsize
        first, end = self.offsets[0], self.offsets[0] + len(self.offsets) * size
        if self.offsets == tuple(range(first, end, size)) and self.tiepoint + 16 <= first:
            # GDAL's usual layout: header and directory, then the tiles in order (then anything after)
            head = bytearray(self.blob[:first])
            struct.pack_into("<2d", head, self.tiepoint, transform.c, transform.f)
            return [head, flat, self.blob[end:]] if end < len(self.blob) else [head, flat]
        buf = bytearray(self.blob)
        for k, off in enumerate(self.offsets):
            buf[off:off + size] = flat[k * size:(k + 1) * size]
        struct.pack_into("<2d", buf, self.tiepoint, transform.c, transform.f)
        return [buf]


def _entries(blob: bytes) -> dict[int, tuple[int, int, int]] | None:
    """``{tag: (type, count, value_offset)}`` of the first IFD of a classic little-endian TIFF,
    or None when the file is anything else (big-endian, BigTIFF, several images)."""
    if blob[:4] != b"II*\x00":
        return None
    (ifd,) = struct.unpack_from("<I", blob, 4)
    (n,) = struct.unpack_from("<H", blob, ifd)
    out = {}
    for k in range(n):
        tag, typ, count = struct.unpack_from("<HHI", blob, ifd + 2 + 12 * k)
        size = _TYPE_SIZE.get(typ)
        if size is None:
            return None
        at = ifd + 2 + 12 * k + 8
        out[tag] = (typ, count, at if size * count <= 4 else struct.unpack_from("<I", blob, at)[0])
    (next_ifd,) = struct.unpack_from("<I", blob, ifd + 2 + 12 * n)
    return out if next_ifd == 0 else None


def _values(blob: bytes, entry: tuple[int, int, int]) -> tuple[Any, ...] | None:
    typ, count, at = entry
    code = _TYPE_CODE.get(typ)
    return None if code is None else struct.unpack_from(f"<{count}{code}", blob, at)


def template_from_gdal(blob: bytes, shape: tuple[int, int, int], dtype: str, transform: Affine) -> TiffTemplate | None:
    """A :class:`TiffTemplate` from a patch file GDAL wrote, or None where the light path does not apply.

    Args:
        blob: the file's bytes.
        shape: ``(H, W, C)`` of the patch it holds.
        dtype: numpy dtype name of its pixels.
        transform: the transform it was written with.
    """
    try:
        tags = _entries(blob)
    except struct.error:  # a directory running past the end of the file: not GDAL's usual layout
        return None
    if tags is None or _STRIP_OFFSETS in tags or _MODEL_TRANSFORMATION in tags:
        return None
    need = (_TILE_WIDTH, _TILE_LENGTH, _TILE_OFFSETS, _TILE_BYTE_COUNTS, _MODEL_TIEPOINT)
    if any(t not in tags for t in need):
        return None
    values: dict[int, tuple[Any, ...]] = {}
    for t in (*need, _COMPRESSION, _PLANAR_CONFIG, _SAMPLES):
        v = _values(blob, tags[t]) if t in tags else ()
        if v is None:
            return None
        if t in tags:
            values[t] = v
    h, w, c = shape
    tw, th = values[_TILE_WIDTH][0], values[_TILE_LENGTH][0]
    if values.get(_COMPRESSION, (1,))[0] != 1 or values.get(_SAMPLES, (1,))[0] != c:
        return None
    if c > 1 and values.get(_PLANAR_CONFIG, (1,))[0] != 1:
        return None
    if h % th or w % tw:
        return None  # partial edge tiles: GDAL's padding is not reproduced here
    offsets, counts = values[_TILE_OFFSETS], values[_TILE_BYTE_COUNTS]
    size = th * tw * c * np.dtype(dtype).itemsize
    if len(offsets) != (h // th) * (w // tw) or any(n != size for n in counts):
        return None
    if any(off + size > len(blob) for off in offsets):
        return None
    tie = values[_MODEL_TIEPOINT]
    if len(tie) != 6 or tie[:3] != (0.0, 0.0, 0.0) or (tie[3], tie[4]) != (transform.c, transform.f):
        return None
    return TiffTemplate(blob=bytes(blob), shape=(h, w, c), dtype=np.dtype(dtype).name, tile=(th, tw),
                        offsets=tuple(offsets), tiepoint=tags[_MODEL_TIEPOINT][2] + 24)
