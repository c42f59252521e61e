"""The one dask set-up: what a cluster's workers declare and see."""

from __future__ import annotations

import os

import pytest

from geoseg.runtime.cluster import dask_client, worker_threads, workers_see


@pytest.mark.slow
def test_workers_declare_one_thread_and_see_only_files_that_exist(tmp_path):
    made = tmp_path / "probe"
    made.write_text("x")
    with dask_client(workers=2) as client:
        client.wait_for_workers(2, timeout=60)
        threads = worker_threads(client)
        pids = client.run(os.getpid)
        assert sorted(threads) == sorted(pids) and list(threads.values()) == [1, 1]
        assert workers_see(client, made)
        assert not workers_see(client, tmp_path / "absent")
        made.unlink()
        assert not workers_see(client, made)
