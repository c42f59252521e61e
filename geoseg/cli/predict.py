"""``python -m geoseg.predict --model BUNDLE SCENE [SCENE ...] --out DIR``: predict whole scenes.

Writes ``<stem>_label.tif`` (uint8 classes, nodata 255, color table) and ``<stem>_prob.tif``
(one band per class; ONE band, the foreground probability, for a binary model with one sigmoid
output, whose label is ``p >= --threshold``) for each scene; see :mod:`geoseg.inference`.

Scenes whose dtype or value range is far from the training data recorded in the bundle are
refused (:mod:`geoseg.inference.checks`); ``--allow-input-mismatch`` predicts them with a warning.

``--resume`` keeps every scene whose outputs are both complete and predicts the others from
the start (a killed run leaves only temporary files for its unfinished scene; they are removed).
"""

from __future__ import annotations

import argparse
import logging
import sys

from geoseg.cli.common import CommandParser, add_common_options, make_main, require
from geoseg.io.stac import parse_assets
from geoseg.runtime.tensorflow import PRECISIONS

log = logging.getLogger("geoseg.predict")


def build_parser() -> CommandParser:
    p = CommandParser(
        prog="geoseg predict",
        description="Predict whole scenes with a model bundle into georeferenced label and probability rasters.",
    )
    p.add_argument("scenes", nargs="*", metavar="SCENE",
                   help="scene rasters (files, folders or globs) or video files (.mp4, .avi, .mov, ...: "
                        "predicted frame by frame into OUT/<stem>_overlay.mp4; extra 'video')")
    p.add_argument("--assets", type=parse_assets, metavar="red,green,blue,nir",
                   help="STAC item scenes (JSON): assets stacked as bands, by asset key or eo:bands common name")
    p.add_argument("--model", metavar="BUNDLE_DIR", help="model bundle folder (model.keras + geoseg.json), or a "
                   "MODEL.onnx written by 'geoseg export' (run by onnxruntime, without TensorFlow)")
    p.add_argument("--mode", choices=("stride", "per_image"), default="stride",
                   help="stride: sliding windows blended (default); per_image: resize the scene to one tile")
    p.add_argument("--stride", type=int, metavar="N", help="window step in pixels (default: the bundle's, e.g. tile/2)")
    p.add_argument("--blend", choices=("mean", "spline", "gaussian"), default="mean",
                   help="weights of overlapping windows (default mean)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="windows per model call (default: 8 on CPU, from free memory on a GPU)")
    p.add_argument("--tta", action="store_true", help="average the 8 flips/rotations of each window")
    p.add_argument("--prob-dtype", choices=("uint8", "float32"), default="uint8",
                   help="probability raster type: uint8 = p*255 with scale metadata (default), float32 = exact")
    p.add_argument("--no-prob", action="store_true", help="write only the label raster")
    p.add_argument("--cog", action="store_true", help="write Cloud-Optimized GeoTIFFs with overviews")
    p.add_argument("--compress", choices=("deflate", "zstd", "lzw", "none"), default="deflate",
                   help="output compression (default deflate)")
    p.add_argument("--threshold", type=float, default=None, metavar="P",
                   help="binary (one sigmoid output) models: label = 1 where p >= P (default 0.5)")
    p.add_argument("--accumulate", choices=("auto", "host", "device"), default="auto",
                   help="where windows are blended and encoded: device = on the model's device, only encoded "
                        "rows copied back; auto (default) = device where a GPU is visible, else host. Same outputs")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="mixed: float16 compute on a GPU (bfloat16 on CPU: faster only on CPUs with "
                        "bfloat16 instructions); outputs differ slightly")
    p.add_argument("--xla", action="store_true", help="compile the model with XLA (off by default: slower on CPU)")
    p.add_argument("--allow-input-mismatch", action="store_true",
                   help="predict scenes whose dtype or value range differs from the training data (warn only)")
    g = p.add_argument_group("video (extra 'video': pip install 'geoseg[video]')")
    g.add_argument("--camera", type=int, metavar="N",
                   help="predict camera N (ffmpeg capture device <videoN>) into OUT/cameraN_overlay.mp4")
    g.add_argument("--label-video", action="store_true", help="also write OUT/<stem>_label.mp4 (class colours)")
    g.add_argument("--alpha", type=float, default=0.5, metavar="A",
                   help="weight of the class colour in the overlay video (default 0.5)")
    g.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames (a camera otherwise runs "
                   "until it stops or Ctrl-C)")
    add_common_options(p, out=True, workers=True, resume=True)
    return p


def run(args: argparse.Namespace) -> int:
    from geoseg.errors import UsageError
    from geoseg.inference import predict_scenes
    from geoseg.inference.api import predict_videos
    from geoseg.io.atomic import check_writable
    from geoseg.io.bundle import load_bundle
    from geoseg.io.raster import expand_inputs
    from geoseg.io.stac import resolve_stac_items
    from geoseg.io.video import is_video

    require(args.model, "--model BUNDLE_DIR")
    require(args.out, "--out DIR")
    check_writable(args.out)  # before the bundle and the scenes are read
    items = list(args.scenes or [])
    camera = getattr(args, "camera", None)
    if not items and camera is None:
        raise UsageError("give SCENE files or --camera N")
    bundle = load_bundle(args.model, load_model=False)
    options = dict(mode=args.mode, stride=args.stride, blend=args.blend, batch_size=args.batch_size, tta=args.tta,
                   prob_dtype=args.prob_dtype, write_prob=not args.no_prob, cog=args.cog, compress=args.compress,
                   overwrite=args.overwrite, resume=args.resume, progress=not args.quiet, threshold=args.threshold,
                   allow_input_mismatch=args.allow_input_mismatch, accumulate=args.accumulate,
                   precision=args.precision, xla=args.xla)
    videos: list = [s for s in items if is_video(s)] + ([camera] if camera is not None else [])
    results = predict_videos(bundle, videos, args.out, label_video=args.label_video, alpha=args.alpha,
                             max_frames=args.max_frames, **options) if videos else []
    rasters = [s for s in items if not is_video(s)]
    if rasters:
        scenes = expand_inputs(resolve_stac_items(rasters, args.assets))
        results += predict_scenes(bundle, scenes, args.out, workers=args.workers, scheduler=args.scheduler,
                                  **options)
    for res in results:
        if res.skipped:
            log.info("kept existing outputs of %s (--resume)", res.scene)
        elif not args.quiet:
            outputs = ", ".join(str(p) for p in (res.label, res.prob) if p is not None)
            print(f"{res.scene.name}: {outputs} ({res.seconds:.1f} s)", file=sys.stderr)
    return 0


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
