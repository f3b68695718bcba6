"""security events: spies and recordings ctl did not start (unauthorised_monitor)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 14:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('security_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('node', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('channel_id', sa.String(length=128), nullable=False),
    sa.Column('channel_name', sa.String(length=256), nullable=True),
    sa.Column('target_channel_id', sa.String(length=128), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=True),
    sa.CheckConstraint("kind IN ('unauthorised_monitor')", name=op.f('ck_security_events_kind')),
    sa.CheckConstraint("action IN ('hung_up', 'stopped', 'logged')", name=op.f('ck_security_events_action')),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_security_events_call_id_calls'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_events'))
    )
    with op.batch_alter_table('security_events', schema=None) as batch_op:
        batch_op.create_index('ix_security_events_at', ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('security_events', schema=None) as batch_op:
        batch_op.drop_index('ix_security_events_at')
    op.drop_table('security_events')
