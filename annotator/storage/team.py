"""Team databases on PostgreSQL: the server itself enforces the project's rule book.

Each rater connects as her own PostgreSQL login role, a member of one of three group roles named after
the database (``<db>_annotator``, ``<db>_reviewer``, ``<db>_admin``, so two projects share a server
without clashing). Grants say which tables a group may read and write; row-level security says which
rows. Neither is a second rule book: both are compiled here from :class:`annotator.domain.policy.Policy`.

- Acts (adjudicate, train, manage settings, raters and studies) become table grants: a group gets the
  writes an act needs when ``Policy.may(act)`` holds for its role (:data:`ACT_WRITES`).
- What a rater may see depends on her role and on the project's settings, which an admin changes at any
  time. :func:`rights_rows` asks the policy every question in :data:`RIGHTS` for every role and every
  combination of the settings the policy can branch on (each enum and on/off field of ProjectSettings),
  and the answers become the body of the SQL function ``annotator_right(name)``, which looks up the
  connecting rater's role and the stored settings. The row-level-security policies ask that function,
  so a change of settings takes effect on the server at once, exactly as in the app.
- Labels, reads, the audit log and adjudications are insert-only for every rater (no UPDATE or DELETE
  granted, on top of the triggers), and each insert must name the connecting rater.

The connecting rater is the row of ``raters`` whose ``login`` is the session's user. The tables' owner
(whoever ran ``team init``: a superuser or the database's owner) is not subject to any of this.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, event, literal_column, select
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session

from annotator.domain.entities import ProjectSettings, Rater, Role
from annotator.domain.errors import DatabaseError, InputError, NotFound, PermissionDenied
from annotator.domain.policy import Action, Policy
from annotator.storage import audit, convert, people, secrets
from annotator.storage.database import Database
from annotator.storage.tables import Base, RaterRow

# ----- what the server asks the policy --------------------------------------------------------------------
RIGHTS: dict[str, Callable[[Policy], bool]] = {
    "see_other_readers": lambda p: p.may_see_other_readers,
    "see_model_before_own_grade": lambda p: p.may_see_model(own_graded=False),
    "see_model_after_own_grade": lambda p: p.may_see_model(own_graded=True),
    "see_unassigned_studies": lambda p: p.may_see_study(assigned=False),
    "see_assigned_studies": lambda p: p.may_see_study(assigned=True),
    "see_study_progress": lambda p: p.may_see_study_progress,
    "see_calibration_reference_before_own_read": lambda p: p.may_see_calibration_reference(own_read_done=False),
    "see_calibration_reference_after_own_read": lambda p: p.may_see_calibration_reference(own_read_done=True),
}
"""Server-side name -> the policy's answer. Row-level security asks ``annotator_right(name)``."""

INSERT_ONLY_OWN = {"annotations": "rater_id", "reads": "rater_id", "audit_log": "rater_id",
                   "adjudications": "reviewer_id"}
"""Insert-only tables -> the column naming who wrote the row, which must be the connecting rater."""

EVERYONE_WRITES = (("annotations", "INSERT"), ("reads", "INSERT"), ("audit_log", "INSERT"))
"""Writes every rater's own work needs: labelling, reading in a study, and the audit entry of each."""

ACT_WRITES: dict[Action, tuple[tuple[str, str], ...]] = {
    Action.ADJUDICATE: (("adjudications", "INSERT"),),
    Action.TRAIN: (("model_versions", "INSERT"), ("model_versions", "UPDATE"), ("predictions", "INSERT"),
                   ("cv_folds", "INSERT"), ("model_weight_chunks", "INSERT")),
    Action.EXPORT: (),
    # Labels in other raters' names break "every insert names the connecting rater": on a team database
    # importing labels is the owner's job (README, Team set-up), so the act grants no writes.
    Action.IMPORT_LABELS: (),
    Action.MANAGE_SETTINGS: (("project_settings", "INSERT"), ("project_settings", "UPDATE")),
    # Never the login column (nor the role, which decides the group): which rater a connection is, and
    # with what rights, stays the owner's business (`team add-rater`); an insert must leave it empty.
    Action.MANAGE_RATERS: (("raters", "INSERT"), ("raters", "UPDATE (name, simulated, password_hash)")),
    # Reader studies and slice levels, and (the catalogue they are built from) importing DICOM files.
    Action.MANAGE_STUDIES: (("reader_studies", "INSERT"), ("reader_study_slices", "INSERT"),
                            ("reader_study_readers", "INSERT"), ("reader_plan_items", "INSERT"),
                            ("patients", "INSERT"), ("studies", "INSERT"), ("series", "INSERT"),
                            ("series", "UPDATE"), ("images", "INSERT"), ("images", "UPDATE")),
}
"""The table writes each act needs; a group gets them when the policy lets its role do the act."""

READ_FOR_ACT: dict[str, Action] = {"project_secrets": Action.EXPORT}
"""Tables only the roles that may do an act read at all: the de-identification salt is for exporters."""

_ME = "(SELECT annotator_me())"


def _right(name: str) -> str:
    assert name in RIGHTS, name
    return f"(SELECT annotator_right('{name}'))"  # a sub-select: evaluated once per query, not per row


_OWN_GRADED = (f"image_id IN (SELECT a.image_id FROM annotations a WHERE a.rater_id = {_ME} "
               "AND a.grade IS NOT NULL AND NOT EXISTS (SELECT 1 FROM annotations b WHERE b.image_id = a.image_id "
               "AND b.rater_id = a.rater_id AND b.version > a.version))")
_ASSIGNED = f"SELECT study_id FROM reader_study_readers WHERE rater_id = {_ME}"

SELECT_RULES: dict[str, str] = {
    "annotations": f"rater_id = {_ME} OR {_right('see_other_readers')}",
    "adjudications": _right("see_other_readers"),
    "predictions": (f"{_right('see_model_before_own_grade')} OR ({_right('see_model_after_own_grade')} "
                    f"AND {_OWN_GRADED})"),
    "reads": f"rater_id = {_ME} OR {_right('see_study_progress')}",
    "audit_log": f"rater_id = {_ME} OR ({_right('see_other_readers')} AND {_right('see_study_progress')})",
    "reader_studies": (f"{_right('see_unassigned_studies')} OR ({_right('see_assigned_studies')} "
                       f"AND id IN ({_ASSIGNED}))"),
    "reader_study_readers": f"rater_id = {_ME} OR {_right('see_study_progress')}",
    "reader_plan_items": f"rater_id = {_ME} OR {_right('see_study_progress')}",
    "reader_study_slices": (
        f"{_right('see_study_progress')} OR ("
        f"EXISTS (SELECT 1 FROM reader_plan_items p WHERE p.study_id = reader_study_slices.study_id "
        f"AND p.image_id = reader_study_slices.image_id AND p.rater_id = {_ME}) "
        f"AND (NOT calibration OR {_right('see_calibration_reference_before_own_read')} "
        f"OR ({_right('see_calibration_reference_after_own_read')} AND EXISTS (SELECT 1 FROM reads r "
        f"WHERE r.study_id = reader_study_slices.study_id AND r.image_id = reader_study_slices.image_id "
        f"AND r.rater_id = {_ME}))))"),
    "raters": "true",  # everybody sees who is in the project (the app shows aliases where names are hidden)
}
"""Row-level security: which rows of each table a rater reads (other tables are readable whole)."""

INSERT_RULES: dict[str, str] = {
    **{table: f"{column} = {_ME}" for table, column in INSERT_ONLY_OWN.items()},
    # a read answers one of her own plan items, for the slice and study of that item
    "reads": (f"rater_id = {_ME} AND EXISTS (SELECT 1 FROM reader_plan_items p WHERE p.id = plan_item_id "
              f"AND p.rater_id = {_ME} AND p.study_id = reads.study_id AND p.image_id = reads.image_id)"),
    "raters": "login IS NULL",
    "predictions": "true", "reader_studies": "true", "reader_study_slices": "true",
    "reader_study_readers": "true", "reader_plan_items": "true",
}
"""Row-level security on insert (who may insert at all is a grant)."""

UPDATE_RULES: dict[str, str] = {"raters": "true"}
"""Row-level security on update, where a table under it may be updated at all (which columns: a grant)."""


# ----- the truth table ------------------------------------------------------------------------------------
def policy_settings_fields() -> list[tuple[str, list[Any]]]:
    """The settings the policy can branch on: every enum and on/off field of ProjectSettings, with its values."""
    hints = typing.get_type_hints(ProjectSettings)
    out: list[tuple[str, list[Any]]] = []
    for f in dataclasses.fields(ProjectSettings):
        kind = hints[f.name]
        if kind is bool:
            out.append((f.name, [False, True]))
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            out.append((f.name, list(kind)))
    return out


def settings_grid() -> Iterator[ProjectSettings]:
    """ProjectSettings for every combination of the policy's settings (the rest at their defaults)."""
    fields = policy_settings_fields()
    for values in itertools.product(*(vals for _, vals in fields)):
        yield ProjectSettings(**{name: v for (name, _), v in zip(fields, values, strict=True)})


def rights_rows() -> list[tuple[Any, ...]]:
    """(role, *settings values, right) for every right the policy grants under those settings."""
    fields = policy_settings_fields()
    rows: list[tuple[Any, ...]] = []
    for role in Role:
        for s in settings_grid():
            p = Policy(role, s)
            key = tuple(getattr(s, name) for name, _ in fields)
            rows.extend((role.value, *key, right) for right, ask in RIGHTS.items() if ask(p))
    return rows


def act_groups() -> dict[Action, list[Role]]:
    """Which roles may do each act. Acts must not depend on settings (a grant cannot follow them)."""
    out: dict[Action, list[Role]] = {}
    for action in Action:
        roles = []
        for role in Role:
            answers = {Policy(role, s).may(action) for s in settings_grid()}
            if len(answers) != 1:
                raise AssertionError(f"{action.value} depends on the project's settings: a grant cannot follow it")
            if answers == {True}:
                roles.append(role)
        out[action] = roles
    return out


# ----- names ----------------------------------------------------------------------------------------------
def group_role(database: str, role: Role) -> str:
    name = f"{database}_{role.value}"
    if len(name.encode()) > 63:
        raise InputError(f"database name {database!r} is too long for its group roles (PostgreSQL allows 63 "
                         f"bytes: {name!r})")
    return name


def _require_postgres(db: Database) -> None:
    if db.dialect != "postgresql":
        raise InputError("teams need a PostgreSQL database (postgresql://USER@HOST/DB); SQLite is for one "
                         "workstation")


def _q(conn: Connection, sql: str, **params: Any) -> Any:
    return conn.exec_driver_sql(sql, params) if params else conn.exec_driver_sql(sql)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value.value if isinstance(value, enum.Enum) else str(value)
    return "'" + text.replace("'", "''") + "'"


# ----- team init ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TeamSetup:
    database: str
    groups: dict[Role, str]
    tables: int  # tables under row-level security
    rights: int  # (role, settings, right) rows compiled from the policy


def _function_sql(schema: str) -> list[str]:
    fields = [name for name, _ in policy_settings_fields()]
    rows = ", ".join("(" + ", ".join(_lit(v) for v in row) + ")" for row in rights_rows())
    cols = ", ".join(["role", *fields, "right_name"])
    joins = " AND ".join(f"t.{f} = s.{f}" for f in fields)
    path = f"SET search_path = {_ident(schema)}, pg_temp"
    return [
        f"CREATE OR REPLACE FUNCTION annotator_me() RETURNS integer LANGUAGE sql STABLE SECURITY DEFINER {path} "
        "AS $$ SELECT id FROM raters WHERE login = session_user $$",
        f"CREATE OR REPLACE FUNCTION annotator_right(wanted text) RETURNS boolean LANGUAGE sql STABLE "
        f"SECURITY DEFINER {path} AS $$ SELECT EXISTS (SELECT 1 FROM raters r "
        f"JOIN project_settings s ON s.id = 1 JOIN (VALUES {rows}) AS t({cols}) ON t.role = r.role AND {joins} "
        "WHERE r.login = session_user AND t.right_name = wanted) $$",
    ]


def init(db: Database) -> TeamSetup:
    """Create (or bring up to date) the group roles, grants, functions and row-level-security policies.
    Idempotent: run it again after a schema upgrade. Needs a superuser or a role with CREATEROLE that owns
    the tables (the migrations have run)."""
    _require_postgres(db)
    with db.engine.connect() as conn, conn.begin():
        database, schema = _q(conn, "SELECT current_database(), current_schema()").one()
        groups = {role: group_role(database, role) for role in Role}
        for name in groups.values():
            if not _q(conn, "SELECT 1 FROM pg_roles WHERE rolname = %(n)s", n=name).first():
                _q(conn, f"CREATE ROLE {_ident(name)} NOLOGIN")
        everyone = ", ".join(_ident(g) for g in groups.values())
        db_ident, schema_ident = _ident(database), _ident(schema)
        _q(conn, f"REVOKE ALL ON DATABASE {db_ident} FROM PUBLIC")
        if _q(conn, "SELECT pg_has_role(current_user, nspowner, 'USAGE') FROM pg_namespace WHERE nspname = %(s)s",
              s=schema).scalar():  # PostgreSQL < 15 gives everybody CREATE on public, owned by the superuser
            _q(conn, f"REVOKE CREATE ON SCHEMA {schema_ident} FROM PUBLIC")
        _q(conn, f"GRANT CONNECT, TEMPORARY ON DATABASE {db_ident} TO {everyone}")
        _q(conn, f"GRANT USAGE ON SCHEMA {schema_ident} TO {everyone}")
        tables = [*sorted(Base.metadata.tables), "alembic_version"]
        _q(conn, f"REVOKE ALL ON {', '.join(_ident(t) for t in tables)} FROM PUBLIC, {everyone}")
        _q(conn, f"GRANT SELECT ON {', '.join(_ident(t) for t in tables)} TO {everyone}")
        _q(conn, f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema_ident} TO {everyone}")
        for table, privilege in EVERYONE_WRITES:
            _q(conn, f"GRANT {privilege} ON {_ident(table)} TO {everyone}")
        for table, act in READ_FOR_ACT.items():
            _q(conn, f"REVOKE SELECT ON {_ident(table)} FROM {everyone}")
            for role in act_groups()[act]:
                _q(conn, f"GRANT SELECT ON {_ident(table)} TO {_ident(groups[role])}")
        for action, roles in act_groups().items():
            for role in roles:
                for table, privilege in ACT_WRITES[action]:
                    _q(conn, f"GRANT {privilege} ON {_ident(table)} TO {_ident(groups[role])}")
        for statement in _function_sql(schema):
            _q(conn, statement)
        _q(conn, "REVOKE ALL ON FUNCTION annotator_me(), annotator_right(text) FROM PUBLIC")
        _q(conn, f"GRANT EXECUTE ON FUNCTION annotator_me(), annotator_right(text) TO {everyone}")
        for table in sorted(set(SELECT_RULES) | set(INSERT_RULES)):
            t = _ident(table)
            _q(conn, f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY")
            for old in _q(conn, "SELECT policyname FROM pg_policies WHERE schemaname = %(s)s AND tablename = %(t)s",
                          s=schema, t=table).scalars().all():
                _q(conn, f"DROP POLICY {_ident(old)} ON {t}")
            if table in SELECT_RULES:
                _q(conn, f"CREATE POLICY annotator_read ON {t} FOR SELECT USING ({SELECT_RULES[table]})")
            if table in INSERT_RULES:
                _q(conn, f"CREATE POLICY annotator_insert ON {t} FOR INSERT WITH CHECK ({INSERT_RULES[table]})")
            if table in UPDATE_RULES:
                _q(conn, f"CREATE POLICY annotator_update ON {t} FOR UPDATE USING ({UPDATE_RULES[table]})")
        # raters whose login exists (a restored dump, a renamed database) belong to their role's group
        for login, role_name in _q(conn, "SELECT r.login, r.role FROM raters r JOIN pg_roles p "
                                         "ON p.rolname = r.login").all():
            _q(conn, f"GRANT {_ident(groups[Role(role_name)])} TO {_ident(login)}")
        if not _q(conn, "SELECT 1 FROM project_settings WHERE id = 1").first():
            with Session(bind=conn) as s:
                people.ensure_settings(s)
                s.flush()
    secrets.deid_salt(db)  # created by the owner: exporters only read it (READ_FOR_ACT)
    return TeamSetup(database, groups, len(set(SELECT_RULES) | set(INSERT_RULES)), len(rights_rows()))


def initialized(db: Database) -> bool:
    """Has ``team init`` set this database up (its group roles exist)?"""
    if db.dialect != "postgresql":
        return False
    with db.engine.connect() as conn:
        database = _q(conn, "SELECT current_database()").scalar_one()
        names = [group_role(database, role) for role in Role]
        return bool(_q(conn, "SELECT count(*) = %(n)s FROM pg_roles WHERE rolname = ANY(%(names)s)",
                       n=len(names), names=names).scalar())


# ----- raters -------------------------------------------------------------------------------------------
def _groups_or_refuse(conn: Connection) -> dict[Role, str]:
    database = _q(conn, "SELECT current_database()").scalar_one()
    groups = {role: group_role(database, role) for role in Role}
    missing = [g for g in groups.values() if not _q(conn, "SELECT 1 FROM pg_roles WHERE rolname = %(n)s", n=g).first()]
    if missing:
        raise DatabaseError(f"database {database!r} is not set up for a team ({', '.join(missing)} missing): "
                            "run `annotator team init postgresql://ADMIN@HOST/DB` first")
    return groups


def _scram(conn: Connection, login: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of ``password``, computed by libpq here: the password never reaches the
    server (or its log) in clear."""
    pgconn = conn.connection.dbapi_connection.pgconn  # type: ignore[union-attr]
    return bytes(pgconn.encrypt_password(password.encode(), login.encode(), b"scram-sha-256")).decode()


def add_rater(db: Database, name: str, role: Role, password: str | None, *, login: str | None = None) -> Rater:
    """Create (or re-enable) the login role ``login`` (default: the rater's name) with a SCRAM password,
    make it a member of the group of ``role``, and add the rater connected to it (or connect an existing
    rater of that name and role that has no login yet). Audited as the owner's act."""
    _require_postgres(db)
    login = login or name
    if not login or len(login.encode()) > 63:
        raise InputError(f"login {login!r} must be 1 to 63 bytes")
    with db.engine.connect() as conn, conn.begin():
        groups = _groups_or_refuse(conn)
        existing = _q(conn, "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = %(n)s",
                      n=login).first()
        if existing is not None and any(existing):
            raise InputError(f"login role {login!r} is a superuser or may create roles or databases: a rater "
                             "connects with a role of her own")
        if existing is not None and login in groups.values():
            raise InputError(f"{login!r} is one of the project's group roles")
        if existing is None and password is None:
            raise InputError(f"a new login role {login!r} needs a password")
        verb = "CREATE" if existing is None else "ALTER"
        secret = f" PASSWORD '{_scram(conn, login, password)}'" if password is not None else ""
        _q(conn, f"{verb} ROLE {_ident(login)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                 f"NOBYPASSRLS INHERIT{secret}")
        for other, group in groups.items():
            if other is not role:
                _q(conn, f"REVOKE {_ident(group)} FROM {_ident(login)}")
        _q(conn, f"GRANT {_ident(groups[role])} TO {_ident(login)}")
        with Session(bind=conn) as s:
            row = s.scalar(select(RaterRow).where(RaterRow.name == name.strip()))
            by_login = s.scalar(select(RaterRow).where(RaterRow.login == login))
            if by_login is not None and by_login is not row:
                raise InputError(f"login {login!r} already belongs to rater {by_login.name!r}")
            if row is None:
                people.check_name(name)
                row = RaterRow(name=name.strip(), role=role.value, simulated=False, login=login)
                s.add(row)
                s.flush()
                audit.record(s, rater_id=None, action="rater.add", entity="rater", entity_id=row.id,
                             after={"name": row.name, "role": role.value, "simulated": False, "login": login})
            else:
                if row.role != role.value or row.simulated:
                    raise InputError(f"rater {name!r} exists as a {'simulated ' if row.simulated else ''}"
                                     f"{row.role}, not a {role.value}")
                before = {"login": row.login}
                row.login = login
                audit.record(s, rater_id=None, action="rater.login", entity="rater", entity_id=row.id,
                             before=before, after={"login": login, "enabled": True})
            s.flush()
            return convert.rater(row)


def remove_rater(db: Database, name: str) -> Rater:
    """Disable the rater's login (NOLOGIN) and end her open sessions on this database. Her labels, reads,
    decisions and audit entries stay; ``add_rater`` with a new password enables her again."""
    _require_postgres(db)
    with db.engine.connect() as conn, conn.begin(), Session(bind=conn) as s:
        row = s.scalar(select(RaterRow).where(RaterRow.name == name))
        if row is None:
            raise NotFound(f"rater {name!r} does not exist (see `annotator raters list`)")
        if row.login is None:
            raise InputError(f"rater {name!r} has no login role on this server")
        _q(conn, f"ALTER ROLE {_ident(row.login)} NOLOGIN")
        _q(conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %(n)s "
                 "AND datname = current_database() AND pid <> pg_backend_pid() "
                 "AND pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')", n=row.login)
        audit.record(s, rater_id=None, action="rater.remove", entity="rater", entity_id=row.id,
                     before={"login": row.login, "enabled": True}, after={"login": row.login, "enabled": False})
        s.flush()
        return convert.rater(row)


def login_enabled(db: Database, rater: Rater) -> bool | None:
    """May the rater's login role connect (None: she has none)?"""
    with db.engine.connect() as conn:
        login = conn.execute(select(RaterRow.login).where(RaterRow.id == rater.id)).scalar()
        if login is None or db.dialect != "postgresql":
            return None
        return bool(_q(conn, "SELECT rolcanlogin FROM pg_roles WHERE rolname = %(n)s", n=login).scalar())


# ----- who is connected ---------------------------------------------------------------------------------
def connected_rater(db: Database) -> Rater | None:
    """The rater whose login role this connection is (a team database), else None (SQLite, the owner)."""
    if db.dialect != "postgresql":
        return None
    with db.read() as s:
        row = s.scalar(select(RaterRow).where(RaterRow.login == literal_column("session_user")))
        return None if row is None else convert.rater(row)


def install_refusals(engine: Engine) -> None:
    """Turn the server's refusals (SQLSTATE 42501: no privilege, or a row-level-security check) into
    PermissionDenied, naming what was refused."""

    @event.listens_for(engine, "handle_error", retval=True)
    def _refused(context: ExceptionContext) -> BaseException | None:
        orig = context.original_exception
        if getattr(orig, "sqlstate", None) == "42501":
            first = str(orig).splitlines()[0] if str(orig) else "refused"
            return PermissionDenied(f"the database server refused this for your login: {first}")
        return None


__all__ = ["RIGHTS", "ACT_WRITES", "SELECT_RULES", "INSERT_RULES", "TeamSetup", "init", "add_rater",
           "remove_rater", "connected_rater", "install_refusals", "rights_rows", "settings_grid",
           "policy_settings_fields", "act_groups", "group_role", "login_enabled", "initialized"]
