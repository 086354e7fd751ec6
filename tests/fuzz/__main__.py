"""``python -m tests.fuzz``: open thousands of mutated DICOM files as the viewer does; print the outcomes.

Each worker is a child process that takes a batch of case indices (start-up is paid once per
batch) under a 4 GiB address-space cap; a case that runs past the timeout, or kills the worker,
is recorded as a hang or a native crash and a fresh worker carries on with the next case.

    nice -n 10 .venv/bin/python -m tests.fuzz --cases 10000 --seed 1
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tests.fuzz.runner import run_fuzz, table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1, help="run seed: the same seed makes the same cases")
    p.add_argument("--start", type=int, default=0, help="first case index")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per case before it counts as a hang")
    p.add_argument("--cap-gib", type=float, default=4.0, help="address-space cap of a worker")
    p.add_argument("--batch", type=int, default=400, help="cases per worker before it is replaced")
    p.add_argument("--no-real", action="store_true", help="leave out ../shared/data/dicom-real")
    p.add_argument("--report", type=Path, help="write every case's outcome here (JSON lines)")
    p.add_argument("--details", type=int, default=3, help="examples printed per failing outcome")
    args = p.parse_args(argv)
    started = time.monotonic()
    results = run_fuzz(range(args.start, args.start + args.cases), seed=args.seed, jobs=args.jobs,
                       timeout=args.timeout, address_cap=int(args.cap_gib * (1 << 30)), batch=args.batch,
                       include_real=not args.no_real, progress=lambda done, total: print(
                           f"\r{done}/{total}", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text("".join(json.dumps(r) + "\n" for r in results))
    print(table(results, details=args.details))
    print(f"{len(results)} cases (seed {args.seed}) in {time.monotonic() - started:.0f} s")
    bad = [r for r in results if r["outcome"] not in ("ok", "typed error")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
