"""The supervised ceiling of the evaluation card (training.evaluation).

The method's own network family (its ``supervised_network``: HealthyGAN's critic with a global
mean over its patch outputs) trained *with* the labels, lesion or normal, on the same training
split at the same resolution as the bundle, with the epoch chosen on the val split and scored on
the split under test. No unsupervised method can be expected to beat it, so an AUC near chance
beside a ceiling near chance says the setting (resolution, data) hides the lesions, not only
that the GAN trained too briefly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

EPOCHS = 30
BATCH = 16
LR = 1e-4


def _scores(net, images: np.ndarray, device) -> np.ndarray:
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 64):
            x = torch.from_numpy(images[i:i + 64, None] * 2.0 - 1.0).to(device)
            out.append(net(x).flatten().cpu().numpy())
    net.train()
    return np.concatenate(out).astype(np.float64)


def supervised_ceiling(bundle, labels: str | Path, *, split: str = "test", epochs: int = EPOCHS, seed: int = 0,
                       device: str = "cpu") -> dict:
    """Train the supervised network of ``bundle``'s method on ``labels``; AUC on ``split``."""
    from inference.methods import get
    from inference.metrics import auc_confidence_interval, roc_auc
    from training.datasets import load_images
    from training.torch_utils import seed_everything

    package = get(bundle.method).training_package()
    values = dict(bundle.provenance.get("config") or {})
    values.update(labels=str(labels), out="", resolution=int(bundle.input.resolution))
    known = set(package.Config.__dataclass_fields__)
    method = package.Method(package.Config(**{k: v for k, v in values.items() if k in known}))
    resolution = method.resolution
    train = load_images(labels, resolution, splits=("train",))
    val = load_images(labels, resolution, splits=("val",))
    test = load_images(labels, resolution, splits=(split,))
    seed_everything(seed)
    dev = torch.device(device)
    net = method.supervised_network().to(dev)
    opt = torch.optim.Adam(net.parameters(), LR, betas=(0.5, 0.999))
    y = torch.from_numpy((~train.is_normal).astype(np.float32))
    positive = float(y.mean())
    # class-balanced loss: lesion images are a minority in most splits
    weight = torch.tensor((1 - positive) / max(positive, 1e-6))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=weight)
    x_all = torch.from_numpy(train.images[:, None] * 2.0 - 1.0)
    best = (-1.0, None, 0)
    for epoch in range(epochs):
        order = torch.randperm(len(x_all))
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            x = x_all[idx].to(dev)
            # the flips and small shifts a lesion classifier needs to not memorise 500 images
            if torch.rand(()) < 0.5:
                x = torch.flip(x, dims=(2,))
            loss = loss_fn(net(x).flatten(), y[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val_auc = roc_auc(~val.is_normal, _scores(net, val.images, dev))
        if val_auc > best[0]:
            best = (val_auc, {k: v.detach().clone() for k, v in net.state_dict().items()}, epoch + 1)
    net.load_state_dict(best[1])
    test_scores = _scores(net, test.images, dev)
    truth = ~test.is_normal
    return {"auc": roc_auc(truth, test_scores), "auc_ci": list(auc_confidence_interval(truth, test_scores)),
            "val_auc": best[0], "train_auc": roc_auc(~train.is_normal, _scores(net, train.images, dev)),
            "epoch": best[2], "epochs": epochs, "n_train": len(train), "resolution": resolution,
            "description": f"{type(method).__name__}'s supervised network (the critic family, global mean of its "
                           f"patch outputs, one logit) trained with the lesion labels on the {len(train)} training "
                           f"images at {resolution} px, {epochs} epochs of Adam {LR:g}, class-balanced BCE, "
                           f"horizontal flips; epoch {best[2]} chosen on the val split."}
