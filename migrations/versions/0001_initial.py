"""initial schema: operators, projects, calls, monitor sessions

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 11:14:55.464008
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('operators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('extension', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('dial_string', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='offline', nullable=False),
    sa.Column('status_reason', sa.String(length=200), nullable=True),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('owner', 'admin', 'supervisor', 'operator')", name=op.f('ck_operators_role')),
    sa.CheckConstraint("status IN ('offline', 'available', 'break', 'dnd', 'talking', 'wrap_up', 'suspended')", name=op.f('ck_operators_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operators')),
    sa.UniqueConstraint('extension', name=op.f('uq_operators_extension'))
    )
    op.create_table('projects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('script', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
    sa.UniqueConstraint('name', name=op.f('uq_projects_name'))
    )
    op.create_table('calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('node', sa.String(length=64), nullable=False),
    sa.Column('pbx_call_id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('client_number', sa.String(length=32), nullable=True),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('bridged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('hangup_cause', sa.String(length=32), nullable=True),
    sa.Column('hangup_cause_code', sa.Integer(), nullable=True),
    sa.Column('result', sa.String(length=64), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('review', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('recording_path', sa.String(length=500), nullable=True),
    sa.CheckConstraint("direction IN ('outbound', 'inbound', 'internal')", name=op.f('ck_calls_direction')),
    sa.CheckConstraint("state IN ('created', 'ringing', 'answered', 'bridged', 'ended')", name=op.f('ck_calls_state')),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_calls_operator_id_operators'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_calls_project_id_projects'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calls')),
    sa.UniqueConstraint('node', 'pbx_call_id', name=op.f('uq_calls_node_pbx_call_id'))
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_calls_operator_created', ['operator_id', 'created_at'], unique=False)
        batch_op.create_index('ix_calls_state', ['state'], unique=False)

    op.create_table('project_members',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_project_members_operator_id_operators'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_members_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'operator_id', name=op.f('pk_project_members'))
    )
    op.create_table('project_result_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('successful', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_result_codes_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_project_result_codes')),
    sa.UniqueConstraint('project_id', 'code', name=op.f('uq_project_result_codes_project_id_code'))
    )
    op.create_table('monitor_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('node', sa.String(length=64), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('supervisor_id', sa.Integer(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('follow', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('spy_channel_id', sa.String(length=128), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attached_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=64), nullable=True),
    sa.CheckConstraint("mode IN ('listen', 'whisper', 'barge')", name=op.f('ck_monitor_sessions_mode')),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_monitor_sessions_call_id_calls'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_monitor_sessions_operator_id_operators'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['supervisor_id'], ['operators.id'], name=op.f('fk_monitor_sessions_supervisor_id_operators'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitor_sessions'))
    )
    with op.batch_alter_table('monitor_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_monitor_sessions_started_at', ['started_at'], unique=False)
        batch_op.create_index('uq_monitor_sessions_active_call', ['call_id'], unique=True, sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))

    op.create_table('monitor_mode_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.CheckConstraint("mode IN ('listen', 'whisper', 'barge')", name=op.f('ck_monitor_mode_changes_mode')),
    sa.ForeignKeyConstraint(['session_id'], ['monitor_sessions.id'], name=op.f('fk_monitor_mode_changes_session_id_monitor_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitor_mode_changes'))
    )


def downgrade() -> None:
    op.drop_table('monitor_mode_changes')
    with op.batch_alter_table('monitor_sessions', schema=None) as batch_op:
        batch_op.drop_index('uq_monitor_sessions_active_call', sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))
        batch_op.drop_index('ix_monitor_sessions_started_at')

    op.drop_table('monitor_sessions')
    op.drop_table('project_result_codes')
    op.drop_table('project_members')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_state')
        batch_op.drop_index('ix_calls_operator_created')
        batch_op.drop_index('ix_calls_created_at')

    op.drop_table('calls')
    op.drop_table('projects')
    op.drop_table('operators')
