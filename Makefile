# Quick start: `make demo` runs the whole pipeline, `make test` runs every check.
# Both create .venv on first use and install ferry with everything it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint docs clean

$(STAMP): pyproject.toml constraints.txt package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,all]"
	@# onnxruntime-web (the web target, the ort-web backend) comes from npm, pinned in package-lock.json.
	@if command -v npm >/dev/null; then npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the web target and the ort-web backend will be skipped"; fi
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ferry demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# Regenerate the CLI reference (docs/reference/cli.md) from the app itself.
docs: $(STAMP)
	$(BIN)/python -m ferry.cli.docs --write docs/reference/cli.md

clean:
	rm -rf $(VENV) ferry-demo .pytest_cache .ruff_cache .mypy_cache
