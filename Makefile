# raikit: two entry points that do all set-up on a fresh machine.
#   make demo   create .venv, install everything, run the embedded default audit
#   make test   create .venv if needed, install, run the test suite
#   make test-fast  the same without the slow tests (a couple of minutes; `make test` before a merge)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.raikit-installed

.PHONY: demo test test-fast install clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first, pinned, so pip takes the CPU build from local disk; pyproject declares a range it satisfies.
$(STAMP): $(PY) pyproject.toml requirements-offline.txt
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps -r requirements-offline.txt
	touch $(STAMP)

install: $(STAMP)

# A failing gate (exit 1) is a finding, not a failed demo: the run and its reports are complete.
demo: $(STAMP)
	@HF_HUB_OFFLINE=1 $(VENV)/bin/raikit audit --offline --out out; rc=$$?; \
	if [ $$rc -eq 1 ]; then echo "demo: finished; at least one gate failed (see the report)"; exit 0; fi; exit $$rc

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

# the suite without the tests marked slow (tests/slow.txt, browser, integration): under 2 minutes on 2 cores
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# make bench: every benchmark on CPU (rows appended to bench/RESULTS.md); make bench BENCH_ARGS="--device cuda" on a GPU
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) out build *.egg-info
