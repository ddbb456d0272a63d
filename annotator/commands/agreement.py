"""``annotator agreement``: the study's agreement table."""

from __future__ import annotations

import argparse
import json

from annotator.domain.policy import ReaderNames


def _agreement(args: argparse.Namespace) -> int:
    from annotator.services import agreement, project

    if args.study is not None:
        return _study_agreement(args)
    db = project.open_project(args.db)
    viewer = project.acting(db, args.as_rater)
    names = project.reader_names_for(db, viewer) if viewer is not None else ReaderNames()
    readers = [names.resolve(r) for r in args.readers] if args.readers else None
    report = agreement.agreement_report(db, readers, n_boot=args.bootstrap, seed=args.seed)
    if args.json:
        print(json.dumps(agreement.report_json(report, names), indent=1, allow_nan=False))
    else:
        print(agreement.as_markdown(report, names))
    return 0


def _study_agreement(args: argparse.Namespace) -> int:
    from annotator.services import project
    from annotator.services.study_stats import study_stats

    db = project.open_project(args.db)
    report = study_stats(db, project.acting_required(db, args.as_rater, "a reviewer or admin"), args.study)
    doc = report.to_json()
    if args.json:
        print(json.dumps(doc, indent=1, allow_nan=False))
        return 0
    print(f"study {report.study} ({report.scale}): first reads, calibration left out")
    for p in doc["pairs"]:
        print(f"  {p['a']} vs {p['b']}: n {p['n']}, accuracy {p['accuracy']}, kappa (linear) {p['kappa_linear']}")
    for p in doc["intra"]:
        print(f"  intra {p['reader']}: n {p['n']} pairs, accuracy {p['accuracy']}, kappa {p['kappa']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("agreement", help="inter-rater and rater-vs-model agreement (the study's table)")
    s.add_argument("--readers", nargs="+", metavar="READER", help="rater:NAME, model:ID, consensus (default: all)")
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable report (keys in the README)")
    fmt.add_argument("--markdown", action="store_true", help="Markdown table (the default)")
    s.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="patient-bootstrap resamples (0: none)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--study", metavar="NAME", help="a reader study's figures: its first reads, intra-rater "
                   "(first vs repeat), reading seconds, cannot-grade counts, per level")
    s.add_argument("--as", dest="as_rater", metavar="NAME", help="who is looking (with --study: reviewer or admin); "
                   "readers are named as she may see them")
    s.set_defaults(func=_agreement)
