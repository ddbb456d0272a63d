"""Per-project secret salt for de-identified exports

Revision ID: 0006_deid
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006_deid'
down_revision: str | None = '0006_team'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'project_secrets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('deid_salt', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_project_secrets')),
    )


def downgrade() -> None:
    op.drop_table('project_secrets')
