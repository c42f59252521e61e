"""Label values -> class indices: numbers, text names, nulls, the ignore value, values beyond the class list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geoseg.errors import InvalidParameterError, LabelValueError, VectorLabelError
from geoseg.io.label_values import (
    LabelRules,
    attribute_to_index,
    auto_class_names,
    check_class_counts,
    choose_field,
    raster_to_index,
)

P = Path("labels.gpkg")


def test_numeric_attributes_nulls_and_ignore():
    rules = LabelRules(label_field="class")
    got = attribute_to_index(np.array([1.0, np.nan, 3.0, 255.0, 0.0]), "class", P, rules)
    assert got.tolist() == [1, -1, 3, 255, 0]  # null -> -1 (skipped), 255 -> ignore
    got = attribute_to_index(np.array([2, 9, 4], np.int32), "class", P, LabelRules(ignore_value=9))
    assert got.tolist() == [2, 255, 4]
    got = attribute_to_index(np.array([1, None, 2], dtype=object), "class", P, rules)
    assert got.tolist() == [1, -1, 2]
    with pytest.raises(VectorLabelError, match=r"whole class indices, found \[1.5\]"):
        attribute_to_index(np.array([1.0, 1.5]), "class", P, rules)
    with pytest.raises(LabelValueError, match=r"value\(s\) 300 \(2 feature\), -1 \(1 feature\)"):
        attribute_to_index(np.array([300, -1, 300, 2]), "class", P, rules)


def test_text_attributes_match_names_case_insensitively():
    rules = LabelRules(class_names=("background", "Building", "road"))
    raw = np.array(["building", "ROAD ", None, "Building", "255"], dtype=object)
    assert attribute_to_index(raw, "kind", P, rules).tolist() == [1, 2, -1, 1, 255]
    with pytest.raises(LabelValueError, match=r"'tree' \(2 feature\), 'car' \(1 feature\) not among the classes"):
        attribute_to_index(np.array(["tree", "road", "car", "tree"], dtype=object), "kind", P, rules)
    with pytest.raises(VectorLabelError, match="holds text values .*--classes auto"):
        attribute_to_index(np.array(["a", "b"], dtype=object), "kind", P, LabelRules())


def test_auto_class_names_sorted_with_background_first():
    assert auto_class_names({"water", "Building", "road", "background", "255"}) == \
        ("background", "Building", "road", "water")
    assert auto_class_names({"b", "B", "a"}) == ("background", "a", "B")  # one class per name, any case


def test_raster_values_nodata_ignore_and_out_of_range():
    raw = np.array([[0, 1, 7], [200, 9, 255]], np.uint8)
    out = raster_to_index(raw, P, nodata=7, ignore_value=9)
    assert out.tolist() == [[0, 1, 255], [200, 255, 255]]
    wide = np.array([[1, 300, 300], [-2, 65535, 4]], np.int32)
    with pytest.raises(LabelValueError, match=r"300 \(2 px\), -2 \(1 px\)"):
        raster_to_index(wide, P, nodata=65535, ignore_value=255)
    flt = np.array([[np.nan, 1.0], [2.0, -9999.0]], np.float32)
    assert raster_to_index(flt, P, nodata=-9999.0, ignore_value=None).tolist() == [[255, 1], [2, 255]]


def test_values_beyond_the_class_list_are_refused_with_pixel_counts():
    check_class_counts([10, 5, 2], 3, ["a", "b", "c"], "x")  # all within the list
    with pytest.raises(LabelValueError, match=r"class value\(s\) 3 \(4 px\), 7 \(9 px\) beyond the 3 classes"):
        check_class_counts([10, 5, 2, 4, 0, 0, 0, 9], 3, ["a", "b", "c"], "labels")


def test_field_choice_and_rules_checks():
    assert choose_field(("id", "Class"), LabelRules(), P) == "Class"
    assert choose_field(("id",), LabelRules(burn_value=1), P) is None
    with pytest.raises(VectorLabelError, match="no attribute 'kind'; attributes are: id, Class"):
        choose_field(("id", "Class"), LabelRules(label_field="kind"), P)
    with pytest.raises(VectorLabelError, match="give --label-field"):
        choose_field(("id",), LabelRules(), P)
    with pytest.raises(InvalidParameterError, match="--burn-value must be"):
        LabelRules(burn_value=255)
    with pytest.raises(InvalidParameterError, match="not both"):
        LabelRules(label_field="a", burn_value=1)
