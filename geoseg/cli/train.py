"""``python -m geoseg.train DATASET_DIR --out BUNDLE_DIR [options]``: train a model, write a bundle.

Options and YAML keys (``--config``) share names with :class:`geoseg.training.TrainConfig` fields.
``--resume`` continues a run exactly (see :mod:`geoseg.training.resume`) and refuses changed options.
"""

from __future__ import annotations

import argparse
import sys

from geoseg.cli.common import CommandParser, add_common_options, make_main, require
from geoseg.io.atomic import check_writable
from geoseg.training.config import (
    JIT_COMPILE,
    MONITORS,
    NORMALIZATIONS,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TrainConfig,
    default_value,
)


def build_parser() -> CommandParser:
    d = default_value
    p = CommandParser(prog="geoseg train", description=__doc__.splitlines()[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("dataset", metavar="DATASET_DIR", help="tiled dataset folder (index.csv, dataset.json)")
    add_common_options(p)
    m = p.add_argument_group("model")
    m.add_argument("--model", default=d("model"), help="model zoo name (see geoseg.models.list_models())")
    m.add_argument("--backbone", default=None, help="encoder name for models that take one")
    m.add_argument("--weights", default=None, metavar="imagenet|PATH",
                   help="'imagenet', a .keras / .weights.h5 file, or a bundle folder to start from")
    m.add_argument("--model-args", default=None, metavar="JSON|k=v,...",
                   help="extra builder arguments, e.g. 'depth=3' or '{\"depth\": 3}'")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=d("epochs"), help="ignored with --time-budget")
    t.add_argument("--time-budget", default=None, metavar="DURATION",
                   help="wall-clock budget of the run, e.g. 600, 90s, 10m, 1.5h: the epochs and the LR schedule "
                        "are fitted to it and the run ends within it")
    t.add_argument("--batch-size", type=int, default=d("batch_size"))
    t.add_argument("--lr", type=float, default=d("lr"), help="peak learning rate")
    t.add_argument("--loss", default=d("loss"),
                   help="ce, bce, dice, focal, lovasz, jaccard or a sum: 'ce+dice', '0.5*ce+dice'")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=d("optimizer"))
    t.add_argument("--momentum", type=float, default=d("momentum"), help="sgd/rmsprop momentum")
    t.add_argument("--weight-decay", type=float, default=d("weight_decay"), help="adamw weight decay")
    t.add_argument("--schedule", choices=SCHEDULES, default=d("schedule"))
    t.add_argument("--warmup-epochs", type=float, default=d("warmup_epochs"))
    t.add_argument("--class-weights", default=d("class_weights"), metavar="auto|median|none|w0,w1,...")
    t.add_argument("--normalization", choices=NORMALIZATIONS, default=d("normalization"),
                   help="meanstd or percentile (p2/p98 min-max) from dataset.json")
    t.add_argument("--ignore-index", type=int, default=d("ignore_index"),
                   help="label value left out of loss and metrics")
    t.add_argument("--augment", action=argparse.BooleanOptionalAction, default=d("augment"),
                   help="dihedral flips/rotations and per-band brightness/contrast jitter")
    t.add_argument("--scale-crop", action=argparse.BooleanOptionalAction, default=d("scale_crop"),
                   help="random zoom-in crops (scale 1 to 1.5)")
    t.add_argument("--val-from", choices=("train",), default=None,
                   help="hold out a spatial block of the training patches when the dataset has no val split")
    t.add_argument("--val-fraction", type=float, default=d("val_fraction"))
    t.add_argument("--train-list", metavar="FILE", default=None,
                   help="patch ids (one a line, e.g. DATASET/train.txt) that are the training patches")
    t.add_argument("--val-list", metavar="FILE", default=None,
                   help="patch ids (one a line, e.g. DATASET/val.txt) that are the validation patches")
    t.add_argument("--early-stopping-patience", type=int, default=d("early_stopping_patience"),
                   help="epochs without a new best of the smoothed monitor, counted after half the planned "
                        "epochs; 0 = off")
    t.add_argument("--balance", type=float, default=d("balance"), metavar="SHARE",
                   help="share of training draws from patches holding a rare class (0 = plain shuffling)")
    t.add_argument("--monitor", choices=MONITORS, default=d("monitor"))
    t.add_argument("--precision", choices=PRECISIONS, default=d("precision"),
                   help="mixed: float16 compute with float32 variables and loss scaling (GPU only; without a GPU "
                        "the run warns and trains in float32)")
    t.add_argument("--mixed-precision", dest="precision", action="store_const", const="mixed",
                   default=argparse.SUPPRESS, help="same as --precision mixed")
    t.add_argument("--jit-compile", choices=JIT_COMPILE, default=d("jit_compile"),
                   help="XLA compilation of the training step; auto = Keras' choice (off on CPU and under the "
                        "GPU input strategy)")
    t.add_argument("--seed", type=int, default=d("seed"))
    t.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass over the training patches")
    t.add_argument("--cache", action=argparse.BooleanOptionalAction, default=d("cache"),
                   help="read patches once into an .npy memmap shard per split")
    t.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=d("tensorboard"),
                   help="TensorBoard logs in OUT/logs")
    t.add_argument("--debug-samples", type=int, default=d("debug_samples"), metavar="N",
                   help="per epoch, write OUT/debug/epoch_NNN.png: N of the epoch's training samples as fed "
                        "(bands 1-3, label, the model's prediction); 0 = off")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {k: v for k, v in vars(args).items() if k not in ("config",)}
    return TrainConfig.from_dict(values, source="options")


def run(args: argparse.Namespace) -> int:
    require(args.out, "--out BUNDLE_DIR")
    check_writable(args.out)  # before TensorFlow is imported
    cfg = config_from_args(args)
    from geoseg.training.loop import fit

    result = fit(cfg)  # checks everything before it imports TensorFlow (quietly)
    if not cfg.quiet:
        m = result.metrics
        why = {"time_budget": "stopped at the time budget", "early_stopping": "stopped early"}.get(
            result.stopped_by, "")
        print(f"bundle: {result.bundle}  epochs: {result.epochs}{f' ({why})' if why else ''}  "
              f"best epoch: {result.best_epoch}  val mIoU: {m['miou']:.4f}  OA: {m['oa']:.4f}  F1: {m['f1']:.4f}  "
              f"{result.seconds:.0f} s")
    return 0


main = make_main(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
