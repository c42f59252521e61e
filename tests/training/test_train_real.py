"""Optional: a short real training on the SpaceNet-4 clip in ../shared/data (skips when absent).

Tiles the clip as ``pipelines/buildings_cpu.yaml`` does (128 px windows every 32 px, RGB bands,
a spatial split holding out about a quarter of the clip in blocks), trains the pipeline's CPU
U-Net (3 levels, 16 filters, batch norm) with the defaults under a 60 s time budget and checks,
on the held-out blocks, that it beats the all-background baseline in mean IoU (the baseline's
building IoU is 0, so its mIoU is half its background IoU). Observed on 2 shared cores:
building IoU 0.2-0.3 after 40-60 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geoseg.cli.tile import main as tile_main
from geoseg.training import TrainConfig, fit

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SCENE = DATA / "SN4_buildings_train_AOI_6_Atlanta_nadir10_catid_1030010003993E00_PS-RGBNIR_732701_3729639_clipped.tif"
LABELS = DATA / "SN4_buildings_train_AOI_6_Atlanta_geojson_buildings_732701_3729639.geojson"


@pytest.mark.slow
@pytest.mark.skipif(not (SCENE.exists() and LABELS.exists()), reason=f"real sample data not found in {DATA}")
def test_short_real_training_beats_all_background(tmp_path):
    ds = tmp_path / "dataset"
    assert tile_main([str(SCENE), "--labels", str(LABELS), "--classes", "background,building", "--burn-value", "1",
                      "--bands", "1,2,3", "--size", "128", "--stride", "32", "--split", "spatial",
                      "--val-fraction", "0.25", "--pad", "--out", str(ds), "--quiet", "--workers", "1"]) == 0
    res = fit(TrainConfig(dataset=str(ds), out=str(tmp_path / "bundle"), model="unet",
                          model_args={"encoder_depth": 3, "encoder_filters": 16, "batch_norm": True}, time_budget=60,
                          tensorboard=False, quiet=True))
    counts = json.loads((ds / "dataset.json").read_text())["class_counts"]["val"]
    base_miou = counts[0] / sum(counts) / 2  # background IoU = OA of "all background"; building IoU 0
    assert res.stopped_by in ("time_budget", "early_stopping")
    assert res.metrics["iou"]["building"] > 0.05, res.metrics
    assert res.metrics["miou"] > base_miou, (res.metrics, base_miou)
