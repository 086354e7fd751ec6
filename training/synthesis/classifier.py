"""The project's own lesion-class classifier: the feature network of the Frechet classifier
distance and the model of the augmentation experiment (paper 004's point: synthetic patches for
training CNNs that characterise abnormalities).

A small CNN on ROI patches, CPU-sized: the 64 px patch averaged to 32 px, then 3 x 3 convolutions
with batch norm and ReLU, widths 8 / 16 / 32 / 32, max-pooling, global average pooling to a 32-d
feature, dropout 0.3, a linear layer to the classes, trained with Adam (lr 1e-3) and cross-entropy for a fixed number of steps on batches
drawn uniformly from its training set, with random flips / quarter turns. The *budget* is the
number of steps and the batch size: the augmentation experiment gives both arms the same one.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

FEATURES = 32


class LesionClassifier(nn.Module):
    def __init__(self, classes: int, width: int = 8):
        super().__init__()
        layers: list[nn.Module] = [nn.AvgPool2d(2)]
        c_in = 1
        for c in (width, 2 * width, 4 * width, FEATURES):
            layers += [nn.Conv2d(c_in, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True), nn.MaxPool2d(2)]
            c_in = c
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURES, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(images, dtype=np.float32)[:, None] * 2.0 - 1.0)


def train_classifier(images: np.ndarray, targets, classes: int, *, steps: int = 400, batch: int = 32,
                     lr: float = 1e-3, seed: int = 0, augment: bool = True) -> LesionClassifier:
    """A classifier trained on ``images`` ((N, R, R) in [0, 1]) with integer ``targets``."""
    from training.synthesis import dihedral

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = LesionClassifier(classes)
    x, y = _tensor(images), torch.as_tensor(np.asarray(targets), dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (batch,), generator=generator)
        xb = dihedral(x[idx], generator) if augment else x[idx]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xb), y[idx]).backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def predict(model: LesionClassifier, images: np.ndarray) -> np.ndarray:
    x = _tensor(images)
    return np.concatenate([model(x[i : i + 256]).argmax(1).numpy() for i in range(0, len(x), 256)])


@torch.no_grad()
def features(model: LesionClassifier, images: np.ndarray) -> np.ndarray:
    """The 32-d penultimate features (the Frechet classifier distance's space)."""
    x = _tensor(images)
    return np.concatenate([model.features(x[i : i + 256]).numpy() for i in range(0, len(x), 256)]).astype(np.float64)


def scores(truth, predicted, classes: list[str]) -> dict:
    """Accuracy and recall per class."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    recall = {c: float((predicted[truth == i] == i).mean()) if (truth == i).any() else float("nan")
              for i, c in enumerate(classes)}
    return {"accuracy": float((truth == predicted).mean()), "recall": recall}
