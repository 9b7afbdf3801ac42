"""Sign-in with an institution's identity provider (keyrelease.service.sso) and console sessions
(keyrelease.service.sessions): new tables only, so no SQLite table is rebuilt and no index lost."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0011_passkeys')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AdminIdentity',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('admin', fields.OneToOneField('models.Admin', source_field='admin_id', db_constraint=True, to_field='id', related_name='identity', on_delete=OnDelete.CASCADE)),
                ('institution', fields.ForeignKeyField('models.Institution', source_field='institution_id', db_constraint=True, to_field='id', related_name='admin_identities', on_delete=OnDelete.CASCADE)),
                ('subject', fields.CharField(max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'admin_identity', 'app': 'models', 'unique_together': (('institution_id', 'subject'),), 'pk_attr': 'id', 'table_description': "Who an admin is at their institution's provider: the ID token's ``sub``, which stays"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AdminSession',
            fields=[
                ('id_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('admin', fields.ForeignKeyField('models.Admin', source_field='admin_id', db_constraint=True, to_field='id', related_name='sessions', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_seen_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'admin_session', 'app': 'models', 'pk_attr': 'id_hash', 'table_description': "A signed-in browser (``keyrelease.service.sessions``): only the SHA-256 of the cookie's"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='IdentityProvider',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('institution', fields.OneToOneField('models.Institution', source_field='institution_id', db_constraint=True, to_field='id', related_name='identity_provider', on_delete=OnDelete.CASCADE)),
                ('issuer', fields.CharField(max_length=2048)),
                ('client_id', fields.CharField(max_length=200)),
                ('client_secret_sealed', fields.TextField(unique=False)),
                ('admin_claim', fields.CharField(null=True, description='The claim that marks an admin, and the value it must have (or contain), null for none.', max_length=200)),
                ('admin_claim_value', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'identity_provider', 'app': 'models', 'pk_attr': 'id', 'table_description': "An institution's OpenID Connect provider (``keyrelease institution set-idp``, see"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='IdentityProviderDomain',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('provider', fields.ForeignKeyField('models.IdentityProvider', source_field='provider_id', db_constraint=True, to_field='id', related_name='domains', on_delete=OnDelete.CASCADE)),
                ('domain', fields.CharField(unique=True, max_length=254)),
            ],
            options={'table': 'identity_provider_domain', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An email domain whose admins sign in with ``provider``: one institution per domain.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SignInRequest',
            fields=[
                ('state_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('provider', fields.ForeignKeyField('models.IdentityProvider', source_field='provider_id', db_constraint=True, to_field='id', related_name='sign_in_requests', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sign_in_request', 'app': 'models', 'pk_attr': 'state_hash', 'table_description': 'One authorization request sent to a provider, waiting for its answer.'},
            bases=['Model'],
        ),
    ]
