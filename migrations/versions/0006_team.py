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
    with op.batch_alter_table('raters') as batch:
        batch.add_column(sa.Column('login', sa.String(length=63), nullable=True))
        batch.create_unique_constraint('uq_raters_login', ['login'])


def downgrade() -> None:
    with op.batch_alter_table('raters') as batch:
        batch.drop_constraint('uq_raters_login', type_='unique')
        batch.drop_column('login')
