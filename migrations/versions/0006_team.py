"""Team databases: the PostgreSQL login role a rater connects as

Revision ID: 0006_team
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006_team'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a unique index, not a constraint: SQLite adds both without rebuilding the table (which its foreign
    # keys would refuse)
    with op.batch_alter_table('raters') as batch:
        batch.add_column(sa.Column('login', sa.String(length=63), nullable=True))
    op.create_index('ix_raters_login', 'raters', ['login'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_raters_login', table_name='raters')
    with op.batch_alter_table('raters') as batch:
        batch.drop_column('login')
