"""Indexes for reading keys' histories and deliveries by key.

A page of keys reads its keys' events and latest mails with one ``key_id IN (…)`` statement
each, and a key's detail view the same for one key; without these they scanned both tables.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_admin_budget')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='KeyEvent',
            index=Index(fields=['key_id', 'id']),
        ),
        ops.AddIndex(
            model_name='OutboxMessage',
            index=Index(fields=['key_id', 'created_at']),
        ),
    ]
