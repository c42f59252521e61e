"""``python -m geoseg.tile``: cut scenes and labels into georeferenced training patches.

Example::

    python -m geoseg.tile scene.tif --labels labels.gpkg --label-field class_id --out dataset \\
        --mode stride --size 256 --stride 128 --val-fraction 0.2 --split spatial --workers 2

The dataset layout (images/, labels/, index.csv, footprints.gpkg, dataset.json) is described
in docs/design.md, "Dataset folder". The Python API is :func:`geoseg.tiling.tiler.run_tiling`.
"""

from __future__ import annotations

import argparse
import sys

from geoseg.cli.common import CommandParser, add_common_options, make_main, require
from geoseg.io.bands import parse_band_spec
from geoseg.io.stac import parse_assets
from geoseg.tiling.config import POOLS


def build_parser() -> CommandParser:
    p = CommandParser(
        prog="geoseg tile",
        description="Cut scenes (and their labels) into georeferenced patches with an index and dataset.json.")
    p.add_argument("scenes", nargs="+", metavar="SCENE", help="scene rasters: files, folders or globs")
    p.add_argument("--labels", nargs="+", metavar="LABELS", default=[],
                   help="class raster, color raster (+ --palette) or vector file per scene, same order; "
                        "folders/globs pair with scenes by file stem; one vector file may serve all scenes")
    p.add_argument("--assets", type=parse_assets, metavar="red,green,blue,nir",
                   help="STAC item scenes (JSON): assets stacked as bands, by asset key or eo:bands common name")
    add_common_options(p, workers=True)
    g = p.add_argument_group("windows (pixels)")
    g.add_argument("--mode", choices=("stride", "random"), default="stride", help="grid of windows or random draws")
    g.add_argument("--size", type=int, default=256, help="patch side in pixels (default 256)")
    g.add_argument("--stride", type=int, help="step between windows in pixels (stride mode; default = size)")
    g.add_argument("--count", type=int, default=100, help="windows per scene in random mode (default 100)")
    g.add_argument("--seed", type=int, default=0, help="seed for random windows and splits (default 0)")
    g.add_argument("--pad", action="store_true", help="pad scenes smaller than --size with nodata")
    g.add_argument("--allow-gaps", action="store_true", help="accept --stride > --size (pixels skipped)")
    g = p.add_argument_group("labels and classes")
    g.add_argument("--classes", metavar="FILE|NAME|NAMES|auto",
                   help="palette file (JSON or index,name,r,g,b lines), a named palette (voc, cityscapes, "
                        "potsdam, vaihingen) or comma-separated class names "
                        "(text attributes match them case-insensitively); 'auto': background + the sorted "
                        "distinct texts of the label attribute")
    g.add_argument("--palette", metavar="FILE|NAME",
                   help="palette of color-coded label rasters (color -> class): a file or a named palette")
    g.add_argument("--label-field", metavar="NAME", help="vector attribute holding class indices")
    g.add_argument("--burn-value", type=int, metavar="N", help="class index burned for every polygon")
    g.add_argument("--ignore-value", type=float, default=255, metavar="V",
                   help="label value (raster pixel or vector attribute) meaning 'ignore' (255 in patches), "
                        "never a class (default 255)")
    g.add_argument("--labels-crs", metavar="CRS",
                   help="CRS of vector label coordinates (e.g. EPSG:32633) when the file has none or a wrong one "
                        "(a GeoJSON without 'crs' member is read as lon/lat)")
    g = p.add_argument_group("filters and split")
    g.add_argument("--aoi", metavar="FILE", help="keep windows lying inside these polygons")
    g.add_argument("--max-nodata", type=float, default=1.0, help="largest nodata fraction kept (default 1.0)")
    g.add_argument("--min-labeled", type=float, default=0.0,
                   help="smallest fraction of non-background label pixels kept (default 0.0)")
    g.add_argument("--bands", type=parse_band_spec, metavar="1,2,3|red,green,nir",
                   help="bands to keep: 1-based numbers or names (band descriptions, then colour "
                        "interpretation); default all but alpha bands")
    g.add_argument("--val-fraction", type=float, default=0.2, help="share of windows for validation (default 0.2)")
    g.add_argument("--split", choices=("random", "spatial", "lists"), default=None,
                   help="random windows, or one spatial block per scene (grid chosen from the scene size, "
                        "--size and --val-fraction) without train/val overlap, or 'lists': whole photos by a "
                        "VOC root's ImageSets/Segmentation/train.txt|val.txt (default: lists for such a root, "
                        "else random)")
    g.add_argument("--block-size", type=int, metavar="PX",
                   help="spatial split: draw square blocks of this side in pixels instead of the automatic grid")
    g.add_argument("--val-scenes", metavar="PATTERN",
                   help="hold out whole scenes for validation: file-name globs, comma-separated (e.g. 'tile_7*,b.tif')")
    g.add_argument("--balance", type=float, metavar="SHARE",
                   help="random mode: share of windows holding a non-background label (e.g. 0.5)")
    g = p.add_argument_group("output")
    g.add_argument("--format", choices=("tif", "npy"), default="tif", help="patch file format (default tif)")
    g.add_argument("--compress", choices=("none", "deflate", "zstd", "lzw"), default="none",
                   help="GeoTIFF patch compression (default none)")
    g.add_argument("--batch-size", type=int, metavar="N", help="windows per task (default: automatic)")
    p.add_argument("--pool", choices=POOLS, default="auto",
                   help="how --workers N run here: threads of this command, or worker processes (0.3-0.5 s to "
                        "start; faster for many small patches); auto: processes for patches of at most 256 px "
                        "and at least 256 windows per worker, else threads (default auto)")
    return p


def config_from_args(args: argparse.Namespace):
    """Build the validated :class:`~geoseg.tiling.tiler.TileConfig` from parsed options."""
    from geoseg.tiling.tiler import TileConfig, validate_config

    require(args.out, "--out DATASET")
    from geoseg.io.stac import resolve_stac_items

    scenes = args.scenes if isinstance(args.scenes, list) else [args.scenes]
    scenes = resolve_stac_items(scenes, getattr(args, "assets", None))
    labels = args.labels if isinstance(args.labels, list) else [args.labels]
    bands = parse_band_spec(args.bands)
    split, classes, palette = _voc_defaults(scenes, args)
    cfg = TileConfig(
        scenes=tuple(map(str, scenes)), out=str(args.out), labels=tuple(map(str, labels or [])), mode=args.mode,
        size=args.size, stride=args.stride, count=args.count, seed=args.seed, classes=classes,
        palette=palette, label_field=args.label_field, burn_value=args.burn_value, aoi=args.aoi,
        ignore_value=args.ignore_value, labels_crs=args.labels_crs,
        max_nodata=args.max_nodata, min_labeled=args.min_labeled, bands=tuple(bands) if bands else None,
        val_fraction=args.val_fraction, split=split, block_size=args.block_size, pad=args.pad,
        val_scenes=args.val_scenes, balance=args.balance,
        allow_gaps=args.allow_gaps, format=args.format, compress=args.compress, workers=args.workers,
        pool=args.pool, scheduler=args.scheduler, batch_size=args.batch_size, overwrite=args.overwrite,
        resume=args.resume, quiet=args.quiet)
    validate_config(cfg)
    return cfg


def _voc_defaults(scenes: list, args: argparse.Namespace) -> tuple[str, str | None, str | None]:
    """``(split, classes, palette)``: a single VOC root (geoseg.io.voc) defaults to its split lists
    (when present), the VOC classes and, for RGB label PNGs, the VOC palette; otherwise the options."""
    import logging

    from geoseg.io.voc import is_voc_root, read_voc

    split, classes, palette = args.split, args.classes, args.palette
    if len(scenes) != 1 or not is_voc_root(scenes[0]) or args.labels:
        return split or "random", classes, palette
    voc = read_voc(scenes[0])
    if split is None:
        split = "lists" if voc.has_lists else "random"
    if classes is None and palette is None:
        from geoseg.io.photos import read_image

        classes = "voc"
        if read_image(voc.labels[0]).shape[0] >= 3:  # colour-coded labels, not paletted indices
            classes, palette = None, "voc"
    logging.getLogger("geoseg.tiling").info("VOC root %s: --split %s, --classes %s, --palette %s",
                                            scenes[0], split, classes, palette)
    return split, classes, palette


def run(args: argparse.Namespace) -> int:
    from geoseg.tiling.tiler import run_tiling

    result = run_tiling(config_from_args(args))
    if not args.quiet:
        print(result.summary())
    _quick_exit()
    return 0


def _quick_exit() -> None:
    """Skip the interpreter's final garbage collection of this process's objects at exit.

    Every output is written and closed when the command returns; the full collection Python runs
    at exit then only frees memory, and with dask.distributed imported (``--scheduler``) it takes
    about 0.1 s, a tenth of a small run's serial part. ``gc.freeze()`` at exit moves the objects
    out of its reach (the memory goes back with the process); in a process that keeps running
    (tests, notebooks) nothing changes before exit.
    """
    import atexit
    import gc

    atexit.unregister(gc.freeze)  # once, however many runs this process makes
    atexit.register(gc.freeze)


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
