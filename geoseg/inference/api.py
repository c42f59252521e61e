"""The prediction entry points: validate every scene first, then predict here or on dask.

Imports go one way: ``api`` -> ``distributed`` (dask mapping) -> ``engine`` (one scene in this
process) -> ``reader`` / ``accumulator`` / ``writers`` / ``forward``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from geoseg import __version__
from geoseg.errors import InvalidParameterError, OutputExistsError
from geoseg.inference.checks import check_scene_bands, check_scene_input
from geoseg.inference.distributed import predict_jobs_dask
from geoseg.inference.engine import make_forward, run_job
from geoseg.inference.options import PredictionResult, PredictOptions, SceneJob
from geoseg.inference.writers import output_paths
from geoseg.io.atomic import LOCK_FILE, check_writable, is_temp_name, remove_stale_temps
from geoseg.io.bundle import Bundle, load_bundle
from geoseg.io.lock import output_lock
from geoseg.io.photos import is_photo, photo_notice
from geoseg.io.raster import open_scene
from geoseg.io.run_record import check_same_parameters, read_record, write_record
from geoseg.io.video import is_video

log = logging.getLogger("geoseg.predict")

#: The parameters of the runs into an output folder, compared on ``--resume``.
PARAMS_FILE = ".geoseg_predict.json"


def as_bundle(bundle_or_path: Bundle | str | os.PathLike) -> Bundle:
    """A :class:`Bundle` (model loaded lazily) from a bundle or its folder."""
    if isinstance(bundle_or_path, Bundle):
        return bundle_or_path
    return load_bundle(bundle_or_path, load_model=False)


def predict_scene(bundle_or_path: Bundle | str | os.PathLike, scene_path: str | os.PathLike,
                  out_dir: str | os.PathLike, **options) -> PredictionResult:
    """Predict one scene into ``OUT/<stem>_label.tif`` and ``OUT/<stem>_prob.tif``.

    Args:
        bundle_or_path: a loaded :class:`Bundle` or a bundle folder.
        scene_path: the GeoTIFF (or any GDAL raster) to predict.
        out_dir: output folder (created).
        **options: fields of :class:`PredictOptions`.

    Raises:
        GeoSegError: bad bundle, scene, option, or existing outputs (see :func:`predict_scenes`).
    """
    return predict_scenes(bundle_or_path, [scene_path], out_dir, **options)[0]


def predict_scenes(bundle_or_path: Bundle | str | os.PathLike, scenes: Sequence[str | os.PathLike],
                   out_dir: str | os.PathLike, workers: int = 1, scheduler: str | None = None,
                   **options) -> list[PredictionResult]:
    """Predict several scenes; every scene and output is validated before anything is written.

    Args:
        bundle_or_path: a loaded :class:`Bundle` or a bundle folder.
        scenes: scene files.
        out_dir: output folder.
        workers: > 1 runs strips of scenes on that many local dask worker processes.
        scheduler: a dask.distributed scheduler address; workers there must see the bundle and
            scene paths (the outputs are written by this process).
        **options: fields of :class:`PredictOptions`.

    Raises:
        InputNotFoundError, UnreadableRasterError: a scene or the bundle cannot be read.
        BundleError: the bundle is incomplete or its model cannot be loaded.
        BandCountError: a scene lacks the bands the model reads.
        InputMismatchError: a scene's dtype or value range is far from the training data
            (unless ``allow_input_mismatch``).
        InvalidParameterError: an option is out of range, or ``resume`` with other parameters
            than the run that wrote ``out_dir`` (recorded in ``OUT/.geoseg_predict.json``).
        OutputExistsError: an output exists and neither ``overwrite`` nor ``resume`` is set.
        OutputNotWritableError: ``out_dir`` cannot be written (checked before anything else).
        OutputLockedError: another run is writing into ``out_dir``.
    """
    check_writable(out_dir)
    bundle = as_bundle(bundle_or_path)
    if any(is_video(s) for s in scenes):  # video files: frame by frame (geoseg.inference.video)
        rest = [s for s in scenes if not is_video(s)]
        done = predict_videos(bundle, [s for s in scenes if is_video(s)], out_dir, **options)
        return done + (predict_scenes(bundle, rest, out_dir, workers, scheduler, **options) if rest else [])
    opts = PredictOptions(**options).resolved(bundle)
    if int(workers) < 1:
        raise InvalidParameterError(f"--workers must be >= 1, got {workers}")
    jobs = plan_jobs(bundle, scenes, out_dir, opts)
    out = Path(out_dir)
    # One run per folder: the lock keeps the checks above true while this run writes, and lets it
    # remove the temporary files a killed run left (no live run's files are among them).
    with output_lock(out, "geoseg predict"):
        try:
            check_run_parameters(out, bundle, opts)
            remove_stale_temps(out, recursive=False)
            return _predict_jobs(bundle, jobs, opts, int(workers), scheduler)
        except BaseException:
            if not _holds_outputs(out):  # nothing finished: leave the folder as it was found
                (out / PARAMS_FILE).unlink(missing_ok=True)
            raise


def predict_videos(bundle_or_path: Bundle | str | os.PathLike, sources: Sequence[str | os.PathLike | int],
                   out_dir: str | os.PathLike, label_video: bool = False, alpha: float = 0.5,
                   max_frames: int | None = None, **options) -> list[PredictionResult]:
    """Predict video files or cameras (int index) frame by frame into ``OUT/<stem>_overlay.mp4``
    (+ ``<stem>_label.mp4`` with ``label_video``); see :func:`geoseg.inference.video.predict_video`.

    Raises:
        GeoSegError: as :func:`geoseg.inference.video.predict_video`; OutputLockedError.
    """
    from geoseg.inference.video import predict_video

    check_writable(out_dir)
    bundle = as_bundle(bundle_or_path)
    opts = PredictOptions(**options).resolved(bundle)
    with output_lock(Path(out_dir), "geoseg predict"):
        return [predict_video(bundle, source, out_dir, opts, label_video=label_video, alpha=alpha,
                              max_frames=max_frames) for source in sources]


def _predict_jobs(bundle: Bundle, jobs: list[SceneJob], opts: PredictOptions, workers: int,
                  scheduler: str | None) -> list[PredictionResult]:
    todo = [j for j in jobs if not j.skip]
    results: dict[Path, PredictionResult] = {
        j.info.path: PredictionResult(j.info.path, j.paths.label, j.paths.prob, skipped=True) for j in jobs if j.skip
    }
    if todo and (workers > 1 or scheduler):
        for res in predict_jobs_dask(bundle, todo, opts, workers=workers, scheduler=scheduler):
            results[res.scene] = res
    elif todo:
        forward = make_forward(bundle, todo[0].bands, opts.tta, opts.precision, opts.xla)
        for job in todo:
            results[job.info.path] = run_job(bundle, forward, job, opts)
    return [results[j.info.path] for j in jobs]


def run_parameters(bundle: Bundle, opts: PredictOptions) -> dict[str, object]:
    """The options that decide what a prediction holds, by CLI name (batch size and workers do not).

    ``model`` is the bundle folder's name and a digest of its ``geoseg.json`` (a retrained
    bundle records other training metrics, so its digest differs).
    """
    digest = hashlib.sha256(bundle.meta_path.read_bytes()).hexdigest()[:12]
    stride_mode = opts.mode == "stride"
    return {
        "model": f"{bundle.directory.name} ({bundle.meta_path.name} sha256 {digest})", "mode": opts.mode,
        "stride": opts.stride if stride_mode else None, "blend": opts.blend if stride_mode else None,
        "tta": opts.tta, "threshold": opts.threshold, "prob-dtype": opts.prob_dtype, "no-prob": not opts.write_prob,
        "cog": opts.cog, "compress": opts.compress,
        **({"precision": opts.precision} if opts.precision != "float32" else {}), **({"xla": True} if opts.xla else {}),
    }


def check_run_parameters(out: Path, bundle: Bundle, opts: PredictOptions) -> None:
    """Refuse ``--resume`` with other parameters than the outputs in ``out``; record this run's.

    Raises:
        InvalidParameterError: ``resume`` and the recorded parameters differ (each change listed).
    """
    params = run_parameters(bundle, opts)
    record = out / PARAMS_FILE
    old = read_record(record)
    if opts.resume and old is not None and _holds_outputs(out):
        check_same_parameters(old.get("parameters", {}), params, record)
    write_record(record, {"geoseg_version": __version__, "parameters": params})


def _holds_outputs(out: Path) -> bool:
    """True when ``out`` holds a finished output (anything but this module's bookkeeping and temporary files)."""
    if not out.is_dir():
        return False
    return any(p.name not in (LOCK_FILE, PARAMS_FILE) and not is_temp_name(p.name) for p in out.iterdir())


def plan_jobs(bundle: Bundle, scenes: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
              opts: PredictOptions) -> list[SceneJob]:
    """Open every scene, check its bands, input range and outputs; nothing is written here.

    Args:
        bundle: the bundle.
        scenes: scene files.
        out_dir: output folder.
        opts: resolved options.

    Raises:
        see :func:`predict_scenes`.
    """
    jobs: list[SceneJob] = []
    stems: dict[str, Path] = {}
    for scene in scenes:
        info = open_scene(scene)
        if info.crs is None and not is_photo(info):  # photos: one notice for all (io.photos)
            log.warning("scene has no CRS: %s (outputs copy its pixel grid without georeference)", info.path)
        bands = check_scene_bands(info, bundle)
        check_scene_input(info, bands, bundle, allow=opts.allow_input_mismatch)
        paths = output_paths(info.path, out_dir, opts.write_prob, "png" if is_photo(info) else "tif")
        stem = info.path.stem
        if stem in stems:
            raise InvalidParameterError(f"two scenes share the name {stem!r}: {stems[stem]} and {info.path} "
                                        "(their outputs would collide)")
        stems[stem] = info.path
        skip = False
        if opts.resume and paths.complete():
            skip = True
        elif not (opts.overwrite or opts.resume):
            for p in paths.all:
                if p.exists():
                    raise OutputExistsError(
                        f"output exists: {p} (use --overwrite to replace it or --resume to continue)")
        jobs.append(SceneJob(info=info, bands=bands, paths=paths, skip=skip))
    photo_notice([j.info for j in jobs])
    return jobs
