"""``annotator study``, ``annotator read`` and ``annotator levels``: reader studies from a script."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from annotator.domain.errors import InputError
from annotator.domain.studies import (
    Answer,
    Calibration,
    CannotGrade,
    Orientation,
    ReadOrder,
    SelectionRule,
    StudyDefinition,
    StudyDesign,
    VertebralLevel,
)


def _open(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from annotator.services import project

    db = project.open_project(args.db)
    return db, project.acting_required(db, args.as_rater)


def _definition(args: argparse.Namespace) -> StudyDefinition:
    from annotator.services.studies import read_sop_list, reader_name

    rules_given = [flag for flag, value in (("--series-description", args.series_description),
                                            ("--orientation", args.orientation), ("--level", args.level),
                                            ("--modality", args.modality)) if value is not None]
    if args.sop_list is not None and rules_given:
        raise InputError(f"--sop-list replaces the rules: drop {', '.join(rules_given)}, or the list")
    if args.sop_list is not None:
        rule = SelectionRule(sop_uids=read_sop_list(Path(args.sop_list)))
    else:
        rule = SelectionRule(series_description=args.series_description,
                             orientation=Orientation(args.orientation) if args.orientation else None,
                             tolerance_deg=args.tolerance_deg,
                             level=VertebralLevel.parse(args.level) if args.level else None,
                             modality=args.modality)
    calibration = None
    if args.calibration is not None:
        if args.reference is None:
            raise InputError("--calibration needs --reference READER (whose labels are the truth)")
        if args.calibration.isdigit():
            calibration = Calibration(reader_name(args.reference), count=int(args.calibration))
        else:
            calibration = Calibration(reader_name(args.reference), sop_uids=read_sop_list(Path(args.calibration)))
    return StudyDefinition(name=args.name, rule=rule, readers=tuple(reader_name(r) for r in args.readers),
                           design=StudyDesign(args.design), readers_per_slice=args.readers_per_slice,
                           order=ReadOrder(args.order), seed=args.seed, repeat_fraction=args.repeat_fraction,
                           washout=args.washout, calibration=calibration)


def _create(args: argparse.Namespace) -> int:
    from annotator.services.studies import create_study

    db, actor = _open(args)
    s = create_study(db, actor, _definition(args))
    print(f"created reader study {s.name!r}: {s.n_slices} slices, {s.n_calibration} calibration slices, "
          f"{len(s.definition.readers)} readers")
    return 0


def _list(args: argparse.Namespace) -> int:
    from annotator.services.studies import list_studies

    db, viewer = _open(args)
    found = list_studies(db, viewer)
    if args.json:
        print(json.dumps([{"name": s.name, "id": s.id, "slices": s.n_slices, "calibration_slices": s.n_calibration,
                           "readers": list(s.definition.readers)} for s in found]))
        return 0
    for s in found:
        print(f"{s.id:4}  {s.name:30} {s.n_slices:6} slices  readers: {', '.join(s.definition.readers)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from annotator.services.studies import show_study

    db, viewer = _open(args)
    report = show_study(db, viewer, args.name)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
        return 0
    d = report.study.definition
    print(f"{d.name}: {report.study.n_slices} slices, {report.study.n_calibration} calibration, "
          f"design {d.design.value}, order {d.order.value}, seed {d.seed}")
    for p in report.readers:
        print(f"  {p.reader:20} {p.done}/{p.assigned} read, repeats {p.repeats_done}/{p.repeats_planned}, "
              f"calibration {p.calibration_done}/{p.calibration_planned}, cannot grade {p.cannot_grade}")
    return 0


def _next(args: argparse.Namespace) -> int:
    from annotator.services.reading import ReadingSession

    db, rater = _open(args)
    session = ReadingSession.open(db, rater, args.study)
    item = session.next()
    if args.json:
        total = session.progress()[1]
        print(json.dumps(item.to_json() if item is not None else
                         {"study": args.study, "finished": True, "number": None, "total": total}))
    elif item is None:
        print(f"{rater.name} has read every slice of study {args.study!r}")
    else:
        print(f"{item.number}/{item.total} {item.sop_instance_uid} (image {item.image_id})"
              + (" calibration" if item.calibration else ""))
    return 0


def _answer(args: argparse.Namespace) -> int:
    from annotator.services.reading import ReadingSession

    db, rater = _open(args)
    session = ReadingSession.open(db, rater, args.study)
    out = session.answer(args.sop_uid, Answer(
        x_px=args.x, y_px=args.y, grade=args.grade,
        cannot_grade=CannotGrade(args.cannot_grade) if args.cannot_grade else None,
        seconds=args.seconds, comment=args.comment))
    if args.json:
        print(json.dumps(out.to_json(args.study)))
    else:
        print(f"recorded read {out.number}/{out.total}" + (
            f"; reference grade {out.feedback.reference.grade} at ({out.feedback.reference.x_px}, "
            f"{out.feedback.reference.y_px}), {out.feedback.distance_mm} mm and {out.feedback.grade_difference} "
            "grades from yours" if out.feedback else ""))
    return 0


def _levels_set(args: argparse.Namespace) -> int:
    from annotator.services.levels import set_series_levels

    db, actor = _open(args)
    level = VertebralLevel.parse(args.level)
    n = set_series_levels(db, actor, args.series, args.slices, level)
    print(f"series {args.series}: {n} slices now at level {level.value if level else 'none'}")
    return 0


def _levels_list(args: argparse.Namespace) -> int:
    from annotator.services import project
    from annotator.services.levels import level_counts

    counts = level_counts(project.open_project(args.db))
    print(json.dumps(counts) if args.json else "\n".join(f"{k:8} {v}" for k, v in counts.items()))
    return 0


def _as(p: argparse.ArgumentParser, who: str) -> None:
    p.add_argument("--as", dest="as_rater", metavar="NAME", help=who + " (a team database: the rater who connects)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("study", help="reader studies: create, list, show")
    ssub = s.add_subparsers(dest="study_command", required=True)
    c = ssub.add_parser("create", help="create a reader study (admins)")
    c.add_argument("name")
    c.add_argument("--series-description", metavar="REGEX", help="series whose description matches (any case)")
    c.add_argument("--orientation", choices=[o.value for o in Orientation])
    c.add_argument("--tolerance-deg", type=float, default=10.0, help="orientation tolerance (default 10)")
    c.add_argument("--level", metavar="LEVEL", help="L1-L2 ... L5-S1")
    c.add_argument("--modality", metavar="MOD", help="MR, CT, ...")
    c.add_argument("--sop-list", metavar="FILE", help="one SOPInstanceUID a line, instead of the rules")
    c.add_argument("--readers", nargs="+", required=True, metavar="rater:NAME")
    c.add_argument("--design", choices=[d.value for d in StudyDesign], default=StudyDesign.CROSSED.value)
    c.add_argument("--readers-per-slice", type=int, default=1, metavar="K", help="split design: readers per slice")
    c.add_argument("--order", choices=[o.value for o in ReadOrder], default=ReadOrder.RANDOM.value)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--repeat-fraction", type=float, default=0.0, metavar="F")
    c.add_argument("--washout", type=int, default=0, metavar="N", help="other slices between a read and its repeat")
    c.add_argument("--calibration", metavar="FILE|N", help="a SOP list file, or a number of slices")
    c.add_argument("--reference", metavar="rater:NAME", help="whose labels the calibration feedback shows")
    _as(c, "the admin creating the study")
    c.set_defaults(func=_create)
    for name, func, help_ in (("list", _list, "the studies you may see"),
                              ("show", _show, "slices, readers, progress (reviewers and admins)")):
        p = ssub.add_parser(name, help=help_)
        if name == "show":
            p.add_argument("name")
        p.add_argument("--json", action="store_true")
        _as(p, "who is looking")
        p.set_defaults(func=func)

    s = sub.add_parser("read", help="read in a reader study: the next slice, an answer")
    rsub = s.add_subparsers(dest="read_command", required=True)
    n = rsub.add_parser("next", help="your next slice")
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=_next)
    a = rsub.add_parser("answer", help="answer your current slice")
    a.add_argument("sop_uid", metavar="SOP_UID")
    a.add_argument("--x", type=float)
    a.add_argument("--y", type=float)
    a.add_argument("--grade", type=int)
    a.add_argument("--cannot-grade", choices=[c.value for c in CannotGrade], metavar="REASON",
                   help="motion, artefact, wrong_level or other (instead of a grade)")
    a.add_argument("--seconds", type=float, help="how long the read took")
    a.add_argument("--comment", default="")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=_answer)
    for p in (n, a):
        p.add_argument("--study", required=True, metavar="NAME")
        _as(p, "the reader")

    s = sub.add_parser("levels", help="vertebral level of slices")
    lsub = s.add_subparsers(dest="levels_command", required=True)
    st = lsub.add_parser("set", help="set the level of slices of a series (admins)")
    st.add_argument("--series", required=True, metavar="UID", help="SeriesInstanceUID")
    st.add_argument("--slices", metavar="N-M", help="1-based slice numbers as in the worklist (default: all)")
    st.add_argument("--level", required=True, metavar="LEVEL", help="L1-L2 ... L5-S1, or none")
    _as(st, "the admin")
    st.set_defaults(func=_levels_set)
    ls = lsub.add_parser("list", help="slices per level")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_levels_list)
