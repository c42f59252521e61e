"""The one place that connects to dask.distributed: a running cluster, or local worker processes.

Tiling and prediction both call :func:`dask_client`; the local cluster is started with the
glibc malloc thresholds that keep patch-sized allocations fast in the workers, and with the
distributed loggers quietened unless debug logging is on. :func:`worker_threads` and
:func:`workers_see` ask a running cluster what its workers declare and see.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("geoseg.runtime")

#: Loggers that ``import distributed`` resets to INFO; they speak only at ERROR unless -v.
_DISTRIBUTED_LOGGERS = ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker",
                        "distributed.core", "distributed.http.proxy", "distributed.comm")

#: Environment of local worker processes. distributed starts workers with MALLOC_TRIM_THRESHOLD_=65536,
#: which also pins glibc's mmap threshold at 128 kB: every patch-sized array is then mmapped and
#: page-faulted afresh, making workers about 3x slower than the client process. These keep
#: patch-sized arrays on the heap.
WORKER_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": 32 << 20, "MALLOC_MMAP_THRESHOLD_": 16 << 20}


def quiet_distributed_logs() -> None:
    """Lower distributed's loggers to ERROR (they are reset to INFO on import) unless -v is on."""
    if logging.getLogger("geoseg").isEnabledFor(logging.DEBUG):
        return
    for name in _DISTRIBUTED_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def dask_client(workers: int = 1, scheduler: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler`` when given, else to a new local cluster.

    Args:
        workers: local worker processes (one thread each) when no scheduler is given.
        scheduler: address of a running scheduler (``tcp://host:8786``).

    Yields:
        The client; the local cluster (if any) is closed on exit.
    """
    import dask
    from distributed import Client, LocalCluster

    quiet_distributed_logs()
    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler))
        else:
            env = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC_ENV.items()}
            with dask.config.set(env), warnings.catch_warnings():
                # "port 8787 in use": the HTTP server starts even without a dashboard
                warnings.simplefilter("ignore", UserWarning)
                # A task's exception comes back to the client, which reports it (a user error in one
                # line); the workers' own "Compute Failed" ERROR log of it would repeat it with a traceback.
                debug = logging.getLogger("geoseg").isEnabledFor(logging.DEBUG)
                cluster = stack.enter_context(LocalCluster(
                    n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=":0",
                    silence_logs=logging.ERROR if debug else logging.CRITICAL))
            client = stack.enter_context(Client(cluster))
        yield client


def worker_threads(client: Any) -> dict[str, int]:
    """Threads (cores) each worker of the cluster declares (``dask worker --nthreads``), by address."""
    return {str(addr): max(1, int(n)) for addr, n in client.nthreads().items()}


def workers_see(client: Any, path: str | os.PathLike) -> bool:
    """Whether every worker of the cluster sees ``path``, a file this process created (a shared folder).

    One round trip to all the workers; False when the cluster has none yet.
    """
    seen = client.run(os.path.exists, os.fspath(path))
    return bool(seen) and all(seen.values())
