"""``annotator team``: a project shared on a PostgreSQL server, each rater connecting as herself."""

from __future__ import annotations

import argparse

from annotator.commands.prompts import read_new_password
from annotator.domain.entities import Role
from annotator.domain.errors import InputError


def _init(args: argparse.Namespace) -> int:
    from annotator.services import team

    url = args.url or args.db
    if not url:
        raise InputError("name the database: annotator team init postgresql://ADMIN@HOST/DB")
    done = team.init(url)
    print(f"team database {done.database}: schema up to date, row-level security on {done.tables} tables "
          f"({done.rights} rights compiled from the policy)")
    for role, group in done.groups.items():
        print(f"  {role.value:10} group role {group}")
    print("add raters with: annotator --db URL team add-rater NAME --role annotator|reviewer|admin")
    return 0


def _add(args: argparse.Namespace) -> int:
    from annotator.services import project, team

    db = project.open_project(args.db)
    try:
        password = None if args.keep_password else read_new_password(args.login or args.name)
        r = team.add_rater(db, args.name, Role(args.role), password, login=args.login)
    finally:
        db.close()
    print(f"rater {r.name} ({r.role.value}) connects as login role {args.login or r.name}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from annotator.services import project, team

    db = project.open_project(args.db)
    try:
        r = team.remove_rater(db, args.name)
    finally:
        db.close()
    print(f"rater {r.name}: login disabled; her labels, reads and audit entries stay")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("team", help="a project on a shared PostgreSQL server (run as its owner)")
    tsub = s.add_subparsers(dest="team_command", required=True)
    i = tsub.add_parser("init", help="create the schema, the group roles and the server-side rules")
    i.add_argument("url", nargs="?", default=None, metavar="URL",
                   help="postgresql://ADMIN@HOST/DB (default: --db); a superuser or the database's owner")
    i.set_defaults(func=_init)
    a = tsub.add_parser("add-rater", help="a login role with a password (asked twice, or one line on stdin) "
                                          "and its rater")
    a.add_argument("name")
    a.add_argument("--role", choices=[r.value for r in Role], default=Role.ANNOTATOR.value)
    a.add_argument("--login", default=None, help="the login role's name (default: NAME)")
    a.add_argument("--keep-password", action="store_true",
                   help="the login role exists (the same person in another project): keep its password")
    a.set_defaults(func=_add)
    r = tsub.add_parser("remove-rater", help="disable the rater's login; her work stays")
    r.add_argument("name")
    r.set_defaults(func=_remove)
