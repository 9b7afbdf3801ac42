"""An admin's budget (keyrelease.service.budget): one row per key created, code emailed, key
locked by wrong codes; and the new mail kind that tells an institution's admins of a suspension."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from keyrelease.models import BudgetItem, MessageKind
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_rate_limit_counter_unlogged')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AdminBudgetEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('admin', fields.ForeignKeyField('models.Admin', source_field='admin_id', db_constraint=True, to_field='id', related_name='budget_entries', on_delete=OnDelete.CASCADE)),
                ('item', fields.CharEnumField(description='KEY_CREATED: KEY_CREATED\nCODE_EMAIL: CODE_EMAIL\nKEY_LOCKED: KEY_LOCKED', enum_type=BudgetItem, max_length=16)),
                ('at_ms', fields.BigIntField()),
            ],
            options={'table': 'admin_budget_entry', 'app': 'models', 'indexes': [Index(fields=['admin_id', 'item', 'at_ms'])], 'pk_attr': 'id', 'table_description': "One spending of an admin's budget: a key created, a code emailed, a key locked by"},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='OutboxMessage',
            name='kind',
            field=fields.CharEnumField(description='VERIFICATION_CODE: VERIFICATION_CODE\nPARTNER_OTP: PARTNER_OTP\nCREATION_SUSPENDED: CREATION_SUSPENDED', enum_type=MessageKind, max_length=32),
        ),
    ]
