"""The training scenes of a bundle, when its dataset is still readable: ground resolution and footprint."""

from __future__ import annotations

import json
from pathlib import Path

from geoseg.io.bundle import Bundle


def training_scenes(bundle: Bundle) -> list[dict]:
    """The ``scenes`` of the bundle's ``dataset.json`` (``training.dataset``); empty when it is gone."""
    training = bundle.meta.get("training")
    dataset = training.get("dataset") if isinstance(training, dict) else None
    path = Path(dataset) / "dataset.json" if dataset else None
    if path is None or not path.is_file():
        return []
    try:
        scenes = json.loads(path.read_text()).get("scenes", [])
    except (ValueError, OSError):
        return []
    return [s for s in scenes if isinstance(s, dict) and s.get("crs") and s.get("transform")]


def training_resolution_cm(bundle: Bundle) -> float | None:
    """Pixel size of the first training scene in cm, when its CRS is in metres; None when unknown.

    Read from ``dataset.json`` of the dataset recorded in the bundle (``training.dataset``); scenes
    in degrees or without a CRS give None, as does a dataset that is gone.
    """
    scenes = training_scenes(bundle)
    if not scenes:
        return None
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        parsed = CRS.from_user_input(scenes[0]["crs"])
    except CRSError:
        return None
    if not parsed.is_projected or (parsed.linear_units or "").lower() not in ("metre", "meter", "m"):
        return None
    return round(abs(float(scenes[0]["transform"][0])) * 100.0, 6)
