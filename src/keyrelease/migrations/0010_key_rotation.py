"""Key rotation (keyrelease.service.rotation): the ``key_rotation`` table and the rotation
events. Altering ``key_event`` rebuilds it on SQLite, which drops its index (as 0007 explains);
the last operation puts it back under the name it has on PostgreSQL, where ``IF NOT EXISTS``
makes it a no-op."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from keyrelease.models import EventType, LockReason
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0009_expiry_notices')]

    initial = False

    operations = [
        ops.CreateModel(
            name='KeyRotation',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('key', fields.ForeignKeyField('models.ApiKey', source_field='key_id', db_constraint=True, to_field='id', related_name='rotations', on_delete=OnDelete.CASCADE)),
                ('open_key', fields.ForeignKeyField('models.ApiKey', source_field='open_key_id', null=True, unique=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('requested_by', fields.ForeignKeyField('models.Admin', source_field='requested_by_id', db_constraint=True, to_field='id', related_name='rotations', on_delete=OnDelete.RESTRICT)),
                ('notify_email', fields.CharField(description="The requesting admin's address when the rotation started: where its codes go.", max_length=254)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('verification_deadline', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('code_generation', fields.IntField(default=0)),
                ('code_sent_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('resends_used', fields.IntField(default=0)),
                ('attempts_used', fields.IntField(default=0)),
                ('verified_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('locked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('lock_reason', fields.CharEnumField(null=True, description='ATTEMPTS: ATTEMPTS\nWINDOW: WINDOW\nADMIN_DISABLED: ADMIN_DISABLED', enum_type=LockReason, max_length=16)),
                ('cancelled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(null=True, description="The key's expiry from the release on (null: the key's expiry is kept).", auto_now=False, auto_now_add=False)),
                ('partner_otp_issued_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('partner_attempts_used', fields.IntField(default=0)),
                ('revealed_at', fields.DatetimeField(null=True, description='The release: the new secret revealed to the admin, or retrieved by the partner.', auto_now=False, auto_now_add=False)),
                ('new_secret_hash', fields.CharField(null=True, max_length=64)),
                ('new_secret_first_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('old_secret_retired_at', fields.DatetimeField(null=True, description="When the periodic pass made the new secret the key's only one.", auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'key_rotation', 'app': 'models', 'indexes': [Index(fields=['key_id', 'started_at'])], 'pk_attr': 'id', 'table_description': "A new secret for a key's client ID, released exactly like a new key's secret"},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='KeyEvent',
            name='type',
            field=fields.CharEnumField(description='CREATED: CREATED\nCODE_SENT: CODE_SENT\nCODE_RESENT: CODE_RESENT\nVERIFICATION_FAILED: VERIFICATION_FAILED\nVERIFIED: VERIFIED\nLOCKED: LOCKED\nREVEALED: REVEALED\nPARTNER_OTP_SENT: PARTNER_OTP_SENT\nPARTNER_REVEAL_FAILED: PARTNER_REVEAL_FAILED\nPARTNER_REVEALED: PARTNER_REVEALED\nREVOKED: REVOKED\nLEAK_REPORTED: LEAK_REPORTED\nADMIN_DISABLED: ADMIN_DISABLED\nEXPIRY_NOTICE: EXPIRY_NOTICE\nROTATION_STARTED: ROTATION_STARTED\nROTATION_VERIFIED: ROTATION_VERIFIED\nROTATION_REVEALED: ROTATION_REVEALED\nNEW_SECRET_FIRST_USED: NEW_SECRET_FIRST_USED\nOLD_SECRET_RETIRED: OLD_SECRET_RETIRED\nROTATION_LOCKED: ROTATION_LOCKED\nROTATION_CANCELLED: ROTATION_CANCELLED', enum_type=EventType, max_length=32),
        ),
        ops.RunSQL(
            ['CREATE INDEX IF NOT EXISTS "idx_key_event_key_id_8705ac" ON "key_event" (key_id, id)'],
            reverse_sql=[],
        ),
    ]
