"""`make mutation`: mutmut over the security core, then the score, module by module.

What is mutated and which tests run is configured in pyproject.toml ([tool.mutmut]); why,
and the last recorded run, are in docs/testing.md. This script only drives mutmut and reads
its results:

    .ci/mutation.py                 # a fresh run over every configured module
    .ci/mutation.py keys ratelimit  # only these modules (file stems), fresh
    .ci/mutation.py --resume        # keep mutants/ and test only what has no result yet
    .ci/mutation.py --retest        # keep mutants/ and test again every mutant not killed
    .ci/mutation.py --report        # only print the results mutants/ holds

It runs on SQLite only (KEYRELEASE_TEST_POSTGRES_URL is removed from the environment),
prints a table per module, every surviving mutant (marked when docs/testing.md explains it
as equivalent), the score (killed + timed out, over all mutants) and the time taken, writes
mutants/score.json, and exits non-zero when the score is below MUTATION_MIN (default 90).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MUTANTS = ROOT / "mutants"
DOCS = ROOT / "docs" / "testing.md"

#: mutmut's exit-code verdicts (mutmut.stats.status_by_exit_code), folded into what we report.
KILLED_CODES = {1, 3}
SURVIVED_CODES = {0}
TIMEOUT_CODES = {36, 24, -24, 152, 255}
NO_TESTS_CODES = {5, 33}


def verdict(code: int | None) -> str:
    if code is None:
        return "not checked"
    if code in KILLED_CODES:
        return "killed"
    if code in SURVIVED_CODES:
        return "survived"
    if code in TIMEOUT_CODES:
        return "timeout"
    if code in NO_TESTS_CODES:
        return "no tests"
    return "suspicious"


def configured_files() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["only_mutate"])


def module_of(path: str) -> str:
    """src/keyrelease/service/keys.py -> keyrelease.service.keys"""
    return path.removeprefix("src/").removesuffix(".py").replace("/", ".")


def mutant_globs(stems: list[str], files: list[str]) -> list[str]:
    chosen = []
    for stem in stems:
        matches = [f for f in files if Path(f).stem == stem or module_of(f) == stem]
        if not matches:
            sys.exit(f"mutation: no configured module named {stem!r}; configured: {', '.join(Path(f).stem for f in files)}")
        chosen += matches
    return [f"{module_of(f)}.*" for f in chosen]


def results(files: list[str]) -> dict[str, dict[str, int | None]]:
    """Mutant name -> exit code, per configured file, from mutmut's .meta files."""
    found = {}
    for path in files:
        meta = MUTANTS / (path + ".meta")
        if meta.exists():
            found[path] = json.loads(meta.read_text())["exit_code_by_key"]
    return found


def row(label: str, counts: Counter[str]) -> str:
    """A table row; the score is over the mutants that were tested ("unrun": not yet)."""
    unrun = counts["not checked"]
    tested = sum(counts.values()) - unrun
    other = tested - counts["killed"] - counts["timeout"] - counts["survived"]
    score = f"{100 * (counts['killed'] + counts['timeout']) / tested:6.1f}%" if tested else "      -"
    return (f"{label:42} {tested + unrun:7} {counts['killed']:7} {counts['timeout']:7} {counts['survived']:8} "
            f"{other:6} {unrun:6} {score}")


def documented_equivalents() -> set[str]:
    """Mutant names docs/testing.md explains (written in backticks)."""
    if not DOCS.exists():
        return set()
    return set(re.findall(r"`(keyrelease\.[\w.]+__mutmut_\d+)`", DOCS.read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="file stems of configured modules (default: all)")
    parser.add_argument("--resume", action="store_true", help="keep mutants/; test only mutants with no result yet")
    parser.add_argument("--retest", action="store_true", help="keep mutants/; test again every mutant not killed")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", "2")))
    parser.add_argument("--report", action="store_true", help="run nothing; print the results in mutants/")
    parser.add_argument("--show", action="store_true", help="print the diff of every survivor")
    args = parser.parse_args()
    minimum = float(os.environ.get("MUTATION_MIN", "90"))

    files = configured_files()
    globs = mutant_globs(args.modules, files) if args.modules else []
    patterns = [g.removesuffix("*") for g in globs]
    names = globs
    if args.resume or args.retest or args.report:
        # mutmut re-tests every mutant it is given by name, so pass only those wanted.
        wanted = {None} if args.resume else {None, "survived", "no tests", "suspicious"}
        names = [
            name
            for codes in results(files).values()
            for name, code in codes.items()
            if (code is None if args.resume else verdict(code) in wanted) and (not patterns or name.startswith(tuple(patterns)))
        ]
        if not names and not MUTANTS.exists():
            names = globs
        elif not names:
            print("mutation: nothing left to test")
    elif MUTANTS.exists():
        shutil.rmtree(MUTANTS)
    if args.report:
        names = []

    env = {k: v for k, v in os.environ.items() if k != "KEYRELEASE_TEST_POSTGRES_URL"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    started = time.monotonic()
    if args.report:
        pass
    elif names or not (args.resume or args.retest):
        shown = " ".join(names) if len(names) < 12 else f"<{len(names)} mutants>"
        print(f"mutation: mutmut run --max-children {args.jobs} {shown}", flush=True)
        run = subprocess.run([str(BIN / "mutmut"), "run", "--max-children", str(args.jobs), *names], cwd=ROOT, env=env)
        if run.returncode != 0:
            print(f"mutation: mutmut run failed (exit {run.returncode}); see its output above", file=sys.stderr)
            return run.returncode
    elapsed = time.monotonic() - started

    by_file = results(files)
    equivalents = documented_equivalents()
    totals: Counter[str] = Counter()
    survivors: list[str] = []
    print()
    print(f"{'module':42} {'mutants':>7} {'killed':>7} {'timeout':>7} {'survived':>8} {'other':>6} {'unrun':>6} {'score':>7}")
    for path, codes in by_file.items():
        codes = {name: code for name, code in codes.items() if not patterns or name.startswith(tuple(patterns))}
        if not codes:
            continue
        counts = Counter(verdict(code) for code in codes.values())
        totals.update(counts)
        survivors += sorted(name for name, code in codes.items() if verdict(code) not in ("killed", "timeout", "not checked"))
        print(row(module_of(path), counts))
    if not sum(totals.values()):
        print("mutation: no mutants found", file=sys.stderr)
        return 1
    print(row("TOTAL", totals))
    total = sum(totals.values()) - totals["not checked"]
    score = 100 * (totals["killed"] + totals["timeout"]) / max(total, 1)
    other = total - totals["killed"] - totals["timeout"] - totals["survived"]

    if survivors:
        print(f"\nNot killed ({len(survivors)}; '=' marks those docs/testing.md explains as equivalent):")
        for name in survivors:
            print(f"  {'=' if name in equivalents else '!'} {name}")
            if args.show:
                subprocess.run([str(BIN / "mutmut"), "show", name], cwd=ROOT, env=env)
    unexplained = [name for name in survivors if name not in equivalents]
    version = subprocess.run([str(BIN / "mutmut"), "--version"], capture_output=True, text=True).stdout.strip()
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "tool": version,
        "modules": [module_of(f) for f in by_file],
        "mutants": total,
        "not_run": totals["not checked"],
        "killed": totals["killed"],
        "timeout": totals["timeout"],
        "survived": totals["survived"],
        "other": other,
        "score": round(score, 1),
        "seconds": round(elapsed),
        "survivors": survivors,
    }
    (MUTANTS / "score.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{version}: {total} mutants tested, {totals['killed']} killed, {totals['timeout']} timed out, "
          f"{totals['survived']} survived, {other} other; took {elapsed / 60:.1f} min")
    print(f"Mutation score: {score:.1f}% (killed + timed out / mutants tested); minimum {minimum:.0f}%")
    if totals["not checked"]:
        print(f"INCOMPLETE: {totals['not checked']} mutants not run yet; `make mutation MUTATION_ARGS=--resume` goes on")
        return 1
    if unexplained:
        print(f"{len(unexplained)} survivor(s) neither killed nor explained in docs/testing.md: "
              "`.venv/bin/mutmut show NAME` shows one")
    return 0 if score >= minimum else 1


if __name__ == "__main__":
    sys.exit(main())
