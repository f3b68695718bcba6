"""recordings: per-project policy, one recording per call, pauses

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 13:48:47.219112
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('recordings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=False),
    sa.Column('node', sa.String(length=64), nullable=False),
    sa.Column('channel_id', sa.String(length=128), nullable=False),
    sa.Column('channel_name', sa.String(length=200), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('pbx_path', sa.String(length=500), nullable=False),
    sa.Column('stereo', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stop_reason', sa.String(length=32), nullable=True),
    sa.Column('size_bytes', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('complete', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('problem', sa.String(length=300), nullable=True),
    sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('starting', 'recording', 'paused', 'stopped', 'failed')", name=op.f('ck_recordings_state')),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_recordings_call_id_calls'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recordings')),
    sa.UniqueConstraint('call_id', name=op.f('uq_recordings_call_id')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.create_index('ix_recordings_state', ['state'], unique=False)
        batch_op.create_index('ix_recordings_stopped_at', ['stopped_at'], unique=False)

    op.create_table('recording_pauses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.Integer(), nullable=False),
    sa.Column('paused_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resumed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], name=op.f('fk_recording_pauses_recording_id_recordings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recording_pauses'))
    )
    with op.batch_alter_table('recording_pauses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recording_pauses_recording_id'), ['recording_id'], unique=False)

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recording_policy', sa.String(length=16), server_default='always', nullable=False))
        batch_op.add_column(sa.Column('recording_stereo', sa.Boolean(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_projects_recording_policy'),
                                         "recording_policy IN ('always', 'on-demand', 'never')")



def downgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_projects_recording_policy'), type_='check')
        batch_op.drop_column('recording_stereo')
        batch_op.drop_column('recording_policy')

    with op.batch_alter_table('recording_pauses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recording_pauses_recording_id'))

    op.drop_table('recording_pauses')
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_index('ix_recordings_stopped_at')
        batch_op.drop_index('ix_recordings_state')

    op.drop_table('recordings')
