# The two commands a newcomer needs: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install system translations

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

system:
	bash scripts/ensure-system.sh

demo: $(STAMP)
	$(BIN)/orderloom demo

test: $(STAMP) system
	$(BIN)/pytest -q -n auto --maxprocesses=4

translations: $(STAMP)
	bash scripts/translations.sh
