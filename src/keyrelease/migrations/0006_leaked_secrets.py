"""Leaked secrets (keyrelease.service.leaks): when a key's secret was reported leaked and where,
an index for finding a key by its secret's hash, the LEAK_REPORTED event and the mail that
tells admins and partners."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from keyrelease.models import EventType, MessageKind
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_key_history_indexes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='ApiKey',
            name='compromise_url',
            field=fields.CharField(null=True, max_length=2048),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='compromised_at',
            field=fields.DatetimeField(null=True, description='When a leak of the secret was reported (status COMPROMISED), and where it was found.', auto_now=False, auto_now_add=False),
        ),
        ops.AddIndex(
            model_name='ApiKey',
            index=Index(fields=['secret_hash']),
        ),
        ops.AlterField(
            model_name='KeyEvent',
            name='type',
            field=fields.CharEnumField(description='CREATED: CREATED\nCODE_SENT: CODE_SENT\nCODE_RESENT: CODE_RESENT\nVERIFICATION_FAILED: VERIFICATION_FAILED\nVERIFIED: VERIFIED\nLOCKED: LOCKED\nREVEALED: REVEALED\nPARTNER_OTP_SENT: PARTNER_OTP_SENT\nPARTNER_REVEAL_FAILED: PARTNER_REVEAL_FAILED\nPARTNER_REVEALED: PARTNER_REVEALED\nREVOKED: REVOKED\nLEAK_REPORTED: LEAK_REPORTED', enum_type=EventType, max_length=32),
        ),
        ops.AlterField(
            model_name='OutboxMessage',
            name='kind',
            field=fields.CharEnumField(description='VERIFICATION_CODE: VERIFICATION_CODE\nPARTNER_OTP: PARTNER_OTP\nCREATION_SUSPENDED: CREATION_SUSPENDED\nSECRET_LEAKED: SECRET_LEAKED', enum_type=MessageKind, max_length=32),
        ),
    ]
