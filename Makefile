# One command to serve, one to test; both create the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/CK+48
FERPLUS ?= ../shared/data/FERPlus

.PHONY: install run test lint train-paper train-default train-ckplus clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## Start the service on the model shipped in models/ (http://127.0.0.1:8000/docs).
run: install
	$(BIN)/python -m app

## Lint and run the whole test suite.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## The paper's protocol: paper-v1, random 67/33 split, 20 epochs, batch 64 (~30 min on 2 cores).
train-paper: install
	$(BIN)/python -m training --data $(DATA) --arch paper-v1 --split random --epochs 20 --out runs/paper

## The shipped models (models/emotion_cnn.h5, 7 emotions, and models/emotion_cnn_neutral.h5, + neutral):
## fer-s2 trained on FER+ (resumable, checkpoints in runs/real), CK+48 10-fold subject CV of the
## fine-tuning step, then the final fine-tune on all of CK+48, calibrated (about an hour on 2 idle cores).
train-default: install
	$(BIN)/python -m training.real_faces base --ferplus $(FERPLUS) --out runs/real --epochs 18
	$(BIN)/python -m training.real_faces cv --ferplus $(FERPLUS) --ckplus $(DATA) --out runs/real
	$(BIN)/python -m training.real_faces final --ferplus $(FERPLUS) --ckplus $(DATA) --out runs/real --models models

## The previous default, CK+48 only: 10-fold subject CV of compact-s-std, then the final model (~35 min).
train-ckplus: install
	$(BIN)/python -m training --data $(DATA) --arch compact-s-std --folds 10 --final --out runs/ckplus --name emotion_cnn

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs
