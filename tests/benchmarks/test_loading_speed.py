"""Time to first pixels and memory for full-size MG and DBT (run with `make bench`).

Each measurement runs in a fresh Python process so that imports, page cache aside, and peak
memory belong to that measurement alone. The reference ("naive") way is what a script would do
with pydicom directly: read the whole dataset, decode every frame, apply the Modality and VOI
LUT per pixel. Results are printed and written to ``tests/benchmarks/results/loading.json``.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

from tests.benchmarks.sizes import report, size

pytestmark = pytest.mark.benchmark

MG_SHAPE = size((4084, 3328), (512, 416))  # rows x cols of a full-field digital mammogram (3328 x 4084)
DBT_SHAPE = size((2457, 1890), (256, 208))
DBT_SLICES = size(70, 6)
REPEATS = size(3, 1)


def _measure(code: str) -> dict:
    """Run code in a fresh interpreter; it prints one JSON object; add its peak and final RSS in MB."""
    wrapper = textwrap.dedent(code) + textwrap.dedent("""
        import json as _j
        # VmHWM / VmRSS of this process only (ru_maxrss would carry the parent's peak over exec)
        _status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
        RESULT["peak_rss_mb"] = int(_status["VmHWM"].split()[0]) / 1024
        RESULT["rss_mb"] = int(_status["VmRSS"].split()[0]) / 1024
        print(_j.dumps(RESULT))
        """)
    out = subprocess.run([sys.executable, "-c", wrapper], cwd=REPO, capture_output=True, text=True,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"}, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best(code: str, repeats: int = REPEATS) -> dict:
    runs = [_measure(code) for _ in range(repeats)]
    return min(runs, key=lambda r: r["seconds"])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from training.phantom import (
        simulate_dbt,
        simulate_mammogram,
        write_dbt_dicom,
        write_mammogram_dicom,
    )

    out = tmp_path_factory.mktemp("bench")
    mg = simulate_mammogram(1, view="MLO", laterality="R", shape=MG_SHAPE, pixel_spacing=size(0.07, 0.5),
                            lesion_classes=("mass",), bits_stored=14)
    mg_path = write_mammogram_dicom(out / "mg.dcm", mg)
    mg_j2k = write_mammogram_dicom(out / "mg_j2k.dcm", mg, compress="jpeg2000")
    del mg
    vol = simulate_dbt(2, view="CC", laterality="L", shape=DBT_SHAPE, n_slices=DBT_SLICES, pixel_spacing=size(0.1, 0.8),
                       lesion_classes=("mass",))
    dbt_path = write_dbt_dicom(out / "dbt.dcm", vol)
    return {"mg": mg_path, "mg_j2k": mg_j2k, "dbt": dbt_path}


MAMMOLENS_FIRST_PIXELS = """
    import time
    t0 = time.perf_counter()
    from inference.studies.study import open_path
    image = open_path({path!r}).images()[0]
    frame = image.display(image.n_frames // 2 if image.n_frames > 1 else 0)
    RESULT = {{"seconds": time.perf_counter() - t0, "decoded_frames": image.decoded_frames,
               "shape": list(frame.shape), "frames": image.n_frames}}
"""

MAMMOLENS_ON_SCREEN = """
    import time
    t0 = time.perf_counter()
    from PySide6 import QtWidgets
    app = QtWidgets.QApplication([])
    from viewer.canvas import ImageCanvas
    canvas = ImageCanvas(); canvas.resize(900, 900); canvas.show()
    t1 = time.perf_counter()
    from inference.studies.study import open_path
    image = open_path({path!r}).images()[0]
    canvas.show_frame(image.display(0), image.name)
    app.processEvents()
    canvas.grab()  # forces the paint
    RESULT = {{"seconds": time.perf_counter() - t1, "qt_start_seconds": t1 - t0}}
"""

NAIVE_FIRST_PIXELS = """
    import time
    t0 = time.perf_counter()
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut
    ds = pydicom.dcmread({path!r})
    ds.SharedFunctionalGroupsSequence = ds.get("SharedFunctionalGroupsSequence", [])
    arr = ds.pixel_array  # every frame
    frame = arr[arr.shape[0] // 2] if arr.ndim == 3 else arr
    voi = ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0] if "NumberOfFrames" in ds else ds
    ds.WindowCenter, ds.WindowWidth = voi.WindowCenter, voi.WindowWidth
    shown = apply_voi_lut(apply_modality_lut(frame, ds), ds)
    RESULT = {{"seconds": time.perf_counter() - t0, "decoded_bytes": int(arr.nbytes)}}
"""

SLICE_CHANGE = """
    import time
    from inference.studies.study import open_path
    image = open_path({path!r}).images()[0]
    image.display(0)
    times = []
    for k in range(1, min(41, image.n_frames)):  # every change decodes a frame not yet cached
        t = time.perf_counter(); image.display(k); times.append(time.perf_counter() - t)
    times.sort()
    RESULT = {{"seconds": times[len(times) // 2], "p90": times[int(len(times) * 0.9)], "max": times[-1]}}
"""


def test_time_to_first_pixels(files):
    results = {}
    for key in ("mg", "mg_j2k", "dbt"):
        path = str(files[key])
        ours = _best(MAMMOLENS_FIRST_PIXELS.format(path=path))
        naive = _best(NAIVE_FIRST_PIXELS.format(path=path))
        results[key] = {"mammolens": ours, "naive_pydicom": naive,
                        "speedup": naive["seconds"] / ours["seconds"],
                        "memory_ratio": naive["peak_rss_mb"] / ours["peak_rss_mb"]}
        assert ours["decoded_frames"] == 1, "opening decodes only the frame shown"
    results["mg_on_screen"] = _best(MAMMOLENS_ON_SCREEN.format(path=str(files["mg"])))
    results["dbt_slice_change"] = _best(SLICE_CHANGE.format(path=str(files["dbt"])), repeats=size(2, 1))
    dbt_bytes = DBT_SHAPE[0] * DBT_SHAPE[1] * DBT_SLICES * 2
    results["dbt_volume_decoded_mb"] = dbt_bytes / 2**20
    baseline = _measure("RESULT = {'seconds': 0.0}\nfrom inference.studies.study import open_path\nimport numpy, pydicom")
    results["interpreter_baseline_rss_mb"] = baseline["peak_rss_mb"]
    report("loading", results)


J2K_FIRST_PIXELS = """
    import time
    t0 = time.perf_counter()
    from inference.studies.study import open_path
    if {plugin!r} != "imagecodecs":  # the openjpeg plugin alone, as before inference.studies.codecs
        from pydicom.pixels.decoders import base
        for decoder in (base.JPEG2000LosslessDecoder, base.JPEG2000Decoder):
            decoder._available.pop("imagecodecs", None)
    image = open_path({path!r}).images()[0]
    frame = image.display(0)
    RESULT = {{"seconds": time.perf_counter() - t0, "checksum": float(frame.astype("float64").sum())}}
"""


def test_jpeg2000_first_pixels_by_decoder(files):
    """First displayed pixels of a full-field JPEG 2000 mammogram: the full frame through imagecodecs
    (the default) and through the pylibjpeg-openjpeg plugin (the same pixels either way), and the
    reduced-resolution frame the viewer shows first (``reduced_first``)."""
    from tests.conftest import SHARED_DATA

    paths = {f"phantom MG {MG_SHAPE[1]} x {MG_SHAPE[0]} J2K lossless": str(files["mg_j2k"])}
    real = SHARED_DATA / "dicom-real" / "MG1_J2KI.dcm"
    if real.is_file() and size(True, False):
        paths["MG1_J2KI.dcm 4664 x 3064 J2K"] = str(real)
    results = {}
    for label, path in paths.items():
        codes = {plugin: J2K_FIRST_PIXELS.format(path=path, plugin=plugin) for plugin in ("imagecodecs", "pylibjpeg")}
        codes["reduced_first"] = J2K_REDUCED_FIRST.format(path=path, max_side=size(1024, 128))
        runs = {name: [] for name in codes}
        for _ in range(REPEATS):  # interleaved, each in a fresh process
            for name, code in codes.items():
                runs[name].append(_measure(code))
        runs = {name: min(r, key=lambda v: v["seconds"]) for name, r in runs.items()}
        assert runs["imagecodecs"]["checksum"] == runs["pylibjpeg"]["checksum"]
        results[label] = {k: round(v["seconds"], 3) for k, v in runs.items()}
        results[label]["reduced_shape"] = runs["reduced_first"]["shape"]
    report("jpeg2000", results)


J2K_REDUCED_FIRST = """
    import time
    t0 = time.perf_counter()
    from inference.studies.study import open_path
    image = open_path({path!r}).images()[0]
    frame, factor = image.preview_display(0, max_side={max_side})
    RESULT = {{"seconds": time.perf_counter() - t0, "shape": list(frame.shape), "factor": factor}}
"""
