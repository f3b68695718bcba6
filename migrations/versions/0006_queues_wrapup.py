"""projects.queue and projects.wrapup_seconds; operator_status_changes.call_id

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 16:20:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('wrapup_seconds', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_projects_queue'), ['queue'])
    with op.batch_alter_table('operator_status_changes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('call_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_operator_status_changes_call_id_calls'), 'calls', ['call_id'],
                                    ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('operator_status_changes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_operator_status_changes_call_id_calls'), type_='foreignkey')
        batch_op.drop_column('call_id')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_projects_queue'), type_='unique')
        batch_op.drop_column('wrapup_seconds')
        batch_op.drop_column('queue')
