# Two commands for a new user:  `make run` (the main job) and `make test`.
# Both create .venv on first use and reuse it afterwards.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
AGENT   ?= ppo
ENV     ?= Pong
ARGS    ?=
# The main job's settings: PPO's fast preset with sticky actions off (docs/benchmarks.md). `make train`
# runs AGENT on ENV with its default preset; ARGS adds options to either.
RUN_ARGS ?= --preset fast --sticky 0

.PHONY: run train supervised test test-ray sweep lint benchmark clean-venv

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# Without an NVIDIA GPU, take the small CPU build of torch (pip finds it on local disk where it
	@# lies there); with one, let pip pick its default CUDA build through the project's dependencies.
	@if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		$(BIN)/pip install --quiet "torch==2.13.0" 2>/dev/null || true; fi
	$(BIN)/pip install --quiet -e ".[dev]" --config-settings editable_mode=compat
	touch $(STAMP)

# The main job: PPO learns Pong from pixels, to +20 within its 8M frames.
run: $(STAMP)
	$(BIN)/python scripts/train.py $(AGENT) --env $(ENV) $(RUN_ARGS) $(ARGS)

train: $(STAMP)
	$(BIN)/python scripts/train.py $(AGENT) --env $(ENV) $(ARGS)

supervised: $(STAMP)
	$(BIN)/python scripts/supervised.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

# Sweeps on Ray (scripts/sweep.py) need the optional ray extra; these targets add it to .venv.
$(VENV)/.installed-ray: $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,ray]" --config-settings editable_mode=compat
	touch $@

test-ray: $(VENV)/.installed-ray
	$(BIN)/python -m pytest -q -m ray $(ARGS)

sweep: $(VENV)/.installed-ray
	$(BIN)/python scripts/sweep.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

benchmark: $(STAMP)
	$(BIN)/python scripts/benchmark.py $(or $(ARGS),envs)

clean-venv:
	rm -rf $(VENV)
