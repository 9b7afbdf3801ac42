"""Audit the locked dependencies (requirements.lock) for known vulnerabilities.

Usage: python .ci/audit_lock.py [requirements.lock]

1. pip-audit checks every pinned release against PyPI's advisory data (the per-release JSON API,
   which carries the OSV/PYSEC/GHSA advisories).
2. Where pip-audit could not look a release up (an index mirror that serves only the
   per-project JSON, as on our CI machines), the project's JSON is asked instead: PyPI lists
   there the advisories that affect the project's newest release, so a pin that *is* the newest
   release is audited exactly; a pin behind it is reported as not audited, by name.

Exit status: 1 when any locked release has a known vulnerability; 0 otherwise. When no advisory
source can be reached at all, it prints a warning and exits 0, so offline work goes on; the
warning names what was not audited.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

PYPI = "https://pypi.org/pypi/{name}/json"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[normalise(match[1])] = match[2]
    return pins


def pip_audit(lock: Path) -> dict[str, list[str]] | None:
    """Advisory ids per package as pip-audit found them; packages it skipped are left out.

    None when pip-audit could not run at all.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip",
                 "--progress-spinner", "off", "-f", "json", "-o", str(report)],
                capture_output=True, text=True, timeout=120,
            )
        except subprocess.TimeoutExpired:
            print("audit: pip-audit did not finish within 120 s")
            return None
        if not report.exists():
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(f"audit: pip-audit produced no report: {last[:300]}")
            return None
        data = json.loads(report.read_text())
    found = {}
    for dep in data.get("dependencies", []):
        if "skip_reason" in dep:
            continue
        found[normalise(dep["name"])] = [v["id"] for v in dep.get("vulns", [])]
    return found


def project_advisories(name: str) -> tuple[str, list[str]] | None:
    """(newest release, ids of advisories affecting it) from PyPI's project JSON; None if unreachable."""
    context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
    try:
        with urllib.request.urlopen(PYPI.format(name=name), timeout=20, context=context) as resp:
            data = json.load(resp)
    except (OSError, http.client.HTTPException, ValueError):  # URLError and timeouts are OSErrors
        return None
    ids = [v["id"] for v in data.get("vulnerabilities", []) if not v.get("withdrawn")]
    return data["info"]["version"], ids


def main() -> int:
    lock = Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock")
    pins = read_pins(lock)
    found = pip_audit(lock) or {}
    vulnerable: dict[str, list[str]] = {name: ids for name, ids in found.items() if ids}
    audited = set(found)
    behind: list[str] = []
    unreachable: list[str] = []
    for name, version in sorted(pins.items()):
        if name in audited:
            continue
        answer = None if unreachable else project_advisories(name)  # one failure: offline, stop asking
        if answer is None:
            unreachable.append(name)
            continue
        newest, ids = answer
        if newest != version:
            behind.append(f"{name} {version} (newest {newest})")
            continue
        audited.add(name)
        if ids:
            vulnerable[name] = ids

    for name, ids in sorted(vulnerable.items()):
        print(f"audit: {name}=={pins.get(name, '?')} has known vulnerabilities: {', '.join(ids)}")
    print(f"audit: {len(audited)} of {len(pins)} locked packages audited, "
          f"{len(vulnerable)} with known vulnerabilities")
    if behind:
        print(f"audit: WARNING: {len(behind)} pinned below their newest release could not be "
              f"audited here (no per-release advisory data): {'; '.join(behind)}")
    if unreachable:
        print(f"audit: WARNING: no advisory source reachable for {len(unreachable)} packages; "
              f"they were NOT audited: {', '.join(unreachable)}")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
