"""What `mammolens evaluate` prints and writes besides the card (the card itself: ``training.evaluation``)."""
from __future__ import annotations

from pathlib import Path


def format_report(report: dict) -> str:
    """The terminal summary: the card as ``card.md`` holds it (one rendering everywhere)."""
    from training.evaluation import card_markdown

    return card_markdown(report).rstrip() + "\n\ncard: " + report["key_line"]


def write_section_files(report: dict, path: Path) -> None:
    """``--csv``: the table a card section writes beside the card (synthesis: paper 004 Tables 6-9),
    also at ``path``; one sentence when the method's card has none."""
    from inference.errors import MammolensError
    from inference.files import atomic_write_text
    from training.evaluation.card import sections_of

    for section in sections_of(report["method"]):
        if section.name in report:
            for text in section.files(report[section.name], report).values():
                atomic_write_text(path, text)
                return
    raise MammolensError(f"--csv: the {report['method']} card has no table to write as CSV.")
