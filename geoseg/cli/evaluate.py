"""``python -m geoseg.evaluate PRED [PRED ...] --labels LABEL [LABEL ...] --num-classes C``

Compares prediction class rasters with label rasters or vector files (files or folders; folders
are paired by file name), streaming window by window, and prints per-class precision, recall,
F1, IoU and the summary metrics. ``--report DIR`` also writes report.json, report.csv and
confusion.png. ``--aoi FILE[:LAYER]`` scores only the pixels inside polygons; ``--dataset DIR
--split val`` only the held-out windows of a tiled dataset.
"""

from __future__ import annotations

import argparse
import sys

from geoseg.cli.common import CommandParser, add_common_options, make_main, require


def build_parser() -> CommandParser:
    p = CommandParser(
        prog="geoseg evaluate",
        description="Compare predictions with labels: confusion matrix, precision, recall, F1, IoU, kappa.",
        epilog="Folders are paired by file name without _label/_pred/_prob suffixes, never by order. "
               "Labels on another grid or CRS are warped (nearest) onto the prediction grid.",
    )
    p.add_argument("predictions", nargs="+", metavar="PRED", help="prediction class rasters (files or folders)")
    p.add_argument("--labels", nargs="+", metavar="LABEL",
                   help="label rasters or vector files (files or folders), paired with PRED")
    p.add_argument("--num-classes", type=int, metavar="C",
                   help="number of classes (default: from --classes or the prediction's class tag)")
    p.add_argument("--classes", metavar="FILE|NAME|NAMES",
                   help="class names: a palette file (JSON or index,name,r,g,b lines), a named palette "
                        "(voc, cityscapes, potsdam, vaihingen) or 'name0,name1,...'")
    p.add_argument("--mode", choices=("global", "per_image"), default="global",
                   help="global: one confusion matrix over all pixels; per_image: metrics per pair, then averaged")
    p.add_argument("--ignore-index", "--ignore-value", type=int, default=255, metavar="V",
                   help="label value left out, in rasters and vector attributes (and prediction nodata) "
                        "(default: 255)")
    p.add_argument("--ignore-background", action="store_true",
                   help="leave out pixels whose truth is class 0, and class 0 from the means")
    vec = p.add_mutually_exclusive_group()
    vec.add_argument("--label-field", metavar="F",
                     help="vector labels: attribute holding class values (default: class_id, class or label)")
    vec.add_argument("--burn-value", type=int, metavar="V", help="vector labels: class value of every polygon")
    p.add_argument("--vector-fill", type=int, default=0, metavar="V",
                   help="vector labels: class of pixels outside every polygon (default 0; 255 = unlabeled)")
    p.add_argument("--labels-crs", metavar="CRS",
                   help="vector labels: CRS of their coordinates (e.g. EPSG:32633) when the file has none "
                        "or a wrong one (a GeoJSON without 'crs' member is read as lon/lat)")
    area = p.add_argument_group("area (score only part of the scene)")
    area.add_argument("--aoi", metavar="FILE[:LAYER]",
                      help="score only pixels whose centre lies inside these polygons (any CRS), "
                           "e.g. DATASET/split.gpkg:val")
    area.add_argument("--dataset", metavar="DIR",
                      help="score only the windows of --split in this tiled dataset (DIR/index.csv), per scene")
    area.add_argument("--split", default="val", metavar="NAME",
                      help="dataset split scored with --dataset (default: val, the held-out area)")
    p.add_argument("--report", metavar="DIR", help="write report.json, report.csv and confusion.png here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    add_common_options(p, out=False, resume=False)
    return p


def run(args: argparse.Namespace) -> int:
    from geoseg.errors import UsageError
    from geoseg.evaluation import evaluate, format_table
    from geoseg.evaluation.report import check_report, write_report
    from geoseg.io.atomic import check_writable

    require(args.labels, "--labels LABEL (label rasters, vector files or folders)")
    if args.label_field is not None and args.burn_value is not None:  # both may come from --config
        raise UsageError("--label-field and --burn-value exclude each other; give one")
    if args.aoi is not None and args.dataset is not None:
        raise UsageError("--aoi and --dataset exclude each other; give one")
    if args.report:
        check_writable(args.report, option="--report")  # fail before reading anything
        check_report(args.report, args.overwrite)
    result = evaluate(
        args.predictions, args.labels, num_classes=args.num_classes, mode=args.mode,
        ignore_index=args.ignore_index, ignore_background=args.ignore_background, classes=args.classes,
        label_field=args.label_field, burn_value=args.burn_value, vector_fill=args.vector_fill,
        progress=not args.quiet and sys.stderr.isatty(), aoi=args.aoi, dataset=args.dataset, split=args.split,
        labels_crs=args.labels_crs,
    )
    print(format_table(result))
    if args.report:
        paths = write_report(result, args.report, overwrite=args.overwrite)
        print(f"\nreport: {', '.join(str(p) for p in paths.values())}")
    return 0


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
