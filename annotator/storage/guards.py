"""Database triggers that make the label, adjudication and audit tables insert-only.

They back up the ORM guards in ``tables.py`` for anyone writing SQL by hand.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text


def install_insert_only_guards(conn: Connection, tables: Iterable[str]) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text(
            "CREATE OR REPLACE FUNCTION annotator_refuse_change() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION '% is insert-only', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql"
        ))
    for table in tables:
        if dialect == "sqlite":
            for op in ("UPDATE", "DELETE"):
                conn.execute(text(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is insert-only'); END"
                ))
        elif dialect == "postgresql":
            conn.execute(text(
                f"CREATE TRIGGER {table}_insert_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION annotator_refuse_change()"
            ))


def remove_insert_only_guards(conn: Connection, tables: Iterable[str]) -> None:
    dialect = conn.dialect.name
    for table in tables:
        if dialect == "sqlite":
            for op in ("update", "delete"):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{op}"))
        elif dialect == "postgresql":
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_insert_only ON {table}"))
