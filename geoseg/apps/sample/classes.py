"""The sample scene's classes, their reflectance spectra and the pixel types it is written in."""

from __future__ import annotations

import numpy as np

from geoseg.io.classes import ClassInfo, ClassMap

BACKGROUND, BUILDING, ROAD, WATER, VEGETATION = range(5)

#: The sample's classes and display colors.
SAMPLE_CLASSES = ClassMap((
    ClassInfo(BACKGROUND, "background", (205, 190, 150)),
    ClassInfo(BUILDING, "building", (220, 40, 40)),
    ClassInfo(ROAD, "road", (128, 128, 128)),
    ClassInfo(WATER, "water", (30, 100, 220)),
    ClassInfo(VEGETATION, "vegetation", (40, 160, 60)),
))

#: Burn order, lowest priority first: a class is clipped by every class after it.
PRIORITY = (VEGETATION, WATER, ROAD, BUILDING)

#: Band names; bands past this list are called ``band<i>``.
BAND_NAMES = ("red", "green", "blue", "nir", "red_edge", "swir1", "swir2", "coastal")

#: Top-left corner of the scene in CRS units (UTM 33N: near Vienna).
DEFAULT_ORIGIN = (600000.0, 5340000.0)

#: Reflectance (0..1) of each class in red, green, blue, nir; background mixes soil and grass.
SOIL = np.array([0.42, 0.36, 0.28, 0.38], dtype=np.float32)
GRASS = np.array([0.21, 0.29, 0.15, 0.47], dtype=np.float32)
SPECTRA = np.array([
    SOIL,                                  # background (replaced by the soil/grass mix)
    [0.55, 0.53, 0.52, 0.50],               # building (replaced per roof)
    [0.30, 0.30, 0.31, 0.26],               # road: grey asphalt
    [0.05, 0.08, 0.10, 0.025],              # water: dark, little NIR
    [0.08, 0.17, 0.07, 0.55],               # vegetation: high NIR
], dtype=np.float32)
#: Texture amplitude per class: (medium scale 8-32 px, fine scale 2-3 px).
TEXTURE = np.array([
    [0.22, 0.08],  # background
    [0.03, 0.05],  # building
    [0.05, 0.03],  # road
    [0.08, 0.02],  # water
    [0.30, 0.45],  # vegetation: crowns
], dtype=np.float32)
#: Roof reflectances (r, g, b, nir): light concrete, red tiles, dark grey, white, metal.
ROOFS = np.array([
    [0.62, 0.60, 0.58, 0.55],
    [0.58, 0.30, 0.22, 0.45],
    [0.38, 0.38, 0.40, 0.36],
    [0.80, 0.80, 0.80, 0.72],
    [0.50, 0.55, 0.58, 0.50],
], dtype=np.float32)
#: Multiplier in shadow (blue scatters into shadows, so it dims least).
SHADOW = np.array([0.42, 0.45, 0.55, 0.40], dtype=np.float32)
#: DN per unit reflectance.
GAIN = {"uint8": 255.0 * 1.1, "uint16": 10000.0}
#: Pixel types the sample scene can be written in.
SAMPLE_DTYPES = tuple(sorted(GAIN))
