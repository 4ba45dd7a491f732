# Quick start:  make demo   (set up, then train + evaluate + save on the bundled digits)
#               make test   (set up, then run the test suite)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast audit bench bench-engine clean

$(BIN)/lstmkit: pyproject.toml tools/install_torch.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python tools/install_torch.py $(BIN)/python "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/lstmkit

demo: setup
	rm -rf runs/demo
	$(BIN)/lstmkit train configs/digits.toml --out runs/demo
	$(BIN)/lstmkit predict runs/demo/model examples/digits_sample.npy

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# Known-vulnerable packages in the installed environment (lstmkit itself, editable, is skipped). Needs the
# vulnerability service of the package index; a package it cannot look up is listed as skipped, not as safe.
audit: setup
	$(BIN)/python tools/audit.py

bench: setup
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/fashion_epoch.py --rounds 3

bench-engine: setup
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
