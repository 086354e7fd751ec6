"""Parent side of the fuzz harness: workers, per-case timeouts, restarts, the table of outcomes."""
from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterable

from tests.fuzz.worker import OUTCOMES

REPO = Path(__file__).resolve().parents[2]


def _budget() -> int:
    try:
        from inference.studies.limits import memory_budget
    except ImportError:  # a tree from before the budget existed (the harness measures "before" too)
        return 1 << 30
    return memory_budget()


class _Worker:
    def __init__(self, seed: int, workdir: Path, address_cap: int, budget: int, include_real: bool):
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "worker-stderr.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.worker", str(seed), str(workdir), str(address_cap), str(budget),
             "1" if include_real else "0"],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True,
            bufsize=1, env=dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1"))
        self.served = 0
        line = self._line(120.0)
        if line is None or not line.get("ready"):
            self.kill()
            raise RuntimeError("a fuzz worker did not start: " + self.log.read_text()[-2000:])

    def _line(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                text = self.proc.stdout.readline()
                if not text:
                    return {"eof": True}
                try:
                    return json.loads(text)
                except json.JSONDecodeError:
                    continue

    def run(self, index: int, timeout: float) -> dict:
        self.served += 1
        try:
            self.proc.stdin.write(f"{index}\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return {"index": index, "outcome": "native crash", "signature": "worker gone before the case"}
        line = self._line(timeout)
        if line is None:
            self.kill()
            return {"index": index, "outcome": "hang"}
        if line.get("eof"):
            code = self.proc.wait()
            name = signal.Signals(-code).name if code < 0 and -code in signal.Signals._value2member_map_ else code
            outcome = "memory blow-up" if code in (-signal.SIGKILL,) else "native crash"
            tail = " ".join(self.log.read_text().split()[-12:]) if self.log.exists() else ""
            return {"index": index, "outcome": outcome, "signature": f"worker exit {name}", "message": tail}
        return line

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


def run_fuzz(indices: Iterable[int], *, seed: int = 1, jobs: int = 1, timeout: float = 10.0,
             address_cap: int = 4 << 30, batch: int = 400, include_real: bool = True,
             progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Run the cases ``indices`` of run ``seed``; one result dict per case, in index order."""
    indices = list(indices)
    todo: queue.Queue[int] = queue.Queue()
    for i in indices:
        todo.put(i)
    results: dict[int, dict] = {}
    lock = threading.Lock()
    budget = _budget()

    def work(workdir: Path) -> None:
        worker = None
        while True:
            try:
                index = todo.get_nowait()
            except queue.Empty:
                break
            if worker is None or not worker.alive or worker.served >= batch:
                if worker is not None:
                    worker.close()
                worker = _Worker(seed, workdir, address_cap, budget, include_real)
            result = worker.run(index, timeout)
            with lock:
                results[index] = result
                if progress:
                    progress(len(results), len(indices))
        if worker is not None:
            worker.close()

    with tempfile.TemporaryDirectory(prefix="mammolens-fuzz-") as tmp:
        threads = [threading.Thread(target=work, args=(Path(tmp) / f"w{k}",), daemon=True) for k in range(max(1, jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return [results[i] for i in indices]


def table(results: list[dict], details: int = 3) -> str:
    """The outcome table (markdown), then the signatures of every failing outcome with examples."""
    counts = Counter(r["outcome"] for r in results)
    lines = ["| outcome | cases |", "| --- | ---: |"]
    for outcome in OUTCOMES:
        lines.append(f"| {outcome} | {counts.get(outcome, 0)} |")
    for outcome, n in counts.items():
        if outcome not in OUTCOMES:
            lines.append(f"| {outcome} | {n} |")
    lines.append(f"| **total** | {len(results)} |")
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in results:
        if r["outcome"] not in ("ok", "typed error"):
            groups[(r["outcome"], r.get("signature") or r.get("why") or r.get("mutation", ""))].append(r)
    if groups:
        lines.append("")
        for (outcome, signature), members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"{len(members):5d}  {outcome}: {signature}")
            for r in members[:details]:
                lines.append(f"         case {r['index']} {r.get('seed', '?')} [{r.get('mutation', '?')}] "
                             f"{(r.get('message') or '')[:160]}")
    return "\n".join(lines)
