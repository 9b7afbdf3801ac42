"""Every GraphQL document the console and the partner page send is checked against
schema.graphql, so a schema change that would break them fails the build; and a frontend on
another origin generates typed operations from the same schema and documents (GraphQL Code
Generator, then the TypeScript compiler) — the example in examples/frontend, run here when
Node is present."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from environment import needs_executable
from graphql import build_schema, parse, validate

from keyrelease.web import operations

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schema.graphql"
STATIC = ROOT / "src" / "keyrelease" / "web" / "static"
EXAMPLE = ROOT / "examples" / "frontend"


def errors_against(schema_text: str) -> dict[str, list[str]]:
    schema = build_schema(schema_text)
    found = {}
    for name, text in operations.documents().items():
        problems = [error.message for error in validate(schema, parse(text))]
        if problems:
            found[name] = problems
    return found


def test_every_exported_document_is_read_out_of_operations_js():
    exported = re.findall(r"^export const ([A-Z_]+) = `", operations.SOURCE.read_text(), re.MULTILINE)
    documents = operations.documents()
    assert len(documents) == len(exported) >= 8
    assert {"Me", "Keys", "Key", "CreateKey", "VerifyKey", "ResendCode", "RevealKey", "RevokeKey"} <= set(documents)


def test_every_graphql_call_in_the_pages_sends_a_document_from_operations_js():
    exported = set(re.findall(r"^export const ([A-Z_]+) = `", operations.SOURCE.read_text(), re.MULTILINE))
    calls = []
    for script in STATIC.glob("*.js"):
        for match in re.finditer(r"\bgraphql\(\s*([^,\s)]+)", script.read_text()):
            calls.append((script.name, match.group(1)))
    sent = [(name, arg) for name, arg in calls if name != "graphql.js"]
    assert sent, "no graphql() calls found in the pages"
    # console.js funnels most calls through one helper whose first argument is a document.
    stray = [(name, arg) for name, arg in sent if arg not in exported and arg != "query"]
    assert not stray, f"GraphQL sent that is not a document of operations.js: {stray}"


def test_every_console_document_is_valid_against_schema_graphql():
    assert errors_against(SCHEMA.read_text()) == {}


def test_a_schema_change_that_breaks_the_console_is_caught():
    field = re.compile(r'^(\s*"""[^"]*"""\n)?\s*attemptsRemaining: Int!\n', re.MULTILINE)  # with its description
    broken = field.sub("", SCHEMA.read_text())
    assert broken != SCHEMA.read_text()
    errors = errors_against(broken)
    assert "VerifyKey" in errors and any("attemptsRemaining" in message for message in errors["VerifyKey"])


def test_the_documents_are_written_out_for_a_frontend_build(tmp_path):
    assert operations.main([str(tmp_path)]) == 0
    written = {path.stem: path.read_text() for path in tmp_path.glob("*.graphql")}
    assert written == operations.documents()


@needs_executable("npm", "apt-get install nodejs npm; GraphQL Code Generator and tsc over the console's documents were not run")
def test_a_frontend_generates_typed_operations_and_type_checks(tmp_path):
    npm = shutil.which("npm")
    assert npm is not None
    work = tmp_path / "frontend"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("node_modules", "operations", "generated"))
    (tmp_path / "schema.graphql").write_text(SCHEMA.read_text())
    (work / "codegen.yml").write_text((work / "codegen.yml").read_text().replace("../../schema.graphql", "../schema.graphql"))

    def run(*command: str) -> str:
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    run(npm, "ci", "--no-audit", "--no-fund", "--prefer-offline")
    run(sys.executable, "-m", "keyrelease.web.operations", "operations")
    run(npm, "run", "generate")
    generated = (work / "src" / "generated" / "graphql.ts").read_text()
    assert "export type CreateKeyMutation = " in generated and "export type VerifyKeyMutationVariables = " in generated
    run(npm, "run", "typecheck")

    # The compiler really checks the example against the generated types.
    portal = work / "src" / "portal.ts"
    portal.write_text(portal.read_text().replace("result.attemptsRemaining", "result.attemptsLeft"))
    broken = subprocess.run([npm, "run", "typecheck"], cwd=work, capture_output=True, text=True, timeout=600, check=False)
    assert broken.returncode != 0 and "attemptsLeft" in broken.stdout + broken.stderr
