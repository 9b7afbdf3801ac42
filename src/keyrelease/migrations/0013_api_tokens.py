"""Admin API tokens from the console (keyrelease.service.api_tokens): a token's name (``cli``
for every token issued before, all from the command line) and its last use, written in batches
like a key's. Adding columns to ``admin_token`` does not rebuild it on SQLite: it has no index
but its unique token hash, which stays."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0012_sso')]

    initial = False

    operations = [
        ops.AddField(
            model_name='AdminToken',
            name='last_used_at',
            field=fields.DatetimeField(null=True, description="Written in batches by :class:`keyrelease.service.clients.LastUseRecorder`, as a key's is.", auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='AdminToken',
            name='name',
            field=fields.CharField(default='cli', description='What the admin called it (``cli`` for a token from ``keyrelease admin create``/``token``).', db_default='cli', max_length=100),
        ),
    ]
