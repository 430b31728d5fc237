# Every target creates .venv and installs the project into it when needed,
# so each works as the first command on a fresh checkout.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run-scenarios test test-slow fidelity bench lint clean

$(STAMP): pyproject.toml setup.py harness/machine/_icount.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run-scenarios: $(STAMP)
	$(PY) -m harness scenarios

# Needs qemu-system-aarch64 and GNU binutils for aarch64 (bash .ci/run installs them).
fidelity: $(STAMP)
	$(PY) -m harness fidelity

# One pytest worker per core (pytest-xdist): the suite is CPU-bound and its tests independent.
test: $(STAMP)
	$(PY) -m pytest -q -n auto

# pytest exits 5 when a marker selects nothing; that is not a failure here. PSTATE_FUZZ_SLOW=1:
# the fuzz suites run thousands of examples per surface (tests/fuzzkit.py, tests/fuzztwice.py).
test-slow: $(STAMP)
	PSTATE_FUZZ_SLOW=1 $(PY) -m pytest -q -m slow; s=$$?; [ $$s -eq 5 ] && exit 0 || exit $$s

# Every figure next to its target, then one summary table; exits 1 when a target is missed.
bench: $(STAMP)
	$(PY) bench/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check harness tests bench

clean:
	rm -rf $(VENV) reports build dist *.egg-info harness/machine/*.so
