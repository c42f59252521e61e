"""``python -m geoseg.labels``: color2index / index2color (:mod:`geoseg.convert.colors`) from the shell."""

from __future__ import annotations

import argparse
import sys

from geoseg.cli.common import CommandParser, add_common_options, make_main
from geoseg.convert.colors import color2index, index2color
from geoseg.io.atomic import check_writable


def build_parser() -> CommandParser:
    p = CommandParser(prog="geoseg labels",
                      description="Convert color-coded label rasters to class indices and back.")
    sub = p.add_subparsers(dest="action", required=True, metavar="{color2index,index2color}")
    c2i = sub.add_parser("color2index", help="RGB label raster -> uint8 class raster (needs --palette)")
    c2i.add_argument("input", metavar="RGB.tif", help="color-coded label raster (RGB or RGBA)")
    c2i.add_argument("--palette", required=True, metavar="FILE|NAME",
                     help="palette: JSON or index,name,r,g,b lines, or voc, cityscapes, potsdam, vaihingen")
    i2c = sub.add_parser("index2color", help="class raster -> RGBA raster for viewing")
    i2c.add_argument("input", metavar="LABEL.tif", help="single-band class raster")
    i2c.add_argument("--palette", metavar="FILE|NAME",
                     help="palette (default: the raster's GEOSEG_CLASSES tag, else its color table)")
    for sp in (c2i, i2c):
        sp.add_argument("--out", required=True, metavar="OUT.tif", help="output GeoTIFF")
        sp.add_argument("--overwrite", action="store_true", help="replace an existing output")
        add_common_options(sp, out=False, resume=False)
    return p


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, folder=False)
    if args.action == "color2index":
        out = color2index(args.input, args.palette, args.out, overwrite=args.overwrite)
    else:
        out = index2color(args.input, args.out, palette=args.palette, overwrite=args.overwrite)
    if not args.quiet:
        print(out)
    return 0


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
