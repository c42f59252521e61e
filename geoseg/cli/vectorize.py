"""``python -m geoseg.vectorize LABEL.tif --out POLYGONS.gpkg``: class raster -> polygons.

Thin CLI over :func:`geoseg.convert.polygons.vectorize` (block-wise, seams merged, bounded memory).
Areas are square metres in every CRS; GeoJSON is written in EPSG:4326 (RFC 7946); ``--format
parquet`` writes GeoParquet (needs the ``parquet`` extra: pyarrow).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geoseg.cli.common import CommandParser, add_common_options, make_main, parse_int_list
from geoseg.errors import InvalidParameterError

#: --format -> (OGR driver name, file suffix).
FORMATS = {"gpkg": ("GPKG", ".gpkg"), "geojson": ("GeoJSON", ".geojson"), "fgb": ("FlatGeobuf", ".fgb"),
           "parquet": ("Parquet", ".parquet")}


def build_parser() -> CommandParser:
    p = CommandParser(
        prog="geoseg vectorize",
        description="Turn a label raster into polygons (class_id, class_name, area in square metres). "
                    "Background (0) and nodata are skipped unless --classes chooses them.",
    )
    p.add_argument("labels", metavar="LABEL", help="single-band class raster (e.g. scene_label.tif)")
    p.add_argument("--out", metavar="FILE", help="output vector file (default: LABEL with .gpkg)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--format", choices=list(FORMATS),
                   help="output format (default: from the --out suffix, else gpkg); geojson is written in "
                        "EPSG:4326 (RFC 7946), parquet is GeoParquet (needs pyarrow: pip install 'geoseg[parquet]')")
    p.add_argument("--driver", choices=[d for d, _ in FORMATS.values()],
                   help="OGR driver name, the same choice as --format")
    p.add_argument("--classes", type=parse_int_list, metavar="0,1,2",
                   help="class values to polygonize (default: all but 0 and nodata)")
    p.add_argument("--simplify", type=float, default=0.0, metavar="TOLERANCE",
                   help="topology-preserving simplification tolerance in CRS units (default 0: pixel edges)")
    p.add_argument("--min-area", type=float, default=0.0, metavar="AREA",
                   help="drop polygons smaller than AREA square metres, whatever the CRS (default 0)")
    p.add_argument("--palette", metavar="FILE",
                   help="palette file for class names (default: the raster's GEOSEG_CLASSES tag, else class_<i>)")
    p.add_argument("--block-size", type=int, default=1024, metavar="PX",
                   help="block side in pixels; memory holds one block and one strip of polygons (default 1024)")
    add_common_options(p, out=False, resume=False)
    return p


def run(args: argparse.Namespace) -> int:
    from geoseg.convert.polygons import vectorize
    from geoseg.io.atomic import check_writable

    by_format = FORMATS[args.format][0] if args.format else None
    if by_format and args.driver and by_format != args.driver:
        raise InvalidParameterError(f"--format {args.format} and --driver {args.driver} disagree; give one")
    driver = by_format or args.driver
    suffix = next(s for d, s in FORMATS.values() if d == (driver or "GPKG"))
    out = Path(args.out) if args.out else Path(args.labels).with_suffix(suffix)
    check_writable(out, folder=False)
    n = vectorize(args.labels, out, classes=args.classes, simplify=args.simplify, min_area=args.min_area,
                  block_size=args.block_size, overwrite=args.overwrite, palette=args.palette, driver=driver)
    if not args.quiet:
        print(f"{n} polygon(s) -> {out}")
    return 0


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
