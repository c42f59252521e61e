"""``--train-list`` / ``--val-list``: the patches used are exactly those listed."""

from __future__ import annotations

import pytest

from geoseg.errors import DatasetError, InvalidParameterError
from geoseg.tiling.index import read_index
from geoseg.training.data import load_dataset, split_rows


def ids_of(rows):
    return [r["id"] for r in rows]


def write_list(path, ids):
    path.write_text("# chosen by hand\n" + "".join(f"{i}\n" for i in ids) + "\n")
    return str(path)


def test_lists_choose_and_move_patches(tiny_dataset, tmp_path):
    ds = tiny_dataset(n_train=6, n_val=3)
    index = read_index(ds)
    train_ids = [r["id"] for r in index if r["split"] == "train"]
    val_ids = [r["id"] for r in index if r["split"] == "val"]
    # a val patch moved to training, two training patches to validation, the rest left out
    chosen_train = [train_ids[0], train_ids[3], val_ids[1]]
    chosen_val = [train_ids[5], train_ids[1]]
    train, val = split_rows(load_dataset(ds), train_list=write_list(tmp_path / "t.txt", chosen_train),
                            val_list=write_list(tmp_path / "v.txt", chosen_val))
    assert sorted(ids_of(train)) == sorted(chosen_train)
    assert sorted(ids_of(val)) == sorted(chosen_val)
    assert {r["split"] for r in train} == {"train"} and {r["split"] for r in val} == {"val"}


def test_one_list_keeps_the_other_split(tiny_dataset, tmp_path):
    ds = tiny_dataset(n_train=6, n_val=3)
    index = read_index(ds)
    train_ids = [r["id"] for r in index if r["split"] == "train"]
    val_ids = [r["id"] for r in index if r["split"] == "val"]
    train, val = split_rows(load_dataset(ds), train_list=write_list(tmp_path / "t.txt", train_ids[:2]))
    assert ids_of(train) == train_ids[:2]
    assert ids_of(val) == val_ids
    # a val list that claims a training patch takes it out of the (unlisted) training split
    train, val = split_rows(load_dataset(ds), val_list=write_list(tmp_path / "v.txt", [train_ids[0]]))
    assert ids_of(train) == train_ids[1:]
    assert ids_of(val) == [train_ids[0]]


def test_unknown_and_doubled_ids_refused(tiny_dataset, tmp_path):
    ds = tiny_dataset(n_train=4, n_val=2)
    first = read_index(ds)[0]["id"]
    with pytest.raises(DatasetError, match="2 id\\(s\\) not in .*index.csv: nope_1, nope_2"):
        split_rows(load_dataset(ds), train_list=write_list(tmp_path / "t.txt", [first, "nope_1", "nope_2"]))
    with pytest.raises(InvalidParameterError, match=f"both --train-list .* {first}"):
        split_rows(load_dataset(ds), train_list=write_list(tmp_path / "t.txt", [first]),
                   val_list=write_list(tmp_path / "v.txt", [first]))


def test_cli_passes_lists_to_training(tiny_dataset, tmp_path, capsys):
    """Through ``geoseg train``: the lists reach the data split before any training (an unknown id
    ends the run with one error line naming it)."""
    from geoseg.cli.train import build_parser, config_from_args, main

    ds = tiny_dataset(n_train=4, n_val=2)
    bad = write_list(tmp_path / "t.txt", ["not_a_patch"])
    cfg = config_from_args(build_parser().parse_args([str(ds), "--out", "b", "--train-list", bad,
                                                      "--val-list", str(ds / "val.txt")]))
    assert (cfg.train_list, cfg.val_list) == (bad, str(ds / "val.txt"))
    rc = main([str(ds), "--out", str(tmp_path / "bundle"), "--train-list", bad, "--epochs", "1", "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "not_a_patch" in err and err.count("error:") == 1
