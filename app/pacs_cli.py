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
    v.add_argument("--patient-id")
    v.add_argument("--from", dest="date_from", type=_date, metavar="DATE", help="first study date")
    v.add_argument("--to", dest="date_to", type=_date, metavar="DATE", help="last study date")
    v.add_argument("--modality", help="a modality in the study (MG, ...)")
    v.add_argument("--accession")
    v.add_argument("--identifiers", action="store_true", help="also print patient IDs and names (off by default)")
    v = verbs.add_parser("pull", help="retrieve studies into the local cache (a retry fetches what is missing)")
    v.add_argument("server")
    v.add_argument("study_uid", nargs="+", help="Study Instance UID(s), as `pacs query` prints them")
    v.add_argument("--cache", type=Path, help="cache folder (default $MAMMOLENS_PACS_CACHE or the user's cache)")
    v = verbs.add_parser("push", help="send DICOM files or folders of them (STOW-RS or C-STORE)")
    v.add_argument("server")
    v.add_argument("paths", nargs="+", type=Path, help="files, or folders whose *.dcm are sent")


def run_pacs(args, progress=None) -> int:
    from inference import pacs

    server = pacs.server_named(args.server, args.config)
    client = pacs.client(server)
    if args.pacs_command == "echo":
        seconds = client.echo()
        print(f"{server.name} ({server.protocol}, {server.where}) answers in {seconds * 1000:.0f} ms")
        return 0
    if args.pacs_command == "query":
        hits = client.query(pacs.Query(patient_id=args.patient_id, date_from=args.date_from, date_to=args.date_to,
                                       modality=args.modality, accession=args.accession))
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
    raise AssertionError(args.pacs_command)
