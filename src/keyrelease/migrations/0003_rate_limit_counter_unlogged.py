"""Rate-limit counters on PostgreSQL: an UNLOGGED table.

Each counted request upserts a row; a logged table makes every one of those wait for a WAL
flush. The counters are worth nothing after a crash (windows last seconds to minutes), so the
table skips the WAL: PostgreSQL empties it after a crash and does not copy it to standbys,
which hands everyone a fresh window, nothing more. The rules that matter (attempts, resends,
deadlines) live in ``api_key``, which stays logged. SQLite has no such notion: nothing to do.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops


def _on_postgres(sql: str):  # type: ignore[no-untyped-def]
    async def run(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
        if schema_editor.client.capabilities.dialect == "postgres":
            await schema_editor.client.execute_script(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("models", "0002_rate_limit_counter")]

    initial = False

    operations = [
        ops.RunPython(
            _on_postgres("ALTER TABLE rate_limit_counter SET UNLOGGED"),
            _on_postgres("ALTER TABLE rate_limit_counter SET LOGGED"),
        ),
    ]
