"""``python -m geoseg.vectorize LABEL.tif --out POLYGONS.gpkg``: class raster -> polygons.

Thin CLI over :func:`geoseg.convert.polygons.vectorize` (block-wise, seams merged, bounded memory).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geoseg.cli.common import CommandParser, add_common_options, make_main, parse_int_list


def build_parser() -> CommandParser:
    p = CommandParser(
        prog="geoseg vectorize",
        description="Turn a label raster into polygons (class_id, class_name, area). Background (0) and "
                    "nodata are skipped unless --classes chooses them.",
    )
    p.add_argument("labels", metavar="LABEL", help="single-band class raster (e.g. scene_label.tif)")
    p.add_argument("--out", metavar="FILE", help="output vector file (default: LABEL with .gpkg)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--driver", choices=["GPKG", "GeoJSON", "FlatGeobuf"],
                   help="output format (default: from the suffix; .gpkg, .geojson, .fgb)")
    p.add_argument("--classes", type=parse_int_list, metavar="0,1,2",
                   help="class values to polygonize (default: all but 0 and nodata)")
    p.add_argument("--simplify", type=float, default=0.0, metavar="TOLERANCE",
                   help="topology-preserving simplification tolerance in CRS units (default 0: pixel edges)")
    p.add_argument("--min-area", type=float, default=0.0, metavar="AREA",
                   help="drop polygons smaller than AREA, in CRS units squared (default 0)")
    p.add_argument("--palette", metavar="FILE",
                   help="palette file for class names (default: the raster's GEOSEG_CLASSES tag, else class_<i>)")
    p.add_argument("--block-size", type=int, default=1024, metavar="PX",
                   help="block side in pixels; memory holds one block and one strip of polygons (default 1024)")
    add_common_options(p, out=False, resume=False)
    return p


def run(args: argparse.Namespace) -> int:
    from geoseg.convert.polygons import vectorize

    suffix = {"GPKG": ".gpkg", "GeoJSON": ".geojson", "FlatGeobuf": ".fgb"}[args.driver or "GPKG"]
    out = Path(args.out) if args.out else Path(args.labels).with_suffix(suffix)
    n = vectorize(args.labels, out, classes=args.classes, simplify=args.simplify, min_area=args.min_area,
                  block_size=args.block_size, overwrite=args.overwrite, palette=args.palette, driver=args.driver)
    if not args.quiet:
        print(f"{n} polygon(s) -> {out}")
    return 0


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
