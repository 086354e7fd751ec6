"""The child process of the fuzz harness: opens cases as the viewer does and reports each outcome.

Reads case indices on stdin (one per line), writes one JSON line per case on stdout. Runs under an
address-space cap (``resource.setrlimit``) so a declared size that is believed becomes a
MemoryError here instead of swapping the machine; the parent kills it on a hang.

Opening "as the viewer does": ``open_path`` on the file (or the case's folder), the first image's
first frame through its default display preset; a folder case must still show its good files.
"""
from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import sys
import time
import traceback
import warnings
from pathlib import Path

OUTCOMES = ("ok", "typed error", "unhandled exception", "memory blow-up", "over budget", "hang",
            "non-finite display", "native crash", "message not one sentence", "bad file stops the rest")


def _signature(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/inference/" in f.filename or "/app/" in f.filename]
    frame = (ours or frames or [None])[-1]
    where = f"{Path(frame.filename).name}:{frame.lineno}" if frame is not None else "?"
    last = frames[-1] if frames else None
    inner = f" <- {Path(last.filename).parent.name}/{Path(last.filename).name}:{last.lineno}" if last is not None \
        and last is not frame else ""
    return f"{type(exc).__module__}.{type(exc).__name__} at {where}{inner}"


def _a_good_file_opens(folder: Path, case) -> bool:
    """Whether one of a folder case's files opens on its own (then the folder must not fail)."""
    from inference.studies.study import open_path

    for name in case.files:
        try:
            open_path(folder / name).images()[0].display(0)
            return True
        except Exception:  # noqa: BLE001
            continue
    return False


def run_case(case, workdir: Path, budget: int) -> dict:
    import numpy as np

    from inference.errors import LoadError, MammolensError
    from inference.studies.study import open_path
    from tests.fuzz.mutations import is_sentence

    INTERNAL_ERROR = getattr(sys.modules["inference.studies.study"], "INTERNAL_ERROR", "\0")

    folder = workdir / f"case{case.index}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    target = folder if case.is_folder else folder / next(iter(case.files))
    result = {"index": case.index, "seed": case.seed, "mutation": case.mutation}
    started = time.perf_counter()
    try:
        studies = open_path(target)
        # a single file: its first frame as the viewer shows it; a folder: every view, as the
        # viewer's hanging shows them (a view that fails must fail alone, with its sentence)
        images = studies.images() if case.is_folder else studies.images()[:1]
        shown_any, problems = False, []
        for image in images:
            try:
                shown = image.display(0)
            except (LoadError, MammolensError) as exc:
                if len(images) == 1:
                    raise
                problems.append(exc)
                continue
            bad_preset = any(p.kind == "window" and not (np.isfinite(p.center) and np.isfinite(p.width))
                             for p in image.presets)
            if not np.isfinite(shown).all() or bad_preset:
                result["outcome"] = "non-finite display"
                break
            shown_any = True
            if image.path.name == "good.dcm":
                result["shown_good"] = True
        else:
            result["outcome"] = "ok"
            if not shown_any and problems:
                raise problems[0]
        for exc in problems:
            fine, why = is_sentence(str(exc), case.planted)
            if not fine:
                result.update(outcome="message not one sentence", why=why, message=str(exc)[:300])
        for failure in studies.failures:
            fine, why = is_sentence(str(failure), case.planted)
            if INTERNAL_ERROR in str(failure):
                result.update(outcome="unhandled exception", signature="caught by open_path's guard (see log)")
            elif not fine:
                result.update(outcome="message not one sentence", why=why, message=str(failure)[:300])
        if case.is_folder and result["outcome"] == "ok" and "good.dcm" in case.files \
                and not result.pop("shown_good", False):
            result["outcome"] = "bad file stops the rest"
    except MemoryError:
        result["outcome"] = "memory blow-up"
    except (LoadError, MammolensError) as exc:
        message = str(exc)
        fine, why = is_sentence(message, case.planted)
        if INTERNAL_ERROR in message:
            result.update(outcome="unhandled exception", signature="caught by open_path's guard (see log)",
                          message=message[:300])
        elif not fine:
            result.update(outcome="message not one sentence", why=why, message=message[:300])
        elif case.is_folder and _a_good_file_opens(folder, case):
            result.update(outcome="bad file stops the rest", message=message[:300])
        else:
            result.update(outcome="typed error", message=message[:300])
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a panic from a native plugin is a BaseException
        result.update(outcome="unhandled exception", signature=_signature(exc), message=str(exc)[:200])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 3)
    result["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def main() -> int:
    run_seed, workdir, address_cap, budget = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    include_real = sys.argv[5] == "1" if len(sys.argv) > 5 else True
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # decoders that print go nowhere
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    import numpy  # noqa: F401 - imported before the cap: its thread pools reserve address space

    import inference.studies.study  # noqa: F401
    from tests.fuzz.mutations import make_case, seed_files

    seeds = seed_files(include_real)
    if address_cap > 0:
        resource.setrlimit(resource.RLIMIT_AS, (address_cap, address_cap))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        index = int(line)
        try:
            case = make_case(seeds, run_seed, index)
        except MemoryError:
            out.write(json.dumps({"index": index, "outcome": "skipped", "seed": "?", "mutation": "?"}) + "\n")
            continue
        result = run_case(case, workdir, budget)
        if result["peak"] - baseline > budget and result["outcome"] != "memory blow-up":
            result["outcome"] = "over budget"
        out.write(json.dumps(result) + "\n")
        if result["outcome"] == "over budget":
            return 3  # the high-water mark is spent: the parent starts a fresh worker
    return 0


if __name__ == "__main__":
    sys.exit(main())
