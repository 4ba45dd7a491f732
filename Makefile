# Quick start:  make demo   (set up the runtime dependencies, then train + evaluate + save on the bundled digits)
#               make test   (set up the dev extra too, then run the test suite)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
# requirements/*.txt are locked, with hashes, for this Python; another one installs from pyproject.toml's ranges.
LOCK_PYTHON := 3.11

.PHONY: setup setup-dev demo test test-fast audit bench bench-engine lock clean

# install(LOCK, EXTRA): the hash-locked set requirements/LOCK.txt, then lstmkit itself, editable and without
# dependencies (they are all in the lock; pip check proves it). torch is already there: tools/install_torch.py
# installs the CPU-only build on a machine without an NVIDIA GPU, and it stays out of the locks.
define install
	@if [ "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$(LOCK_PYTHON)" ]; then \
	    echo "+ pip install --require-hashes --no-deps -r requirements/$(1).txt"; \
	    $(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/$(1).txt && \
	    $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . && \
	    $(BIN)/python -m pip check; \
	else \
	    echo "note: requirements/$(1).txt is locked for Python $(LOCK_PYTHON); installing from pyproject.toml's ranges"; \
	    $(BIN)/python -m pip install --quiet -e ".$(2)"; \
	fi
endef

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: $(BIN)/python pyproject.toml requirements/runtime.txt tools/install_torch.py
	$(BIN)/python tools/install_torch.py $(BIN)/python "$(TORCH_SPEC)"
	$(call install,runtime,)
	touch $@

$(VENV)/.dev-installed: $(VENV)/.runtime-installed requirements/dev.txt
	$(call install,dev,[dev])
	touch $@

setup: $(VENV)/.runtime-installed

setup-dev: $(VENV)/.dev-installed

demo: setup
	rm -rf runs/demo
	$(BIN)/lstmkit train configs/digits.toml --out runs/demo
	$(BIN)/lstmkit predict runs/demo/model examples/digits_sample.csv

test: setup-dev
	$(BIN)/python -m pytest -q --durations=25

test-fast: setup-dev
	$(BIN)/python -m pytest -q -m "not slow"

# Known-vulnerable packages in the installed environment (lstmkit itself, editable, is skipped). Needs the
# vulnerability service of the package index; a package it cannot look up is listed as skipped, not as safe.
audit: setup-dev
	$(BIN)/python tools/audit.py

bench: setup
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/fashion_epoch.py --rounds 3

bench-engine: setup
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/engine.py

# Regenerate the locks after changing the dependencies in pyproject.toml (needs pip-tools: pip install pip-tools).
# dev.txt is compiled first; runtime.txt starts from its pins, so the two agree on every package they share.
LOCK_ARGS := -c requirements/torch-cpu.txt --unsafe-package torch --generate-hashes --strip-extras \
             --no-emit-index-url --no-emit-find-links
lock:
	rm -f requirements/dev.txt
	pip-compile -q pyproject.toml --extra dev -o requirements/dev.txt $(LOCK_ARGS)
	cp requirements/dev.txt requirements/runtime.txt
	pip-compile -q pyproject.toml -o requirements/runtime.txt $(LOCK_ARGS)

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
