"""The evaluation card: one protocol for every method and every shipped bundle.

A number without its baseline says nothing, so the card sets every number beside its null. The
card is a list of :class:`~training.evaluation.sections.CardSection` objects, each measuring one
block of the report and rendering it (Markdown lines and its part of the key line). A method's
registry entry names its sections by dotted path (``MethodSpec.card``, e.g.
``"training.inpainting.card:SECTIONS"``), imported on use like its engine, so a method adds its
own sections (inpainting's map variants and completion quality, synthesis's quality tables)
from its own training package, and nothing here knows which method it measures.

The sections every map method shares (:data:`~training.evaluation.sections.DETECTION`):

* image level: AUC with its DeLong 95 % interval, sensitivity and specificity at the bundle's
  calibrated threshold, overall and per lesion class, for the paper's score and for a focal score
  (mean of the top 1 % of breast pixels of the map); a threshold comes from the bundle's
  calibration (measured on the val split at the same run parameters) or from Youden's J on the val
  split, never from the split under test: with neither, the card reports AUC only and says so;
* localisation: paper 002's Table 2 ratio (mean map inside the lesion boxes / outside, breast
  pixels) next to the same boxes laid on a normal image of the same view (paired Wilcoxon), and
  the hit rate (share of the map's top 1 % inside the boxes) against chance;
* the foreign-object plumbing check (:mod:`training.evaluation.foreign_objects`);
* the supervised ceiling (:mod:`training.ceiling`);
* the training budget next to the paper's.

:func:`evaluate_bundle` runs a method's sections and writes ``card.json`` and ``card.md`` into the
bundle atomically; ``card.json``'s ``key_line`` is what the viewer shows beside the score.
"""
from training.evaluation.card import (
    CARD_MD,
    card_markdown,
    evaluate_bundle,
    key_line,
    rerender_card,
    write_card,
)
from training.evaluation.sections import DETECTION, CardContext, CardSection

__all__ = ["CARD_MD", "DETECTION", "CardContext", "CardSection", "card_markdown", "evaluate_bundle", "key_line",
           "rerender_card", "write_card"]
