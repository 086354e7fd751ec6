# The two commands of the README, from nothing to a running demo / a passing suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mammolens-installed
# Which torch build the venv gets (training only; the viewer runs models through ONNX Runtime):
#   TORCH=default  `pip install torch==2.13.0` as pip resolves it here. Where a local CPU wheel is
#                  offered (a find-links folder, as on the project's CI machine) that is the CPU build;
#                  on an ordinary Linux x86-64 box it is PyPI's CUDA build with its nvidia-* packages
#                  (several GB), what GPU users want for training.
#   TORCH=cpu      the CPU build from PyTorch's own index (no CUDA packages): `make TORCH=cpu demo`.
# Changing it after the venv exists: `make clean-venv` first.
TORCH ?= default
TORCH_INDEX_default :=
TORCH_INDEX_cpu := --index-url https://download.pytorch.org/whl/cpu
ifeq ($(filter $(TORCH),default cpu),)
$(error TORCH is default or cpu, not "$(TORCH)")
endif
DEMO_OUT ?= build/demo

.PHONY: demo test debian-test-packages bench fuzz clean-venv bundle-healthygan gpu-bundles mias-healthygan bundle-inpainting bundle-synthesis \
	mias-synthesis mias-inpainting bundle-projection

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch first (TORCH=default or cpu, see above): the `train` extra's torch range is then already met
	$(PY) -m pip install "torch==2.13.0" $(TORCH_INDEX_$(TORCH))
	$(PY) -m pip install -e ".[train,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mammolens demo --out $(DEMO_OUT)

# Debian packages the DICOM / PACS tests use: dciodvfy (dicom3tools) and a real Orthanc with its
# DICOMweb plugin. Installed first when missing and apt-get is usable (as root; the packaged Orthanc
# service is kept from starting: the tests run their own); when that fails, those tests skip with a
# sentence naming the packages.
DEBIAN_TEST_PACKAGES := dicom3tools orthanc orthanc-dicomweb

debian-test-packages:
	@if command -v dciodvfy >/dev/null 2>&1 && command -v Orthanc >/dev/null 2>&1 \
		&& [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing $(DEBIAN_TEST_PACKAGES) for the DICOM / PACS tests"; \
		rcd=/usr/sbin/policy-rc.d; made=; \
		if [ ! -e $$rcd ]; then printf '#!/bin/sh\nexit 101\n' > $$rcd && chmod +x $$rcd && made=1; fi; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_TEST_PACKAGES)) \
			>/dev/null 2>&1 || echo "could not install $(DEBIAN_TEST_PACKAGES): the tests that need them skip"; \
		if [ -n "$$made" ]; then rm -f $$rcd; fi; \
	else echo "$(DEBIAN_TEST_PACKAGES) missing and apt-get not usable: the tests that need them skip"; fi

# the benchmarks run here too, at a smoke size (tests/benchmarks/sizes.py): they cannot rot
test: $(STAMP) debian-test-packages
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -n 2 tests

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen MAMMOLENS_BENCH=full $(PY) -m pytest -q -s -p no:xdist tests/benchmarks

# 10,000 mutated DICOM files opened as the viewer opens them (child processes, 10 s and 4 GiB per
# case); prints the outcome table of README's "Hostile input". FUZZ_ARGS="--cases 500" for a short run.
FUZZ_ARGS ?= --cases 10000 --seed 11
fuzz: $(STAMP)
	nice -n 10 $(PY) -m tests.fuzz $(FUZZ_ARGS) --report build/fuzz.jsonl

clean-venv:
	rm -rf $(VENV)

# The three detection bundles are trained and measured on one phantom where the supervised ceiling
# reaches 0.75 (the card rule): 1 000 patients, lesions at 12x the realistic contrast, no
# calcification clusters (invisible at the CPU presets' 1.6 mm per model pixel, for every reader).
# Each card states that setting; its contrast-detail curve (contrast 0-16, same seeds) reports the
# realistic lesions (1x) beside it. About 10 min to write the phantom. See README, "The shipped
# detection bundles".
DET_DATA  := build/phantom-c12
DET_SWEEP := --sweep contrast=0,1,2,4,8,12,16 --sweep-patients 60 --ceiling-epochs 15

$(DET_DATA)/labels.csv: | $(STAMP)
	$(VENV)/bin/mammolens phantom --out $(DET_DATA) --n 1000 --lesion-fraction 0.75 --lesion-views breast \
		--classes mass,architectural_distortion,asymmetry --shape 512x416 --spacing 0.4 --splits 0.6,0.2,0.2 \
		--seed 22 --lesion-contrast 12

# The realistic-contrast phantom the synthesis bundle is trained on.
HG_DATA := build/phantom-hg

# HealthyGAN: the CPU preset (128 px, widths 16 / 32) on one thread for at most 50 min (the three
# bundles were trained side by side on the 2-core machine), export calibrated on the val split, the
# card on the test split (ceiling 10 epochs), then the contrast-detail curve.
HG_RUN    := build/run-hg-c12
HG_BUNDLE := resources/models/healthygan-phantom

bundle-healthygan: $(DET_DATA)/labels.csv
	$(VENV)/bin/mammolens train healthygan --preset cpu --labels $(DET_DATA)/labels.csv --out $(HG_RUN) \
		--threads 1 --time-budget-s 3000
	$(VENV)/bin/mammolens export $(HG_RUN) --out $(HG_BUNDLE) --name healthygan-phantom
	$(VENV)/bin/mammolens evaluate --method healthygan --labels $(DET_DATA)/labels.csv --split test \
		--model $(HG_BUNDLE) --ceiling-epochs 10
	$(VENV)/bin/mammolens evaluate --method healthygan --model $(HG_BUNDLE) $(DET_SWEEP) --sweep-out build/cd-hg

# Inpainting (paper 002): trained on the phantom's normal training images, CPU preset (256 px, FOV
# 64 / hole 32, widths 8, one thread; 5 000 iterations), export calibrated at the default stride 8
# on 40 normal + 40 lesion val images, the card at stride 8 on 40 + 40 test images (thresholds
# from 20 + 20 val images), the contrast-detail curve at stride 16 (4x cheaper).
INP_RUN    := build/run-inp-c12
INP_BUNDLE := resources/models/inpainting-phantom
INP_EVAL   := build/eval-c12-inp

bundle-inpainting: $(DET_DATA)/labels.csv
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens train inpainting --preset cpu --labels $(DET_DATA)/labels.csv \
		--out $(INP_RUN) --threads 1 --time-budget-s 3000
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens export $(INP_RUN) --out $(INP_BUNDLE) --name inpainting-phantom \
		--calibration-parameter stride=8 --calibration-images 40
	$(VENV)/bin/mammolens dataset subset $(DET_DATA)/labels.csv --out $(INP_EVAL)/labels.csv --per-class val=20,test=40
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens evaluate --method inpainting --labels $(INP_EVAL)/labels.csv --split test \
		--model $(INP_BUNDLE) --stride 8 --ceiling-epochs 10
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens evaluate --method inpainting --model $(INP_BUNDLE) --stride 16 $(DET_SWEEP) \
		--sweep-out build/cd-inp

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

# The bundled ROI-synthesis model (paper 004), from nothing: the HealthyGAN phantom (its lesion boxes are
# the ROIs; reused when build/phantom-hg exists), the CPU preset (64 px, one thread, checkpoints every 250
# iterations: rerun to resume), export, the quality card on the test split and the augmentation experiment
# (both written into the bundle's card). See README, "ROI synthesis".
SYN_RUN := build/run-syn-phantom
SYN_BUNDLE := resources/models/synthesis-phantom

bundle-synthesis: $(STAMP)
	test -f $(HG_DATA)/labels.csv || $(VENV)/bin/mammolens phantom --out $(HG_DATA) --n 250 --lesion-fraction 0.75 \
		--lesion-views breast --shape 512x416 --spacing 0.4 --splits 0.6,0.2,0.2 --seed 2
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens train synthesis --preset cpu --labels $(HG_DATA)/labels.csv --out $(SYN_RUN)
	$(VENV)/bin/mammolens export $(SYN_RUN) --out $(SYN_BUNDLE) --name synthesis-phantom
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens evaluate --method synthesis --model $(SYN_BUNDLE) \
		--labels $(HG_DATA)/labels.csv --split test --device cpu --csv build/synthesis-phantom-quality.csv
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens augmentation --model $(SYN_BUNDLE) --labels $(HG_DATA)/labels.csv \
		--name phantom --device cpu

# The same on the mini-MIAS films (not shipped: research licence); the held-out set is val + test
# (split by patient), as the test split alone holds 2-6 lesions a class.
mias-synthesis: $(STAMP)
	$(VENV)/bin/mammolens dataset import mias ../shared/data/mias --out build/mias/labels.csv
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens train synthesis --preset cpu --labels build/mias/labels.csv \
		--out build/run-syn-mias --time-budget-s 2400
	$(VENV)/bin/mammolens export build/run-syn-mias --out build/models/synthesis-mias --name synthesis-mias
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens augmentation --model build/models/synthesis-mias \
		--labels build/mias/labels.csv --name mini-MIAS --test-splits val,test --device cpu

# Inpainting on the mini-MIAS films (not shipped: research licence): normal films of the train
# split only, the card on held-out normal and abnormal films (stride 16, as the shipped bundle's).
mias-inpainting: $(STAMP)
	$(VENV)/bin/mammolens dataset import mias ../shared/data/mias --out build/mias/labels.csv
	$(VENV)/bin/mammolens train inpainting --preset cpu --labels build/mias/labels.csv \
		--out build/run-inp-mias --threads 2 --time-budget-s 1200
	$(VENV)/bin/mammolens export build/run-inp-mias --out build/models/inpainting-mias --name inpainting-mias \
		--calibration-parameter stride=16
	$(VENV)/bin/mammolens evaluate --method inpainting --labels build/mias/labels.csv --split test \
		--model build/models/inpainting-mias --stride 16 --no-ceiling --json build/inp-mias-card.json

# StyleGAN2 projection (paper 000): trained on the phantom's normal training images, CPU preset
# (128 px, channel base 2048 / max 64, z = w = 128, 2-layer mapping, batch 8, one thread) for at
# most 50 min per run (rerun to resume; the shipped run resumed the 800-iteration run of the
# realistic phantom, whose normal images come from the same simulator: lesion contrast changes
# lesions only), export calibrated at 8 projector steps on 4 normal + 4 lesion val images, the card
# at 8 steps and 16 seeds (the 1- and 9-seed rows of Table 1 too) on 20 + 20 test images
# (thresholds from 8 + 8 val), the contrast-detail curve with 1 seed at 8 steps. A projection step
# costs 0.1-0.7 s per seed on the shared 2-core machine: the reference 1 000 steps would take days.
PROJ_RUN    := build/run-proj-c12
PROJ_BUNDLE := resources/models/projection-phantom
PROJ_EVAL   := build/eval-c12-proj
PROJ_STEPS  ?= 8

bundle-projection: $(DET_DATA)/labels.csv
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens train projection --preset cpu --labels $(DET_DATA)/labels.csv \
		--out $(PROJ_RUN) --threads 1 --time-budget-s 3000
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens export $(PROJ_RUN) --out $(PROJ_BUNDLE) --name projection-phantom \
		--calibration-parameter steps=8 --calibration-images 4
	$(VENV)/bin/mammolens dataset subset $(DET_DATA)/labels.csv --out $(PROJ_EVAL)/labels.csv --per-class val=8,test=20
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens evaluate --method projection --labels $(PROJ_EVAL)/labels.csv --split test \
		--model $(PROJ_BUNDLE) --seeds 16 --steps $(PROJ_STEPS) --object-patients 2 --ceiling-epochs 10
	OMP_NUM_THREADS=1 $(VENV)/bin/mammolens evaluate --method projection --model $(PROJ_BUNDLE) --seeds 1 \
		--steps $(PROJ_STEPS) $(DET_SWEEP) --sweep-out build/cd-proj
