"""Initial schema: project, raters, DICOM catalogue, labels, audit log

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
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
    op.create_table('patients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_key', sa.String(length=200), nullable=False),
    sa.Column('patient_name', sa.String(length=400), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('patient_key', name=op.f('uq_patients_patient_key'))
    )
    op.create_table('project_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('scale_code', sa.String(length=40), nullable=False),
    sa.Column('model_suggestion', sa.String(length=40), nullable=False),
    sa.Column('show_other_raters_to_annotators', sa.Boolean(), nullable=False),
    sa.Column('disagreement_threshold_mm', sa.Float(), nullable=False),
    sa.Column('required_raters', sa.JSON(), nullable=False),
    sa.Column('cv_folds', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_project_settings'))
    )
    op.create_table('raters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('simulated', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raters')),
    sa.UniqueConstraint('name', name=op.f('uq_raters_name'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('entity', sa.String(length=60), nullable=False),
    sa.Column('entity_id', sa.String(length=120), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_audit_log_rater_id_raters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
    op.create_table('studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('study_date', sa.String(length=16), nullable=False),
    sa.Column('description', sa.String(length=400), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_studies_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_studies')),
    sa.UniqueConstraint('study_instance_uid', name=op.f('uq_studies_study_instance_uid'))
    )
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_studies_patient_id'), ['patient_id'], unique=False)
    op.create_table('series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('series_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=400), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=False),
    sa.Column('series_number', sa.Integer(), nullable=True),
    sa.Column('frame_of_reference_uid', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_series_study_id_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_series')),
    sa.UniqueConstraint('series_instance_uid', name=op.f('uq_series_series_instance_uid'))
    )
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_series_study_id'), ['study_id'], unique=False)
    op.create_table('images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('sop_class_uid', sa.String(length=64), nullable=False),
    sa.Column('instance_number', sa.Integer(), nullable=True),
    sa.Column('slice_index', sa.Integer(), nullable=False),
    sa.Column('position_along_normal', sa.Float(), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('columns', sa.Integer(), nullable=False),
    sa.Column('pixel_spacing_row', sa.Float(), nullable=True),
    sa.Column('pixel_spacing_col', sa.Float(), nullable=True),
    sa.Column('image_position', sa.JSON(), nullable=True),
    sa.Column('image_orientation', sa.JSON(), nullable=True),
    sa.Column('slice_thickness', sa.Float(), nullable=True),
    sa.Column('window_center', sa.Float(), nullable=True),
    sa.Column('window_width', sa.Float(), nullable=True),
    sa.Column('transfer_syntax_uid', sa.String(length=64), nullable=False),
    sa.Column('bits_stored', sa.Integer(), nullable=True),
    sa.Column('file_path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], name=op.f('fk_images_series_id_series')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_images')),
    sa.UniqueConstraint('sop_instance_uid', name=op.f('uq_images_sop_instance_uid'))
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_images_series_id'), ['series_id'], unique=False)
    op.create_table('annotations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('x_px', sa.Float(), nullable=True),
    sa.Column('y_px', sa.Float(), nullable=True),
    sa.Column('grade', sa.Integer(), nullable=True),
    sa.Column('scale_code', sa.String(length=40), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_annotations_image_id_images')),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_annotations_rater_id_raters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotations')),
    sa.UniqueConstraint('image_id', 'rater_id', 'version', name=op.f('uq_annotations_image_id_rater_id_version'))
    )
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotations_image_id'), ['image_id'], unique=False)
        batch_op.create_index('ix_annotations_rater_image', ['rater_id', 'image_id'], unique=False)
    _install_insert_only_guards(op.get_bind(), ('annotations', 'audit_log'))


def downgrade() -> None:
    _remove_insert_only_guards(op.get_bind(), ('annotations', 'audit_log'))
    op.drop_table('annotations')
    op.drop_table('images')
    op.drop_table('series')
    op.drop_table('studies')
    op.drop_table('audit_log')
    op.drop_table('raters')
    op.drop_table('project_settings')
    op.drop_table('patients')
