# Two commands for a fresh clone (Python >= 3.10 and pip are all it needs):
#   make train   install the package into .venv and train with the default config
#   make test    install the package with its dev extra into .venv and run the whole test suite
# Extra arguments: make train ARGS="model.latent_dim=128"   make test PYTEST_ARGS="-k episodes"
# CPU-only machine: make train TORCH_INDEX=https://download.pytorch.org/whl/cpu installs the CPU
# build of torch and torchvision (one pip call, so a matching pair) instead of the CUDA build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=
TORCH_INDEX ?=

.PHONY: train test install install-dev lint clean-venv

# A stamp per extra: reinstall only when pyproject.toml changes. torch and torchvision are
# resolved together in one pip call, so they always come as a matching pair.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch torchvision --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

train: install
	$(BIN)/python scripts/train.py $(ARGS)

test: install-dev
	$(BIN)/python -m pytest -n auto --dist loadscope $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check src scripts tests benchmarks

clean-venv:
	rm -rf $(VENV)
