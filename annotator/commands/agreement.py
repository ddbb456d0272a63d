"""``annotator agreement``: the study's agreement table."""

from __future__ import annotations

import argparse
import json

from annotator.domain.readers import ReaderRef


def _agreement(args: argparse.Namespace) -> int:
    from annotator.services import agreement, project

    readers = [ReaderRef.parse(r) for r in args.readers] if args.readers else None
    db = project.open_project(args.db)
    report = agreement.agreement_report(db, readers, n_boot=args.bootstrap, seed=args.seed)
    if args.json:
        print(json.dumps(agreement.report_json(report), indent=1, allow_nan=False))
    else:
        print(agreement.as_markdown(report))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("agreement", help="inter-rater and rater-vs-model agreement (the study's table)")
    s.add_argument("--readers", nargs="+", metavar="READER", help="rater:NAME, model:ID, consensus (default: all)")
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable report (keys in the README)")
    fmt.add_argument("--markdown", action="store_true", help="Markdown table (the default)")
    s.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="patient-bootstrap resamples (0: none)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_agreement)
