# Two commands do all set-up on a fresh machine (Python >= 3.10 with pip):
#   make book   build the executed book into _build/html (offline default model and data)
#   make test   run the whole test suite
# Both create .venv and install reprolab with its book and test extras into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export REPROLAB_DATA ?= $(abspath ../shared/data)
export REPROLAB_OFFLINE ?= 1
# static builds have no widget kernel: no notebook progress bars there
export REPROLAB_PROGRESS ?= off
export REPROLAB_STATIC ?= 1

.PHONY: install test book notebooks clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3"
	touch $@

test: install
	$(PY) -m pytest tests reprolab --doctest-modules

book: install
	$(VENV)/bin/jupyter-book build . --all

# the Colab copies of the chapters (a test fails when one is out of date with its source)
notebooks: install
	$(PY) tools/notebooks.py

clean:
	rm -rf _build
