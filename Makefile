# The commands of the README:
#   make course   set up, then run the whole course on data_samples/ (executed notebooks in runs/)
#   make test     set up, then run the test suite (pytest + nbval over every notebook)
#   make labs     set up, then build the labs: student notebooks and autograders in $(LABS)
#
# Set-up is a virtual environment in .venv with the pinned versions of constraints.txt.
# TORCH picks the PyTorch build: the default is the CPU build 2.13.0; on a GPU machine use e.g.
#   make test TORCH="torch==2.13.0" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
RUN ?= runs/latest
LABS ?= runs/labs
BIN := $(VENV)/bin
# constraints.txt pins the versions CI tests (Python 3.11); other Pythons resolve freely
CONSTRAINTS ?= $(shell $(PYTHON) -c 'import sys; print("-c constraints.txt" if sys.version_info[:2] == (3, 11) else "")')

.PHONY: setup course test labs samples checkpoints clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_INDEX) "$(TORCH)"
	$(BIN)/python -m pip install -q $(CONSTRAINTS) -e ".[course,test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $@

course: setup
	$(BIN)/coursekit course run --out $(RUN)

test: setup
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest

labs: setup
	$(BIN)/coursekit course labs --out $(LABS)

samples: setup
	$(BIN)/coursekit samples generate --out data_samples

checkpoints: setup
	$(BIN)/python benchmarks/talker_tiny.py --save coursekit/assets/tiny

clean-venv:
	rm -rf $(VENV)
