"""Live across workstations: change notifications (PostgreSQL) and model weights in the database

Revision ID: 0006_live
Revises: 0005
Create Date: 2026-11-30

On PostgreSQL, statement-level AFTER triggers call ``pg_notify('annotator_changes', <table>)`` so that
every workstation listening learns within a moment that labels, decisions, reads, predictions, models,
slices or the project's rules changed (a notification is delivered when the transaction commits, and
PostgreSQL folds repeats within one transaction). SQLite has no notifications: the app polls
``PRAGMA data_version`` instead, so nothing is installed there.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006_live'
down_revision: str | None = '0006_idempotency'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy as of this revision: a migration never imports application code.
CHANNEL = "annotator_changes"
NOTIFY_ON = {
    "annotations": "INSERT",
    "adjudications": "INSERT",
    "reads": "INSERT",
    "predictions": "INSERT",
    "model_versions": "INSERT OR UPDATE",
    "images": "INSERT OR UPDATE",
    "project_settings": "INSERT OR UPDATE",
}


def upgrade() -> None:
    op.create_table('model_weight_chunks',
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('chunk', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'],
                            name=op.f('fk_model_weight_chunks_model_version_id_model_versions')),
    sa.PrimaryKeyConstraint('model_version_id', 'chunk', name=op.f('pk_model_weight_chunks'))
    )
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    conn.execute(sa.text(
        "CREATE OR REPLACE FUNCTION annotator_notify_change() RETURNS trigger AS $$ "
        f"BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END; $$ LANGUAGE plpgsql"
    ))
    for table, events in NOTIFY_ON.items():
        conn.execute(sa.text(
            f"CREATE TRIGGER {table}_notify_change AFTER {events} ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION annotator_notify_change()"
        ))


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        for table in NOTIFY_ON:
            conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_notify_change ON {table}"))
        conn.execute(sa.text("DROP FUNCTION IF EXISTS annotator_notify_change()"))
    op.drop_table('model_weight_chunks')
