"""The one local process pool: N fresh worker processes for CPU work that threads cannot share.

Threads of one process suit work that spends its time in GDAL reads and writes and in numpy,
which release the GIL. Work made of many small pieces holds the GIL (Python between calls) or
GDAL's process-wide block-cache lock for a larger share of its time, and N threads then gain
far less than N cores (``benchmarks/README.md``: 2 threads 1.2x, 2 processes 1.7-1.8x on 256 px
patches). :func:`process_pool` starts N processes instead:

- started with ``spawn``: fresh interpreters that import what the tasks need (0.3-0.5 s), never
  a ``fork`` of a process that may already run threads;
- they ignore SIGINT: Ctrl-C reaches the command, which reports it once (the workers finish
  their current task and stop), instead of N tracebacks;
- on Linux they die with the command (``PR_SET_PDEATHSIG``): a killed run leaves no worker
  writing into the output folder that a ``--resume`` run is about to take over;
- their log records go to stderr at the command's level and format.

Tasks and results are pickled (paths and numbers in, rows and counts out), as on a dask cluster.

A spawned worker imports the caller's main module first (Python's ``multiprocessing`` rule): a
script that starts workers needs ``if __name__ == "__main__":`` around its top-level code, or
each worker runs that code again. geoseg's commands are so guarded and say so
(:func:`mark_command`); :func:`spawn_is_safe` tells the automatic choices whether workers may be
started without the caller having asked for them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

from geoseg.runtime.logs import configure_logging

#: Linux prctl option: the signal a process receives when its parent exits.
_PR_SET_PDEATHSIG = 1

_COMMAND = False


def mark_command() -> None:
    """Record that this process runs a geoseg command (``python -m geoseg.<command>`` or the
    ``geoseg`` console script), whose main module guards its top-level code."""
    global _COMMAND
    _COMMAND = True


def spawn_is_safe() -> bool:
    """Whether worker processes can start here without running the caller's code again: in a
    geoseg command, or where the main module is no file (an interactive session, a notebook)."""
    return _COMMAND or getattr(sys.modules.get("__main__"), "__file__", None) is None


def _init_worker(verbose: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    configure_logging(verbose)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh processes (see the module docstring); use it as a context manager.

    Args:
        workers: number of worker processes (one task at a time each).
    """
    verbose = logging.getLogger("geoseg").isEnabledFor(logging.DEBUG)
    return ProcessPoolExecutor(max_workers=int(workers), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(verbose,))
