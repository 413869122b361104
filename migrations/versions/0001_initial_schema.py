"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 05:04:58.577474
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENUM_NAMES = ('member_state', 'member_operation', 'transition_source', 'dead_letter_status',
              'dead_letter_reason', 'mirror_level', 'delivery_status', 'outbox_kind')


def upgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('operation', sa.Enum('join', 'start_onboarding', 'complete_onboarding', 'mark_role_eligible', 'accept_rules', 'request_verification', 'verify', 'reject', 'reopen', 'reverify', 'kick', 'leave', 'ban', 'unban', name='member_operation'), nullable=False),
    sa.Column('from_state', sa.Enum('joined', 'onboarding_in_progress', 'onboarding_completed', 'role_eligible', 'rules_accepted', 'verification_pending', 'verified', 'rejected_not_eligible', 'kicked', 'left_guild', 'banned', name='member_state'), nullable=True),
    sa.Column('to_state', sa.Enum('joined', 'onboarding_in_progress', 'onboarding_completed', 'role_eligible', 'rules_accepted', 'verification_pending', 'verified', 'rejected_not_eligible', 'kicked', 'left_guild', 'banned', name='member_state'), nullable=True),
    sa.Column('observed_state', sa.Enum('joined', 'onboarding_in_progress', 'onboarding_completed', 'role_eligible', 'rules_accepted', 'verification_pending', 'verified', 'rejected_not_eligible', 'kicked', 'left_guild', 'banned', name='member_state'), nullable=True),
    sa.Column('observed_version', sa.Integer(), nullable=True),
    sa.Column('reason_code', sa.Enum('retries_exhausted', 'not_applicable_after_conflict', 'not_applicable', 'unexpected_error', name='dead_letter_reason'), nullable=False),
    sa.Column('error_type', sa.Text(), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('source', sa.Enum('bot', 'api', 'staff', 'cli', 'replay', name='transition_source'), nullable=False),
    sa.Column('actor_id', sa.BigInteger(), nullable=True),
    sa.Column('idempotency_key', sa.Text(), nullable=False),
    sa.Column('correlation_id', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('open', 'retrying', 'resolved', 'dismissed', name='dead_letter_status'), nullable=False),
    sa.Column('remediation_count', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('last_remediated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.BigInteger(), nullable=True),
    sa.Column('resolution_note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.CheckConstraint('char_length(error_message) <= 2000', name=op.f('ck_dead_letters_error_message_length')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters'))
    )
    op.create_index('ix_dead_letters_guild_id', 'dead_letters', ['guild_id', sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_dead_letters_guild_signature', 'dead_letters', ['guild_id', 'signature', 'status', sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_dead_letters_guild_status_id', 'dead_letters', ['guild_id', 'status', sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_dead_letters_guild_user', 'dead_letters', ['guild_id', 'user_id', sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_dead_letters_retention', 'dead_letters', ['updated_at'], unique=False, postgresql_where=sa.text("status IN ('resolved', 'dismissed')"))
    op.create_table('guild_settings',
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('log_channel_id', sa.BigInteger(), nullable=True),
    sa.Column('staff_role_ids', postgresql.ARRAY(sa.BigInteger()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('verified_role_id', sa.BigInteger(), nullable=True),
    sa.Column('eligibility_role_id', sa.BigInteger(), nullable=True),
    sa.Column('mirror_level', sa.Enum('remediation', 'dead_letters', 'all', name='mirror_level'), server_default='dead_letters', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('guild_id', name=op.f('pk_guild_settings'))
    )
    op.create_table('member_transitions',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('operation', sa.Enum('join', 'start_onboarding', 'complete_onboarding', 'mark_role_eligible', 'accept_rules', 'request_verification', 'verify', 'reject', 'reopen', 'reverify', 'kick', 'leave', 'ban', 'unban', name='member_operation'), nullable=False),
    sa.Column('from_state', sa.Enum('joined', 'onboarding_in_progress', 'onboarding_completed', 'role_eligible', 'rules_accepted', 'verification_pending', 'verified', 'rejected_not_eligible', 'kicked', 'left_guild', 'banned', name='member_state'), nullable=True),
    sa.Column('to_state', sa.Enum('joined', 'onboarding_in_progress', 'onboarding_completed', 'role_eligible', 'rules_accepted', 'verification_pending', 'verified', 'rejected_not_eligible', 'kicked', 'left_guild', 'banned', name='member_state'), nullable=False),
    sa.Column('source', sa.Enum('bot', 'api', 'staff', 'cli', 'replay', name='transition_source'), nullable=False),
    sa.Column('actor_id', sa.BigInteger(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('idempotency_key', sa.Text(), nullable=False),
    sa.Column('correlation_id', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_transitions')),
    sa.UniqueConstraint('guild_id', 'user_id', 'idempotency_key', name=op.f('uq_member_transitions_guild_id_user_id_idempotency_key')),
    sa.UniqueConstraint('guild_id', 'user_id', 'version', name=op.f('uq_member_transitions_guild_id_user_id_version'))
    )
    op.create_table('members',
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.Enum('joined', 'onboarding_in_progress', 'onboarding_completed', 'role_eligible', 'rules_accepted', 'verification_pending', 'verified', 'rejected_not_eligible', 'kicked', 'left_guild', 'banned', name='member_state'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('version >= 1', name=op.f('ck_members_version_positive')),
    sa.PrimaryKeyConstraint('guild_id', 'user_id', name=op.f('pk_members'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.Enum('mirror', 'role_sync', name='outbox_kind'), nullable=False),
    sa.Column('channel_id', sa.BigInteger(), nullable=True),
    sa.Column('lane', sa.Text(), nullable=False),
    sa.Column('batch_id', sa.BigInteger(), nullable=True),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.Enum('pending', 'delivering', 'delivered', 'retry_scheduled', 'failed', 'dead_lettered', name='delivery_status'), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('locked_by', sa.Text(), nullable=True),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('discord_message_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    op.create_index('ix_outbox_lane_open', 'outbox', ['lane', 'id'], unique=False, postgresql_where=sa.text("status IN ('pending', 'retry_scheduled', 'delivering')"))
    op.create_index('ix_outbox_batch', 'outbox', ['batch_id'], unique=False, postgresql_where=sa.text("status = 'delivering'"))
    op.create_index('ix_outbox_delivered', 'outbox', ['delivered_at'], unique=False, postgresql_where=sa.text("status = 'delivered'"))
    op.create_index('ix_outbox_due', 'outbox', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status IN ('pending', 'retry_scheduled', 'delivering')"))
    op.create_index('ix_outbox_guild_status', 'outbox', ['guild_id', 'status'], unique=False)
    op.create_table('remediation_actions',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('dead_letter_id', sa.BigInteger(), nullable=False),
    sa.Column('actor_id', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.Enum('bot', 'api', 'staff', 'cli', 'replay', name='transition_source'), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('status_before', sa.Enum('open', 'retrying', 'resolved', 'dismissed', name='dead_letter_status'), nullable=False),
    sa.Column('status_after', sa.Enum('open', 'retrying', 'resolved', 'dismissed', name='dead_letter_status'), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('correlation_id', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_remediation_actions'))
    )
    op.create_index('ix_remediation_actions_entry', 'remediation_actions', ['guild_id', 'dead_letter_id', 'id'], unique=False)
    op.create_table('outbox_attempts',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('outbox_id', sa.BigInteger(), nullable=False),
    sa.Column('attempt', sa.SmallInteger(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('http_status', sa.SmallInteger(), nullable=True),
    sa.Column('retryable', sa.Boolean(), nullable=False),
    sa.Column('error_summary', sa.Text(), nullable=True),
    sa.Column('worker', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_outbox_attempts_outbox_id_outbox'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_attempts'))
    )
    op.create_index('ix_outbox_attempts_outbox', 'outbox_attempts', ['outbox_id', 'attempt'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_attempts_outbox', table_name='outbox_attempts')
    op.drop_table('outbox_attempts')
    op.drop_index('ix_remediation_actions_entry', table_name='remediation_actions')
    op.drop_table('remediation_actions')
    op.drop_index('ix_outbox_guild_status', table_name='outbox')
    op.drop_index('ix_outbox_due', table_name='outbox', postgresql_where=sa.text("status IN ('pending', 'retry_scheduled', 'delivering')"))
    op.drop_index('ix_outbox_delivered', table_name='outbox')
    op.drop_index('ix_outbox_batch', table_name='outbox')
    op.drop_index('ix_outbox_lane_open', table_name='outbox')
    op.drop_table('outbox')
    op.drop_table('members')
    op.drop_table('member_transitions')
    op.drop_table('guild_settings')
    op.drop_index('ix_dead_letters_retention', table_name='dead_letters', postgresql_where=sa.text("status IN ('resolved', 'dismissed')"))
    op.drop_index('ix_dead_letters_guild_user', table_name='dead_letters')
    op.drop_index('ix_dead_letters_guild_status_id', table_name='dead_letters')
    op.drop_index('ix_dead_letters_guild_signature', table_name='dead_letters')
    op.drop_index('ix_dead_letters_guild_id', table_name='dead_letters')
    op.drop_table('dead_letters')
    for enum_name in ENUM_NAMES:
        sa.Enum(name=enum_name).drop(op.get_bind(), checkfirst=True)
