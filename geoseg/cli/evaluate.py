"""``python -m geoseg.evaluate PRED [PRED ...] --labels LABEL [LABEL ...] --num-classes C``

Compares prediction class rasters with label rasters or vector files (files or folders; folders
are paired by file name), streaming window by window, and prints per-class precision, recall,
F1, IoU and the summary metrics. ``--report DIR`` also writes report.json, report.csv and
confusion.png.
"""

from __future__ import annotations

import argparse
import sys

from geoseg.cli.common import add_common_options, make_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
    p.add_argument("--classes", metavar="FILE|NAMES",
                   help="class names: a palette file (JSON or index,name,r,g,b lines) or 'name0,name1,...'")
    p.add_argument("--mode", choices=("global", "per_image"), default="global",
                   help="global: one confusion matrix over all pixels; per_image: metrics per pair, then averaged")
    p.add_argument("--ignore-index", type=int, default=255, metavar="V",
                   help="label value left out (and prediction nodata) (default: 255)")
    p.add_argument("--ignore-background", action="store_true",
                   help="leave out pixels whose truth is class 0, and class 0 from the means")
    vec = p.add_mutually_exclusive_group()
    vec.add_argument("--label-field", metavar="F",
                     help="vector labels: attribute holding class values (default: class_id, class or label)")
    vec.add_argument("--burn-value", type=int, metavar="V", help="vector labels: class value of every polygon")
    p.add_argument("--vector-fill", type=int, default=0, metavar="V",
                   help="vector labels: class of pixels outside every polygon (default 0; 255 = unlabeled)")
    p.add_argument("--report", metavar="DIR", help="write report.json, report.csv and confusion.png here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    add_common_options(p, out=False, resume=False)
    return p


def run(args: argparse.Namespace) -> int:
    from geoseg.errors import InvalidParameterError
    from geoseg.evaluation import evaluate, format_table
    from geoseg.evaluation.report import check_report, write_report

    if not args.labels:
        raise InvalidParameterError("--labels is required (label rasters, vector files or folders)")
    if args.label_field is not None and args.burn_value is not None:  # both may come from --config
        raise InvalidParameterError("--label-field and --burn-value exclude each other; give one")
    if args.report:
        check_report(args.report, args.overwrite)  # fail before reading anything
    result = evaluate(
        args.predictions, args.labels, num_classes=args.num_classes, mode=args.mode,
        ignore_index=args.ignore_index, ignore_background=args.ignore_background, classes=args.classes,
        label_field=args.label_field, burn_value=args.burn_value, vector_fill=args.vector_fill,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    print(format_table(result))
    if args.report:
        paths = write_report(result, args.report, overwrite=args.overwrite)
        print(f"\nreport: {', '.join(str(p) for p in paths.values())}")
    return 0


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
