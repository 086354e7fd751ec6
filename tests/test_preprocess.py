"""The preprocessing contract of paper 000 and its exact inverse."""
from __future__ import annotations

import numpy as np
import pytest

from inference.preprocess import breast_mask, preprocess, to_model_space, to_original


def _breast(rows, cols, laterality, view):
    """A synthetic breast against the chest wall side of the convention (L: left edge)."""
    yy, xx = np.mgrid[:rows, :cols].astype(np.float32)
    img = np.zeros((rows, cols), np.float32)
    inside = ((yy - rows / 2) / (0.45 * rows)) ** 2 + (xx / (0.7 * cols)) ** 2 < 1
    img[inside] = 0.5
    if view == "MLO":
        img[(xx + yy * 0.5 < 0.25 * cols)] = 0.6  # pectoral wedge, upper chest-wall corner
    img[rows - 12 : rows - 4, cols - 20 : cols - 4] = 1.0  # a detached label, not breast
    return img if laterality == "L" else img[:, ::-1].copy()


@pytest.mark.parametrize("laterality", ["L", "R"])
@pytest.mark.parametrize("view", ["CC", "MLO"])
@pytest.mark.parametrize("shape", [(301, 217), (1023, 831), (255, 400)])
def test_model_space_map_lands_on_the_original_pixels(laterality, view, shape):
    rows, cols = shape
    img = _breast(rows, cols, laterality, view)
    r0, c0 = int(rows * 0.6), int(cols * 0.3) if laterality == "L" else int(cols * 0.6)
    size = max(9, max(shape) // 24)  # a "lesion" of at least 2 x 2 model pixels
    img[r0 : r0 + size, c0 : c0 + size] = 1.0
    model = preprocess(img, laterality, 64)
    # the breast faces left in model space whatever its side
    assert model.image[:, :4].mean() > model.image[:, -4:].mean()
    # a map that marks the lesion in model space, made from the model image itself
    lesion = model.image >= 0.9 * model.image.max()
    lesion &= model.mask
    back = to_original(lesion.astype(np.float32), model.geometry)
    assert back.shape == (rows, cols)
    ys, xs = np.nonzero(back > 0.5)
    centre = (r0 + (size - 1) / 2, c0 + (size - 1) / 2)
    tolerance = max(rows, cols) / 64  # one model pixel
    assert abs(ys.mean() - centre[0]) <= tolerance and abs(xs.mean() - centre[1]) <= tolerance


def test_inverse_of_forward_is_the_image_at_model_resolution():
    rows, cols = 517, 389
    yy, xx = np.mgrid[:rows, :cols] / 40.0
    smooth = 0.5 + 0.25 * np.sin(xx) * np.cos(0.7 * yy) + 0.2 * np.sin(0.3 * xx + 0.5 * yy)
    for lat in ("L", "R"):
        model = preprocess(smooth.astype(np.float32), lat, 128)
        back = to_original(model.image, model.geometry)
        assert np.corrcoef(back.ravel(), smooth.ravel())[0, 1] > 0.99


def test_exact_placement_on_an_integer_grid():
    """Side a multiple of the resolution: each model pixel is the mean of its block, and goes back to it."""
    img = np.zeros((256, 200), np.float32)
    img[40:44, 100:104] = 1.0
    from inference.preprocess import _geometry

    g = _geometry(256, 200, False, 64)
    assert (g.side, g.factor) == (256, 4)
    model = to_model_space(img, g)
    assert model[10, 25] == 1.0 and model.sum() == 1.0
    back = to_original(model, g, order=0)
    assert np.array_equal(back > 0.5, img > 0.5)


def test_breast_mask_excludes_background_and_labels():
    img = _breast(300, 240, "L", "MLO")
    mask = breast_mask(img)
    assert mask[150, 10] and not mask[150, 235]
    assert not mask[292, 225], "the detached label is not breast"


def test_padding_is_away_from_the_chest_wall():
    img = _breast(400, 200, "R", "CC")
    model = preprocess(img, "R", 100)
    # right breast flipped to face left, zero padding on the right half
    assert model.geometry.flipped
    assert model.image[:, 60:].max() == 0.0


def _reference_preprocess(display, laterality, resolution):
    """The preprocessing contract written out plainly: the clipped frame and the full-size breast mask
    through :func:`to_model_space` (what :func:`preprocess` computes without the full-size mask)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    display = np.clip(np.asarray(display, dtype=np.float32), 0.0, 1.0)
    step = max(1, int(np.ceil(max(display.shape) / 512)))
    small = display[::step, ::step]
    breast = np.zeros(display.shape, dtype=bool)
    if float(small.max()) > float(small.min()):
        fg = small > 0.5 * threshold_otsu(small)
        fg = ndimage.binary_opening(np.pad(fg, 3, mode="edge"), iterations=2)[3:-3, 3:-3]
        labels, n = ndimage.label(fg)
        if n:
            sizes = ndimage.sum_labels(fg, labels, index=np.arange(1, n + 1))
            keep = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1)
            breast = np.repeat(np.repeat(keep, step, axis=0), step, axis=1)[: display.shape[0], : display.shape[1]]
    rows, cols = display.shape
    from inference.preprocess import _geometry

    g = _geometry(rows, cols, laterality == "R", resolution)
    image = np.clip(to_model_space(display, g), 0.0, 1.0)
    return image, to_model_space(breast.astype(np.float32), g) > 0.5, breast, g


@pytest.mark.parametrize("shape, resolution", [((1229, 945), 128), ((600, 1001), 256), ((512, 416), 512),
                                               ((257, 130), 128)])
@pytest.mark.parametrize("laterality", ["L", "R"])
def test_preprocess_is_the_plain_contract_exactly(shape, resolution, laterality):
    """The breast mask placed in model space from its coarse copy, and the frame clipped straight into
    its blocks, give the very values of the plain way (the scores and maps do not move)."""
    from training.phantom import simulate_mammogram

    im = simulate_mammogram(3, shape=shape, pixel_spacing=0.2 * 2457 / max(shape), lesion_classes=("mass",))
    display = im.pixels.astype(np.float32) / np.float32(im.pixels.max()) * 1.2 - 0.1  # some out of [0, 1]
    display[40:60, 10:30] = 0.0  # a hole in the breast: filled
    got = preprocess(display, laterality, resolution)
    image, mask, breast, g = _reference_preprocess(display, laterality, resolution)
    assert got.geometry == g
    np.testing.assert_array_equal(got.image, image)
    np.testing.assert_array_equal(got.mask, mask)
    np.testing.assert_array_equal(got.breast, breast)
    np.testing.assert_array_equal(breast_mask(np.clip(display, 0, 1)), breast)


def test_model_space_maps_are_put_back_when_read():
    from inference.preprocess import ModelSpaceMaps

    rng = np.random.default_rng(4)
    display = np.zeros((900, 700), np.float32)
    display[100:800, :500] = 0.6 + 0.1 * rng.random((700, 500), dtype=np.float32)
    prepared = preprocess(display, "R", 128)
    m = rng.random((128, 128), dtype=np.float32)
    maps = ModelSpaceMaps({"difference": m, "healthy": m}, prepared.geometry, prepared.coarse_breast,
                          masked=("difference",))
    assert maps.nbytes < 900 * 700  # nothing full-size until read
    assert maps.shape_of("healthy") == (900, 700)
    np.testing.assert_array_equal(maps["healthy"], to_original(m, prepared.geometry))
    np.testing.assert_array_equal(maps["difference"], to_original(m, prepared.geometry) * prepared.breast)
    assert not maps["difference"][:, -150:].any()  # the air right of the breast
    slim = maps.subset(["difference"], np.float16)
    assert list(slim) == ["difference"] and slim["difference"].dtype == np.float16


def test_full_size_maps_made_are_held_within_a_bound(monkeypatch):
    from inference import preprocess as pp

    held = pp._HeldMaps(limit=3 * 900 * 700 * 4)
    monkeypatch.setattr(pp, "HELD_MAPS", held)
    g = pp._geometry(900, 700, False, 128)
    m = np.random.default_rng(1).random((128, 128), dtype=np.float32)
    slices = [pp.ModelSpaceMaps({"difference": m * k}, g) for k in range(6)]
    for s in slices:  # hovering over every slice
        s["difference"]
    assert held.nbytes <= 3 * 900 * 700 * 4  # the three most recent kept, the others dropped
    np.testing.assert_array_equal(slices[0]["difference"], to_original(m * 0, g))  # made again when read
    assert slices[5]["difference"] is slices[5]["difference"]  # a kept one is not made twice


def test_asking_which_maps_there_are_makes_none(monkeypatch):
    from inference import preprocess as pp

    held = pp._HeldMaps()
    monkeypatch.setattr(pp, "HELD_MAPS", held)
    g = pp._geometry(900, 700, False, 128)
    maps = pp.ModelSpaceMaps({"difference": np.zeros((128, 128), np.float32)}, g)
    assert "difference" in maps and "mask" not in maps and list(maps) == ["difference"] and len(maps) == 1
    assert held.nbytes == 0
