"""Shared fixtures: real data from ../shared/data (skipped when absent), pydicom's own files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_configure(config):
    """The suite makes far more Qt calls than one session: PySide6 6.12.0 on Python 3.11 would
    drain True's and None's reference counts (app/qt_guard.py) and abort a test process."""
    try:
        import PySide6  # noqa: F401
    except ImportError:
        return
    from app.qt_guard import install

    install()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MAMMOLENS_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or a clean skip naming what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (set MAMMOLENS_SHARED_DATA)")
    return path


def pydicom_file(name: str) -> Path:
    """A test file shipped inside pydicom's wheel (never downloaded)."""
    import pydicom

    path = Path(pydicom.__file__).parent / "data" / "test_files" / name
    if not path.exists():
        pytest.skip(f"pydicom's wheel does not ship {name}")
    return path


@pytest.fixture(scope="session")
def phantom_study(tmp_path_factory):
    """A small phantom study: 2 patients x 4 views (one lesion) + 1 DBT volume with a lesion."""
    from training.phantom import generate_dataset

    out = tmp_path_factory.mktemp("phantom")
    rows = generate_dataset(out, n=2, lesion_fraction=0.5, shape=(320, 256), pixel_spacing=0.4,
                            dbt=1, dbt_slices=12, dbt_shape=(256, 208), seed=3)
    return out, rows


def train_tiny_healthygan(root: Path, *, resolution: int = 32, width: int = 4, iterations: int = 4,
                          residual_blocks: int = 1, command: str = "pytest tiny run"):
    """A few HealthyGAN iterations on 8 small phantom patients: cheap, real weights, real files.

    Returns the run's config; its run folder is ``root / "run"``.
    """
    from training.healthygan import HealthyGAN, HealthyGANConfig
    from training.loop import train
    from training.phantom import generate_dataset

    generate_dataset(root / "data", n=8, views=("CC",), lesion_fraction=0.5, classes=("mass",),
                     shape=(256, 208), pixel_spacing=0.8, splits=(0.5, 0.25, 0.25), seed=4)
    cfg = HealthyGANConfig(labels=str(root / "data" / "labels.csv"), out=str(root / "run"), resolution=resolution,
                           width=width, critic_width=width, residual_blocks=residual_blocks, batch=2, iterations=iterations,
                           checkpoint_every=2, sample_every=iterations, seed=1, threads=1, command=command)
    train(HealthyGAN(cfg), log=lambda *a: None)
    return cfg


@pytest.fixture(scope="session")
def tiny_healthygan(tmp_path_factory):
    """One tiny HealthyGAN run and its exported bundle for the whole session (32 px, width 4, 12
    iterations, seed 1): ``(root, cfg, bundle_dir)``; the models folder is ``root / "models"``.

    Tests that change the run copy it first; the bundle is read-only for everyone.
    """
    pytest.importorskip("torch")
    from training.export import export_run

    root = tmp_path_factory.mktemp("tiny-healthygan")
    cfg = train_tiny_healthygan(root, iterations=12)
    bundle_dir = root / "models" / "tiny"
    export_run(root / "run", bundle_dir, name="tiny", log=lambda *a: None)
    return root, cfg, bundle_dir


@pytest.fixture(scope="session")
def tiny_inpainting(tiny_healthygan, tmp_path_factory):
    """One tiny inpainting run (preset ``tiny``: 64 px images, FOV 32, hole 16, width 2, 3 iterations)
    on the tiny HealthyGAN phantom, and its exported bundle: ``(labels, run_dir, bundle_dir)``."""
    pytest.importorskip("torch")
    from training.export import export_run
    from training.inpainting import PRESETS, InpaintingConfig, Method
    from training.loop import config_from_preset, train

    root = tmp_path_factory.mktemp("tiny-inpainting")
    labels = tiny_healthygan[1].labels
    cfg = config_from_preset(InpaintingConfig, "tiny", PRESETS, labels=labels, out=str(root / "run"), seed=1,
                             command="pytest tiny inpainting run")
    train(Method(cfg), log=lambda *a: None)
    bundle_dir = root / "models" / "tiny-inpainting"
    export_run(root / "run", bundle_dir, name="tiny-inpainting", log=lambda *a: None)
    return labels, root / "run", bundle_dir


def write_roi_dataset(root: Path, *, per_class: int = 3, size: int = 96, seed: int = 5) -> Path:
    """A labels file over small PNG 'films' with one drawn lesion each (four classes, train and
    test splits): ROI training data in well under a second, no phantom simulation."""
    import numpy as np

    from inference.images import png_bytes
    from inference.labels import LESION_CLASSES, LabelRow, write_labels

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    yy, xx = np.mgrid[:size, :size]
    for k, label in enumerate(LESION_CLASSES):
        for i in range(per_class + 2):
            film = 0.3 + 0.1 * rng.random((size, size))
            cx, cy, r = rng.uniform(30, size - 30), rng.uniform(30, size - 30), 6 + 3 * k
            film[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] += 0.2 + 0.1 * k
            name = f"{label}_{i}.png"
            (root / name).write_bytes(png_bytes((np.clip(film, 0, 1) * 255).astype(np.uint8)))
            rows.append(LabelRow(path=name, patient=f"P{k}{i}", laterality="L", view="CC",
                                 split="test" if i >= per_class else "train", label=label,
                                 x0=cx - r, y0=cy - r, x1=cx + r, y1=cy + r))
    return write_labels(root / "labels.csv", rows)


@pytest.fixture(scope="session")
def tiny_synthesis(tmp_path_factory):
    """One tiny ROI-synthesis run (preset tiny: 32 px, 4 iterations) on drawn lesions and its
    exported bundle: ``(root, labels_csv, bundle_dir)``. The bundle is read-only for everyone."""
    pytest.importorskip("torch")
    from training.export import export_run
    from training.loop import config_from_preset, train
    from training.synthesis import PRESETS, Config, Method

    root = tmp_path_factory.mktemp("tiny-synthesis")
    labels = write_roi_dataset(root / "data")
    cfg = config_from_preset(Config, "tiny", PRESETS, labels=str(labels), out=str(root / "run"), seed=1,
                             command="pytest tiny synthesis run")
    train(Method(cfg), log=lambda *a: None)
    bundle_dir = root / "models" / "tiny-synthesis"
    export_run(root / "run", bundle_dir, name="tiny-synthesis", log=lambda *a: None)
    return root, labels, bundle_dir


def sr_content_items(ds) -> list:
    """Every content item of a DICOM Structured Report, depth first."""
    out = []
    for item in ds.get("ContentSequence", []):
        out.append(item)
        out += sr_content_items(item)
    return out
