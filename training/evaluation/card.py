"""Run a method's card sections, render the card, write it into the bundle."""
from __future__ import annotations

import json
from pathlib import Path

from training.evaluation.sections import BUDGET, CardContext, CardSection

CARD_MD = "card.md"


def sections_of(method: str) -> tuple[CardSection, ...]:
    """The method's card sections (its registry entry names them), then the training budget."""
    from inference.methods import get

    return tuple(get(method).card_sections()) + (BUDGET,)


def evaluate_bundle(labels: str | Path, *, method: str = "translation", model: str | None = None, split: str = "test",
                    device: str = "auto", card: bool = True, parameters: dict | None = None,
                    options: dict | None = None, progress=None, log=print) -> dict:
    """Every section of the method's card, measured on ``split`` of ``labels``; written into the bundle.

    ``parameters``: the method's run parameters for every map and score (defaults filled in from
    the registry); ``options``: the card's settings a section reads (``ceiling``,
    ``object_patients``, ``completion_images``, ``csv``, ...).
    """
    from inference.bundle import CARD_JSON
    from inference.methods import get
    from inference.methods import load_engine

    spec = get(method)
    engine = load_engine(spec.method, model, device)
    # the parameters as given: the engine fills in its own defaults (a projection bundle's projector
    # steps), and a calibration measured at other values is not used for the threshold
    run = {k: v for k, v in (parameters or {}).items() if k != "device"}
    previous = read_card(engine.bundle.path / CARD_JSON)
    context = CardContext(engine=engine, labels=Path(labels), split=split, parameters=run, options=dict(options or {}),
                          previous=previous, progress=progress, log=log)
    report = {"bundle": engine.bundle.name, "version": engine.bundle.version, "method": spec.method,
              "labels": Path(labels).name, "split": split, "provider": engine.provider, "parameters": run}
    reuse = set(context.option("reuse", ()))
    unknown = reuse - {s.name for s in sections_of(spec.method)} - {"budget"}
    if unknown:
        from inference.errors import MammolensError

        raise MammolensError(f"the {spec.title} card has no section {', '.join(sorted(unknown))} to keep.")
    for section in sections_of(spec.method):
        if section.name == "image_level":  # the header's counts come with the data the image level reads
            report["n_normal"] = int(context.data.is_normal.sum())
            report["n_abnormal"] = int((~context.data.is_normal).sum())
        if section.name in reuse and section.name in previous:  # measured by an earlier run on the same data
            report[section.name] = previous[section.name]
            report.setdefault("kept_from_previous_card", []).append(section.name)
            continue
        block = section.measure(context)
        if block is not None:
            report[section.name] = block
    report["key_line"] = key_line(report)
    if card:
        write_card(engine.bundle.path, report)
    return report


def key_line(report: dict) -> str:
    """One line for the viewer: each section's part, in the card's order."""
    parts = [part for section in sections_of(report["method"]) if section.name in report
             for part in [section.key_part(report[section.name], report)] if part]
    return "; ".join(parts)


def card_markdown(report: dict) -> str:
    lines = [f"# Evaluation card: {report['bundle']} {report['version']} ({report['method']})", "",
             f"**{report['key_line']}**", ""]
    if report.get("kept_from_previous_card"):
        lines += [f"Kept from the bundle's previous card (the same data, measured by an earlier run): "
                  f"{', '.join(report['kept_from_previous_card'])}.", ""]
    for section in sections_of(report["method"]):
        if section.name in report:
            lines += section.markdown(report[section.name], report)
    return "\n".join(lines) + ("\n" if lines[-1] else "")


def write_card(bundle_dir: Path, report: dict) -> None:
    """``card.json``, ``card.md`` and the sections' files, each written atomically (the card last)."""
    from inference.bundle import CARD_JSON
    from inference.files import atomic_write_bytes, atomic_write_text

    for section in sections_of(report["method"]):
        if section.name in report:
            for name, content in section.files(report[section.name], report).items():
                if isinstance(content, bytes):
                    atomic_write_bytes(Path(bundle_dir) / name, content)
                else:
                    atomic_write_text(Path(bundle_dir) / name, content)
    atomic_write_text(Path(bundle_dir) / CARD_JSON, json.dumps(report, indent=2, default=float) + "\n")
    atomic_write_text(Path(bundle_dir) / CARD_MD, card_markdown(report))


def read_card(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def rerender_card(bundle_dir: Path) -> dict:
    """The card already measured, rendered again (key line and Markdown) by this version's sections."""
    from inference.bundle import CARD_JSON

    report = read_card(Path(bundle_dir) / CARD_JSON)
    if not report:
        raise FileNotFoundError(f"{bundle_dir} has no card to render")
    report["key_line"] = key_line(report)
    write_card(bundle_dir, report)
    return report
