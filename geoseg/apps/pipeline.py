"""``python -m geoseg.pipeline PIPELINE.yaml``: run sample -> tile -> train -> predict -> evaluate
-> vectorize from one YAML file, then print a summary and write a quick-look PNG.

Each step is the command of the same name, called through its ``main(argv)`` with the step's
YAML mapping turned into long options (``key: value`` -> ``--key value``; ``true`` -> ``--key``;
lists -> comma-separated), so a pipeline file uses exactly the CLI's option names. The pipeline
wires the paths between steps; everything lands under ``--out`` (or the file's ``out`` key)::

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
from pathlib import Path
from typing import Any

import yaml

from geoseg.cli.common import add_common_options, load_yaml, make_main, option_names
from geoseg.errors import ConfigError, InputNotFoundError
from geoseg.io.raster import RASTER_SUFFIXES

log = logging.getLogger(__name__)

STEPS = ("sample", "tile", "train", "predict", "evaluate", "vectorize")
TOP_KEYS = ("name", "out", "inputs", "quicklook", *STEPS)
#: Options the pipeline sets itself for each step (a YAML value for them would fight the wiring).
WIRED = {
    "sample": {"out_dir"},
    "tile": {"scenes", "labels", "out"},
    "train": {"dataset", "out"},
    "predict": {"model", "scenes", "out"},
    "evaluate": {"predictions", "labels", "report"},
    "vectorize": {"labels", "out"},
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="geoseg pipeline",
        description="Run a YAML pipeline: sample -> tile -> train -> predict -> evaluate -> vectorize.",
    )
    p.add_argument("pipeline", help="pipeline YAML file (see pipelines/)")
    add_common_options(p, resume=True)
    p.add_argument("--steps", help=f"comma-separated subset of steps to run (default: all of {', '.join(STEPS)})")
    p.add_argument("--set", action="append", default=[], metavar="STEP.KEY=VALUE",
                   help="override one value of the pipeline file (YAML syntax), e.g. --set train.epochs=2")
    return p


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


def load_pipeline(path: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    """Read a pipeline file, apply ``--set`` overrides, reject unknown top-level keys."""
    doc = load_yaml(path)
    for a in overrides:
        _set(doc, a)
    unknown = [k for k in doc if k not in TOP_KEYS]
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(TOP_KEYS)}")
    if "sample" not in doc and "inputs" not in doc:
        raise ConfigError(f"{path}: needs a 'sample' step or 'inputs' (scenes and labels)")
    return doc


def to_argv(options: dict[str, Any] | None, negatable: set[str] = frozenset()) -> list[str]:
    """``{"size": 256, "augment": True, "bands": [1, 2]}`` -> ``["--size", "256", "--augment", "--bands", "1,2"]``.

    ``false`` gives ``--no-KEY`` when that flag is in ``negatable``, and nothing otherwise.
    """
    argv: list[str] = []
    for key, value in (options or {}).items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False:
            if "--no-" + flag[2:] in negatable:
                argv.append("--no-" + flag[2:])
        elif value is None:
            continue
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(map(str, value))]
        elif isinstance(value, dict):
            argv += [flag, json.dumps(value)]
        else:
            argv += [flag, str(value)]
    return argv


def _check_step_keys(step: str, options: dict | None, source: str) -> None:
    """Reject keys the step's command does not know (or that the pipeline wires itself)."""
    if not options:
        return
    module = importlib.import_module(f"geoseg.cli.{step}")
    names = option_names(module.build_parser())
    wired = WIRED.get(step, set())
    unknown = [k for k in options if k not in names or names[k] in wired]
    if unknown:
        valid = sorted(k for k, dest in names.items() if "_" not in k and dest not in wired
                       and dest not in ("quiet", "verbose", "overwrite", "resume"))
        raise ConfigError(f"{source}: step '{step}': unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}")


def step_argv(step: str, options: dict[str, Any] | None) -> list[str]:
    """A step's YAML mapping as command-line options of ``geoseg <step>``."""
    parser = importlib.import_module(f"geoseg.cli.{step}").build_parser()
    flags = {opt for action in parser._actions for opt in action.option_strings}
    return to_argv(options, flags)


def _run_step(step: str, argv: list[str], common: list[str]) -> None:
    module = importlib.import_module(f"geoseg.cli.{step}")
    full = argv + common
    log.info("geoseg %s %s", step, " ".join(full))
    rc = module.main(full)
    if rc:
        raise StepFailed(step, rc)


class StepFailed(Exception):
    """A step exited non-zero; it has already printed its own error line."""

    def __init__(self, step: str, rc: int):
        super().__init__(step)
        self.step, self.rc = step, rc


def run(args: argparse.Namespace) -> int:
    doc = load_pipeline(args.pipeline, args.set)
    steps = [s.strip() for s in args.steps.split(",")] if args.steps else list(STEPS)
    bad = [s for s in steps if s not in STEPS]
    if bad:
        raise ConfigError(f"--steps: unknown step(s) {', '.join(bad)}; choose from {', '.join(STEPS)}")
    for step in STEPS:
        if step in doc:
            _check_step_keys(step, doc[step], args.pipeline)
    out = Path(args.out or doc.get("out") or "pipeline_out")
    out.mkdir(parents=True, exist_ok=True)
    common = (["--overwrite"] if args.overwrite else []) + (["--quiet"] if args.quiet else [])
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    t0 = time.perf_counter()
    try:
        paths = _run_all(doc, steps, out, common, args, say)
    except StepFailed as exc:
        print(f"error: pipeline stopped at step '{exc.step}' (exit {exc.rc})", file=sys.stderr)
        return exc.rc
    paths["elapsed_s"] = round(time.perf_counter() - t0, 1)
    _summary(doc, paths, say)
    return 0


def _run_all(doc: dict, steps: list[str], out: Path, common: list[str], args, say) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    # --- inputs: the synthetic sample, or the user's scenes and labels
    if "sample" in doc:
        sample_dir = out / "sample"
        if "sample" in steps:
            say(f"[sample] writing the synthetic scene to {sample_dir}")
            _run_step("sample", [str(sample_dir)] + step_argv("sample", doc["sample"]), common)
        scenes = [sample_dir / "scene.tif"]
        labels = [sample_dir / "labels.tif"]
        classes = sample_dir / "classes.json"
    else:
        inputs = doc["inputs"] or {}
        scenes = [Path(p) for p in _as_list(inputs.get("scenes"))]
        labels = [Path(p) for p in _as_list(inputs.get("labels"))]
        classes = inputs.get("classes")
        if not scenes:
            raise ConfigError(f"{args.pipeline}: inputs.scenes is empty")
    for p in scenes + labels:
        if "sample" not in steps and not Path(p).exists():
            raise InputNotFoundError(f"no such input: {p}")
    paths["scenes"] = [str(s) for s in scenes]
    dataset, bundle, pred, report = out / "dataset", out / "bundle", out / "pred", out / "report"

    if "tile" in steps:
        say(f"[tile] cutting {len(scenes)} scene(s) into patches in {dataset}")
        argv = [str(s) for s in scenes] + ["--labels", *map(str, labels), "--out", str(dataset)]
        if classes and "classes" not in (doc.get("tile") or {}):
            argv += ["--classes", str(classes)]
        _run_step("tile", argv + step_argv("tile", doc.get("tile")), common)
    paths["dataset"] = str(dataset)

    if "train" in steps:
        say(f"[train] training into {bundle}")
        _run_step("train", [str(dataset), "--out", str(bundle)] + step_argv("train", doc.get("train")), common)
    paths["bundle"] = str(bundle)

    if "predict" in steps:
        say(f"[predict] predicting {len(scenes)} scene(s) into {pred}")
        _run_step("predict", ["--model", str(bundle), *map(str, scenes), "--out", str(pred)]
                  + step_argv("predict", doc.get("predict")), common)
    pred_labels = [pred / f"{Path(s).stem}_label.tif" for s in scenes]
    paths["predictions"] = [str(p) for p in pred_labels]

    if "evaluate" in steps and labels:
        holdout = _holdout_labels(dataset, scenes, labels, out / "holdout", "val")
        say(f"[evaluate] scoring the held-out area into {report}")
        num_classes = json.loads((bundle / "geoseg.json").read_text())["num_classes"]
        opts = dict(doc.get("evaluate") or {})
        opts.setdefault("num-classes", num_classes)
        _run_step("evaluate", [*map(str, pred_labels), "--labels", *map(str, holdout), "--report", str(report)]
                  + step_argv("evaluate", opts), common)
        paths["report"] = str(report / "report.json")

    if "vectorize" in steps and doc.get("vectorize") is not False:
        vec = out / "vectors"
        for p in pred_labels:
            target = vec / f"{p.stem.removesuffix('_label')}.gpkg"
            say(f"[vectorize] {p.name} -> {target}")
            _run_step("vectorize", [str(p), "--out", str(target)] + step_argv("vectorize", doc.get("vectorize")), common)
        paths["vectors"] = str(vec)

    if doc.get("quicklook", True) and pred_labels[0].exists():
        from geoseg.apps.quicklook import quicklook

        truth = labels[0] if labels and _is_raster(labels[0]) else None  # vector truth: no panel
        png = quicklook(scenes[0], truth, pred_labels[0], out / "quicklook.png", classes=bundle / "geoseg.json")
        paths["quicklook"] = str(png)
    return paths


def _is_raster(path: str | Path) -> bool:
    return Path(path).suffix.lower() in RASTER_SUFFIXES


def _as_list(v) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _holdout_labels(dataset: Path, scenes: list[Path], labels: list[Path], folder: Path, split: str) -> list[Path]:
    """Label rasters with everything outside the dataset's ``split`` windows set to 255 (ignored).

    This scores the prediction on the held-out (validation) area only. Scenes without any
    window of that split are scored on their whole area.
    """
    from geoseg.evaluation.holdout import mask_outside_windows, windows_of_split

    out = []
    for scene, label in zip(scenes, labels):
        wins = windows_of_split(dataset / "index.csv", scene, split)
        if not wins or not _is_raster(label):
            # no held-out windows, or vector labels: score the whole scene
            out.append(label)
            continue
        target = folder / f"{Path(scene).stem}_{split}_labels.tif"
        mask_outside_windows(label, wins, target)
        out.append(target)
    return out


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _summary(doc: dict, paths: dict, say) -> None:
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
