"""The ``annotator`` command line: every use case the GUI offers, reachable from a script."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence

from annotator import __version__
from annotator.commands.prompts import read_new_password
from annotator.domain.entities import ImportResult, ImportStatus, Role
from annotator.domain.errors import AnnotatorError
from annotator.domain.policy import Action

# Command groups registered from annotator/commands/<name>.py (kept out of this module to keep it small).
COMMAND_MODULES = ("labelsets", "agreement", "demo", "review", "ml", "study", "settings", "team")


class _Bar:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int, message: str) -> None:
        if not self.tty or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _cmd_import(args: argparse.Namespace) -> int:
    from annotator.services import project
    from annotator.services.importing import import_paths

    db = project.open_project(args.db)

    def show(r: ImportResult) -> None:
        if args.json:
            print(json.dumps(r.as_dict()), flush=True)
        elif r.status is ImportStatus.REJECTED or args.verbose or r.reason and r.status is ImportStatus.IMPORTED:
            print(f"{r.status.value:9} {r.path}" + (f": {r.reason}" if r.reason else ""), flush=True)

    results = import_paths(db, args.paths, on_progress=_Bar("import") if not args.json else _quiet,
                           on_result=show)
    if not args.json:
        tally = {s: sum(r.status is s for r in results) for s in ImportStatus}
        print(", ".join(f"{n} {s.value}" for s, n in tally.items()) + f" ({len(results)} files)")
    return 0


def _quiet(done: int, total: int, message: str) -> None:
    pass


def _cmd_db(args: argparse.Namespace) -> int:
    from annotator.services import project

    if args.db_command == "upgrade":
        before, after, backup = project.upgrade_schema(args.db)
        print(f"schema {before or '(empty)'} -> {after}" if before != after else f"schema already at {after}")
        if backup is not None:
            print(f"backup of the database before the upgrade: {backup}")
    elif args.db_command == "copy":
        return _cmd_db_copy(args)
    elif args.db_command == "check":
        revision = project.check_schema(args.db)
        print(f"schema {revision}: the tables and the migrations agree")
    else:
        url, current, head = project.schema_status(args.db)
        state = "up to date" if current == head else ("empty" if current is None else f"behind head {head}")
        print(f"{url}\nrevision {current or '(none)'} ({state})")
    return 0


def _cmd_db_copy(args: argparse.Namespace) -> int:
    from annotator.services import transfer

    outcome = transfer.copy_project(args.src, args.dst, skip_missing_weights=args.skip_missing_weights,
                                    on_progress=_quiet if args.json else _Bar("copy"))
    r = outcome.report
    if args.json:
        print(json.dumps({"source": r.source, "destination": r.destination, "revision": r.revision,
                          "rows": r.rows, "weights_added": r.weights_added, "skipped_models": outcome.skipped_models,
                          "tables": [{"table": t.table, "rows": t.rows, "sha256": t.checksum,
                                      "copied_rows": t.copied_rows, "copied_sha256": t.copied_checksum}
                                     for t in r.tables]}, indent=2))
        return 0
    width = max(len(t.table) for t in r.tables)
    for t in r.tables:
        print(f"{t.table:<{width}}  {t.rows:>8} rows  sha256 {t.checksum[:16]}  verified")
    print(f"copied {r.rows} rows from {r.source} to {r.destination} (schema {r.revision}); every table's row "
          f"count and checksum match")
    if r.weights_added:
        print(f"stored the weights of {r.weights_added} model(s) in the destination database")
    for line in outcome.skipped_models:
        print(f"without weights: {line}")
    return 0


def _cmd_raters(args: argparse.Namespace) -> int:
    from annotator.services import project

    db = project.open_project(args.db)
    actor = project.acting(db, getattr(args, "as_rater", None))
    if args.raters_command == "add":
        r = project.add_rater(db, args.name, Role(args.role), simulated=args.simulated, actor=actor)
        print(f"added rater {r.name} ({r.role.value})")
    elif args.raters_command == "password":
        from annotator.services import auth

        rater = project.rater_by_name(db, args.name)
        if actor is not None:  # refused before a password is asked for
            project.policy(db, actor).require(Action.MANAGE_RATERS)
        r = auth.set_password(db, rater, None if args.clear else read_new_password(rater.name), actor=actor)
        print(f"rater {r.name}: " + ("password set" if r.protected else "no password (signs in by name)"))
    else:
        for r in project.list_raters(db):
            print(f"{r.id:4}  {r.name:24} {r.role.value:10}{'  simulated' if r.simulated else ''}"
                  f"{'  password' if r.protected else ''}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from annotator.services import project
    from annotator.services.levels import level_counts

    db = project.open_project(args.db)
    c = project.status(db)
    levels = level_counts(db)
    if args.json:
        print(json.dumps({"database": db.url, "patients": c.patients, "studies": c.studies, "series": c.series,
                          "images": c.images, "labels_per_rater": c.labels_per_rater, "images_per_level": levels}))
        return 0
    print(f"database  {db.url}")
    print(f"patients  {c.patients}\nstudies   {c.studies}\nseries    {c.series}\nimages    {c.images}")
    if levels:
        print("levels    " + ", ".join(f"{k} {v}" for k, v in levels.items()))
    print("labelled slices per rater:" if c.labels_per_rater else "no raters yet")
    for name, n in c.labels_per_rater.items():
        print(f"  {name:24} {n}")
    return 0


def _cmd_gui(args: argparse.Namespace) -> int:
    from annotator.gui.app import run_app

    return run_app(args.db)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="annotator", description=__doc__)
    p.add_argument("--version", action="version", version=f"annotator {__version__}")
    p.add_argument("--db", metavar="URL", default=None,
                   help="SQLite file path or database URL (postgresql://...); default: $ANNOTATOR_DB, "
                        "else annotator.db in the user data directory")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("import", help="import DICOM files and folders")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--json", action="store_true", help="print one JSON result per file")
    s.add_argument("-v", "--verbose", action="store_true", help="print every file, not only rejections and warnings")
    s.set_defaults(func=_cmd_import)

    s = sub.add_parser("db", help="schema: upgrade, check or show the revision; copy a project")
    dbsub = s.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("upgrade", help="upgrade the schema to this version of annotator")
    dbsub.add_parser("current", help="show the schema revision")
    dbsub.add_parser("check", help="upgrade, then fail if the tables and the migrations disagree (alembic check)")
    c = dbsub.add_parser("copy", help="copy a whole project into a new, empty database (SQLite <-> PostgreSQL), "
                                      "verified by row counts and a checksum per table")
    c.add_argument("src", metavar="SRC_URL", help="the project to copy (file path or URL)")
    c.add_argument("dst", metavar="DST_URL", help="an empty database: a new SQLite file or an empty PostgreSQL "
                                                 "database")
    c.add_argument("--skip-missing-weights", action="store_true",
                   help="copy a model whose weights file is gone without its weights (default: refuse)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=_cmd_db)

    s = sub.add_parser("raters", help="add or list raters")
    rsub = s.add_subparsers(dest="raters_command", required=True)
    a = rsub.add_parser("add", help="add a rater")
    a.add_argument("name")
    a.add_argument("--role", choices=[r.value for r in Role], default=Role.ANNOTATOR.value)
    a.add_argument("--simulated", action="store_true", help=argparse.SUPPRESS)
    rsub.add_parser("list", help="list raters")
    pw = rsub.add_parser("password", help="set a rater's sign-in password (asked for, or one line on stdin)")
    pw.add_argument("name")
    pw.add_argument("--clear", action="store_true", help="remove the password: the rater signs in by name")
    for p_ in (a, pw):
        p_.add_argument("--as", dest="as_rater", default=None, metavar="NAME",
                        help="the admin acting (checked and audited); default: the database's owner")
    s.set_defaults(func=_cmd_raters)

    s = sub.add_parser("status", help="counts of studies, series, images and labels per rater")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_status)

    s = sub.add_parser("gui", help="open the application window")
    s.set_defaults(func=_cmd_gui)

    for module in COMMAND_MODULES:
        importlib.import_module(f"annotator.commands.{module}").register(sub)
    _accept_db_after_command(sub)
    return p


def _accept_db_after_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``annotator demo --db X`` works like ``annotator --db X demo`` (SUPPRESS keeps the global value)."""
    seen: set[int] = set()
    stack = list(sub.choices.values())
    while stack:
        parser = stack.pop()
        if id(parser) in seen:
            continue
        seen.add(id(parser))
        if not any("--db" in a.option_strings for a in parser._actions):
            parser.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())


class _StderrLines(logging.Handler):
    """Messages of annotator's own loggers (such as where a pre-upgrade backup went), one line each on
    whatever ``sys.stderr`` is when they are written."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"annotator: {self.format(record)}\n")
        except Exception:
            self.handleError(record)


def _log_to_stderr() -> None:
    logger = logging.getLogger("annotator")
    if not any(isinstance(h, _StderrLines) for h in logger.handlers):
        logger.addHandler(_StderrLines())
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    _log_to_stderr()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except AnnotatorError as exc:
        print(f"annotator: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("annotator: interrupted", file=sys.stderr)
        return 130
