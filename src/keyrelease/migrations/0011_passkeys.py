"""Passkeys (keyrelease.service.passkeys): the ``passkey``, ``passkey_enrollment`` and
``admin_event`` tables, each institution's release proof (snapshotted on keys and rotations),
the passkey nonce of a pending key or rotation, and the PASSKEY_CODE message kind. Altering
``outbox_message`` rebuilds it on SQLite, which drops its indexes (as 0007 explains); the last
operation puts them back under the names they have on PostgreSQL, where ``IF NOT EXISTS``
makes it a no-op."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from keyrelease.models import AdminEventType, MessageKind, ReleaseProof
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

INDEXES = [
    ("idx_outbox_mess_status_4d04e0", "outbox_message", "status, next_attempt_at"),
    ("idx_outbox_mess_key_id_37f2a3", "outbox_message", "key_id, created_at"),
]

class Migration(migrations.Migration):
    dependencies = [('models', '0010_key_rotation')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AdminEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('admin', fields.ForeignKeyField('models.Admin', source_field='admin_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('type', fields.CharEnumField(description='PASSKEY_ADDED: PASSKEY_ADDED\nPASSKEY_REMOVED: PASSKEY_REMOVED', enum_type=AdminEventType, max_length=32)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('detail', fields.CharField(null=True, max_length=200)),
            ],
            options={'table': 'admin_event', 'app': 'models', 'indexes': [Index(fields=['admin_id', 'id'])], 'pk_attr': 'id', 'table_description': 'Append-only history of an admin (passkeys added and removed). ``detail`` names, never secrets.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Passkey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('admin', fields.ForeignKeyField('models.Admin', source_field='admin_id', db_constraint=True, to_field='id', related_name='passkeys', on_delete=OnDelete.CASCADE)),
                ('credential_id', fields.CharField(unique=True, max_length=1364)),
                ('public_key', fields.TextField(unique=False)),
                ('sign_count', fields.BigIntField(default=0)),
                ('name', fields.CharField(max_length=100)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'passkey', 'app': 'models', 'indexes': [Index(fields=['admin_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A WebAuthn credential of an admin (keyrelease.service.passkeys). Only public material:'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PasskeyEnrollment',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('admin', fields.ForeignKeyField('models.Admin', source_field='admin_id', db_constraint=True, to_field='id', related_name='passkey_enrollments', on_delete=OnDelete.CASCADE)),
                ('notify_email', fields.CharField(max_length=254)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('verification_deadline', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('code_sent_at', fields.DatetimeField(null=True, description='Null when the proof is a passkey (no code was sent).', auto_now=False, auto_now_add=False)),
                ('code_generation', fields.IntField(default=0)),
                ('resends_used', fields.IntField(default=0)),
                ('attempts_used', fields.IntField(default=0)),
                ('nonce', fields.CharField(null=True, max_length=64)),
                ('verified_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('locked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('challenge', fields.CharField(null=True, max_length=64)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'passkey_enrollment', 'app': 'models', 'indexes': [Index(fields=['admin_id', 'started_at'])], 'pk_attr': 'id', 'table_description': "Adding a passkey: proven first by an emailed code (a key's rules: code lifetime,"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='ApiKey',
            name='passkey_nonce',
            field=fields.CharField(null=True, description='The random part of the one outstanding passkey challenge, from beginPasskeyVerification.', max_length=64),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='release_proof',
            field=fields.CharEnumField(default=ReleaseProof.EMAIL, description='EMAIL: EMAIL\nPASSKEY_OR_EMAIL: PASSKEY_OR_EMAIL\nPASSKEY: PASSKEY', enum_type=ReleaseProof, max_length=16),
        ),
        ops.AddField(
            model_name='Institution',
            name='release_proof',
            field=fields.CharEnumField(default=ReleaseProof.EMAIL, description='EMAIL: EMAIL\nPASSKEY_OR_EMAIL: PASSKEY_OR_EMAIL\nPASSKEY: PASSKEY', enum_type=ReleaseProof, max_length=16),
        ),
        ops.AddField(
            model_name='KeyRotation',
            name='passkey_nonce',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='KeyRotation',
            name='release_proof',
            field=fields.CharEnumField(default=ReleaseProof.EMAIL, description='EMAIL: EMAIL\nPASSKEY_OR_EMAIL: PASSKEY_OR_EMAIL\nPASSKEY: PASSKEY', enum_type=ReleaseProof, max_length=16),
        ),
        ops.AlterField(
            model_name='OutboxMessage',
            name='kind',
            field=fields.CharEnumField(description='VERIFICATION_CODE: VERIFICATION_CODE\nPASSKEY_CODE: PASSKEY_CODE\nPARTNER_OTP: PARTNER_OTP\nCREATION_SUSPENDED: CREATION_SUSPENDED\nSECRET_LEAKED: SECRET_LEAKED\nEXPIRY_NOTICE: EXPIRY_NOTICE', enum_type=MessageKind, max_length=32),
        ),
        ops.RunSQL(
            [f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({columns})' for name, table, columns in INDEXES],
            reverse_sql=[],
        ),
    ]
