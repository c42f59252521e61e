"""``python -m geoseg.sample OUT_DIR``: write the synthetic sample scene (:mod:`geoseg.apps.sample`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from geoseg.apps.sample import SAMPLE_DTYPES, check_sample_options, make_sample
from geoseg.cli.common import CommandParser, add_common_options, make_main
from geoseg.io.atomic import check_writable


def build_parser() -> CommandParser:
    p = CommandParser(
        prog="geoseg sample",
        description="Write the synthetic sample scene (scene.tif), its class raster (labels.tif), "
                    "its polygons (labels.gpkg) and class map (classes.json) into OUT_DIR.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder")
    p.add_argument("--size", type=int, default=2048, help="width and height in pixels (default 2048)")
    p.add_argument("--bands", type=int, default=4, help="bands: 4 = red, green, blue, nir; more adds extras")
    p.add_argument("--dtype", choices=SAMPLE_DTYPES, default="uint8", help="pixel type (default uint8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--crs", default="EPSG:32633", help="projected CRS (default EPSG:32633, UTM 33N)")
    p.add_argument("--pixel-size", type=float, default=0.5, help="pixel size in CRS units (default 0.5 m)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_common_options(p, out=False, resume=False)
    return p


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`~geoseg.apps.sample.make_sample`, checked without touching a file.

    Raises:
        InvalidParameterError: see :func:`~geoseg.apps.sample.check_sample_options`.
    """
    kwargs = {"out_dir": args.out_dir, "size": args.size, "bands": args.bands, "dtype": args.dtype,
              "seed": args.seed, "crs": args.crs, "pixel_size": args.pixel_size, "overwrite": args.overwrite}
    check_sample_options(args.size, args.bands, args.dtype, args.crs, args.pixel_size)
    check_writable(args.out_dir, option="OUT_DIR")
    return kwargs


def run(args: argparse.Namespace) -> int:
    files = make_sample(**config_from_args(args))
    if not args.quiet:
        for p in (files.scene, files.labels, files.polygons, files.classes):
            print(p)
    return 0


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
