# `make demo` and `make test` install everything they need into .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install test demo bench clean

install: $(VENV)/.installed

# torch is pinned in setup.cfg (an unpinned one pulls a multi-GB CUDA build); constraints.txt pins
# every other package to the versions the tests ran with.
$(VENV)/.installed: setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[ml,docker,dev]'
	touch $@

test: install
	$(PY) -m pytest -q --durations=10

demo: install
	$(VENV)/bin/codalite --help >/dev/null
	@echo "The demo recipe lands with the recipes issue; see README.md for the tour."

bench: install
	$(PY) bench/bench_engine.py

clean:
	rm -rf $(VENV) build *.egg-info
