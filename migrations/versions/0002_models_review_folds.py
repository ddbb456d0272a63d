"""Model versions, predictions, adjudications and cross-validation folds

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A frozen copy of the insert-only triggers as of this revision: a migration never imports application
# code, so a later change of the app cannot change what this old revision does.
def _install_insert_only_guards(conn: sa.Connection, tables: tuple[str, ...]) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(sa.text(
            "CREATE OR REPLACE FUNCTION annotator_refuse_change() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION '% is insert-only', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql"
        ))
    for table in tables:
        if dialect == "sqlite":
            for event in ("UPDATE", "DELETE"):
                conn.execute(sa.text(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is insert-only'); END"
                ))
        elif dialect == "postgresql":
            conn.execute(sa.text(
                f"CREATE TRIGGER {table}_insert_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION annotator_refuse_change()"
            ))


def _remove_insert_only_guards(conn: sa.Connection, tables: tuple[str, ...]) -> None:
    dialect = conn.dialect.name
    for table in tables:
        if dialect == "sqlite":
            for event in ("update", "delete"):
                conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_no_{event}"))
        elif dialect == "postgresql":
            conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_insert_only ON {table}"))


def upgrade() -> None:
    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('preset', sa.String(length=40), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('weights_path', sa.Text(), nullable=False),
    sa.Column('weights_sha256', sa.String(length=64), nullable=False),
    sa.Column('card', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('name', name=op.f('uq_model_versions_name'))
    )
    op.create_table('cv_folds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('n_folds', sa.Integer(), nullable=False),
    sa.Column('fold', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_cv_folds_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cv_folds')),
    sa.UniqueConstraint('patient_id', 'n_folds', name=op.f('uq_cv_folds_patient_id_n_folds'))
    )
    op.create_table('adjudications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('x_px', sa.Float(), nullable=True),
    sa.Column('y_px', sa.Float(), nullable=True),
    sa.Column('grade', sa.Integer(), nullable=True),
    sa.Column('scale_code', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_adjudications_image_id_images')),
    sa.ForeignKeyConstraint(['reviewer_id'], ['raters.id'], name=op.f('fk_adjudications_reviewer_id_raters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adjudications')),
    sa.UniqueConstraint('image_id', 'version', name=op.f('uq_adjudications_image_id_version'))
    )
    with op.batch_alter_table('adjudications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_adjudications_image_id'), ['image_id'], unique=False)
    op.create_table('predictions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('x_px', sa.Float(), nullable=True),
    sa.Column('y_px', sa.Float(), nullable=True),
    sa.Column('grade', sa.Integer(), nullable=True),
    sa.Column('probabilities', sa.JSON(), nullable=True),
    sa.Column('fold', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_predictions_image_id_images')),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'],
                            name=op.f('fk_predictions_model_version_id_model_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_predictions')),
    sa.UniqueConstraint('model_version_id', 'image_id', name=op.f('uq_predictions_model_version_id_image_id'))
    )
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_predictions_image_id'), ['image_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_predictions_model_version_id'), ['model_version_id'], unique=False)
    _install_insert_only_guards(op.get_bind(), ('adjudications',))


def downgrade() -> None:
    _remove_insert_only_guards(op.get_bind(), ('adjudications',))
    op.drop_table('predictions')
    op.drop_table('adjudications')
    op.drop_table('cv_folds')
    op.drop_table('model_versions')
