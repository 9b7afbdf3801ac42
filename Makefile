# The two commands a newcomer needs: `make run` and `make test`. Everything else follows.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test schema migrations bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "keyrelease needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

## Start the service on SQLite with console mail (http://127.0.0.1:8000/graphql).
run: install
	$(BIN)/keyrelease serve

## Run the whole test suite.
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Write schema.graphql from the code (a test fails when they differ).
schema: install
	$(BIN)/python -m keyrelease.graphql.export > schema.graphql

## Generate a migration after changing src/keyrelease/models.py.
migrations: install
	$(BIN)/tortoise -c keyrelease.db.TORTOISE_ORM makemigrations

clean:
	rm -rf $(VENV) var .pytest_cache
