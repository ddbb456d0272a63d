"""Idempotency keys on label versions, adjudications and reads

An action repeated after a dropped connection (its outcome unknown) carries the same key, and the
unique index makes the repeat find the first commit instead of storing a second row. Existing rows
have no key (NULL; a unique index allows many).

Revision ID: 0006_idempotency
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006_idempotency'
down_revision: str | None = '0006_deid'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('annotations', 'adjudications', 'reads')


def upgrade() -> None:
    # ADD COLUMN and CREATE UNIQUE INDEX need no table copy on SQLite, so the insert-only triggers stay
    for table in TABLES:
        op.add_column(table, sa.Column('action_key', sa.String(length=36), nullable=True))
        op.create_index(op.f(f'ix_{table}_action_key'), table, ['action_key'], unique=True)


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(op.f(f'ix_{table}_action_key'), table_name=table)
        op.drop_column(table, 'action_key')  # SQLite >= 3.35 drops it in place, keeping the triggers
