"""Vertebral level per slice; reader studies, their slices, readers, plans and insert-only reads

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
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
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('level', sa.String(length=10), nullable=True))
        batch_op.create_index(batch_op.f('ix_images_level'), ['level'], unique=False)
    op.create_table('reader_studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('scale_code', sa.String(length=40), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['raters.id'], name=op.f('fk_reader_studies_created_by_raters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reader_studies')),
    sa.UniqueConstraint('name', name=op.f('uq_reader_studies_name'))
    )
    op.create_table('reader_study_slices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('calibration', sa.Boolean(), nullable=False),
    sa.Column('ref_x_px', sa.Float(), nullable=True),
    sa.Column('ref_y_px', sa.Float(), nullable=True),
    sa.Column('ref_grade', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_reader_study_slices_image_id_images')),
    sa.ForeignKeyConstraint(['study_id'], ['reader_studies.id'],
                            name=op.f('fk_reader_study_slices_study_id_reader_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reader_study_slices')),
    sa.UniqueConstraint('study_id', 'image_id', name=op.f('uq_reader_study_slices_study_id_image_id'))
    )
    op.create_table('reader_study_readers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_reader_study_readers_rater_id_raters')),
    sa.ForeignKeyConstraint(['study_id'], ['reader_studies.id'],
                            name=op.f('fk_reader_study_readers_study_id_reader_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reader_study_readers')),
    sa.UniqueConstraint('study_id', 'rater_id', name=op.f('uq_reader_study_readers_study_id_rater_id'))
    )
    op.create_table('reader_plan_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_reader_plan_items_image_id_images')),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_reader_plan_items_rater_id_raters')),
    sa.ForeignKeyConstraint(['study_id'], ['reader_studies.id'],
                            name=op.f('fk_reader_plan_items_study_id_reader_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reader_plan_items')),
    sa.UniqueConstraint('study_id', 'rater_id', 'seq', name=op.f('uq_reader_plan_items_study_id_rater_id_seq'))
    )
    op.create_table('reads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_item_id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('x_px', sa.Float(), nullable=True),
    sa.Column('y_px', sa.Float(), nullable=True),
    sa.Column('grade', sa.Integer(), nullable=True),
    sa.Column('cannot_grade', sa.String(length=20), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('scale_code', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_reads_image_id_images')),
    sa.ForeignKeyConstraint(['plan_item_id'], ['reader_plan_items.id'],
                            name=op.f('fk_reads_plan_item_id_reader_plan_items')),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_reads_rater_id_raters')),
    sa.ForeignKeyConstraint(['study_id'], ['reader_studies.id'], name=op.f('fk_reads_study_id_reader_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reads')),
    sa.UniqueConstraint('plan_item_id', name=op.f('uq_reads_plan_item_id'))
    )
    with op.batch_alter_table('reads', schema=None) as batch_op:
        batch_op.create_index('ix_reads_study_rater', ['study_id', 'rater_id'], unique=False)
    _install_insert_only_guards(op.get_bind(), ('reads',))


def downgrade() -> None:
    _remove_insert_only_guards(op.get_bind(), ('reads',))
    op.drop_table('reads')
    op.drop_table('reader_plan_items')
    op.drop_table('reader_study_readers')
    op.drop_table('reader_study_slices')
    op.drop_table('reader_studies')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_level'))
        batch_op.drop_column('level')
