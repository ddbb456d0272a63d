"""Project option: hide reader names from reviewers (blind adjudication)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('project_settings') as batch:
        batch.add_column(sa.Column('hide_reader_names_from_reviewers', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('project_settings') as batch:
        batch.drop_column('hide_reader_names_from_reviewers')
