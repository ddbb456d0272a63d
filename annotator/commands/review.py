"""``annotator review``: the disagreement queue and decisions, from a script."""

from __future__ import annotations

import argparse
import json

from annotator.domain.entities import QueueStatus


def _service(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from annotator.services import project
    from annotator.services.review import ReviewService

    db = project.open_project(args.db)
    return db, ReviewService(db, project.acting_required(db, args.as_rater, "the reviewer acting"))


def _queue(args: argparse.Namespace) -> int:
    from annotator.services import project
    from annotator.services.review import disagreement_queue, queue_counts, queue_images

    db = project.open_project(args.db)
    viewer = project.acting_required(db, args.as_rater, "the reviewer")
    items = disagreement_queue(db, viewer, include_model=args.include_model,
                               status=None if args.status == "all" else args.status)
    sops = {i: im.sop_instance_uid for i, im in queue_images(db, [it.image_id for it in items]).items()}
    if args.json:
        print(json.dumps({"counts": queue_counts(items), "items": [
            {"image_id": it.image_id, "sop_uid": sops[it.image_id], "reasons": list(it.reasons),
             "grade_distance": it.grade_distance, "mm_distance": it.mm_distance, "status": it.status.value,
             "version": it.adjudication_version,
             "readers": {it.shown(k): {"x_px": m.x_px, "y_px": m.y_px, "grade": m.grade, "label_version": m.version}
                        for k, m in it.marks.items()}}
            for it in items]}, indent=1))
        return 0
    print(", ".join(f"{k}: {v}" for k, v in queue_counts(items).items()))
    for it in items:
        print(f"{it.image_id:6} {it.status:9} v{it.adjudication_version}  {'; '.join(it.reasons)}")
    return 0


def _accept(args: argparse.Namespace) -> int:
    _db, svc = _service(args)
    a = svc.accept(args.image_id, args.reader, args.version, args.reason or "", label_version=args.label_version)
    source = a.source_text if a.source is None else svc.names.reader(a.source)
    print(f"slice {a.image_id}: decided {source} grade {a.grade} (version {a.version})")
    return 0


def _decide(args: argparse.Namespace) -> int:
    _db, svc = _service(args)
    a = svc.decide(args.image_id, args.x, args.y, args.grade, args.version, args.reason or "")
    print(f"slice {a.image_id}: decided own grade {a.grade} at ({a.x_px}, {a.y_px}) (version {a.version})")
    return 0


def _reopen(args: argparse.Namespace) -> int:
    _db, svc = _service(args)
    a = svc.reopen(args.image_id, args.reason or "", args.version)
    print(f"slice {a.image_id}: reopened (version {a.version})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("review", help="disagreement queue and adjudication (reviewers, admins)")
    rsub = s.add_subparsers(dest="review_command", required=True)
    q = rsub.add_parser("queue", help="slices where the required raters disagree")
    q.add_argument("--include-model", action="store_true", help="also where the active model disagrees")
    q.add_argument("--status", choices=[s.value for s in QueueStatus] + ["all"], default=QueueStatus.OPEN.value)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_queue)
    for name, func, help_ in (("accept", _accept, "adopt one reader's label"),
                              ("decide", _decide, "set your own point and grade"),
                              ("reopen", _reopen, "reopen a decision (reason required)")):
        p = rsub.add_parser(name, help=help_)
        p.add_argument("image_id", type=int)
        if name == "accept":
            p.add_argument("reader", help="rater:NAME or model:ID (where reader names are hidden: the alias, "
                           "as queue --json shows it)")
            p.add_argument("--label-version", type=int, default=None,
                           help="the version of the rater's label you saw (queue --json: label_version); "
                                "refused if the rater changed it since")
        if name == "decide":
            p.add_argument("x", type=float)
            p.add_argument("y", type=float)
            p.add_argument("grade", type=int)
        p.add_argument("--version", type=int, required=True, help="the decision version you saw (0: none)")
        p.add_argument("--reason", default="")
        p.set_defaults(func=func)
    for p in (q, *[rsub.choices[n] for n in ("accept", "decide", "reopen")]):
        p.add_argument("--as", dest="as_rater", metavar="NAME",
                       help="the reviewer acting (a team database: the rater who connects)")
