"""The README stays true: its quick start is the two make targets, and its Python API example runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_is_exactly_make_demo_and_make_test():
    text = README.read_text()
    block = text.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]


@pytest.mark.slow
def test_python_api_example_runs(tmp_path):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    assert (tmp_path / "pred" / "scene_label.tif").exists()
    assert (tmp_path / "bundle" / "geoseg.json").exists()


@pytest.mark.slow
@pytest.mark.data
def test_five_minute_recipe_runs_on_the_real_clip(tmp_path):
    """The README's real-scene recipe, as written, with a 20 s training budget instead of 5 minutes."""
    import subprocess
    import sys

    from factories import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data")
    block = README.read_text().split("## Five minutes on a real scene", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    assert "--time-budget 5m" in block
    script = block.replace("source .venv/bin/activate", "").replace("--time-budget 5m", "--time-budget 20s")
    work = tmp_path / "repo"
    work.mkdir()
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent)  # ../shared/data as seen from the repository root
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    import json

    report = json.loads((work / "report" / "report.json").read_text())
    assert 0.0 <= report["summary"]["overall_accuracy"] <= 1.0
    assert (work / "pred" / "buildings.gpkg").exists()
    assert list((work / "pred").glob("*_label.tif"))


@pytest.mark.slow
def test_cluster_recipe_runs_as_written(tmp_path):
    """The "Running on a cluster" recipe: a scheduler and two workers on 127.0.0.1, then tile, train and
    predict through them (on a free port instead of 8786, so that a running cluster is not disturbed)."""
    import signal
    import socket
    import subprocess
    import sys

    block = README.read_text().split("### Running on a cluster", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    assert "--scheduler tcp://127.0.0.1:8786" in block and "dask worker" in block
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = block.replace("source .venv/bin/activate", "").replace(":8786", f":{port}").replace(
        "--port 8786", f"--port {port}")
    # whatever happens, the scheduler and workers end with the script
    script = "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert (tmp_path / "dataset" / "dataset.json").exists()
    assert (tmp_path / "pred" / "scene_label.tif").exists() and (tmp_path / "pred" / "scene_prob.tif").exists()
