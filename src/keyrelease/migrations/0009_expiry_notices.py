"""Expiry notices (keyrelease.service.notices): one row per key, expiry and threshold, the
index on a key's expiry the notice pass and ``keys(expiringWithin:)`` read, the EXPIRY_NOTICE
event and message. Altering the two enum columns rebuilds their tables on SQLite, which drops
their indexes (see 0007): the last operation puts them back (a no-op on PostgreSQL)."""

import importlib

from tortoise import migrations
from tortoise.migrations import operations as ops
from keyrelease.models import EventType, MessageKind, NoticeOutcome
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0008_admin_disabled')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ExpiryNotice',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.ForeignKeyField('models.ApiKey', source_field='key_id', db_constraint=True, to_field='id', related_name='expiry_notices', on_delete=OnDelete.CASCADE)),
                ('expires_at', fields.DatetimeField(description="The key's expiry this notice is about.", auto_now=False, auto_now_add=False)),
                ('threshold_seconds', fields.IntField()),
                ('outcome', fields.CharEnumField(null=True, description='SENT: SENT\nSKIPPED: SKIPPED\nNOT_AHEAD: NOT_AHEAD', enum_type=NoticeOutcome, max_length=16)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'expiry_notice', 'app': 'models', 'unique_together': (('key_id', 'expires_at', 'threshold_seconds'),), 'indexes': [Index(fields=['expires_at', 'threshold_seconds'])], 'pk_attr': 'id', 'table_description': "One threshold of one key's expiry, decided once (``keyrelease.service.notices``)."},
            bases=['Model'],
        ),
        ops.AddIndex(
            model_name='ApiKey',
            index=Index(fields=['expires_at']),
        ),
        ops.AlterField(
            model_name='KeyEvent',
            name='type',
            field=fields.CharEnumField(description='CREATED: CREATED\nCODE_SENT: CODE_SENT\nCODE_RESENT: CODE_RESENT\nVERIFICATION_FAILED: VERIFICATION_FAILED\nVERIFIED: VERIFIED\nLOCKED: LOCKED\nREVEALED: REVEALED\nPARTNER_OTP_SENT: PARTNER_OTP_SENT\nPARTNER_REVEAL_FAILED: PARTNER_REVEAL_FAILED\nPARTNER_REVEALED: PARTNER_REVEALED\nREVOKED: REVOKED\nLEAK_REPORTED: LEAK_REPORTED\nADMIN_DISABLED: ADMIN_DISABLED\nEXPIRY_NOTICE: EXPIRY_NOTICE', enum_type=EventType, max_length=32),
        ),
        ops.AlterField(
            model_name='OutboxMessage',
            name='kind',
            field=fields.CharEnumField(description='VERIFICATION_CODE: VERIFICATION_CODE\nPARTNER_OTP: PARTNER_OTP\nCREATION_SUSPENDED: CREATION_SUSPENDED\nSECRET_LEAKED: SECRET_LEAKED\nEXPIRY_NOTICE: EXPIRY_NOTICE', enum_type=MessageKind, max_length=32),
        ),
        ops.RunSQL(
            [
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({columns})'
                for name, table, columns in importlib.import_module("keyrelease.migrations.0007_sqlite_lost_indexes").INDEXES
            ],
            reverse_sql=[],
        ),
    ]
