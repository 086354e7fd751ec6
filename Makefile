# The two commands of the README, from nothing to a running demo / a passing suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mammolens-installed

.PHONY: demo test bench clean-venv bundle-healthygan gpu-bundles mias-healthygan

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

# The bundled HealthyGAN model, from nothing: phantom data (the training images carry no foreign
# object), the CPU preset (128 px, widths 16 / 32, 2000 critic iterations; about 30-40 min on 2
# cores), export with calibration on the val split, and the evaluation card on the test split
# (written into the bundle). See README, "The shipped HealthyGAN bundle".
HG_DATA := build/phantom-hg
HG_RUN  := build/run-hg-phantom
HG_BUNDLE := resources/models/healthygan-phantom

bundle-healthygan: $(STAMP)
	$(VENV)/bin/mammolens phantom --out $(HG_DATA) --n 250 --lesion-fraction 0.75 --lesion-views breast \
		--shape 512x416 --spacing 0.4 --splits 0.6,0.2,0.2 --seed 2
	$(VENV)/bin/mammolens train healthygan --preset cpu --labels $(HG_DATA)/labels.csv --out $(HG_RUN)
	$(VENV)/bin/mammolens export $(HG_RUN) --out $(HG_BUNDLE) --name healthygan-phantom
	$(VENV)/bin/mammolens evaluate --method healthygan --labels $(HG_DATA)/labels.csv --split test --model $(HG_BUNDLE)

# Every method's GPU preset within minutes each (the command a GPU lease runs; resumable).
gpu-bundles: $(STAMP)
	$(VENV)/bin/mammolens train-all --out build/gpu --preset gpu --minutes 4

# The same method on the mini-MIAS films in ../shared/data/mias (not shipped: research licence).
MIAS_RUN := build/run-hg-mias
mias-healthygan: $(STAMP)
	$(VENV)/bin/mammolens dataset import mias ../shared/data/mias --out build/mias/labels.csv
	$(VENV)/bin/mammolens train healthygan --preset cpu --labels build/mias/labels.csv --out $(MIAS_RUN) --threads 1
	$(VENV)/bin/mammolens export $(MIAS_RUN) --out build/models/healthygan-mias --name healthygan-mias
	$(VENV)/bin/mammolens evaluate --method healthygan --labels build/mias/labels.csv --split test \
		--model build/models/healthygan-mias
