"""Named palettes: the class names and label colours of public benchmarks, as plain data.

``--classes NAME`` and ``--palette NAME`` accept these names wherever a palette file is read
(:func:`geoseg.io.classes.load_palette`, :func:`geoseg.io.classes.named_palette`). Class index i
has ``names[i]`` and ``colors[i]`` (r, g, b in 0..255). ``ignore_colors`` are colours of
colour-coded label images that mean "not labelled": they read as 255 (geoseg's ignore value).
"""

from __future__ import annotations

from typing import NamedTuple

RGB = tuple[int, int, int]


class Palette(NamedTuple):
    """One benchmark's classes: names and colours by class index, and the colours read as 255."""

    names: tuple[str, ...]
    colors: tuple[RGB, ...]
    ignore_colors: tuple[RGB, ...]


# PASCAL VOC 2012 (VOCdevkit: VOCcode/VOCinit.m class names, VOClabelcolormap.m colours). The
# colormap spells the bits of the class index backwards into the high bits of r, g, b: bits 0, 1, 2
# of i set bit 7 of r, g, b, bits 3, 4, 5 set bit 6, and so on. 255 is the void/border label,
# drawn (224, 224, 192) in SegmentationClass PNGs (the same rule applied to 255).
VOC = Palette(
    names=("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
           "tvmonitor"),
    colors=((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128),
            (128, 128, 128), (64, 0, 0), (192, 0, 0), (64, 128, 0), (192, 128, 0), (64, 0, 128), (192, 0, 128),
            (64, 128, 128), (192, 128, 128), (0, 64, 0), (128, 64, 0), (0, 192, 0), (128, 192, 0), (0, 64, 128)),
    ignore_colors=((224, 224, 192),),
)

# Cityscapes, the 19 training ids (mcordts/cityscapesScripts, cityscapesscripts/helpers/labels.py,
# labels with trainId 0..18 and their official colours). The colours of labels with trainId 255
# read as 255, except polegroup (153, 153, 153) and license plate (0, 0, 142), which share the
# colour of pole and car and therefore read as those classes.
CITYSCAPES = Palette(
    names=("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
           "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"),
    colors=((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
            (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
            (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)),
    # unlabeled/ego vehicle/rectification border/out of roi/static, dynamic, ground, parking,
    # rail track, guard rail, bridge, tunnel, caravan, trailer
    ignore_colors=((0, 0, 0), (111, 74, 0), (81, 0, 81), (250, 170, 160), (230, 150, 140), (180, 165, 180),
                   (150, 100, 100), (150, 120, 90), (0, 0, 90), (0, 0, 110)),
)

# ISPRS 2D Semantic Labeling Contest, Potsdam and Vaihingen (ISPRS WG II/4 benchmark description):
# impervious surfaces white, building blue, low vegetation cyan, tree green, car yellow,
# clutter/background red, in the benchmark's order. Black marks the eroded class boundaries of the
# "no boundary" reference labels, which the benchmark leaves out of the evaluation.
ISPRS = Palette(
    names=("impervious surfaces", "building", "low vegetation", "tree", "car", "clutter"),
    colors=((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)),
    ignore_colors=((0, 0, 0),),
)

#: name (lower case) -> palette
PALETTES: dict[str, Palette] = {"voc": VOC, "cityscapes": CITYSCAPES, "potsdam": ISPRS, "vaihingen": ISPRS}
