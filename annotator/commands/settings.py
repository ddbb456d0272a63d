"""``annotator settings``: show the project's rules, change one (admins)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from annotator.domain.entities import PROJECT_SWITCHES
from annotator.domain.errors import InputError


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise InputError(f"{text!r} must be true or false")
    return value == "true"


def _show(args: argparse.Namespace) -> int:
    from annotator.services import project

    settings = asdict(project.project_settings(project.open_project(args.db)))
    if args.json:
        print(json.dumps(settings, default=str))
        return 0
    for key, value in settings.items():
        print(f"{key:34} {value}")
    return 0


def _set(args: argparse.Namespace) -> int:
    from annotator.services import project

    value = _boolean(args.value)
    db = project.open_project(args.db)
    project.set_switch(db, project.acting_required(db, args.as_rater, "the admin acting"), args.key, value)
    print(f"{args.key}: {str(value).lower()}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("settings", help="show the project's rules or change one (admins)")
    ssub = s.add_subparsers(dest="settings_command", required=True)
    show = ssub.add_parser("show", help="the project's settings")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)
    st = ssub.add_parser("set", help="change a setting (checked and audited)")
    st.add_argument("key", choices=sorted(PROJECT_SWITCHES))
    st.add_argument("value", help="true or false")
    st.add_argument("--as", dest="as_rater", metavar="NAME",
                    help="the admin acting (a team database: the rater who connects)")
    st.set_defaults(func=_set)
