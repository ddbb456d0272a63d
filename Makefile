# Two commands: `make run` (install + open the app on the demo project) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo-data

.PHONY: run test install install-dev lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[ml]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,ml]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/annotator --db $(DEMO)/demo.db demo --dicom-dir $(DEMO)/dicom --if-missing
	$(BIN)/annotator --db $(DEMO)/demo.db gui

test: install-dev
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check annotator tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy annotator
	$(BIN)/annotator --db "$$(mktemp -d)/lint.db" db check

clean:
	rm -rf $(VENV) $(DEMO) build dist *.egg-info
