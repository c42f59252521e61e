"""``geoseg <command> ...``: the console script; each command is also ``python -m geoseg.<command>``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: command -> (module, one-line summary). Modules are imported only when their command runs.
COMMANDS = {
    "sample": ("geoseg.cli.sample", "write the synthetic sample scene, labels and polygons"),
    "tile": ("geoseg.cli.tile", "cut scenes and labels into georeferenced training patches"),
    "train": ("geoseg.cli.train", "train a model on a tiled dataset and write a bundle"),
    "predict": ("geoseg.cli.predict", "predict whole scenes into probability and label rasters"),
    "evaluate": ("geoseg.cli.evaluate", "compare predictions with labels: confusion matrix, IoU, F1, kappa"),
    "vectorize": ("geoseg.cli.vectorize", "turn a label raster into polygons"),
    "labels": ("geoseg.cli.labels", "convert color-coded labels to class indices and back"),
    "quicklook": ("geoseg.cli.quicklook", "draw scene, ground truth and prediction in a PNG with a class legend"),
    "export": ("geoseg.cli.export", "export a bundle as ONNX (QGIS Deepness), TensorFlow SavedModel or STAC MLM item"),
    "pipeline": ("geoseg.apps.pipeline", "run a YAML pipeline (sample -> tile -> train -> predict -> evaluate)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: geoseg <command> [options]\n\ncommands:")
        for name, (_, summary) in COMMANDS.items():
            print(f"  {name:<10} {summary}")
        print("\n'geoseg <command> --help' for a command's options.")
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from geoseg import __version__

        print(f"geoseg {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
