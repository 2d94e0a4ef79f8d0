# Two commands for a newcomer (see README):
#   make course   # install, then run the whole course on the embedded phantom data
#   make test     # install, then lint + notebook freshness + the whole test suite
#
# VENV can point elsewhere (CI caches one per requirements.txt hash).
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= smoke
DATA ?= phantom
OUT ?= runs/course

.PHONY: install course test lint

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
