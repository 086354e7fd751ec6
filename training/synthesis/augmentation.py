"""The augmentation experiment (paper 004's purpose): does adding synthetic patches help a
lesion-class classifier?

Both arms train the same classifier (:mod:`training.synthesis.classifier`) with the same budget
(steps x batch size) and the same seeds, and are scored on the same held-out real patches:

* *real*: the real train-split patches;
* *real + synthetic*: the same real patches plus, per class, as many synthetic patches as the
  largest real class holds (so rare classes are lifted to at least the common class's count),
  generated with seed ``10_000 + run seed``.

Reported: accuracy and recall per class, each as mean and standard deviation over the seeds,
whichever way it goes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _summary(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    return {"mean": float(a.mean()) if len(a) else float("nan"),
            "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "runs": [float(v) for v in values]}


def augmentation_experiment(engine, labels: str | Path, *, seeds=(0, 1, 2, 3, 4), steps: int = 400, batch: int = 32,
                            train_splits=("train",), test_splits=("test",), synthetic_per_class: int | None = None,
                            cache_dir: Path | None = None, log=print) -> dict:
    import torch

    from training.datasets import roi_patches
    from training.synthesis.classifier import predict, scores, train_classifier

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    r = engine.resolution
    train = roi_patches(labels, r, splits=tuple(train_splits), cache_dir=cache_dir)
    test = roi_patches(labels, r, splits=tuple(test_splits), cache_dir=cache_dir)
    classes = [c for c in engine.classes if c in train.labels]
    missing = sorted(set(test.labels) - set(classes))
    if missing:
        raise ValueError(f"the held-out split has {', '.join(missing)} lesions, which the generator or the train "
                         f"split lacks")
    y_train = np.array([classes.index(c) for c in train.labels])
    y_test = np.array([classes.index(c) for c in test.labels])
    counts = {c: int((y_train == i).sum()) for i, c in enumerate(classes)}
    per_class = synthetic_per_class or max(counts.values())
    arms: dict[str, dict] = {"real": {"accuracy": [], "recall": {c: [] for c in classes}},
                             "real + synthetic": {"accuracy": [], "recall": {c: [] for c in classes}}}
    for seed in seeds:
        fakes = [engine.generate(c, per_class, 10_000 + int(seed)) for c in classes]
        x_aug = np.concatenate([train.patches] + fakes)
        y_aug = np.concatenate([y_train] + [np.full(per_class, i) for i in range(len(classes))])
        for arm, (x, y) in (("real", (train.patches, y_train)), ("real + synthetic", (x_aug, y_aug))):
            model = train_classifier(x, y, len(classes), steps=steps, batch=batch, seed=int(seed))
            result = scores(y_test, predict(model, test.patches), classes)
            arms[arm]["accuracy"].append(result["accuracy"])
            for c in classes:
                arms[arm]["recall"][c].append(result["recall"][c])
            log(f"seed {seed} {arm:<17} accuracy {result['accuracy']:.3f}  "
                + "  ".join(f"{c} {v:.2f}" for c, v in result["recall"].items()))
    return {
        "labels": Path(labels).name, "train_splits": list(train_splits), "test_splits": list(test_splits),
        "bundle": engine.bundle.name, "version": engine.bundle.version, "classes": classes,
        "n_train_real": counts, "n_test": {c: int((y_test == i).sum()) for i, c in enumerate(classes)},
        "synthetic_per_class": int(per_class), "seeds": [int(s) for s in seeds], "steps": steps, "batch": batch,
        "arms": {arm: {"accuracy": _summary(v["accuracy"]),
                       "recall": {c: _summary(vals) for c, vals in v["recall"].items()}} for arm, v in arms.items()},
    }
