"""``annotator export`` and ``annotator import-labels``: every interchange format, one command each."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("csv", "json", "sr", "rsna", "coco")  # ExportFormat's values (kept here so --help stays light)
SHOWN_WARNINGS = 5


def _progress(done: int, total: int, message: str) -> None:
    """A one-line progress display on stderr when it is a terminal."""
    if not sys.stderr.isatty() or total <= 0:
        return
    width = 30
    filled = width * done // total
    sys.stderr.write(f"\rexport [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _export(args: argparse.Namespace) -> int:
    from annotator.services import interchange, project

    db = project.open_project(args.db)
    actor = project.acting(db, args.as_rater)
    request = interchange.ExportRequest(args.format, Path(args.out), tuple(args.readers or ()), args.study,
                                        args.deidentify)
    summary = interchange.export(db, request, actor=actor, progress=_progress)
    what = f"{summary.items} reads of study {args.study!r}" if args.study else f"{summary.items} rows"
    what += f" ({', '.join(summary.readers)})"
    if summary.bundle:
        extra = f", {summary.dicom_copies} de-identified DICOM slices" if args.deidentify else ""
        print(f"wrote a {summary.format.value} bundle of {what}{extra} to {summary.path}")
    else:
        print(f"wrote {what} to {summary.path}")
    if summary.warnings:
        counts = "; ".join(f"{reason}: {n}" for reason, n in sorted(summary.warning_counts.items()))
        print(f"warning: {len(summary.warnings)} slices may carry text burned into their pixels ({counts}); "
              f"the bundle's bundle.json lists them", file=sys.stderr)
        for line in summary.warnings[:SHOWN_WARNINGS]:
            print(f"warning: {line}", file=sys.stderr)
        if len(summary.warnings) > SHOWN_WARNINGS:
            print(f"warning: … and {len(summary.warnings) - SHOWN_WARNINGS} more", file=sys.stderr)
    return 0


def _import_labels(args: argparse.Namespace) -> int:
    from annotator.services import interchange, labelsets, project

    db = project.open_project(args.db)
    actor = project.acting(db, args.as_rater)
    report = interchange.import_labels(db, Path(args.file), fmt=args.format, reader=args.reader, actor=actor)
    for line in report.errors:
        print(line, file=sys.stderr)
    if report.errors:
        print(f"annotator: error: {len(report.errors)} bad rows in {args.file}; nothing was imported",
              file=sys.stderr)
        return 1
    created = f" (new raters: {', '.join(report.created_raters)})" if report.created_raters else ""
    print(f"imported {report.applied} labels from {args.file}{created}")
    if report.passed_over:
        print(f"note: {len(report.passed_over)} reads passed over ({labelsets.WHY_PASSED_OVER}):", file=sys.stderr)
        for line in report.passed_over[:SHOWN_WARNINGS]:
            print(f"note: {line}", file=sys.stderr)
        if len(report.passed_over) > SHOWN_WARNINGS:
            print(f"note: … and {len(report.passed_over) - SHOWN_WARNINGS} more", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("export", help="export label sets or a study's reads: csv, json, DICOM SR, RSNA, COCO")
    s.add_argument("--format", choices=FORMATS, default="csv",
                   help="csv or json (one file, or a bundle folder with --deidentify); sr, rsna, coco: a bundle "
                        "folder (default: csv)")
    s.add_argument("--readers", nargs="+", metavar="READER",
                   help="rater:NAME, model:ID or consensus (default: every reader the exporter may see)")
    s.add_argument("--study", metavar="NAME", help="a reader study's reads (one row per read) instead of labels")
    s.add_argument("--deidentify", action="store_true",
                   help="a bundle with de-identified DICOM copies of the exported slices (dicognito, PS3.15 basic "
                        "profile); every file names their pseudonymous UIDs")
    s.add_argument("--out", required=True, metavar="PATH",
                   help="the file (csv/json) or the new bundle folder (must not exist)")
    s.add_argument("--as", dest="as_rater", default=None, metavar="NAME",
                   help="the rater exporting, who must have the right to (default: the database's owner; "
                        "with --study: a reviewer or admin)")
    s.set_defaults(func=_export)

    s = sub.add_parser("import-labels", help="import labels made elsewhere: a file or a bundle, any format")
    s.add_argument("file", metavar="PATH", help="a label file or an export bundle folder")
    s.add_argument("--format", choices=FORMATS, default=None,
                   help="default: a bundle's manifest, else the file's suffix (.csv, .json: ours or COCO, .dcm: SR)")
    s.add_argument("--reader", metavar="rater:NAME", help="the reader of every row (overrides the file's)")
    s.add_argument("--as", dest="as_rater", metavar="NAME", help="the admin importing a reader study's reads")
    s.set_defaults(func=_import_labels)
