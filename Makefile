# Two commands: `make test` and `make fit`. Each finds a Python >= 3.12 (pyenv or PATH),
# creates .venv if missing and installs pdmodel with its test extras.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# First Python >= 3.12 found: $PYTHON if set, python3.13/3.12 on PATH, then pyenv versions.
FIND_PYTHON = for c in "$$PYTHON" python3.14 python3.13 python3.12 python3 \
	  $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python /root/.pyenv/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -rV); do \
	  [ -n "$$c" ] || continue; command -v "$$c" >/dev/null 2>&1 || continue; \
	  if "$$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then echo "$$c"; break; fi; \
	done

.PHONY: test fit bench lint install clean

$(STAMP): pyproject.toml
	@py=$$($(FIND_PYTHON)); \
	if [ -z "$$py" ]; then echo "error: no Python >= 3.12 found (set PYTHON=/path/to/python3.12)" >&2; exit 1; fi; \
	if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check pdmodel tests benchmarks
	$(PY) -m pytest -q -n 2 --dist loadgroup

fit: $(STAMP)
	$(VENV)/bin/pdmodel fit

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m benchmarks

lint: $(STAMP)
	$(PY) -m ruff check pdmodel tests benchmarks
	$(PY) -m ruff format --check pdmodel tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
