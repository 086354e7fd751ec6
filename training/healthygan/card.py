"""The HealthyGAN (translation) card: the sections every map method shares."""
from __future__ import annotations

from training.evaluation import DETECTION

SECTIONS = DETECTION
