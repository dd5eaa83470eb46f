# Two commands do everything on a fresh machine (Python 3.11+ and make):
#   make book   -- set up .venv, execute every chapter, build the HTML book into _build/html
#   make test   -- set up .venv, unit + statistical tests, and every chapter executed at CI scale
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pdlt-installed
PYTEST_ARGS ?=
# Paths in recipes are relative to the checkout or quoted, so that every target works from a path
# with spaces. Only the book build writes the book's results (_build/results); see pdlt.book.
# the checkout's own library first (so any worktree or copy tests its own lib/)
export PYTHONPATH := $(CURDIR)/lib$(if $(PYTHONPATH),:$(PYTHONPATH))
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/_build/.jax_cache
export PDLT_PROGRESS ?= 1

.PHONY: setup book html serve test test-fast test-slow clean lab

$(STAMP): requirements.txt pyproject.toml
	@test -x "$(PY)" || python3 -m venv "$(VENV)"
	"$(PY)" -m pip install -q --disable-pip-version-check -U pip
	"$(PY)" -m pip install -q --disable-pip-version-check -r requirements.txt
	"$(PY)" -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

# Re-execute everything when lib/ or a dependency changes: jupyter-cache keys only on notebook
# code, so the cache is dropped whenever the build hash (library hash and the versions of Python,
# JAX, jaxlib, NumPy, SciPy; pdlt._provenance.build_hash) differs from the one it was built with.
html: setup
	@mkdir -p _build; h=$$("$(PY)" -c "import pdlt._provenance as p; print(p.build_hash())"); \
	if [ "$$(cat _build/.lib_hash 2>/dev/null)" != "$$h" ]; then \
	  echo "build hash $$h (library and dependency versions) differs from the cached build: re-executing every chapter"; \
	  rm -rf _build/.jupyter_cache _build/results _build/jupyter_execute; fi; \
	echo "$$h" > _build/.lib_hash
	PDLT_RESULTS_DIR="$(CURDIR)/_build/results" "$(VENV)/bin/jupyter-book" build . -W -n --keep-going --all

book: html
	@echo ""
	@echo "The book is built: open $(CURDIR)/_build/html/index.html"
	@echo "or serve it with:  $(PY) -m http.server -d _build/html 8000   (then http://localhost:8000)"

serve: html
	"$(PY)" -m http.server -d _build/html 8000

# Tests run on TEST_WORKERS processes (pytest-xdist, whole files per worker): tests/test_book.py builds
# the book on one worker while the others run the unit and statistical tests.
TEST_WORKERS ?= 2
test: setup
	"$(PY)" -m pytest -m "not slow and not gpu" -n $(TEST_WORKERS) --dist loadfile --durations=20 $(PYTEST_ARGS)

test-fast: setup
	"$(PY)" -m pytest -m "not slow and not gpu and not book" $(PYTEST_ARGS)

test-slow: setup
	"$(PY)" -m pytest -m "slow and not gpu" $(PYTEST_ARGS)

clean:
	rm -rf _build runs

# JupyterLab on the project's environment: chapters (book/*.md) open as notebooks through Jupytext
# (double-click; Jupytext's contents manager also serves them as notebooks) and saving writes the
# .md back, never a paired .ipynb. pdlt comes from this checkout's lib/ (PYTHONPATH above, and the
# editable install). Runs started in Lab write their results to runs/lab, not into the book's build.
# Lab's settings/workspaces live in _build/lab (the user's ~/.jupyter is left alone).
# Extra options: make lab LAB_ARGS="--port=8890 --no-browser"
LAB_ARGS ?=
LAB_DIR := _build/lab
LAB_VIEWERS := $(LAB_DIR)/user-settings/@jupyterlab/docmanager-extension/plugin.jupyterlab-settings
lab: setup
	@mkdir -p "$(dir $(LAB_VIEWERS))" "$(LAB_DIR)/workspaces" runs/lab
	@test -f "$(LAB_VIEWERS)" || echo '{"defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}}' > "$(LAB_VIEWERS)"
	JUPYTERLAB_SETTINGS_DIR="$(CURDIR)/$(LAB_DIR)/user-settings" JUPYTERLAB_WORKSPACES_DIR="$(CURDIR)/$(LAB_DIR)/workspaces" \
	PDLT_RESULTS_DIR="$(CURDIR)/runs/lab" \
	"$(VENV)/bin/jupyter" lab "--ServerApp.root_dir=$(CURDIR)" --ServerApp.default_url=/lab/tree/book \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# ---- performance (issue 8): benchmarks, the neural-tangents peer environment, the persistent cache ----
# JAX reads JAX_COMPILATION_CACHE_DIR itself but by default caches only programs that took > 1 s to
# compile (almost none on CPU); cache every program so repeated builds and test runs skip compilation.
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS ?= 0
PEER_VENV ?= .venv-peer
BENCH_ARGS ?=

.PHONY: bench bench-peer bench-stream

bench: setup
	"$(PY)" bench/run.py $(BENCH_ARGS)

$(PEER_VENV)/.installed: bench/requirements-peer.txt
	@test -x "$(PEER_VENV)/bin/python" || python3 -m venv "$(PEER_VENV)"
	"$(PEER_VENV)/bin/pip" install -q --disable-pip-version-check -r bench/requirements-peer.txt
	"$(PEER_VENV)/bin/pip" install -q --disable-pip-version-check --no-deps tf2jax==0.3.6 neural-tangents==0.6.5
	@touch $@

bench-peer: $(PEER_VENV)/.installed
	PYTHONPATH= "$(PEER_VENV)/bin/python" bench/peer.py

# 10^6 networks of width 256 and depth 16, streamed in chunks (peak memory reported; long on CPU)
bench-stream: setup
	"$(PY)" bench/run.py --skip w1 stat w2 w3 w4 scaling --stream 1000000 --out bench/results/stream-1e6.json

# ---- the whole book as one PDF: every page of _toc.yml printed from the built HTML by headless
# Chromium (math rendered by the offline MathJax, figures as built), joined with pdfunite.
# Needs the Debian packages chromium and poppler-utils (apt-get install chromium poppler-utils).
.PHONY: pdf
PDF ?= _build/pdf/book.pdf
pdf: html
	"$(PY)" -m pdlt.pdf --root . --html _build/html --out "$(PDF)"
	@echo "The book as one PDF: $(CURDIR)/$(PDF)"

# ---- device check: benchmarks + two chapters at full scale in <= 8 min on one GPU (GPU_CHECK_SCALE=ci: CPU smoke)
.PHONY: gpu-check
gpu-check:
	"$(PY)" bench/gpu_check.py $(GPU_CHECK_ARGS)
