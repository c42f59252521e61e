"""Model zoo benchmark: parameters, FLOPs from the graph, forward time per tile on CPU (and GPU).

FLOPs come from ``tf.compat.v1.profiler`` on the traced forward graph (float operations of one
tile, batch 1: a multiply-add counts 2). Time is the median wall time of a forward pass at batch
``--batch`` divided by the batch size, after one warm-up call. The baseline ratio is against the
first model measured in the run (``unet`` when present). With a GPU visible, a second timing runs
under mixed precision (``mixed_float16``).

    python benchmarks/bench_models.py --quick
    python benchmarks/bench_models.py --models deeplabv3plus,unet --size 512 --bands 4 --batch 8 --reps 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def graph_flops(model, size: int, bands: int) -> float | None:
    """Float operations of one forward pass (batch 1) from the TF graph profiler, or None."""
    import tensorflow as tf

    try:
        fn = tf.function(lambda x: model(x, training=False))
        concrete = fn.get_concrete_function(tf.TensorSpec((1, size, size, bands), tf.float32))
        opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        info = tf.compat.v1.profiler.profile(graph=concrete.graph, options=opts)
        return float(info.total_float_ops)
    except Exception as exc:  # profiler missing or an op without a FLOP model
        print(f"  (flops unavailable: {str(exc).splitlines()[0][:80]})", file=sys.stderr)
        return None


def time_forward(model, x, reps: int) -> float:
    """Median seconds per tile of ``model(x)`` over ``reps`` calls after a warm-up."""
    import tensorflow as tf

    fn = tf.function(lambda t: model(t, training=False))
    fn(x).numpy()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / x.shape[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated subset of list_models()")
    parser.add_argument("--size", type=int, default=512, help="tile size in pixels")
    parser.add_argument("--bands", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="one timed rep")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    import geoseg.models as gm

    names = args.models.split(",") if args.models else gm.list_models()
    reps = 1 if args.quick else args.reps
    gpu = bool(tf.config.list_physical_devices("GPU"))
    x = np.random.default_rng(0).random((args.batch, args.size, args.size, args.bands)).astype("float32")
    print(f"input {args.batch}x{args.size}x{args.size}x{args.bands}, {args.classes} classes, reps {reps}, "
          f"tf {tf.__version__}, gpu {gpu}")
    header = f"{'model':<14}{'params (M)':>12}{'GFLOPs/tile':>13}{'CPU ms/tile':>13}{'x base':>8}"
    print(header + (f"{'GPU fp16 ms/tile':>18}" if gpu else ""))
    base = None
    for name in names:
        try:
            with tf.device("/CPU:0"):
                model = gm.get_model(name, args.classes, (args.size, args.size, args.bands))
                flops = graph_flops(model, args.size, args.bands)
                cpu = time_forward(model, tf.constant(x), reps)
        except Exception as exc:
            print(f"{name:<14} failed: {str(exc).splitlines()[0][:100]}")
            continue
        base = base or cpu
        line = (f"{name:<14}{model.count_params() / 1e6:>12.2f}"
                f"{(flops / 1e9 if flops else float('nan')):>13.1f}{cpu * 1e3:>13.1f}{cpu / base:>8.2f}")
        if gpu:
            import keras

            keras.mixed_precision.set_global_policy("mixed_float16")
            try:
                half = gm.get_model(name, args.classes, (args.size, args.size, args.bands))
                line += f"{time_forward(half, tf.constant(x), reps) * 1e3:>18.2f}"
            finally:
                keras.mixed_precision.set_global_policy("float32")
        print(line, flush=True)
        del model
        tf.keras.backend.clear_session() if hasattr(tf, "keras") else None
    return 0


if __name__ == "__main__":
    sys.exit(main())
