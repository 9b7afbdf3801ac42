from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RateLimitCounter',
            fields=[
                ('bucket', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=200)),
                ('window_end', fields.BigIntField()),
                ('count', fields.IntField()),
            ],
            options={'table': 'rate_limit_counter', 'app': 'models', 'pk_attr': 'bucket', 'table_description': 'One fixed-window request counter (see ``keyrelease.service.ratelimit``).'},
            bases=['Model'],
        ),
    ]
