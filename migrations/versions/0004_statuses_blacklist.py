"""operator status changes, blacklisted numbers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 15:24:03.110473
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('blacklisted_numbers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_blacklisted_numbers')),
    sa.UniqueConstraint('number', name=op.f('uq_blacklisted_numbers_number'))
    )
    op.create_table('operator_status_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=False),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('set_by', sa.String(length=16), nullable=True),
    sa.CheckConstraint("to_status IN ('offline', 'available', 'break', 'dnd', 'talking', 'wrap_up', 'suspended')", name=op.f('ck_operator_status_changes_to_status')),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_operator_status_changes_operator_id_operators'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operator_status_changes'))
    )
    with op.batch_alter_table('operator_status_changes', schema=None) as batch_op:
        batch_op.create_index('ix_operator_status_changes_changed_at', ['changed_at'], unique=False)
        batch_op.create_index('ix_operator_status_changes_operator_changed', ['operator_id', 'changed_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('operator_status_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_operator_status_changes_operator_changed')
        batch_op.drop_index('ix_operator_status_changes_changed_at')

    op.drop_table('operator_status_changes')
    op.drop_table('blacklisted_numbers')
