"""Scale-out benchmark: many scenes tiled and predicted on a dask.distributed cluster on this machine.

N synthetic scenes (``geoseg.apps.sample.make_sample`` with seeds 0..N-1, 4-band uint8, with
their label rasters; cached in the work folder) are

- tiled: ``python -m geoseg.tile SCENES --labels LABELS --size 256 --scheduler ADDRESS``;
- predicted: ``python -m geoseg.predict --model BUNDLE SCENES --scheduler ADDRESS`` with the small
  U-Net of ``bench_predict.py`` (random weights, 5 classes, tile 256, stride 128, batch 8),

through a real cluster: a ``dask scheduler`` process and ``dask worker --nworkers W --nthreads 1``
(W = 1, 2) on 127.0.0.1, started here as subprocesses with geoseg's worker malloc settings in their
environment (``geoseg.runtime.cluster.WORKER_MALLOC_ENV``), exactly as on a real cluster.

For each W a fresh cluster is started; printed per step (tile, predict):

- ``start s``: cluster start-up (processes spawned until the client sees W workers);
- each of ``--rounds`` rounds starts a fresh cluster for W = 1, then W = 2 (medians over rounds are
  printed; the warm speed-up is the median of the rounds' own ratios, with their range);
- ``cold s``: the command on the fresh workers (they import geoseg, TensorFlow, load the model);
- ``warm s``: the same command again on the same workers (imports and model cached);
- scenes/s warm; the speed-up of W = 2 over W = 1 warm, cold, and cold with start-up counted;
- worker CPU s per scene (all worker processes), and the command's own CPU s (the client);
- with several scene counts (``--scenes 16,64``), a fit ``t(n) = fixed + n * per_scene`` of the
  warm times per W: ``fixed`` is each command's serial part (interpreter, imports, plan, index),
  ``per_scene`` the cluster's time per further scene, and their speed-up the cluster's scaling.

Outputs land under ``--work``: on a disk both workers write through the same file system (on
this VM its kernel time varies run to run); ``--work /dev/shm/...`` (tmpfs) takes it out.

The single-process run (no dask) of the same commands is the reference: every output file of
every cluster run is compared with it byte for byte (sha256). ``OGR_CURRENT_DATE`` is fixed so that
GeoPackages (which record their write time) compare too; the run lock file is left out.

Usage::

    python benchmarks/bench_scaleout.py            # 16 scenes of 2048 px
    python benchmarks/bench_scaleout.py --quick    # 8 scenes of 1024 px
    python benchmarks/bench_scaleout.py --steps tile --scenes 16,64 --work /dev/shm/gsb
        # tiling at 16 and 64 scenes, outputs on tmpfs: each command's fixed cost fitted apart
        # from the time per scene
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from bench_predict import make_bundle  # type: ignore[import-not-found]  # benchmarks/ is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]
#: Files of an output folder not compared: the run lock records a pid.
SKIP = {".geoseg.lock"}


def make_scenes(work: Path, count: int, size: int) -> tuple[list[Path], list[Path]]:
    """``count`` sample scenes of ``size`` px (seeds 0..count-1) and their label rasters, cached."""
    from geoseg.apps.sample import make_sample

    folder = work / f"scenes_{size}"
    scenes, labels = [], []
    for seed in range(count):
        scene, label = folder / f"s{seed:02d}.tif", folder / "labels" / f"s{seed:02d}.tif"
        if not (scene.exists() and label.exists()):
            with tempfile.TemporaryDirectory(dir=work) as tmp:
                files = make_sample(tmp, size=size, seed=seed, overwrite=True)
                label.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(files.labels), label)
                shutil.move(str(files.scene), scene)
        scenes.append(scene)
        labels.append(label)
    return scenes, labels


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path -> hex), the lock file left out."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name not in SKIP:
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def compare(ref: dict[str, str], got: dict[str, str]) -> str:
    """``identical (N files)`` or what differs."""
    if ref == got:
        return f"identical ({len(ref)} files)"
    missing = sorted(set(ref) - set(got))
    extra = sorted(set(got) - set(ref))
    differ = sorted(k for k in set(ref) & set(got) if ref[k] != got[k])
    return f"DIFFERENT: {len(differ)} differ {differ[:5]}, {len(missing)} missing {missing[:3]}, {len(extra)} extra"


class Cluster:
    """A ``dask scheduler`` and W ``dask worker --nthreads 1`` processes on 127.0.0.1 (subprocesses).

    With ``pin``, worker i (its nanny and worker process) runs on core i only (``taskset -c i``), as
    if each worker had a machine of one core to itself; else all processes share all the cores.
    """

    def __init__(self, workers: int, folder: Path, env: dict[str, str], pin: bool = False):
        self.workers, self.folder, self.env, self.pin = workers, folder, env, pin
        self.procs: list[subprocess.Popen] = []
        self.address = ""

    def __enter__(self) -> Cluster:
        from distributed import Client

        from geoseg.runtime.cluster import WORKER_MALLOC_ENV

        dask = str(Path(sys.executable).parent / "dask")
        sched_file = self.folder / f"scheduler_{self.workers}.json"
        sched_file.unlink(missing_ok=True)
        t0 = time.perf_counter()
        log = self.log = open(self.folder / f"cluster_{self.workers}.log", "w")  # closed in __exit__
        self.procs.append(subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sched_file)], env=self.env, stdout=log, stderr=log))
        while not sched_file.exists():
            if self.procs[0].poll() is not None:
                raise SystemExit(f"dask scheduler failed, see {log.name}")
            time.sleep(0.05)
        time.sleep(0.1)  # the file is written whole, but let its writer finish
        worker_env = {**self.env, **{k: str(v) for k, v in WORKER_MALLOC_ENV.items()}}
        cmd = [dask, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1", "--no-dashboard",
               "--host", "127.0.0.1"]
        if self.pin:
            for i in range(self.workers):
                self.procs.append(subprocess.Popen(["taskset", "-c", str(i % (os.cpu_count() or 1)), *cmd],
                                                   env=worker_env, stdout=log, stderr=log))
        else:
            self.procs.append(subprocess.Popen([*cmd, "--nworkers", str(self.workers)], env=worker_env, stdout=log,
                                               stderr=log))
        with Client(scheduler_file=str(sched_file)) as client:
            client.wait_for_workers(self.workers, timeout=120)
            self.address = client.scheduler.address
        self.startup = time.perf_counter() - t0
        return self

    def worker_cpu(self) -> float:
        """CPU seconds (user + system) used so far by the worker processes (nannies included)."""
        total = 0.0
        for proc in self.procs[1:]:
            try:
                ps = psutil.Process(proc.pid)
                for p in (ps, *ps.children(recursive=True)):
                    t = p.cpu_times()
                    total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.log.close()


def run(cmd: list[str], env: dict[str, str], out: Path) -> tuple[float, float]:
    """Run a geoseg command writing into ``out``; its wall-clock seconds and its own CPU seconds.

    ``out`` is deleted first (not timed): the command's ``--overwrite`` would otherwise delete an
    earlier benchmark's files in the background while it runs, which is not tiling work. The CPU
    seconds are the command process's (user + system; the client of a cluster run), not the workers'.
    """
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return secs, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def fixed_and_per_scene(times: dict[int, float]) -> tuple[float, float]:
    """Fit ``t(n) = fixed + n * per_scene`` through the smallest and largest scene count.

    ``fixed`` is what a command costs whatever the number of scenes (interpreter, imports, plan,
    index: the client's serial part); ``per_scene`` is the cluster's time per additional scene.
    """
    lo, hi = min(times), max(times)
    per_scene = (times[hi] - times[lo]) / (hi - lo)
    return times[lo] - lo * per_scene, per_scene


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", default="16",
                    help="scene counts, comma-separated (default 16); with two or more, each command's fixed cost "
                         "and the time per further scene are fitted, and the speed-up of the latter reported")
    ap.add_argument("--size", type=int, default=2048, help="scene side in pixels (default 2048)")
    ap.add_argument("--quick", action="store_true", help="8 scenes of 1024 px")
    ap.add_argument("--workers", default="1,2", help="worker counts (default 1,2)")
    ap.add_argument("--steps", default="tile,predict", help="steps to run (default tile,predict)")
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                    help="worker i on core i only (taskset; default); --no-pin: all processes share all cores")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds (default 3), each starting a fresh cluster per worker count in turn; medians are "
                         "reported, the warm speed-up as the median of the rounds' ratios with their range (this "
                         "VM's CPU time varies ~20 %% from minute to minute)")
    ap.add_argument("--repeats", type=int, default=1, help="warm runs per cluster and round (default 1)")
    ap.add_argument("--work", default="/tmp/geoseg-bench-scaleout",
                    help="scratch folder (scenes and bundle cached; outputs written here, then deleted)")
    args = ap.parse_args()
    if args.quick:
        args.scenes, args.size = "8", 1024
    sizes = sorted({int(n) for n in args.scenes.split(",")})
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    all_scenes, all_labels = make_scenes(work, sizes[-1], args.size)
    bundle = make_bundle(work, 256, 8, 3)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OGR_CURRENT_DATE": "2000-01-01T00:00:00Z"}
    py = [sys.executable, "-m"]

    def command(name: str, n: int) -> list[str]:
        scenes, labels = map(str, all_scenes[:n]), map(str, all_labels[:n])
        if name == "tile":
            return py + ["geoseg.tile", *scenes, "--labels", *labels, "--size", "256", "--quiet", "--overwrite"]
        return py + ["geoseg.predict", "--model", str(bundle), *scenes, "--quiet", "--overwrite"]

    steps = [s for s in ("tile", "predict") if s in args.steps.split(",")]
    counts = [int(w) for w in args.workers.split(",")]
    from importlib.metadata import version

    print(f"# bench_scaleout: {args.scenes} scenes of {args.size} px (4-band uint8 sample), cpus {os.cpu_count()}, "
          f"dask {version('dask')}, distributed {version('distributed')}, tensorflow {version('tensorflow')}; "
          f"tile: --size 256 with labels; predict: U-Net f8 d3 tile 256 stride 128 batch 8; workers "
          f"{'pinned to one core each (taskset)' if args.pin else 'sharing all cores'}; outputs under {work}")
    ref: dict[tuple[str, int], dict[str, str]] = {}
    ref_s: dict[tuple[str, int], float] = {}
    for name in steps:
        for n in sizes:
            out = work / f"{name}_{n}_single"
            ref_s[name, n] = run(command(name, n) + ["--out", str(out)], env, out)[0]
            ref[name, n] = digests(out)
            shutil.rmtree(out)
    times: dict[tuple[str, int, int], dict] = {}
    same: dict[tuple[str, int, int], str] = {}
    for _ in range(args.rounds):  # rounds alternate the worker counts, so slow drifts of this VM hit both
        for w in counts:
            with Cluster(w, work, env, args.pin) as cluster:
                for name in steps:
                    for n in sizes:
                        row = times.setdefault((name, n, w), {})
                        row.setdefault("start_all", []).append(cluster.startup)
                        cold = ("cold",) if n == sizes[0] else ()  # fresh workers: the first command only
                        warm = []
                        for run_name in (*cold, *["warm"] * max(1, args.repeats)):
                            out = work / f"{name}_{n}_w{w}"
                            cpu = cluster.worker_cpu()
                            secs, client = run(command(name, n) + ["--out", str(out), "--scheduler",
                                                                   cluster.address], env, out)
                            for key, value in ((run_name, secs), (f"{run_name}_cpu", cluster.worker_cpu() - cpu),
                                               (f"{run_name}_client", client)):
                                row.setdefault(f"{key}_all", []).append(value)
                            if run_name == "warm":
                                warm.append(secs)
                            verdict = compare(ref[name, n], digests(out))
                            shutil.rmtree(out)
                            if (name, n, w) not in same or verdict.startswith("DIFF"):
                                same[name, n, w] = verdict
                        row.setdefault("round_all", []).append(statistics.median(warm))
    for row in times.values():
        for key in [k[:-4] for k in row if k.endswith("_all")]:
            row[key] = statistics.median(row[f"{key}_all"])
    print(f"{'step':>8} {'scenes':>6} {'workers':>7} {'start s':>7} {'cold s':>7} {'warm s':>7} {'scenes/s warm':>13} "
          f"{'speed-up warm':>22} {'cold':>5} {'cold+start':>10} {'worker CPU s/scene':>18} {'client CPU s':>12}  "
          f"outputs vs single")
    for name in steps:
        for n in sizes:
            print(f"{name:>8} {n:>6} {'single':>7} {'-':>7} {ref_s[name, n]:7.2f} {'-':>7} {n / ref_s[name, n]:13.2f}")
            base = times.get((name, n, counts[0]))
            for w in counts:
                t = times[name, n, w]
                cold = f"{t['cold']:7.2f}" if "cold" in t else f"{'-':>7}"
                ups = [f"{base[k] / t[k]:.2f}x" if base and k in t else "-" for k in ("warm", "cold")]
                if base and args.rounds > 1:  # the median of each round's ratio, and their range
                    r = sorted(b / x for b, x in zip(base["round_all"], t["round_all"]))
                    ups[0] = f"{statistics.median(r):.2f}x ({r[0]:.2f}-{r[-1]:.2f})"
                up_start = f"{(base['cold'] + base['start']) / (t['cold'] + t['start']):.2f}x" \
                    if base and "cold" in t else "-"
                print(f"{name:>8} {n:>6} {w:>7} {t['start']:7.2f} {cold} {t['warm']:7.2f} {n / t['warm']:13.2f} "
                      f"{ups[0]:>22} {ups[1]:>5} {up_start:>10} {t['warm_cpu'] / n:18.2f} {t['warm_client']:12.2f}  "
                      f"{same[name, n, w]}")
        if len(sizes) > 1:
            fits = {w: fixed_and_per_scene({n: times[name, n, w]["warm"] for n in sizes}) for w in counts}
            for w in counts:
                fixed, per = fits[w]
                print(f"{name:>8} fit {sizes[0]}-{sizes[-1]} scenes, {w} worker(s): fixed {fixed:.2f} s per command, "
                      f"{per:.3f} s per further scene ({1 / per:.2f} scenes/s), speed-up per scene "
                      f"{fits[counts[0]][1] / per:.2f}x")
    print(json.dumps({"single": {f"{k[0]}_{k[1]}": v for k, v in ref_s.items()},
                      "clusters": {f"{k[0]}_{k[1]}_{k[2]}": v for k, v in times.items()}}))


if __name__ == "__main__":
    main()
