"""The records of a prediction run: its options, one validated scene, and what a scene produced."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from geoseg.errors import InvalidParameterError, UsageError
from geoseg.inference.blending import BLENDS
from geoseg.inference.writers import PROB_DTYPES, OutputPaths
from geoseg.io.bundle import Bundle
from geoseg.io.profiles import COMPRESSIONS
from geoseg.io.raster import SceneInfo
from geoseg.io.remote import GdalPath
from geoseg.runtime.tensorflow import PRECISIONS

MODES = ("stride", "per_image")
#: ``--accumulate`` choices (the modules using them import TensorFlow).
ACCUMULATE = ("auto", "host", "device")

#: Label threshold of binary (one sigmoid output) models when ``--threshold`` is not given.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class PredictOptions:
    """Options of a prediction run (CLI flags of ``geoseg.predict`` with ``_`` for ``-``).

    Attributes:
        mode: ``stride`` (sliding windows, blended) or ``per_image`` (resize, predict once).
        stride: step between windows in pixels; None takes the bundle's default.
        blend: ``mean``, ``spline`` or ``gaussian`` (:mod:`geoseg.inference.blending`).
        batch_size: windows per model call; None: 8 on CPU, chosen from free device memory on a
            GPU (:meth:`geoseg.inference.forward.Forward.batch_size`).
        tta: average the 8 dihedral transforms of each window.
        prob_dtype: ``uint8`` (p * 255, scale metadata) or ``float32``.
        write_prob: write ``<stem>_prob.tif`` (False for ``--no-prob``).
        cog: write Cloud-Optimized GeoTIFFs with overviews.
        compress: ``deflate``, ``zstd``, ``lzw`` or ``none``.
        overwrite: replace existing outputs.
        resume: keep finished scenes (both outputs present), redo the others.
        progress: show a progress bar per scene.
        strip_rows: predict strips of this many rows independently (halo of one tile); None
            streams the whole scene in one pass. Workers use strips of a few block rows.
        prefetch: batches read ahead of the model.
        threshold: binary models only: label = 1 where the blended foreground probability
            ``p >= threshold``; None means :data:`DEFAULT_THRESHOLD` (binary) or argmax (others).
        allow_input_mismatch: predict scenes whose dtype or value range differs from the
            training data recorded in the bundle, with a warning instead of an error.
        accumulate: ``auto``, ``host`` or ``device``: where windows are blended and encoded
            (:mod:`geoseg.inference.device`); ``auto`` = ``device`` where a GPU is visible. Outputs
            do not depend on it.
        precision: ``float32`` or ``mixed`` (float16 compute on a GPU, bfloat16 on CPU; outputs
            differ slightly, recorded in the run record and the ``GEOSEG_PRECISION`` tag).
        xla: compile the model with XLA (``jit_compile``).
    """

    mode: str = "stride"
    stride: int | None = None
    blend: str = "mean"
    batch_size: int | None = None
    tta: bool = False
    prob_dtype: str = "uint8"
    write_prob: bool = True
    cog: bool = False
    compress: str = "deflate"
    overwrite: bool = False
    resume: bool = False
    progress: bool = True
    strip_rows: int | None = None
    prefetch: int = 2
    threshold: float | None = None
    allow_input_mismatch: bool = False
    accumulate: str = "auto"
    precision: str = "float32"
    xla: bool = False

    def resolved(self, bundle: Bundle) -> PredictOptions:
        """Validate against the bundle, fill the default stride and (binary models) threshold.

        Raises:
            InvalidParameterError: an option is out of range (message names the option).
        """
        def choose(name: str, value, allowed) -> None:
            if value not in allowed:
                raise InvalidParameterError(f"--{name} {value!r} is not known; choose from {', '.join(allowed)}")

        choose("mode", self.mode, MODES)
        choose("blend", self.blend, BLENDS)
        choose("prob-dtype", self.prob_dtype, PROB_DTYPES)
        choose("compress", self.compress, tuple(COMPRESSIONS))
        choose("accumulate", self.accumulate, ACCUMULATE)
        choose("precision", self.precision, PRECISIONS)
        if self.accumulate == "device" and bundle.is_onnx:
            raise InvalidParameterError(f"--accumulate device needs a Keras bundle; {bundle.directory} is an ONNX "
                                        "model (run by onnxruntime on the host path)")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise InvalidParameterError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.strip_rows is not None and int(self.strip_rows) < 1:
            raise InvalidParameterError(f"strip_rows must be >= 1, got {self.strip_rows}")
        if self.overwrite and self.resume:
            raise UsageError("--overwrite and --resume exclude each other")
        tile = bundle.tile_size
        stride = bundle.stride if self.stride is None else int(self.stride)
        if stride <= 0:
            raise InvalidParameterError(f"--stride must be > 0, got {stride}")
        if stride > tile:
            raise InvalidParameterError(
                f"--stride {stride} is larger than the tile size {tile} of bundle {bundle.directory}: "
                "pixels between windows would get no prediction"
            )
        threshold = self.threshold
        if bundle.binary:
            threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
            if not 0.0 <= threshold <= 1.0:
                raise InvalidParameterError(f"--threshold must be within 0..1, got {threshold}")
        elif threshold is not None:
            raise InvalidParameterError(
                f"--threshold applies to binary models (one sigmoid output); the model of bundle "
                f"{bundle.directory} outputs {bundle.output_channels} classes (label = argmax)"
            )
        batch = None if self.batch_size is None else int(self.batch_size)
        return replace(self, stride=stride, batch_size=batch, threshold=threshold)


@dataclass(frozen=True)
class PredictionResult:
    """What one scene produced.

    Attributes:
        scene: the input scene (a local path, or the GDAL name of a remote one).
        label: ``<stem>_label.tif``.
        prob: ``<stem>_prob.tif`` (None with ``--no-prob``).
        skipped: True when ``--resume`` found both outputs and kept them.
        windows: windows covered (predicted or skipped as entirely nodata).
        nodata_windows: windows skipped because all their pixels are nodata.
        seconds: wall-clock time for the scene.
    """

    scene: Path | GdalPath
    label: Path
    prob: Path | None
    skipped: bool = False
    windows: int = 0
    nodata_windows: int = 0
    seconds: float = 0.0


@dataclass
class SceneJob:
    """A validated scene: its header, bands to read (1-based, model order) and output paths."""

    info: SceneInfo
    bands: list[int]
    paths: OutputPaths
    skip: bool = False
