"""Admin offboarding (keyrelease.service.offboarding): when an admin was disabled, the
ADMIN_DISABLED lock reason and key event. Altering ``api_key`` and ``key_event`` rebuilds those
tables on SQLite, which drops their indexes (as 0007 explains); the last operation puts them
back under the names they have on PostgreSQL, where ``IF NOT EXISTS`` makes it a no-op."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from keyrelease.models import EventType, LockReason
from tortoise import fields

INDEXES = [
    ("idx_api_key_institu_051f92", "api_key", "institution_id, created_at"),
    ("idx_api_key_secret__f713ff", "api_key", "secret_hash"),
    ("idx_key_event_key_id_8705ac", "key_event", "key_id, id"),
]

class Migration(migrations.Migration):
    dependencies = [('models', '0007_sqlite_lost_indexes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Admin',
            name='disabled_at',
            field=fields.DatetimeField(null=True, description='Set by ``keyrelease admin disable`` (offboarding): every token of the admin is refused', auto_now=False, auto_now_add=False),
        ),
        ops.AlterField(
            model_name='ApiKey',
            name='lock_reason',
            field=fields.CharEnumField(null=True, description='ATTEMPTS: ATTEMPTS\nWINDOW: WINDOW\nADMIN_DISABLED: ADMIN_DISABLED', enum_type=LockReason, max_length=16),
        ),
        ops.AlterField(
            model_name='KeyEvent',
            name='type',
            field=fields.CharEnumField(description='CREATED: CREATED\nCODE_SENT: CODE_SENT\nCODE_RESENT: CODE_RESENT\nVERIFICATION_FAILED: VERIFICATION_FAILED\nVERIFIED: VERIFIED\nLOCKED: LOCKED\nREVEALED: REVEALED\nPARTNER_OTP_SENT: PARTNER_OTP_SENT\nPARTNER_REVEAL_FAILED: PARTNER_REVEAL_FAILED\nPARTNER_REVEALED: PARTNER_REVEALED\nREVOKED: REVOKED\nLEAK_REPORTED: LEAK_REPORTED\nADMIN_DISABLED: ADMIN_DISABLED', enum_type=EventType, max_length=32),
        ),
        ops.RunSQL(
            [f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({columns})' for name, table, columns in INDEXES],
            reverse_sql=[],
        ),
    ]
