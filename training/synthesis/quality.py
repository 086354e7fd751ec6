"""Paper 004's quality tables for a synthesis bundle, measured against held-out real patches.

Per class (Tables 6-9): ten synthetic patches (seed 0, the first ten of the set), each compared
with every real patch of its class in the held-out split; a row holds the mean PSNR, SSIM, DSSIM,
MSE and FSIM over those real patches (the paper compares "the real image" with each synthetic one
without saying which; the mean over the class is the choice that does not depend on a pick).
Beside the rows, the same metrics between pairs of real held-out patches of the class: the value
two real lesions of one class reach, without which the synthetic numbers cannot be read.

Diversity: MS-SSIM over random pairs of synthetic patches, and over pairs of real ones (lower is
more diverse; a collapsed generator approaches 1).

Frechet classifier distance (not FID): the project's lesion-class classifier
(:mod:`training.synthesis.classifier`) is trained on the real train-split patches; its 32-d
features of ``n_fcd`` synthetic patches of a class are compared with those of the class's
held-out real patches, next to the distance from the class's real *train* patches to the same
held-out patches (the real-to-real null). With ``inception`` (a user's InceptionV3 as ONNX, see
:func:`inference.quality.inception_features`) the real FID is computed on the same sets. With tens of real patches per class these are small-sample
estimates (covariances regularised as the reference FID code does); read them against the null.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

METRICS = ("PSNR", "SSIM", "DSSIM", "MSE", "FSIM")
TABLE_ROWS = 10


def _reference_row(fake, fake_f, reals, reals_f) -> dict:
    from inference.quality import fsim_compare, mse, psnr, ssim

    values = {m: [] for m in METRICS}
    for real, real_f in zip(reals, reals_f):
        s = ssim(fake, real)
        values["PSNR"].append(psnr(fake, real))
        values["SSIM"].append(s)
        values["DSSIM"].append((1 - s) / 2)
        values["MSE"].append(mse(fake, real))
        values["FSIM"].append(fsim_compare(fake_f, real_f))
    return {m: float(np.mean(v)) for m, v in values.items()}


def _pairs_ms_ssim(images, n_pairs: int, rng) -> float:
    from inference.quality import ms_ssim

    if len(images) < 2:
        return float("nan")
    i = rng.integers(len(images), size=n_pairs)
    j = (i + rng.integers(1, len(images), size=n_pairs)) % len(images)
    return float(np.mean([ms_ssim(images[a], images[b]) for a, b in zip(i, j)]))


def quality_report(engine, labels: str | Path, *, split: str = "test", n_fcd: int = 256, classifier_steps: int = 400,
                   seed: int = 0, cache_dir: Path | None = None, inception: str | Path | None = None,
                   progress=None, log=lambda *a: None) -> dict:
    """The per-class tables, diversity and Frechet classifier distances of ``engine``'s bundle."""
    import torch

    from inference.quality import NOT_COMPUTED, frechet_features, fsim_features
    from training.datasets import roi_patches
    from training.synthesis.classifier import (
        features,
        predict,
        scores,
        train_classifier,
    )

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    r = engine.resolution
    train = roi_patches(labels, r, splits=("train",), cache_dir=cache_dir)
    test = roi_patches(labels, r, splits=(split,), cache_dir=cache_dir)
    classes = [c for c in engine.classes if c in train.labels]
    log(f"lesion-class classifier on {len(train)} real train patches ({classifier_steps} steps)")
    y_train = np.array([classes.index(c) if c in classes else -1 for c in train.labels])
    keep = y_train >= 0
    model = train_classifier(train.patches[keep], y_train[keep], len(classes), steps=classifier_steps, seed=seed)
    test_keep = np.array([c in classes for c in test.labels])
    y_test = np.array([classes.index(c) for c, k in zip(test.labels, test_keep) if k])
    clf = scores(y_test, predict(model, test.patches[test_keep]), classes) if test_keep.any() else None
    rng = np.random.default_rng(seed)
    per_class = {}
    for k, cls in enumerate(classes):
        if progress:
            progress(k, len(classes), cls)
        reals = test.patches[np.array(test.labels) == cls]
        train_reals = train.patches[np.array(train.labels) == cls]
        fakes = engine.generate(cls, n_fcd, seed)
        block: dict = {"n_real": int(len(reals)), "n_synthetic": int(n_fcd)}
        if len(reals):
            reals_f = [fsim_features(x) for x in reals]
            rows = [_reference_row(f, fsim_features(f), reals, reals_f) for f in fakes[:TABLE_ROWS]]
            block["rows"] = rows
            block["average"] = {m: float(np.mean([row[m] for row in rows])) for m in METRICS}
            if len(reals) > 1:
                null = [_reference_row(reals[i], reals_f[i], np.delete(reals, i, 0), reals_f[:i] + reals_f[i + 1:])
                        for i in range(len(reals))]
                block["real_vs_real"] = {m: float(np.mean([row[m] for row in null])) for m in METRICS}
            feats_real = features(model, reals)
            if len(reals) > 1:
                block["frechet_classifier_distance"] = frechet_features(feats_real, features(model, fakes))
                if len(train_reals) > 1:
                    block["frechet_classifier_distance_real_train"] = frechet_features(
                        feats_real, features(model, train_reals))
                if inception is not None:  # the real FID, with the user's InceptionV3 (ONNX)
                    from inference.quality import inception_features

                    block["fid"] = frechet_features(inception_features(inception, reals),
                                                    inception_features(inception, fakes))
        block["ms_ssim_synthetic"] = _pairs_ms_ssim(fakes, 100, rng)
        block["ms_ssim_real"] = _pairs_ms_ssim(reals, 100, rng) if len(reals) > 1 else float("nan")
        per_class[cls] = block
    return {"classes": per_class, "split": split, "not_computed": dict(NOT_COMPUTED),
            "classifier": {"description": "lesion-class CNN (training.synthesis.classifier) trained on the real "
                                          f"train-split patches, {classifier_steps} steps, seed {seed}; its 32-d "
                                          "penultimate features are the Frechet classifier distance's space",
                           "held_out": clf},
            "n_train_real": int(len(train)), "n_held_out_real": int(len(test))}
