"""``annotator export`` and ``annotator import-labels``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _export(args: argparse.Namespace) -> int:
    from annotator.services import labelsets, project
    from annotator.services import readers as reader_service

    db = project.open_project(args.db)
    if args.study is not None:
        from annotator.services import study_io

        viewer = project.acting_required(db, args.as_rater, "a reviewer or admin")
        n = study_io.export(db, viewer, args.study, Path(args.out), args.format)
        print(f"wrote {n} reads of study {args.study!r} to {args.out}")
        return 0
    actor = project.acting(db, args.as_rater)
    readers = args.readers or [str(r) for r in reader_service.all_readers(db)]
    n = labelsets.export(db, readers, Path(args.out), args.format, actor=actor)
    print(f"wrote {n} rows ({', '.join(readers)}) to {args.out}")
    return 0


def _import_labels(args: argparse.Namespace) -> int:
    from annotator.services import labelsets, project

    db = project.open_project(args.db)
    actor = project.acting(db, args.as_rater)
    report = labelsets.import_labels(db, Path(args.file), reader=args.reader, actor=actor)
    for line in report.errors:
        print(line, file=sys.stderr)
    if report.errors:
        print(f"annotator: error: {len(report.errors)} bad rows in {args.file}; nothing was imported",
              file=sys.stderr)
        return 1
    created = f" (new raters: {', '.join(report.created_raters)})" if report.created_raters else ""
    print(f"imported {report.applied} labels from {args.file}{created}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("export", help="export label sets, one row per slice and reader")
    s.add_argument("--readers", nargs="+", metavar="READER",
                   help="rater:NAME, model:ID or consensus (default: every reader)")
    s.add_argument("--format", choices=["csv", "json"], default="csv")
    s.add_argument("--out", required=True, metavar="FILE")
    s.add_argument("--study", metavar="NAME", help="a reader study's reads (one row per read) instead of labels")
    s.add_argument("--as", dest="as_rater", default=None, metavar="NAME",
                   help="the rater exporting, who must have the right to (default: the database's owner; "
                        "with --study: a reviewer or admin)")
    s.set_defaults(func=_export)

    s = sub.add_parser("import-labels", help="import labels made elsewhere (CSV or JSON, export's columns)")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--reader", metavar="rater:NAME", help="the reader of every row (overrides the column)")
    s.add_argument("--as", dest="as_rater", metavar="NAME", help="the admin importing a reader study's reads")
    s.set_defaults(func=_import_labels)
