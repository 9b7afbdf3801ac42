"""The GraphQL documents the admin console and the partner page send, as GraphQL text.

They are written once, in ``static/operations.js`` (``export const NAME = `…`;``, with
``${FRAGMENT}`` pulling in a fragment defined in the same file). This module reads them out of
that file, so that a test can validate each against ``schema.graphql`` and a frontend build can
generate typed operations from them:

    python -m keyrelease.web.operations OUT_DIR     # writes OUT_DIR/<OperationName>.graphql
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "static" / "operations.js"
_CONST = re.compile(r"^(export )?const ([A-Z_]+) = `(.*?)`;", re.MULTILINE | re.DOTALL)
_INTERPOLATION = re.compile(r"\$\{([A-Z_]+)\}")
_OPERATION_NAME = re.compile(r"^\s*(?:query|mutation|subscription)\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


def documents(source: Path = SOURCE) -> dict[str, str]:
    """Each exported document by its operation name, with its fragments filled in."""
    constants: dict[str, str] = {}
    exported: list[str] = []
    for match in _CONST.finditer(source.read_text(encoding="utf-8")):
        exported_, name, body = match.groups()
        if missing := [ref for ref in _INTERPOLATION.findall(body) if ref not in constants]:
            raise ValueError(f"{source.name}: {name} uses ${{{missing[0]}}} before it is defined")
        constants[name] = _INTERPOLATION.sub(lambda ref: constants[ref.group(1)], body)
        if exported_:
            exported.append(name)
    found: dict[str, str] = {}
    for name in exported:
        operation = _OPERATION_NAME.search(constants[name])
        if operation is None:
            raise ValueError(f"{source.name}: {name} has no named query or mutation")
        found[operation.group(1)] = constants[name].strip() + "\n"
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m keyrelease.web.operations OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, text in documents().items():
        (out / f"{name}.graphql").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
