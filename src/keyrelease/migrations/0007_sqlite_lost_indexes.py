"""Indexes that SQLite lost: Tortoise alters a SQLite column by rebuilding its table, and the
rebuilds in 0004 and 0006 dropped the indexes 0001 and 0005 had made on ``outbox_message`` and
``key_event`` (the dispatcher's claim and a key's history then scanned whole tables).
PostgreSQL kept them; ``IF NOT EXISTS`` with the very names they have there makes this a
no-op on PostgreSQL and puts them back on SQLite."""

from tortoise import migrations
from tortoise.migrations import operations as ops

INDEXES = [
    ("idx_outbox_mess_status_4d04e0", "outbox_message", "status, next_attempt_at"),
    ("idx_outbox_mess_key_id_37f2a3", "outbox_message", "key_id, created_at"),
    ("idx_key_event_key_id_8705ac", "key_event", "key_id, id"),
]


class Migration(migrations.Migration):
    dependencies = [('models', '0006_leaked_secrets')]

    initial = False

    operations = [
        ops.RunSQL(
            [f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({columns})' for name, table, columns in INDEXES],
            reverse_sql=[],
        ),
    ]
