"""``python -m geoseg.pipeline PIPELINE.yaml``: run sample -> tile -> train -> predict -> evaluate
-> vectorize from one YAML file, then print a summary and write a quick-look PNG.

A step's section holds the options of the command of the same name, keyed by its long option
names (``batch-size: 16``), with the values a ``--config`` file of that command accepts
(:mod:`geoseg.cli.config`). The whole file is checked before the first step runs: every section
is a mapping (or ``null`` for the defaults, or ``false`` to skip the step), every key is an
option of its command, every value passes that option's type and choices, and no key sets a
path the pipeline wires itself. Each step then runs the command's ``run(namespace)`` with the
namespace its parser builds from those values, exactly as the command line would.

Everything lands under ``--out`` (or the file's ``out`` key)::

    OUT/sample/  scene.tif labels.tif labels.gpkg classes.json     (sample step)
    OUT/dataset/ tiled patches, index.csv, dataset.json
    OUT/bundle/  model.keras geoseg.json
    OUT/pred/    <stem>_label.tif <stem>_prob.tif
    OUT/report/  report.json report.csv confusion.png
    OUT/vectors/ <stem>.gpkg
    OUT/quicklook.png
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from geoseg.cli.common import CommandParser, add_common_options, load_yaml, make_main
from geoseg.cli.config import config_keys, namespace_from_config, validate_config
from geoseg.errors import ConfigError, GeoSegError, InputNotFoundError
from geoseg.io.atomic import check_writable
from geoseg.io.raster import RASTER_SUFFIXES

log = logging.getLogger(__name__)

STEPS = ("sample", "tile", "train", "predict", "evaluate", "vectorize")
TOP_KEYS = ("name", "out", "inputs", "quicklook", *STEPS)
INPUT_KEYS = ("scenes", "labels", "classes")
#: Options (argparse destinations) the pipeline sets itself for each step.
WIRED = {
    "sample": {"out_dir"},
    "tile": {"scenes", "labels", "out"},
    "train": {"dataset", "out"},
    "predict": {"model", "scenes", "out"},
    "evaluate": {"predictions", "labels", "report", "dataset"},
    "vectorize": {"labels", "out"},
}


def build_parser() -> CommandParser:
    p = CommandParser(
        prog="geoseg pipeline",
        description="Run a YAML pipeline: sample -> tile -> train -> predict -> evaluate -> vectorize.",
    )
    p.add_argument("pipeline", help="pipeline YAML file (see pipelines/)")
    add_common_options(p, resume=True)
    p.add_argument("--steps", help=f"comma-separated subset of steps to run (default: all of {', '.join(STEPS)})")
    p.add_argument("--set", action="append", default=[], metavar="STEP.KEY=VALUE",
                   help="override one value of the pipeline file (YAML syntax), e.g. --set train.epochs=2")
    return p


# --- reading and checking the pipeline file ---------------------------------------------------


def _set(doc: dict, assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set expects STEP.KEY=VALUE, got {assignment!r}")
    key, value = assignment.split("=", 1)
    parts = key.split(".")
    node = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {assignment}: {part!r} is not a mapping in the pipeline file")
    node[parts[-1]] = yaml.safe_load(value)


def load_pipeline(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Read a pipeline file, apply ``--set`` overrides and check its shape (not the step options).

    Raises:
        ConfigError: unreadable file, unknown top-level or ``inputs`` key, a step section that is
            not a mapping, ``null`` or ``false``, or neither a ``sample`` step nor ``inputs``.
    """
    doc = load_yaml(path)
    for a in overrides:
        _set(doc, a)
    unknown = [str(k) for k in doc if k not in TOP_KEYS]
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(TOP_KEYS)}")
    for step in STEPS:
        section = doc.get(step)
        if section is not None and section is not False and not isinstance(section, dict):
            raise ConfigError(f"{path}: step '{step}' must be a mapping of option names to values "
                              f"(or null for the defaults, false to skip it), found {type(section).__name__} "
                              f"{section!r}")
    if "quicklook" in doc and not isinstance(doc["quicklook"], bool):
        raise ConfigError(f"{path}: key 'quicklook': expected true or false, got {doc['quicklook']!r}")
    inputs = doc.get("inputs")
    if inputs is not None:
        if not isinstance(inputs, dict):
            raise ConfigError(f"{path}: inputs must be a mapping with keys {', '.join(INPUT_KEYS)}, "
                              f"found {type(inputs).__name__}")
        bad = [str(k) for k in inputs if k not in INPUT_KEYS]
        if bad:
            raise ConfigError(f"{path}: inputs: unknown key(s) {', '.join(bad)}; valid keys: {', '.join(INPUT_KEYS)}")
    if not has_sample_step(doc) and "inputs" not in doc:
        raise ConfigError(f"{path}: needs a 'sample' step or 'inputs' (scenes and labels)")
    return doc


def step_values(step: str, section: dict | None, source: str) -> dict[str, Any]:
    """A step section checked against its command's options: ``{dest: value}``.

    Raises:
        ConfigError: a key the pipeline wires itself, an unknown key or a bad value.
    """
    parser = _module(step).build_parser()
    section = section or {}
    where = f"{source}: step '{step}'"
    keys = config_keys(parser)
    taken = [str(k) for k in section if str(k) in keys and keys[str(k)][0].dest in WIRED[step]]
    if taken:
        raise ConfigError(f"{where}: key(s) {', '.join(taken)} are set by the pipeline (paths between steps); "
                          "remove them")
    return validate_config(parser, section, where)


def has_sample_step(doc: dict[str, Any]) -> bool:
    """True when the pipeline makes its inputs with the sample step (``sample:`` present, not ``false``)."""
    return "sample" in doc and doc["sample"] is not False


def _module(step: str) -> Any:
    return importlib.import_module(f"geoseg.cli.{step}")


# --- the plan: every step's namespace, built and checked before anything runs -----------------


@dataclass
class Plan:
    """What a pipeline run does: the steps that run and the namespace each one gets.

    Attributes:
        source: the pipeline file.
        doc: the pipeline file with ``--set`` applied.
        out: the output folder (not created yet).
        steps: the steps that run, in order, each with its command's namespace.
        scenes, labels: input scenes and their labels (the sample's, or ``inputs``).
        classes: class map file or names given to ``tile --classes``, if any.
    """

    source: str
    doc: dict[str, Any]
    out: Path
    steps: dict[str, argparse.Namespace] = field(default_factory=dict)
    scenes: list[Path] = field(default_factory=list)
    labels: list[Path] = field(default_factory=list)
    classes: str | None = None

    @property
    def dataset(self) -> Path:
        return self.out / "dataset"

    @property
    def bundle(self) -> Path:
        return self.out / "bundle"

    @property
    def pred_labels(self) -> list[Path]:
        return [self.out / "pred" / f"{s.stem}_label.tif" for s in self.scenes]


def plan_pipeline(args: argparse.Namespace) -> Plan:
    """Check the whole pipeline file and build every step's namespace; nothing is written.

    Raises:
        ConfigError: a bad pipeline file, step section, key or value, or a bad ``--steps``.
        InvalidParameterError: option values out of range (checked by each command's
            ``config_from_args`` where it has one: sample, tile, train).
        InputNotFoundError: an input scene or label that does not exist.
    """
    source = str(args.pipeline)
    doc = load_pipeline(source, args.set)
    selected = [s.strip() for s in args.steps.split(",")] if args.steps else list(STEPS)
    bad = [s for s in selected if s not in STEPS]
    if bad:
        raise ConfigError(f"--steps: unknown step(s) {', '.join(bad)}; choose from {', '.join(STEPS)}")
    values = {step: step_values(step, doc.get(step), source) for step in STEPS if doc.get(step) is not False}
    plan = Plan(source, doc, Path(args.out or doc.get("out") or "pipeline_out"))

    has_sample = has_sample_step(doc)
    if has_sample:
        sample_dir = plan.out / "sample"
        plan.scenes, plan.labels = [sample_dir / "scene.tif"], [sample_dir / "labels.tif"]
        plan.classes = str(sample_dir / "classes.json")
    else:
        inputs = doc.get("inputs") or {}
        plan.scenes = [Path(p) for p in _as_list(inputs.get("scenes"))]
        plan.labels = [Path(p) for p in _as_list(inputs.get("labels"))]
        plan.classes = None if inputs.get("classes") is None else str(inputs["classes"])
        if not plan.scenes:
            raise ConfigError(f"{source}: inputs.scenes is empty")
    if not (has_sample and "sample" in selected):  # the inputs must exist already
        for p in plan.scenes + plan.labels:
            if not p.exists():
                raise InputNotFoundError(f"no such input: {p}")

    shared = {flag: True for flag in ("overwrite", "quiet", "verbose") if getattr(args, flag, False)}
    wiring = _wiring(plan, values)
    for step in STEPS:
        if step not in selected or step not in values or (step == "sample" and not has_sample):
            continue
        if step == "evaluate" and not plan.labels:
            continue
        ns = namespace_from_config(_module(step).build_parser(), {**values[step], **shared, **wiring[step]})
        if hasattr(_module(step), "config_from_args"):
            _module(step).config_from_args(ns)  # range checks that need no file: fail before step 1
        plan.steps[step] = ns
    return plan


def _wiring(plan: Plan, values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The options each step takes from the pipeline: paths between steps."""
    scenes, out = [str(s) for s in plan.scenes], plan.out
    tile: dict[str, Any] = {"scenes": scenes, "labels": [str(p) for p in plan.labels], "out": str(plan.dataset)}
    if plan.classes and "classes" not in values.get("tile", {}):
        tile["classes"] = plan.classes
    return {
        "sample": {"out_dir": str(out / "sample")},
        "tile": tile,
        "train": {"dataset": str(plan.dataset), "out": str(plan.bundle)},
        "predict": {"model": str(plan.bundle), "scenes": scenes, "out": str(out / "pred")},
        # scored on the held-out (validation) area of the dataset only
        "evaluate": {"predictions": [str(p) for p in plan.pred_labels], "labels": [str(p) for p in plan.labels],
                     "dataset": str(plan.dataset), "report": str(out / "report")},
        # one run per prediction; labels and out are set then
        "vectorize": {"labels": str(plan.pred_labels[0])},
    }


# --- running --------------------------------------------------------------------------------


class StepFailed(Exception):
    """A step returned a non-zero exit code without raising."""

    def __init__(self, step: str, rc: int):
        super().__init__(step)
        self.step, self.rc = step, rc


def _run_step(step: str, ns: argparse.Namespace) -> None:
    """Run a command on its namespace; its user errors name the step."""
    log.info("geoseg %s: %s", step, vars(ns))
    try:
        rc = _module(step).run(ns)
    except GeoSegError as exc:
        if len(exc.args) == 1 and isinstance(exc.args[0], str):
            exc.args = (f"step '{step}': {exc.args[0]}",)
        raise
    if rc:
        raise StepFailed(step, rc)


def run(args: argparse.Namespace) -> int:
    plan = plan_pipeline(args)
    check_writable(plan.out, option="out")
    created = not plan.out.exists()
    plan.out.mkdir(parents=True, exist_ok=True)
    say: Callable[..., None] = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    t0 = time.perf_counter()
    try:
        paths = _run_all(plan, say)
    except StepFailed as exc:
        print(f"error: pipeline stopped at step '{exc.step}' (exit {exc.rc})", file=sys.stderr)
        return exc.rc
    finally:
        if created and not any(plan.out.iterdir()):  # a first step that failed left nothing: neither do we
            plan.out.rmdir()
    paths["elapsed_s"] = round(time.perf_counter() - t0, 1)
    _summary(plan.doc, paths, say)
    return 0


def _run_all(plan: Plan, say: Callable[..., None]) -> dict[str, Any]:
    steps, out = plan.steps, plan.out
    paths: dict[str, Any] = {"scenes": [str(s) for s in plan.scenes], "dataset": str(plan.dataset),
                             "bundle": str(plan.bundle), "predictions": [str(p) for p in plan.pred_labels]}
    n = len(plan.scenes)
    what = {
        "sample": lambda ns: f"writing the synthetic scene to {ns.out_dir}",
        "tile": lambda ns: f"cutting {n} scene(s) into patches in {plan.dataset}",
        "train": lambda ns: f"training into {plan.bundle}",
        "predict": lambda ns: f"predicting {n} scene(s) into {ns.out}",
    }
    for step, says in what.items():
        if step in steps:
            say(f"[{step}] {says(steps[step])}")
            _run_step(step, steps[step])

    if "evaluate" in steps:
        ns = steps["evaluate"]
        if ns.num_classes is None:
            ns.num_classes = json.loads((plan.bundle / "geoseg.json").read_text())["num_classes"]
        say(f"[evaluate] scoring the held-out area into {ns.report}")
        _run_step("evaluate", ns)
        paths["report"] = str(Path(ns.report) / "report.json")

    if "vectorize" in steps:
        vec = out / "vectors"
        for p in plan.pred_labels:
            target = vec / f"{p.stem.removesuffix('_label')}.gpkg"
            say(f"[vectorize] {p.name} -> {target}")
            _run_step("vectorize", argparse.Namespace(**{**vars(steps["vectorize"]), "labels": str(p),
                                                         "out": str(target)}))
        paths["vectors"] = str(vec)

    if plan.doc.get("quicklook", True) and plan.pred_labels[0].exists():
        from geoseg.apps.quicklook import quicklook

        truth = plan.labels[0] if plan.labels and _is_raster(plan.labels[0]) else None  # vector truth: no panel
        png = quicklook(plan.scenes[0], truth, plan.pred_labels[0], out / "quicklook.png",
                        classes=plan.bundle / "geoseg.json")
        paths["quicklook"] = str(png)
    return paths


def _is_raster(path: str | Path) -> bool:
    return Path(path).suffix.lower() in RASTER_SUFFIXES


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _summary(doc: dict, paths: dict, say: Callable[..., None]) -> None:
    say("")
    say(f"pipeline {doc.get('name', '')} done in {paths['elapsed_s']} s")
    if "report" in paths and Path(paths["report"]).exists():
        m = json.loads(Path(paths["report"]).read_text())["summary"]
        say(f"  held-out: mIoU {_fmt(m.get('mean_iou'))}  F1 {_fmt(m.get('mean_f1'))}"
            f"  OA {_fmt(m.get('overall_accuracy'))}  kappa {_fmt(m.get('kappa'))}")
    for key in ("dataset", "bundle", "predictions", "report", "vectors", "quicklook"):
        if key in paths:
            say(f"  {key:<12} {paths[key]}")


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
