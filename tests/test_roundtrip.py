"""Phantom -> DICOM -> loader: what the simulator wrote is what the study model shows."""
from __future__ import annotations

import numpy as np
import pytest

from inference.studies.study import open_path


def test_folder_groups_patients_studies_and_hangs_views(phantom_study):
    folder, rows = phantom_study
    studies = open_path(folder)
    assert not studies.failures
    n_images = len({r.path for r in rows})
    assert len(studies.images()) == n_images
    two_d = [st for st in studies.studies() if not st.volumes()]
    assert len(two_d) == 2
    for study in two_d:
        names = [im.name for im in study.images()]
        assert names == ["R-CC", "L-CC", "R-MLO", "L-MLO"], "screening hanging order"
    assert [p.key for p in studies.patients][:2] == ["Patient 1", "Patient 2"]


def test_pixels_and_geometry_survive_the_round_trip(tmp_path):
    from training.phantom import simulate_mammogram, write_mammogram_dicom

    image = simulate_mammogram(7, view="MLO", laterality="R", shape=(300, 240), pixel_spacing=0.3,
                               lesion_classes=("mass",), bits_stored=14)
    for compress in (None, "rle", "jpeg2000", "jpegls"):
        path = write_mammogram_dicom(tmp_path / f"{compress}.dcm", image, compress=compress)
        loaded = open_path(path).images()[0]
        assert np.array_equal(loaded.stored(0), image.pixels), compress
        assert (loaded.laterality, loaded.view) == ("R", "MLO")
        assert loaded.pixel_spacing == pytest.approx((0.3, 0.3))
        assert loaded.bits_stored == 14 and len([p for p in loaded.presets if p.kind == "window"]) == 2
        shown = loaded.display(0)
        box = image.lesions[0].box
        lesion = shown[box[1]:box[3], box[0]:box[2]][image.lesions[0].mask[box[1]:box[3], box[0]:box[2]]]
        assert lesion.mean() > shown[image.breast_mask].mean(), "the mass shows brighter than the breast"


@pytest.fixture(scope="module")
def volume_files(tmp_path_factory):
    from training.phantom import simulate_dbt, write_dbt_dicom, write_legacy_dbt_series

    out = tmp_path_factory.mktemp("dbt")
    vol = simulate_dbt(11, view="CC", laterality="L", shape=(200, 160), n_slices=9, pixel_spacing=0.5,
                       lesion_classes=("mass",))
    enhanced = write_dbt_dicom(out / "enhanced" / "dbt.dcm", vol, compress="jpeg2000")
    legacy = write_legacy_dbt_series(out / "legacy", vol)
    return vol, enhanced, legacy


def test_enhanced_dbt_reads_functional_groups_and_decodes_lazily(volume_files):
    vol, path, _ = volume_files
    image = open_path(path).images()[0]
    assert image.is_volume and image.is_tomosynthesis and image.n_frames == 9
    assert image.decoded_frames == 0, "opening decodes nothing"
    assert image.pixel_spacing == pytest.approx((0.5, 0.5)) and image.spacing_source == "pixel measures"
    steps = np.diff(image.slice_positions)
    assert np.allclose(np.abs(steps), 1.0) and (np.all(steps > 0) or np.all(steps < 0)), "1 mm apart, in order"
    assert image.presets and image.presets[0].kind == "window", "VOI from FrameVOILUTSequence"
    assert np.array_equal(image.stored(4), vol.frame(4))
    assert image.decoded_frames == 1 and image.cached_frames() == [4]
    for k in range(9):
        image.stored(k)
    assert len(image.cached_frames()) == image.cache_frames, "the cache stays small"


def test_legacy_slices_become_one_volume_ordered_by_position(volume_files):
    vol, _, legacy = volume_files
    studies = open_path(legacy[0].parent)
    (image,) = studies.images()
    assert image.n_frames == 9 and image.is_tomosynthesis
    assert np.allclose(np.diff(image.slice_positions), 1.0)
    for k in (0, 4, 8):
        assert np.array_equal(image.stored(k), vol.frame(k)), k
    assert image.decoded_frames == 3


def test_lesion_slices_are_sharpest_inside_their_range(volume_files):
    vol, path, _ = volume_files
    les = vol.lesions[0]
    assert les.slice_start is not None and les.slice_end - les.slice_start >= 1
    image = open_path(path).images()[0]
    x0, y0, x1, y1 = les.box
    contrast = []
    for k in range(image.n_frames):
        f = image.display(k)
        contrast.append(f[y0:y1, x0:x1][les.mask[y0:y1, x0:x1]].mean() - f[vol.breast_mask].mean())
    best = int(np.argmax(contrast))
    assert les.slice_start <= best <= les.slice_end


def test_opening_a_volume_reads_no_pixel_data(tmp_path):
    """Memory stays near one frame plus the cache, not the volume (uncompressed, 17 MB)."""
    import tracemalloc

    from training.phantom import simulate_dbt, write_dbt_dicom

    vol = simulate_dbt(5, shape=(512, 416), n_slices=40, pixel_spacing=0.4)
    path = write_dbt_dicom(tmp_path / "dbt.dcm", vol)
    frame_bytes = 512 * 416 * 2
    volume_bytes = 40 * frame_bytes
    tracemalloc.start()
    image = open_path(path).images()[0]
    opened = tracemalloc.get_traced_memory()[1]
    image.display(20)
    shown = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert opened < volume_bytes / 8, f"opening allocated {opened / 2**20:.1f} MB"
    assert shown < volume_bytes / 3, f"showing one slice allocated {shown / 2**20:.1f} MB"


def test_for_processing_and_view_code_sequence(tmp_path):
    """A For Processing MG without VOI opens full-range; the view comes from ViewCodeSequence."""
    import pydicom

    from training.phantom import simulate_mammogram, write_mammogram_dicom

    image = simulate_mammogram(2, view="MLO", laterality="L", shape=(200, 160), pixel_spacing=0.5)
    path = write_mammogram_dicom(tmp_path / "p.dcm", image)
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2.1"  # Digital Mammography - For Processing
    ds.PresentationIntentType = "FOR PROCESSING"
    for name in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction", "ViewPosition",
                 "PixelSpacing"):
        delattr(ds, name)
    ds.save_as(path)
    loaded = open_path(path).images()[0]
    assert loaded.view == "MLO", "from ViewCodeSequence (SCT 399368009)"
    assert loaded.spacing_source.startswith("ImagerPixelSpacing")
    assert [p.kind for p in loaded.presets] == ["range"]
    shown = loaded.display(0)
    assert shown.min() == 0.0 and shown.max() == 1.0
