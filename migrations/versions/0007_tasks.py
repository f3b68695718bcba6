"""tasks: callbacks, manual (a reminder) or automatic (ctl serve dials)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 16:50:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('source_call_id', sa.Integer(), nullable=True),
    sa.Column('auto', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('state', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=16), nullable=True),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('placed_to_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=300), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'placing', 'done', 'overdue', 'cancelled')", name=op.f('ck_tasks_state')),
    sa.ForeignKeyConstraint(['assignee_id'], ['operators.id'], name=op.f('fk_tasks_assignee_id_operators'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_tasks_call_id_calls'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['placed_to_id'], ['operators.id'], name=op.f('fk_tasks_placed_to_id_operators'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_tasks_project_id_projects'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_call_id'], ['calls.id'], name=op.f('fk_tasks_source_call_id_calls'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_state_due', ['state', 'due_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_state_due')
    op.drop_table('tasks')
