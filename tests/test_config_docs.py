"""Every setting the service reads is documented."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_setting_is_in_the_configuration_docs():
    source = (ROOT / "src/keyrelease/config.py").read_text()
    read = set(re.findall(r'reader\.\w+\(\s*"([A-Z_]+)"', source)) | {"SECRET_KEY"}
    assert len(read) > 20, "the pattern no longer finds the settings"
    docs = (ROOT / "docs/configuration.md").read_text()
    missing = sorted(name for name in read if f"KEYRELEASE_{name}" not in docs)
    assert not missing, f"undocumented settings: {missing}"


def test_every_transport_setting_is_in_the_plugin_guide():
    guide = (ROOT / "docs/plugins.md").read_text()
    for module in ("smtp", "sendgrid"):
        source = (ROOT / "plugins" / f"{module}.py").read_text()
        names = set(re.findall(r"KEYRELEASE_[A-Z_]+", source))
        assert names, module
        missing = sorted(n for n in names if n not in guide)
        assert not missing, f"{module}: undocumented settings {missing}"
