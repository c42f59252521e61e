"""The parameters a run used, kept in its output folder and compared on ``--resume``.

A resumed run must produce what the interrupted one would have: tiling keeps its parameters in
``dataset.json`` and the journal, prediction in ``OUT/.geoseg_predict.json``. Both refuse a
``--resume`` with other parameters through :func:`check_same_parameters`, listing every change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from geoseg.errors import InvalidParameterError
from geoseg.io.atomic import atomic_output


def check_same_parameters(old: dict[str, Any], new: dict[str, Any], where: str | os.PathLike) -> None:
    """Refuse a resumed run whose parameters differ from the recorded ones.

    Args:
        old: the recorded parameters (option name -> value).
        new: this run's.
        where: the file that recorded them, for the message.

    Raises:
        InvalidParameterError: listing each changed option with its old and new value.
    """
    diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if diff:
        shown = "; ".join(f"{k}: {old.get(k)!r} before, {new.get(k)!r} now" for k in diff)
        raise InvalidParameterError(f"--resume with other parameters than {where} ({shown}); "
                                    "rerun with the same options, or use --overwrite to start again")


def read_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON document at ``path``; None when there is none or it is not a JSON object (a killed write)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def write_record(path: str | os.PathLike, doc: dict[str, Any]) -> None:
    """Write ``doc`` as JSON at ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
