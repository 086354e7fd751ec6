"""Headless runs of a method over a study or a cohort: `mammolens analyze` (`evaluate`: app.evaluation).

Every analysed image, and every DBT slice with ``all_slices``, is one row keyed by its Study,
Series and SOP Instance UIDs and frame; a file that fails at any stage (header, pixels, model) is a
row too, with status ``failed`` and its sentence, and the run goes on. Output files are named by a
short hash of the image key and the view (``3f2a9c1b7d04_L-CC_difference.npy``): no two rows share
a file and no name carries a patient identifier. Patients are pseudonymous in the ``image`` column
("Patient-1_study1_R-CC"); ``identifiers`` adds each file's path relative to the input.

Resumable and safe to kill: each image's maps are written atomically, then its rows are appended to
``rows.jsonl`` (one line per image, flushed to disk: the commit point); ``results.csv`` and
``results.json`` are rewritten atomically from it. Running again into the same folder with the same
bundle (sha256 of its networks) and parameters skips what is done; anything else is refused. One
process writes (a lock on the folder); the images themselves can run in a Dask cluster
(:func:`analyze_path`'s ``workers`` / ``scheduler``), each worker loading the bundle once.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from inference.files import atomic_write_bytes, atomic_write_text, clean_stale, safe_file_name
from inference.methods import load_engine

log = logging.getLogger("mammolens.analysis")

RUN_JSON, JOURNAL, RESULTS_JSON, RESULTS_CSV = "run.json", "rows.jsonl", "results.json", "results.csv"
#: The columns of results.csv (``path`` is added with identifiers), in this order.
ROW_FIELDS = ("image", "laterality", "view", "frame", "study_uid", "series_uid", "sop_uid", "status", "message",
              "score", "threshold", "decision", "no_decision", "provider", "map", "overlay", "seconds", "key")
#: How often (seconds) results.csv / results.json are rewritten while a run goes on.
RESULTS_EVERY_S = 60.0


# ---------------------------------------------------------------------------------------------
# tasks: one image each, described by plain values so that a Dask worker can open it itself


@dataclass(frozen=True)
class Task:
    key: str  # short hash of the image key (study / series / SOP UIDs, or the file's content)
    name: str  # pseudonymous: Patient-1_study1_L-CC
    label: str  # how a sentence names the file: "file 3 of 12 (key 1a2b3c4d)", or its name
    laterality: str
    view: str
    study_uid: str
    series_uid: str
    sop_uid: str
    paths: tuple[str, ...]  # the file, or a legacy DBT volume's slice files
    frames: tuple[int, ...]  # 0-based frames analysed
    is_volume: bool
    path: str = ""  # relative to the input, only with identifiers
    #: a legacy DBT volume (one file per slice): each slice's SOP Instance UID and, with identifiers,
    #: its path, in the volume's order
    slice_sops: tuple[str, ...] = ()
    slice_paths: tuple[str, ...] = ()

    @property
    def stem(self) -> str:
        return safe_file_name(f"{self.key}_{self.laterality}-{self.view}".strip("-_")) or self.key


@dataclass(frozen=True)
class Config:
    """What every worker needs to run a task: plain values only."""
    method: str
    bundle: str  # the bundle folder (absolute; workers elsewhere need it at the same path)
    device: str
    run_arguments: dict
    main: str
    threads: int | None = None
    label: str = ""  # the main map's name in file names (inpainting: its score, DMSE / MSE / critic)


@dataclass
class Output:
    """One task's rows and the files they name (bytes, written by the driver only)."""
    key: str
    rows: list[dict]
    files: dict[str, bytes] = field(default_factory=dict)


def _image_key(study: str, series: str, sop: str) -> str:
    return hashlib.sha256(f"{study}|{series}|{sop}".encode()).hexdigest()[:12]


def plan(studies, root: Path, all_slices: bool, identifiers: bool) -> tuple[list[Task], list[Output]]:
    """The tasks of a study set, in its patient / study / view order, and the rows of what cannot be
    analysed at all: unreadable files, and a second file with an image key already seen."""
    from inference.errors import LoadError, file_key

    tasks: list[Task] = []
    skipped: list[Output] = []
    seen: dict[str, str] = {}
    base = root if root.is_dir() else root.parent

    def relative(p: Path) -> str:
        try:
            return str(Path(p).resolve().relative_to(base.resolve()))
        except ValueError:
            return Path(p).name

    for patient in studies.patients:
        for s_index, study in enumerate(patient.studies, 1):
            for image in study.images():
                ident = image.identity
                study_uid, series_uid = ident.get("StudyInstanceUID", ""), ident.get("SeriesInstanceUID", "")
                slice_files = getattr(image, "slice_files", None)
                paths = tuple(str(Path(p).resolve()) for p in (slice_files or [image.path]))
                sop = ident.get("SOPInstanceUID", "")
                key = _image_key(study_uid, series_uid, sop) if sop else "f" + file_key(paths[0])[:11]
                probe = LoadError(image.path, "")
                if identifiers:
                    label = image.path.name
                elif image.relabel is not None:
                    image.relabel(probe)
                    label = probe.label
                else:
                    label = image.path.name  # the one file the user named
                frames = tuple(range(image.n_frames)) if (image.is_volume and all_slices) else \
                    (image.n_frames // 2 if image.is_volume else 0,)
                slice_sops = tuple(_header_fields(Path(p)).get("sop_uid", "") for p in paths) if slice_files else ()
                task = Task(key=key, name=safe_file_name(f"{patient.key}_study{s_index}_{image.name}"), label=label,
                            laterality=image.laterality, view=image.view, study_uid=study_uid,
                            series_uid=series_uid, sop_uid=sop, paths=paths, frames=frames,
                            is_volume=image.is_volume,
                            path=relative(image.path) if identifiers else "", slice_sops=slice_sops,
                            slice_paths=tuple(relative(Path(p)) for p in paths) if slice_files and identifiers
                            else ())
                if key in seen:
                    row = _row(task, frames[0], status="duplicate",
                               message=f"{label}: has the same Study / Series / SOP Instance UIDs as {seen[key]}; "
                                       f"analysed once.")
                    dup = f"{key}_duplicate_{file_key(paths[0])}"
                    row["key"] = f"{dup}-{frames[0] + 1}"
                    skipped.append(Output(dup, [row]))
                    continue
                seen[key] = label
                tasks.append(task)
    for failure in studies.failures:
        sentence = failure.identified() if identifiers else str(failure)
        row = {f: "" for f in ROW_FIELDS}
        row.update(_header_fields(failure.path))
        row.update(status="failed", message=sentence, key="unreadable_" + file_key(failure.path))
        if identifiers:
            row["path"] = relative(failure.path)
        skipped.append(Output(row["key"], [row]))
    return tasks, skipped


def _header_fields(path: Path) -> dict:
    """The UIDs, laterality and view an unreadable file's header still gives (so that its failed row
    can be joined), or nothing."""
    import pydicom

    import warnings

    try:
        with warnings.catch_warnings():  # pydicom's warnings name the file: its sentence is already there
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                                 specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                                                "ImageLaterality", "Laterality", "ViewPosition"])
        found = {"study_uid": str(ds.get("StudyInstanceUID", "") or ""),
                 "series_uid": str(ds.get("SeriesInstanceUID", "") or ""),
                 "sop_uid": str(ds.get("SOPInstanceUID", "") or ""),
                 "laterality": str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or ""),
                 "view": str(ds.get("ViewPosition", "") or "")}
    except Exception:  # noqa: BLE001 - the file already has its sentence; this is a courtesy
        return {}
    return {k: v for k, v in found.items() if v and len(v) <= 64 and v.isprintable()}


def _row(task: Task, frame: int, **values) -> dict:
    row = {f: "" for f in ROW_FIELDS}
    row.update(image=task.name, laterality=task.laterality, view=task.view, frame=frame + 1,
               study_uid=task.study_uid, series_uid=task.series_uid, sop_uid=task.sop_uid,
               key=f"{task.key}-{frame + 1}")
    if task.path:
        row["path"] = task.path
    if task.slice_sops:  # a legacy volume: the slice's own file
        row["sop_uid"] = task.slice_sops[frame]
        if task.slice_paths:
            row["path"] = task.slice_paths[frame]
    row.update(values)
    return row


# ---------------------------------------------------------------------------------------------
# running one task (in this process or on a Dask worker)

#: Engines loaded in this process, by configuration: a worker loads the bundle once.
_ENGINES: dict[tuple, object] = {}


def _engine(config: Config):
    cache_key = (config.method, config.bundle, config.device, config.threads)
    engine = _ENGINES.get(cache_key)
    if engine is None:
        engine = _ENGINES[cache_key] = load_engine(config.method, config.bundle, config.device,
                                                   capability="produces_map", threads=config.threads)
    return engine


def _open_task(task: Task):
    from inference.studies.dicom_io import open_dicom, read_header, stack_slices
    from inference.studies.plain_io import PLAIN_SUFFIXES, open_plain

    if len(task.paths) > 1:
        headers = [read_header(p) for p in task.paths]
        return stack_slices([open_dicom(p, h) for p, h in zip(task.paths, headers)], headers)
    path = Path(task.paths[0])
    if path.suffix.lower() in PLAIN_SUFFIXES:
        return open_plain(path, task.laterality, task.view)
    return open_dicom(path)


def run_task(task: Task, config: Config, progress=None, cancel=None) -> Output:
    """The rows and files of one image; any failure of the file or the model is its row, never an
    exception (a cancel, an interrupt and an exit still stop the run)."""
    from inference.errors import LoadError, MammolensError
    from inference.jobs import Cancelled

    started = time.perf_counter()
    try:
        return _run(task, config, progress, cancel)
    except (Cancelled, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except LoadError as exc:
        sentence = f"{task.label}: {exc.reason}"
    except MammolensError as exc:
        sentence = f"{task.label}: {exc}"
    except MemoryError:
        sentence = f"{task.label}: cannot be analysed within the memory of this process."
    except Exception as exc:  # noqa: BLE001 - one image never stops the others
        log.warning("analysing an image failed unexpectedly: %s", type(exc).__name__,
                    exc_info=log.isEnabledFor(logging.DEBUG))
        sentence = f"{task.label}: cannot be analysed because of an internal error ({type(exc).__name__})."
    seconds = round(time.perf_counter() - started, 4)
    return Output(task.key, [_row(task, k, status="failed", message=sentence, seconds=seconds) for k in task.frames])


def _run(task: Task, config: Config, progress, cancel) -> Output:
    from app.heatmap import calibrated_style, npy_bytes, overlay_png

    engine = _engine(config)
    image = _open_task(task)
    main = config.main
    frames = list(task.frames)
    from inference.preprocess import ModelSpaceMaps
    from inference.volume_maps import SUFFIX, volume_bytes

    # slices go through the network a chunk at a time; each keeps only its main map (in model space
    # when the method keeps it there, else float16 in a full-size volume) and the highest-scoring
    # slice its full-size maps
    volume, model_maps = None, []
    results, shown, shown_display = [], None, None
    chunk = getattr(engine, "batch_size", 8)
    for start in range(0, len(frames), chunk):
        part = frames[start:start + chunk]
        displays = [image.display(k) for k in part]

        def step(d, t, msg, base=start):
            if progress:
                progress(base + d, len(frames))

        for i, r in enumerate(engine.run_many(displays, [image.laterality] * len(part),
                                              frames=part if image.is_volume else None, progress=step,
                                              cancel=cancel, **config.run_arguments)):
            if len(frames) > 1:
                if isinstance(r.maps, ModelSpaceMaps):
                    model_maps.append(r.maps.subset([main]))
                else:
                    if volume is None:
                        volume = np.zeros((len(frames), image.rows, image.cols), np.float16)
                    volume[start + i] = r.maps[main]
            if shown is None or r.score > shown.score:
                if shown is not None:
                    shown.maps = {}
                shown, shown_display = r, displays[i]
            elif r is not shown:
                r.maps = {}
            results.append(r)
    k_shown = frames[results.index(shown)]
    stem = task.stem + (f"_slice{k_shown + 1:03d}" if image.is_volume else "")
    label = config.label or main
    map_file, overlay_file = f"{stem}_{label}.npy", f"{stem}_overlay.png"
    difference = shown.maps[main]
    files = {map_file: npy_bytes(difference.astype(np.float32)),
             # coloured as the viewer colours a first map by default, with the screen's own table
             overlay_file: overlay_png(shown_display, difference, calibrated_style(difference, main))}
    if model_maps:
        files[f"{task.stem}_{label}{SUFFIX}"] = volume_bytes(model_maps, main)
    elif volume is not None:
        files[f"{task.stem}_{label}_volume.npy"] = npy_bytes(volume)
    rows = [_row(task, k, status="ok", score=r.score, threshold=r.threshold, decision=r.decision,
                 no_decision=r.no_decision or "", provider=r.provider, map=map_file if r is shown else "", overlay=overlay_file if r is shown else "",
                 seconds=round(sum(r.timings.values()), 4))
            for k, r in zip(frames, results)]
    return Output(task.key, rows, files)


# ---------------------------------------------------------------------------------------------
# the output folder: identity, journal, results


class OutputFolder:
    """The one writer of an analyze output folder: a lock, ``run.json``, the journal and results."""

    def __init__(self, out: Path, identity: dict):
        self.out = out
        previous = self.check(out, identity)
        out.mkdir(parents=True, exist_ok=True)
        self._lock = self._take_lock()
        clean_stale(out)  # temporaries a killed run left
        if previous is None:
            atomic_write_text(out / RUN_JSON, json.dumps(identity, indent=2, sort_keys=True))
        self.done: dict[str, Output] = {}
        self._read_journal()
        self._journal = open(out / JOURNAL, "a", encoding="utf-8")

    @staticmethod
    def check(out: Path, identity: dict) -> dict | None:
        """The identity of the earlier run in ``out`` (None for a new folder); refuses, in one sentence, a
        folder of other files or of a run with another bundle or other parameters."""
        from inference.errors import MammolensError

        if out.exists() and not out.is_dir():
            raise MammolensError(f"{out.name} is a file; analyze writes into a folder: choose a new or empty folder.")
        previous = None
        if out.is_dir():
            if (out / RUN_JSON).is_file():
                try:
                    previous = json.loads((out / RUN_JSON).read_text(encoding="utf-8"))
                except ValueError:
                    previous = {}
            elif any(p for p in out.iterdir() if not p.name.startswith(".")):
                raise MammolensError(f"{out.name}: analyze would mix its outputs with what this folder holds; "
                                     f"choose a new or empty folder, or the folder of an earlier run to resume it.")
        if previous is not None and previous != identity:
            what = [k for k in sorted(set(identity) | set(previous)) if identity.get(k) != previous.get(k)]
            raise MammolensError(f"{out.name} holds a run of another bundle or other parameters (differs in: "
                                 f"{', '.join(what) or 'its run.json'}); resume it with the same ones or choose "
                                 f"a new folder.")
        return previous

    def _take_lock(self):
        from inference.errors import MammolensError

        handle = open(self.out / ".lock", "a+")
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; one writer is the user's promise there
            return handle
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise MammolensError(f"{self.out.name}: another analyze is writing into this folder; wait for it or "
                                 f"choose another folder.") from None
        return handle

    def _read_journal(self) -> None:
        path = self.out / JOURNAL
        if not path.is_file():
            return
        good, torn = [], False
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            try:
                if not line.endswith("\n"):
                    raise ValueError("unfinished line")
                entry = json.loads(line)
                output = Output(entry["key"], entry["rows"], dict.fromkeys(entry.get("files", []), b""))
            except (ValueError, KeyError, TypeError):
                torn = True  # the tail of a run killed while appending: that image runs again
                continue
            good.append(line)
            self.done[output.key] = output
        if torn:
            atomic_write_text(path, "".join(good))

    def is_done(self, key: str) -> bool:
        """Finished earlier, every file it names still there (a failed image runs again)."""
        output = self.done.get(key)
        return (output is not None and all(r.get("status") != "failed" for r in output.rows)
                and all((self.out / f).is_file() for f in output.files))

    def commit(self, output: Output) -> None:
        """The files first (each atomically), then the journal line: a kill in between leaves whole
        files that the next run rewrites, never a row without its files."""
        for name, data in output.files.items():
            atomic_write_bytes(self.out / name, data)
        line = json.dumps({"key": output.key, "rows": output.rows, "files": sorted(output.files)}, default=float)
        self._journal.write(line + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self.done[output.key] = Output(output.key, output.rows, dict.fromkeys(output.files, b""))

    def write_results(self, keys: list[str], header: dict, identifiers: bool) -> dict:
        rows = [r for k in keys if k in self.done for r in self.done[k].rows]
        failed = [r["message"] for r in rows if r["status"] == "failed"]
        # an image's sentence once, though each of its slices has the row
        summary = dict(header, results=rows, failed=list(dict.fromkeys(failed)))
        atomic_write_text(self.out / RESULTS_JSON, json.dumps(summary, indent=2, default=float))
        text = io.StringIO()
        fields = list(ROW_FIELDS) + (["path"] if identifiers else [])
        writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.out / RESULTS_CSV, text.getvalue())
        return summary

    def close(self) -> None:
        self._journal.close()
        self._lock.close()


# ---------------------------------------------------------------------------------------------


class CohortProgress:
    """Images (or, with every DBT slice, slices) done / total with the rate and the time left, as
    ``progress(done, total, message)``."""

    def __init__(self, progress, total: int, skipped: int = 0, unit: str = "images"):
        self.progress, self.total, self.done, self.failed, self.unit = progress, total, skipped, 0, unit
        self.started, self.first = time.monotonic(), skipped

    def __call__(self, done: int, failed: int = 0) -> None:
        self.done, self.failed = done, failed
        if not self.progress:
            return
        ran, elapsed = done - self.first, time.monotonic() - self.started
        rate = ran / elapsed if elapsed > 0 and ran else 0.0
        left = (self.total - done) / rate if rate else None
        text = f"{rate:.2f} {self.unit}/s" + (f", {_duration(left)} left" if left is not None and done < self.total else "")
        self.progress(done, self.total, text + (f", {failed} failed" if failed else ""))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def analyze_path(path: str | Path, method: str, out: str | Path, *, model: str | None = None, device: str = "auto",
                 all_slices: bool = False, progress=None, cancel=None, parameters: dict | None = None,
                 identifiers: bool = False, workers: int = 0, scheduler: str | None = None,
                 threads: int | None = None) -> dict:
    """Run ``method`` on every image under ``path``; write maps, overlays and results into ``out``.

    Returns results.json's content plus ``skipped`` (rows done by an earlier run), ``seconds`` and
    ``images`` / ``unreadable`` / ``failed`` counts. ``workers`` > 0 runs the images on a local Dask
    cluster of that many processes, ``scheduler`` on an existing cluster (its address); by default
    they run in this process. ``threads`` caps ONNX Runtime's CPU threads per process (default: the
    cores, shared out among local workers). Failed images are rows; only a bad bundle, bad
    parameters or an unusable output folder raise.
    """
    from inference.jobs import Cancelled
    from inference.studies.study import open_path

    out = Path(out)
    if threads is None and workers and not scheduler:  # the cores shared by the local workers
        threads = max(1, (os.cpu_count() or 1) // workers)
    engine = load_engine(method, model, device, capability="produces_map", threads=threads)
    spec = engine.spec
    run_arguments = spec.run_arguments(parameters or {})
    main = spec.maps[0]  # the method's main map (difference / error / heatmap)
    from app.heatmap import map_label

    # files are named by what the map holds: inpainting's per-window DMSE / MSE / critic loss
    label = map_label(spec, run_arguments, main)[0].replace(" ", "-")
    config = Config(spec.method, str(engine.bundle.path.resolve()), device, run_arguments, main, threads, label)
    _ENGINES[(config.method, config.bundle, config.device, config.threads)] = engine
    identity = {"method": spec.method, "bundle": engine.bundle.name, "bundle_version": engine.bundle.version,
                "networks": {r: n.sha256 for r, n in sorted(engine.bundle.networks.items())},
                "parameters": run_arguments, "all_slices": all_slices, "identifiers": identifiers}
    identity = json.loads(json.dumps(identity, default=str))  # as run.json gives it back
    OutputFolder.check(out, identity)  # before the (long) opening of a cohort
    studies = open_path(path)
    tasks, skipped = plan(studies, Path(path), all_slices, identifiers)
    folder = OutputFolder(out, identity)
    header = {"method": spec.method, "parameters": run_arguments, "fallback_reason": engine.fallback_reason,
              "bundle": engine.bundle.name, "bundle_version": engine.bundle.version, "provider": engine.provider,
              "card": engine.bundle.card_line, "images": len(tasks), "unreadable": studies.unreadable(identifiers)}
    keys = [t.key for t in tasks] + [o.key for o in skipped]
    started = time.monotonic()
    try:
        for output in skipped:
            if folder.done.get(output.key) is None or folder.done[output.key].rows != output.rows:
                folder.commit(output)
        todo = [t for t in tasks if not folder.is_done(t.key)]
        frames_total = sum(len(t.frames) for t in tasks)
        done_before = frames_total - sum(len(t.frames) for t in todo)
        counter = CohortProgress(progress, frames_total, done_before,
                                 unit="images" if frames_total == len(tasks) else "slices")
        state = {"done": done_before, "failed": 0, "written": time.monotonic()}

        def commit(task: Task, output: Output) -> None:
            folder.commit(output)
            state["done"] += len(task.frames)
            state["failed"] += any(r["status"] == "failed" for r in output.rows)
            counter(state["done"], state["failed"])
            if time.monotonic() - state["written"] > RESULTS_EVERY_S:
                folder.write_results(keys, header, identifiers)
                state["written"] = time.monotonic()

        if workers or scheduler:
            _run_on_dask(todo, config, commit, workers=workers, scheduler=scheduler, cancel=cancel)
        else:
            for task in todo:
                base = state["done"]

                def step(d, t, base=base):
                    if progress and d < t:
                        progress(base + d, frames_total, "")

                commit(task, run_task(task, config, progress=step, cancel=cancel))
        summary = folder.write_results(keys, header, identifiers)
    except (KeyboardInterrupt, Cancelled):
        folder.write_results(keys, header, identifiers)  # what is done, readable now; a rerun resumes
        raise
    finally:
        folder.close()
    summary = dict(summary, skipped=len(tasks) - len(todo), seconds=round(time.monotonic() - started, 3),
                   analysed=len(todo))
    return summary


def _run_on_dask(tasks: list[Task], config: Config, commit, *, workers: int, scheduler: str | None, cancel) -> None:
    """The tasks on a Dask cluster (a local one of ``workers`` processes, or the one at ``scheduler``);
    results come back to this process, which alone writes. A worker that dies has its images rerun
    by Dask elsewhere; an image that kills every worker it runs on becomes a failed row."""
    from inference.errors import MammolensError
    from inference.jobs import Cancelled

    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise MammolensError("running on several workers needs Dask: pip install distributed") from None
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout="20s"))
            except (OSError, TimeoutError, ValueError) as exc:
                raise MammolensError(f"cannot reach the Dask scheduler at {scheduler} ({type(exc).__name__}).") \
                    from None
        else:
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=None, silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        by_future = {}
        for task in tasks:
            future = client.submit(run_task, task, config, key=f"mammolens-{task.key}-{os.getpid()}", pure=False)
            by_future[future] = task
        for future in as_completed(list(by_future)):
            if cancel is not None and cancel.cancelled:
                client.cancel(list(by_future))
                raise Cancelled()
            task = by_future.pop(future)
            try:
                output = future.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker and what the cluster itself raises
                log.warning("a Dask task failed: %s: %s", type(exc).__name__, " ".join(str(exc).split())[:500])
                if type(exc).__name__ == "KilledWorker":
                    sentence = f"{task.label}: stopped every worker process that ran it; it is left out."
                else:
                    sentence = (f"{task.label}: could not run on the Dask cluster ({type(exc).__name__}; is "
                                f"mammolens installed where the workers run?).")
                output = Output(task.key, [_row(task, k, status="failed", message=sentence) for k in task.frames])
            commit(task, output)
            future.release()


def summary_table(summary: dict) -> str:
    """The table printed at the end of a run: counts by status and decision, time and rate, and each
    failure's sentence once."""
    rows = summary["results"]
    images = {}  # an image's slices share its status
    for r in rows:
        images.setdefault(r["key"].rsplit("-", 1)[0], r["status"])
    by_status = {s: sum(1 for v in images.values() if v == s) for s in ("ok", "failed", "duplicate")}
    decisions: dict[str, int] = {}
    for r in rows:
        if r["status"] == "ok":
            decision = r["decision"] or "no decision"
            decisions[decision] = decisions.get(decision, 0) + 1
    seconds = summary.get("seconds", 0.0)
    ran = summary.get("analysed", 0)
    lines = [f"{'images analysed':<22}{by_status['ok']:>8}",
             f"{'images failed':<22}{by_status['failed']:>8}"]
    if by_status["duplicate"]:
        lines.append(f"{'duplicates':<22}{by_status['duplicate']:>8}")
    lines.append(f"{'rows (images, slices)':<22}{len(rows):>8}")
    for decision, count in sorted(decisions.items()):
        lines.append(f"{'  ' + decision:<22}{count:>8}")
    if summary.get("skipped"):
        lines.append(f"{'done by an earlier run':<22}{summary['skipped']:>8}")
    lines.append(f"{'time':<22}{_duration(seconds):>8}" + (f"  ({ran / seconds:.2f} images/s)" if ran and seconds else ""))
    if summary.get("failed"):
        lines.append("failed:")
        lines += [f"  {sentence}" for sentence in summary["failed"]]
    return "\n".join(lines)
