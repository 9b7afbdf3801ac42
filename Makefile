# The two commands a newcomer needs: `make run` and `make test`. Everything else follows.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint lock schema migrations graphiql mutation bench bench-smoke bench-instructions clean

$(STAMP): pyproject.toml requirements.lock examples/keyrelease-webhook/pyproject.toml tests/keyrelease-memory/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "keyrelease needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	$(BIN)/python -m pip install --quiet -c requirements.lock -e examples/keyrelease-webhook
	$(BIN)/python -m pip install --quiet -c requirements.lock -e tests/keyrelease-memory
	@touch $(STAMP)

install: $(STAMP)

## Start the service on SQLite with console mail (http://127.0.0.1:8000/graphql);
## `make run PORT=18080 HOST=0.0.0.0` for another address.
HOST ?= 127.0.0.1
PORT ?= 8000
run: install
	$(BIN)/keyrelease serve --host $(HOST) --port $(PORT)

## Run the static checks, then the whole test suite.
test: install lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Static checks: ruff and mypy must pass; the locked dependencies (requirements.lock) are
## audited for known vulnerabilities (.ci/audit_lock.py: fails on one, warns on what it could not
## audit, e.g. offline, so offline work goes on).
lint: install
	$(BIN)/ruff check src plugins
	$(BIN)/mypy src plugins
	$(BIN)/python .ci/audit_lock.py requirements.lock

## Re-resolve requirements.lock from pyproject.toml (then `make install` takes the new pins).
lock: install
	$(BIN)/python -m pip install --quiet pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --extra test --extra bench --extra mutation --strip-extras --no-emit-index-url \
	    --no-emit-find-links --output-file requirements.lock pyproject.toml

## Write schema.graphql from the code (a test fails when they differ).
schema: install
	$(BIN)/python -m keyrelease.graphql.export > schema.graphql

## Rebuild GraphiQL (src/keyrelease/web/static/graphiql/) from npm, as pinned in
## src/keyrelease/web/graphiql/package-lock.json; needs node and npm. Commit what it writes (a test checks it).
graphiql:
	cd src/keyrelease/web/graphiql && npm ci --ignore-scripts --no-audit --no-fund && node build.mjs

## Generate a migration after changing src/keyrelease/models.py.
migrations: install
	$(BIN)/tortoise -c keyrelease.db.TORTOISE_ORM makemigrations

## Mutation score of the security core (docs/testing.md; not part of `make test`): mutmut over
## the modules that decide who gets a secret, against the fast SQLite tests; prints the score
## and every surviving mutant, fails below MUTATION_MIN (90). MUTATION_ARGS="keys ratelimit"
## runs only those modules, "--resume" continues an interrupted run, "--retest" re-tests the
## survivors after a new test. Runs niced; MUTATION_JOBS=2 workers.
mutation: install
	$(BIN)/python -c 'import mutmut' 2>/dev/null || $(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,mutation]'
	env -u KEYRELEASE_TEST_POSTGRES_URL nice -n 10 $(BIN)/python .ci/mutation.py $(MUTATION_ARGS)

# $(call apt_tool,TOOL,TARGET): the Debian package TOOL installed when missing (as root with
# apt-get), else TARGET stops saying how to install it.
apt_tool = @command -v $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq $(1); \
	  else \
	    echo "$(2) needs $(1): sudo apt-get install -y $(1) (Debian/Ubuntu)" >&2; exit 1; \
	  fi; }

## Benchmark harness (bench/run.py): real service vs bare Starlette, results in bench/results/latest.
## BENCH_SMOKE=1 for a quick run; BENCH_LARGE_KEYS=N for another size than 1,000,000 keys.
bench: install
	$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,bench]'
	$(call apt_tool,wrk,bench)
	$(BIN)/python bench/run.py

## A few seconds of every benchmark stage: proves the harness runs (no meaningful numbers).
bench-smoke:
	BENCH_SMOKE=1 $(MAKE) bench

## Instructions per request under callgrind (bench/instructions.py): the load-independent
## measure, for a busy machine. TARGETS="token floor" for some of them; needs valgrind.
bench-instructions: install
	$(call apt_tool,valgrind,bench-instructions)
	$(BIN)/python bench/instructions.py $(TARGETS)

clean:
	rm -rf $(VENV) var .pytest_cache mutants
