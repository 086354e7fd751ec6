"""The HealthyGAN (translation) card: the sections every map method shares, and its baseline."""
from __future__ import annotations

from training.evaluation import DETECTION
from training.evaluation.sections import Baseline


def local_contrast_baseline(context) -> dict:
    """The image minus its smoothed self at the lesion scale (half the median lesion-box side of the
    context's reference boxes, at least 2 px): what a translation to a healthy image must beat."""
    return local_contrast_at(context.reference_boxes())


def local_contrast_at(boxes) -> dict:
    from inference.baselines import local_contrast_maps
    from inference.metrics import median_box_side

    if not any(boxes):
        raise ValueError("the local-contrast baseline needs lesion boxes to set its scale.")
    scale = max(2.0, 0.5 * median_box_side(boxes))
    return {"name": "local-contrast residual", "scale_px": scale,
            "description": f"|image smoothed at 1 px - image smoothed at the lesion scale {scale:.1f} px| in the "
                           "breast (Gaussians normalised over the breast)",
            "maps": lambda images, masks: local_contrast_maps(images, masks, scale)}


SECTIONS = DETECTION + (Baseline(local_contrast_baseline),)
