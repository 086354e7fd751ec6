"""The phantom's conspicuity controls: lesion contrast and size scales over the same anatomy."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from inference.labels import COLUMNS, read_labels
from training.phantom import generate_dataset, simulate_mammogram

SMALL = dict(shape=(256, 208), pixel_spacing=0.8)
MID = dict(shape=(512, 416), pixel_spacing=0.4)


def _far_from(mask: np.ndarray, pixels: int) -> np.ndarray:
    return ~ndimage.binary_dilation(mask, iterations=pixels)


@pytest.mark.parametrize("cls", ["mass", "calcification", "asymmetry"])
def test_contrast_scales_the_lesion_pixels_proportionally_and_zero_removes_it(cls):
    base = simulate_mammogram(3, lesion_classes=(), **SMALL).pixels.astype(np.float64)
    img = {c: simulate_mammogram(3, lesion_classes=(cls,), lesion_contrast=c, **SMALL) for c in (0.0, 1.0, 2.0, 0.5)}
    np.testing.assert_array_equal(img[0.0].pixels, base)  # no contrast, no lesion: the lesion-free image
    lesion = img[1.0].lesions[0]
    assert all(img[c].lesions[0].box == lesion.box for c in (0.0, 2.0, 0.5))  # same place, same shape
    inside = lesion.mask
    d1 = img[1.0].pixels[inside] - base[inside]
    assert np.abs(d1).mean() > 10  # a visible lesion at the realistic contrast
    for c in (2.0, 0.5):
        dc = img[c].pixels[inside] - base[inside]
        slope = float((dc * d1).sum() / (d1 * d1).sum())  # least squares dc = slope * d1
        assert slope == pytest.approx(c, rel=0.08)
        assert img[c].lesions[0].contrast == c and img[c].lesions[0].to_dict()["contrast"] == c
    assert "contrast" not in lesion.to_dict()  # the realistic lesion's record is unchanged


@pytest.mark.parametrize("scale", [("contrast", 3.0), ("size", 1.5), ("size", 0.6)])
def test_the_anatomy_is_identical_at_every_conspicuity(scale):
    name, value = scale
    plain = simulate_mammogram(11, view="MLO", laterality="R", lesion_classes=("mass",), **SMALL)
    scaled = simulate_mammogram(11, view="MLO", laterality="R", lesion_classes=("mass",),
                                **{f"lesion_{name}": value}, **SMALL)
    np.testing.assert_array_equal(plain.breast_mask, scaled.breast_mask)
    np.testing.assert_array_equal(plain.pectoral_mask, scaled.pectoral_mask)
    assert (plain.density, plain.beta, plain.thickness_mm) == (scaled.density, scaled.beta, scaled.thickness_mm)
    # away from both lesions (and the reach of the for-presentation unsharp mask) nothing changed
    away = _far_from(plain.lesions[0].mask | scaled.lesions[0].mask, 40)
    assert away.sum() > 0.5 * away.size
    np.testing.assert_array_equal(plain.pixels[away], scaled.pixels[away])
    assert not np.array_equal(plain.pixels, scaled.pixels)


@pytest.mark.parametrize("cls", ["mass", "asymmetry"])
def test_size_scale_scales_every_length_and_keeps_the_shape(cls):
    one = simulate_mammogram(5, lesion_classes=(cls,), **MID).lesions[0]
    two = simulate_mammogram(5, lesion_classes=(cls,), lesion_size=2.0, **MID).lesions[0]
    assert two.size_mm == pytest.approx(2 * one.size_mm) and two.size_scale == 2.0
    assert two.radius == pytest.approx(2 * one.radius, rel=0.02)
    assert one.detail == two.detail
    assert two.mask.sum() / one.mask.sum() == pytest.approx(4.0, rel=0.2)
    # the same outline: the scaled mask shrunk back about its centre overlaps the nominal one
    ys, xs = np.nonzero(two.mask)
    back = np.zeros_like(one.mask)
    cy2, cx2 = two.cy - 0.5, two.cx - 0.5
    cy1, cx1 = one.cy - 0.5, one.cx - 0.5
    r = np.clip(np.round(cy1 + (ys - cy2) / 2).astype(int), 0, back.shape[0] - 1)
    c = np.clip(np.round(cx1 + (xs - cx2) / 2).astype(int), 0, back.shape[1] - 1)
    back[r, c] = True
    overlap = (back & one.mask).sum() / (back | one.mask).sum()
    assert overlap > 0.75


def test_bad_scales_are_one_sentence():
    with pytest.raises(ValueError, match="contrast scale must be a number >= 0"):
        simulate_mammogram(1, lesion_classes=("mass",), lesion_contrast=-1, **SMALL)
    with pytest.raises(ValueError, match="size scale must be above 0"):
        simulate_mammogram(1, lesion_classes=("mass",), lesion_size=0, **SMALL)


def test_a_data_set_at_another_conspicuity_keeps_its_normals_and_labels_record_the_scales(tmp_path):
    kw = dict(n=3, views=("CC",), lateralities=("L", "R"), lesion_fraction=1.0, shape=(256, 208),
              pixel_spacing=0.8, seed=4, splits=(0.4, 0.3, 0.3), masks=False)
    rows1 = generate_dataset(tmp_path / "c1", **kw)
    rows2 = generate_dataset(tmp_path / "c2", lesion_contrast=2.0, **kw)
    header = (tmp_path / "c1" / "labels.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == COLUMNS  # no scale columns where every lesion is realistic
    back = read_labels(tmp_path / "c2" / "labels.csv")
    assert [r.path for r in back] == [r.path for r in rows1] and [r.split for r in back] == [r.split for r in rows1]
    assert [r.label for r in back] == [r.label for r in rows1]
    lesions = [r for r in back if r.is_lesion]
    assert lesions and all(r.contrast == 2.0 and r.size_scale == 1.0 for r in lesions)
    assert all(r.contrast is None for r in back if not r.is_lesion)
    assert back == rows2
    for r in rows1:
        same = (tmp_path / "c1" / r.path).read_bytes() == (tmp_path / "c2" / r.path).read_bytes()
        assert same == (not r.is_lesion)  # normal images are byte-identical, lesion images are not
    manifest = json.loads((tmp_path / "c2" / "phantom.json").read_text())
    assert manifest["parameters"]["lesion_contrast"] == 2.0
    # reusing the normals of the first set writes exactly the same set
    rows3 = generate_dataset(tmp_path / "c3", lesion_contrast=2.0, reuse=tmp_path / "c1", **kw)
    assert rows3 == rows2
    assert json.loads((tmp_path / "c3" / "phantom.json").read_text()) == manifest
    for r in rows1:
        assert (tmp_path / "c3" / r.path).read_bytes() == (tmp_path / "c2" / r.path).read_bytes()
    with pytest.raises(ValueError, match="another recipe \\(seed differ"):
        generate_dataset(tmp_path / "c4", reuse=tmp_path / "c1", **{**kw, "seed": 5})


def test_phantom_command_takes_the_scales(tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "p"
    assert main(["phantom", "--out", str(out), "--n", "2", "--views", "CC", "--lateralities", "L",
                 "--shape", "256x208", "--spacing", "0.8", "--lesion-fraction", "1", "--lesion-contrast", "2.5",
                 "--lesion-size", "1.5"]) == 0
    rows = [r for r in read_labels(out / "labels.csv") if r.is_lesion]
    assert len(rows) == 2 and all((r.contrast, r.size_scale) == (2.5, 1.5) for r in rows)
    with pytest.raises(SystemExit):
        main(["phantom", "--out", str(out), "--lesion-contrast", "-2"])
    assert "is not a scale" in capsys.readouterr().err


def test_dbt_volumes_take_the_scales_too():
    from training.phantom import simulate_dbt

    kw = dict(shape=(128, 104), n_slices=12, pixel_spacing=0.8)
    plain = simulate_dbt(2, lesion_classes=(), **kw)
    hidden = simulate_dbt(2, lesion_classes=("mass",), lesion_contrast=0.0, **kw)
    k = int(hidden.lesions[0].z_center)
    np.testing.assert_array_equal(hidden.frame(k), plain.frame(k))  # contrast 0: no lesion in any slice
    one = simulate_dbt(2, lesion_classes=("mass",), **kw).lesions[0]
    big = simulate_dbt(2, lesion_classes=("mass",), lesion_size=1.5, **kw).lesions[0]
    assert big.size_mm == pytest.approx(1.5 * one.size_mm) and big.mask.sum() > 1.5 * one.mask.sum()


def test_a_bundle_records_the_conspicuity_its_phantom_was_written_at(tmp_path):
    """The training-data recipe in model.json makes the same data again: the contrast and size
    scales are part of it (a recipe without them would make the realistic phantom)."""
    from training.export import data_recipe

    generate_dataset(tmp_path / "c", n=1, shape=(64, 64), pixel_spacing=2.0, lesion_fraction=1.0,
                     lesion_contrast=12.0, lesion_size=1.5, splits=(1.0, 0.0, 0.0))
    recipe = data_recipe(tmp_path / "c" / "labels.csv")
    assert recipe.endswith("--lesion-contrast 12 --lesion-size 1.5")
    generate_dataset(tmp_path / "r", n=1, shape=(64, 64), pixel_spacing=2.0, splits=(1.0, 0.0, 0.0))
    assert "--lesion-contrast" not in data_recipe(tmp_path / "r" / "labels.csv")
