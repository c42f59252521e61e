"""``geoseg export BUNDLE --format onnx|savedmodel|stac --out PATH``: a bundle for other tools.

- ``onnx``: one ``.onnx`` file, raw band values ``(N, C, H, W)`` in, probabilities ``(N, K, H, W)``
  out, normalization inside the graph; metadata for ``geoseg predict --model FILE.onnx`` and the
  QGIS Deepness plugin (:mod:`geoseg.export.onnx`, :mod:`geoseg.io.onnx_model`). Needs the
  ``export`` extra (tf2onnx, onnx).
- ``savedmodel``: a TensorFlow SavedModel folder whose ``serving_default`` takes raw band values
  ``(N, H, W, C)`` (:mod:`geoseg.export.savedmodel`).
- ``stac``: a STAC Item (JSON) with the Machine Learning Model extension describing the bundle
  (:mod:`geoseg.export.stac`).

ONNX and SavedModel exports are checked against the Keras model before they are kept (max
absolute difference of probabilities <= 1e-4 on random raw windows).
"""

from __future__ import annotations

import argparse
import sys

from geoseg.cli.common import CommandParser, add_common_options, make_main
from geoseg.errors import InvalidParameterError

FORMATS = ("onnx", "savedmodel", "stac")
SUFFIX = {"onnx": ".onnx", "savedmodel": "_savedmodel", "stac": ".stac.json"}


def build_parser() -> CommandParser:
    p = CommandParser(prog="geoseg export",
                      description="Export a model bundle as ONNX (QGIS Deepness, onnxruntime), a TensorFlow "
                                  "SavedModel, or a STAC Machine Learning Model item.")
    p.add_argument("bundle", metavar="BUNDLE", help="model bundle folder (model.keras + geoseg.json)")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="what to write (default onnx)")
    p.add_argument("--out", metavar="PATH",
                   help="output file or folder (default: next to the bundle: BUNDLE.onnx, BUNDLE_savedmodel, "
                        "BUNDLE.stac.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--resolution", type=float, metavar="CM",
                   help="onnx: ground resolution in cm per pixel for QGIS Deepness (default: from the training "
                        "scenes when the bundle's dataset is readable and in metres, else left out)")
    p.add_argument("--opset", type=int, metavar="N", help="onnx: opset version (default: the converter's)")
    add_common_options(p, out=False, resume=False)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from geoseg.io.atomic import check_writable
    from geoseg.io.bundle import load_bundle

    bundle = load_bundle(args.bundle, load_model=False)
    if bundle.is_onnx:
        raise InvalidParameterError(f"{args.bundle} is already an ONNX file; export reads a bundle folder")
    if args.resolution is not None and args.resolution <= 0:
        raise InvalidParameterError(f"--resolution must be > 0 (cm per pixel), got {args.resolution}")
    out = Path(args.out) if args.out else Path(str(bundle.directory).rstrip("/") + SUFFIX[args.format])
    check_writable(out, folder=args.format == "savedmodel")  # before the model is loaded and converted
    if args.format == "onnx":
        from geoseg.export.onnx import export_onnx
        from geoseg.export.resolution import training_resolution_cm

        resolution = args.resolution if args.resolution is not None else training_resolution_cm(bundle)
        result = export_onnx(bundle, out, resolution_cm=resolution, overwrite=args.overwrite, opset=args.opset)
        detail = (f"input {result['input_shape']} (N, C, H, W), "
                  f"{'dynamic' if result['dynamic_spatial'] else 'fixed'} height/width, "
                  f"max |ONNX - Keras| {result['max_abs_diff']:.1e}")
    elif args.format == "savedmodel":
        from geoseg.export.savedmodel import export_savedmodel

        result = export_savedmodel(bundle, out, overwrite=args.overwrite)
        detail = (f"signature serving_default, {'dynamic' if result['dynamic_spatial'] else 'fixed'} height/width, "
                  f"max |SavedModel - Keras| {result['max_abs_diff']:.1e}")
    else:
        from geoseg.export.stac import export_stac

        result = export_stac(bundle, out, overwrite=args.overwrite)
        detail = "STAC Item, MLM extension v1.5.2"
    if not args.quiet:
        print(f"{out} ({detail})", file=sys.stderr)
    return 0


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
