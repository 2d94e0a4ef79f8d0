# Two commands for a newcomer (see README):
#   make course   # install, then run the whole course on the embedded phantom data
#   make test     # install, then lint + notebook freshness + the whole test suite
#   make colab-check  # install labkit into a venv with Colab's versions, run the labs there
#
# VENV can point elsewhere (CI caches one per requirements.txt hash).
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= smoke
DATA ?= phantom
OUT ?= runs/course

.PHONY: install course test lint colab-check

# Re-install when requirements.txt or pyproject.toml change; always re-point the
# editable labkit install at this checkout (a cached venv may come from another clone).
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

install: $(VENV)/.installed
	$(PY) -m pip install -q --no-deps -e .

course: install
	$(VENV)/bin/labkit course run --data $(DATA) --profile $(PROFILE) --out $(OUT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The whole suite in one pytest run: unit/integration tests plus nbval (lax) over every
# student and solution notebook, smoke profile on phantom data, this environment's kernel.
# Two workers with one BLAS/OpenMP thread each (two cores, no oversubscription);
# --dist loadfile keeps each notebook's cells in order on one kernel.
# pytest exits 5 when it collected no tests: that is a broken suite, not a pass.
test: lint
	$(VENV)/bin/labkit build --check
	LABKIT_PROFILE=smoke MPLBACKEND=Agg OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile \
		--nbval-lax --nbval-current-env tests notebooks solutions; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# Colab's recorded versions (constraints/colab-*.txt names its source and date) in a venv of
# their own, on Colab's Python minor version when this machine has it (`# python: X.Y` in
# the file; .ci/colab_check.py --find-python looks on PATH, then in pyenv, and warns loudly
# when it falls back to python3). Rebuilt only when the file or that Python changes (CI
# caches it like the main one). torch is PyPI's wheel of Colab's version (CUDA 13 build,
# used on CPU here): .ci/colab_check.py says so.
COLAB_CONSTRAINTS ?= constraints/colab-2026-08.txt
COLAB_VENV ?= .venv-colab
COLAB_TOOLS := pytest==9.2.0 pytest-xdist==3.8.0 nbval==0.11.0 ipykernel==7.4.0

# Installs labkit the way a student notebook does on Colab (an uploaded wheel, then the
# git route against a local repository of this checkout) and fails if that changes any
# distribution of the venv; then `labkit info`, the widget and progress-bar tests under
# ipywidgets 7.7.1 and every student notebook under nbval (smoke, phantom data). See
# README, "On Colab".
colab-check:
	@COLAB_PYTHON=$$(python3 .ci/colab_check.py --constraints $(COLAB_CONSTRAINTS) --find-python) || exit 1; \
	STAMP="$$(cat $(COLAB_CONSTRAINTS); echo "# built with $$COLAB_PYTHON")"; \
	if [ "$$STAMP" != "$$(cat $(COLAB_VENV)/constraints.txt 2>/dev/null)" ]; then \
		echo "colab-check: building $(COLAB_VENV) from $(COLAB_CONSTRAINTS) on $$COLAB_PYTHON"; \
		rm -rf $(COLAB_VENV) && $$COLAB_PYTHON -m venv $(COLAB_VENV) && \
		$(COLAB_VENV)/bin/python -m pip install -q --upgrade pip && \
		$(COLAB_VENV)/bin/python -m pip install -q -r $(COLAB_CONSTRAINTS) \
			-c $(COLAB_CONSTRAINTS) $(COLAB_TOOLS) && \
		$(COLAB_VENV)/bin/python .ci/colab_check.py --constraints $(COLAB_CONSTRAINTS) --snapshot && \
		echo "$$STAMP" > $(COLAB_VENV)/constraints.txt || exit 1; \
	fi
	$(COLAB_VENV)/bin/python .ci/colab_check.py --constraints $(COLAB_CONSTRAINTS)
