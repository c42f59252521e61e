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
