"""The `mammolens` command line.

Only argparse and the standard library are imported at module level, so ``mammolens --help``
answers at once; each command imports what it needs. Every error a user can cause ends as one
sentence on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference.jobs import console_progress
from inference.labels import (
    LESION_CLASSES,  # the one vocabulary (stdlib-only module: --help stays fast)
)


def _shape(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not ROWSxCOLS, e.g. 1024x832") from None
    if rows < 64 or cols < 64:
        raise argparse.ArgumentTypeError("images must be at least 64x64 pixels")
    return rows, cols


def _per_split(text: str) -> dict[str, int]:
    """``val=20,test=40`` -> {"val": 20, "test": 40}."""
    out = {}
    for part in str(text).split(","):
        split, sep, n = part.partition("=")
        if not sep or not split.strip() or not n.strip().isdigit():
            raise argparse.ArgumentTypeError(f"give SPLIT=N pairs such as val=20,test=40, not {text!r}")
        out[split.strip()] = int(n)
    return out


def _csv_list(choices):
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(choices)}")
        return values

    return parse


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError("splits are three fractions: train,val,test (e.g. 0.7,0.15,0.15)")
    return values  # type: ignore[return-value]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction between 0 and 1")
    return value


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0.0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a scale (a number >= 0, 1 = unchanged)")
    return value


def _trainable_names() -> list[str]:
    from inference.methods import trainable

    return [n for spec in trainable() for n in spec.names]


def _parameter_flags(p: argparse.ArgumentParser, parameters, note: str = "") -> None:
    """One flag per registry :class:`Parameter` (its name, aliases, type, choices and help, declared once)."""
    for param in parameters:
        kind = type(param.default)
        p.add_argument(param.flag, *param.aliases, dest=f"param_{param.name}", type=kind if kind is not bool else None,
                       choices=param.choices or None, default=None, metavar=None if param.choices else param.name.upper(),
                       help=f"{param.help} ({note + '; ' if note else ''}default {param.default})")


def _method_arguments(p: argparse.ArgumentParser, capability: str | None) -> None:
    """--method, --model and one flag per run parameter of the methods that can do ``capability``
    (None: every method with an engine)."""
    from inference.methods import DEVICE, method_names, with_capability

    specs = with_capability(capability)
    p.add_argument("--method", default=specs[0].method,
                   help=f"the method: {', '.join(method_names(capability))} (default {specs[0].method})")
    p.add_argument("--model", help="bundle folder or name (default: the first bundle of the method)")
    seen = set()
    for spec in specs:
        for param in spec.parameters:
            if param.name in seen or param.name == "map":  # the map shown is the viewer's choice
                continue
            seen.add(param.name)
            # a method's own flag says whose it is; --device is every method's
            _parameter_flags(p, [param], spec.title if len(specs) > 1 and param is not DEVICE else "")


def _method_for(args, capability: str):
    """The spec the user named, when it has an engine that can do ``capability`` (one sentence otherwise)."""
    from inference.methods import get

    return get(args.method).require(capability)


def _parameters(args, spec, *, defaults: bool = False) -> dict:
    """The run parameters of ``spec`` the user set, parsed and range-checked by the registry
    (``defaults``: the others at their defaults)."""
    from inference.errors import MammolensError

    values = spec.defaults() if defaults else {}
    for param in spec.parameters:
        value = getattr(args, f"param_{param.name}", None)
        if value is not None:
            try:
                values[param.name] = param.parse(value)
            except ValueError as exc:
                raise MammolensError(str(exc)) from None
    return values


def _named_parameters(spec, items: list[str]) -> dict:
    """``NAME=VALUE`` strings -> run parameters of ``spec``, parsed and range-checked like the flags."""
    from inference.errors import MammolensError

    values = {}
    for item in items:
        name, sep, text = item.partition("=")
        known = {p.name: p for p in spec.parameters if p.affects_result}
        if not sep or name.replace("-", "_") not in known:
            raise MammolensError(f"{item!r} is not NAME=VALUE with a run parameter of {spec.title} "
                                 f"({', '.join(known) or 'it has none'}).")
        param = known[name.replace("-", "_")]
        try:
            values[param.name] = param.parse(text)
        except ValueError as exc:
            raise MammolensError(str(exc)) from None
    return values


def get_spec(method: str):
    from inference.methods import get

    return get(method)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mammolens",
        description="Mammography / DBT workbench: open studies, run GAN anomaly models, make phantoms.",
    )
    parser.add_argument("--version", dest="show_version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("view", help="open a file, folder or DICOMDIR in the viewer window")
    p.add_argument("path", nargs="?", type=Path, help="a DICOM file, plain image, folder or DICOMDIR (optional)")
    p.add_argument("--models", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder of model bundles to offer besides $MAMMOLENS_MODELS, the user's and the bundled "
                        "ones (repeatable)")

    p = sub.add_parser("demo", help="open the bundled demo study (offscreen screenshot when there is no display)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="folder for the offscreen screenshots demo.png, demo-overlay.png, demo-dbt.png "
                        "(default: ./mammolens-demo)")
    p.add_argument("--screenshot", type=Path, help="the first screenshot's file instead (the others beside it)")
    p.add_argument("--offscreen", action="store_true", help="render offscreen even when a display is available")

    p = sub.add_parser("info", help="list the patients / studies / series / views found under PATH")
    p.add_argument("path", type=Path, help="a file, folder or DICOMDIR; unreadable files are listed, not fatal")
    p.add_argument("--identifiers", action="store_true",
                   help="name unreadable files by their file names (which can carry patients' names); "
                        "by default they are named by position and a key")

    p = sub.add_parser("phantom", help="simulate mammograms / DBT volumes with lesions and write DICOM + labels")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--n", type=int, default=8, help="number of patients (each gets every view and side)")
    p.add_argument("--views", type=_csv_list(("CC", "MLO")), default=("CC", "MLO"),
                   help="comma-separated views per breast: CC, MLO (default CC,MLO)")
    p.add_argument("--lateralities", type=_csv_list(("L", "R")), default=("L", "R"),
                   help="comma-separated breasts: L, R (default L,R)")
    p.add_argument("--lesion-fraction", type=float, default=0.5, help="fraction of patients with a lesion")
    p.add_argument("--classes", type=_csv_list(LESION_CLASSES), default=LESION_CLASSES,
                   help=f"comma-separated lesion classes to draw from (default all: {','.join(LESION_CLASSES)})")
    p.add_argument("--lesion-views", choices=("one", "breast"), default="one",
                   help="a lesion patient's lesion shows in one image (default) or in every view of one breast")
    p.add_argument("--shape", type=_shape, default=(1024, 832), help="image size ROWSxCOLS (default 1024x832)")
    p.add_argument("--spacing", type=float, default=0.2, help="pixel spacing in mm (default 0.2)")
    p.add_argument("--bits", type=int, choices=(12, 14), default=12, help="bits stored (default 12)")
    p.add_argument("--dbt", type=int, default=0, help="number of DBT volumes to add (default 0)")
    p.add_argument("--dbt-slices", type=int, default=40, help="slices per DBT volume (default 40)")
    p.add_argument("--dbt-shape", type=_shape, default=(512, 416), help="DBT slice size ROWSxCOLS (default 512x416)")
    p.add_argument("--legacy-dbt", action="store_true", help="write DBT as single-frame slice files")
    p.add_argument("--compress", choices=("rle", "jpeg2000", "jpegls"),
                   help="lossless transfer syntax (default uncompressed)")
    p.add_argument("--splits", type=_fractions, help="train,val,test fractions by patient (default: no split column)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same images (default 0)")
    p.add_argument("--foreign-objects", type=_fraction, default=0.0, metavar="FRACTION",
                   help="fraction of the 2D images that get one metal biopsy clip or skin marker "
                        "(labelled foreign_object, never a lesion; default 0)")
    p.add_argument("--lesion-contrast", type=_scale, default=1.0, metavar="SCALE",
                   help="multiply every lesion's contrast (its change to the tissue) by SCALE; the same seed "
                        "keeps the same anatomy, lesion shapes and places (default 1, the realistic lesions)")
    p.add_argument("--lesion-size", type=_scale, default=1.0, metavar="SCALE",
                   help="multiply every lesion's lengths by SCALE, keeping its shape, texture and contrast "
                        "(default 1)")
    p.add_argument("--demo", action="store_true",
                   help="write the bundled demo study instead (one patient, 4 views + 1 DBT); other options ignored")

    p = sub.add_parser("train", help="train a method's model (needs the `train` extra: torch); "
                                     "`mammolens train METHOD --help` lists its settings")
    p.add_argument("method", metavar="METHOD", help="a registered method: " + ", ".join(_trainable_names()))
    p.add_argument("settings", nargs=argparse.REMAINDER, help="--labels CSV --out RUN [--preset paper|cpu|gpu] ...")

    p = sub.add_parser("train-all", help="train every registered method's preset within a time budget each, "
                                         "export bundles and write their evaluation cards (the GPU lease command)")
    p.add_argument("--out", type=Path, required=True, help="folder for the data, runs and bundles (resumes)")
    p.add_argument("--preset", default="gpu", help="preset of every method (default gpu)")
    p.add_argument("--minutes", type=float, default=4.0, help="training budget per method in minutes")
    p.add_argument("--budget", action="append", default=[], metavar="METHOD=MINUTES",
                   help="a method's own budget (repeatable)")
    p.add_argument("--patients", type=int, default=400, help="phantom patients to simulate once (default 400)")
    p.add_argument("--phantom-shape", type=_shape, default=(512, 416), help="phantom image size (default 512x416)")
    p.add_argument("--spacing", type=float, default=0.4, help="phantom pixel spacing in mm (default 0.4)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting of every method's preset (e.g. resolution=32)")
    p.add_argument("--object-patients", type=int, default=10,
                   help="phantom patients for each card's foreign-object check (default 10)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where torch trains (default auto: CUDA when present)")

    p = sub.add_parser("export", help="export a training run to a model bundle (ONNX + model.json); the method is "
                                      "read from the run")
    p.add_argument("run", type=Path, help="the run folder written by `mammolens train`")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--name", help="bundle name (default: the folder name)")
    p.add_argument("--bundle-version", default="1", help="version written into model.json")
    p.add_argument("--calibration-split", default="val", help="held-out split to calibrate on (default val)")
    p.add_argument("--calibration-parameter", action="append", default=[], metavar="NAME=VALUE",
                   help="a run parameter of the method to calibrate with (repeatable; e.g. stride=16 for inpainting)")
    p.add_argument("--calibration-images", type=int, default=None, metavar="N",
                   help="calibrate on at most N normal and N abnormal images of the split, drawn with seed 0 "
                        "(a method that takes minutes an image on a CPU; default: all)")

    p = sub.add_parser("analyze", help="run a method over a file / folder and write maps, overlays, scores")
    p.add_argument("path", type=Path, help="a file, folder or DICOMDIR; every readable image is analysed")
    _method_arguments(p, "produces_map")
    p.add_argument("--out", type=Path, required=True,
                   help="folder for the maps (.npy), overlays (.png), results.json and results.csv")
    p.add_argument("--all-slices", action="store_true", help="DBT: every slice, not only the central one")
    p.add_argument("--identifiers", action="store_true",
                   help="add each file's path (relative to PATH) to its rows and name failed files by their file "
                        "names (which can carry patients' names); by default they are named by position and a key")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="run the images on a local Dask cluster of N processes (default: in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the images on the Dask cluster at ADDRESS (e.g. tcp://10.0.0.5:8786; see README)")
    p.add_argument("--dicom", action="store_true",
                   help="also write each map as DICOM objects into OUT/dicom: Parametric Map, SEG of the region at or "
                        "above the calibrated threshold, TID 1500 SR (identifiers follow the source)")
    p.add_argument("--anonymize", action="store_true",
                   help="with --dicom: replace patient and study identifiers and remap UIDs in the DICOM objects")

    p = sub.add_parser(
        "inpaint", help="complete a box of an image with an inpainting bundle: original, completion, error, scores",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Remove the box from the image and let the inpainting model (paper 002) complete it from its "
                    "surroundings; writes original.png, completion.png and error.png (crops around the box) and "
                    "scores.json (MSE, critic loss, DMSE) into OUT, all together.",
        epilog="example:\n  mammolens inpaint resources/demo/MG_LMLO.dcm --box 400,640,490,730 --out inpainted/\n"
               "  mammolens inpaint volume.dcm --slice 20 --box 100,120,164,184 --out dbt-roi/ --score mse")
    p.add_argument("path", type=Path, help="a DICOM file, plain image or folder (its first image)")
    p.add_argument("--box", required=True, metavar="x0,y0,x1,y1", help="the box in image pixels (x1, y1 exclusive)")
    p.add_argument("--out", type=Path, required=True, help="folder to write the four files into")
    p.add_argument("--model", help="inpainting bundle folder or name (default: the first inpainting bundle found)")
    p.add_argument("--slice", type=int, help="DBT: the slice, from 1 (default the middle one)")
    inpainting = get_spec("inpainting")
    _parameter_flags(p, [inpainting.parameter("score"), inpainting.parameter("device")])

    from app.pacs_cli import add_pacs_parser

    add_pacs_parser(sub)

    p = sub.add_parser("evaluate", help="score a labels split and write the model's evaluation card")
    p.add_argument("--labels", type=Path,
                   help="labels CSV with a split column (`mammolens phantom --splits` or `dataset import` write one); "
                        "required unless --sweep")
    p.add_argument("--split", default="test", help="the held-out split scored (default test; never tune on it)")
    _method_arguments(p, None)
    p.add_argument("--json", type=Path, help="also write the full report here")
    p.add_argument("--csv", type=Path, help="synthesis: also write the quality table (paper 004 Tables 6-9) here")
    p.add_argument("--inception", type=Path, metavar="ONNX",
                   help="synthesis: an InceptionV3 as ONNX ((N, 3, 299, 299) in [0, 1] -> 2048-d pool features) for "
                        "the real FID beside the Frechet classifier distance; nothing is downloaded")
    p.add_argument("--card", action=argparse.BooleanOptionalAction, default=True,
                   help="write the evaluation card (card.json, card.md) into the bundle; with --sweep, add the "
                        "curve to it (default on)")
    p.add_argument("--ceiling", action=argparse.BooleanOptionalAction, default=True,
                   help="train the supervised ceiling for the card (needs torch; default on)")
    p.add_argument("--object-patients", type=int, default=10,
                   help="phantom patients (4 views each) for the foreign-object check; 0 skips it (default 10)")
    p.add_argument("--card-option", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting one of the method's card sections reads (repeatable; e.g. projection's "
                        "torch_run=RUN: Table 1 through the torch eager projector on that training run too)")
    p.add_argument("--reuse", action="append", default=[], metavar="SECTION",
                   help="keep this section of the card already in the bundle instead of measuring it again "
                        "(repeatable; e.g. supervised_ceiling, which the model does not change)")
    p.add_argument("--sweep", metavar="AXIS=V1,V2,...",
                   help="contrast-detail curves instead of a card: write the phantom at every lesion contrast (or "
                        "size) scale, same seeds, and measure the method, its model-free baseline, the supervised "
                        "ceiling and a channelized Hotelling observer at each (e.g. contrast=0,1,2,4,8)")
    p.add_argument("--sweep-out", type=Path, default=Path("contrast-detail"),
                   help="sweep: folder for the phantoms and contrast_detail.json/.md/.png (default ./contrast-detail)")
    p.add_argument("--sweep-patients", type=int, default=40,
                   help="sweep: phantom patients per setting, 4 views each, all with a lesion in one breast "
                        "(default 40)")
    p.add_argument("--sweep-shape", type=_shape, default=(512, 416), help="sweep: phantom image size (default 512x416)")
    p.add_argument("--sweep-spacing", type=float, default=0.4, help="sweep: phantom pixel spacing in mm (default 0.4)")
    p.add_argument("--sweep-seed", type=int, default=7, help="sweep: phantom seed (default 7)")
    p.add_argument("--sweep-classes", type=_csv_list(LESION_CLASSES), default=None,
                   help="sweep: lesion classes to draw (default: those of the phantom the bundle was trained on, "
                        "else all four)")
    p.add_argument("--ceiling-epochs", type=int, default=30, help="epochs of the supervised ceiling, card or sweep (default 30)")

    p = sub.add_parser(
        "synthesize", help="generate synthetic lesion patches with a synthesis bundle and export them (PNG, DICOM, CSV)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate lesion ROI patches of one class (or every class of the bundle) from a seed and write "
                    "them into a folder as PNG (8- and 16-bit) and DICOM Secondary Capture files, with one CSV "
                    "(synthetic.csv: file, class, seed, index, bundle, version). The same seed and bundle give the "
                    "same patches; writing into a folder again adds files and CSV rows, never overwrites.",
        epilog="example:\n  mammolens synthesize --class mass --n 64 --seed 1 --out augment/\n"
               "  mammolens synthesize --class all --n 16 --seed 7 --out augment/ --model synthesis-phantom "
               "--format png16,dicom")
    _parameter_flags(p, get_spec("synthesis").parameters, "--class all: every class of the bundle")
    p.add_argument("--out", type=Path, required=True, help="folder to write into (created; appended to if it exists)")
    p.add_argument("--model", help="synthesis bundle folder or name (default: the first synthesis bundle found)")
    p.add_argument("--format", default="png8,png16,dicom",
                   help="comma-separated: png8, png16, dicom (default all three)")
    p.add_argument("--grid", type=Path, metavar="PNG", help="also write a contact sheet, one row per class")

    p = sub.add_parser(
        "augmentation", help="does adding synthetic patches help a lesion-class classifier? (paper 004; into the card)",
        description="Train the project's lesion-class classifier on the real train-split ROI patches with and without "
                    "synthetic patches of the bundle (same budget and seeds), score both on the same held-out real "
                    "patches and report accuracy and recall per class (mean +/- sd over the seeds).",
        epilog="example: mammolens augmentation --model resources/models/synthesis-phantom "
               "--labels build/phantom-hg/labels.csv --name phantom")
    p.add_argument("--labels", type=Path, required=True, help="labels CSV with lesion boxes and train / test splits")
    p.add_argument("--model", help="synthesis bundle folder or name (default: the first synthesis bundle found)")
    p.add_argument("--name", help="the experiment's name in the card (default: the labels file's folder name)")
    p.add_argument("--seeds", type=int, default=5, help="runs per arm, seeds 0..N-1 (default 5)")
    p.add_argument("--steps", type=int, default=400, help="classifier training steps of batch 32 (default 400)")
    p.add_argument("--train-splits", default="train", help="comma-separated (default train)")
    p.add_argument("--test-splits", default="test", help="comma-separated held-out splits (default test)")
    p.add_argument("--card", action=argparse.BooleanOptionalAction, default=True,
                   help="add the result to the bundle's card (default on)")
    p.add_argument("--json", type=Path, help="also write the result here")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where ONNX Runtime runs the generator (default auto: the GPU when it works, else CPU)")

    p = sub.add_parser("dataset", help="dataset tools")
    dsub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    q = dsub.add_parser("import", help="write a labels CSV from a research dataset")
    q.add_argument("format", choices=("mias", "phantom"), help="mias: the mini-MIAS truth file; phantom: its manifest")
    q.add_argument("path", type=Path, help="the dataset folder")
    q.add_argument("--out", type=Path, required=True, help="labels CSV to write")
    q.add_argument("--splits", type=_fractions, default=(0.7, 0.15, 0.15),
                   help="train,val,test fractions by patient (MIAS; default 0.7,0.15,0.15)")
    q.add_argument("--seed", type=int, default=0, help="seed of the patient split (default 0)")
    q = dsub.add_parser("subset", help="a labels CSV with the train split and a few images of other splits (a card "
                                       "of a slow method)")
    q.add_argument("labels", type=Path, help="the labels CSV to draw from")
    q.add_argument("--out", type=Path, required=True, help="labels CSV to write (image paths rewritten to stay valid)")
    q.add_argument("--per-class", type=_per_split, required=True, metavar="SPLIT=N,...",
                   help="at most N normal and N abnormal images of each split named, e.g. val=20,test=40; the "
                        "train split is kept whole")
    q.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    _add_examples(sub)
    return parser


#: examples at the end of each verb's --help (verbs with their own epilog keep it)
EXAMPLES = {
    "view": ["mammolens view study/", "mammolens view DICOMDIR --models my-bundles/"],
    "demo": ["mammolens demo", "mammolens demo --offscreen --out demo-shots/"],
    "info": ["mammolens info study/"],
    "phantom": ["mammolens phantom --out phantom/ --n 40 --splits 0.6,0.2,0.2 --seed 1",
                "mammolens phantom --out dbt/ --n 4 --dbt 2 --legacy-dbt --compress jpeg2000"],
    "train": ["mammolens train healthygan --preset cpu --labels phantom/labels.csv --out runs/hg",
              "mammolens train healthygan --help   (every setting of the method)"],
    "train-all": ["mammolens train-all --out build/gpu --preset gpu --minutes 4"],
    "export": ["mammolens export runs/hg --out bundles/healthygan-phantom --name healthygan-phantom"],
    "analyze": ["mammolens analyze study/ --out maps/", "mammolens analyze volume.dcm --all-slices --out dbt-maps/",
                "mammolens analyze cohort/ --out maps/ --workers 2   (run again to resume)"],
    "evaluate": ["mammolens evaluate --method healthygan --model healthygan-phantom --labels phantom/labels.csv"],
    "dataset": ["mammolens dataset import mias mini-mias/ --out mias.csv",
                "mammolens dataset subset phantom/labels.csv --out eval/labels.csv --per-class val=20,test=40"],
}


def _add_examples(sub) -> None:
    for verb, lines in EXAMPLES.items():
        p = sub.choices.get(verb)
        if p is not None and not p.epilog:
            p.formatter_class = argparse.RawDescriptionHelpFormatter
            p.epilog = "examples:\n" + "\n".join(f"  {line}" for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.show_version:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(version("mammolens"))
        except PackageNotFoundError:
            print("mammolens (not installed)")
        return 0
    from inference.errors import MammolensError

    try:
        return _dispatch(args)
    except MammolensError as exc:
        print(f"mammolens: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mammolens: interrupted", file=sys.stderr)
        return 130


def _dispatch(args) -> int:
    if args.command in (None, "view"):
        from app.gui import run_viewer

        return run_viewer(getattr(args, "path", None), models_dirs=getattr(args, "models", []))
    if args.command == "demo":
        from app.gui import run_demo

        return run_demo(screenshot=args.screenshot, offscreen=args.offscreen, out=args.out)
    if args.command == "info":
        from inference.studies.study import open_path

        studies = open_path(args.path)
        print(studies.describe(identifiers=args.identifiers))
        return 0
    if args.command == "pacs":
        from app.pacs_cli import run_pacs

        return run_pacs(args, progress=console_progress)
    if args.command == "phantom":
        return _phantom(args)
    if args.command == "dataset":
        return _dataset_subset(args) if args.dataset_command == "subset" else _dataset_import(args)
    if args.command == "train":
        return _train(args)
    if args.command == "train-all":
        return _train_all(args)
    if args.command == "export":
        return _export(args)
    if args.command == "analyze":
        from app.analysis import analyze_path
        from inference.bundle import resolve_bundle
        from inference.errors import MammolensError

        spec = _method_for(args, "produces_map")
        values = _parameters(args, spec)
        if args.workers < 0:
            raise MammolensError("--workers takes a number of processes, 1 or more.")
        summary = analyze_path(args.path, spec.method, args.out, model=args.model,
                               device=values.pop("device", "auto"), all_slices=args.all_slices,
                               progress=console_progress, parameters=values, identifiers=args.identifiers,
                               workers=args.workers, scheduler=args.scheduler)
        print(file=sys.stderr)
        from app.analysis import summary_table

        rows = [r for r in summary["results"] if r["status"] == "ok"]
        if len(rows) <= 20:  # a study: each image's line; a cohort: the table only
            images = [r["key"].rsplit("-", 1)[0] for r in rows]
            for r, image in zip(rows, images):
                frame_text = f" slice {r['frame']}" if images.count(image) > 1 else ""
                print(f"{r['image']}{frame_text}: score {r['score']:.5f} -> "
                      f"{r['decision'] or r.get('no_decision') or 'no calibrated cut-off in the bundle'}")
        print(summary_table(summary))
        print(f"{summary['bundle']} on {summary['provider']}; maps, overlays and results.json/csv in {args.out}")
        card = summary.get("card") or resolve_bundle(args.model, method=spec.method).card_line
        print(f"model card: {card}" if card else "model card: none (run `mammolens evaluate` to measure one)")
        if args.dicom or args.anonymize:
            from inference.dicom_results import write_analysis_objects

            written = write_analysis_objects(args.path, args.out, model=args.model, anonymize=args.anonymize)
            print(f"{len(written)} DICOM objects (Parametric Map, SEG, SR) in {args.out / 'dicom'}")
        return 1 if summary["failed"] else 0
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "inpaint":
        from inference.inpaint import inpaint_file

        values = _parameters(args, get_spec("inpainting"), defaults=True)
        s = inpaint_file(args.path, args.box, args.out, model=args.model, device=values["device"],
                         score=values["score"], frame=None if args.slice is None else args.slice - 1)
        print(f"{s['image']}: MSE {s['mse']:.5f}, critic loss {s['critic']:.4f}, DMSE {s['dmse']:.6f}; "
              f"original / completion / error PNGs and scores.json in {args.out}")
        return 0
    if args.command == "synthesize":
        return _synthesize(args)
    if args.command == "augmentation":
        return _augmentation(args)
    raise AssertionError(args.command)


def _phantom(args) -> int:
    if args.demo:
        from training.demo import generate_demo_study

        rows = generate_demo_study(args.out, progress=console_progress)
        print(file=sys.stderr)
        print(f"wrote the demo study ({len({r.path for r in rows})} files) to {args.out}")
        return 0
    from training.phantom import generate_dataset

    rows = generate_dataset(
        args.out, n=args.n, views=args.views, lateralities=args.lateralities,
        lesion_fraction=args.lesion_fraction, classes=args.classes, lesion_views=args.lesion_views, shape=args.shape,
        pixel_spacing=args.spacing, dbt=args.dbt, dbt_slices=args.dbt_slices, dbt_shape=args.dbt_shape,
        legacy_dbt=args.legacy_dbt, compress=args.compress, bits_stored=args.bits, seed=args.seed,
        splits=args.splits, foreign_objects=args.foreign_objects, lesion_contrast=args.lesion_contrast,
        lesion_size=args.lesion_size, progress=console_progress,
    )
    print(file=sys.stderr)
    images = len({r.path for r in rows})
    lesions = sum(r.is_lesion for r in rows)
    objects = sum(r.is_foreign_object for r in rows)
    print(f"wrote {images} image file(s) with {lesions} lesion(s)"
          + (f" and {objects} foreign object(s)" if objects else "")
          + f" to {args.out}; labels: {args.out / 'labels.csv'}")
    return 0


def _sweep(args, spec) -> int:
    """`evaluate --sweep`: contrast-detail curves of one bundle (training.contrast_detail)."""
    from inference.errors import MammolensError
    from inference.methods import load_engine

    try:
        from training.contrast_detail import (add_to_card, contrast_detail_sweep, markdown, parse_sweep,
                                              training_classes)
    except ImportError as exc:
        raise MammolensError(f"the sweep trains the supervised ceiling and needs torch ({exc}).") from None
    try:
        axis, values = parse_sweep(args.sweep)
    except ValueError as exc:
        raise MammolensError(str(exc)) from None
    spec.require("produces_map")  # a generator has no detection curve to sweep
    parameters = _parameters(args, spec)
    engine = load_engine(spec.method, args.model, parameters.pop("device", "auto"))
    classes = args.sweep_classes or training_classes(engine.bundle)
    report = contrast_detail_sweep(engine, args.sweep_out, axis=axis, values=values, patients=args.sweep_patients,
                                   shape=args.sweep_shape, spacing=args.sweep_spacing, seed=args.sweep_seed,
                                   classes=classes,
                                   parameters=parameters, ceiling=args.ceiling, ceiling_epochs=args.ceiling_epochs,
                                   progress=console_progress)
    print(file=sys.stderr)
    print(markdown(report))
    print(f"wrote {args.sweep_out / 'contrast_detail.json'}, .md and .png")
    if args.card:
        if add_to_card(engine.bundle.path, report):
            print(f"added the {axis} curve to the card of {engine.bundle.name} ({engine.bundle.path / 'card.md'})")
        else:
            print(f"{engine.bundle.name} has no card yet: `mammolens evaluate` writes it, then a sweep adds its curve.")
    return 0


def _train(args) -> int:
    from inference.methods import get

    spec = get(args.method)
    if spec.training is None:
        raise SystemExit(f"mammolens: {spec.title} has no training package in this version")
    try:
        package = spec.training_package()
        from training.loop import command_line, config_parser, train
    except ImportError as exc:
        raise SystemExit(f"mammolens: training needs torch: pip install 'mammolens[train]' ({exc})") from None
    parser = config_parser(f"mammolens train {args.method}", package.Config, package.PRESETS)
    settings = parser.parse_args(args.settings)
    from inference.labels import read_labels

    read_labels(settings.labels)  # a missing or malformed labels file is one sentence, before any setup
    try:
        cfg = settings.make_config(command=command_line())
    except ValueError as exc:
        raise SystemExit(f"mammolens: {exc}") from None
    out = train(package.Method(cfg))
    print(f"run in {out}; export with: mammolens export {out} --out BUNDLE")
    return 0


def _train_all(args) -> int:
    try:
        from app.train_all import train_all
    except ImportError as exc:
        raise SystemExit(f"mammolens: training needs torch: pip install 'mammolens[train]' ({exc})") from None
    budgets = {}
    for item in args.budget:
        name, _, minutes = item.partition("=")
        try:
            budgets[name] = float(minutes)
        except ValueError:
            raise SystemExit(f"mammolens: --budget takes METHOD=MINUTES, not {item!r}") from None
    overrides = dict(item.partition("=")[::2] for item in args.set)
    bundles = train_all(args.out, preset=args.preset, minutes=args.minutes, budgets=budgets, patients=args.patients,
                        shape=args.phantom_shape, spacing=args.spacing, overrides=overrides, device=args.device,
                        object_patients=args.object_patients)
    for bundle in bundles:
        print(f"{bundle.method}: bundle {bundle.path}")
    return 0


def _export(args) -> int:
    import json

    from inference.errors import MammolensError
    from training.export import export_run

    try:
        method = json.loads((args.run / "run.json").read_text(encoding="utf-8"))["method"]
    except (OSError, ValueError, KeyError, TypeError):
        raise MammolensError(f"{args.run.name} is not a training run (no readable run.json naming its method).") \
            from None
    bundle = export_run(args.run, args.out, name=args.name, version=args.bundle_version,
                        calibration_split=args.calibration_split,
                        parameters=_named_parameters(get_spec(method), args.calibration_parameter),
                        calibration_images=args.calibration_images)
    print(f"wrote bundle {bundle.name} ({bundle.method}) to {args.out}")
    return 0


def _evaluate(args) -> int:
    import json

    from app.evaluation import format_report
    from inference.errors import MammolensError
    from training.evaluation import evaluate_bundle

    spec = _method_for(args, spec_capability(args.method))
    if args.sweep:
        return _sweep(args, spec)
    if args.labels is None:
        raise MammolensError("evaluate needs --labels (or --sweep for contrast-detail curves).")
    values = _parameters(args, spec)
    device = values.pop("device", "auto")
    options = {"ceiling": args.ceiling, "ceiling_epochs": args.ceiling_epochs, "object_patients": args.object_patients,
               "inception": args.inception, "reuse": args.reuse, **_card_options(args.card_option)}
    report = evaluate_bundle(args.labels, method=spec.method, model=args.model, split=args.split, device=device,
                             card=args.card, parameters=values, options=options, progress=console_progress)
    print(file=sys.stderr)
    print(format_report(report))
    if args.csv:
        from app.evaluation import write_section_files

        write_section_files(report, args.csv)
    if args.json:
        from inference.files import atomic_write_text

        atomic_write_text(args.json, json.dumps(report, indent=2, default=float))
    return 0


def _card_options(items: list[str]) -> dict:
    """``--card-option NAME=VALUE`` -> {name: value} for the card sections (each reads its own)."""
    from inference.errors import MammolensError

    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise MammolensError(f"--card-option takes NAME=VALUE, not {item!r}.")
        options[name.strip()] = value
    return options


def spec_capability(method: str) -> str:
    """The capability a method's card evaluates (its first declared one)."""
    capabilities = get_spec(method).capabilities()
    return capabilities[0] if capabilities else "produces_map"


def _synthesize(args) -> int:
    from inference.patches import export_patches, generate_patches, load_generator

    spec = get_spec("synthesis").require("generates_patches")
    values = _parameters(args, spec, defaults=True)
    wanted = [] if values["label"] == "all" else [values["label"]]
    engine = load_generator(args.model, values["device"],
                            check=(wanted, values["count"], values["seed"], values["truncation"]))
    labels = wanted or engine.classes
    patches = []
    for label in labels:
        patches += generate_patches(engine, label, values["count"], values["seed"], values["truncation"])
    summary = export_patches(patches, args.out, [f.strip() for f in args.format.split(",") if f.strip()])
    if args.grid:
        from inference.files import atomic_write_bytes
        from inference.images import png_bytes
        from inference.patches import contact_sheet

        atomic_write_bytes(args.grid, png_bytes(contact_sheet(patches, columns=values["count"])))
    print(f"wrote {len(summary.files)} file(s) for {len(patches)} {'/'.join(labels)} patch(es) of "
          f"{engine.bundle.label} (seed {values['seed']}) to {args.out}; list: {summary.csv.name}")
    return 0


def _augmentation(args) -> int:
    import json

    from training.synthesis.card import augmentation_markdown, run_augmentation

    splits = lambda text: tuple(v.strip() for v in text.split(",") if v.strip())  # noqa: E731
    result = run_augmentation(args.labels, model=args.model, name=args.name, seeds=tuple(range(args.seeds)),
                              steps=args.steps, train_splits=splits(args.train_splits),
                              test_splits=splits(args.test_splits), device=args.device, card=args.card)
    print("\n".join(augmentation_markdown({args.name or args.labels.parent.name: result})))
    if args.json:
        from inference.files import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


def _dataset_subset(args) -> int:
    from inference.errors import MammolensError
    from inference.labels import labels_subset, read_labels, rows_by_image

    if not args.labels.is_file():
        raise MammolensError(f"{args.labels} is not a labels file.")
    labels_subset(args.labels, args.out, args.per_class, seed=args.seed)
    grouped = rows_by_image(read_labels(args.out))
    counts: dict[str, int] = {}
    for rows in grouped.values():
        counts[rows[0].split] = counts.get(rows[0].split, 0) + 1
    print(f"wrote {args.out}: " + ", ".join(f"{split} {n}" for split, n in sorted(counts.items())) + " image(s)")
    return 0


def _dataset_import(args) -> int:
    from app.datasets import import_mias, import_phantom
    from inference.labels import split_by_patient, write_labels

    if args.format == "mias":
        rows = import_mias(args.path, splits=args.splits, seed=args.seed)
    else:
        rows = import_phantom(args.path)
        if not any(r.split for r in rows):
            rows = split_by_patient(rows, args.splits, args.seed)
    write_labels(args.out, rows)
    images = len({r.path for r in rows})
    abnormal = len({r.path for r in rows if r.is_lesion})
    print(f"wrote {len(rows)} row(s) for {images} image(s) ({abnormal} with lesions) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
