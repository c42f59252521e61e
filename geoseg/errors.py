"""The one error root of geoseg and one class per user mistake.

Every message says what went wrong, where (the path or option) and, where it helps,
what was expected versus what was found. CLIs print ``error: <message>`` on one line and
exit 1 for any :class:`GeoSegError`; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GeoSegError(Exception):
    """Root of all errors caused by user input (files, options, data)."""


class InputNotFoundError(GeoSegError, FileNotFoundError):
    """An input file or folder does not exist, or a glob matched nothing."""


class UnreadableRasterError(GeoSegError, ValueError):
    """A file exists but GDAL cannot open or read it as a raster (corrupt, not a raster)."""


class MissingGeoreferenceError(GeoSegError, ValueError):
    """A raster has no CRS or no geotransform where one is required."""


class CRSMismatchError(GeoSegError, ValueError):
    """Two inputs are in different CRSs and cannot be brought together."""


class AlignmentError(GeoSegError, ValueError):
    """Two rasters that must share a pixel grid do not (size, transform)."""


class NoOverlapError(GeoSegError, ValueError):
    """Labels (or an AOI) do not overlap the scene they belong to."""


class BandCountError(GeoSegError, ValueError):
    """A raster has a different number of bands than expected (model, dataset, option)."""


class SceneTooSmallError(GeoSegError, ValueError):
    """A scene is smaller than one window and padding was not requested."""


class InvalidParameterError(GeoSegError, ValueError):
    """An option value is out of range or inconsistent with another option."""


class OutputExistsError(GeoSegError, FileExistsError):
    """An output already exists and neither --overwrite nor --resume was given."""


class PaletteError(GeoSegError, ValueError):
    """A color-coded label raster holds colors that its palette does not define."""


class VectorLabelError(GeoSegError, ValueError):
    """A vector label file is unreadable, empty, or lacks the named attribute."""


class UsageError(GeoSegError, ValueError):
    """Bad usage of a command: a required option missing, options that exclude each other (exit 2)."""


class ConfigError(UsageError):
    """A --config / pipeline YAML file is unreadable or holds unknown keys."""


class DatasetError(GeoSegError, ValueError):
    """A tiled dataset folder is missing, empty or inconsistent."""


class BundleError(GeoSegError, ValueError):
    """A model bundle is missing, incomplete or corrupt."""


class ModelConfigError(GeoSegError, ValueError):
    """A model cannot be built with the requested name, backbone, shape or weights."""


class LabelValueError(GeoSegError, ValueError):
    """A label or prediction raster holds class values outside ``0..num_classes-1`` (ignore value aside)."""


class InputMismatchError(GeoSegError, ValueError):
    """A scene's pixel dtype or value range differs from the data a model was trained on."""


class OutputNotWritableError(GeoSegError, PermissionError):
    """An output cannot be created where it was asked for (a file in the way, a read-only place)."""


class OutputLockedError(GeoSegError, RuntimeError):
    """Another run (process id and host in the message) is writing into the same output folder."""


class WorkerProcessError(GeoSegError, RuntimeError):
    """A local worker process died before finishing its task (killed, out of memory, or it could
    not start because the caller's main module runs its code again in every worker)."""
