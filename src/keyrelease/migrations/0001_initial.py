from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from keyrelease.models import DeliveryStatus, EventType, KeyKind, LockReason, MessageKind
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Institution',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'institution', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Admin',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('institution', fields.ForeignKeyField('models.Institution', source_field='institution_id', db_constraint=True, to_field='id', related_name='admins', on_delete=OnDelete.RESTRICT)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('name', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'admin', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AdminToken',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('admin', fields.ForeignKeyField('models.Admin', source_field='admin_id', db_constraint=True, to_field='id', related_name='tokens', on_delete=OnDelete.CASCADE)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'admin_token', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('institution', fields.ForeignKeyField('models.Institution', source_field='institution_id', db_constraint=True, to_field='id', related_name='keys', on_delete=OnDelete.RESTRICT)),
                ('created_by', fields.ForeignKeyField('models.Admin', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='keys', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharEnumField(description='INSTITUTIONAL: INSTITUTIONAL\nPARTNER: PARTNER', enum_type=KeyKind, max_length=16)),
                ('name', fields.CharField(max_length=100)),
                ('client_id', fields.CharField(unique=True, max_length=80)),
                ('secret_hash', fields.CharField(null=True, max_length=64)),
                ('notify_email', fields.CharField(null=True, description="The creating admin's address when the key was made: later changes do not redirect codes.", max_length=254)),
                ('partner_name', fields.CharField(null=True, max_length=200)),
                ('partner_email', fields.CharField(null=True, max_length=254)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('verification_deadline', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('code_generation', fields.IntField(default=0)),
                ('code_issued_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('attempts_used', fields.IntField(default=0)),
                ('resends_used', fields.IntField(default=0)),
                ('verified_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('locked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('lock_reason', fields.CharEnumField(null=True, description='ATTEMPTS: ATTEMPTS\nWINDOW: WINDOW', enum_type=LockReason, max_length=16)),
                ('revealed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('partner_otp_issued_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('partner_attempts_used', fields.IntField(default=0)),
                ('legacy', fields.BooleanField(default=False)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'api_key', 'app': 'models', 'indexes': [Index(fields=['institution_id', 'created_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='KeyEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.ForeignKeyField('models.ApiKey', source_field='key_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('type', fields.CharEnumField(description='CREATED: CREATED\nCODE_SENT: CODE_SENT\nCODE_RESENT: CODE_RESENT\nVERIFICATION_FAILED: VERIFICATION_FAILED\nVERIFIED: VERIFIED\nLOCKED: LOCKED\nREVEALED: REVEALED\nPARTNER_OTP_SENT: PARTNER_OTP_SENT\nPARTNER_REVEAL_FAILED: PARTNER_REVEAL_FAILED\nPARTNER_REVEALED: PARTNER_REVEALED\nREVOKED: REVOKED', enum_type=EventType, max_length=32)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('detail', fields.CharField(null=True, max_length=200)),
            ],
            options={'table': 'key_event', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Append-only history of a key. ``detail`` never holds a code, OTP or secret.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboxMessage',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('key', fields.ForeignKeyField('models.ApiKey', source_field='key_id', null=True, db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='VERIFICATION_CODE: VERIFICATION_CODE\nPARTNER_OTP: PARTNER_OTP', enum_type=MessageKind, max_length=32)),
                ('recipient', fields.CharField(max_length=254)),
                ('payload', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharEnumField(default=DeliveryStatus.PENDING, description='PENDING: PENDING\nSENDING: SENDING\nSENT: SENT\nFAILED: FAILED\nEXPIRED: EXPIRED', enum_type=DeliveryStatus, max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('lease_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.CharField(null=True, max_length=500)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('provider_message_id', fields.CharField(null=True, max_length=200)),
            ],
            options={'table': 'outbox_message', 'app': 'models', 'indexes': [Index(fields=['status', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'A message waiting to be sent, written in the transaction that caused it.'},
            bases=['Model'],
        ),
    ]
