"""`mammolens pacs echo|query|pull|push`: the command line of :mod:`inference.pacs`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _date(text: str) -> str:
    digits = text.replace("-", "")
    if len(digits) != 8 or not digits.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYYMMDD or YYYY-MM-DD)")
    return digits


def add_pacs_parser(sub) -> None:
    p = sub.add_parser(
        "pacs", help="query a PACS, retrieve studies into the local cache, send results back (DICOMweb or DIMSE)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Servers are named in pacs.json ($MAMMOLENS_PACS_CONFIG, else the user's config folder): a "
                    "DICOMweb URL, or AE title / host / port; passwords come from an environment variable or a "
                    "user-only credentials file, never from the command line.",
        epilog="examples:\n  mammolens pacs echo hospital\n"
               "  mammolens pacs query hospital --patient-id 12345 --from 2024-01-01 --modality MG\n"
               "  mammolens pacs pull hospital 1.2.840.113619.2.55.3.604688119 --cache studies/\n"
               "  mammolens pacs push hospital maps/dicom/")
    p.add_argument("--config", type=Path, help="the servers file (default $MAMMOLENS_PACS_CONFIG or the user's)")
    verbs = p.add_subparsers(dest="pacs_command", metavar="VERB", required=True)
    v = verbs.add_parser("echo", help="check that a server answers (C-ECHO, or a DICOMweb query)")
    v.add_argument("server", help="a server name of pacs.json")
    v = verbs.add_parser("query", help="find studies (patient ID, study dates, modality, accession number)")
    v.add_argument("server")
    _query_arguments(v)
    v.add_argument("--identifiers", action="store_true", help="also print patient IDs and names (off by default)")
    v = verbs.add_parser("pull", help="retrieve studies into the local cache (a retry fetches what is missing)")
    v.add_argument("server")
    v.add_argument("study_uid", nargs="+", help="Study Instance UID(s), as `pacs query` prints them")
    v.add_argument("--cache", type=Path, help="cache folder (default $MAMMOLENS_PACS_CACHE or the user's cache)")
    v = verbs.add_parser("push", help="send DICOM files or folders of them (STOW-RS or C-STORE)")
    v.add_argument("server")
    v.add_argument("paths", nargs="+", type=Path, help="files, or folders whose *.dcm are sent")
    v = verbs.add_parser(
        "analyze", help="a cohort from a query: retrieve each study, analyze it (maps and DICOM objects), "
                        "optionally push the objects back; a rerun resumes")
    v.add_argument("server")
    _query_arguments(v)
    v.add_argument("--study-uid", action="append", default=[], help="analyse this study (repeatable; no query)")
    from app.cli import _method_arguments

    _method_arguments(v, "produces_map")
    v.add_argument("--out", type=Path, required=True, help="one analyze output per study under this folder")
    v.add_argument("--all-slices", action="store_true", help="DBT: every slice, not only the central one")
    v.add_argument("--push", action="store_true", help="send each study's Parametric Maps, SEGs and SRs back")
    v.add_argument("--anonymize", action="store_true", help="pseudonymise the DICOM objects (then not pushed "
                                                            "into the source study: they leave it)")
    v.add_argument("--cache", type=Path, help="cache folder (default $MAMMOLENS_PACS_CACHE or the user's cache)")


def _query_arguments(v) -> None:
    v.add_argument("--patient-id")
    v.add_argument("--from", dest="date_from", type=_date, metavar="DATE", help="first study date")
    v.add_argument("--to", dest="date_to", type=_date, metavar="DATE", help="last study date")
    v.add_argument("--modality", help="a modality in the study (MG, ...)")
    v.add_argument("--accession")


def _query(args):
    from inference import pacs

    return pacs.Query(patient_id=args.patient_id, date_from=args.date_from, date_to=args.date_to,
                      modality=args.modality, accession=args.accession)


def run_pacs(args, progress=None) -> int:
    from inference import pacs

    server = pacs.server_named(args.server, args.config)
    client = pacs.client(server)
    if args.pacs_command == "echo":
        seconds = client.echo()
        print(f"{server.name} ({server.protocol}, {server.where}) answers in {seconds * 1000:.0f} ms")
        return 0
    if args.pacs_command == "query":
        hits = client.query(_query(args))
        for h in hits:
            who = f"  {h.patient_id}  {h.patient_name}" if args.identifiers else ""
            n = f"{h.instances} instance(s)" if h.instances is not None else ""
            print(f"{h.study_uid}  {h.date or '-'}  {h.modalities or '-'}  {n}  {h.description}{who}".rstrip())
        print(f"{len(hits)} study(ies) on {server.name}", file=sys.stderr)
        return 0
    if args.pacs_command == "pull":
        cache = args.cache or pacs.cache_root()
        for uid in args.study_uid:
            folder = client.pull(uid, cache, progress=progress)
            print(f"{uid}: {len(list(folder.glob('*.dcm')))} instance(s) in {folder}")
        return 0
    if args.pacs_command == "push":
        files = pacs.dicom_files(args.paths)
        n = client.push(files, progress=progress)
        print(f"{n} object(s) sent to {server.name}")
        return 0
    if args.pacs_command == "analyze":
        return _analyze_cohort(args, server, client, progress)
    raise AssertionError(args.pacs_command)


def _analyze_cohort(args, server, client, progress) -> int:
    """Each study of the query (or of --study-uid) retrieved, analysed into OUT/study-..., its DICOM
    objects written and, with --push, sent back. A study whose outputs (and push) are complete is
    skipped, so a rerun after a failure or an interrupt resumes where it stopped."""
    import json

    from app.analysis import analyze_path
    from app.cli import _method_for, _parameters
    from inference import pacs
    from inference.dicom_results import write_analysis_objects
    from inference.errors import MammolensError
    from inference.files import atomic_write_text

    if args.push and args.anonymize:
        raise MammolensError("--push sends the objects into the source study; pseudonymised objects do not "
                             "belong there: choose one of --push and --anonymize.")
    uids = list(args.study_uid) or [h.study_uid for h in client.query(_query(args))]
    if not uids:
        print(f"no study on {server.name} matches the query", file=sys.stderr)
        return 0
    spec = _method_for(args, "produces_map")
    values = _parameters(args, spec)
    device = values.pop("device", "auto")
    cache = args.cache or pacs.cache_root()
    failed = 0
    for n, uid in enumerate(uids, 1):
        folder = pacs.study_folder(cache, uid)
        out = Path(args.out) / folder.name
        pushed = out / "pushed.json"
        if (out / "dicom").is_dir() and (not args.push or pushed.is_file()):
            print(f"study {n} of {len(uids)} ({folder.name}): done in an earlier run, skipped")
            continue
        try:
            client.pull(uid, cache, progress=progress)
            if not (out / "dicom").is_dir():
                analyze_path(folder, spec.method, out, model=args.model, device=device, all_slices=args.all_slices,
                             progress=progress, parameters=values)
                write_analysis_objects(folder, out, model=args.model, anonymize=args.anonymize)
            objects = sorted((out / "dicom").glob("*.dcm"))
            if args.push:
                client.push(objects, progress=progress)
                atomic_write_text(pushed, json.dumps({"server": server.name, "objects": [p.name for p in objects]}))
            print(f"study {n} of {len(uids)} ({folder.name}): {len(objects)} DICOM object(s)"
                  f"{' sent to ' + server.name if args.push else ''}; outputs in {out}")
        except MammolensError as exc:
            failed += 1
            print(f"study {n} of {len(uids)} ({folder.name}): {exc}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(uids)} study(ies) failed; run the same command again to retry them", file=sys.stderr)
        return 1
    return 0
