"""``python -m geoseg.quicklook SCENE --labels TRUTH --pred PRED --out picture.png``: a quick-look PNG.

Thin CLI over :func:`geoseg.apps.quicklook.quicklook`: the scene (percentile stretch of the
chosen bands), the ground truth and the prediction side by side with a legend of class names,
from decimated reads (overviews when the rasters have them), so any scene size is quick.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geoseg.cli.common import CommandParser, add_common_options, make_main, require
from geoseg.errors import InvalidParameterError, UsageError
from geoseg.io.bands import parse_band_spec


def parse_stretch(text: str | list[float] | None) -> tuple[float, float]:
    """``"2,98"`` (or a YAML list) -> ``(2.0, 98.0)``."""
    if text is None:
        return (2.0, 98.0)
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    try:
        low, high = (float(v) for v in items)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two percentiles LOW,HIGH (e.g. 2,98), got {text!r}") from None
    return (low, high)


def build_parser() -> CommandParser:
    p = CommandParser(
        prog="geoseg quicklook",
        description="Draw a scene, its ground truth and a prediction side by side in a PNG, with a legend of "
                    "class names. Reads decimated windows (overviews when present): any scene size.")
    p.add_argument("scene", nargs="?", metavar="SCENE", help="scene raster (file or GDAL name/URL); optional")
    p.add_argument("--labels", metavar="TRUTH", help="ground-truth class raster")
    p.add_argument("--pred", metavar="LABEL", help="predicted label raster (e.g. OUT/scene_label.tif)")
    p.add_argument("--out", metavar="PNG", help="output PNG (required)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing PNG")
    p.add_argument("--bands", type=parse_band_spec, metavar="4,3,2|red,green,blue",
                   help="scene bands shown: 3 (RGB) or 1 (grey), by number or name (default: red, green, blue "
                        "when the scene names them, else 1,2,3)")
    p.add_argument("--stretch", type=parse_stretch, default=(2.0, 98.0), metavar="LOW,HIGH",
                   help="percentiles of each band's valid pixels mapped to black and white (default 2,98)")
    p.add_argument("--classes", metavar="FILE",
                   help="class names and colours: palette file, bundle geoseg.json or dataset.json "
                        "(default: the label raster's GEOSEG_CLASSES tag)")
    p.add_argument("--max-side", type=int, default=768, metavar="PX",
                   help="longest side of each raster read, in pixels (default 768)")
    add_common_options(p, out=False, resume=False)
    return p


def run(args: argparse.Namespace) -> int:
    from geoseg.apps.quicklook import quicklook
    from geoseg.io.atomic import check_output, check_writable

    require(args.out, "--out PNG")
    if not (args.scene or args.labels or args.pred):
        raise UsageError("give a SCENE, --labels or --pred to draw")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise InvalidParameterError(f"--out {out}: expected a .png file")
    if args.max_side < 16:
        raise InvalidParameterError(f"--max-side must be >= 16 px, got {args.max_side}")
    check_output(out, overwrite=args.overwrite)
    check_writable(out, folder=False)
    png = quicklook(args.scene, args.labels, args.pred, out, classes=args.classes, max_side=args.max_side,
                    bands=args.bands, stretch=tuple(args.stretch))
    if not args.quiet:
        print(f"quick-look -> {png}")
    return 0


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
