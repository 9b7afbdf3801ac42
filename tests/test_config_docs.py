"""Every setting the service reads is documented, with its default, and nothing else is."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from keyrelease.config import GROUPS, SECTIONS, SETTINGS, Settings
from keyrelease.testing.processes import run_cli
from keyrelease.testing.settings import base_env

ROOT = Path(__file__).parent.parent
ROW = re.compile(r"^\| `(KEYRELEASE_[A-Z0-9_]+)` \| ([^|]+?) \|")


def documented() -> dict[str, tuple[str, str]]:
    """Each variable in a table of docs/configuration.md: the section it is in, its default."""
    found: dict[str, tuple[str, str]] = {}
    section = ""
    for line in (ROOT / "docs/configuration.md").read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif match := ROW.match(line):
            assert match.group(1) not in found, f"{match.group(1)} is documented twice"
            found[match.group(1)] = (section, match.group(2).replace("`", ""))
    return found


def test_every_declared_setting_is_documented_in_its_section_with_its_default():
    docs = documented()
    assert len(docs) > 60, "the pattern no longer finds the tables"
    for setting in SETTINGS:
        assert setting.variable in docs, f"{setting.variable} is not in docs/configuration.md"
        section, default = docs[setting.variable]
        assert section == setting.section, setting.variable
        # The docs may add a gloss in parentheses: "262144 (256 KiB)".
        assert default == setting.shown_default or default.startswith(setting.shown_default + " ("), (
            f"{setting.variable}: the docs say {default!r}, the declaration {setting.shown_default!r}"
        )


def test_nothing_is_documented_that_is_not_declared():
    declared = {setting.variable for setting in SETTINGS}
    assert sorted(set(documented()) - declared) == []


def test_each_setting_is_declared_once_and_fills_one_field():
    assert len({setting.name for setting in SETTINGS}) == len(SETTINGS)
    assert len({setting.field for setting in SETTINGS}) == len(SETTINGS)
    assert {setting.section for setting in SETTINGS} == set(SECTIONS)
    for group, kind in GROUPS.items():
        members = {f"{group}.{item.name}" for item in dataclasses.fields(kind)}
        assert members <= {setting.field for setting in SETTINGS}, f"a member of {group} is not declared"


def test_the_defaults_are_the_values_read_from_an_empty_environment(tmp_path):
    settings = Settings.from_env({"KEYRELEASE_VAR_DIR": str(tmp_path)})
    for setting in SETTINGS:
        if setting.derive is None and setting.name != "VAR_DIR":
            owner, _, name = setting.field.rpartition(".")
            value = getattr(getattr(settings, owner) if owner else settings, name)
            assert value == setting.default, setting.name


def test_keyrelease_settings_lists_every_variable_with_its_default_and_bounds(tmp_path):
    """It reads no environment: a bad value does not stop it, and no value is shown."""
    done = run_cli(base_env(tmp_path, KEYRELEASE_MAX_ATTEMPTS="lots"), "settings")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if line and not line.startswith(" ")] == list(SECTIONS)
    for setting in SETTINGS:
        [line] = [line for line in lines if line.split()[:1] == [setting.variable]]
        assert f"default {setting.shown_default}" in line
        assert setting.accepts in line
    assert "KEYRELEASE_CODE_TTL_SECONDS  default 300; at least 30" in done.stdout
    assert [line.split()[0] for line in lines if line.endswith("; secret")] == ["KEYRELEASE_SECRET_KEY"]
    assert "lots" not in done.stdout and base_env(tmp_path)["KEYRELEASE_SECRET_KEY"] not in done.stdout


def test_every_transport_setting_is_in_the_plugin_guide():
    guide = (ROOT / "docs/plugins.md").read_text()
    for module in ("smtp", "sendgrid"):
        source = (ROOT / "plugins" / f"{module}.py").read_text()
        names = set(re.findall(r"KEYRELEASE_[A-Z_]+", source))
        assert names, module
        missing = sorted(n for n in names if n not in guide)
        assert not missing, f"{module}: undocumented settings {missing}"
