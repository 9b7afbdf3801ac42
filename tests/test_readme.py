"""The README's walk-through, run as a newcomer runs it: every shell block in order, in one
bash session, against a real `keyrelease serve` on a port other than 8000 with the console
mail transport. What the newcomer copies by hand (the code and the one-time password) the
test reads from the server's console output, as the newcomer reads it in the first terminal."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from keyrelease.testing.api import CODE_LINE, OTP_LINE
from keyrelease.testing.processes import BIN, Server
from keyrelease.testing.settings import SECRET_KEY

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
WALK_THROUGH = re.compile(r"^## Walk-through.*?(?=^## Admin console)", re.MULTILINE | re.DOTALL)
SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
DONE = "__README_BLOCK_DONE__"


def walk_through_blocks() -> list[str]:
    section = WALK_THROUGH.search(README.read_text())
    assert section, "README.md has no walk-through section"
    return SHELL_BLOCK.findall(section.group(0))


class Terminal:
    """One bash session, fed block by block like a person pasting into a terminal."""

    def __init__(self, env: dict[str, str]) -> None:
        self.shell = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )

    def paste(self, block: str, timeout: float = 60) -> str:
        assert self.shell.stdin and self.shell.stdout
        self.shell.stdin.write(block + f"\necho {DONE} $?\n")
        self.shell.stdin.flush()
        lines = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.shell.stdout.readline()
            if not line:
                break
            if line.startswith(DONE):
                assert line.split()[1] == "0", f"the block failed:\n{block}\n{''.join(lines)}"
                return "".join(lines)
            lines.append(line)
        raise AssertionError(f"the block did not finish:\n{block}\n{''.join(lines)}")

    def close(self) -> None:
        if self.shell.stdin:
            self.shell.stdin.close()
        self.shell.wait(10)


def newest(pattern: re.Pattern[str], server: Server, after: int, timeout: float = 15) -> str:
    """The value on the newest matching line the server printed after offset ``after``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pattern.findall(server.output()[after:])
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no {pattern.pattern!r} in the server's output:\n{server.output()[after:]}")


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's commands use curl")
def test_every_readme_command_runs_in_order_against_a_live_server(tmp_path: Path):
    env = {
        "KEYRELEASE_VAR_DIR": str(tmp_path / "var"),
        "KEYRELEASE_SECRET_KEY": SECRET_KEY,
        "KEYRELEASE_MAIL_TRANSPORT": "console",
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
    }
    blocks = walk_through_blocks()
    assert sum(block.count("KR=http://127.0.0.1:8000") for block in blocks) == 1
    server = Server(env, log_path=tmp_path / "server.log")
    assert server.port != 8000
    server.start()
    terminal = Terminal({**env, "HOME": str(tmp_path)})
    try:
        outputs = []
        mail_mark = 0
        for block in blocks:
            block = block.replace("KR=http://127.0.0.1:8000", f"KR={server.url}")  # the one line to edit
            if "CODE=123456" in block:
                block = block.replace("123456", newest(CODE_LINE, server, mail_mark))
            if "OTP=ABCD-EFGH-IJKL-MNOP" in block:
                block = block.replace("ABCD-EFGH-IJKL-MNOP", newest(OTP_LINE, server, mail_mark))
            mail_mark = len(server.output())
            outputs.append(terminal.paste(block))
    finally:
        terminal.close()
        server.stop()

    text = "\n".join(outputs)
    assert "curl: (" not in text, text
    assert '"status":"PENDING_VERIFICATION"' in outputs[1]
    assert '"verifyKey":{"status":"ACTIVE"' in outputs[2]
    assert re.search(r'"clientId":"[^"]+","clientSecret":"[^"]+"', outputs[3]), outputs[3]
    assert '"access_token":"' in outputs[4] and '"token_type":"Bearer"' in outputs[4], outputs[4]
    assert '"verifyKey":{"status":"ACTIVE"}' in outputs[6], outputs[6]
    assert re.search(r'"revealKey":\{"clientId":"[^"]+","clientSecret":"[^"]+"\}', outputs[7]), outputs[7]
    assert len(outputs) == 8
