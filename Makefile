# pacsmig: two entry points, `make demo` and `make test`. Both set up .venv first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup peers test demo lint schema bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The real DICOM peers the integration tests talk to: Orthanc and DCMTK from Debian.
peers:
	@if ! command -v Orthanc >/dev/null 2>&1 && [ ! -x /usr/sbin/Orthanc ] || ! command -v storescu >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq orthanc dcmtk; \
	fi

test: setup peers
	$(VENV)/bin/ruff check runner tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

# Until the simulated PACS exists, the demo is the dry run of the demo profile.
demo: setup
	$(VENV)/bin/pacsmig plan site_profiles/demo.yaml --inventory site_profiles/demo-inventory.csv \
	  --json reports/demo/plan.json

lint: setup
	$(VENV)/bin/ruff check runner tests benchmarks
	$(VENV)/bin/mypy

schema: setup
	$(VENV)/bin/pacsmig schema > schemas/site-profile.schema.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
