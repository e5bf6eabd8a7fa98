# The README's two commands: `make run` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?=

.PHONY: run test test-under-load check bench fuzz docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hwemu run $(CONFIG)

# The suite on every core (pytest-xdist); a single file runs serially with plain pytest.
PYTEST := $(BIN)/python -m pytest -q -n auto --dist worksteal

# The optional C extension (hwemu._speedups), rebuilt when its source changes.
SPEEDUPS := $(VENV)/.speedups
$(SPEEDUPS): $(STAMP) hwemu/_speedups.c hwemu/_core.h hwemu/_hw.h setup.py
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(SPEEDUPS)

# Twice: with the C fast paths (when hwemu._speedups is built) and with HWEMU_PURE=1,
# their pure-Python twins.
test: check $(SPEEDUPS)
	$(PYTEST)
	HWEMU_PURE=1 $(PYTEST)

# The suite beside two CPU burners: tests/test_vmscan.py 20 times, the suite 5 times.
test-under-load: $(STAMP)
	$(BIN)/python tests/under_load.py

# What the code states, checked: lint, types, and commit subjects of 72 characters at
# most (since the commit the rule was first checked at).
SUBJECTS_SINCE := 6fb7e4b
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	@if git rev-parse -q --verify $(SUBJECTS_SINCE) >/dev/null 2>&1; then \
	  long=$$(git log --format=%s $(SUBJECTS_SINCE)..HEAD | awk 'length > 72'); \
	  if [ -n "$$long" ]; then echo "commit subjects over 72 characters:"; \
	    echo "$$long"; exit 1; fi; fi

# Every benchmark, each after a failure too; fails if any missed a target.
BENCHES := boot alloc kasan mempool floor sched run sweep kbuild
bench: $(STAMP)
	@status=0; for b in $(BENCHES); do echo "== bench/$$b.py"; \
	  $(BIN)/python bench/$$b.py || status=1; echo; done; exit $$status

# The robustness fuzzers in full (a small seeded sample of each runs in `make test`):
# config mutations through the CLI, and wild accesses in subprocess batches.
FUZZERS := tests/fuzz_config.py tests/fuzz_access.py
fuzz: $(STAMP)
	@status=0; for f in $(FUZZERS); do echo "== $$f"; \
	  $(BIN)/python $$f || status=1; echo; done; exit $$status

docs: $(STAMP)
	$(BIN)/hwemu config-reference > docs/config.md

clean:
	rm -rf $(VENV) build *.egg-info
