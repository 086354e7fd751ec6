"""Shared fixtures: real data from ../shared/data (skipped when absent), pydicom's own files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

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
