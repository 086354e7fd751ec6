"""Labels CSV format and the MIAS / phantom importers."""
from __future__ import annotations

import numpy as np
import pytest

from app.datasets import import_mias, parse_mias_info
from inference.labels import (
    LabelRow,
    LabelsError,
    read_labels,
    split_by_patient,
    write_labels,
)
from tests.conftest import shared_file


def test_labels_round_trip_and_relative_paths(tmp_path):
    rows = [
        LabelRow(path=str(tmp_path / "a" / "x.dcm"), patient="P1", laterality="L", view="CC", label="normal"),
        LabelRow(path=str(tmp_path / "a" / "y.dcm"), patient="P1", laterality="L", view="MLO", label="mass",
                 detail="spiculated", x0=10, y0=20, x1=40, y1=60, cx=25, cy=40, r=15),
        LabelRow(path="vol.dcm", patient="P2", label="calcification", x0=1, y0=2, x1=3, y1=4,
                 slice_start=5, slice_end=9),
    ]
    out = write_labels(tmp_path / "labels.csv", rows)
    back = read_labels(out)
    assert [r.path for r in back] == ["a/x.dcm", "a/y.dcm", "vol.dcm"]
    assert back[1].box() == (10, 20, 40, 60) and back[2].slice_end == 9
    assert back[1].resolve(tmp_path) == tmp_path / "a" / "y.dcm"


def test_labels_errors_name_the_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("path,label\nx.png,normal\ny.png,tumour\n")
    with pytest.raises(LabelsError, match=r"bad.csv line 3: label 'tumour'"):
        read_labels(p)
    p.write_text("file,label\n")
    with pytest.raises(LabelsError, match="column 'path' is missing"):
        read_labels(p)


def test_box_from_circle():
    assert LabelRow(path="a", label="mass", cx=100, cy=50, r=10).box() == (90, 40, 110, 60)


def test_split_by_patient_never_mixes_a_patient():
    rows = [LabelRow(path=f"{p}_{v}", patient=f"p{p}") for p in range(40) for v in ("L", "R")]
    split = split_by_patient(rows, (0.6, 0.2, 0.2), seed=1)
    per_patient = {}
    for r in split:
        per_patient.setdefault(r.patient, set()).add(r.split)
    assert all(len(s) == 1 for s in per_patient.values())
    counts = {s: sum(1 for v in per_patient.values() if s in v) for s in ("train", "val", "test")}
    assert counts == {"train": 24, "val": 8, "test": 8}
    assert split == split_by_patient(rows, (0.6, 0.2, 0.2), seed=1)


@pytest.fixture(scope="module")
def mias_rows():
    folder = shared_file("mias")
    return folder, import_mias(folder, splits=(0.7, 0.15, 0.15), seed=0)


def test_mias_entries_against_info_txt(mias_rows):
    folder, rows = mias_rows
    by_name = {}
    for r in rows:
        by_name.setdefault(r.path.rsplit("/", 1)[-1], []).append(r)
    # "mdb010 F CIRC B 525 425 33": origin bottom-left, so row = 1023 - 425
    (r,) = by_name["mdb010.png"]
    assert (r.label, r.detail, r.severity, r.cx, r.cy, r.r) == ("mass", "circumscribed", "benign", 525, 598, 33)
    assert r.laterality == "L" and r.view == "MLO" and r.patient == "mias005"
    # "mdb005" has two masses: two rows
    assert len(by_name["mdb005.png"]) == 2 and by_name["mdb005.png"][0].laterality == "R"
    # "mdb216 D CALC M *NOTE 3*": abnormal but no centre
    (r,) = by_name["mdb216.png"]
    assert r.label == "calcification" and r.box() is None and r.severity == "malignant"
    assert len({r.path for r in rows}) == len(list(folder.glob("mdb*.png")))
    info = parse_mias_info(folder / "Info.txt")
    assert sum(e["class"] == "NORM" for e in info) == sum(r.label == "normal" for r in rows)


def test_mias_split_is_by_patient(mias_rows):
    _, rows = mias_rows
    splits = {}
    for r in rows:
        splits.setdefault(r.patient, set()).add(r.split)
    assert all(len(s) == 1 for s in splits.values())
    assert {s for v in splits.values() for s in v} == {"train", "val", "test"}


def test_mias_boxes_land_on_the_masses(mias_rows):
    """A circumscribed mass is brighter than the ring of tissue around its MIAS circle."""
    from skimage import io

    _, rows = mias_rows
    circ = [r for r in rows if r.detail == "circumscribed" and r.box() is not None]
    brighter = 0
    for r in circ:
        img = io.imread(r.path).astype(np.float64)
        yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
        d = np.hypot(xx - r.cx, yy - r.cy)
        inside = img[d <= 0.6 * r.r].mean()
        ring = img[(d > 1.2 * r.r) & (d <= 1.8 * r.r)].mean()
        brighter += inside > ring
    assert len(circ) >= 15 and brighter / len(circ) >= 0.8


def test_mias_laterality_matches_the_films(mias_rows):
    """Even films are left breasts (chest wall on the left), odd right: inferred side agrees."""
    from pathlib import Path

    from inference.studies.plain_io import infer_laterality, read_plain

    _, rows = mias_rows
    paths = {r.path: r.laterality for r in rows}
    agree = sum(infer_laterality(read_plain(Path(p))) == lat for p, lat in paths.items())
    assert agree / len(paths) >= 0.95


def test_cli_imports_mias(tmp_path, mias_rows):
    from app.cli import main

    folder, _ = mias_rows
    out = tmp_path / "labels.csv"
    assert main(["dataset", "import", "mias", str(folder), "--out", str(out)]) == 0
    rows = read_labels(out)
    assert rows[0].resolve(out.parent).is_file()


def test_foreign_object_rows_are_labelled_but_never_lesions(tmp_path):
    from inference.labels import LABELS, LESION_CLASSES, image_label

    assert "foreign_object" in LABELS and "foreign_object" not in LESION_CLASSES
    clip = LabelRow(path="a.dcm", patient="P1", label="foreign_object", detail="biopsy_clip", x0=10, y0=20, x1=22, y1=31)
    mass = LabelRow(path="b.dcm", patient="P1", label="mass", x0=1, y0=2, x1=30, y1=40)
    marker = LabelRow(path="b.dcm", patient="P1", label="foreign_object", detail="skin_marker_bb", x0=5, y0=5, x1=9, y1=9)
    assert not clip.is_lesion and clip.is_foreign_object and mass.is_lesion and not mass.is_foreign_object
    assert image_label([clip]) == "normal" and image_label([marker, mass]) == "mass"
    # an image whose only row is a foreign object needs no normal row
    back = read_labels(write_labels(tmp_path / "labels.csv", [clip, mass, marker]))
    assert [r.label for r in back] == ["foreign_object", "mass", "foreign_object"]
    assert back[0].box() == (10, 20, 22, 31) and back[0].detail == "biopsy_clip"
    p = tmp_path / "bad.csv"
    p.write_text("path,label,detail\nx.dcm,foreign_object,biopsy_clip\n")
    with pytest.raises(LabelsError, match="line 2: a foreign_object row has no box"):
        read_labels(p)


def test_sliding_windows_keep_only_windows_on_the_breast():
    from training.datasets import window_origins

    breast = np.zeros((20, 20), bool)
    breast[:, :10] = True  # the left half is breast
    origins = window_origins(breast, fov=8, stride=4, min_breast=0.5)
    # windows start at columns 0, 4, 8, 12; a window at column c covers c..c+7: breast share
    # 1, 6/8, 2/8, 0 -> columns 0 and 4 pass, for every row start 0, 4, 8, 12
    assert sorted({int(c) for _, c in origins}) == [0, 4]
    assert sorted({int(r) for r, _ in origins}) == [0, 4, 8, 12] and len(origins) == 8
    assert len(window_origins(breast, fov=32, stride=4)) == 0, "a window larger than the image fits nowhere"


def test_boxes_follow_the_preprocessing_into_model_space_and_rois_are_cut_there():
    from inference.preprocess import box_to_model_space, preprocess
    from training.datasets import PreparedImages, lesion_rois

    display = np.zeros((100, 80), np.float32)
    display[:, 20:] = 0.5  # a right breast: chest wall on the right, flipped to face left
    display[40:60, 30:50] = 1.0  # the lesion
    prepared = preprocess(display, "R", 50)
    x0, y0, x1, y1 = box_to_model_space((30, 40, 50, 60), prepared.geometry)
    # mirrored: columns 30..50 of 80 become 80-50..80-30 = 30..50; padded to 100 x 100 and halved
    assert (x0, y0, x1, y1) == pytest.approx((15.0, 20.0, 25.0, 30.0))
    assert prepared.image[int(y0) + 2:int(y1) - 2, int(x0) + 2:int(x1) - 2].min() > 0.95
    data = PreparedImages(prepared.image[None], prepared.mask[None], ["mass"], ["P1"], ["a.dcm"], ["train"],
                          [[(x0, y0, x1, y1)]], [[]], ["CC"])
    patches, classes = lesion_rois(data, size=16, margin=1.5)
    assert patches.shape == (1, 16, 16) and classes == ["mass"]
    assert patches[0, 6:10, 6:10].min() > 0.9 and patches[0].min() < 0.6, "lesion in the middle, context around"


def test_dataset_subset_keeps_train_draws_per_class_and_paths_still_resolve(tmp_path, capsys):
    from app.cli import main
    from inference.labels import LabelRow, image_label, read_labels, rows_by_image, write_labels

    data = tmp_path / "data"
    rows = []
    for i in range(30):
        split = ("train", "val", "test")[i % 3]
        label = "mass" if i % 2 else "normal"
        rows.append(LabelRow(f"P{i}/L_CC.dcm", f"P{i}", "L", "CC", split, label,
                             **({"x0": 1, "y0": 1, "x1": 5, "y1": 5} if label == "mass" else {})))
        (data / f"P{i}").mkdir(parents=True)
        (data / f"P{i}" / "L_CC.dcm").write_bytes(b"x")
    write_labels(data / "labels.csv", rows)
    (data / "phantom.json").write_text('{"seed": 3}')
    out = tmp_path / "eval" / "labels.csv"
    assert main(["dataset", "subset", str(data / "labels.csv"), "--out", str(out), "--per-class", "val=2,test=3"]) == 0
    assert "test 6, train 10, val 4 image(s)" in capsys.readouterr().out
    grouped = rows_by_image(read_labels(out))
    by_split = {}
    for path, image_rows in grouped.items():
        assert (out.parent / path).is_file()  # rewritten relative to the new file
        by_split.setdefault(image_rows[0].split, []).append(image_label(image_rows))
    assert sorted(by_split["test"]) == ["mass"] * 3 + ["normal"] * 3 and len(by_split["train"]) == 10
    assert (out.parent / "phantom.json").read_text() == '{"seed": 3}'  # the recipe the card's checks extend
    again = tmp_path / "again.csv"
    main(["dataset", "subset", str(data / "labels.csv"), "--out", str(again), "--per-class", "val=2,test=3"])
    assert [r.patient for r in read_labels(again)] == [r.patient for r in read_labels(out)]  # the same draw
    assert main(["dataset", "subset", str(tmp_path / "none.csv"), "--out", str(again), "--per-class", "val=1"]) == 2
    assert "is not a labels file" in capsys.readouterr().err
