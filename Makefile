# The two commands of the README, from nothing to a running demo / a passing suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mammolens-installed

.PHONY: demo test bench screenshots clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# CPU build of torch first: the `train` extra's torch range is then already met
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[train,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mammolens demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -n 2 tests --ignore=tests/benchmarks

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -s -p no:xdist tests/benchmarks

clean-venv:
	rm -rf $(VENV)
